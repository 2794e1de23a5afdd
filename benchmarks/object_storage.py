"""Object storage: a job's input download and output upload through Shoal vs the storage's own client.

    .venv/bin/python benchmarks/object_storage.py [--big-mb 256] [--small-count 1000] [--samples 3]
    .venv/bin/python benchmarks/object_storage.py --issue-sizes     # 1 GB and 10,000 files, 3 samples
    .venv/bin/python benchmarks/object_storage.py --stores azure_blob --data small --small-count 3000 --out /tmp/x.md

Starts moto's S3 server and (when ``make install`` put it in .cache/azurite, or it is on PATH)
the Azurite blob emulator on 127.0.0.1, and a real Shoal server with an ``s3`` and an
``azure_blob`` datastore on them. For each store it times, in the same run:

- one file of ``--big-mb`` MB and ``--small-count`` files of 4 KB, uploaded then downloaded
- through Shoal exactly as a job's runner moves outputs and inputs (``shoal.runtime.client``:
  on S3, HTTP to the server, which moves the bytes to and from the datastore; files up to 1 MB
  in batches, 8 requests at once; large files in parts; a large upload goes from the runner to
  the store itself, each part's request signed by the server; on Azure the runner reads small
  files itself with a SAS URL the server signs per blob, writes them through the server as on
  S3 (``--direct-small-writes``: PUTs them itself), stages a large upload's blocks itself, each
  URL signed by the server, and reads a large file through the server),
- and with the native client in this process (``s3fs`` put/get; ``azure-storage-blob`` with
  ``max_concurrency=4`` for the big file and 8 threads for the small files).

Each transfer is timed ``--samples`` times (median). Every upload meets a new, empty emulator
process on the same port (the old one stopped by its pid; the datastore re-registered), and the
download after it reads what it wrote: Azurite keeps what it was given (memory is not given back
when a container is dropped) and finds a blob by going through the account's blobs, so a call
costs more the more it holds, and a long-lived one made later transfers pay for earlier ones.
Azurite keeps blobs in memory (``--azurite-disk``: in a folder). The emulators run on the same
cores as the server and the client: the figures compare the paths, they are not the speed of
real S3 or Azure. Rewrites only its own section of docs/benchmarks.md (``--out`` another file).
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


def azurite_command() -> str | None:
    local = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


class Emulator:
    """moto's S3 server or Azurite on one port it keeps when restarted, so a datastore's
    endpoint stays valid. ``restart`` stops the process (by its pid) and starts a new, empty one:
    Azurite finds a blob by scanning the account's blobs and never gives memory back (measured:
    6.9 GB and a whole core after the 1 GB files, a GET 1 ms with 1,500 blobs stored and 5 ms
    with 10,000, dropped containers or not), so each transfer must meet a new one to be
    comparable with the next. ``disk``: Azurite keeps blobs in a folder (``--location``)
    rather than in memory."""

    def __init__(self, kind: str, tmp: Path, command: str | None = None, *, disk: bool = False) -> None:
        self.kind, self.tmp, self.command, self.disk = kind, tmp, command, disk
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start()

    def _args(self, workdir: Path) -> list[str]:
        if self.kind == "s3":
            return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        assert self.command is not None
        where = ["--location", str(workdir)] if self.disk else ["--inMemoryPersistence"]
        return [
            self.command,
            *("--blobHost", "127.0.0.1", "--blobPort", str(self.port), *where),
            *("--skipApiVersionCheck", "--disableTelemetry", "--silent"),
        ]

    def start(self) -> None:
        self.starts += 1
        workdir = self.tmp / f"{self.kind}-{self.starts}"
        workdir.mkdir()
        out = subprocess.DEVNULL
        self.proc = subprocess.Popen(self._args(workdir), stdout=out, stderr=out, cwd=workdir)
        _wait(self.port, self.proc)
        self.workdir = workdir

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, group=False)
            self.proc = None
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        self.stop()
        self.start()


class Store:
    """One datastore, its native client, and the Shoal runner client that reaches it."""

    def __init__(self, emulator: Emulator, server: Any, runner: Any, *, small_writes: bool = False) -> None:
        self.kind, self.url, self.emulator, self.runner = emulator.kind, emulator.url, emulator, runner
        self.name = f"bench{self.kind.replace('_', '')}"
        self.place = f"bench-{uuid.uuid4().hex[:10]}"
        self.server, self.transfers = server, 0
        # What a job's run spec tells its runner (services/jobs/runner_api.py ``direct``): on Azure it
        # reads small files straight from the store and writes them through the server; large
        # uploads go straight to either store. ``small_writes``: the runner writes small files
        # to Azure itself too (one PUT per blob to a URL the server signs).
        small = [self.name] if self.kind == "azure_blob" else []
        runner.offered({"small": small, "large": [self.name], "small_writes": small if small_writes else []})
        self._connect(self.place)

    def _connect(self, place: str) -> None:
        """A native client for the emulator as it is now, the place it writes to (a bucket or a
        container), and the datastore pointed at it (re-registered: the server builds a new
        driver, with no connection to an emulator that was stopped)."""
        if self.kind == "s3":
            import s3fs

            # moto may take over a minute to complete a 1 GB multipart upload on a busy machine:
            # the same read timeout as Shoal's own driver (storage/objects.py).
            self.fs = s3fs.S3FileSystem(
                key=KEY_ID,
                secret=SECRET,
                endpoint_url=self.url,
                skip_instance_cache=True,
                config_kwargs={"read_timeout": 600},
            )
            self.fs.mkdir(place)
            body = {"type": "s3", "bucket": place, "endpoint_url": self.url}
            body["credentials"] = {"access_key_id": KEY_ID, "secret_access_key": SECRET}
        else:
            from azure.storage.blob import BlobServiceClient

            conn = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={AZURITE_KEY};"
            conn += f"BlobEndpoint={self.url}/{ACCOUNT};"
            self.service = BlobServiceClient.from_connection_string(conn)
            self.container = self.service.create_container(place)
            body = {"type": "azure_blob", "account_name": ACCOUNT, "container_name": place, "endpoint": self.url}
            body["credentials"] = {"account_key": AZURITE_KEY}
        self.place, self.body = place, body
        url = f"{self.server.url}/api/v1/workspaces/default/datastores/{self.name}"
        httpx.put(url, json=body, headers=self.server.headers).raise_for_status()
        # The native client above is built (and its driver imported) before anything is timed:
        # the same for the server's, which it builds at the datastore's first use.
        self.runner.list_files(self.name, "")

    def prepare(self) -> None:
        """Before each upload (not timed): a new, empty emulator process on the same port, a new
        bucket or container in it, and the datastore re-registered on it. The download that
        follows reads what that upload wrote, and nothing else is stored."""
        self.transfers += 1
        self.emulator.restart()
        self._connect(f"bench-{uuid.uuid4().hex[:10]}-{self.transfers}")

    def check_direct(self) -> None:
        """A direct transfer that failed sends the rest of the run through the server, with one
        line in the log: a benchmark must stop there, not time the other path."""
        fell_back = self.runner._not_direct | self.runner._not_direct_reads | self.runner._not_direct_writes
        if fell_back:
            raise RuntimeError(f"the runner fell back to the server for {sorted(fell_back)}: see the lines above")

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

    # -- Shoal: what the runner does for a job's outputs and inputs ------------------------------
    def shoal_put(self, files: list[Path], base: Path, prefix: str) -> None:
        self.runner.upload_tree(self.name, prefix, base, files)

    def shoal_get(self, prefix: str, target: Path) -> None:
        listing = self.runner.list_files(self.name, prefix)
        items = [(f"{prefix}/{item['path']}", target / item["path"], item["size"]) for item in listing["value"]]
        self.runner.download_many(self.name, items)


Row = tuple[str, str, str, list[float], list[float]]  # store, data, path, upload and download seconds


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    store: Store, files: list[Path], base: Path, what: str, tmp: Path, samples: int
) -> dict[str, tuple[list[float], list[float]]]:
    """``samples`` uploads and downloads per path (seconds each). The two paths take turns (native
    first, then Shoal first, ...) and every upload meets a new, empty emulator (``Store.prepare``):
    Azurite's cost per call grows with the blobs it has held, so whichever ran later would pay
    for the earlier one's files, and a change in the machine's load would fall on one path only."""
    paths = {"native": (store.native_put, store.native_get), "shoal": (store.shoal_put, store.shoal_get)}
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in paths}
    for i in range(samples):
        for name in list(paths) if i % 2 == 0 else list(paths)[::-1]:
            put, get = paths[name]
            prefix = f"{name}-{what}-{i}"
            store.prepare()
            up = timed(lambda: put(files, base, prefix))  # noqa: B023 - called at once
            target = tmp / "dl" / prefix
            down = timed(lambda: get(prefix, target))  # noqa: B023 - called at once
            if name == "shoal":
                store.check_direct()
            times[name][0].append(up)
            times[name][1].append(down)
            cpu, rss = process_usage(store.emulator.proc)
            print(
                f"  {store.kind} {what} {name} #{i + 1}: up {up:.2f} s, down {down:.2f} s "
                f"(emulator {cpu:.1f} CPU-s, peak {rss / 1024:.0f} MB; load {load_average()})",
                flush=True,
            )
            shutil.rmtree(target, ignore_errors=True)
    return times


def process_usage(proc: subprocess.Popen[bytes] | None) -> tuple[float, int]:
    """CPU seconds and peak resident kB of a running process (Linux /proc), (0, 0) elsewhere."""
    try:
        assert proc is not None
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except (AssertionError, OSError):
        return 0.0, 0
    peak = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), peak


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
    parser.add_argument("--issue-sizes", action="store_true", help="the issue's sizes: 1024 MB and 10000 files")
    parser.add_argument(
        "--azurite-disk", action="store_true", help="Azurite keeps blobs in a folder (--location), not in memory"
    )
    parser.add_argument(
        "--direct-small-writes",
        action="store_true",
        help="the runner PUTs small files to Azure itself (signed URLs) rather than through the server",
    )
    args = parser.parse_args(argv)
    if args.issue_sizes:
        args.big_mb, args.small_count = 1024, 10000
    started = time.monotonic()

    sys.path.insert(0, str(REPO / "src"))
    from shoal.runtime.client import RunnerClient

    rows: list[Row] = []
    notes: list[str] = []
    args.load_at_start, args.started = load_average(), time.strftime("%H:%M", time.gmtime())
    emulators: list[Emulator] = []
    with scratch("shoal-bench-objstore-") as tmp:
        env_keys = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
        os.environ.update(env_keys)
        try:
            if "s3" in args.stores:
                emulators.append(Emulator("s3", tmp))
            command = azurite_command()
            if "azure_blob" not in args.stores:
                pass
            elif command and shutil.which("node"):
                emulators.append(Emulator("azure_blob", tmp, command, disk=args.azurite_disk))
            else:
                notes.append("Azurite not found (`make install` puts it in .cache/azurite): Azure Blob skipped.")
            data = make_files(tmp, args.big_mb * ("big" in args.data), args.small_count * ("small" in args.data))
            with shoal_server(tmp) as server:
                token = server.headers["Authorization"].split(" ", 1)[1]
                runner = RunnerClient(server.url, token, "default", "bench", None)
                for emulator in emulators:
                    store = Store(emulator, server, runner, small_writes=args.direct_small_writes)
                    for what, (base, files) in data.items():
                        if what not in args.data:
                            continue
                        for path_name, (ups, downs) in measure(store, files, base, what, tmp, args.samples).items():
                            rows.append((emulator.kind, what, path_name, ups, downs))
                            print(
                                emulator.kind,
                                what,
                                path_name,
                                f"up {median(ups):.2f} s, down {median(downs):.2f} s (medians)",
                                flush=True,
                            )
                    emulator.stop()
        finally:
            for emulator in emulators:
                emulator.stop()
            for key in env_keys:
                os.environ.pop(key, None)

    args.minutes = (time.monotonic() - started) / 60
    print(f"whole run {args.minutes:.1f} min", flush=True)
    if not args.no_write:
        write_section("object-storage", render(rows, args, notes), args.out)
    return 0


def render(rows: list[Row], args: argparse.Namespace, notes: list[str]) -> str:
    by = {(k, w, p): (u, d) for k, w, p, u, d in rows}
    sizes = {"big": f"1 file of {args.big_mb} MB", "small": f"{args.small_count} files of 4 KB"}
    options = f"--big-mb {args.big_mb} --small-count {args.small_count} --samples {args.samples}"
    options += " --azurite-disk" * args.azurite_disk + " --direct-small-writes" * args.direct_small_writes
    small_writes = (
        "PUTs them itself, one per blob to a URL the server signs"
        if args.direct_small_writes
        else "writes them through the server, as on S3"
    )
    lines = [
        "## Object storage: job inputs and outputs through Shoal vs the native client",
        "",
        f"`benchmarks/object_storage.py`, {today()}, {machine()}; `{options}`, {args.started}-"
        f"{time.strftime('%H:%M', time.gmtime())} UTC (whole run {args.minutes:.0f} min), load average "
        f"{args.load_at_start} at the start, {load_average()} at the end. Emulators on the same machine (moto's "
        f"S3 server, Azurite {'on disk' if args.azurite_disk else 'in memory'}), medians of {args.samples} "
        "transfer(s). Shoal = what a job's runner does. On S3: HTTP to the server, files up to",
        "1 MB in batches of 256 per request, 8 requests in flight, the server moving 32 objects at once;",
        "larger files downloaded in ranges through the server, uploaded by the runner straight to the store",
        "(50 MB parts, 10 in flight, each PUT signed by the server, which completes the upload). On Azure the",
        "runner reads small files itself: for each batch of 256 the server signs a SAS URL per blob, and the",
        f"runner GETs them on 8 threads (it {small_writes}); a large upload is 8 MB blocks the runner",
        "stages (10 in flight, each URL signed by the server, which commits the block list); a large download",
        "goes in ranges through the server. Native and Shoal take turns, and every upload meets a new, empty",
        "emulator process (the old one stopped; the download reads what that upload wrote).",
        "Native = s3fs put/get, azure-storage-blob with 8 threads (`max_concurrency=4` per blob), in one process.",
        "",
        "| store | data | native up | Shoal up | Shoal / native | native down | Shoal down | Shoal / native |",
        "|---|---|---|---|---|---|---|---|",
    ]
    spread = []
    for kind in dict.fromkeys(k for k, _, _, _, _ in rows):
        for what in ("big", "small"):
            if (kind, what, "native") not in by:
                continue
            (nu, nd), (su, sd) = by[(kind, what, "native")], by[(kind, what, "shoal")]
            up, down = (median(nu), median(su)), (median(nd), median(sd))
            lines.append(
                f"| {kind} | {sizes[what]} | {up[0]:.2f} s | {up[1]:.2f} s | {ratio(up[1], up[0])} | "
                f"{down[0]:.2f} s | {down[1]:.2f} s | {ratio(down[1], down[0])} |"
            )
            each = ", ".join(f"{name} {', '.join(f'{t:.1f}' for t in ts)}" for name, ts in _samples(nu, su, nd, sd))
            spread.append(f"{kind} {what}: {each}")
    if args.samples > 1:
        lines += ["", "Every sample (s, in the order taken): " + "; ".join(spread) + "."]
    lines += ["", *notes] if notes else []
    return "\n".join(lines)


def _samples(*columns: list[float]) -> list[tuple[str, list[float]]]:
    return list(zip(("native up", "Shoal up", "native down", "Shoal down"), columns, strict=True))


if __name__ == "__main__":
    raise SystemExit(main())
