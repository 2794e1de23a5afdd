"""Block blobs moved with one plain HTTP request each, signed as Azure's own SDK signs them.

Many small files make the cost per request what counts: azure-storage-blob's async client runs
every call through a pipeline of policies (about 1.7 ms of a core per 4 KB blob, measured against
Azurite), so the server spent more of its time there than the native client it is compared with.
The same Blob REST calls made here on the driver's own aiohttp loop cost about a third of that.

Only the two calls that many small files need are made here (Put Blob, Get Blob with a range;
the staged blocks of large uploads stay with the SDK, faster there for 8 MB bodies), and only with
a Shared Key (account key, connection string with one) or a SAS token, read from adlfs's own
service client so the account URL and API version are the SDK's. Azure AD credentials (tokens,
refreshes) stay with the SDK: ``BlobRest.of`` answers None.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import email.utils
import hashlib
import hmac
import os
import re
import urllib.parse
from typing import Any

TRIES = 3  # the SDK's own retry policy also tries a failed call again (a dropped connection, a 5xx)
RETRY_STATUS = (408, 500, 502, 503, 504)
CONNECT_TIMEOUT = 20.0
READ_TIMEOUT = 600.0  # as the S3 driver's (storage/objects.py S3_READ_TIMEOUT)
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class BlobRestError(Exception):
    """A Blob service answer of 300 or more: its status and the service's error code and message,
    as the SDK's ``HttpResponseError`` (``status_code``, first line) carries them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message or 'request failed'} (HTTP {status}, ErrorCode:{code or 'none'})")
        self.status_code, self.error_code = status, code


