"""``entities.pipeline_graph.expand``: a pipeline job dict → leaf command steps, bindings, checks.

Pure: components referenced by name come from a dict through the resolver callback. The last
tests expand the pipeline YAMLs of Azure/azureml-examples (skipped unless SHOAL_AZUREML_EXAMPLES
points at a checkout, as in test_job_azureml_examples.py).
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

import pytest

from shoal.entities.pipeline_graph import OutputRef, Value, expand
from shoal.errors import SpecError

# -- helpers --------------------------------------------------------------------------------


def component(inputs: dict | None = None, outputs: dict | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": extra.pop("name", "comp"),
        "type": "command",
        "command": extra.pop("command", "python run.py"),
        "environment": extra.pop("environment", "azureml:env:1"),
        "inputs": inputs or {},
        "outputs": outputs or {},
    }
    spec.update(extra)
    return spec


def pipeline_component(jobs: dict, inputs: dict | None = None, outputs: dict | None = None, **extra: Any) -> dict:
    return {"name": extra.pop("name", "sub"), "type": "pipeline", "inputs": inputs or {}, "outputs": outputs or {},
            "jobs": jobs, **extra}  # fmt: skip


def cmd(command: str = "echo hi", **fields: Any) -> dict[str, Any]:
    """An inline command step (no ``type:``)."""
    return {"command": command, "environment": "azureml:env:1", **fields}


class Registry:
    """The resolver callback: a dict of registered components, and the calls it was given."""

    def __init__(self, components: dict[str, dict] | None = None) -> None:
        self.components = components or {}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, ref: str, where: str) -> dict[str, Any]:
        self.calls.append((ref, where))
        if ref not in self.components:
            raise SpecError(f"component {ref!r} not found")
        return copy.deepcopy(self.components[ref])


def ok(spec: dict, components: dict | None = None):
    return expand(spec, Registry(components))


def fail(spec: dict, components: dict | None = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        expand(spec, Registry(components))
    return info.value


def errors(exc: SpecError) -> list[dict[str, str]]:
    return exc.details["errors"]


def assert_problem(exc: SpecError, field: str, *fragments: str, only: bool = True) -> None:
    """``field`` is named in the message and in a details["errors"] entry holding every fragment."""
    entries = errors(exc)
    if only:
        assert [e["field"] for e in entries] == [field], entries
        assert field in str(exc), str(exc)
    matching = [e for e in entries if e["field"] == field]
    assert matching, entries
    assert any(e["message"].startswith(f"{field}: ") and all(f in e["message"] for f in fragments) for e in matching), (
        matching
    )


DATA = "azureml://datastores/workspaceblobstore/paths/raw/"
TRAIN = component(
    name="train",
    inputs={
        "data": {"type": "uri_folder"},
        "epochs": {"type": "integer", "default": 10, "min": 1, "max": 100},
        "lr": {"type": "number", "default": 0.01},
        "tag": {"type": "string", "optional": True},
        "shuffle": {"type": "boolean", "default": False},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
    },
    outputs={"model": {"type": "mlflow_model"}, "report": {"type": "uri_folder"}},
    code="azureml:code:1",
    resources={"instance_count": 1},
)
SCORE = component(
    name="score",
    inputs={"model": {"type": "mlflow_model"}, "data": {"type": "uri_folder"}},
    outputs={"scores": {"type": "uri_folder"}},
)

# -- step kinds -----------------------------------------------------------------------------


def test_inline_command_steps_without_type() -> None:
    graph = ok(
        {
            "type": "pipeline",
            "jobs": {
                "hello": cmd("echo hi > ${{outputs.out}}/a.txt", outputs={"out": None}),
                "world": cmd("cat ${{inputs.x}}/a.txt", inputs={"x": "${{parent.jobs.hello.outputs.out}}"}),
            },
        }
    )
    assert set(graph.leaves) == {"hello", "world"}
    assert list(graph.nodes) == [""]
    assert graph.root.steps == ["hello", "world"]
    hello, world = graph.leaves["hello"], graph.leaves["world"]
    assert hello.job["command"] == "echo hi > ${{outputs.out}}/a.txt"
    assert hello.job["display_name"] == "hello"
    assert hello.outputs == {"out": {"type": "uri_folder"}}
    assert hello.component_ref is None and hello.parent == ""
    assert world.inputs == {"x": Value("output", ref=OutputRef("hello", "out"), type="uri_folder")}
    assert world.depends_on == {"hello"}
    assert hello.depends_on == set()
    assert graph.order() == ["hello", "world"]
    assert graph.warnings == []


def test_inline_step_literals_and_data_inputs_are_kept_as_given() -> None:
    graph = ok(
        {
            "jobs": {
                "a": cmd(
                    "echo ${{inputs.n}} ${{inputs.d}}",
                    inputs={"n": 3, "d": {"type": "uri_file", "path": DATA + "f.csv", "mode": "download"}},
                    is_deterministic=False,
                )
            }
        }
    )
    leaf = graph.leaves["a"]
    assert leaf.inputs["n"] == Value("literal", literal=3)
    assert leaf.inputs["d"] == Value("data", path=DATA + "f.csv", type="uri_file", mode="download")
    assert leaf.deterministic is False
    assert leaf.component["inputs"] == {"n": {"type": "string"}, "d": {"type": "uri_file"}}


def test_inline_step_needs_a_command() -> None:
    exc = fail({"jobs": {"a": {"environment": "azureml:env:1"}}})
    assert_problem(exc, "jobs.a.command", "needs a command")


def test_component_step_with_inline_component() -> None:
    graph = ok(
        {
            "jobs": {
                "train": {
                    "type": "command",
                    "component": TRAIN,
                    "environment": "azureml:override:2",
                    "inputs": {"data": DATA, "epochs": "20", "shuffle": "true", "lr": "0.5"},
                    "outputs": {"model": {"mode": "upload"}},
                }
            }
        }
    )
    leaf = graph.leaves["train"]
    assert leaf.component_ref is None
    assert leaf.component["name"] == "train"
    assert leaf.job["command"] == TRAIN["command"]
    assert leaf.job["code"] == "azureml:code:1"
    assert leaf.job["resources"] == {"instance_count": 1}
    assert leaf.job["environment"] == "azureml:override:2"  # the step's field wins over the component's
    assert leaf.inputs["data"] == Value("data", path=DATA, type="uri_folder")
    assert leaf.inputs["epochs"] == Value("literal", literal=20)  # "20" → 20 for an integer port
    assert leaf.inputs["shuffle"] == Value("literal", literal=True)  # "true" → True
    assert leaf.inputs["lr"] == Value("literal", literal=0.5)
    assert leaf.inputs["mode"] == Value("literal", literal="fast")  # component default
    assert leaf.inputs["tag"].kind == "unset"  # optional, not given
    assert leaf.outputs == {"model": {"type": "mlflow_model", "mode": "upload"}, "report": {"type": "uri_folder"}}
    assert leaf.deterministic is True


def test_component_by_name_comes_from_the_resolver() -> None:
    registry = Registry({"azureml:train:1": TRAIN})
    graph = expand({"jobs": {"t": {"component": "azureml:train:1", "inputs": {"data": DATA}}}}, registry)
    assert registry.calls == [("azureml:train:1", "jobs.t.component")]
    assert graph.leaves["t"].component_ref == "azureml:train:1"
    assert graph.leaves["t"].inputs["epochs"] == Value("literal", literal=10)


def test_unknown_component_name_is_an_error_at_the_step() -> None:
    exc = fail({"jobs": {"t": {"component": "azureml:nope:1"}}})
    assert_problem(exc, "jobs.t.component", "nope")


@pytest.mark.parametrize("ref", ["./train.yml", "file:./train.yml", "../components/train.yaml"])
def test_local_component_file_not_inlined_is_an_error(ref: str) -> None:
    registry = Registry()
    with pytest.raises(SpecError) as info:
        expand({"jobs": {"t": {"type": "command", "component": ref}}}, registry)
    assert_problem(info.value, "jobs.t.component", "local component file", ref)
    assert registry.calls == []


def test_component_is_not_a_deterministic_step_when_it_says_so() -> None:
    comp = component(is_deterministic=False)
    assert ok({"jobs": {"a": {"component": comp}}}).leaves["a"].deterministic is False


def test_step_type_must_match_its_component() -> None:
    exc = fail({"jobs": {"a": {"type": "pipeline", "component": component()}}})
    assert_problem(exc, "jobs.a.type", "'pipeline'", "'command'")


def _nested_spec() -> dict[str, Any]:
    """root → outer (pipeline) → inner (pipeline) → train; root's `report` step reads outer's output."""
    inner = pipeline_component(
        name="inner",
        inputs={"data": {"type": "uri_folder"}, "lr": {"type": "number"}, "epochs": {"type": "integer", "default": 3}},
        outputs={"model": {"type": "mlflow_model"}},
        jobs={
            "train": {
                "type": "command",
                "component": TRAIN,
                "inputs": {
                    "data": "${{parent.inputs.data}}",
                    "lr": "${{parent.inputs.lr}}",
                    "epochs": "${{parent.inputs.epochs}}",
                },
                "outputs": {"model": "${{parent.outputs.model}}"},
            }
        },
    )
    outer = pipeline_component(
        name="outer",
        inputs={"data": {"type": "uri_folder"}, "lr": {"type": "number"}},
        outputs={"model": {"type": "mlflow_model"}},
        jobs={
            "inner": {
                "type": "pipeline",
                "component": inner,
                "inputs": {"data": "${{parent.inputs.data}}", "lr": "${{parent.inputs.lr}}"},
                "outputs": {"model": "${{parent.outputs.model}}"},
            }
        },
    )
    return {
        "type": "pipeline",
        "inputs": {"raw": {"type": "uri_folder", "path": DATA}, "lr": 0.1},
        "outputs": {"final": {"mode": "upload"}},
        "jobs": {
            "outer": {
                "type": "pipeline",
                "component": outer,
                "inputs": {"data": "${{parent.inputs.raw}}", "lr": "${{parent.inputs.lr}}"},
                "outputs": {"model": "${{parent.outputs.final}}"},
            },
            "report": {
                "type": "command",
                "component": SCORE,
                "inputs": {"model": "${{parent.jobs.outer.outputs.model}}", "data": "${{parent.inputs.raw}}"},
            },
        },
    }


def test_nested_pipelines_two_levels_deep() -> None:
    graph = ok(_nested_spec())
    assert set(graph.nodes) == {"", "outer", "outer/inner"}
    assert set(graph.leaves) == {"outer/inner/train", "report"}
    assert graph.root.steps == ["outer", "report"]
    assert graph.nodes["outer"].steps == ["outer/inner"]
    assert graph.nodes["outer/inner"].steps == ["outer/inner/train"]
    assert graph.nodes["outer/inner"].parent == "outer"
    train = graph.leaves["outer/inner/train"]
    assert train.parent == "outer/inner" and train.name == "train"
    # inputs passed down two levels; the inner pipeline's default applies
    assert train.inputs["data"] == Value("data", path=DATA, type="uri_folder")
    assert train.inputs["lr"] == Value("literal", literal=0.1)
    assert train.inputs["epochs"] == Value("literal", literal=3)
    # outputs bound up two levels to the root's output, its settings inherited
    ref = OutputRef("outer/inner/train", "model")
    assert graph.nodes["outer/inner"].bound_outputs == {"model": ref}
    assert graph.nodes["outer"].bound_outputs == {"model": ref}
    assert graph.root.bound_outputs == {"final": ref}
    assert train.outputs["model"] == {"type": "mlflow_model", "mode": "upload"}
    assert graph.root.outputs["final"] == {"type": "mlflow_model", "mode": "upload"}
    # a consumer of the nested pipeline's output waits for the leaf that makes it
    report = graph.leaves["report"]
    assert report.inputs["model"] == Value("output", ref=ref, type="mlflow_model")
    assert report.depends_on == {"outer/inner/train"}
    assert graph.order() == ["outer/inner/train", "report"]


def test_nested_pipeline_step_compute_is_the_default_of_its_steps() -> None:
    spec = _nested_spec()
    spec["settings"] = {"default_compute": "azureml:cpu"}
    spec["jobs"]["outer"]["compute"] = "gpu"
    graph = ok(spec)
    assert graph.leaves["outer/inner/train"].job["compute"] == "gpu"
    assert graph.leaves["report"].job["compute"] == "cpu"


def test_nested_pipeline_errors_name_the_full_step_path() -> None:
    spec = _nested_spec()
    inner = spec["jobs"]["outer"]["component"]["jobs"]["inner"]["component"]
    inner["jobs"]["train"]["inputs"]["lr"] = "${{parent.inputs.nope}}"
    exc = fail(spec)
    assert_problem(exc, "jobs.outer.jobs.inner.jobs.train.inputs.lr", "'nope'", "not declared")


def test_nested_pipeline_output_not_declared_by_its_component() -> None:
    spec = _nested_spec()
    spec["jobs"]["outer"]["outputs"]["extra"] = None
    exc = fail(spec)
    assert_problem(exc, "jobs.outer.outputs.extra", "declares no output 'extra'", "model")


def test_nested_step_binds_an_output_its_pipeline_component_does_not_declare() -> None:
    spec = _nested_spec()
    inner = spec["jobs"]["outer"]["component"]["jobs"]["inner"]["component"]
    inner["jobs"]["train"]["outputs"]["report"] = "${{parent.outputs.nope}}"
    exc = fail(spec)
    assert_problem(exc, "jobs.outer.jobs.inner.jobs.train.outputs.report", "pipeline output 'nope'", "not declared")


def test_nested_pipeline_output_that_no_inner_step_binds() -> None:
    spec = _nested_spec()
    inner = spec["jobs"]["outer"]["component"]["jobs"]["inner"]["component"]
    del inner["jobs"]["train"]["outputs"]["model"]
    exc = fail(spec)
    fields = [e["field"] for e in errors(exc)]
    assert "jobs.outer.jobs.inner.outputs.model" in fields
    assert "jobs.report.inputs.model" in fields
    assert_problem(exc, "jobs.report.inputs.model", "not bound to any of its steps", only=False)


def test_pipeline_step_needs_a_pipeline_component() -> None:
    exc = fail({"jobs": {"p": {"type": "pipeline"}}})
    assert_problem(exc, "jobs.p.component", "needs a pipeline component")


def test_pipeline_job_with_component_instead_of_jobs() -> None:
    pipe = pipeline_component(
        inputs={"data": {"type": "uri_folder"}, "epochs": {"type": "integer", "default": 5}},
        outputs={"model": {"type": "mlflow_model"}},
        jobs={
            "train": {
                "component": TRAIN,
                "inputs": {"data": "${{parent.inputs.data}}", "epochs": "${{parent.inputs.epochs}}"},
                "outputs": {"model": "${{parent.outputs.model}}"},
            },
            "score": {
                "component": SCORE,
                "inputs": {"model": "${{parent.jobs.train.outputs.model}}", "data": "${{parent.inputs.data}}"},
            },
        },
    )
    spec = {
        "type": "pipeline",
        "component": pipe,
        "inputs": {"data": {"type": "uri_folder", "path": DATA}, "epochs": "7"},
        "outputs": {"model": {"mode": "upload"}},
        "settings": {"default_compute": "azureml:cpu-cluster"},
    }
    graph = ok(spec)
    assert set(graph.leaves) == {"train", "score"}
    assert graph.root.inputs["epochs"] == Value("literal", literal=7)
    assert graph.leaves["train"].inputs["epochs"] == Value("literal", literal=7)
    assert graph.root.outputs["model"] == {"type": "mlflow_model", "mode": "upload"}
    assert graph.root.bound_outputs == {"model": OutputRef("train", "model")}
    assert graph.leaves["train"].outputs["model"] == {"type": "mlflow_model", "mode": "upload"}
    assert graph.leaves["score"].job["compute"] == "cpu-cluster"
    assert graph.order() == ["train", "score"]

    # the same pipeline component, registered and referenced by name
    by_name = {**spec, "component": "azureml:sub:1"}
    graph = ok(by_name, {"azureml:sub:1": pipe})
    assert set(graph.leaves) == {"train", "score"}


def test_pipeline_job_component_must_be_a_pipeline_component() -> None:
    exc = fail({"type": "pipeline", "component": component()})
    assert_problem(exc, "component", "must be a pipeline component", only=False)


def test_pipeline_job_component_form_checks_its_inputs() -> None:
    pipe = pipeline_component(inputs={"n": {"type": "integer"}}, jobs={"a": cmd(inputs={"n": "${{parent.inputs.n}}"})})
    exc = fail({"type": "pipeline", "component": pipe})
    assert_problem(exc, "inputs.n", "required input has no value")


# -- bindings -------------------------------------------------------------------------------


def test_parent_inputs_literal_and_data() -> None:
    graph = ok(
        {
            "inputs": {
                "epochs": 30,
                "raw": {"type": "uri_folder", "path": DATA, "mode": "download"},
                "file": {"type": "uri_file", "path": DATA + "a.csv"},
                "flag": {"type": "boolean", "value": "false"},
            },
            "jobs": {
                "train": {
                    "component": TRAIN,
                    "inputs": {
                        "data": "${{parent.inputs.raw}}",
                        "epochs": "${{parent.inputs.epochs}}",
                        "shuffle": "${{parent.inputs.flag}}",
                    },
                },
                "inline": cmd(inputs={"f": "${{parent.inputs.file}}"}),
            },
        }
    )
    assert graph.root.inputs["flag"] == Value("literal", literal=False)
    train = graph.leaves["train"]
    assert train.inputs["data"] == Value("data", path=DATA, type="uri_folder", mode="download")
    assert train.inputs["epochs"] == Value("literal", literal=30)
    assert train.inputs["shuffle"] == Value("literal", literal=False)
    assert graph.leaves["inline"].inputs["f"] == Value("data", path=DATA + "a.csv", type="uri_file")
    assert train.depends_on == set()


def test_parent_jobs_step_inputs() -> None:
    graph = ok(
        {
            "inputs": {"lr": 0.3},
            "jobs": {
                "a": {"component": TRAIN, "inputs": {"data": DATA, "lr": "${{parent.inputs.lr}}"}},
                "b": {
                    "component": TRAIN,
                    "inputs": {
                        "data": "${{parent.jobs.a.inputs.data}}",
                        "lr": "${{parent.jobs.a.inputs.lr}}",
                        "epochs": "${{parent.jobs.a.inputs.epochs}}",  # a's component default
                    },
                },
                "c": cmd(inputs={"d": "${{parent.jobs.b.outputs.model}}"}),
                "d": cmd(inputs={"d": "${{parent.jobs.c.inputs.d}}"}),  # an input that is b's output
            },
        }
    )
    b = graph.leaves["b"]
    assert b.inputs["data"] == Value("data", path=DATA, type="uri_folder")
    assert b.inputs["lr"] == Value("literal", literal=0.3)
    assert b.inputs["epochs"] == Value("literal", literal=10)
    assert graph.leaves["d"].inputs["d"].ref == OutputRef("b", "model")
    assert graph.leaves["d"].depends_on == {"b"}


def test_parent_jobs_step_input_that_does_not_exist() -> None:
    exc = fail({"jobs": {"a": cmd(), "b": cmd(inputs={"x": "${{parent.jobs.a.inputs.nope}}"})}})
    assert_problem(exc, "jobs.b.inputs.x", "input 'nope' of step 'a'")


def test_step_output_bound_to_pipeline_output_inherits_its_settings() -> None:
    path = "azureml://datastores/workspaceblobstore/paths/${{name}}/hello.txt"
    graph = ok(
        {
            "outputs": {"out": {"type": "uri_file", "path": path, "mode": "rw_mount"}, "unbound": None},
            "jobs": {"hello": cmd("echo > ${{outputs.o}}", outputs={"o": "${{parent.outputs.out}}"})},
        }
    )
    assert graph.root.bound_outputs == {"out": OutputRef("hello", "o")}
    assert graph.leaves["hello"].outputs["o"] == {"type": "uri_file", "path": path, "mode": "rw_mount"}
    assert graph.root.outputs["unbound"] == {"type": "uri_folder"}
    assert graph.warnings == ["outputs.unbound: no step output is bound to this pipeline output"]


def test_untyped_pipeline_output_takes_the_type_of_the_step_output_bound_to_it() -> None:
    graph = ok(
        {
            "outputs": {"model": {"mode": "upload"}},
            "jobs": {
                "t": {"component": TRAIN, "inputs": {"data": DATA}, "outputs": {"model": "${{parent.outputs.model}}"}}
            },
        }
    )
    assert graph.leaves["t"].outputs["model"] == {"type": "mlflow_model", "mode": "upload"}
    assert graph.root.outputs["model"] == {"type": "mlflow_model", "mode": "upload"}


def test_reserved_artifacts_output() -> None:
    graph = ok(
        {
            "jobs": {
                "a": cmd("echo > ./outputs/x.txt"),  # artifacts not declared
                "b": cmd("echo", outputs={"artifacts": None}),  # declared: ignored
                "c": {"component": SCORE, "inputs": {"model": DATA, "data": DATA}, "outputs": {"artifacts": None}},
                "d": cmd(
                    inputs={
                        "x": "${{parent.jobs.a.outputs.artifacts}}",
                        "y": "${{parent.jobs.b.outputs.artifacts}}",
                        "z": "${{parent.jobs.c.outputs.artifacts}}",
                    }
                ),
            }
        }
    )
    assert graph.leaves["b"].outputs == {}
    assert "artifacts" not in graph.leaves["c"].outputs
    d = graph.leaves["d"]
    assert d.inputs["x"] == Value("output", ref=OutputRef("a", "artifacts"), type="uri_folder")
    assert d.inputs["z"].ref == OutputRef("c", "artifacts")
    assert d.depends_on == {"a", "b", "c"}
    assert graph.order().index("d") == 3


def test_string_interpolation_of_parameters() -> None:
    graph = ok(
        {
            "inputs": {"n": 5, "raw": {"type": "uri_folder", "path": DATA}},
            "jobs": {
                "a": cmd(
                    inputs={"name": "run-${{parent.inputs.n}}", "where": "${{parent.inputs.raw}}/sub"},
                    display_name="step ${{parent.inputs.n}}",
                ),
                "b": {"component": TRAIN, "inputs": {"data": DATA, "tag": "v${{parent.inputs.n}}-x"}},
            },
        }
    )
    a = graph.leaves["a"]
    assert a.inputs["name"] == Value("literal", literal="run-5")
    assert a.inputs["where"] == Value("literal", literal=DATA + "/sub")
    assert a.job["display_name"] == "step 5"
    assert graph.leaves["b"].inputs["tag"] == Value("literal", literal="v5-x")


def test_string_interpolation_of_an_undeclared_input() -> None:
    exc = fail({"jobs": {"a": cmd(inputs={"name": "run-${{parent.inputs.n}}"})}})
    assert_problem(exc, "jobs.a.inputs.name", "'n'", "not declared")


def test_scalar_field_binding() -> None:
    graph = ok(
        {
            "inputs": {"compute_name": "gpu-cluster", "count": 2},
            "jobs": {
                "a": cmd(
                    compute="${{parent.inputs.compute_name}}", resources={"instance_count": "${{parent.inputs.count}}"}
                ),
            },
        }
    )
    job = graph.leaves["a"].job
    assert job["compute"] == "gpu-cluster"
    assert job["resources"] == {"instance_count": 2}


def test_scalar_field_bound_to_an_undeclared_input_is_one_error() -> None:
    exc = fail({"jobs": {"a": cmd(compute="${{parent.inputs.nope}}")}})
    assert_problem(exc, "jobs.a.compute", "'nope'", "not declared")


def test_scalar_field_bound_to_data_is_an_error() -> None:
    exc = fail(
        {"inputs": {"d": {"type": "uri_folder", "path": DATA}}, "jobs": {"a": cmd(compute="${{parent.inputs.d}}")}}
    )
    assert_problem(exc, "jobs.a.compute", "not a literal value")


def test_default_compute_applies_to_steps_without_compute() -> None:
    graph = ok(
        {
            "settings": {"default_compute": "azureml:cpu-cluster", "default_datastore": "azureml:workspaceblobstore"},
            "jobs": {"a": cmd(), "b": cmd(compute="azureml:gpu-cluster"), "c": {"component": component()}},
        }
    )
    assert graph.leaves["a"].job["compute"] == "cpu-cluster"
    assert graph.leaves["b"].job["compute"] == "azureml:gpu-cluster"
    assert graph.leaves["c"].job["compute"] == "cpu-cluster"
    assert graph.settings["default_datastore"] == "azureml:workspaceblobstore"
    assert "compute" not in ok({"jobs": {"a": cmd()}}).leaves["a"].job


def test_component_defaults_and_optional_inputs() -> None:
    comp = component(
        inputs={
            "req": {"type": "string"},
            "opt": {"type": "string", "optional": True},
            "dflt": {"type": "integer", "default": 4},
            "data": {"type": "uri_folder", "default": DATA},
            "odata": {"type": "uri_file", "optional": True},
        }
    )
    graph = ok(
        {
            "inputs": {"maybe": {"type": "string"}},
            "jobs": {"a": {"component": comp, "inputs": {"req": "x", "opt": "${{parent.inputs.maybe}}"}}},
        }
    )
    inputs = graph.leaves["a"].inputs
    assert inputs["req"] == Value("literal", literal="x")
    assert inputs["opt"].kind == "unset"  # bound to an unset pipeline input
    assert inputs["dflt"] == Value("literal", literal=4)
    assert inputs["data"] == Value("data", path=DATA, type="uri_folder")
    assert inputs["odata"] == Value("unset", type="uri_file")


@pytest.mark.parametrize(
    ("port", "given", "expected"),
    [
        ({"type": "integer"}, "20", 20),
        ({"type": "integer"}, 20.0, 20),
        ({"type": "number"}, "1e-3", 0.001),
        ({"type": "number"}, 2, 2),
        ({"type": "boolean"}, "true", True),
        ({"type": "boolean"}, "False", False),
        ({"type": "string"}, 3, "3"),
        ({"type": "string"}, True, "True"),  # str(), as the SDK sends it
        ({"type": "string", "enum": ["a", "b"]}, "b", "b"),
        ({"type": "integer", "min": 1, "max": 3}, 3, 3),
    ],
)
def test_literal_coercion(port: dict, given: Any, expected: Any) -> None:
    graph = ok({"jobs": {"a": {"component": component(inputs={"x": port}), "inputs": {"x": given}}}})
    value = graph.leaves["a"].inputs["x"]
    assert value == Value("literal", literal=expected)
    assert type(value.literal) is type(expected)


@pytest.mark.parametrize(
    ("port", "given", "fragment"),
    [
        ({"type": "integer"}, "twenty", "not a valid integer"),
        ({"type": "integer"}, 2.5, "not a valid integer"),
        ({"type": "integer"}, True, "not a valid integer"),
        ({"type": "boolean"}, "yes", "not a valid boolean"),
        ({"type": "number"}, "fast", "not a valid number"),
        ({"type": "integer", "min": 1}, 0, "below the minimum 1"),
        ({"type": "number", "max": 1.0}, "1.5", "above the maximum 1.0"),
        ({"type": "string", "enum": ["fast", "slow"]}, "medium", "not one of ['fast', 'slow']"),
    ],
)
def test_literal_checks(port: dict, given: Any, fragment: str) -> None:
    exc = fail({"jobs": {"b": {"component": component(inputs={"x": port}), "inputs": {"x": given}}}})
    assert_problem(exc, "jobs.b.inputs.x", fragment)


def test_literal_checks_apply_to_values_from_pipeline_inputs() -> None:
    exc = fail(
        {
            "inputs": {"e": "500"},
            "jobs": {"b": {"component": TRAIN, "inputs": {"data": DATA, "epochs": "${{parent.inputs.e}}"}}},
        }
    )
    assert_problem(exc, "jobs.b.inputs.epochs", "above the maximum 100")


@pytest.mark.parametrize(
    ("given", "declared"),
    [
        ("uri_folder", "uri_folder"),
        ("mltable", "uri_folder"),
        ("mlflow_model", "uri_folder"),
        ("uri_folder", "custom_model"),
        ("custom_model", "mlflow_model"),
        ("uri_file", "path"),
    ],
)
def test_compatible_data_types_bind_without_warning(given: str, declared: str) -> None:
    graph = ok(
        {
            "jobs": {
                "a": cmd(outputs={"o": {"type": given}}),
                "b": {
                    "component": component(inputs={"x": {"type": declared}}),
                    "inputs": {"x": "${{parent.jobs.a.outputs.o}}"},
                },
            }
        }
    )
    assert graph.leaves["b"].inputs["x"].type == given
    assert graph.warnings == []


# -- order ----------------------------------------------------------------------------------


def test_fan_out_and_fan_in_order() -> None:
    jobs = {
        "join": cmd(inputs={k: f"${{{{parent.jobs.{k}.outputs.o}}}}" for k in ("b", "c", "d")}),
        "b": cmd(inputs={"x": "${{parent.jobs.a.outputs.o}}"}, outputs={"o": None}),
        "c": cmd(inputs={"x": "${{parent.jobs.a.outputs.o}}"}, outputs={"o": None}),
        "d": cmd(inputs={"x": "${{parent.jobs.a.outputs.o}}"}, outputs={"o": None}),
        "a": cmd(outputs={"o": None}),
        "alone": cmd(),
    }
    graph = ok({"jobs": jobs})  # consumers listed before their producers
    order = graph.order()
    assert sorted(order) == sorted(jobs)
    for step in ("b", "c", "d"):
        assert order.index("a") < order.index(step) < order.index("join")
        assert graph.leaves[step].depends_on == {"a"}
    assert graph.leaves["join"].depends_on == {"b", "c", "d"}
    assert graph.leaves["alone"].depends_on == set()


def test_a_chain_of_100_steps_expands_quickly() -> None:
    jobs: dict[str, Any] = {"s0": {"component": TRAIN, "inputs": {"data": DATA}}}
    for i in range(1, 100):
        jobs[f"s{i}"] = {"component": TRAIN, "inputs": {"data": f"${{{{parent.jobs.s{i - 1}.outputs.report}}}}"}}
    reversed_jobs = dict(reversed(list(jobs.items())))
    start = time.perf_counter()
    graph = ok({"jobs": reversed_jobs})
    order = graph.order()
    assert time.perf_counter() - start < 2.0
    assert order == [f"s{i}" for i in range(100)]
    assert graph.leaves["s99"].depends_on == {"s98"}


# -- errors ---------------------------------------------------------------------------------


def test_cycle_between_two_steps() -> None:
    exc = fail(
        {
            "jobs": {
                "a": {"component": SCORE, "inputs": {"model": "${{parent.jobs.b.outputs.scores}}", "data": DATA}},
                "b": {"component": SCORE, "inputs": {"model": "${{parent.jobs.a.outputs.scores}}", "data": DATA}},
            }
        }
    )
    assert_problem(exc, "jobs.a", "cycle", "a -> b -> a")  # and nothing else: no "required input" noise


def test_cycle_through_three_inline_steps() -> None:
    exc = fail(
        {
            "jobs": {
                "a": cmd(inputs={"x": "${{parent.jobs.c.outputs.o}}"}, outputs={"o": None}),
                "b": cmd(inputs={"x": "${{parent.jobs.a.outputs.o}}"}, outputs={"o": None}),
                "c": cmd(inputs={"x": "${{parent.jobs.b.outputs.o}}"}, outputs={"o": None}),
            }
        }
    )
    assert_problem(exc, "jobs.a", "a -> c -> b -> a")


def test_self_cycle() -> None:
    exc = fail({"jobs": {"a": cmd(inputs={"x": "${{parent.jobs.a.outputs.o}}"}, outputs={"o": None})}})
    assert_problem(exc, "jobs.a", "cycle", "a -> a")


def test_binding_to_a_missing_step() -> None:
    exc = fail(
        {
            "jobs": {
                "a": cmd(),
                "b": {"component": SCORE, "inputs": {"model": "${{parent.jobs.zz.outputs.o}}", "data": DATA}},
            }
        }
    )
    assert_problem(exc, "jobs.b.inputs.model", "step 'zz'", "steps: a, b")


def test_binding_to_a_missing_output_of_a_step() -> None:
    exc = fail({"jobs": {"a": cmd(outputs={"o": None}), "b": cmd(inputs={"x": "${{parent.jobs.a.outputs.nope}}"})}})
    assert_problem(exc, "jobs.b.inputs.x", "output 'nope' of step 'a'", "outputs: o")


def test_binding_to_an_undeclared_pipeline_input() -> None:
    exc = fail(
        {
            "inputs": {"lr": 1},
            "jobs": {"b": {"component": TRAIN, "inputs": {"data": DATA, "lr": "${{parent.inputs.x}}"}}},
        }
    )
    assert_problem(exc, "jobs.b.inputs.lr", "pipeline input 'x'", "inputs: lr")


def test_binding_to_an_undeclared_pipeline_output() -> None:
    exc = fail({"outputs": {"final": None}, "jobs": {"a": cmd(outputs={"o": "${{parent.outputs.nope}}"})}})
    assert_problem(exc, "jobs.a.outputs.o", "pipeline output 'nope'", "outputs: final")


def test_parent_outputs_cannot_feed_an_input() -> None:
    exc = fail({"outputs": {"final": None}, "jobs": {"a": cmd(inputs={"x": "${{parent.outputs.final}}"})}})
    assert_problem(exc, "jobs.a.inputs.x", "can bind an output, not an input")


def test_step_output_must_bind_to_parent_outputs() -> None:
    exc = fail({"inputs": {"i": 1}, "jobs": {"a": cmd(outputs={"o": "${{parent.inputs.i}}"})}})
    assert_problem(exc, "jobs.a.outputs.o", "can only bind to ${{parent.outputs.<name>}}")


def test_component_step_output_not_declared_by_the_component() -> None:
    exc = fail(
        {"jobs": {"a": {"component": SCORE, "inputs": {"model": DATA, "data": DATA}, "outputs": {"nope": None}}}}
    )
    assert_problem(exc, "jobs.a.outputs.nope", "declares no output 'nope'", "outputs: scores")


def test_unknown_output_type() -> None:
    exc = fail({"jobs": {"a": cmd(outputs={"o": {"type": "folder"}})}})
    assert_problem(exc, "jobs.a.outputs.o", "unknown output type 'folder'")


def test_missing_required_input() -> None:
    exc = fail(
        {
            "jobs": {
                "a": cmd(outputs={"o": None}),
                "b": {"component": SCORE, "inputs": {"model": "${{parent.jobs.a.outputs.o}}"}},
            }
        }
    )
    assert_problem(exc, "jobs.b.inputs.data", "required input has no value")


def test_pipeline_input_without_value_given_to_a_required_input() -> None:
    exc = fail(
        {
            "inputs": {"d": {"type": "uri_folder"}},
            "jobs": {"b": {"component": SCORE, "inputs": {"model": DATA, "data": "${{parent.inputs.d}}"}}},
        }
    )
    assert_problem(exc, "jobs.b.inputs.data", "required input has no value")


def test_literal_given_to_a_data_input() -> None:
    exc = fail({"jobs": {"b": {"component": SCORE, "inputs": {"model": DATA, "data": "hello"}}}})
    assert_problem(exc, "jobs.b.inputs.data", "declared uri_folder", "literal 'hello'")


def test_path_like_literal_given_to_a_data_input_is_data() -> None:
    graph = ok({"jobs": {"b": {"component": SCORE, "inputs": {"model": "azureml:my-model:1", "data": "./data"}}}})
    assert graph.leaves["b"].inputs["model"] == Value("data", path="azureml:my-model:1", type="mlflow_model")
    assert graph.leaves["b"].inputs["data"] == Value("data", path="./data", type="uri_folder")


def test_data_given_to_an_integer_input() -> None:
    exc = fail(
        {
            "jobs": {
                "a": cmd(outputs={"o": None}),
                "b": {"component": TRAIN, "inputs": {"data": DATA, "epochs": "${{parent.jobs.a.outputs.o}}"}},
            }
        }
    )
    assert_problem(exc, "jobs.b.inputs.epochs", "declared integer", "bound to data")


def test_uri_folder_given_to_a_uri_file_input() -> None:
    comp = component(inputs={"f": {"type": "uri_file"}})
    exc = fail(
        {
            "jobs": {
                "a": cmd(outputs={"o": {"type": "uri_folder"}}),
                "b": {"component": comp, "inputs": {"f": "${{parent.jobs.a.outputs.o}}"}},
            }
        }
    )
    assert_problem(exc, "jobs.b.inputs.f", "a uri_folder cannot be bound to an input declared uri_file")
    exc = fail({"jobs": {"b": {"component": comp, "inputs": {"f": {"type": "uri_folder", "path": DATA}}}}})
    assert_problem(exc, "jobs.b.inputs.f", "uri_folder", "uri_file")


def test_a_control_output_feeds_a_later_step() -> None:
    comp = component(outputs={"n": {"type": "integer", "is_control": True}})
    takes = component(inputs={"k": {"type": "number"}, "s": {"type": "string", "optional": True}})
    graph = ok(
        {
            "jobs": {
                "a": {"component": comp},
                "b": cmd(inputs={"x": "${{parent.jobs.a.outputs.n}}"}),
                "c": {
                    "component": takes,
                    "inputs": {"k": "${{parent.jobs.a.outputs.n}}", "s": "${{parent.jobs.a.outputs.n}}"},
                },
            }
        }
    )
    for step in ("b", "c"):
        assert graph.leaves[step].depends_on == {"a"}
    assert graph.leaves["b"].inputs["x"] == Value("output", ref=OutputRef("a", "n"), type="integer")
    assert graph.leaves["c"].inputs["k"] == Value("output", ref=OutputRef("a", "n"), type="number")
    assert graph.leaves["c"].inputs["s"].is_control and not graph.leaves["c"].inputs["s"].is_data


def test_a_control_output_must_fit_the_input() -> None:
    comp = component(outputs={"n": {"type": "string"}})
    takes = component(inputs={"k": {"type": "integer"}, "d": {"type": "uri_folder", "optional": True}})
    exc = fail(
        {
            "jobs": {
                "a": {"component": comp},
                "b": {
                    "component": takes,
                    "inputs": {"k": "${{parent.jobs.a.outputs.n}}", "d": "${{parent.jobs.a.outputs.n}}"},
                },
            }
        }
    )
    assert_problem(
        exc, "jobs.b.inputs.k", "a string control output cannot be bound to an input declared integer", only=False
    )
    assert_problem(
        exc, "jobs.b.inputs.d", "declared uri_folder, but it is bound to a string control output", only=False
    )


@pytest.mark.parametrize("step_type", ["import", "automl", "data_transfer"])
def test_unsupported_step_types_are_named(step_type: str) -> None:
    exc = fail({"jobs": {"s": {"type": step_type, "command": "x"}, "ok": cmd()}})
    assert_problem(exc, "jobs.s.type", f"step type '{step_type}' is not supported", "command, pipeline")


def test_unsupported_binding_expression() -> None:
    exc = fail({"jobs": {"a": cmd(inputs={"x": "${{parent.jobs.b}}"}), "b": cmd()}})
    assert_problem(exc, "jobs.a.inputs.x", "unsupported binding")


def test_two_step_outputs_bound_to_one_pipeline_output() -> None:
    exc = fail(
        {
            "outputs": {"o": None},
            "jobs": {
                "a": cmd(outputs={"x": "${{parent.outputs.o}}"}),
                "b": cmd(outputs={"y": "${{parent.outputs.o}}"}),
            },
        }
    )
    assert_problem(exc, "jobs.b.outputs.y", "pipeline output 'o' is already bound")


def test_pipeline_inputs_cannot_bind() -> None:
    exc = fail({"inputs": {"x": "${{parent.inputs.y}}"}, "jobs": {"a": cmd()}})
    assert_problem(exc, "inputs.x", "cannot use ${{…}} bindings")


@pytest.mark.parametrize("jobs", [{}, None])
def test_pipeline_needs_steps(jobs: Any) -> None:
    exc = fail({"type": "pipeline", "jobs": jobs})
    assert_problem(exc, "jobs", "at least one step")


def test_several_problems_are_reported_together() -> None:
    exc = fail(
        {
            "inputs": {"lr": 0.1},
            "outputs": {"final": None},
            "jobs": {
                "a": {"component": TRAIN, "inputs": {"data": "${{parent.inputs.nope}}", "epochs": "x"}},
                "b": {"type": "sweep", "trial": {}},
                "c": cmd(
                    inputs={"m": "${{parent.jobs.a.outputs.missing}}"}, outputs={"o": "${{parent.outputs.other}}"}
                ),
                "d": {"component": "./local.yml"},
            },
        }
    )
    fields = [e["field"] for e in errors(exc)]
    assert sorted(fields) == sorted(
        [
            "jobs.a.inputs.data",
            "jobs.a.inputs.epochs",
            "jobs.b.trial",
            "jobs.c.inputs.m",
            "jobs.c.outputs.o",
            "jobs.d.component",
        ]
    )
    assert "(and 5 more problems)" in str(exc)
    assert str(exc).startswith("pipeline job: jobs.")
    for entry in errors(exc):
        assert entry["message"].startswith(entry["field"] + ": ")


# -- warnings -------------------------------------------------------------------------------


def test_input_not_declared_by_the_component_is_ignored_with_a_warning() -> None:
    graph = ok({"jobs": {"a": {"component": SCORE, "inputs": {"model": DATA, "data": DATA, "extra": 1}}}})
    assert "extra" not in graph.leaves["a"].inputs
    assert len(graph.warnings) == 1
    assert graph.warnings[0].startswith("jobs.a.inputs.extra: ")
    assert "does not declare input 'extra'" in graph.warnings[0]


def test_uri_file_given_to_a_uri_folder_input_warns() -> None:
    graph = ok(
        {
            "jobs": {
                "a": {
                    "component": SCORE,
                    "inputs": {"model": DATA, "data": {"type": "uri_file", "path": DATA + "a.csv"}},
                }
            }
        }
    )
    assert graph.leaves["a"].inputs["data"] == Value("data", path=DATA + "a.csv", type="uri_file")
    assert graph.warnings == [
        "jobs.a.inputs.data: a uri_file is bound to an input declared uri_folder (accepted, as Azure ML does)"
    ]


def test_uri_folder_given_to_an_mltable_input_warns() -> None:
    comp = component(inputs={"t": {"type": "mltable"}})
    graph = ok(
        {
            "jobs": {
                "a": cmd(outputs={"o": None}),
                "b": {"component": comp, "inputs": {"t": "${{parent.jobs.a.outputs.o}}"}},
            }
        }
    )
    assert graph.leaves["b"].inputs["t"].ref == OutputRef("a", "o")
    assert len(graph.warnings) == 1 and graph.warnings[0].startswith("jobs.b.inputs.t: a uri_folder")
    assert "mltable" in graph.warnings[0]


def test_unknown_settings_key_warns() -> None:
    graph = ok({"settings": {"default_datestore": "x", "continue_on_step_failure": False}, "jobs": {"a": cmd()}})
    assert graph.warnings == ["settings.default_datestore: unknown setting, ignored"]
    assert graph.settings == {"default_datestore": "x", "continue_on_step_failure": False}


def test_services_on_the_job_and_on_a_step_warn() -> None:
    services = {"jupyter": {"type": "jupyter_lab"}}
    graph = ok({"services": services, "jobs": {"a": cmd(services=services), "b": cmd()}})
    assert len(graph.warnings) == 2
    assert graph.warnings[0].startswith("services:")
    assert graph.warnings[1].startswith("jobs.a.services:")


# -- the azureml-examples pipelines -----------------------------------------------------------

ROOT = os.environ.get("SHOAL_AZUREML_EXAMPLES")
EXAMPLES = [
    "basics/hello-pipeline*.yml",
    *(f"pipelines-with-components/basics/{d}/pipeline.yml" for d in ("1a*", "2a*", "2b*", "3a*", "3b*", "4a*", "4b*",
                                                                     "4c*", "4d*", "5a*", "5b*", "5c*")),
    "pipelines-with-components/nyc_taxi_data_regression/pipeline.yml",
    "pipelines-with-components/pipeline_with_pipeline_component/*/pipeline.yml",
]  # fmt: skip
# 1b_e2e_registered_components uses components registered in a workspace (azureml:my_train@latest).


def _example_files() -> list:
    if not ROOT:
        return [pytest.param(None, marks=pytest.mark.skip(reason="SHOAL_AZUREML_EXAMPLES is not set"))]
    jobs = Path(ROOT) / "cli" / "jobs"
    files = sorted({p for pattern in EXAMPLES for p in jobs.glob(pattern) if p.is_file()})
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no pipeline YAML files under {jobs}"))]
    return [pytest.param(p, id=p.relative_to(jobs).as_posix()) for p in files]


def _inline_components(spec: dict[str, Any]) -> dict[str, Any]:
    """Replace each local component file (made absolute by the loader) with its spec, recursively."""
    from shoal.entities import load_component

    for step in (spec.get("jobs") or {}).values():
        ref = step.get("component") if isinstance(step, dict) else None
        if isinstance(ref, str) and not ref.startswith("azureml:") and "://" not in ref:
            path = ref.removeprefix("file:")
            assert Path(path).is_absolute() and Path(path).is_file(), ref
            step["component"] = _inline_components(load_component(path).to_dict())
    return spec


@pytest.mark.parametrize("path", _example_files())
def test_example_pipeline_expands(path: Path) -> None:
    from shoal.entities import load_job

    job = load_job(path)
    assert job.type == "pipeline"
    spec = _inline_components(job.to_dict())
    registry = Registry()
    graph = expand(spec, registry)
    assert registry.calls == []
    assert graph.leaves
    order = graph.order()
    assert sorted(order) == sorted(graph.leaves)
    for position, step in enumerate(order):
        assert all(order.index(dep) < position for dep in graph.leaves[step].depends_on)
    for name in graph.root.outputs:
        assert name in graph.root.bound_outputs, (name, graph.warnings)


def test_the_older_binding_form_without_parent_is_accepted():
    from shoal.entities.pipeline_graph import expand

    graph = expand(
        {
            "inputs": {"n": 3},
            "jobs": {
                "b": {
                    "command": "echo ${{inputs.n}} ${{inputs.x}}",
                    "environment": "azureml:e:1",
                    "inputs": {"n": "${{inputs.n}}", "x": "${{jobs.a.outputs.o}}"},
                },
                "a": {"command": "echo", "environment": "azureml:e:1", "outputs": {"o": None}},
            },
        },
        lambda ref, where: {},
    )
    assert graph.leaves["b"].inputs["n"].literal == 3
    assert graph.leaves["b"].depends_on == {"a"}


def test_a_sweep_step_is_a_leaf_whose_trial_ports_minus_the_search_space_are_bound():
    from shoal.entities.pipeline_graph import expand

    trial = {
        "type": "command",
        "inputs": {"data": {"type": "uri_folder"}, "lr": {"type": "number"}, "epochs": {"type": "integer"}},
        "outputs": {"model": {"type": "uri_folder"}},
        "command": "python t.py ${{inputs.data}} ${{inputs.lr}} ${{inputs.epochs}} ${{outputs.model}}",
        "environment": "azureml:e:1",
    }
    graph = expand(
        {
            "jobs": {
                "prep": {"command": "echo", "environment": "azureml:e:1", "outputs": {"o": None}},
                "tune": {
                    "type": "sweep",
                    "trial": trial,
                    "inputs": {"data": "${{parent.jobs.prep.outputs.o}}", "epochs": 3},
                    "search_space": {"lr": {"type": "uniform", "min_value": 0.01, "max_value": 0.1}},
                    "objective": {"goal": "maximize", "primary_metric": "acc"},
                    "sampling_algorithm": "random",
                },
                "use": {
                    "command": "echo ${{inputs.m}}",
                    "environment": "azureml:e:1",
                    "inputs": {"m": "${{parent.jobs.tune.outputs.model}}"},
                },
            }
        },
        lambda ref, where: {},
    )
    tune = graph.leaves["tune"]
    assert tune.kind == "sweep" and tune.depends_on == {"prep"}
    assert set(tune.inputs) == {"data", "epochs"}  # lr is sampled, not bound
    assert tune.job["search_space"]["lr"]["type"] == "uniform" and tune.job["trial"]["command"] == trial["command"]
    assert graph.leaves["use"].depends_on == {"tune"}
    assert graph.order().index("tune") < graph.order().index("use")


def test_spark_steps_need_an_entry_and_automl_steps_say_why_they_do_not_run() -> None:
    exc = fail({"jobs": {"s": {"type": "spark", "command": "x"}}})
    assert_problem(exc, "jobs.s.entry", "needs entry.file")
    exc = fail({"jobs": {"s": {"type": "automl", "command": "x"}}})
    assert_problem(exc, "jobs.s.type", "Shoal does not run AutoML")


PARALLEL = {
    "type": "parallel",
    "name": "score",
    "inputs": {"data": {"type": "mltable"}, "model": {"type": "uri_folder"}},
    "outputs": {"rows": {"type": "uri_folder"}},
    "input_data": "${{inputs.data}}",
    "mini_batch_size": "10",
    "retry_settings": {"max_retries": 2},
    "mini_batch_error_threshold": 1,
    "task": {
        "type": "run_function",
        "code": "azureml:code:1",
        "entry_script": "score.py",
        "program_arguments": "--model ${{inputs.model}}",
        "append_row_to": "${{outputs.rows}}",
        "environment": "azureml:env:1",
    },
}


def test_a_parallel_step_is_a_command_step_running_the_batch_driver() -> None:
    from shoal.entities.pipeline_graph.parallel import DRIVER_INPUT, DRIVER_PLACEHOLDER

    step = {"component": PARALLEL, "inputs": {"data": {"type": "mltable", "path": DATA, "mode": "direct"}}}
    step["inputs"]["model"] = {"type": "uri_folder", "path": DATA}
    graph = ok({"jobs": {"p": step}})
    leaf = graph.leaves["p"]
    command = leaf.job["command"]
    assert command.startswith(f"python ${{{{inputs.{DRIVER_INPUT}}}}} --script score.py --input ${{{{inputs.data}}}}")
    for part in ("--output ${{outputs.rows}}", "--output-action append_row", "--mini-batch-size 10"):
        assert part in command
    assert "--max-retries 2" in command and "--mini-batch-error-threshold 1" in command
    assert command.endswith("-- --model ${{inputs.model}}")
    assert leaf.job["code"] == "azureml:code:1" and leaf.job["environment"] == "azureml:env:1"
    assert leaf.inputs[DRIVER_INPUT] == Value("data", path=DRIVER_PLACEHOLDER, type="uri_file")
    assert leaf.inputs["data"].mode == "ro_mount"  # the driver reads files: direct is downloaded
    assert any("mode direct is read as ro_mount" in w for w in graph.warnings)


def test_a_parallel_step_needs_its_input_data_and_entry_script() -> None:
    broken = copy.deepcopy(PARALLEL)
    broken["input_data"] = "${{inputs.nope}}"
    exc = fail({"jobs": {"p": {"component": broken}}})
    assert_problem(exc, "jobs.p.component.input_data", "a declared input")
    broken = copy.deepcopy(PARALLEL)
    del broken["task"]["entry_script"]
    exc = fail({"jobs": {"p": {"component": broken}}})
    assert_problem(exc, "jobs.p.component.task.entry_script", "init() and run(mini_batch)")
