"""What azure-ai-ml notebooks reach for beyond jobs (issue #16), without a server: the mltable
reader, ``Input(folder=…)``, control outputs on ``Output``, an inline command swept in a
pipeline, and the clear errors for what Shoal does not run (AutoML, data imports)."""

from __future__ import annotations

import pytest

from shoal import Input, Output, Uniform, UnsupportedError, command, dsl, mltable
from shoal.errors import SpecError
from shoal.parallel import RunFunction, parallel_run_function


def test_mltable_reads_a_local_table(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a_validated.csv").write_text("Id,Name,Age\n1,x,3\n2,y,\n")
    (tmp_path / "t" / "b_validated.csv").write_text("Id,Name,Age\n3,z,5\n")
    (tmp_path / "t" / "other.csv").write_text("ignored\n")
    (tmp_path / "t" / "MLTable").write_text(
        "paths:\n  - pattern: ./*validated.csv\ntransformations:\n  - read_delimited:\n      delimiter: ','\n"
        "      header: all_files_same_headers\n  - drop_columns: [Name]\n  - take: 2\n"
    )
    frame = mltable.load(tmp_path / "t").to_pandas_dataframe()
    assert list(frame.columns) == ["Id", "Age"] and frame["Id"].tolist() == [1, 2]


def test_mltable_refuses_what_it_does_not_read(tmp_path):
    (tmp_path / "MLTable").write_text("paths:\n  - file: ./a.csv\ntransformations:\n  - filter: col('a') > 1\n")
    with pytest.raises(UnsupportedError, match="transformation 'filter' is not supported"):
        mltable.load(tmp_path)
    with pytest.raises(UnsupportedError, match="reads local folders"):
        mltable.load("azureml://datastores/workspaceblobstore/paths/t/")


def test_input_folder_is_read_as_the_path():
    with pytest.warns(UserWarning, match="Input\\(folder=…\\) is read as"):
        value = Input(folder="azureml://datastores/workspaceblobstore/paths/")
    assert value.type == "uri_folder" and value.path == "azureml://datastores/workspaceblobstore/paths/"


def test_control_outputs_are_primitive_only():
    assert Output(type="boolean", is_control=True).is_control is True
    with pytest.raises(SpecError, match="only a primitive output"):
        Output(type="uri_folder", is_control=True)


def test_automl_and_data_imports_say_shoal_does_not_run_them():
    with pytest.raises(UnsupportedError, match="Shoal does not run AutoML"):
        from shoal.automl import classification  # noqa: F401
    from shoal.data_transfer import Database
    from shoal.entities import DataImport

    data_import = DataImport(name="sf", source=Database(connection="azureml:sf", query="select 1"), path="x")
    assert data_import.source.type == "database"


def test_an_inline_command_swept_in_a_pipeline_trials_its_definition():
    train = command(
        command="python t.py ${{inputs.lr}} ${{inputs.data}}",
        inputs={"lr": 0.1, "data": Input(type="uri_folder", path="azureml://datastores/ds/paths/d/")},
        outputs={"model": Output(type="mlflow_model")},
        environment="azureml:env:1",
    )

    @dsl.pipeline()
    def tune():
        step = train(lr=Uniform(0.1, 0.2))
        swept = step.sweep(primary_metric="acc", goal="maximize", max_total_trials=3)
        swept.set_limits(max_concurrent_trials=1)

    job = tune().to_dict()["jobs"]["swept"]
    assert job["type"] == "sweep" and job["search_space"]["lr"]["type"] == "uniform"
    assert job["trial"] == {
        "type": "command",
        "command": "python t.py ${{inputs.lr}} ${{inputs.data}}",
        "environment": "azureml:env:1",
        "inputs": {"data": {"type": "uri_folder"}},
        "outputs": {"model": {"type": "mlflow_model"}},
    }


def test_parallel_run_function_makes_a_parallel_component(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    component = parallel_run_function(
        name="score",
        inputs={"data": Input(type="mltable")},
        outputs={"rows": Output(type="uri_folder")},
        input_data="${{inputs.data}}",
        mini_batch_size=2,
        instance_count=2,
        task=RunFunction(
            code="./src", entry_script="s.py", append_row_to="${{outputs.rows}}", environment="azureml:e:1"
        ),
    )
    body = component.to_dict()
    assert body["type"] == "parallel" and body["mini_batch_size"] == "2"
    assert body["task"]["code"] == (tmp_path / "src").as_posix() and body["resources"] == {"instance_count": 2}


def test_an_automl_step_is_refused_before_any_local_path_is_looked_at(tmp_path):
    from shoal.client.pipelines import LocalPaths

    body = {
        "type": "pipeline",
        "inputs": {"data": {"type": "uri_folder", "path": str(tmp_path / "missing.txt")}},
        "jobs": {"inner": {"type": "pipeline", "component": {"type": "pipeline", "jobs": {"k": {"type": "automl"}}}}},
    }
    with pytest.raises(SpecError, match="jobs.inner.component.jobs.k.type: step type 'automl'.*does not run AutoML"):
        LocalPaths(None, "default").inline(body)  # type: ignore[arg-type]
