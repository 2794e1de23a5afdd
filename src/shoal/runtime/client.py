"""The runner's HTTP client: job token, retries, and finding the server again after a restart.

Built on ``http.client`` rather than httpx: the runner starts for every job, and importing
httpx alone costs it about 90 ms. One keep-alive connection per thread (heartbeat, log shipper
and the main thread each have theirs).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.runtime.direct_files import StoreConnections
from shoal.runtime.direct_upload import DirectUploadFailed, send_parts
from shoal.runtime.file_sinks import _PartFile, _write_whole
from shoal.storage.batches import batched

RETRY_FOR = 600.0  # a server restart must not kill running jobs: keep trying this long
BEGIN_RETRY_FOR = 10.0  # asking for a direct transfer (signed URLs): then the way through the server
# A server that answers but fails the same request this many times in a row (a datastore it
# cannot read, a bug) will not get better by waiting: the error is passed on and fails the job.
# 503 (the server starting or shutting down) is retried for RETRY_FOR like a server that is away.
SERVER_ERROR_TRIES = 5
TIMEOUT = 60.0
# After an upload's last byte the server still completes it on the store: for a large object on a
# busy store (a multipart upload of a gigabyte) that can take minutes, not a network timeout.
UPLOAD_WAIT = 600.0
TRANSFERS = 8  # requests of one input or output in flight at once
CHUNK = 1024 * 1024
# Files up to SMALL travel in batches (``PUT …/contents``, ``POST …/contents/read``) of up to
# BATCH_FILES files and BATCH_BYTES bytes: one request to the server for many files, which it
# moves to and from the store many at once. The server's own caps are higher (storage/batches.py).
SMALL = 1024 * 1024


class ServerGone(Exception):
    pass


@dataclass
class Reply:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class ServerRefused(Exception):
    """The server said no; ``code`` and ``message`` are its own words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    @classmethod
    def from_reply(cls, method: str, path: str, reply: Reply) -> ServerRefused:
        try:
            err = reply.json().get("error") or {}
        except (ValueError, AttributeError):
            err = {}
        code = str(err.get("code") or f"HTTP_{reply.status}")
        message = str(err.get("message") or reply.text[:300])
        return cls(code, f"{message} ({method} {path.split('?')[0]})")


class Stale(Exception):
    """The server ended or replaced this attempt: stop without reporting anything."""


