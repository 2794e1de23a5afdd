"""Large uploads that skip the server's hop: the runner sends a file's parts straight to S3.

The server keeps the credentials. It starts a multipart upload on the final key; for each part,
just before sending it, the runner asks the server to sign the part's PUT (SigV4 headers with an
unsigned payload): a signature lets its holder write that one part of that one upload, for 15
minutes, and nothing else (no read, no other key, no completion). The runner PUTs the parts; the
server then lists them, checks that they are all there and add up to the size announced, and
completes the upload. Until then nothing is visible under the key: a runner that
dies midway leaves an unfinished upload (aborted by the runner when it can; by the bucket's
``AbortIncompleteMultipartUpload`` rule otherwise, see docs/object-storage.md), never a partial
object.

Measured on moto (docs/benchmarks.md): a 128 MB output through the server cost the server 0.6 s
of a core on top of the store's own work, and the body crossed a second socket; sent straight,
the runner spends almost nothing (the signature covers no payload hash). Header signatures rather
than presigned URLs: moto's S3 server, which the tests run with signatures enforced, checks only
the ``Authorization`` header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal.errors import UnsupportedError, UserError
from shoal.storage.objects import PART_SIZE, S3IO, ObjectIO

MAX_PARTS = 10_000  # S3's limit for one multipart upload
SIGN_AT_ONCE = 64  # parts signed in one call
MIB = 1024 * 1024


@dataclass(frozen=True)
class DirectUpload:
    upload_id: str
    part_size: int
    parts: int


def part_size_for(size: int) -> int:
    """50 MB parts (s3fs's own size), larger where 10,000 of them would not hold the file."""
    need = -(-size // MAX_PARTS)
    return max(PART_SIZE, -(-need // MIB) * MIB)


def _s3(io: ObjectIO | None) -> S3IO:
    if not isinstance(io, S3IO):
        raise UnsupportedError(
            "direct uploads are made to S3 and to Azure Blob with an account key only: "
            "send the file to the server instead"
        )
    return io


def begin(io: ObjectIO | None, full: str, size: int) -> DirectUpload:
    """Start the multipart upload of ``size`` bytes to ``full``, in parts of ``part_size``."""
    s3 = _s3(io)
    if size < 1:
        raise UserError(f"a direct upload needs a size of at least 1 byte, not {size}")
    part_size = part_size_for(size)
    session = s3.run(s3.begin(full))
    return DirectUpload(session[3], part_size, -(-size // part_size))


def sign(io: ObjectIO | None, full: str, upload_id: str, numbers: list[int]) -> list[dict[str, Any]]:
    """``{"number", "url", "headers"}`` for each part: what its PUT must carry."""
    s3 = _s3(io)
    if not numbers or len(numbers) > SIGN_AT_ONCE or not all(1 <= n <= MAX_PARTS for n in numbers):
        raise UserError(f"'parts' must name 1 to {SIGN_AT_ONCE} part numbers from 1 to {MAX_PARTS}")
    session = s3.session_of(full, upload_id)
    signed = []
    for number in numbers:
        url, headers = s3.run(s3.sign_part(session, number))
        signed.append({"number": number, "url": url, "headers": headers})
    return signed


def complete(io: ObjectIO | None, full: str, upload_id: str, size: int) -> None:
    """Publish the upload once the store holds every part and they add up to ``size``; an upload
    that does not is aborted (nothing appears) and the caller told what was missing."""
    s3 = _s3(io)
    session = s3.session_of(full, upload_id)
    parts: list[dict[str, Any]] = s3.run(s3.list_parts(session))
    part_size = part_size_for(size)
    count = -(-size // part_size) if size > 0 else 0
    numbers = [p["PartNumber"] for p in parts]
    stored = sum(int(p["Size"]) for p in parts)
    if numbers != list(range(1, count + 1)) or stored != size:
        s3.run(s3.abort(session))
        raise UserError(
            f"the direct upload holds {len(parts)} part(s) of {stored} bytes in all, not {count} of {size}: "
            "it was dropped, nothing was published",
            details={"parts": len(parts), "size": stored, "expected_parts": count, "expected_size": size},
        )
    s3.run(s3.complete(session, [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]))


def abort(io: ObjectIO | None, full: str, upload_id: str) -> None:
    s3 = _s3(io)
    s3.run(s3.abort(s3.session_of(full, upload_id)))
