"""Parsing of asset references and data URIs (pure string work, no I/O).

Grammar: azureml-v2-surface.md §3.1 (asset references) and §3.2 (data URIs).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from shoal.constants import AZUREML_PREFIX, SHOAL_RESOURCE_GROUP, SHOAL_SUBSCRIPTION_ID
from shoal.entities.kind_names import KIND_NAMES, PLURAL_KINDS, REGISTRY_PLURALS
from shoal.errors import SpecError

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_.]*")
_VERSION = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,63}")

_SEG = r"[^/]+"
_SELECTOR = rf"(?:/(?P<sel>versions|labels)/(?P<val>{_SEG}))?/?"
_REGISTRY_RE = re.compile(rf"azureml://registries/(?P<reg>{_SEG})/(?P<plural>{_SEG})/(?P<name>{_SEG}){_SELECTOR}")
_LOCATION_RE = re.compile(
    rf"azureml://locations/(?P<loc>{_SEG})/workspaces/(?P<ws>{_SEG})/(?P<plural>{_SEG})/(?P<name>{_SEG}){_SELECTOR}"
)
_ARM_RE = re.compile(
    rf"(?:azureml:)?/subscriptions/(?P<sub>{_SEG})/resourceGroups/(?P<rg>{_SEG})"
    rf"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>{_SEG})"
    rf"/(?P<plural>{_SEG})/(?P<name>{_SEG}){_SELECTOR}",
    re.IGNORECASE,
)

_PATHS = r"(?:/paths(?:/(?P<path>.*))?)?"
_DATASTORE_SHORT_RE = re.compile(rf"azureml://datastores/(?P<ds>{_SEG}){_PATHS}")
_DATASTORE_LONG_RE = re.compile(
    rf"azureml://subscriptions/(?P<sub>{_SEG})/resourcegroups/(?P<rg>{_SEG})"
    rf"(?:/providers/Microsoft\.MachineLearningServices)?/workspaces/(?P<ws>{_SEG})"
    rf"/datastores/(?P<ds>{_SEG}){_PATHS}",
    re.IGNORECASE,
)
_JOB_OUTPUT_RE = re.compile(rf"azureml://jobs/(?P<job>{_SEG})/outputs/(?P<out>{_SEG}){_PATHS}")
_RUNS_RE = re.compile(rf"runs:/(?P<run>{_SEG})(?:/(?P<path>.*))?")
_SCHEME_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*):")

CLOUD_SCHEMES = ("wasb", "wasbs", "abfs", "abfss", "adl", "s3", "s3a", "gs", "gcs")
HTTP_SCHEMES = ("http", "https")


# --- asset references ------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetRef:
    """A reference to an asset or resource: name plus at most one of version and label."""

    kind: str | None
    name: str
    version: str | None = None
    label: str | None = None
    registry: str | None = None
    workspace: str | None = None

    def __str__(self) -> str:
        if self.registry:
            plural = KIND_NAMES[self.kind if self.kind in KIND_NAMES else "model"].plural
            tail = f"/versions/{self.version}" if self.version else f"/labels/{self.label}" if self.label else ""
            return f"azureml://registries/{self.registry}/{plural}/{self.name}{tail}"
        if self.version:
            return f"{AZUREML_PREFIX}{self.name}:{self.version}"
        if self.label:
            return f"{AZUREML_PREFIX}{self.name}@{self.label}"
        return f"{AZUREML_PREFIX}{self.name}"


def _bad(text: str, why: str) -> SpecError:
    return SpecError(f"invalid reference {text!r}: {why}", details={"reference": text})


def _from_match(text: str, m: re.Match[str], kind: str | None, **extra: str | None) -> AssetRef:
    plural = m.group("plural")
    ref_kind = PLURAL_KINDS.get(plural) or PLURAL_KINDS.get(plural.lower())
    if ref_kind is None:
        raise _bad(text, f"unknown asset type {plural!r}; expected one of {', '.join(PLURAL_KINDS)}")
    if kind is not None and kind != ref_kind:
        raise _bad(text, f"it refers to a {ref_kind}, not a {kind}")
    selector, value = m.group("sel"), m.group("val")
    return AssetRef(
        kind=ref_kind,
        name=m.group("name"),
        version=value if selector == "versions" else None,
        label=value if selector == "labels" else None,
        **extra,
    )


def parse_asset_ref(text: str, kind: str | None = None) -> AssetRef:
    """Parse any §3.1 form: ``azureml:<n>:<v>``, ``<n>@<label>``, ARM ids, registry URIs..."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(str(text), "it is empty")
    text = text.strip()
    if m := _REGISTRY_RE.fullmatch(text):
        if m.group("plural") not in REGISTRY_PLURALS:
            raise _bad(text, f"registries hold only {', '.join(REGISTRY_PLURALS)}")
        return _from_match(text, m, kind, registry=m.group("reg"))
    if m := _LOCATION_RE.fullmatch(text):
        return _from_match(text, m, kind, workspace=m.group("ws"))
    if m := _ARM_RE.fullmatch(text):
        return _from_match(text, m, kind, workspace=m.group("ws"))
    if text.startswith(("azureml://", "azureml:/", "/")):
        raise _bad(text, "not a known asset id form")
    rest = text[len(AZUREML_PREFIX) :] if text.startswith(AZUREML_PREFIX) else text
    version = label = None
    # azure-ai-ml splits on the first ':' for versions and on the last '@' for labels.
    if ":" in rest:
        name, version = rest.split(":", 1)
        if not _VERSION.fullmatch(version):
            raise _bad(text, f"version {version!r} is invalid")
    elif "@" in rest:
        name, label = rest.rsplit("@", 1)
        if not _VERSION.fullmatch(label):
            raise _bad(text, f"label {label!r} is invalid")
    else:
        name = rest
    if not _NAME.fullmatch(name):
        raise _bad(text, f"name {name!r} is invalid")
    return AssetRef(kind=kind, name=name, version=version, label=label)


