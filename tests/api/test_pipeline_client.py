"""The client side of pipeline jobs against the real app: local component files inlined, code and
data uploaded, missing files named before anything is sent; the server takes what comes out."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from shoal import Input, dsl, load_component, load_job
from shoal.errors import NotFoundError

CODE_REF = re.compile(r"^azureml:([0-9a-f]{64}):1$")
UPLOADED = "azureml://datastores/workspaceblobstore/paths/LocalUpload/"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def train_component(folder: Path) -> Path:
    write(folder / "src" / "train.py", "print('train')\n")
    write(folder.parent / "shared" / "util.py", "X = 1\n")
    return write(
        folder / "train.yml",
        """\
        name: train_model
        version: "1"
        type: command
        inputs:
          training_data: {type: uri_folder}
          epochs: {type: integer, default: 1}
        outputs:
          model_output: {type: uri_folder}
        code: ./src
        additional_includes: [../shared]
        environment: {image: "python:3.11"}
        command: python train.py ${{inputs.training_data}} ${{inputs.epochs}} ${{outputs.model_output}}
        """,
    )


def pipeline_file(root: Path) -> Path:
    train_component(root / "comp")
    write(root / "prep_src" / "prep.py", "print('prep')\n")
    write(root / "data" / "rows.txt", "1 2 3\n")
    write(root / "lookup.csv", "a,b\n")
    return write(
        root / "pipeline.yml",
        """\
        type: pipeline
        display_name: prep_and_train
        settings: {default_compute: local}
        inputs:
          raw: {type: uri_folder, path: ./data}
        outputs:
          final: {type: uri_folder}
        jobs:
          prep:
            type: command
            code: ./prep_src
            environment: {image: "python:3.11"}
            command: python prep.py ${{inputs.raw}} ${{inputs.lookup}} ${{outputs.clean}}
            inputs:
              raw: ${{parent.inputs.raw}}
              lookup: {type: uri_file, path: ./lookup.csv}
            outputs:
              clean:
          train_job:
            type: command
            component: ./comp/train.yml
            inputs:
              training_data: ${{parent.jobs.prep.outputs.clean}}
            outputs:
              model_output: ${{parent.outputs.final}}
        """,
    )


def code_asset(api, ref: str) -> Any:
    match = CODE_REF.match(ref)
    assert match, ref
    return api.ml._code.get(match.group(1), version="1")


def upload_root(api) -> Path:
    return api.settings.home / "artifacts" / "workspaces" / "default" / "datastores" / "workspaceblobstore"


def children(api, name: str) -> dict[str, dict[str, Any]]:
    return {j.display_name: j for j in api.ml.jobs.list(parent_job_name=name)}


def test_a_pipeline_file_has_its_component_inlined_and_its_files_uploaded(sqlite_api, tmp_path: Path) -> None:
    api = sqlite_api
    job = load_job(pipeline_file(tmp_path))
    body = api.ml.jobs._upload_local_paths(job.to_dict())
    assert body["inputs"]["raw"]["path"].startswith(UPLOADED)
    prep = body["jobs"]["prep"]
    assert code_asset(api, prep["code"]).path.startswith(UPLOADED)
    assert prep["inputs"]["lookup"]["path"].startswith(UPLOADED) and prep["inputs"]["lookup"]["path"].endswith(
        "/lookup.csv"
    )
    component = body["jobs"]["train_job"]["component"]
    assert component["name"] == "train_model" and component["command"].startswith("python train.py")
    # Uploaded as `component create` does: the includes merged into the snapshot, kept by name.
    assert component["additional_includes"] == ["shared"]
    snapshot = code_asset(api, component["code"]).path
    stored = upload_root(api) / snapshot.split("/paths/", 1)[1]
    assert (stored / "train.py").is_file() and (stored / "shared" / "util.py").is_file()
    assert job.to_dict()["jobs"]["train_job"]["component"] == (tmp_path / "comp" / "train.yml").as_posix()  # untouched

    # The server takes it: every step becomes a child job.
    created = api.ml.jobs.create_or_update(job)
    assert created.type == "pipeline"
    steps = children(api, created.name)
    assert set(steps) == {"prep", "train_job"}
    assert steps["train_job"].properties["shoal.step"] == "train_job"
    assert steps["train_job"].code == component["code"]


def test_a_pipeline_component_file_is_inlined_recursively(sqlite_api, tmp_path: Path) -> None:
    api = sqlite_api
    train_component(tmp_path / "sub")
    write(tmp_path / "sub" / "data" / "x.txt", "x\n")
    write(
        tmp_path / "sub" / "sub.yml",
        """\
        type: pipeline
        name: sub_pipeline
        inputs:
          epochs: {type: integer, default: 2}
        outputs:
          model: {type: uri_folder}
        jobs:
          train:
            type: command
            component: file:train.yml
            inputs:
              training_data: {type: uri_folder, path: ./data}
              epochs: ${{parent.inputs.epochs}}
            outputs:
              model_output: ${{parent.outputs.model}}
        """,
    )
    path = write(
        tmp_path / "pipeline.yml",
        """\
        type: pipeline
        outputs:
          model: {type: uri_folder}
        jobs:
          nested:
            type: pipeline
            component: ./sub/sub.yml
            inputs: {epochs: 3}
            outputs: {model: "${{parent.outputs.model}}"}
        """,
    )
    job = load_job(path)
    body = api.ml.jobs._upload_local_paths(job.to_dict())
    nested = body["jobs"]["nested"]["component"]
    assert nested["type"] == "pipeline" and nested["name"] == "sub_pipeline"
    train = nested["jobs"]["train"]
    assert train["component"]["name"] == "train_model"
    assert code_asset(api, train["component"]["code"]).path.startswith(UPLOADED)
    # A data path in a pipeline component is relative to the component's file.
    assert train["inputs"]["training_data"]["path"].startswith(UPLOADED)

    created = api.ml.jobs.create_or_update(job)
    nested_job = children(api, created.name)["nested"]
    assert nested_job.type == "pipeline"
    assert set(children(api, nested_job.name)) == {"train"}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda root: (root / "comp" / "train.yml").unlink(), "jobs.train_job.component"),
        (lambda root: (root / "lookup.csv").unlink(), "jobs.prep.inputs.lookup"),
        (lambda root: (root / "prep_src" / "prep.py").unlink() or (root / "prep_src").rmdir(), "jobs.prep.code"),
        (
            lambda root: (root / "comp" / "src" / "train.py").unlink() or (root / "comp" / "src").rmdir(),
            "jobs.train_job.component.code",
        ),
    ],
)
def test_a_missing_local_file_names_its_step_before_anything_is_uploaded(
    sqlite_api, tmp_path: Path, edit: Any, field: str
) -> None:
    api = sqlite_api
    job = load_job(pipeline_file(tmp_path))
    edit(tmp_path)
    with pytest.raises(NotFoundError, match=re.escape(field)):
        api.ml.jobs.create_or_update(job)
    # The pipeline's own input (./data) is fine, yet nothing was uploaded.
    assert not (upload_root(api) / "LocalUpload").exists()
    assert list(api.ml.jobs.list()) == []


def test_a_missing_file_deep_in_a_pipeline_component_names_the_path(sqlite_api, tmp_path: Path) -> None:
    write(
        tmp_path / "sub.yml",
        """\
        type: pipeline
        jobs:
          inner:
            type: command
            component: ./gone.yml
        """,
    )
    job = {"type": "pipeline", "jobs": {"outer": {"type": "pipeline", "component": str(tmp_path / "sub.yml")}}}
    with pytest.raises(NotFoundError, match=re.escape("jobs.outer.component.jobs.inner.component")):
        sqlite_api.ml.jobs._upload_local_paths(job)


def test_a_dsl_pipeline_is_submitted_with_its_files_uploaded(sqlite_api, tmp_path: Path, monkeypatch) -> None:
    api = sqlite_api
    train = load_component(train_component(tmp_path / "comp"))
    write(tmp_path / "data" / "rows.txt", "1\n")
    monkeypatch.chdir(tmp_path)

    @dsl.pipeline(default_compute="local")
    def flow(data: Input, epochs: int = 2):
        first = train(training_data=data, epochs=epochs)
        second = train(training_data=first.outputs.model_output)
        return {"model": second.outputs.model_output}

    job = flow(Input(path="./data"))
    body = api.ml.jobs._upload_local_paths(job.to_dict())
    assert body["inputs"]["data"]["path"].startswith(UPLOADED)
    first, second = body["jobs"]["first"]["component"], body["jobs"]["second"]["component"]
    assert CODE_REF.match(first["code"]) and first["code"] == second["code"]  # one snapshot for both

    created = api.ml.jobs.create_or_update(job)
    assert created.display_name == "flow" and created.experiment_name == tmp_path.name
    steps = children(api, created.name)
    assert set(steps) == {"first", "second"}
    assert steps["second"].inputs["training_data"].path == f"azureml://jobs/{steps['first'].name}/outputs/model_output"


def test_a_step_or_an_uncalled_pipeline_is_not_a_job(sqlite_api, tmp_path: Path) -> None:
    train = load_component(train_component(tmp_path))

    @dsl.pipeline()
    def flow(data: Input):
        train(training_data=data)

    with pytest.raises(Exception, match="call it"):
        sqlite_api.ml.jobs.create_or_update(flow)
    with pytest.raises(Exception, match="pipeline step"):
        sqlite_api.ml.jobs.create_or_update(train(training_data=Input(path="azureml:d:1")))
