"""Real object stores for the tests: moto's S3 server and Azure's Blob emulator Azurite.

Both run as processes on free 127.0.0.1 ports, started once per test session and stopped by
their process id. ``Backend`` gives a test a fresh place on one of them (an S3 prefix, an Azure
container) as a datastore body to register, the filesystem behind it to seed and check files,
and the environment that points a server's ``SHOAL_ARTIFACT_ROOT`` at it.

moto runs with request signing enforced (``INITIAL_NO_AUTH_ACTION_COUNT``): the first three
calls create an IAM user, its key and its policy, and every later request must carry that key,
so a wrong secret is refused as it would be by S3. Azurite checks its account key itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Azurite's well-known development account (published in Azure's docs; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
BACKENDS = ("local", "s3", "azure_blob")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(proc: subprocess.Popen[bytes], port: int, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its id."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def azurite_command() -> str | None:
    """``azurite-blob`` from $SHOAL_TEST_AZURITE, the repository's .cache (``make install``), or PATH."""
    for candidate in (
        os.environ.get("SHOAL_TEST_AZURITE"),
        str(ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("azurite-blob")


def missing(kind: str) -> str | None:
    """Why the ``kind`` backend cannot run here, or None."""
    if kind == "s3":
        for mod in ("moto", "s3fs", "boto3", "flask"):
            try:
                __import__(mod)
            except ImportError:
                return f"the S3 tests need moto[server] and s3fs (pip install -e '.[dev]'): no {mod}"
    if kind == "azure_blob":
        try:
            __import__("adlfs")
        except ImportError:
            return "the Azure Blob tests need adlfs (pip install -e '.[dev]')"
        if azurite_command() is None:
            return "the Azure Blob tests need Azurite: `make install` puts it in .cache/azurite (needs npm)"
        if shutil.which("node") is None:
            return "the Azure Blob tests need node to run Azurite"
    return None


@dataclass
class MotoS3:
    proc: subprocess.Popen[bytes]
    url: str
    key_id: str
    secret: str

    def client(self, secret: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=secret or self.secret,
        )


def start_moto(workdir: Path) -> MotoS3:
    import boto3

    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3", "MOTO_PORT": str(port)}
    log = open(workdir / "moto.log", "wb")  # noqa: SIM115 - the child process writes it
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(proc, port, "moto_server", workdir / "moto.log")
        iam = boto3.client(
            "iam", endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup"
        )
        iam.create_user(UserName="shoal")
        key = iam.create_access_key(UserName="shoal")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="shoal", PolicyName="all", PolicyDocument=json.dumps(policy))
    except BaseException:
        stop(proc)
        raise
    server = MotoS3(proc, url, key["AccessKeyId"], key["SecretAccessKey"])
    server.client().create_bucket(Bucket="shoal-tests")
    return server


@dataclass
class Azurite:
    proc: subprocess.Popen[bytes]
    endpoint: str  # http://127.0.0.1:<port>: the service URL; the account is the first path segment

    @property
    def account_url(self) -> str:
        return f"{self.endpoint}/{AZURITE_ACCOUNT}"

    def connection_string(self, key: str = AZURITE_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={self.account_url};"
        )

    def new_container(self) -> str:
        from azure.storage.blob import BlobServiceClient

        name = f"shoal-{uuid.uuid4().hex[:16]}"
        with BlobServiceClient.from_connection_string(self.connection_string()) as service:
            service.create_container(name)
        return name

    def sas_token(self, container: str) -> str:
        from datetime import UTC, datetime, timedelta

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        perms = ContainerSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True)
        return generate_container_sas(
            AZURITE_ACCOUNT,
            container,
            account_key=AZURITE_KEY,
            permission=perms,
            expiry=datetime.now(UTC) + timedelta(hours=2),
        )


