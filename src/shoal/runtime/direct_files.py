"""The runner's side of small files moved straight to and from Azure Blob
(``storage/direct_blobs.py``): a GET or a PUT of each file to the URL the server signed for it,
on a keep-alive connection of the calling thread (the runner's transfer threads each have one).

A signed URL is a credential for its blob for 15 minutes: no message here ever contains one
(errors name the store's answer only).
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse

from shoal.runtime.direct_upload import DirectUploadFailed

TRIES = 3  # a dropped keep-alive connection or a 5xx is tried again
TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0


class DirectTransferFailed(DirectUploadFailed):
    """The store could not be reached or refused a file: the caller moves the files another way."""


class StoreConnections:
    """One keep-alive connection to the store per thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _connection(self, parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.origin == (parts.scheme, parts.netloc):
            return conn
        self.close()
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname or "", parts.port, timeout=CONNECT_TIMEOUT)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            # A store that does not answer from here (a runner in a network namespace, a
            # firewall) is given up at once, not tried file after file.
            raise DirectTransferFailed(f"the store cannot be reached from here ({type(exc).__name__}: {exc})") from None
        if conn.sock is not None:
            conn.sock.settimeout(TIMEOUT)
        self._local.conn, self._local.origin = conn, (parts.scheme, parts.netloc)
        return conn

    def close(self) -> None:
        """Close this thread's connection (a transfer thread that runs out of work)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def call(self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> bytes:
        """The body of the store's answer; a refusal, or a store that stays away, is
        :class:`DirectTransferFailed` naming the status and Azure's error code."""
        parts = urllib.parse.urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Length"] = str(len(body))
        why = ""
        for _ in range(TRIES):
            conn = self._connection(parts)
            try:
                conn.request(method, target, body=body, headers=sent)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                why = f"{type(exc).__name__}: {exc}"
                self.close()
                continue
            if response.status < 300:
                return answer
            code = re.search(rb"<Code>([^<]{1,100})</Code>", answer)
            why = f"{response.status} {code.group(1).decode(errors='replace') if code else response.reason}"
            if response.status < 500:
                break  # refused (an expired signature, a missing blob): no retry helps
        raise DirectTransferFailed(why)
