"""Pipeline graphs: a pipeline job expanded into the command steps that run, with their bindings.

A pipeline's steps may be inline command jobs, command components or pipeline components (nested
pipelines, expanded recursively). Every ``${{parent.…}}`` binding is followed to where its value
comes from: a literal, a data path, or an output of another command step. What comes out is flat:
each leaf step (a command job to run) with its inputs bound and the leaf steps it waits for; each
pipeline (the root and nested ones) with the leaf outputs its own outputs stand for.

Everything is checked before anything runs, and every problem names the step path and the field
(``jobs.train_job.inputs.max_epochs``): bindings to missing steps, inputs or outputs; cycles;
types Azure ML rejects; required inputs without a value. Azure's tolerated quirks (an input the
component does not declare, ``uri_file`` given to ``uri_folder``, ``uri_folder`` given to
``mltable``, unknown ``settings`` keys, ``services``) are accepted with a warning.

Pure: components referenced by name come through a callback; nothing here reads a store.

The modules: ``model`` (the graph's data), ``type_rules`` (port types), ``bindings`` (following
and checking bindings) and ``expander`` (walking the steps; ``expand``).
"""

from shoal.entities.pipeline_graph.expander import KNOWN_SETTINGS, expand
from shoal.entities.pipeline_graph.model import (
    ARTIFACTS,
    COMPONENT_JOB_FIELDS,
    FAILED,
    STEP_JOB_FIELDS,
    STEP_TYPES,
    SWEEP_FIELDS,
    UNSET,
    ComponentResolver,
    Graph,
    Leaf,
    Node,
    OutputRef,
    Value,
    field_of,
    step_path,
)
from shoal.entities.pipeline_graph.type_rules import MODEL_TYPES, data_compatibility

__all__ = [
    "ARTIFACTS",
    "COMPONENT_JOB_FIELDS",
    "FAILED",
    "KNOWN_SETTINGS",
    "MODEL_TYPES",
    "STEP_JOB_FIELDS",
    "STEP_TYPES",
    "SWEEP_FIELDS",
    "UNSET",
    "ComponentResolver",
    "Graph",
    "Leaf",
    "Node",
    "OutputRef",
    "Value",
    "data_compatibility",
    "expand",
    "field_of",
    "step_path",
]