def start_azurite(workdir: Path) -> Azurite:
    command = azurite_command()
    assert command is not None
    port = free_port()
    log = open(workdir / "azurite.log", "wb")  # noqa: SIM115 - the child process writes it
    proc = subprocess.Popen(
        [
            command,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",  # the Python SDK may be newer than the emulator
            "--loose",
            "--silent",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    log.close()
    _wait_listening(proc, port, "azurite-blob", workdir / "azurite.log")
    return Azurite(proc, f"http://127.0.0.1:{port}")


@dataclass
class Backend:
    """A fresh, empty place on one backend for one test."""

    kind: str
    tmp: Path
    s3: MotoS3 | None = None
    azurite: Azurite | None = None
    place: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        if self.kind == "azure_blob":
            assert self.azurite is not None
            self.place = self.azurite.new_container()
        elif self.kind == "local":
            (self.tmp / self.place).mkdir(parents=True)

    @property
    def secret(self) -> str | None:
        """The secret a datastore on this backend holds (tests grep for it)."""
        if self.kind == "s3":
            return self.s3.secret
        if self.kind == "azure_blob":
            return AZURITE_KEY
        return None

    def datastore(self, *, credentials: str = "key", wrong: bool = False) -> dict[str, Any]:
        """A datastore body (what ``shoal datastore create -f`` sends) for this place.

        ``credentials``: ``key`` (account key / access keys), ``sas`` or ``connection_string``
        (Azure). ``wrong``: the same with a wrong secret.
        """
        if self.kind == "local":
            return {"type": "local", "path": str(self.tmp / self.place)}
        if self.kind == "s3":
            secret = "wrong" + self.s3.secret[5:] if wrong else self.s3.secret
            return {
                "type": "s3",
                "bucket": "shoal-tests",
                "prefix": self.place,
                "endpoint_url": self.s3.url,
                "credentials": {"access_key_id": self.s3.key_id, "secret_access_key": secret},
            }
        key = AZURITE_KEY[:-8] + "AAAAAAA=" if wrong else AZURITE_KEY
        body: dict[str, Any] = {
            "type": "azure_blob",
            "account_name": AZURITE_ACCOUNT,
            "container_name": self.place,
            "endpoint": self.azurite.endpoint,
            "protocol": "http",
        }
        if credentials == "sas":
            body["credentials"] = {"sas_token": self.azurite.sas_token(self.place)}
        elif credentials == "connection_string":
            body["credentials"] = {"connection_string": self.azurite.connection_string(key)}
            del body["endpoint"]
        else:
            body["credentials"] = {"account_key": key}
        return body

    def files(self) -> Any:
        """The datastore's files, as Shoal's own storage layer sees them (to seed and check)."""
        from shoal.storage.datastores import DatastoreFiles, resolve_datastore_fs

        body = self.datastore()
        public = {k: v for k, v in body.items() if k != "credentials"}
        fs, root = resolve_datastore_fs(
            self.kind,
            {"name": "seed", **public},
            {"credentials": body.get("credentials", {})},
            artifact_root=str(self.tmp),
            workspace="w",
        )
        return DatastoreFiles(fs, root)

    def artifact_root(self) -> tuple[str, dict[str, str]]:
        """``SHOAL_ARTIFACT_ROOT`` on this place and the environment its driver reads."""
        if self.kind == "s3":
            env = {
                # fsspec reads FSSPEC_<PROTOCOL>_<ARG> as default arguments of that driver.
                "FSSPEC_S3_ENDPOINT_URL": self.s3.url,
                "FSSPEC_S3_KEY": self.s3.key_id,
                "FSSPEC_S3_SECRET": self.s3.secret,
            }
            return f"s3://shoal-tests/{self.place}", env
        if self.kind == "azure_blob":
            return f"az://{self.place}/root", {"AZURE_STORAGE_CONNECTION_STRING": self.azurite.connection_string()}
        return str(self.tmp / self.place), {}

    def artifact_store(self) -> Any:
        """What ``artifact_root()`` points at, opened here with explicit credentials."""
        import fsspec

        from shoal.storage.filesystem import ArtifactStore

        root, _env = self.artifact_root()
        if self.kind == "s3":
            fs = fsspec.filesystem(
                "s3", key=self.s3.key_id, secret=self.s3.secret, endpoint_url=self.s3.url, skip_instance_cache=True
            )
        else:
            fs = fsspec.filesystem("abfs", connection_string=self.azurite.connection_string(), skip_instance_cache=True)
        return ArtifactStore(root.split("://", 1)[1], fs=fs, create=False)


class Cutter:
    """A TCP relay in front of a storage server whose link the test can cut and restore: the
    store "going away" mid-transfer, for real, without touching Shoal or the server."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()
