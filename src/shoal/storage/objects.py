"""Transfers on object stores (S3 through s3fs, Azure Blob through adlfs) on the driver's own loop.

fsspec's buffered files move a large object one part at a time and a small one with a call per
step (folder check, temporary key, copy, delete). Here the coroutines of the driver run directly
on its event loop, several at once:

- a small object is one ``PUT``: atomic on both stores, so it needs no temporary key;
- a large one is a multipart upload (S3) or staged blocks (Azure) to its final key, parts of
  ``PART_SIZE`` (the first ones smaller) sent a few at a time while the next one is received; the object
  appears only when the upload is completed (the block list committed), which the caller does
  only after the size and hash check: an upload cut off is aborted and leaves nothing;
- many small objects are written or read ``CONCURRENCY`` at a time;
- a large read is fetched in ranges, several at once, and handed on in order.

``object_io(fs)`` answers None for any other filesystem (local disk, ``memory://``): callers then
use the generic path.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import urllib.parse
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, TypeVar

from shoal.storage.azure_rest import BlobRest, environment_settings_present

# s3fs's own part size (its put of a local file uses it too): moto and S3 spend a fixed cost per
# part, so larger parts are faster; a body of at most one part is one PUT. A streamed
# upload may have at most 10,000 parts: past 1,000 the parts grow (5 TB fits).
PART_SIZE = 50 * 1024 * 1024
PARTS_IN_FLIGHT = 4  # so at most about 250 MB of one upload is held in memory
FIRST_PART = 8 * 1024 * 1024  # S3's smallest part is 5 MB
AZURE_PART_SIZE = 8 * 1024 * 1024
AZURE_PARTS_IN_FLIGHT = 8
CONCURRENCY = 32
READ_RANGE = 8 * 1024 * 1024
T = TypeVar("T")


class ObjectIO:
    """Calls of one object store's driver, made from worker threads onto the driver's loop."""

    read_range = READ_RANGE
    part_size = PART_SIZE
    first_part = FIRST_PART
    parts_in_flight = PARTS_IN_FLIGHT

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.fs.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T]) -> T:
        return self.submit(coro).result()

    # -- whole objects -------------------------------------------------------------------------
    async def put(self, full: str, data: bytes) -> None:
        await self.fs._pipe_file(full, data)

    async def get(self, full: str, start: int | None = None, end: int | None = None) -> bytes:
        return bytes(await self.fs._cat_file(full, start=start, end=end))

    async def get_bounded(self, full: str, limit: int) -> bytes:
        """At most ``limit + 1`` bytes of an object (a caller that sees more knows it is too big).
        Both stores refuse a range on an empty object (416): that one is read whole."""
        try:
            return await self.get(full, 0, limit + 1)
        except Exception as exc:
            if "range" not in str(exc).lower():
                raise
            return await self.get(full)

    async def size(self, full: str) -> int:
        """The size of an object; a missing one is FileNotFoundError (a folder too)."""
        info = await self.fs._info(full)
        if info.get("type") != "file":
            raise IsADirectoryError(full)
        return int(info.get("size") or 0)

    async def list_below(self, full: str) -> list[tuple[str, int]]:
        """``(path, size)`` of every object under the folder ``full`` (paths relative to it;
        folder markers left out), in one listing of the store (its pages): none when there is
        no such folder. Not every kind lists itself: NotImplementedError."""
        raise NotImplementedError

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Write every ``(path, bytes)``, ``CONCURRENCY`` at a time; the first error is raised
        after the calls in flight have ended (each object is whole or absent)."""
        self.run(_bounded(self.put(full, data) for full, data in items))

    def get_stream(self, fulls: list[str], limit: int) -> Iterator[bytes]:
        """The bytes of every object in order (at most ``limit + 1`` of each), with up to
        ``CONCURRENCY`` calls always in flight: each is yielded as soon as it and the ones before
        it have arrived, with no wait for a whole group. A failed call is :class:`ItemFailed`
        once the objects before it have been yielded; the calls after it are cancelled."""
        calls = iter(enumerate(fulls))
        ahead: deque[tuple[int, concurrent.futures.Future[bytes]]] = deque()
        try:
            while True:
                while len(ahead) < CONCURRENCY and (call := next(calls, None)) is not None:
                    ahead.append((call[0], self.submit(self.get_bounded(call[1], limit))))
                if not ahead:
                    return
                index, future = ahead.popleft()
                try:
                    data = future.result()
                except Exception as exc:
                    raise ItemFailed(index, exc) from exc
                yield data
        finally:
            for _index, future in ahead:
                future.cancel()

    def read_ranges(self, full: str, size: int, start: int = 0) -> Iterator[bytes]:
        """The bytes of one object from ``start`` in order, ``read_range`` at a time with a few
        ranges ahead."""
        step = self.read_range
        if start == 0 and size <= step:
            yield self.run(self.get(full))
            return
        starts = iter(range(start, size, step))
        ahead: deque[concurrent.futures.Future[bytes]] = deque()
        try:
            while True:
                while len(ahead) < self.parts_in_flight and (begin := next(starts, None)) is not None:
                    ahead.append(self.submit(self.get(full, begin, min(begin + step, size))))
                if not ahead:
                    return
                yield ahead.popleft().result()
        finally:
            for future in ahead:
                future.cancel()

    # -- multipart uploads: the kinds below ----------------------------------------------------
    async def begin(self, full: str) -> Any:
        raise NotImplementedError

    async def put_part(self, session: Any, number: int, data: bytes) -> Any:
        raise NotImplementedError

    async def complete(self, session: Any, parts: list[Any]) -> None:
        raise NotImplementedError

    async def abort(self, session: Any) -> None:
        raise NotImplementedError


