"""The ``${{…}}`` grammar, ``$[[…]]`` optional fragments, output-path placeholders and input binding."""

from __future__ import annotations

import pytest

from shoal.entities import Input, load_component
from shoal.entities.expressions import (
    bind_inputs,
    binding_of,
    check_command,
    find_references,
    format_literal,
    resolve_command,
    resolve_output_path,
)
from shoal.entities.ports import DataInput, ParameterInput
from shoal.errors import SpecError

from .conftest import YAML_DIR


def test_find_references() -> None:
    text = (
        "python t.py --lr ${{inputs.lr}} --lr2 ${{ inputs.lr }} --out ${{outputs.model}} "
        "--p ${{search_space.x}} ${{parent.inputs.x}} ${{name}} ${{output_name}} ${{default_datastore}}"
    )
    assert find_references(text) == [
        "inputs.lr",
        "outputs.model",
        "search_space.x",
        "parent.inputs.x",
        "name",
        "output_name",
        "default_datastore",
    ]
    assert find_references("no expressions, ${not one}, {{inputs.x}}") == []
    assert find_references(None) == []  # type: ignore[arg-type]
    assert find_references("${{inputs.a}}${{inputs.b}}") == ["inputs.a", "inputs.b"]


def test_binding_of() -> None:
    assert binding_of("${{parent.jobs.prep.outputs.clean}}") == "parent.jobs.prep.outputs.clean"
    assert binding_of(" ${{ parent.inputs.x }} ") == "parent.inputs.x"
    assert binding_of("prefix ${{parent.inputs.x}}") is None
    assert binding_of(3) is None


def test_check_command_accepts_declared_names() -> None:
    check_command("python t.py ${{inputs.a}} ${{outputs.b}}", {"a": 1}, {"b": None})
    check_command("echo no references", [], [])
    check_command("python t.py $[[--a ${{inputs.a}}]]", ["a"], [], optional_inputs=["a"])
    check_command("t ${{inputs.a}} ${{search_space.lr}}", ["a"], [], search_space=["lr"])
    # the other spelling: `given` lists the inputs that have a value
    check_command("t $[[${{inputs.a}}]] ${{inputs.b}}", inputs=["a", "b"], outputs=[], given=["b"])


@pytest.mark.parametrize(
    ("command", "kwargs", "fragment"),
    [
        ("t ${{inputs.nope}}", {}, "unknown input 'nope' in ${{inputs.nope}}; declared inputs: a"),
        ("t ${{outputs.nope}}", {}, "unknown output 'nope' in ${{outputs.nope}}; declared outputs: b"),
        ("t ${{search_space.lr}}", {}, "unsupported expression ${{search_space.lr}}"),
        ("t ${{search_space.mu}}", {"search_space": ["lr"]}, "unknown search_space parameter 'mu'"),
        ("t ${{parent.inputs.a}}", {}, "unsupported expression ${{parent.inputs.a}}"),
        ("t ${{inputs.a.path}}", {}, "unsupported expression ${{inputs.a.path}}"),
        ("t ${{inputs}}", {}, "unsupported expression ${{inputs}}"),
        ("t ${{name}}", {}, "unsupported expression ${{name}}"),
        ("t ${{inputs.a}}", {"optional_inputs": ["a"]}, "optional input 'a' is used outside a $[[ … ]] fragment"),
        ("t ${{inputs.a}}", {"given": []}, "optional input 'a'"),
        ("t $[[--a ${{inputs.a}}", {}, "not closed"),
        ("t $[[x $[[--a ${{inputs.a}}]] y]]", {}, "cannot be nested"),
    ],
)
def test_check_command_errors_name_the_reference(command: str, kwargs: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        check_command(command, ["a"], ["b"], where="trial.command", **kwargs)
    assert str(info.value).startswith("trial.command: ")
    assert fragment in str(info.value)
    assert info.value.details == {"field": "trial.command"}


def test_format_literal() -> None:
    assert [format_literal(v) for v in (True, False, 3, 0.01, 1e-05, "x y", -2)] == [
        "True",
        "False",
        "3",
        "0.01",
        "1e-05",
        "x y",
        "-2",
    ]


def test_resolve_command_substitutes_and_drops_fragments() -> None:
    command = (
        "python train.py --data ${{inputs.data}} $[[--epochs ${{inputs.epochs}}]] "
        "$[[--lr ${{ inputs.lr }} --warm ${{inputs.warm}}]] --flag ${{inputs.flag}} --out ${{outputs.model}}"
    )
    values = {"data": "/mnt/d", "epochs": None, "lr": 0.1, "warm": True, "flag": False}
    out = resolve_command(command, values, {"model": "/mnt/m"})
    assert out == "python train.py --data /mnt/d  --lr 0.1 --warm True --flag False --out /mnt/m"
    # one unset input drops the whole fragment
    out = resolve_command(command, {**values, "epochs": 2, "warm": None}, {"model": "/m"})
    assert out == "python train.py --data /mnt/d --epochs 2  --flag False --out /m"
    # a missing key is unset too
    assert resolve_command("a $[[b ${{inputs.x}}]]c", {}, {}) == "a c"
    # a fragment with only outputs keeps its body
    assert resolve_command("$[[--o ${{outputs.o}}]]", {}, {"o": "/o"}) == "--o /o"
    # multi-line fragments
    assert resolve_command("a $[[\n--x ${{inputs.x}}\n]] b", {"x": "1"}, {}) == "a \n--x 1\n b"


def test_resolve_command_does_not_expand_twice() -> None:
    out = resolve_command("echo ${{inputs.a}} ${{inputs.b}}", {"a": "${{inputs.b}}", "b": "x"}, {})
    assert out == "echo ${{inputs.b}} x"


def test_resolve_command_search_space() -> None:
    out = resolve_command(
        "t --lr ${{search_space.lr}} --k ${{search_space.k}}", {}, {}, search_space={"lr": 0.5, "k": "rbf"}
    )
    assert out == "t --lr 0.5 --k rbf"


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        ("t ${{inputs.x}}", "input 'x' has no value"),
        ("t ${{outputs.y}}", "no output 'y'"),
        ("t ${{parent.inputs.x}}", "unsupported expression"),
        ("t ${{search_space.lr}}", "unsupported expression"),
    ],
)
def test_resolve_command_errors(command: str, fragment: str) -> None:
    with pytest.raises(SpecError, match="cannot resolve|has no value") as info:
        resolve_command(command, {"x": None}, {})
    assert fragment in str(info.value)


