"""scripts/convert_notebook.py makes only the mechanical edits of issue #16 to a notebook."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.convert_notebook import DATA_DIR, convert_notebook, convert_source, convert_sources


def notebook(tmp_path: Path, *cells: str) -> Path:
    path = tmp_path / "example.ipynb"
    body = {"cells": [{"cell_type": "code", "source": c.splitlines(keepends=True)} for c in cells]}
    body["cells"].insert(1, {"cell_type": "markdown", "source": ["# not code\n"]})
    path.write_text(json.dumps(body))
    return path


def test_imports_credentials_client_magics_and_web_data(tmp_path, monkeypatch):
    path = notebook(
        tmp_path,
        "%pip install azure-ai-ml\n!ls\nfrom azure.ai.ml import MLClient, Input\n"
        "from azure.ai.ml.entities import Model\nfrom azure.identity import DefaultAzureCredential, "
        "InteractiveBrowserCredential\nimport mldesigner\n",
        "try:\n    credential = DefaultAzureCredential()\n    credential.get_token('https://management.azure.com/.default')\n"
        "except Exception as ex:\n    credential = InteractiveBrowserCredential()\n",
        "ml_client = MLClient(credential, subscription_id='<SUB>', resource_group_name='rg', workspace_name='ws')\n"
        "other = MLClient.from_config(credential=credential)\n",
        "iris = Input(type='uri_file', path='https://azuremlexamples.blob.core.windows.net/datasets/iris.csv')\n",
        "%%bash\necho a whole shell cell\n",
        "folder = 'env'\nworkspace = '<AML_WORKSPACE_NAME>'\n",
        "%%writefile {folder}/conda.yaml\nname: x\n",
        "%%writefile src/component.py\nfrom mldesigner import command_component\n",
    )
    script = convert_notebook(path)
    compile(script, "converted.py", "exec")  # valid Python
    assert "azure" not in script.replace("azuremlexamples", "")
    assert "from shoal import MLClient, Input" in script
    assert "from shoal.entities import Model" in script
    assert "import shoal.mldesigner" in script
    assert "credential = None" in script and "get_token" not in script
    assert "ml_client = MLClient()" in script and "other = MLClient()" in script
    assert repr(str(DATA_DIR / "iris.csv")) in script and (DATA_DIR / "iris.csv").is_file()
    assert "%" not in script and "!ls" not in script and "whole shell cell" not in script
    assert "from shoal.mldesigner import command_component" in script  # a component file it writes
    assert script.count("# -- cell") == 7  # the code cells with something left, numbered as in the notebook
    assert "workspace = 'default'" in script
    run = tmp_path / "run"
    (run / "env").mkdir(parents=True)
    (run / "src").mkdir()
    monkeypatch.chdir(run)
    exec("folder = 'env'\n" + script.split("# -- cell 8")[1], {})  # the converted %%writefile cell
    assert (run / "env" / "conda.yaml").read_text() == "name: x\n"


def test_sources_get_only_their_import_lines_swapped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "components.py").write_text(
        "# mldesigner contains command_component\nfrom mldesigner import command_component, Input\n"
        "from azure.ai.ml.entities import Model  # a comment kept\nx = 'from mldesigner import y'\n"
    )
    (src / "plain.py").write_text("import os\n")
    assert convert_sources(tmp_path) == [src / "components.py"]
    assert (src / "components.py").read_text() == (
        "# mldesigner contains command_component\nfrom shoal.mldesigner import command_component, Input\n"
        "from shoal.entities import Model  # a comment kept\nx = 'from mldesigner import y'\n"
    )


def test_mltable_is_swapped_keeping_its_name_and_the_spark_pool_placeholder_filled():
    out = convert_source("import mltable\nfrom mltable import load\npool = '<ATTACHED_SPARK_POOL_NAME>'")
    assert out.splitlines() == [
        "import shoal.mltable as mltable",
        "from shoal.mltable import load",
        "pool = 'spark-pool'",
    ]