class S3IO(ObjectIO):
    # s3fs's own range for a large get: S3 (and moto, which copies the whole object for every
    # ranged GET) spends a fixed cost per request, so fewer, larger ranges are faster.
    read_range = PART_SIZE

    async def begin(self, full: str) -> Any:
        bucket, key, _ = self.fs.split_path(full)
        mpu = await self.fs._call_s3("create_multipart_upload", Bucket=bucket, Key=key)
        return (full, bucket, key, mpu["UploadId"])

    async def put_part(self, session: Any, number: int, data: bytes) -> Any:
        _full, bucket, key, upload_id = session
        out = await self.fs._call_s3(
            "upload_part", Bucket=bucket, Key=key, PartNumber=number, UploadId=upload_id, Body=data
        )
        return {"PartNumber": number, "ETag": out["ETag"]}

    async def complete(self, session: Any, parts: list[Any]) -> None:
        full, bucket, key, upload_id = session
        await self.fs._call_s3(
            "complete_multipart_upload",
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
        self.fs.invalidate_cache(full)

    async def abort(self, session: Any) -> None:
        _full, bucket, key, upload_id = session
        await self.fs._call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)

    async def list_below(self, full: str) -> list[tuple[str, int]]:
        bucket, key, _ = self.fs.split_path(full)
        prefix = f"{key.rstrip('/')}/" if key else ""
        found: list[tuple[str, int]] = []
        token: dict[str, str] = {}
        while True:
            page = await self.fs._call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, **token)
            found += [(o["Key"][len(prefix) :], int(o.get("Size") or 0)) for o in page.get("Contents") or []]
            if not page.get("IsTruncated"):
                return [(rel, size) for rel, size in found if rel and not rel.endswith("/")]
            token = {"ContinuationToken": page["NextContinuationToken"]}

    # -- uploads whose parts another process sends (storage/direct_uploads.py) -----------------
    def session_of(self, full: str, upload_id: str) -> Any:
        bucket, key, _ = self.fs.split_path(full)
        return (full, bucket, key, upload_id)

    async def sign_part(self, session: Any, number: int) -> tuple[str, dict[str, str]]:
        """The URL and signed headers of a PUT of part ``number`` of this upload, with an
        unsigned payload (the sender hashes nothing); S3 takes it for 15 minutes."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.config import Config

        _full, bucket, key, upload_id = session
        await self.fs.set_session()
        client = await self.fs.get_s3(bucket)
        credentials = client._request_signer._credentials
        if credentials is None:
            raise PermissionError("no credentials to sign with")
        # The client's own URL for the call (its addressing style, its quoting of the key),
        # without the query signature: the headers carry it instead.
        params = {"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number}
        url = await client.generate_presigned_url("upload_part", Params=params, ExpiresIn=60)
        parts = urllib.parse.urlsplit(url)
        query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if not k.lower().startswith("x-amz-")]
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        request = AWSRequest(method="PUT", url=url)
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        frozen = await credentials.get_frozen_credentials()
        S3SigV4Auth(frozen, "s3", client.meta.region_name).add_auth(request)
        return url, {k: v for k, v in request.headers.items() if k.lower() != "content-length"}

    async def list_parts(self, session: Any) -> list[dict[str, Any]]:
        """The parts the store holds for this upload, in order (every page of the listing)."""
        _full, bucket, key, upload_id = session
        parts: list[dict[str, Any]] = []
        marker = 0
        while True:
            page = await self.fs._call_s3(
                "list_parts", Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
            parts += page.get("Parts") or []
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])


class AzureIO(ObjectIO):
    """Block blobs: blocks are staged under ids private to this upload and become the blob only
    when the block list is committed; uncommitted blocks are never visible and the service
    drops them (after a week) on its own.

    With a Shared Key or a SAS, small objects are written and objects read with plain signed
    requests (``storage/azure_rest.py``: a third of the SDK's cost per call, which is what many
    small files pay); blocks and large single writes stay with the SDK (measured: a 1 GB upload
    took twice as long with aiohttp sending 8 MB bodies), and with an Azure AD identity
    everything does. Parts are smaller than on S3 (Azure has no per-part
    cost to speak of, and a smaller part starts the store writing sooner) and more of them
    are in flight."""

    part_size = AZURE_PART_SIZE
    parts_in_flight = AZURE_PARTS_IN_FLIGHT

    def __init__(self, fs: Any) -> None:
        super().__init__(fs)
        _skip_env_lookups(fs)
        self.rest = BlobRest.of(getattr(fs, "service_client", None))
        if self.rest is not None:  # as adlfs closes its own client when the filesystem goes
            weakref.finalize(self, self.rest.close_on, getattr(fs, "loop", None))

    async def put(self, full: str, data: bytes) -> None:
        if self.rest is None or len(data) > REST_PUT_MAX:
            return await super().put(full, data)
        container, blob, _ = self.fs.split_path(full)
        # As azure-storage-blob writes a blob, with no metadata: adlfs reads a blob without its
        # ``is_directory`` mark as a file (only its folder markers need one), and Azurite spends
        # about 0.2 ms of its core on each PUT that carries a metadata header (docs/benchmarks.md).
        await self.rest.put_blob(container, blob, data)

    async def get(self, full: str, start: int | None = None, end: int | None = None) -> bytes:
        if self.rest is None:
            return await super().get(full, start, end)
        container, blob, version = self.fs.split_path(full)
        if version:  # a version id: the SDK knows how to ask for one
            return await super().get(full, start, end)
        return await self.rest.get_blob(container, blob, start, end)

    async def list_below(self, full: str) -> list[tuple[str, int]]:
        """One List Blobs (with the blobs' metadata, which says which are adlfs's folder markers)."""
        container, folder, _ = self.fs.split_path(full)
        prefix = f"{folder.rstrip('/')}/" if folder else ""
        if self.rest is not None:
            found = await self.rest.list_blobs(container, prefix)
        else:  # an Azure AD identity: the SDK's listing, read as adlfs reads it
            from azure.core.exceptions import ResourceNotFoundError

            items = []
            async with self.fs.service_client.get_container_client(container=container) as client:
                with contextlib.suppress(ResourceNotFoundError):
                    async for item in client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
                        items.append(item)
            details = await self.fs._details([i for i in items if not str(i.name).endswith("/")])
            found = [(d["name"].split("/", 1)[1], int(d["size"] or 0)) for d in details if d["type"] == "file"]
        return [(name[len(prefix) :], size) for name, size in found if name[len(prefix) :]]

    async def begin(self, full: str) -> Any:
        container, blob, _ = self.fs.split_path(full)
        return (container, blob, uuid.uuid4().hex)

    async def put_part(self, session: Any, number: int, data: bytes) -> Any:
        container, blob, tag = session
        block_id = azure_block_id(tag, number)
        async with self.fs.service_client.get_blob_client(container=container, blob=blob) as client:
            await client.stage_block(block_id, data, length=len(data))
        return block_id

    async def complete(self, session: Any, parts: list[Any]) -> None:
        container, blob, _tag = session
        from azure.storage.blob import BlobBlock

        async with self.fs.service_client.get_blob_client(container=container, blob=blob) as client:
            await client.commit_block_list([BlobBlock(block_id=b) for b in parts])
        self.fs.invalidate_cache(self.fs._parent(f"{container}/{blob}"))

    async def abort(self, session: Any) -> None:
        return None  # nothing was committed: there is nothing to remove

    # -- uploads whose blocks another process stages (storage/direct_blobs.py) -----------------
    async def uncommitted_blocks(self, session: Any) -> dict[str, int]:
        """The blob's staged, not yet committed blocks: id (as ``put_part`` names them) -> size."""
        container, blob, _tag = session
        async with self.fs.service_client.get_blob_client(container=container, blob=blob) as client:
            try:
                _committed, uncommitted = await client.get_block_list("uncommitted")
            except Exception as exc:
                if getattr(exc, "status_code", None) == 404:
                    return {}  # no blob and no block staged for it
                raise
        return {str(b.id): int(b.size) for b in uncommitted}