# --- data URIs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathRef:
    """A parsed path or URI. ``scheme`` is one of
    local, datastore, job_output, runs, http, cloud, registry, asset."""

    scheme: str
    raw: str
    path: str | None = None  # local path; path in a datastore, job output or run; URL path
    datastore: str | None = None
    job: str | None = None
    output: str | None = None
    run_id: str | None = None
    protocol: str | None = None  # the URL scheme for http and cloud (https, wasbs, s3...)
    asset: AssetRef | None = None
    subscription: str | None = None
    resource_group: str | None = None
    workspace: str | None = None

    @property
    def is_folder(self) -> bool:
        """A trailing ``/`` marks a folder in Azure ML URIs."""
        return self.raw.endswith("/")


def url_scheme(text: str) -> str | None:
    """The URI scheme of ``text``, or None for a local path (Windows drive letters included)."""
    m = _SCHEME_RE.match(text)
    if not m or len(m.group("scheme")) == 1:
        return None
    return m.group("scheme").lower()


def strip_file_prefix(text: str) -> str:
    """``file:///a/b`` → ``/a/b``; ``file:./a`` → ``./a``; other text unchanged."""
    if text.startswith("file://"):
        return text[len("file://") :]
    if text.startswith("file:"):
        return text[len("file:") :]
    return text


def is_local_path(text: str) -> bool:
    """True for a plain or ``file:`` path; False for any URI, reference, ARM id or ``${{...}}`` expression."""
    if "${{" in text or _ARM_RE.fullmatch(text.strip()):
        return False
    scheme = url_scheme(text)
    return scheme is None or scheme == "file"


def arm_id_as_reference(text: str) -> str | None:
    """An asset's ARM id (what ``asset.id`` holds: ``/subscriptions/…/workspaces/…/data/titanic/versions/1``)
    as the ``azureml:titanic:1`` reference azure-ai-ml resolves it to; None for any other text."""
    m = _ARM_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None or m.group("sel") is None:
        return None
    return str(_from_match(text, m, None))


