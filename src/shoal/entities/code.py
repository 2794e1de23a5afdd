"""Code asset (``_schema/assets/code_asset.py``): an uploaded source snapshot."""

from __future__ import annotations

from typing import ClassVar

from shoal.entities.base import Asset


class Code(Asset):
    KIND: ClassVar[str] = "code"

    path: str
    datastore: str | None = None
