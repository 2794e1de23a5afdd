"""A server killed (SIGKILL) and started again in the middle of a large transfer, on S3 (moto) and
Azure Blob (Azurite): the runner's upload is tried again and lands whole (on S3 its direct upload
goes on where it was), its download resumes
from where it stopped (``Range``), and nothing half-written is ever visible, in the store or on
the client's disk. The CLI's download (``shoal data download``'s code) resumes the same way.

The files are as large as each step needs, no larger: every transfer here moves in parts (8 to
50 MB parts, 8 MB ranges, 1 MB pieces), so a killed one is cut with parts done and parts to go
at 64 MB already. Only the direct upload to S3 needs more than 100 MB: its parts are 50 MB and the
server is killed at the third one's signing. (moto reads the whole object for each ranged read:
a 160 MB download cost it 20 reads of 160 MB.)"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import Cli, exited

MB = 1024 * 1024


def _server(cli: Cli) -> dict:
    return json.loads((cli.home / "server.json").read_text())


def _kill(cli: Cli) -> None:
    """SIGKILL, as a crash: nothing of the server's shutdown runs."""
    pid = _server(cli)["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if exited(pid):
            return
        time.sleep(0.05)
    raise AssertionError(f"server {pid} still alive")


def _restart(cli: Cli, port: int) -> None:
    _kill(cli)
    cli("server", "start", "--detach", "--port", str(port))


def test_a_server_restart_mid_transfer_resumes_or_retries_and_publishes_nothing_partial(tmp_path, cloud_backend):
    from shoal.client.downloads import download_uri
    from shoal.client.transport import Transport
    from shoal.runtime import client as runner_client

    cli = Cli(tmp_path / "home")
    cli("server", "start", "--detach")
    try:
        server = _server(cli)
        port = int(server["url"].rsplit(":", 1)[1])
        token = (cli.home / "token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        ds = f"{server['url']}/api/v1/workspaces/default/datastores/ext"
        assert httpx.put(ds, json=cloud_backend.datastore(), headers=headers).status_code == 200
        store = cloud_backend.files()
        runner = runner_client.RunnerClient(server["url"], token, "default", "nojob", cli.home)

        # -- upload: 64 MB, killed after 48 MB (the store has its first parts, 8 and 16 MB, by then)
        data = os.urandom(MB) * 64
        sha = hashlib.sha256(data).hexdigest()
        tries = []

        def body():
            tries.append(0)
            for i in range(0, len(data), MB):
                if len(tries) == 1 and i == 48 * MB:
                    assert store.list_files("") == []  # parts uploaded, nothing visible
                    _restart(cli, port)
                    assert store.list_files("") == []  # the killed upload never completes
                yield data[i : i + MB]

        runner.request(
            "PUT",
            "/workspaces/default/datastores/ext/content",
            params={"path": "big.bin"},
            content_factory=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert len(tries) == 2  # cut off once, sent again whole
        [stored] = store.list_files("")
        assert (stored.path, stored.size) == ("big.bin", len(data))
        size, chunks = store.read_chunks("big.bin")
        assert hashlib.sha256(b"".join(chunks)).hexdigest() == sha

        # -- a direct upload (the runner sends the parts, S3's parts or Azure's blocks, the server
        # signs each one): the server killed while the first parts are on their way; the third
        # part's signing waits for it, the parts sent stay, and the new server completes the
        # upload, whole -------------------------------------------------------------------------
        # 104 MB in 50 MB parts on S3, 48 MB in 8 MB blocks on Azure: more than three parts each.
        direct = os.urandom(MB) * (104 if cloud_backend.kind == "s3" else 48)
        direct_sha = hashlib.sha256(direct).hexdigest()
        source = tmp_path / "direct.bin"
        source.write_bytes(direct)
        signed: list[int] = []
        real_request = runner.request

        def request(method, path, **kw):
            if path.endswith("/direct-uploads/sign"):
                signed.append(kw["json_body"]["parts"][0])
                if len(signed) == 3:
                    assert [f.path for f in store.list_files("")] == ["big.bin"]  # nothing visible
                    _restart(cli, port)
            return real_request(method, path, **kw)

        runner.request = request
        try:
            runner.upload("ext", "direct.bin", source)
        finally:
            del runner.request
        parts = 3 if cloud_backend.kind == "s3" else 6
        # Every part signed, none skipped. A part whose kept-alive connection to the store closed
        # while the server was away is signed again and resent (staged twice, it is one block).
        assert set(signed) == set(range(1, parts + 1)), signed
        if cloud_backend.kind == "s3":
            assert store.fs.info(f"{store.root}/direct.bin")["ETag"].strip('"').endswith(f"-{parts}")
        else:
            from azure.storage.blob import BlobServiceClient

            with BlobServiceClient.from_connection_string(cloud_backend.azurite.connection_string()) as service:
                committed, _ = service.get_blob_client(cloud_backend.place, "direct.bin").get_block_list()
            assert len(committed) == parts  # the runner's blocks, committed by the new server
        size, chunks = store.read_chunks("direct.bin")
        assert hashlib.sha256(b"".join(chunks)).hexdigest() == direct_sha
        store.remove("direct.bin")

        # -- the runner's download: killed after 32 MB (half: what the sockets still hold is far
        # less), resumed with Range ---------------------------------------------------------
        statuses: list[int] = []
        real_begin, real_write = runner_client._PartFile.begin, runner_client._PartFile.__call__

        def begin(self, status):
            statuses.append(status)
            real_begin(self, status)

        def write(self, block):
            real_write(self, block)
            if len(statuses) == 1 and self.written >= 32 * MB:
                assert not (tmp_path / "runner" / "big.bin").exists()  # only the .part file
                statuses.append(-1)
                _restart(cli, port)

        runner_client._PartFile.begin, runner_client._PartFile.__call__ = begin, write
        try:
            runner.download("ext", "big.bin", tmp_path / "runner" / "big.bin")
        finally:
            runner_client._PartFile.begin, runner_client._PartFile.__call__ = real_begin, real_write
        assert statuses == [200, -1, 206]  # the rest came as a range, not the whole file again
        assert hashlib.sha256((tmp_path / "runner" / "big.bin").read_bytes()).hexdigest() == sha
        assert [p.name for p in (tmp_path / "runner").iterdir()] == ["big.bin"]

        # -- the CLI's download: the same, through the SDK's transport -----------------------
        transport = Transport(server["url"], token)
        real_stream = transport.stream
        killed = []

        def stream(method, path, **kw):
            ctx = real_stream(method, path, **kw)
            if path.endswith("/content") and not killed:
                killed.append(kw.get("headers"))

                class Cut:
                    def __enter__(self):
                        response = ctx.__enter__()
                        real_iter = response.iter_bytes

                        def iter_bytes(size):
                            for n, piece in enumerate(real_iter(size)):
                                yield piece
                                if n == 20:
                                    _restart(cli, port)

                        response.iter_bytes = iter_bytes
                        return response

                    def __exit__(self, *exc):
                        return ctx.__exit__(*exc)

                return Cut()
            killed.append(kw.get("headers"))
            return ctx

        transport.stream = stream
        target = download_uri(transport, "default", "azureml://datastores/ext/paths/big.bin", tmp_path / "cli")
        assert killed[0] is None and killed[1]["Range"].startswith("bytes=")  # resumed, not restarted
        assert hashlib.sha256(target.read_bytes()).hexdigest() == sha
        assert [p.name for p in (tmp_path / "cli").iterdir()] == ["big.bin"]
        transport.close()
    finally:
        cli("server", "stop", check=False)
    names = [f.path for f in cloud_backend.files().list_files("")]
    assert names == ["big.bin"]  # one object, whole; no temporary or partial one
    assert not list(Path(tmp_path).rglob("*.part"))
