"""Object storage: a job's input download and output upload through Shoal vs the storage's own client.

    .venv/bin/python benchmarks/object_storage.py [--big-mb 256] [--small-count 1000] [--samples 3]
    .venv/bin/python benchmarks/object_storage.py --issue-sizes     # 1 GB and 10,000 files, once each

Starts moto's S3 server and (when ``make install`` put it in .cache/azurite, or it is on PATH)
the Azurite blob emulator on 127.0.0.1, and a real Shoal server with an ``s3`` and an
``azure_blob`` datastore on them. For each store it times, in the same run:

- one file of ``--big-mb`` MB and ``--small-count`` files of 4 KB, uploaded then downloaded
- through Shoal exactly as a job's runner moves outputs and inputs (``shoal.runtime.client``:
  on S3, HTTP to the server, which moves the bytes to and from the datastore; files up to 1 MB
  in batches, 8 requests at once; large files in parts; a large upload goes from the runner to
  the store itself, each part's request signed by the server; on Azure the runner moves the
  files itself with a SAS URL the server signs per blob, or per block of a large upload, and
  reads a large file through the server),
- and with the native client in this process (``s3fs`` put/get; ``azure-storage-blob`` with
  ``max_concurrency=4`` for the big file and 8 threads for the small files).

Each transfer is timed ``--samples`` times (median), each into an empty place (on Azure a fresh
container per transfer, dropped whole afterwards). The emulators keep everything in memory and
run on the same cores as the server and the client: the figures compare the paths, they are not
the speed of real S3 or Azure. Rewrites only its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _common import (
    DOCS,
    REPO,
    _stop,
    free_port,
    load_average,
    machine,
    median,
    ratio,
    scratch,
    shoal_server,
    today,
    write_section,
)

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ACCOUNT = "devstoreaccount1"
KEY_ID, SECRET = "bench", "bench-secret"


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port}")


def start_moto(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp,
    )
    _wait(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def azurite_command() -> str | None:
    local = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


def start_azurite(tmp: Path, command: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = ["--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence", "--skipApiVersionCheck"]
    proc = subprocess.Popen([command, *args, "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    _wait(port, proc)
    return proc, f"http://127.0.0.1:{port}"


class Store:
    """One datastore, its native client, and the Shoal runner client that reaches it."""

    def __init__(self, kind: str, url: str, server: Any, runner: Any) -> None:
        self.kind, self.url, self.runner = kind, url, runner
        self.name = f"bench{kind.replace('_', '')}"
        self.place = f"bench-{uuid.uuid4().hex[:10]}"
        if kind == "s3":
            import s3fs

            # moto may take over a minute to complete a 1 GB multipart upload on a busy machine:
            # the same read timeout as Shoal's own driver (storage/objects.py).
            self.fs = s3fs.S3FileSystem(
                key=KEY_ID,
                secret=SECRET,
                endpoint_url=url,
                skip_instance_cache=True,
                config_kwargs={"read_timeout": 600},
            )
            self.fs.mkdir(self.place)
            body = {"type": "s3", "bucket": self.place, "endpoint_url": url}
            body["credentials"] = {"access_key_id": KEY_ID, "secret_access_key": SECRET}
        else:
            from azure.storage.blob import BlobServiceClient

            conn = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={AZURITE_KEY};"
            conn += f"BlobEndpoint={url}/{ACCOUNT};"
            self.service = BlobServiceClient.from_connection_string(conn)
            self.container = self.service.create_container(self.place)
            body = {"type": "azure_blob", "account_name": ACCOUNT, "container_name": self.place, "endpoint": url}
            body["credentials"] = {"account_key": AZURITE_KEY}
        self.body, self.server, self.transfers = body, server, 0
        self._register()

    def _register(self) -> None:
        url = f"{self.server.url}/api/v1/workspaces/default/datastores/{self.name}"
        httpx.put(url, json=self.body, headers=self.server.headers).raise_for_status()
        # The native client above is built (and its driver imported) before anything is timed:
        # the same for the server's, which it builds at the datastore's first use.
        self.runner.list_files(self.name, "")

    def prepare(self) -> None:
        """Azure: every transfer gets a fresh container (the datastore re-pointed at it; not
        timed), dropped whole afterwards: removing 10,000 blobs one by one from Azurite took
        minutes and ran past the SDK's timeout, and a container that fills slows every call."""
        if self.kind != "azure_blob":
            return
        self.transfers += 1
        name = f"{self.place}-{self.transfers}"
        self.container = self.service.create_container(name)
        self.body = {**self.body, "container_name": name}
        self._register()

    # -- native ---------------------------------------------------------------------------------
    def native_put(self, files: list[Path], base: Path, prefix: str) -> None:
        keys = [f"{prefix}/{f.relative_to(base).as_posix()}" for f in files]
        if self.kind == "s3":
            self.fs.put([str(f) for f in files], [f"{self.place}/{k}" for k in keys])
            return

        def one(pair: tuple[Path, str]) -> None:
            with open(pair[0], "rb") as fh:
                self.container.upload_blob(pair[1], fh, overwrite=True, max_concurrency=4)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, zip(files, keys, strict=True)))

    def native_get(self, prefix: str, target: Path) -> None:
        if self.kind == "s3":
            self.fs.get(f"{self.place}/{prefix}/", str(target) + "/", recursive=True)
            return
        names = [b.name for b in self.container.list_blobs(name_starts_with=f"{prefix}/")]

        def one(name: str) -> None:
            dest = target / name[len(prefix) + 1 :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as fh:
                self.container.download_blob(name, max_concurrency=4).readinto(fh)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, names))

    def remove(self, prefix: str) -> None:
        """Drop a transfer's objects (not timed), so every transfer meets a store of the same size."""
        if self.kind == "s3":
            self.fs.rm(f"{self.place}/{prefix}", recursive=True)
            return
        self.container.delete_container()  # the transfer's own container (see prepare)

    # -- Shoal: what the runner does for a job's outputs and inputs ------------------------------
    def shoal_put(self, files: list[Path], base: Path, prefix: str) -> None:
        self.runner.upload_tree(self.name, prefix, base, files)

    def shoal_get(self, prefix: str, target: Path) -> None:
        listing = self.runner.list_files(self.name, prefix)
        items = [(f"{prefix}/{item['path']}", target / item["path"], item["size"]) for item in listing["value"]]
        self.runner.download_many(self.name, items)


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    store: Store, files: list[Path], base: Path, what: str, tmp: Path, samples: int
) -> dict[str, tuple[float, float]]:
    """Median seconds of ``samples`` uploads and downloads per path, each to and from its own
    prefix, which is removed afterwards. The two paths take turns (native first, then Shoal
    first, ...) and the store is emptied after each transfer: both emulators keep everything in
    memory and Azurite's cost per call grows with the number of blobs it holds (measured: about
    40 % more per 4 KB blob after 10,000 more), so whichever ran later would pay for the earlier
    one's files, and a change in the machine's load would fall on one path only."""
    paths = {"native": (store.native_put, store.native_get), "shoal": (store.shoal_put, store.shoal_get)}
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in paths}
    for i in range(samples):
        for name in list(paths) if i % 2 == 0 else list(paths)[::-1]:
            put, get = paths[name]
            prefix = f"{name}-{what}-{i}"
            store.prepare()
            times[name][0].append(timed(lambda: put(files, base, prefix)))  # noqa: B023 - called at once
            target = tmp / "dl" / prefix
            times[name][1].append(timed(lambda: get(prefix, target)))  # noqa: B023 - called at once
            shutil.rmtree(target, ignore_errors=True)
            store.remove(prefix)
    return {name: (median(ups), median(downs)) for name, (ups, downs) in times.items()}


