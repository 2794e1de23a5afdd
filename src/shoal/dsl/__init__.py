"""``shoal.dsl``: pipelines written as Python functions, as ``azure.ai.ml.dsl`` writes them.

    from shoal import Input, dsl, load_component

    train = load_component("train.yml")

    @dsl.pipeline(default_compute="cpu-cluster")
    def flow(data: Input, lr: float = 0.1):
        trained = train(training_data=data, learning_rate=lr)
        return {"model": trained.outputs.model_output}

    job = flow(Input(path="./data"))        # a PipelineJob: ml_client.jobs.create_or_update(job)

Inside the function, calling a component (``load_component(...)`` result), calling a
``command(...)`` result, or calling ``command(...)`` itself adds a step; calling another
``@dsl.pipeline`` function adds a ``type: pipeline`` step whose component is that pipeline, inline.
The function's parameters are the pipeline's inputs (``${{parent.inputs.<name>}}``); a step's
``.outputs.<o>`` and ``.inputs.<i>`` bind to other steps (``${{parent.jobs.<step>.outputs.<o>}}``).
A returned ``{"name": step.outputs.o}`` declares pipeline outputs. Steps are named after the local
variables holding them, else after their component (``train_model``, ``train_model_1``, …).

The result is the pipeline job's YAML shape; local paths stay local (absolute) and are uploaded by
``ml_client.jobs.create_or_update``.

The package's modules: ``context`` (the pipeline being built), ``bindings`` (``${{parent…}}``
values), ``nodes`` (a step and its ports), ``steps`` (component and command calls as steps),
``naming`` (step names) and ``decorator`` (``@dsl.pipeline`` itself).
"""

from shoal.dsl.bindings import PipelineInput
from shoal.dsl.component_function import ComponentFunction, command_component
from shoal.dsl.context import PipelineArgumentError
from shoal.dsl.context import in_pipeline as in_pipeline
from shoal.dsl.decorator import PipelineFunction as PipelineFunction
from shoal.dsl.decorator import pipeline
from shoal.dsl.nodes import Node, NodeInput, NodeOutput
from shoal.dsl.nodes import is_binding as is_binding
from shoal.dsl.steps import command_step as command_step
from shoal.dsl.steps import component_step as component_step
from shoal.dsl.steps import inline_component as inline_component
from shoal.dsl.steps import placeholder as placeholder

# The public API; the other names above are what the SDK builders and the client use (dsl.<name>).
__all__ = [
    "pipeline",
    "command_component",
    "ComponentFunction",
    "Node",
    "NodeInput",
    "NodeOutput",
    "PipelineInput",
    "PipelineArgumentError",
]
