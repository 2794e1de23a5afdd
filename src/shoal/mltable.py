"""``from shoal import mltable`` (``import mltable`` after the import swap): read a local MLTable
folder into a pandas DataFrame, as ``mltable.load(uri).to_pandas_dataframe()`` does.

Why not the real ``mltable`` package: it reads through ``azureml-dataprep`` (a native engine,
with the Azure identity and storage clients), a large install whose cloud paths need Azure. What
notebooks do with it on a local folder is small: its ``MLTable`` file names ``paths`` (``file``,
``folder``, ``pattern``) and ``transformations``; this reads those with pandas (imported only
here). Supported: ``read_delimited`` (delimiter, header, encoding, empty_as_string,
skip_rows), ``read_parquet``, ``read_json_lines``, ``drop_columns``, ``keep_columns``, ``take``,
``skip``, ``convert_column_types`` is left to pandas' own inference. Anything else is a
``UnsupportedError`` naming it, never a silently different table. Jobs that ``import mltable``
in their own environment install the real package there.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from shoal.entities.yamlfile import load_yaml
from shoal.errors import NotFoundError, UnsupportedError, UserError

__all__ = ["MLTable", "load"]

READERS = ("read_delimited", "read_parquet", "read_json_lines")
SUPPORTED = (*READERS, "drop_columns", "keep_columns", "take", "skip", "convert_column_types")


def load(uri: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, **kwargs: Any) -> MLTable:
    """The MLTable in the local folder ``uri`` (or its ``MLTable`` file)."""
    del storage_options, kwargs  # a local folder needs neither credentials nor a workspace
    text = os.fspath(uri)
    if "://" in text or text.startswith("azureml:"):
        raise UnsupportedError(
            f"mltable.load({text!r}): Shoal's mltable reads local folders; download the data first "
            "(ml_client.data.get(...).path and `shoal job download`/`datastore download`)"
        )
    path = Path(text)
    file = path / "MLTable" if path.is_dir() else path
    if not file.is_file():
        raise NotFoundError(f"mltable.load: no MLTable file at {file}")
    spec, _ = load_yaml(file)
    return MLTable(spec, file.parent)


class MLTable:
    """A table defined by an ``MLTable`` file: its paths and transformations."""

    def __init__(self, spec: dict[str, Any], base: Path) -> None:
        self.spec = spec
        self.base = base
        steps = spec.get("transformations") or []
        if not isinstance(steps, list):
            raise UserError("MLTable: transformations must be a list")
        for step in steps:
            name = next(iter(step)) if isinstance(step, dict) and step else step
            if name not in SUPPORTED:
                raise UnsupportedError(
                    f"MLTable transformation {name!r} is not supported by Shoal's mltable reader "
                    f"(it reads {', '.join(SUPPORTED)})"
                )

    def paths(self) -> list[Path]:
        found: list[Path] = []
        for entry in self.spec.get("paths") or []:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise UserError(f"MLTable paths: {entry!r} must be one of file:, folder:, pattern:")
            kind, value = next(iter(entry.items()))
            if "://" in str(value):
                raise UnsupportedError(f"MLTable path {value!r}: Shoal's mltable reads local files only")
            where = self.base / str(value)
            if kind == "file":
                found.append(where)
            elif kind == "folder":
                found += sorted(p for p in where.rglob("*") if p.is_file() and p.name != "MLTable")
            elif kind == "pattern":
                found += sorted(Path(p) for p in glob.glob(str(where), recursive=True) if Path(p).is_file())
            else:
                raise UserError(f"MLTable paths: unknown kind {kind!r} (file, folder, pattern)")
        return found

    def to_pandas_dataframe(self) -> Any:
        try:
            import pandas as pd  # only where a table is read
        except ImportError:
            raise UserError("mltable: to_pandas_dataframe() needs pandas (pip install pandas)") from None

        steps = [s if isinstance(s, dict) else {s: {}} for s in self.spec.get("transformations") or []]
        reader = next((s for s in steps if next(iter(s)) in READERS), None)
        files = self.paths()
        if reader is None:  # paths alone: the table of their paths, as mltable gives
            return pd.DataFrame({"Path": [str(f) for f in files]})
        kind, options = next(iter(reader.items()))
        options = options or {}
        frames = [_read(pd, kind, options, f, first=i == 0) for i, f in enumerate(files)]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        for step in steps:
            name, value = next(iter(step.items()))
            if name == "drop_columns":
                frame = frame.drop(columns=_columns(value))
            elif name == "keep_columns":
                frame = frame[_columns(value)]
            elif name == "take":
                frame = frame.head(int(value))
            elif name == "skip":
                frame = frame.iloc[int(value) :].reset_index(drop=True)
        return frame

    def __repr__(self) -> str:
        return f"<MLTable {self.base}>"


def _columns(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _read(pd: Any, kind: str, options: dict[str, Any], file: Path, *, first: bool) -> Any:
    if kind == "read_parquet":
        return pd.read_parquet(file)
    if kind == "read_json_lines":
        return pd.read_json(file, lines=True, encoding=options.get("encoding") or "utf-8")
    header = options.get("header", "all_files_same_headers")
    # from_first_file: only the first file has a header row; no_header: none has.
    has_header = header in ("all_files_same_headers", "all_files_different_headers") or (
        header == "from_first_file" and first
    )
    encoding = {"utf8": "utf-8", "ascii": "ascii", "latin1": "latin-1"}.get(options.get("encoding", "utf8"), "utf-8")
    return pd.read_csv(
        file,
        sep=options.get("delimiter", ","),
        header=0 if has_header else None,
        encoding=encoding,
        skiprows=int(options.get("skip_rows") or 0),
        keep_default_na=not options.get("empty_as_string", False),
    )
