"""Inputs in, outputs out: datastore paths and URLs become local files for the user command."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.runtime.client import RunnerClient

PRIMITIVES = ("string", "integer", "number", "boolean")


def parse_datastore_uri(uri: str) -> tuple[str, str] | None:
    prefix = "azureml://datastores/"
    if not uri.startswith(prefix) or "/paths/" not in uri:
        return None
    datastore, _, path = uri[len(prefix) :].partition("/paths/")
    return datastore, path


def format_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _read_only(path: Path) -> None:
    """``ro_mount`` on a local copy: files lose their write bits (root may still write)."""
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if p.is_file():
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def fetch_datastore(client: RunnerClient, uri: str, target_dir: Path) -> Path:
    """Copy a datastore file or folder under ``target_dir``; returns the local file or folder."""
    parsed = parse_datastore_uri(uri)
    if parsed is None:
        raise ValueError(f"not a datastore URI: {uri}")
    datastore, path = parsed
    rel = path.rstrip("/")
    listing = client.list_files(datastore, rel)
    target_dir.mkdir(parents=True, exist_ok=True)
    if not listing["is_dir"]:
        local = target_dir / rel.rsplit("/", 1)[-1]
        client.download(datastore, rel, local)
        return local
    # The datastore's root (``…/paths/``) is a folder too: its files' paths are relative to nothing.
    items = [
        (f"{rel}/{item['path']}" if rel else item["path"], target_dir / item["path"], int(item["size"]))
        for item in listing["value"]
    ]
    client.download_many(datastore, items)
    return target_dir


def place_datastore(client: RunnerClient, uri: str, target_dir: Path, given: dict[str, Any] | None) -> Path:
    """``fetch_datastore``, or the same files placed from the run spec where the server sent them
    (``inline``: a small input or code snapshot on a local store)."""
    if given is None:
        return fetch_datastore(client, uri, target_dir)
    parsed = parse_datastore_uri(uri)
    if parsed is None:
        raise ValueError(f"not a datastore URI: {uri}")
    target_dir.mkdir(parents=True, exist_ok=True)
    items = [(str(path), base64.b64decode(content)) for path, content in given["files"]]
    if not given["is_dir"]:
        local = target_dir / parsed[1].rstrip("/").rsplit("/", 1)[-1]
        local.write_bytes(items[0][1])
        return local
    root = target_dir.resolve()
    for path, content in items:
        dest = (target_dir / path).resolve()
        if root not in dest.parents:  # the server sends relative paths; never one that climbs out
            raise ValueError(f"inline file {path!r} of {uri} is not inside its folder")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
    return target_dir


MAX_REDIRECTS = 10


def url_file_name(url: str) -> str:
    """The local name of a downloaded URL: its path's last segment, never ``..`` nor empty, and
    never a name a response header chose (anchors BI-32, MLflow CVE-2024-0520)."""
    name = Path(urllib.parse.urlparse(url).path).name
    return name if name not in ("", ".", "..") and "\x00" not in name else "download"


def _checked_url(url: str) -> str:
    """The runner downloads with its own rights, outside the job sandbox: never from a cloud
    metadata service (the host's credentials), at the first hop or after a redirect."""
    from shoal.storage.endpoints import classify

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cannot download {url[:200]!r}: only http(s) URLs with a host")
    if classify(parts.hostname) == "metadata":
        raise ValueError(f"cannot download {url[:200]!r}: {parts.hostname} is a cloud metadata address")
    return url


def fetch_url(url: str, target_dir: Path, cache_dir: Path | None) -> Path:
    """Download an http(s) file once into the cache, then copy it in."""
    name = url_file_name(url)
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    cached = (cache_dir / key / name) if cache_dir else None
    if cached is None or not cached.exists():
        dest = cached or (target_dir / name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        import httpx  # only jobs with URL inputs pay for it

        with httpx.Client(follow_redirects=False, timeout=120.0) as http:
            current = _checked_url(url)
            for _ in range(MAX_REDIRECTS + 1):
                with http.stream("GET", current) as response:
                    if response.is_redirect and response.next_request is not None:
                        current = _checked_url(str(response.next_request.url))
                        continue
                    response.raise_for_status()
                    with open(tmp, "wb") as fh:
                        for chunk in response.iter_bytes(1024 * 1024):
                            fh.write(chunk)
                    break
            else:
                raise ValueError(f"cannot download {url[:200]!r}: more than {MAX_REDIRECTS} redirects")
        os.replace(tmp, dest)
        if cached is None:
            return dest
    target_dir.mkdir(parents=True, exist_ok=True)
    local = target_dir / name
    shutil.copyfile(cached, local)
    return local


def placed_input_folder(run_dir: Path, name: str, path_on_compute: str) -> Path:
    """Where an input with ``path_on_compute`` lands: that path, under the job's own
    ``inputs/placed/`` folder. The runner writes inputs with the server's rights, so a path the
    submitter chose must never reach outside the job's folder (``/root/.ssh``, another job's run)."""
    relative = Path(path_on_compute.replace("\\", "/").lstrip("/"))
    if not relative.parts or ".." in relative.parts:
        raise ValueError(f"input '{name}': path_on_compute {path_on_compute!r} must name a folder without '..'")
    return run_dir / "inputs" / "placed" / relative


def materialize_inputs(
    client: RunnerClient,
    inputs: dict[str, Any],
    run_dir: Path,
    cache_dir: Path | None,
    inline: dict[str, Any] | None = None,
) -> dict[str, str | None]:
    """name -> the string that replaces ``${{inputs.name}}`` (None when the input is unset);
    ``inline``: the run spec's small inputs by name, placed instead of fetched."""
    values: dict[str, str | None] = {}
    for name, spec in inputs.items():
        kind = spec.get("type")
        if kind in PRIMITIVES:
            value = spec.get("value")
            values[name] = None if value is None else format_literal(value)
            continue
        uri = spec.get("uri")
        if not uri:
            values[name] = None
            continue
        mode = spec.get("mode") or "ro_mount"
        if mode == "direct":
            values[name] = uri
            continue
        placed = spec.get("path_on_compute")
        target = placed_input_folder(run_dir, name, placed) if placed else run_dir / "inputs" / name
        if uri.startswith(("http://", "https://")):
            local = fetch_url(uri, target, cache_dir)
        elif parse_datastore_uri(uri):
            local = place_datastore(client, uri, target, (inline or {}).get(name))
        else:
            raise ValueError(f"input '{name}': cannot fetch {uri!r} here (cloud storage needs its datastore)")
        if mode in ("ro_mount", "eval_mount"):
            _read_only(local)
        values[name] = str(local)
    return values


def prepare_outputs(outputs: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """Each output gets an empty local folder (uri_file: a file path inside one)."""
    paths: dict[str, str] = {}
    (run_dir / "outputs").mkdir(parents=True, exist_ok=True)
    for name, spec in outputs.items():
        if spec.get("type") in PRIMITIVES:
            # A control output: the job writes its value into this file (``${{outputs.<name>}}``).
            target = run_dir / "outputs" / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            paths[name] = str(target)
            continue
        folder = run_dir / "outputs" / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if spec.get("type") == "uri_file":
            parsed = parse_datastore_uri(spec["path"])
            base = parsed[1].rstrip("/").rsplit("/", 1)[-1] if parsed else name
            paths[name] = str(folder / base)
        else:
            paths[name] = str(folder)
    return paths


CONTROL_VALUE_LIMIT = 64 * 1024  # a control output is a value, not data


def read_control_outputs(outputs: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """The text the job wrote to each control output's file (an unwritten one is left out). A
    symlink is not followed: the runner reads with more rights than job code has."""
    values: dict[str, str] = {}
    for name, spec in outputs.items():
        if spec.get("type") not in PRIMITIVES:
            continue
        path = run_dir / "outputs" / name
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as fh:
            data = fh.read(CONTROL_VALUE_LIMIT + 1)
        if len(data) > CONTROL_VALUE_LIMIT:
            raise ValueError(f"control output '{name}' holds more than {CONTROL_VALUE_LIMIT} bytes; it is a value")
        values[name] = data.decode("utf-8", errors="replace")
    return values


def files_within(folder: Path) -> list[Path]:
    """The files under ``folder`` that really are inside it. The runner reads them with more
    rights than job code has (outside its sandbox, perhaps as root): a symlink the job left to
    ``$SHOAL_HOME/secret.key`` or to a folder elsewhere must not turn into an upload of it."""
    top = folder.resolve()
    if top != folder.parent.resolve() / folder.name:  # the folder itself replaced by a symlink
        return []
    found = []
    for p in folder.rglob("*"):
        # A symlink counts by its target: one leading outside fails the second test.
        if p.is_file() and p.resolve().is_relative_to(top):
            found.append(p)
    return sorted(found)


@dataclass
class Upload:
    """Files a job leaves for one place of a datastore: the folder ``path``, or for a
    ``uri_file`` output (``single``) the file ``path`` itself."""

    datastore: str
    path: str
    folder: Path
    files: list[Path]
    single: bool = False


def planned_uploads(
    outputs: dict[str, Any], run_dir: Path, artifacts: dict[str, str] | None = None, workdir: Path | None = None
) -> list[Upload]:
    """What goes up when the command has ended: its outputs, then (given ``artifacts``)
    ``./outputs`` and ``./logs`` of the working folder as the job's artifacts."""
    plan = []
    for name, spec in outputs.items():
        if spec.get("type") in PRIMITIVES:
            continue
        parsed = parse_datastore_uri(spec["path"])
        folder = run_dir / "outputs" / name
        if parsed is None or not folder.exists():
            continue
        datastore, path = parsed
        files = files_within(folder)
        single = spec.get("type") == "uri_file"
        plan.append(Upload(datastore, path.rstrip("/"), folder, files[:1] if single else files, single))
    for sub in ("outputs", "logs") if artifacts and workdir is not None else ():
        folder = workdir / sub
        if folder.is_dir():
            plan.append(Upload(artifacts["datastore"], f"{artifacts['path']}/{sub}", folder, files_within(folder)))
    return plan


def upload(client: RunnerClient, plan: list[Upload]) -> None:
    for item in plan:
        if item.single:
            for f in item.files:
                client.upload(item.datastore, item.path, f)
        else:
            client.upload_tree(item.datastore, item.path, item.folder, item.files)


def inline_uploads(plan: list[Upload], offer: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """``plan`` as the ``files`` of the Completed report, where the run spec offers it (``inline.
    writes``: local datastores, at most so many files and bytes in all); None: upload it."""
    if not offer:
        return None
    allowed = set(offer.get("datastores") or [])
    files = [f for item in plan for f in item.files]
    if any(item.files and item.datastore not in allowed for item in plan) or len(files) > int(offer.get("files", 0)):
        return None
    try:
        if sum(f.stat().st_size for f in files) > int(offer.get("bytes", 0)):
            return None
        groups = []
        for item in plan:
            if not item.files:
                continue
            pairs = [
                (item.path if item.single else f.relative_to(item.folder).as_posix(), f.read_bytes())
                for f in item.files
            ]
            groups.append(
                {
                    "datastore": item.datastore,
                    "prefix": "" if item.single else item.path,
                    "files": [[rel, base64.b64encode(data).decode("ascii")] for rel, data in pairs],
                }
            )
    except OSError:
        return None  # a file changed under it: the uploads say what is wrong
    return groups
