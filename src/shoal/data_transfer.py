"""``from shoal.data_transfer import Database, FileSystem`` (``azure.ai.ml.data_transfer`` after
the import swap): the sources of a :class:`~shoal.entities.DataImport`. Shoal stores and prints
them; it does not run data imports, which read external databases and stores."""

from __future__ import annotations

from typing import Any

from shoal.entities.data import DataImportSource

__all__ = ["Database", "FileSystem"]


def Database(  # noqa: N802 - azure-ai-ml's class name; a source is a DataImportSource
    *,
    query: str | None = None,
    table_name: str | None = None,
    stored_procedure: str | None = None,
    stored_procedure_params: list[dict[str, Any]] | None = None,
    connection: str | None = None,
) -> DataImportSource:
    """A database source: a query (or a table, or a stored procedure) of a connection."""
    del stored_procedure_params  # kept by Azure for the procedure's call; nothing here runs it
    text = query or (f"select * from {table_name}" if table_name else None) or stored_procedure
    return DataImportSource(type="database", connection=connection, query=text)


def FileSystem(*, path: str | None = None, connection: str | None = None) -> DataImportSource:  # noqa: N802
    """A file-system source: a path in a connection (S3, …)."""
    return DataImportSource(type="file_system", connection=connection, path=path)