def azure_block_id(tag: str, number: int) -> str:
    """The id of block ``number`` of the upload ``tag``, as azure-storage-blob takes it (it sends
    it base64-encoded once more). Every block id of a blob must have the same length, whichever
    way the block came (the server's ``put_part``, a runner's direct upload): the upload's tag
    (32 hex digits) and a number of fixed width."""
    return base64.b64encode(f"{tag}-{number:06d}".encode()).decode()


REST_PUT_MAX = 1024 * 1024  # the batch path's largest file (runtime/client.py SMALL)


def _skip_env_lookups(fs: Any) -> None:
    """azure-core's aiohttp transport trusts the environment: every request looks up ``.netrc``
    and the proxy variables, each in a worker thread (a fifth of the server's time when a job
    moves many small files). Where neither exists there is nothing to find, so the look-ups
    are skipped; with a proxy or a ``.netrc`` the transport is left as it is."""
    if environment_settings_present():
        return
    transport = getattr(getattr(fs, "service_client", None), "_pipeline", None)
    transport = getattr(transport, "_transport", None)
    if getattr(transport, "session", True) is None and hasattr(transport, "_use_env_settings"):
        transport._use_env_settings = False  # read when its session opens, at the first request


# Completing a multipart upload of a large object can take a store minutes (S3 documents it; moto
# on a busy machine takes over a minute for 1 GB); botocore's 60 s read timeout would give up and
# retry an upload the store has meanwhile completed.
S3_READ_TIMEOUT = 600