def test_resolve_output_path() -> None:
    template = "azureml://datastores/${{default_datastore}}/paths/${{name}}/${{ output_name }}/"
    out = resolve_output_path(template, name="brave_otter_1", output_name="model", default_datastore="azureml:ds1")
    assert out == "azureml://datastores/ds1/paths/brave_otter_1/model/"
    assert resolve_output_path("./plain", name="j", output_name="o", default_datastore="d") == "./plain"
    with pytest.raises(SpecError, match=r"cannot resolve \$\{\{inputs.x\}\} in output path"):
        resolve_output_path(
            "azureml://datastores/d/paths/${{inputs.x}}", name="j", output_name="o", default_datastore="d"
        )


def test_bind_inputs_without_ports_keeps_what_is_given() -> None:
    given = {"lr": 0.1, "data": Input(path="azureml:d:1"), "opt": None}
    assert bind_inputs(None, given) == given


def test_bind_inputs_applies_defaults_and_reports_missing() -> None:
    component = load_component(YAML_DIR / "component/train.yml")
    bound = bind_inputs(component.inputs, {"training_data": Input(path="azureml:iris:1"), "max_epochs": 5})
    assert bound == {
        "training_data": Input(path="azureml:iris:1"),
        "max_epochs": 5,
        "learning_rate": 0.01,
        "schedule": "time-based",
        "early_stop": False,
    }
    bound = bind_inputs(component.inputs, {"training_data": "${{parent.inputs.raw}}"})
    assert bound["max_epochs"] is None  # optional, unset: its $[[ ]] fragment is dropped
    with pytest.raises(SpecError) as info:
        bind_inputs(component.inputs, {"max_epochs": 5}, where="jobs.train.inputs")
    assert str(info.value) == (
        "jobs.train.inputs: missing required input 'training_data' (not optional and without a default)"
    )
    assert info.value.details["missing"] == ["training_data"]
    with pytest.raises(SpecError, match=r"unknown inputs 'a', 'b'; declared inputs: early_stop, learning_rate"):
        bind_inputs(component.inputs, {"training_data": "x", "a": 1, "b": 2})


def test_bind_inputs_data_port_default_becomes_an_input() -> None:
    ports = {
        "data": DataInput(type="uri_file", default="azureml:iris:1", mode="download"),
        "n": ParameterInput(type="integer", default=3),
    }
    bound = bind_inputs(ports, {})
    assert bound == {"data": Input(type="uri_file", path="azureml:iris:1", mode="download"), "n": 3}


def test_loaded_component_command_checks_against_its_ports() -> None:
    component = load_component(YAML_DIR / "component/train.yml")
    optional = [n for n, p in component.inputs.items() if p.optional and p.default is None]
    check_command(component.command, component.inputs, component.outputs, optional_inputs=optional)
    bound = bind_inputs(component.inputs, {"training_data": "/mnt/data"})
    out = resolve_command(component.command, bound, {"model_output": "/mnt/model"})
    assert "--max_epochs" not in out and "--learning_rate 0.01" in out and "--model_output /mnt/model" in out
