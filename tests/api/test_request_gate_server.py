"""Against a real server process over real HTTP: request bodies cannot exhaust the server's memory
(chunked bodies are capped as they arrive, and nothing is read before the token is checked),
stalled bodies time out, and the ``shoal user|role|audit`` verbs drive a team server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOAL = [sys.executable, "-m", "shoal.cli.main"]
BODY_TIMEOUT = 1.5
MB = 1024 * 1024


class Server:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
        self.env.update(SHOAL_HOME=str(home), SHOAL_BODY_TIMEOUT=str(BODY_TIMEOUT), COLUMNS="200")
        self.env["XDG_CONFIG_HOME"] = str(home / "config")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*SHOAL, *args], capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"shoal {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}")
        return proc

    def start(self) -> None:
        self.cli("server", "start", "--detach")
        info = json.loads((self.home / "server.json").read_text())
        self.url, self.pid = info["url"], int(info["pid"])
        self.token = (self.home / "token").read_text().strip()

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("gate-home"))
    s.start()
    try:
        yield s
    finally:
        s.cli("server", "stop", check=False)


def raw_request(url: str, method: str, path: str, headers: dict[str, str], body: Iterator[bytes]):
    """Send headers, then ``body`` from a thread while this one reads the answer: the server may
    answer (and close) long before the body ends, as it should."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    sent = [0]

    def pump() -> None:
        try:
            for piece in body:
                sock.sendall(piece)
                sent[0] += len(piece)
        except OSError:
            pass  # the server answered and closed: what we want

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    answered = time.monotonic()
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(h.split(":")[1]) for h in lines[1:] if h.lower().startswith("content-length:")), 0)
    while len(rest) < length:
        more = sock.recv(65536)
        if not more:
            break
        rest += more
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
    thread.join(timeout=1)  # a stalled body's thread ends on its own (a daemon)
    return status, json.loads(rest[:length] or b"{}"), answered