def s3_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for s3fs with the longer read timeout, keeping any other botocore settings
    from the call or from fsspec's configuration (``FSSPEC_S3_CONFIG_KWARGS``, fsspec.config)."""
    import fsspec.config

    configured = (fsspec.config.conf.get("s3") or {}).get("config_kwargs") or {}
    config = {"read_timeout": S3_READ_TIMEOUT, **configured, **(options.get("config_kwargs") or {})}
    return {**options, "config_kwargs": config}


def object_io(fs: Any) -> ObjectIO | None:
    """The fast path for ``fs`` when it is an object store this module knows, else None."""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if not hasattr(fs, "loop"):
        return None
    if "s3" in protocols and hasattr(fs, "_call_s3"):
        return S3IO(fs)
    if "abfs" in protocols and hasattr(fs, "service_client"):
        return AzureIO(fs)
    return None


class ItemFailed(Exception):
    """One call of a batch failed: ``index`` says which, ``error`` is the driver's own error."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


async def _bounded(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Await every coroutine, at most ``CONCURRENCY`` at once, results in order. On the first
    error no new call starts; the calls already running end before it is raised as
    :class:`ItemFailed`."""
    pending = list(coros)
    results: list[Any] = [None] * len(pending)
    gate = asyncio.Semaphore(CONCURRENCY)
    failed: list[ItemFailed] = []

    async def one(i: int, coro: Awaitable[T]) -> None:
        async with gate:
            if failed:
                coro.close()  # type: ignore[attr-defined]
                return
            try:
                results[i] = await coro
            except Exception as exc:  # noqa: BLE001 - raised below once every call has ended
                failed.append(ItemFailed(i, exc))

    await asyncio.gather(*(one(i, c) for i, c in enumerate(pending)))
    if failed:
        raise failed[0]
    return results


