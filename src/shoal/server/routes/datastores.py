"""Datastores, and the files behind them: listing, reading and content-addressed uploads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from shoal.entities.kinds import KINDS
from shoal.errors import NotFoundError, UserError
from shoal.server.auth import Permission, require_local_datastore_right, require_secrets
from shoal.server.routes.common import ctx, file_response, guarded, page_body, write_body
from shoal.services.access.job_token_scope import check_datastore_direct_read, check_datastore_write
from shoal.services.storage import datastores, files
from shoal.services.workspaces import DEFAULT_DATASTORE
from shoal.storage import batches, direct_blobs
from shoal.storage.paths import safe_relpath

router = APIRouter(tags=["datastores"])
PREFIX = f"/workspaces/{{workspace}}/{KINDS['datastore'].plural}"


@guarded(router, "GET", PREFIX, Permission.READ)
def list_datastores(
    request: Request,
    workspace: str,
    include_secrets: bool = False,
    max_results: int | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    require_secrets(request, include_secrets)
    page = datastores.list_page(
        ctx(request),
        workspace,
        include_secrets=include_secrets,
        max_results=max_results,
        page_token=page_token,
    )
    return page_body(page)


@guarded(router, "GET", "/workspaces/{workspace}/default-datastore", Permission.READ)
def get_default_datastore(request: Request, workspace: str, include_secrets: bool = False) -> dict[str, Any]:
    require_secrets(request, include_secrets)
    return datastores.get(ctx(request), workspace, DEFAULT_DATASTORE, include_secrets=include_secrets)


@guarded(router, "PUT", PREFIX + "/{name}", Permission.WRITE)
def put_datastore(request: Request, workspace: str, name: str, spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
    if spec.get("name", name) != name:
        raise UserError(f"body name {spec.get('name')!r} does not match the URL's name {name!r}")
    if spec.get("type") == "local":
        require_local_datastore_right(request.state.principal)
    allow_loopback = request.state.principal.is_admin
    return datastores.create_or_update(ctx(request), workspace, {**spec, "name": name}, allow_loopback=allow_loopback)


@guarded(router, "GET", PREFIX + "/{name}", Permission.READ)
def get_datastore(request: Request, workspace: str, name: str, include_secrets: bool = False) -> dict[str, Any]:
    require_secrets(request, include_secrets)
    return datastores.get(ctx(request), workspace, name, include_secrets=include_secrets)


@guarded(router, "DELETE", PREFIX + "/{name}", Permission.WRITE, status_code=204)
def delete_datastore(request: Request, workspace: str, name: str) -> None:
    datastores.delete(ctx(request), workspace, name)


# -- files ----------------------------------------------------------------------------------


@guarded(router, "GET", PREFIX + "/{name}/files", Permission.READ)
def list_files(request: Request, workspace: str, name: str, path: str = "") -> dict[str, Any]:
    """Files under ``path`` (a file or a folder), as paths relative to it, with sizes."""
    rel = safe_relpath(path, allow_empty=True)
    store = files.store_for(ctx(request), workspace, name)
    try:  # on S3 and Azure Blob one listing of the store (storage/filesystem.py list_tree)
        is_dir, entries = store.list_tree(rel)
    except NotFoundError:
        raise NotFoundError(f"path '{rel}' not found in datastore '{name}'") from None
    return {"path": rel, "is_dir": is_dir, "value": [{"path": e.path, "size": e.size} for e in entries]}


@guarded(router, "GET", PREFIX + "/{name}/content", Permission.READ)
def read_file(request: Request, workspace: str, name: str, path: str) -> Any:
    """One file. ``Range: bytes=<start>-`` (a download resuming) answers the rest with 206."""
    rel = safe_relpath(path)
    store = files.store_for(ctx(request), workspace, name)
    if store.io is None:
        if not store.exists(rel) or store.isdir(rel):
            raise NotFoundError(f"file '{rel}' not found in datastore '{name}'")
        return file_response(store, rel)  # on local disk Starlette answers ranges itself
    start = _range_start(request.headers.get("range"))
    try:  # an object store: one call finds the file (and its size), the rest is ranged reads
        size, chunks = store.read_chunks(rel, start)
    except NotFoundError:
        raise NotFoundError(f"file '{rel}' not found in datastore '{name}'") from None
    if not start:
        return StreamingResponse(chunks, media_type="application/octet-stream", headers={"Content-Length": str(size)})
    if start >= size:
        chunks.close()
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    headers = {"Content-Range": f"bytes {start}-{size - 1}/{size}", "Content-Length": str(size - start)}
    return StreamingResponse(chunks, status_code=206, media_type="application/octet-stream", headers=headers)


def _range_start(value: str | None) -> int:
    """The start of a ``bytes=<start>-`` range; any other form is ignored (the whole file)."""
    match = re.fullmatch(r"bytes=(\d{1,19})-", (value or "").strip())
    return int(match.group(1)) if match else 0


@guarded(router, "POST", PREFIX + "/{name}/contents/read", Permission.READ)
def read_files(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> Any:
    """Many small files in one response (a job's inputs): records of a JSON header line and the
    bytes (``storage/batches.py``), fetched from the store many at once."""
    rels = batches.read_paths(body)
    store = files.store_for(ctx(request), workspace, name)
    return StreamingResponse(batches.records(store, rels), media_type="application/octet-stream")


@guarded(router, "POST", PREFIX + "/{name}/uploads", Permission.WRITE)
def begin_upload(request: Request, workspace: str, name: str, manifest: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Start a content-addressed upload; nothing to send when the same content is stored."""
    manager = files.uploads_for(ctx(request), workspace, name)
    upload_id, final_rel = manager.begin(manifest)
    return {"upload_id": upload_id, "path": f"azureml://datastores/{name}/paths/{final_rel}"}


@guarded(router, "PUT", PREFIX + "/{name}/uploads/{upload_id}/files", Permission.WRITE)
async def put_upload_file(request: Request, workspace: str, name: str, upload_id: str, path: str) -> dict[str, Any]:
    manager = files.uploads_for(ctx(request), workspace, name)
    entry = await write_body(request, lambda chunks: manager.put_file(upload_id, path, chunks))
    return {"path": entry.path, "size": entry.size, "sha256": entry.sha256}


@guarded(router, "POST", PREFIX + "/{name}/uploads/{upload_id}/commit", Permission.WRITE)
def commit_upload(request: Request, workspace: str, name: str, upload_id: str) -> dict[str, Any]:
    manager = files.uploads_for(ctx(request), workspace, name)
    final_rel = manager.commit(upload_id)
    return {"path": f"azureml://datastores/{name}/paths/{final_rel}"}


@guarded(router, "PUT", PREFIX + "/{name}/content", Permission.TRACK)
async def write_file(request: Request, workspace: str, name: str, path: str, digest: bool = True) -> dict[str, Any]:
    """Write one file (job outputs): streamed to a temporary name, then renamed into place (on S3
    and Azure Blob: a multipart upload completed at the end). ``digest=false``: no sha256 (the
    runner has no use for it, and hashing a large file costs a core for seconds)."""
    rel = safe_relpath(path)
    job = getattr(getattr(request.state, "principal", None), "job", None)
    if job is not None:  # a runner writes its own outputs and artifacts only
        await run_in_threadpool(check_datastore_write, ctx(request), workspace, job, name, rel)
    store = files.store_for(ctx(request), workspace, name)
    entry = await write_body(request, lambda chunks: store.write_stream(rel, chunks, digest=digest))
    return {"path": rel, "size": entry.size, "sha256": entry.sha256}


# -- large job outputs sent by the runner straight to the store (storage/direct_uploads.py on S3,
# storage/direct_blobs.py on Azure Blob) ---------------------------------------------------------
MAX_OBJECT = 5 * 1024**4  # S3's largest object


def _direct_body(body: dict[str, Any], *fields: str) -> tuple[str, dict[str, Any]]:
    """The checked path of a direct upload's request, and its other fields."""
    rel = safe_relpath(str(body.get("path") or ""))
    values: dict[str, Any] = {}
    for field in fields:
        value = body.get(field)
        if field == "size" and (not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_OBJECT):
            raise UserError(f"'size' must be a whole number of bytes from 1 to {MAX_OBJECT}, not {value!r}")
        if field == "parts" and (not isinstance(value, list) or not all(type(n) is int for n in value)):
            raise UserError("'parts' must be a list of part numbers")
        if field == "upload_id" and (not isinstance(value, str) or not 0 < len(value) <= 1024):
            raise UserError("'upload_id' must be the id the direct upload was started with")
        values[field] = value
    return rel, values


def _check_job_write(request: Request, workspace: str, name: str, rel: str) -> None:
    job = getattr(getattr(request.state, "principal", None), "job", None)
    if job is not None:  # a runner writes its own outputs and artifacts only
        check_datastore_write(ctx(request), workspace, job, name, rel)


@guarded(router, "POST", PREFIX + "/{name}/direct-uploads", Permission.TRACK)
def begin_direct_upload(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> Any:
    """``{"path", "size"}``: a multipart upload on S3 (staged blocks on Azure Blob with an account
    key) whose parts the caller sends itself (on any other store a 400: send the file with
    ``PUT …/content``)."""
    rel, values = _direct_body(body, "size")
    _check_job_write(request, workspace, name, rel)
    upload = files.store_for(ctx(request), workspace, name).begin_direct_upload(rel, values["size"])
    return {"path": rel, "upload_id": upload.upload_id, "part_size": upload.part_size, "parts": upload.parts}


@guarded(router, "POST", PREFIX + "/{name}/direct-uploads/sign", Permission.TRACK)
def sign_direct_upload(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> Any:
    """``{"path", "upload_id", "parts": [n, ...]}``: the URL and signed headers of each part's PUT
    (valid 15 minutes, for that part of that upload only; the credentials stay here)."""
    rel, values = _direct_body(body, "upload_id", "parts")
    _check_job_write(request, workspace, name, rel)
    store = files.store_for(ctx(request), workspace, name)
    return {"parts": store.sign_direct_upload(rel, values["upload_id"], values["parts"])}


@guarded(router, "POST", PREFIX + "/{name}/direct-uploads/complete", Permission.TRACK)
def complete_direct_upload(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> Any:
    """``{"path", "upload_id", "size"}``: publish the file once every part is stored."""
    rel, values = _direct_body(body, "upload_id", "size")
    _check_job_write(request, workspace, name, rel)
    store = files.store_for(ctx(request), workspace, name)
    entry = store.complete_direct_upload(rel, values["upload_id"], values["size"])
    return {"path": rel, "size": entry.size}


@guarded(router, "POST", PREFIX + "/{name}/direct-uploads/abort", Permission.TRACK, status_code=204)
def abort_direct_upload(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> None:
    """``{"path", "upload_id"}``: drop an unfinished direct upload (its parts never appear)."""
    rel, values = _direct_body(body, "upload_id")
    _check_job_write(request, workspace, name, rel)
    files.store_for(ctx(request), workspace, name).abort_direct_upload(rel, values["upload_id"])


# -- many small job inputs and outputs moved by the runner itself (storage/direct_blobs.py) ------


def _direct_paths(body: dict[str, Any], base: str = "") -> list[str]:
    paths = body.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise UserError("'paths' must be a non-empty list of file paths")
    if len(paths) > batches.MAX_FILES:
        raise UserError(f"'paths' may name at most {batches.MAX_FILES} files, not {len(paths)}")
    return [safe_relpath(f"{base}/{p}" if base else p) for p in paths]


@guarded(router, "POST", PREFIX + "/{name}/direct-reads", Permission.READ)
def direct_reads(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> Any:
    """``{"paths": [...]}``: for each file a URL that reads that blob only, for 15 minutes (Azure
    Blob with an account key; elsewhere a 400: read the files through ``…/contents/read``). A
    job token gets them for its own inputs and outputs only."""
    rels = _direct_paths(body)
    job = getattr(getattr(request.state, "principal", None), "job", None)
    if job is not None:
        check_datastore_direct_read(ctx(request), workspace, job, name, rels)
    urls = files.store_for(ctx(request), workspace, name).direct_urls(rels, "r")
    return {"value": [{"path": rel, "url": url} for rel, url in zip(rels, urls, strict=True)]}


@guarded(router, "POST", PREFIX + "/{name}/direct-writes", Permission.TRACK)
def direct_writes(request: Request, workspace: str, name: str, body: dict[str, Any] = Body(...)) -> Any:
    """``{"prefix", "paths": [...]}``: for each file (under ``prefix``) a URL that writes that blob
    only, for 15 minutes, and the headers its PUT sends (a Put Blob: the file appears whole or
    not at all). A job token gets them for its own outputs and artifacts only, as for ``PUT
    …/contents``."""
    base = safe_relpath(str(body.get("prefix") or ""), allow_empty=True)
    rels = _direct_paths(body, base)
    job = getattr(getattr(request.state, "principal", None), "job", None)
    if job is not None:
        for rel in [base] if base else rels:
            check_datastore_write(ctx(request), workspace, job, name, rel)
    urls = files.store_for(ctx(request), workspace, name).direct_urls(rels, "w")
    return {
        "headers": direct_blobs.PUT_HEADERS,
        "value": [{"path": rel, "url": url} for rel, url in zip(rels, urls, strict=True)],
    }


@guarded(router, "PUT", PREFIX + "/{name}/contents", Permission.TRACK)
async def write_files(request: Request, workspace: str, name: str, prefix: str = "") -> dict[str, Any]:
    """Write many small files in one request (job outputs): records of a JSON header line and the
    bytes (``storage/batches.py``), paths relative to ``prefix``. Each file is stored whole or not
    at all; on S3 and Azure Blob many at once."""
    base = safe_relpath(prefix, allow_empty=True)
    job = getattr(getattr(request.state, "principal", None), "job", None)
    if job is not None and base:  # a runner writes its own outputs and artifacts only
        await run_in_threadpool(check_datastore_write, ctx(request), workspace, job, name, base)
    store = files.store_for(ctx(request), workspace, name)

    def write(chunks: Iterator[bytes]) -> list[Any]:
        items = [(f"{base}/{path}" if base else path, data) for path, data in batches.parse_batch(chunks)]
        if job is not None and not base:
            for rel, _ in items:
                check_datastore_write(ctx(request), workspace, job, name, rel)
        return store.write_many(items) if items else []

    entries = await write_body(request, write)
    return {"value": [{"path": e.path, "size": e.size} for e in entries]}
