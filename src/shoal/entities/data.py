"""Data asset (``_schema/assets/data.py``), including data-import specs with ``source``."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import model_validator

from shoal.entities.base import Asset, ShoalModel
from shoal.entities.validation import FieldIssue


class DataImportSource(ShoalModel):
    """Where a data import reads from: a database query or a file-system path of a connection."""

    type: Literal["database", "file_system"]
    connection: str | None = None
    query: str | None = None
    path: str | None = None


class Data(Asset):
    KIND: ClassVar[str] = "data"

    type: Literal["uri_file", "uri_folder", "mltable"] = "uri_folder"
    path: str | None = None
    datastore: str | None = None
    source: DataImportSource | None = None

    @model_validator(mode="after")
    def _path_or_source(self) -> Self:
        if self.path is None and self.source is None:
            raise FieldIssue("path", "give a path, or a source for a data import", missing=True)
        return self


class DataImport(Data):
    """``DataImport(name=, source=Database(...)|FileSystem(...), path=)``: a data asset copied
    from an external database or file system through a connection. Shoal keeps the definition
    (it validates and prints) but does not run imports: ``ml_client.data.import_data`` says so."""

    KIND: ClassVar[str] = "data"

    type: Literal["uri_file", "uri_folder", "mltable"] = "mltable"