class ObjectWriter:
    """One object written in parts from a worker thread: ``write`` as bytes arrive, then
    ``commit`` (the object appears, whole) or ``abort`` (nothing appears)."""

    def __init__(self, io: ObjectIO, full: str, *, part_size: int | None = None) -> None:
        self.io, self.full, self.part_size = io, full, part_size or io.part_size
        self.first_part = min(io.first_part, self.part_size)
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._session: Any = None
        self._sent: deque[concurrent.futures.Future[Any]] = deque()
        self._parts: list[Any] = []

    def _next_size(self) -> int:
        """The first parts are smaller (``first_part``, doubling up to ``part_size``): the store
        starts writing soon after the body starts arriving, not a whole part later."""
        number = len(self._parts) + len(self._sent)
        return self.part_size if number > 16 else min(self.part_size, self.first_part << number)

    def write(self, chunk: bytes) -> None:
        self._buffer.append(bytes(chunk))
        self._buffered += len(chunk)
        # A part goes as soon as the body is past it, so the store is writing while the rest
        # arrives; a body of at most the first part is a single PUT.
        while self._buffered > (size := self._next_size()):
            self._send(self._take(size))
            if len(self._parts) + len(self._sent) in (1000, 2000, 4000):
                self.part_size *= 2

    def _take(self, size: int) -> bytes:
        """The first ``size`` buffered bytes, copied once (only the chunk on the boundary is split)."""
        taken: list[bytes] = []
        need = size
        while need:
            head = self._buffer.popleft()
            if len(head) > need:
                head, rest = head[:need], head[need:]
                self._buffer.appendleft(rest)
            taken.append(head)
            need -= len(head)
        self._buffered -= size
        return b"".join(taken)

    def _send(self, part: bytes) -> None:
        if self._session is None:
            self._session = self.io.run(self.io.begin(self.full))
        number = len(self._parts) + len(self._sent) + 1
        self._sent.append(self.io.submit(self.io.put_part(self._session, number, part)))
        # Back pressure: the receiving waits while the store's parts in flight are on their way.
        while len(self._sent) >= self.io.parts_in_flight:
            self._parts.append(self._sent.popleft().result())

    def commit(self) -> None:
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._session is None:  # it fitted in one part: a single PUT
            self.io.run(self.io.put(self.full, data))
            return
        if data:
            self._send(data)
        while self._sent:
            self._parts.append(self._sent.popleft().result())
        self.io.run(self.io.complete(self._session, self._parts))

    def abort(self) -> None:
        """Best effort: the parts sent are dropped and the upload abandoned, never completed."""
        self._buffer.clear()
        while self._sent:
            with contextlib.suppress(Exception):
                self._sent.popleft().result()
        if self._session is not None:
            with contextlib.suppress(Exception):
                self.io.run(self.io.abort(self._session))