def parse_path(text: str) -> PathRef:
    """Parse a data path (§3.2): local, datastore URI, job output, ``runs:/``, URL or asset."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"invalid path {text!r}: it is empty")
    text = text.strip()
    scheme = url_scheme(text)
    if _ARM_RE.fullmatch(text):
        return PathRef("asset", text, asset=parse_asset_ref(text))
    if scheme is None or scheme == "file":
        return PathRef("local", text, path=strip_file_prefix(text))
    if m := _DATASTORE_SHORT_RE.fullmatch(text):
        return PathRef("datastore", text, path=m.group("path") or "", datastore=m.group("ds"))
    if m := _DATASTORE_LONG_RE.fullmatch(text):
        return PathRef(
            "datastore",
            text,
            path=m.group("path") or "",
            datastore=m.group("ds"),
            subscription=m.group("sub"),
            resource_group=m.group("rg"),
            workspace=m.group("ws"),
        )
    if m := _JOB_OUTPUT_RE.fullmatch(text):
        return PathRef("job_output", text, path=m.group("path") or "", job=m.group("job"), output=m.group("out"))
    if text.startswith("azureml://registries/"):
        return PathRef("registry", text, asset=parse_asset_ref(text))
    if scheme == "azureml":
        if text.startswith("azureml://") and not text.startswith("azureml://locations/"):
            raise SpecError(f"invalid path {text!r}: unknown azureml:// URI form")
        return PathRef("asset", text, asset=parse_asset_ref(text))
    if scheme == "runs":
        if not (m := _RUNS_RE.fullmatch(text)):
            raise SpecError(f"invalid path {text!r}: expected runs:/<run_id>/<path>")
        return PathRef("runs", text, path=m.group("path") or "", run_id=m.group("run"))
    if scheme in HTTP_SCHEMES:
        return PathRef("http", text, protocol=scheme)
    if scheme in CLOUD_SCHEMES:
        return PathRef("cloud", text, protocol=scheme)
    raise SpecError(
        f"invalid path {text!r}: unsupported URI scheme {scheme!r}; use a local path, azureml://, "
        f"runs:/, http(s):// or one of {', '.join(s + '://' for s in CLOUD_SCHEMES)}"
    )


def datastore_path(text: str) -> PathRef | None:
    """``text`` parsed when it names a path of a datastore (``azureml://datastores/<name>/paths/…``);
    None for anything else, a valid path of another kind or not a path at all."""
    try:
        ref = parse_path(text)
    except SpecError:
        return None
    return ref if ref.scheme == "datastore" and ref.datastore else None


# --- formatting ------------------------------------------------------------------------------


def format_asset_id(
    workspace: str,
    plural: str,
    name: str,
    version: str | None = None,
    *,
    label: str | None = None,
    subscription: str = SHOAL_SUBSCRIPTION_ID,
    resource_group: str = SHOAL_RESOURCE_GROUP,
) -> str:
    """An ARM-style id, the ``id`` Shoal reports for entities."""
    out = (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace}/{plural}/{name}"
    )
    if version is not None:
        out += f"/versions/{version}"
    elif label is not None:
        out += f"/labels/{label}"
    return out


def format_datastore_uri(datastore: str, path: str = "") -> str:
    return f"azureml://datastores/{datastore}/paths/{path.lstrip('/')}"


def format_job_output_uri(job: str, output: str, path: str = "") -> str:
    return f"azureml://jobs/{job}/outputs/{output}/paths/{path.lstrip('/')}"


def absolute_local_path(value: str) -> str:
    """A local path (``file:`` prefix and ``~`` allowed) made absolute against the working folder,
    keeping a trailing slash: what a job body carries until the client uploads it."""
    path = os.path.expanduser(strip_file_prefix(value))
    out = Path(os.path.normpath(Path.cwd() / path)).as_posix()
    return out + "/" if value.endswith("/") and not out.endswith("/") else out