def chunked(total: int, piece: int = MB) -> Iterator[bytes]:
    block = b"[" + b"1," * (piece // 2 - 1) + b"1]"
    for _ in range(total // piece):
        yield f"{len(block):x}\r\n".encode() + block + b"\r\n"
    yield b"0\r\n\r\n"


JOBS = "/api/v1/workspaces/default/jobs"
JSON_CHUNKED = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}


def test_bodies_cannot_exhaust_the_servers_memory(server):
    before = server.rss()
    # 100 MB with no token: 401 from the headers alone.
    status, body, _ = raw_request(server.url, "POST", JOBS, JSON_CHUNKED, chunked(100 * MB))
    assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    # 100 MB chunked (no Content-Length) with a token: cut off at the 4 MB cap as it arrives.
    auth = {**JSON_CHUNKED, "Authorization": f"Bearer {server.token}"}
    status, body, _ = raw_request(server.url, "POST", JOBS, auth, chunked(100 * MB))
    assert status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE", body
    # The same on an MLflow route, in MLflow's error format.
    mlflow = "/api/v1/workspaces/default/mlflow/api/2.0/mlflow/runs/log-batch"
    status, body, _ = raw_request(server.url, "POST", mlflow, auth, chunked(100 * MB))
    assert status == 413 and body["error_code"] == "INVALID_PARAMETER_VALUE", body
    # MLflow's DELETE routes read a JSON body as well.
    delete = "/api/v1/workspaces/default/mlflow/api/2.0/mlflow/registered-models/delete"
    status, body, _ = raw_request(server.url, "DELETE", delete, auth, chunked(20 * MB))
    assert status == 413, body
    grown = (server.rss() - before) / MB
    assert grown < 40, f"the server grew by {grown:.0f} MiB"
    # A chunked body that is not JSON is refused by its content type, as one with a length is.
    plain = {"Content-Type": "text/plain", "Transfer-Encoding": "chunked", "Authorization": f"Bearer {server.token}"}
    status, body, _ = raw_request(server.url, "POST", JOBS, plain, chunked(MB))
    assert status == 415 and body["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    # The server still answers.
    assert server.cli("workspace", "list", "--query", "[].name", "-o", "tsv").stdout.split() == ["default"]


def test_a_stalled_body_times_out(server):
    headers = {"Content-Type": "application/json", "Content-Length": "1000", "Authorization": f"Bearer {server.token}"}

    def stall() -> Iterator[bytes]:
        yield b'{"command": '
        time.sleep(BODY_TIMEOUT * 4)  # sends nothing more

    started = time.monotonic()
    status, body, answered = raw_request(server.url, "POST", JOBS, headers, stall())
    took = answered - started
    assert status == 408 and body["error"]["code"] == "REQUEST_TIMEOUT", body
    assert BODY_TIMEOUT <= took < BODY_TIMEOUT * 3, took
    assert "stalled" in body["error"]["message"]


def test_user_role_and_audit_verbs(server, monkeypatch, capsys):
    """The verbs in this process (the real CLI entry point, the real server over HTTP)."""
    from shoal.cli.main import main

    monkeypatch.setenv("SHOAL_SERVER_URL", server.url)
    monkeypatch.setenv("COLUMNS", "200")

    def shoal(*args: str, token: str = server.token) -> tuple[int, str, str]:
        monkeypatch.setenv("SHOAL_TOKEN", token)
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = shoal("user", "create", "-n", "alice")
    assert code == 0 and json.loads(out)["admin"] is False, err
    assert shoal("role", "assignment", "create", "--assignee", "alice", "--role", "reader")[0] == 0
    alice = shoal("user", "token", "create", "-u", "alice", "--name", "ci", "--query", "token", "-o", "tsv")[1].strip()
    assert alice.startswith("shoalu_")
    me = json.loads(shoal("account", "show", token=alice)[1])
    assert (me["name"], me["kind"], me["roles"]) == ("alice", "user", [{"workspace": "default", "role": "Reader"}])
    # Alice cannot list users; her own tokens need no --user (she is the signed-in user).
    code, _, err = shoal("user", "list", token=alice)
    assert code == 1 and "PERMISSION_DENIED" in err
    code, out, _ = shoal("user", "token", "list", token=alice)
    assert [(t["name"], t["state"]) for t in json.loads(out)] == [("ci", "active")]
    out = shoal("user", "list", "-o", "table")[1]
    assert "alice" in out and "Display Name" in out
    records = json.loads(shoal("audit", "list", "--user", "alice", "-o", "json")[1])
    assert [(r["method"], r["path"], r["status"], r["outcome"]) for r in records] == [
        ("GET", "/api/v1/users", 403, "denied")
    ]
    assert records[0]["client"] == "127.0.0.1"
    shown = json.loads(shoal("user", "show", "-n", "alice")[1])
    assert shown["roles"] == [{"workspace": "default", "role": "Reader"}]
    # Custom roles: an admin defines one (flags or Azure's JSON), assigns it, and shows it.
    definition = json.dumps(
        {
            "Name": "Model Reader",
            "Actions": ["Microsoft.MachineLearningServices/workspaces/models/read"],
            "NotActions": [],
        }
    )
    code, out, err = shoal("role", "create", "--role-definition", definition)
    assert code == 0 and json.loads(out)["type"] == "custom", err
    code, _, err = shoal("role", "create", "-n", "Mine", "--action", "*", token=alice)
    assert code == 1 and "PERMISSION_DENIED" in err
    assert shoal("role", "assignment", "create", "--assignee", "alice", "--role", "model reader")[0] == 0
    table = shoal("role", "list", "-o", "table")[1]
    assert "Model Reader" in table and "custom" in table and "workspaces/models/read" in table
    code, _, err = shoal("role", "delete", "-n", "Model Reader", "--yes")
    assert code == 1 and "still assigned" in err
    # An Owner reads its workspace's audit records, not the whole log.
    assert shoal("role", "assignment", "create", "--assignee", "alice", "--role", "Owner")[0] == 0
    code, out, err = shoal("audit", "list", "--workspace", "default", "-o", "json", token=alice)
    assert code == 0 and {r["workspace"] for r in json.loads(out)} == {"default"}, err
    code, _, err = shoal("audit", "list", "-o", "json", token=alice)
    assert code == 1 and "PERMISSION_DENIED" in err