class RunnerClient:
    def __init__(self, url: str, token: str, workspace: str, job: str, home: Path | None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.workspace = workspace
        self.job = job
        self.home = home
        self._local = threading.local()
        # Datastores whose large uploads, small reads and small writes go through the server (the
        # server offers no direct way there, or the store cannot be reached from here).
        self._not_direct: set[str] = set()
        # What the run spec says each datastore offers (``offered``); None: ask each one.
        self._direct_small: set[str] | None = None
        self._direct_small_writes: set[str] | None = None
        self._direct_large: set[str] | None = None
        self._not_direct_reads: set[str] = set()
        self._not_direct_writes: set[str] = set()
        self._store = StoreConnections()  # this thread's connection to the store itself

    # -- plumbing ---------------------------------------------------------------------------

    def _rediscover(self) -> None:
        """A local server that restarted may listen on a new port: read server.json again."""
        if self.home is None:
            return
        try:
            info = json.loads((self.home / "server.json").read_text())
        except (OSError, ValueError):
            return
        url = info.get("url")
        if isinstance(url, str) and url and url.rstrip("/") != self.url:
            self.url = url.rstrip("/")

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "url", None) != self.url:
            if conn is not None:
                conn.close()
            parts = urllib.parse.urlsplit(self.url)
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT)
            self._local.conn, self._local.url = conn, self.url
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: bytes | Iterable[bytes] | None,
        headers: dict[str, str],
        sink: Any = None,
        wait: float | None = None,
    ) -> Reply:
        target = f"{urllib.parse.urlsplit(self.url).path.rstrip('/')}/api/v1{path}"
        if params:
            target += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        conn = self._connection()
        all_headers = {"Authorization": f"Bearer {self.token}", **headers}
        chunked = body is not None and not isinstance(body, bytes)
        if sink is not None and hasattr(sink, "headers"):
            all_headers.update(sink.headers())  # a download resumed: the bytes it still needs
        conn.request(method, target, body=body, headers=all_headers, encode_chunked=chunked)
        if wait is not None and conn.sock is not None:
            conn.sock.settimeout(wait)  # the body is sent; the answer may take this long
        try:
            response = conn.getresponse()
        finally:
            if wait is not None and conn.sock is not None:
                conn.sock.settimeout(TIMEOUT)
        if sink is not None and response.status < 400:
            if hasattr(sink, "begin"):
                sink.begin(response.status)
            while block := response.read(CHUNK):
                sink(block)
            if response.length:  # http.client ends a short body quietly: the connection dropped
                raise http.client.IncompleteRead(b"", response.length)
            return Reply(response.status, b"")
        return Reply(response.status, response.read())

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        content_factory: Any = None,
        headers: dict[str, str] | None = None,
        sink: Any = None,
        retry_for: float = RETRY_FOR,
        wait: float | None = None,
    ) -> Reply:
        deadline = time.monotonic() + retry_for
        delay = 0.2
        failures = 0  # 5xx answers in a row (a lost connection starts the count again)
        headers = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        stale_tried = False
        while True:
            # A streamed body cannot be replayed: make it anew for every try.
            body = content_factory() if content_factory is not None else content
            conn = getattr(self._local, "conn", None)
            kept_alive = conn is not None and conn.sock is not None
            try:
                reply = self._send(method, path, params, body, headers, sink, wait)
            except ServerRefused:
                self._drop_connection()  # refused in the middle of a response: the rest is unread
                raise
            except (OSError, http.client.HTTPException) as exc:  # timeouts are OSErrors too
                failures = 0
                self._drop_connection()
                if kept_alive and not stale_tried and isinstance(exc, ConnectionError):
                    # A kept-alive connection the server closed while it sat idle (uvicorn waits
                    # 5 s; a thread reading a batch of files from the store waits longer): again
                    # at once on a new one, as HTTP clients do, not after a pause.
                    stale_tried = True
                    continue
                self._rediscover()
                if time.monotonic() > deadline:
                    raise ServerGone(f"cannot reach the Shoal server at {self.url}") from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if reply.status == 409 and (
                ("attempt" in reply.text and "replaced" in reply.text) or "already finished" in reply.text
            ):
                raise Stale(reply.text)
            if reply.status >= 500 and time.monotonic() < deadline:
                failures = failures + 1 if reply.status != 503 else 0
                if failures < SERVER_ERROR_TRIES:
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
            if reply.status >= 400:
                raise ServerRefused.from_reply(method, path, reply)
            return reply

    @property
    def _job(self) -> str:
        return f"/workspaces/{self.workspace}/jobs/{self.job}"

    # -- job --------------------------------------------------------------------------------

    def run_spec(self) -> dict[str, Any]:
        return self.request("GET", f"{self._job}/runspec").json()

    def report_soon(self, status: str, *, unless_done_within: float = 0.0) -> Callable[[], None]:
        """``report(status)`` on a thread and connection of its own while the caller goes on (the
        Running report travels while the command starts); the returned function waits for it and
        raises what it raised. With ``unless_done_within``, the report waits that long first and
        is not sent at all if the caller is done by then: the outcome's report records the state
        on its way (the server puts Finalizing between Running and Completed), one request fewer
        for a job whose outputs upload in a moment."""
        failed: list[BaseException] = []
        done = threading.Event()

        def send() -> None:
            try:
                if unless_done_within and done.wait(unless_done_within):
                    return
                self.report(status)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                failed.append(exc)
            finally:
                self._drop_connection()
                self._store.close()

        thread = threading.Thread(target=send, name=f"shoal-report-{status}", daemon=True)
        thread.start()

        def wait() -> None:
            done.set()
            thread.join()
            if failed:
                raise failed[0]

        return wait

    def heartbeat(self) -> dict[str, Any]:
        return self.request("POST", f"{self._job}/heartbeat", retry_for=0).json()

    def report(
        self,
        status: str,
        *,
        exit_code: int | None = None,
        error: dict[str, Any] | None = None,
        outputs: dict[str, str] | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status, "exit_code": exit_code, "error": error}
        if outputs:
            body["outputs"] = outputs  # control outputs' values, as the job wrote them
        if files:
            body["files"] = files  # small outputs and artifacts (materialize.inline_uploads)
        return self.request("POST", f"{self._job}/status", json_body=body).json()

    def append_log(self, path: str, offset: int, data: bytes) -> int:
        reply = self.request(
            "POST",
            f"{self._job}/logs",
            params={"path": path, "offset": offset},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return int(reply.json()["size"])

    def log_metrics(self, metrics: list[dict[str, Any]]) -> None:
        """One MLflow ``runs/log-batch`` of this job's run; no retries (system metrics are best effort)."""
        path = f"/workspaces/{self.workspace}/mlflow/api/2.0/mlflow/runs/log-batch"
        self.request("POST", path, json_body={"run_id": self.job, "metrics": metrics}, retry_for=0)

    # -- files ------------------------------------------------------------------------------

    def _ds(self, datastore: str) -> str:
        return f"/workspaces/{self.workspace}/datastores/{datastore}"

    def list_files(self, datastore: str, path: str) -> dict[str, Any]:
        return self.request("GET", f"{self._ds(datastore)}/files", params={"path": path}).json()

    def download(self, datastore: str, path: str, target: Path) -> None:
        """One file, streamed into ``.<name>.part`` and renamed into place. A transfer cut off (a
        server restart) resumes where it stopped: the retry asks for the rest with ``Range``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with _PartFile(target) as part:
            self.request("GET", f"{self._ds(datastore)}/content", params={"path": path}, sink=part)
            part.finish()

    def offered(self, direct: dict[str, list[str]] | None) -> None:
        """The run spec's ``direct``: the datastores on which this runner may move files itself
        (``small``, ``large``); it then asks no other datastore for signed URLs or parts."""
        if direct is not None:
            self._direct_small = set(direct.get("small") or [])
            # A server that says nothing of writes offers them where it offers reads.
            self._direct_small_writes = set(direct.get("small_writes", direct.get("small")) or [])
            self._direct_large = set(direct.get("large") or [])

    def upload(self, datastore: str, path: str, source: Path) -> None:
        """One file: a large one straight to the store where the server offers it (S3, Azure Blob), else
        streamed to the server, which writes it to the store."""
        offered = self._direct_large is None or datastore in self._direct_large
        if offered and datastore not in self._not_direct and self._upload_direct(datastore, path, source):
            return

        def chunks() -> Iterator[bytes]:
            with open(source, "rb") as fh:
                while block := fh.read(CHUNK):
                    yield block

        self.request(
            "PUT",
            f"{self._ds(datastore)}/content",
            params={"path": path, "digest": "false"},
            content_factory=chunks,
            headers={"Content-Type": "application/octet-stream"},
            wait=UPLOAD_WAIT,
        )

    def _upload_direct(self, datastore: str, path: str, source: Path) -> bool:
        """``storage/direct_uploads.py``: the parts go to presigned URLs, the server publishes the
        file. False (the caller sends it through the server) when the datastore offers no direct
        path or the store cannot be reached from here (a runner in a network namespace): the
        datastore's later files then go through the server at once."""
        size = source.stat().st_size
        if size <= SMALL:
            return False
        base = self._ds(datastore) + "/direct-uploads"
        # Retried for a few seconds only: a kept-alive connection the server has just closed, or
        # one 5xx, must not send a large file the slow way; a server that stays away is waited
        # for by the way through the server.
        try:
            offer = self.request("POST", base, json_body={"path": path, "size": size}, retry_for=BEGIN_RETRY_FOR).json()
        except ServerRefused:
            self._not_direct.add(datastore)
            return False
        except ServerGone:
            return False
        ticket = {"path": path, "upload_id": offer["upload_id"]}

        def sign(number: int) -> tuple[str, dict[str, str]]:
            signed = self.request("POST", f"{base}/sign", json_body={**ticket, "parts": [number]}).json()
            return str(signed["parts"][0]["url"]), dict(signed["parts"][0]["headers"])

        try:
            send_parts(source, size, int(offer["part_size"]), int(offer["parts"]), sign)
            self.request("POST", f"{base}/complete", json_body={**ticket, "size": size}, wait=UPLOAD_WAIT)
            return True
        except (DirectUploadFailed, ServerRefused) as exc:
            self._direct_failed(datastore, f"sending {path} to", exc)
            with contextlib.suppress(ServerRefused, ServerGone):
                self.request("POST", f"{base}/abort", json_body=ticket, retry_for=30)
            return False

    def _direct_failed(self, datastore: str, what: str, exc: Exception) -> None:
        """A direct transfer that failed (the store cannot be reached from here, or refused):
        this one and every later one of the datastore go through the server, said once."""
        if datastore not in self._not_direct | self._not_direct_reads | self._not_direct_writes:
            print(
                f"[shoal] {what} datastore '{datastore}' directly failed ({exc}); its files go through the server",
                file=sys.stderr,
                flush=True,
            )
        for kept in (self._not_direct, self._not_direct_reads, self._not_direct_writes):
            kept.add(datastore)

    def _signed_urls(self, datastore: str, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """``…/direct-reads`` or ``…/direct-writes`` (``storage/direct_blobs.py``: Azure Blob): a
        URL for each file; None where the server offers none (the datastore is then not asked
        again) or cannot be reached in a few seconds (the way through the server waits for it)."""
        refused = self._not_direct_reads if kind == "reads" else self._not_direct_writes
        offered = self._direct_small if kind == "reads" else self._direct_small_writes
        if datastore in refused or (offered is not None and datastore not in offered):
            return None
        try:
            return self.request(  # type: ignore[no-any-return]
                "POST", f"{self._ds(datastore)}/direct-{kind}", json_body=body, retry_for=BEGIN_RETRY_FOR
            ).json()
        except ServerRefused as exc:
            refused.add(datastore)
            if exc.code != "UNSUPPORTED":  # not the store's kind: a refusal worth a line in the log
                print(f"[shoal] datastore '{datastore}': no direct {kind} ({exc}); through the server", file=sys.stderr)
        except ServerGone:
            pass
        return None

    def _upload_batch_direct(self, datastore: str, prefix: str, items: list[tuple[str, Path]]) -> bool:
        """Small files PUT to the store by this thread, each to the URL the server signed for it
        (a Put Blob: whole or nothing). False where that cannot be done: send them to the server."""
        offer = self._signed_urls(datastore, "writes", {"prefix": prefix, "paths": [rel for rel, _ in items]})
        if offer is None:
            return False
        headers = dict(offer["headers"])
        try:
            for (_rel, source), item in zip(items, offer["value"], strict=True):
                self._store.call("PUT", str(item["url"]), headers, source.read_bytes())
        except DirectUploadFailed as exc:
            self._direct_failed(datastore, "writing to", exc)
            return False
        return True

    def _download_batch_direct(self, datastore: str, pairs: list[tuple[str, Path]]) -> bool:
        """Small files read from the store by this thread, each from the URL the server signed for
        it. False where that cannot be done: read them through the server (which also says what
        is wrong with a file that is missing)."""
        offer = self._signed_urls(datastore, "reads", {"paths": [path for path, _ in pairs]})
        if offer is None:
            return False
        try:
            for (_path, target), item in zip(pairs, offer["value"], strict=True):
                _write_whole(target, self._store.call("GET", str(item["url"])))
        except DirectUploadFailed as exc:
            self._direct_failed(datastore, "reading from", exc)
            return False
        return True

    def upload_batch(self, datastore: str, prefix: str, items: list[tuple[str, Path]]) -> None:
        """Several small files: straight to the store where the server signs URLs for them (Azure
        Blob), else in one request to the server (see SMALL), whose body is built once and resent
        whole if the server must be tried again."""
        if self._upload_batch_direct(datastore, prefix, items):
            return
        body = bytearray()
        for rel, source in items:
            data = source.read_bytes()
            body += json.dumps({"path": rel, "size": len(data)}, separators=(",", ":")).encode() + b"\n"
            body += data
        self.request(
            "PUT",
            f"{self._ds(datastore)}/contents",
            params={"prefix": prefix},
            content=bytes(body),
            headers={"Content-Type": "application/octet-stream"},
            wait=UPLOAD_WAIT,
        )

    def download_batch(self, datastore: str, pairs: list[tuple[str, Path]]) -> None:
        """Several small files: straight from the store where the server signs URLs for them
        (Azure Blob), else in one response from the server; each is written whole (renamed into
        place)."""
        if self._download_batch_direct(datastore, pairs):
            return
        records = _Records(dict(pairs))
        self.request(
            "POST", f"{self._ds(datastore)}/contents/read", json_body={"paths": list(records.targets)}, sink=records
        )
        records.finish()

    def upload_tree(self, datastore: str, prefix: str, folder: Path, files: Iterable[Path]) -> int:
        prefix = prefix.rstrip("/")
        small: list[tuple[str, Path, int]] = []
        tasks = []
        for f in files:
            rel = f.relative_to(folder).as_posix()
            size = f.stat().st_size
            if size <= SMALL:
                small.append((rel, f, size))
            else:
                target = f"{prefix}/{rel}" if prefix else rel
                tasks.append(lambda f=f, target=target: self.upload(datastore, target, f))
        count = len(small) + len(tasks)
        for group in batched(small):
            tasks.append(lambda g=group: self.upload_batch(datastore, prefix, [(r, f) for r, f, _ in g]))
        self.run_parallel(tasks)
        return count

    def download_many(self, datastore: str, items: Iterable[tuple[str, Path] | tuple[str, Path, int]]) -> None:
        """Files ``(path, target)``, or ``(path, target, size)`` as a listing gives them: the
        small ones then travel in batches."""
        small: list[tuple[str, Path, int]] = []
        tasks = []
        for item in items:
            if len(item) == 3 and 0 <= item[2] <= SMALL:  # type: ignore[misc]
                small.append(item)  # type: ignore[arg-type]
            else:
                tasks.append(lambda p=item[0], t=item[1]: self.download(datastore, p, t))
        for group in batched(small):
            tasks.append(lambda g=group: self.download_batch(datastore, [(p, t) for p, t, _ in g]))
        self.run_parallel(tasks)

    def run_parallel(self, tasks: list[Any]) -> None:
        """Run transfers on up to TRANSFERS threads: many small files cost a round trip each,
        and the server streams several at once to an object store. Each thread has its own
        keep-alive connection, closed when it runs out of work; the first error stops the rest
        and is raised."""
        if len(tasks) <= 1:
            for task in tasks:
                task()
            return
        pending = iter(tasks)
        lock = threading.Lock()
        failed: list[BaseException] = []

        def worker() -> None:
            try:
                while not failed:
                    with lock:
                        task = next(pending, None)
                    if task is None:
                        return
                    try:
                        task()
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                        failed.append(exc)
            finally:
                self._drop_connection()
                self._store.close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(TRANSFERS, len(tasks)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise failed[0]


class _Records:
    """Reads a batch response (``{"path", "size"}`` header line, then the bytes; or an error
    record) and writes each file whole. A retried request starts the batch again."""

    def __init__(self, targets: dict[str, Path]) -> None:
        self.targets = targets
        self.buf = bytearray()
        self.done: set[str] = set()

    def begin(self, status: int) -> None:
        self.buf.clear()

    def __call__(self, block: bytes) -> None:
        self.buf += block
        while True:
            end = self.buf.find(b"\n")
            if end < 0:
                return
            head = json.loads(bytes(self.buf[:end]))
            if "error" in head:
                err = head["error"] or {}
                raise ServerRefused(str(err.get("code") or "ERROR"), str(err.get("message") or head))
            path, size = str(head["path"]), int(head["size"])
            if len(self.buf) < end + 1 + size:
                return
            target = self.targets.get(path)
            if target is None:
                raise ServerRefused("BAD_RESPONSE", f"the server sent {path!r}, which was not asked for")
            data = bytes(self.buf[end + 1 : end + 1 + size])
            del self.buf[: end + 1 + size]
            _write_whole(target, data)
            self.done.add(path)

    def finish(self) -> None:
        missing = [p for p in self.targets if p not in self.done]
        if self.buf or missing:
            raise ServerRefused(
                "BAD_RESPONSE", f"the batch ended early: {len(missing)} of {len(self.targets)} files missing"
            )
