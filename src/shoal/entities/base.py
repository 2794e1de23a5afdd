"""Base classes of every Shoal entity (resources and versioned assets)."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shoal.entities.validation import (
    ASSET_NAME,
    ASSET_VERSION,
    FieldIssue,
    StrDict,
    VersionStr,
    spec_error_from_validation,
)


class ShoalModel(BaseModel):
    """A strict model: unknown keys are errors, and constructor errors are SpecErrors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=False)

    def __init__(self, /, **data: Any) -> None:
        # Direct construction (SDK style) must fail like YAML loading does: with a SpecError
        # naming the field, not a pydantic ValidationError (which is a ValueError).
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise spec_error_from_validation(exc, data, source=type(self).__name__, model=type(self)) from None

    # Tell pydantic this is the base __init__: otherwise it would call it for every nested
    # model during model_validate, and errors would surface early as SpecErrors (no paths).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def printable(self) -> dict[str, Any]:
        """What ``print()`` shows: the YAML mapping (``to_dict`` where the class has one)."""
        to_dict = getattr(self, "to_dict", None)
        if callable(to_dict):
            return dict(to_dict())
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def __str__(self) -> str:
        """The YAML of :meth:`printable`, as ``print(obj)`` shows azure-ai-ml's entities and parts."""
        import yaml  # here: only printing needs it, and every CLI call imports this module

        return yaml.safe_dump(self.printable(), sort_keys=False, allow_unicode=True, default_flow_style=False)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None, line_map: Any = None) -> Self:
        """Validate ``data``; errors become a SpecError naming file, line and field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            kind = getattr(cls, "KIND", None) or None
            raise spec_error_from_validation(
                exc, data, source=source, line_map=line_map, kind=kind, model=cls
            ) from None


class Entity(ShoalModel):
    """Fields every resource has (``_schema/core/resource.py``)."""

    KIND: ClassVar[str] = ""
    # Populated by the server; a server strips or overwrites these on create.
    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = ("id", "creation_context")
    # Dotted paths of secrets that print()/str() leave out (the kind registry's secret paths).
    PRINT_HIDDEN: ClassVar[tuple[str, ...]] = ()

    schema_: str | None = Field(None, alias="$schema")
    name: str | None = None
    description: str | None = None
    tags: StrDict = Field(default_factory=dict)
    id: str | None = None
    creation_context: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict in YAML field names (REST bodies, ``show -o yaml``).

        ``parse_entity(kind, e.to_dict()) == e`` holds for every entity.
        """
        out = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for name, field in type(self).model_fields.items():
            key = field.alias or name
            if key not in out:
                continue
            default = field.get_default(call_default_factory=True)
            # Empty maps and untouched server flags are noise in listings.
            if (out[key] == {} and default == {}) or (name in self.READ_ONLY_FIELDS and out[key] == default):
                del out[key]
        return out

    def printable(self) -> dict[str, Any]:
        """The YAML of :meth:`to_dict`, as ``print(job)`` shows in azure-ai-ml; secrets left out."""
        data = self.to_dict()
        for path in self.PRINT_HIDDEN:
            *parents, leaf = path.split(".")
            node: Any = data
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(leaf, None)
        return data

    def __repr__(self) -> str:
        """``CommandJob(name='x', type='command', status='Running')``: who it is, no secrets."""
        keys = ("name", "version", "type", "display_name", "status", "experiment_name")
        data = {k: getattr(self, k, None) for k in keys}
        args = ", ".join(f"{k}={v!r}" for k, v in data.items() if v is not None and not callable(v))
        return f"{type(self).__name__}({args})"

    def without_read_only(self) -> Self:
        """A copy with every server-populated field reset to its default."""
        fields = type(self).model_fields
        update = {n: fields[n].get_default(call_default_factory=True) for n in self.READ_ONLY_FIELDS}
        return self.model_copy(update=update)


class Asset(Entity):
    """A versioned asset (model, data, environment, code, component)."""

    READ_ONLY_FIELDS: ClassVar[tuple[str, ...]] = Entity.READ_ONLY_FIELDS + ("latest_version", "archived")
    NAME_RULE: ClassVar[Any] = ASSET_NAME

    version: VersionStr | None = None
    properties: StrDict = Field(default_factory=dict)
    latest_version: str | None = None
    archived: bool = False

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else cls.NAME_RULE.check(value)

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str | None) -> str | None:
        return None if value is None else ASSET_VERSION.check(value)

    @model_validator(mode="after")
    def _version_needs_name(self) -> Self:
        if self.version is not None and self.name is None:
            raise FieldIssue("version", "a version was given without a name; give both or neither")
        return self
