"""Azure Blob transfers the runner makes itself, with a SAS for one blob that the server signs.

The server keeps the account key. For a job's small inputs it hands the runner, many at once,
URLs that carry a service SAS to read that one blob (``sp=r``); for small outputs, a SAS to write
that one blob (``sp=w``): a Put Blob publishes it whole or not at all, as the server's own does.
A large output is staged in blocks, each block's URL signed for the blob's ``comp=block`` call
just before it is sent (``direct_uploads.py`` has the same steps for S3), and only the server
commits the block list, after checking that every block is there and that they add up to the
size announced: until then nothing is visible under the name.

Every SAS is good for ``SAS_SECONDS`` and for its blob only (Azure checks the signature against
the blob's name); it is signed locally (an HMAC of the account key, no call to the service).
Only a datastore with an account key can sign one: one with a SAS token of its own (which the
server must not hand on: it reaches the whole container) or an Azure AD identity answers
``UnsupportedError``, and the runner goes through the server.

Measured on Azurite (docs/benchmarks.md): through the server, each 4 KB file cost a request from
the server to the store, its bytes copied into a batch response and parsed again by the runner;
sent straight, the server signs 256 URLs in one call and is out of the way.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

from shoal.errors import UnsupportedError, UserError
from shoal.storage.direct_uploads import SIGN_AT_ONCE, DirectUpload
from shoal.storage.objects import AZURE_PART_SIZE, AzureIO, ObjectIO, azure_block_id

SAS_SECONDS = 15 * 60  # as long as an S3 part's signature (direct_uploads.py)
MAX_BLOCKS = 50_000  # Azure's limit for one block blob
MAX_URLS = 2000  # URLs signed in one call (storage/batches.py MAX_FILES)
MIB = 1024 * 1024
# What a runner's Put Blob of a small file sends: a block blob, with no metadata (as the
# server's own, storage/objects.py).
PUT_HEADERS = {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
_TAG = re.compile(r"[0-9a-f]{32}")


def _azure(io: ObjectIO | None) -> AzureIO:
    rest = getattr(io, "rest", None)
    if not isinstance(io, AzureIO) or rest is None or not rest.can_sign:
        raise UnsupportedError(
            "direct transfers are made to S3 (large uploads) and to Azure Blob with an account key only: "
            "send the files through the server instead"
        )
    return io


def supports(io: ObjectIO | None) -> bool:
    rest = getattr(io, "rest", None)
    return isinstance(io, AzureIO) and rest is not None and rest.can_sign


def urls(io: ObjectIO | None, fulls: list[str], permission: str) -> list[str]:
    """A URL with a SAS of ``permission`` (``r`` or ``w``) for each blob, in order."""
    az = _azure(io)
    if len(fulls) > MAX_URLS:
        raise UserError(f"at most {MAX_URLS} paths in one call, not {len(fulls)}")
    assert az.rest is not None
    signed = []
    for full in fulls:
        container, blob, _ = az.fs.split_path(full)
        signed.append(az.rest.signed_url(container, blob, permission, SAS_SECONDS))
    return signed


# -- large uploads: blocks staged by the runner, committed here --------------------------------
def block_size_for(size: int) -> int:
    """8 MB blocks (the server's own, ``objects.AZURE_PART_SIZE``), larger where 50,000 of them
    would not hold the file."""
    need = -(-size // MAX_BLOCKS)
    return max(AZURE_PART_SIZE, -(-need // MIB) * MIB)


def _session(az: AzureIO, full: str, upload_id: str) -> tuple[str, str, str]:
    if not _TAG.fullmatch(upload_id):
        raise UserError("'upload_id' must be the id the direct upload was started with")
    container, blob, _ = az.fs.split_path(full)
    return (container, blob, upload_id)


def begin(io: ObjectIO | None, full: str, size: int) -> DirectUpload:
    _azure(io)
    if size < 1:
        raise UserError(f"a direct upload needs a size of at least 1 byte, not {size}")
    block = block_size_for(size)
    # Nothing is asked of the service: the blocks are staged under ids of this upload's own.
    return DirectUpload(uuid.uuid4().hex, block, -(-size // block))


def sign(io: ObjectIO | None, full: str, upload_id: str, numbers: list[int]) -> list[dict[str, Any]]:
    """``{"number", "url", "headers"}`` for each block: a Put Block of that block of this upload."""
    az = _azure(io)
    if not numbers or len(numbers) > SIGN_AT_ONCE or not all(1 <= n <= MAX_BLOCKS for n in numbers):
        raise UserError(f"'parts' must name 1 to {SIGN_AT_ONCE} part numbers from 1 to {MAX_BLOCKS}")
    container, blob, tag = _session(az, full, upload_id)
    assert az.rest is not None
    signed = []
    for number in numbers:
        # azure-storage-blob sends a block id base64-encoded (objects.azure_block_id): the same
        # bytes on the wire here, so the server's own blocks and these have ids of one length.
        wire_id = base64.b64encode(azure_block_id(tag, number).encode()).decode()
        query = {"comp": "block", "blockid": wire_id}
        url = az.rest.signed_url(container, blob, "w", SAS_SECONDS, query)
        signed.append({"number": number, "url": url, "headers": {}})
    return signed


def complete(io: ObjectIO | None, full: str, upload_id: str, size: int) -> None:
    """Commit the blocks of this upload once every one is staged and they add up to ``size``;
    otherwise nothing is committed (the blocks are dropped by the service) and the caller is told."""
    az = _azure(io)
    session = _session(az, full, upload_id)
    staged = az.run(az.uncommitted_blocks(session))
    block = block_size_for(size)
    count = -(-size // block)
    ids = [azure_block_id(upload_id, n) for n in range(1, count + 1)]
    present = [i for i in ids if i in staged]
    stored = sum(staged[i] for i in present)
    if len(present) != count or stored != size:
        raise UserError(
            f"the direct upload holds {len(present)} block(s) of {stored} bytes in all, not {count} of {size}: "
            "nothing was published",
            details={"parts": len(present), "size": stored, "expected_parts": count, "expected_size": size},
        )
    az.run(az.complete(session, ids))


def abort(io: ObjectIO | None, full: str, upload_id: str) -> None:
    """Nothing to do: staged blocks are never visible, and the service drops them (a week later,
    or at the blob's next commit)."""
    _session(_azure(io), full, upload_id)