def make_files(tmp: Path, big_mb: int, small_count: int) -> dict[str, tuple[Path, list[Path]]]:
    big = tmp / "big"
    big.mkdir()
    with open(big / "big.bin", "wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(big_mb):
            fh.write(block)
    small = tmp / "small"
    for i in range(small_count):
        path = small / f"d{i % 50:02d}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(4096))
    return {
        "big": (big, [big / "big.bin"]),
        "small": (small, sorted(p for p in small.rglob("*") if p.is_file())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mb", type=int, default=256, help="size of the one big file (the issue's figure: 1024)")
    parser.add_argument("--small-count", type=int, default=1000, help="number of 4 KB files (the issue's: 10000)")
    parser.add_argument("--samples", type=int, default=3, help="timed repetitions of each transfer")
    parser.add_argument("--out", type=Path, default=DOCS, help="markdown file to update")
    parser.add_argument("--stores", default="s3,azure_blob", help="which stores to measure (comma-separated)")
    parser.add_argument("--data", default="big,small", help="which transfers to measure: big, small or both")
    parser.add_argument("--no-write", action="store_true", help="print the figures only (a quick check)")
    parser.add_argument(
        "--issue-sizes", action="store_true", help="the issue's sizes: --big-mb 1024 --small-count 10000 --samples 1"
    )
    args = parser.parse_args(argv)
    if args.issue_sizes:
        args.big_mb, args.small_count = 1024, 10000
        if "--samples" not in (argv if argv is not None else sys.argv):
            args.samples = 1
    started = time.monotonic()

    sys.path.insert(0, str(REPO / "src"))
    from shoal.runtime.client import RunnerClient

    rows: list[tuple[str, str, str, float, float]] = []
    notes: list[str] = []
    args.load_at_start, args.started = load_average(), time.strftime("%H:%M", time.gmtime())
    procs: list[subprocess.Popen[bytes]] = []
    with scratch("shoal-bench-objstore-") as tmp:
        env_keys = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
        os.environ.update(env_keys)
        try:
            moto, moto_url = start_moto(tmp)
            procs.append(moto)
            emulators = [("s3", moto_url)] if "s3" in args.stores else []
            command = azurite_command()
            if "azure_blob" not in args.stores:
                pass
            elif command and shutil.which("node"):
                azurite, az_url = start_azurite(tmp, command)
                procs.append(azurite)
                emulators.append(("azure_blob", az_url))
            else:
                notes.append("Azurite not found (`make install` puts it in .cache/azurite): Azure Blob skipped.")
            data = make_files(tmp, args.big_mb, args.small_count)
            with shoal_server(tmp) as server:
                token = server.headers["Authorization"].split(" ", 1)[1]
                runner = RunnerClient(server.url, token, "default", "bench", None)
                for kind, url in emulators:
                    store = Store(kind, url, server, runner)
                    for what, (base, files) in data.items():
                        if what not in args.data:
                            continue
                        for path_name, (ups, downs) in measure(store, files, base, what, tmp, args.samples).items():
                            rows.append((kind, what, path_name, ups, downs))
                            print(kind, what, path_name, f"up {ups:.2f} s, down {downs:.2f} s", flush=True)
        finally:
            for proc in procs:
                _stop(proc, group=False)
            for key in env_keys:
                os.environ.pop(key, None)

    args.minutes = (time.monotonic() - started) / 60
    print(f"whole run {args.minutes:.1f} min", flush=True)
    if not args.no_write:
        write_section("object-storage", render(rows, args, notes), args.out)
    return 0


def render(rows: list[tuple[str, str, str, float, float]], args: argparse.Namespace, notes: list[str]) -> str:
    by = {(k, w, p): (u, d) for k, w, p, u, d in rows}
    sizes = {"big": f"1 file of {args.big_mb} MB", "small": f"{args.small_count} files of 4 KB"}
    lines = [
        "## Object storage: job inputs and outputs through Shoal vs the native client",
        "",
        f"`benchmarks/object_storage.py`, {today()}, {machine()}; `--big-mb {args.big_mb} --small-count "
        f"{args.small_count} --samples {args.samples}`, {args.started}-{time.strftime('%H:%M', time.gmtime())} UTC "
        f"(whole run {args.minutes:.0f} min), load average {args.load_at_start} at the start, {load_average()} at "
        "the end. Emulators on the same machine (moto's S3 server, Azurite; in memory), medians of "
        f"{args.samples} transfer(s). Shoal = what a job's runner does. On S3: HTTP to the server, files up to",
        "1 MB in batches of 256 per request, 8 requests in flight, the server moving 32 objects at once;",
        "larger files downloaded in ranges through the server, uploaded by the runner straight to the store",
        "(50 MB parts, 10 in flight, each PUT signed by the server, which completes the upload). On Azure the",
        "runner reads small files itself: for each batch of 256 the server signs a SAS URL per blob, and the",
        "runner GETs them on 8 threads (it writes them through the server, as on S3); a large upload is",
        "8 MB blocks the runner stages (10 in",
        "flight, each URL signed by the server, which commits the block list); a large download goes in ranges",
        "through the server. Native and Shoal",
        "take turns, and each transfer starts on an empty store (Azure: a fresh container, dropped afterwards).",
        "Native = s3fs put/get, azure-storage-blob with 8 threads (`max_concurrency=4` per blob), in one process.",
        "",
        "| store | data | native up | Shoal up | Shoal / native | native down | Shoal down | Shoal / native |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in dict.fromkeys(k for k, _, _, _, _ in rows):
        for what in ("big", "small"):
            if (kind, what, "native") not in by:
                continue
            nu, nd = by[(kind, what, "native")]
            su, sd = by[(kind, what, "shoal")]
            lines.append(
                f"| {kind} | {sizes[what]} | {nu:.2f} s | {su:.2f} s | {ratio(su, nu)} | "
                f"{nd:.2f} s | {sd:.2f} s | {ratio(sd, nd)} |"
            )
    lines += ["", *notes] if notes else []
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