def environment_settings_present() -> bool:
    """Whether a proxy variable or a ``.netrc`` could apply to requests (aiohttp's ``trust_env``)."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES) or os.environ.get("NETRC"):
        return True
    return os.path.exists(os.path.expanduser("~/.netrc"))


class BlobRest:
    """Signed Blob REST calls of one account on one event loop (the driver's)."""

    def __init__(self, account_url: str, account: str, *, key: str | None, sas: str | None, version: str) -> None:
        parts = urllib.parse.urlsplit(account_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base_path = parts.path.rstrip("/")  # "/<account>" on a path-style emulator, else ""
        self.account, self.version = account, version
        self._key = base64.b64decode(key) if key else None
        self._key_text = key  # as azure-storage-blob's SAS functions take it
        self._sas = (sas or "").lstrip("?")
        self._session: Any = None

    @classmethod
    def of(cls, service_client: Any) -> BlobRest | None:
        """For adlfs's ``service_client`` when it signs with a Shared Key or a SAS, else None."""
        if service_client is None:
            return None
        url = str(getattr(service_client, "url", "") or "")
        account = getattr(service_client, "account_name", None)
        version = getattr(service_client, "api_version", None)
        if not url or not account or not version:
            return None
        credential = getattr(service_client, "credential", None)
        key = getattr(credential, "account_key", None)
        sas = urllib.parse.urlsplit(url).query
        if credential is not None and not key:
            return None  # Azure AD or another credential the SDK refreshes
        if not key and "sig=" not in sas:
            return None  # anonymous access: rare, left to the SDK
        return cls(url.split("?", 1)[0], account, key=key, sas=None if key else sas, version=version)

    # -- the calls -----------------------------------------------------------------------------
    async def put_blob(self, container: str, blob: str, data: bytes) -> None:
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
        await self._call("PUT", container, blob, {}, headers, data)

    async def get_blob(self, container: str, blob: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of a blob, or of ``[start, end)``; a missing blob is FileNotFoundError."""
        headers = {}
        if end is not None:
            headers["x-ms-range"] = f"bytes={start or 0}-{end - 1}"
        elif start:
            headers["x-ms-range"] = f"bytes={start}-"
        return await self._call("GET", container, blob, {}, headers, None)

    async def list_blobs(self, container: str, prefix: str) -> list[tuple[str, int]]:
        """``(name, size)`` of every blob whose name starts with ``prefix`` (every page of a List
        Blobs, 5,000 at a time), folder markers left out (a name ending in ``/``, or adlfs's and
        ADLS's ``is_directory`` / ``hdi_isfolder`` metadata); a missing container lists nothing."""
        import xml.etree.ElementTree as ET

        found: list[tuple[str, int]] = []
        marker = ""
        while True:
            query = {"restype": "container", "comp": "list", "include": "metadata"}
            query.update({"prefix": prefix} if prefix else {})
            query.update({"marker": marker} if marker else {})
            try:
                page = ET.fromstring(await self._call("GET", container, "", query, {}, None))
            except FileNotFoundError:
                return found
            for item in page.iter("Blob"):
                name = item.findtext("Name") or ""
                found_meta = item.find("Metadata")
                meta = {} if found_meta is None else {m.tag.lower(): (m.text or "").lower() for m in found_meta}
                if name.endswith("/") or "true" in (meta.get("is_directory"), meta.get("hdi_isfolder")):
                    continue
                found.append((name, int(item.findtext("Properties/Content-Length") or 0)))
            marker = page.findtext("NextMarker") or ""
            if not marker:
                return found

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def close_on(self, loop: Any) -> None:
        """Close the connections from another thread (a store dropped, the process ending):
        best effort, so an aiohttp session is not left to warn that it was never closed."""
        if self._session is None or loop is None or not loop.is_running():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(timeout=5)

    # -- URLs another process uses (storage/direct_blobs.py) -----------------------------------
    @property
    def can_sign(self) -> bool:
        """Whether this account's key is known here: only a key signs a SAS for one blob."""
        return self._key is not None

    def blob_url(self, container: str, blob: str) -> str:
        return f"{self.origin}{self.base_path}/{urllib.parse.quote(container)}/{urllib.parse.quote(blob, safe='~/')}"

    def signed_url(
        self, container: str, blob: str, permission: str, seconds: float, query: dict[str, str] | None = None
    ) -> str:
        """The URL of one blob with a service SAS that lets its holder do ``permission`` (``r``
        read, ``w`` write) to that blob only, for ``seconds``: signed here with the account key
        (an HMAC; no call to the service), which never leaves this process."""
        from azure.storage.blob import generate_blob_sas

        if self._key_text is None:
            raise PermissionError("no account key to sign with")
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
        sas = generate_blob_sas(
            self.account, container, blob, account_key=self._key_text, permission=permission, expiry=expiry
        )
        search = "&".join(part for part in (urllib.parse.urlencode(query or {}), sas) if part)
        return f"{self.blob_url(container, blob)}?{search}"

    # -- plumbing ------------------------------------------------------------------------------
    def _session_now(self) -> Any:
        if self._session is None or self._session.closed:
            import aiohttp

            timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
            # As many connections as calls in flight (storage/objects.py CONCURRENCY and more).
            connector = aiohttp.TCPConnector(limit=64)
            # trust_env makes every request look up .netrc and the proxy variables in a worker
            # thread: only where one of them exists.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, trust_env=environment_settings_present()
            )
        return self._session

    async def _call(
        self, method: str, container: str, blob: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> bytes:
        import aiohttp
        import yarl

        path = f"{self.base_path}/{urllib.parse.quote(container)}"
        path += f"/{urllib.parse.quote(blob, safe='~/')}" if blob else ""  # no blob: a container call
        # The SAS goes on as it was given (already encoded).
        search = "&".join(part for part in (urllib.parse.urlencode(query), self._sas) if part)
        url = yarl.URL(f"{self.origin}{path}?{search}" if search else self.origin + path, encoded=True)
        delay = 0.2
        for attempt in range(1, TRIES + 1):
            signed = dict(headers)
            signed["x-ms-date"] = email.utils.formatdate(usegmt=True)
            signed["x-ms-version"] = self.version
            if self._key is not None:
                signed["Authorization"] = self._authorization(method, path, query, signed, len(body or b""))
            try:
                async with self._session_now().request(method, url, data=body, headers=signed) as response:
                    data = await response.read()
                    if response.status < 300:
                        return data
                    error = _error(response.status, data)
            except (TimeoutError, aiohttp.ClientConnectionError):
                if attempt == TRIES:
                    raise
            else:
                if response.status == 404 and method == "GET":
                    raise FileNotFoundError(2, str(error), f"{container}/{blob}") from error
                if response.status not in RETRY_STATUS or attempt == TRIES:
                    raise error
            await asyncio.sleep(delay)
            delay *= 4
        raise AssertionError("unreachable")

    def _authorization(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], size: int) -> str:
        """Shared Key, as the Blob service documents it (and azure-storage-blob computes it)."""
        assert self._key is not None
        ms = sorted((k.lower(), v.strip()) for k, v in headers.items() if k.lower().startswith("x-ms-"))
        lines = [
            method,
            "",  # Content-Encoding
            "",  # Content-Language
            str(size) if size else "",
            "",  # Content-MD5
            headers.get("Content-Type", ""),
            "",  # Date (x-ms-date is sent instead)
            "",  # If-Modified-Since
            "",  # If-Match
            "",  # If-None-Match
            "",  # If-Unmodified-Since
            "",  # Range (x-ms-range is sent instead)
        ]
        resource = f"/{self.account}{path}" + "".join(f"\n{k.lower()}:{v}" for k, v in sorted(query.items()))
        text = "\n".join(lines) + "\n" + "".join(f"{k}:{v}\n" for k, v in ms) + resource
        signature = base64.b64encode(hmac.new(self._key, text.encode(), hashlib.sha256).digest()).decode()
        return f"SharedKey {self.account}:{signature}"


def _error(status: int, body: bytes) -> BlobRestError:
    text = body.decode("utf-8", errors="replace")
    code = re.search(r"<Code>(.*?)</Code>", text, re.S)
    message = re.search(r"<Message>(.*?)</Message>", text, re.S)
    return BlobRestError(
        status,
        code.group(1).strip() if code else "",
        (message.group(1).strip().splitlines() or [""])[0] if message else "",
    )
