"""The one gate between a client-supplied path and the server's storage.

Every relative path that arrives in a request goes through :func:`safe_relpath` exactly once;
the canonical value it returns is what gets stored and joined. Anything that is not already
canonical is rejected rather than repaired, because "repairing" is where traversal bugs hide
(see ``security-reliability-anchors.md`` §1.2, BI-01..BI-11).
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from shoal.errors import UserError

MAX_PATH_BYTES = 1024
MAX_SEGMENTS = 64
MAX_SEGMENT_BYTES = 255  # NAME_MAX on common filesystems: fail as 400, not as an OSError later

# Anything that still looks percent-encoded after the framework's single decode is either a
# double-encoding attack (BI-05) or an overlong UTF-8 trick (BI-06): never decode again, refuse.
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE = re.compile(r"^[A-Za-z]:")
_FORBIDDEN_CHARS = {"\\": "backslash", ";": "';'", "?": "'?'", "#": "'#'"}
# Cc control, Cf format (bidi overrides, zero-width), Cs lone surrogates, Co private use,
# Zl/Zp line and paragraph separators.
_BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


def _show(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 120 else text[:117] + "..."


def _reject(raw: object, reason: str) -> UserError:
    shown = raw[:200] if isinstance(raw, str) else raw
    return UserError(f"invalid path {_show(raw)}: {reason}", details={"path": shown, "reason": reason})


def decode_once(encoded: str) -> str:
    """Percent-decode a raw URL component once, for callers that receive undecoded text.

    The result must still go through :func:`safe_relpath`, which refuses leftover escapes.
    """
    try:
        return unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise _reject(encoded, "percent-encoding does not decode to UTF-8") from None


def _check_chars(raw: str) -> None:
    for ch in raw:
        if ch == "\x00":
            raise _reject(raw, "contains a NUL character")
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise _reject(raw, f"contains the control or format character U+{ord(ch):04X}")
        if ch == "\ufffd":
            raise _reject(raw, "contains U+FFFD (the URL did not decode to valid UTF-8)")
        if ch in _FORBIDDEN_CHARS:
            raise _reject(raw, f"contains a {_FORBIDDEN_CHARS[ch]}")
    if _PERCENT_ESCAPE.search(raw):
        raise _reject(raw, "contains a percent-encoded sequence (paths are decoded exactly once)")
    if unicodedata.normalize("NFKC", raw) != raw:
        raise _reject(raw, "is not in Unicode NFKC normal form (look-alike characters)")


def safe_relpath(raw: str, *, allow_empty: bool = False) -> str:
    """Return the canonical POSIX relative form of ``raw`` or raise :class:`UserError`.

    ``raw`` is the already URL-decoded value. One trailing ``/`` is allowed and dropped; any
    other non-canonical spelling is refused. ``allow_empty`` admits ``""`` (the root itself).
    """
    if not isinstance(raw, str):
        raise _reject(raw, "must be a string")
    if raw == "":
        if allow_empty:
            return ""
        raise _reject(raw, "is empty")
    if len(raw) > MAX_PATH_BYTES:  # cheap early exit before scanning a huge string
        raise _reject(raw, f"is longer than {MAX_PATH_BYTES} bytes")
    _check_chars(raw)
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:  # pragma: no cover - surrogates are caught as category Cs
        raise _reject(raw, "is not valid Unicode") from None
    if size > MAX_PATH_BYTES:
        raise _reject(raw, f"is longer than {MAX_PATH_BYTES} bytes")
    if raw.startswith("/"):
        raise _reject(raw, "is absolute")
    if _DRIVE.match(raw):
        raise _reject(raw, "starts with a drive letter")
    path = raw[:-1] if raw.endswith("/") else raw
    segments = path.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise _reject(raw, f"has more than {MAX_SEGMENTS} segments")
    for seg in segments:
        if seg == "":
            raise _reject(raw, "has an empty segment ('//' or a trailing '/' after '/')")
        if seg == "..":
            raise _reject(raw, "contains a '..' segment")
        if seg == ".":
            raise _reject(raw, "contains a '.' segment")
        # Windows strips trailing dots and spaces, so '...' or '.. ' would act as '..' there.
        if seg.rstrip(". ") == "":
            raise _reject(raw, f"segment {seg!r} is only dots and spaces")
        if len(seg.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _reject(raw, f"has a segment longer than {MAX_SEGMENT_BYTES} bytes")
    return path


def is_inside(root_real: str, candidate: str) -> bool:
    """True when the resolved ``candidate`` is ``root_real`` or below it (both absolute)."""
    real = os.path.realpath(candidate)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def join_inside(root: Path | str, rel: str, *, allow_empty: bool = False) -> Path:
    """Join a client path onto a server-owned root and prove the result stays inside it.

    The returned path is ``realpath(root) / rel`` (the last component is not resolved, so
    callers can act on a link itself); its ``realpath`` is checked against the root so a
    symlink anywhere on the way that points outside is refused (BI-10).
    """
    rel = safe_relpath(rel, allow_empty=allow_empty)
    try:
        root_real = os.path.realpath(os.fspath(root))
        candidate = os.path.join(root_real, *rel.split("/")) if rel else root_real
        inside = is_inside(root_real, candidate)
    except (OSError, ValueError) as exc:
        raise _reject(rel, f"cannot be resolved ({exc.__class__.__name__})") from None
    if not inside:
        raise _reject(rel, "resolves outside its root (symbolic link)")
    return Path(candidate)
