"""SecretBox: round trip, owner-only key file, wrong key, no values in errors or repr."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from shoal.errors import InfraError, UserError
from shoal.storage.secrets import SecretBox

SECRET = {"account_key": "c2VjcmV0LWtleS12YWx1ZQ==", "nested": {"n": 1}}


def test_round_trip_and_persisted_key(tmp_path) -> None:
    box = SecretBox(tmp_path / "secret.key")
    token = box.encrypt(SECRET)
    assert isinstance(token, str) and SECRET["account_key"] not in token
    assert box.decrypt(token) == SECRET
    assert SecretBox(tmp_path / "secret.key").decrypt(token) == SECRET  # same key after restart


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_key_file_is_owner_only(tmp_path) -> None:
    key_file = tmp_path / "home" / "secret.key"
    SecretBox(key_file).encrypt({})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) & 0o077 == 0
    assert [p.name for p in key_file.parent.iterdir()] == ["secret.key"]  # no temp left behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_loose_key_permissions_are_tightened(tmp_path) -> None:
    key_file = tmp_path / "secret.key"
    token = SecretBox(key_file).encrypt(SECRET)
    os.chmod(key_file, 0o644)
    assert SecretBox(key_file).decrypt(token) == SECRET
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_wrong_key_or_bad_token(tmp_path) -> None:
    token = SecretBox(tmp_path / "a.key").encrypt(SECRET)
    other = SecretBox(tmp_path / "b.key")
    for bad in (token, "garbage", "", token[:-4], None):
        with pytest.raises(InfraError, match=r"cannot decrypt stored secrets: wrong secret\.key\?") as info:
            other.decrypt(bad)  # type: ignore[arg-type]
        assert SECRET["account_key"] not in str(info.value)


def test_corrupt_key_file(tmp_path) -> None:
    (tmp_path / "secret.key").write_text("not a fernet key")
    with pytest.raises(InfraError, match="valid secret key"):
        SecretBox(tmp_path / "secret.key").encrypt({})


def test_only_json_objects(tmp_path) -> None:
    box = SecretBox(tmp_path / "secret.key")
    with pytest.raises(UserError):
        box.encrypt(["a"])  # type: ignore[arg-type]
    with pytest.raises(UserError):
        box.encrypt({"k": object()})


def test_repr_hides_the_key(tmp_path) -> None:
    box = SecretBox(tmp_path / "secret.key")
    box.encrypt({})
    key = (tmp_path / "secret.key").read_text().strip()
    assert key not in repr(box)


def test_concurrent_first_use_agrees_on_one_key(tmp_path) -> None:
    key_file = tmp_path / "secret.key"
    boxes = [SecretBox(key_file) for _ in range(8)]
    barrier = threading.Barrier(len(boxes))
    tokens: list[str] = []

    def first_use(box: SecretBox) -> None:
        barrier.wait()
        tokens.append(box.encrypt({"v": 1}))

    threads = [threading.Thread(target=first_use, args=(b,)) for b in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for box in boxes:
        for token in tokens:
            assert box.decrypt(token) == {"v": 1}
