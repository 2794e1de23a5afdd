"""The scoring script of a no-code MLflow deployment (no ``code_configuration``).

Copied into the deployment's ``code/`` folder as ``score.py`` and run by ``scoring_server.py`` in
the environment derived from the model (its ``conda.yaml`` or ``requirements.txt``, MLflow as
``mlflow-skinny``). Like Azure's own MLflow scoring script: ``init()`` loads the model with
``mlflow.pyfunc.load_model`` from the folder holding ``MLmodel`` under ``AZUREML_MODEL_DIR``;
``run()`` takes

- ``{"input_data": {"columns": [...], "index": [...], "data": [[...]]}}`` (split orientation),
- ``{"input_data": [{"col": value, ...}, ...]}`` (records), or ``{"input_data": [[...]]}`` (a tensor),
- ``{"dataframe_split": {...}}``, ``{"dataframe_records": [...]}``, ``{"inputs": ...}`` /
  ``{"instances": ...}`` (MLflow's own serving formats),

and answers the predictions as JSON (a list; a DataFrame as a list of records)."""

from __future__ import annotations

import json
import os
from typing import Any

model: Any = None


def _model_folder(root: str) -> str:
    """The folder holding ``MLmodel``: ``root`` itself or a folder under it (at most two deep)."""
    if os.path.isfile(os.path.join(root, "MLmodel")):
        return root
    for current, dirs, files in os.walk(root):
        if "MLmodel" in files:
            return current
        if current[len(root) :].count(os.sep) >= 2:
            dirs[:] = []
    raise FileNotFoundError(f"no MLmodel file under {root}: this is not an MLflow model")


def init() -> None:
    global model
    import mlflow.pyfunc

    folder = _model_folder(os.environ["AZUREML_MODEL_DIR"])
    model = mlflow.pyfunc.load_model(folder)
    print(f"MLflow model loaded from {folder}", flush=True)


def _frame(value: Any, what: str) -> Any:
    import pandas as pd

    if isinstance(value, dict):
        if "data" not in value:
            raise ValueError(f"{what} in split orientation needs 'data' (with 'columns', optionally 'index')")
        return pd.DataFrame(value["data"], columns=value.get("columns"), index=value.get("index"))
    if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        return pd.DataFrame.from_records(value)
    if isinstance(value, list):
        columns = _input_columns()
        frame = pd.DataFrame(value)
        if columns is not None and len(columns) == frame.shape[1]:
            frame.columns = columns
        return frame
    raise ValueError(f"{what} must be an object (split orientation) or a list (records or rows)")


def _input_columns() -> list[str] | None:
    """The signature's column names, so that plain rows reach a model that wants names."""
    schema = getattr(getattr(model, "metadata", None), "get_input_schema", lambda: None)()
    try:
        names = schema.input_names() if schema is not None and schema.has_input_names() else None
    except Exception:  # noqa: BLE001 - a schema of another kind (tensors): no names to give
        return None
    return list(names) if names else None


def _parse(body: Any) -> Any:
    if not isinstance(body, dict):
        raise ValueError("the request must be a JSON object with input_data (or dataframe_split)")
    if "input_data" in body:
        return _frame(body["input_data"], "input_data")
    if "dataframe_split" in body:
        return _frame(body["dataframe_split"], "dataframe_split")
    if "dataframe_records" in body:
        return _frame(body["dataframe_records"], "dataframe_records")
    for key in ("inputs", "instances"):
        if key in body:
            import numpy as np

            value = body[key]
            return _frame(value, key) if isinstance(value, dict) else np.asarray(value)
    raise ValueError(
        "the request has none of input_data, dataframe_split, dataframe_records, inputs, instances "
        f"(it has: {', '.join(sorted(body)) or 'nothing'})"
    )


def _plain(result: Any) -> Any:
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict) and hasattr(result, "columns"):
        return result.to_dict(orient="records")
    tolist = getattr(result, "tolist", None)
    return tolist() if callable(tolist) else result


def run(raw_data: str) -> Any:
    return _plain(model.predict(_parse(json.loads(raw_data))))
