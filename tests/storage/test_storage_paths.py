"""safe_relpath / join_inside against the bad-input corpus (anchors §1.2, BI-01..BI-11, BI-31)."""

from __future__ import annotations

import os
import random

import pytest

from shoal.errors import UserError
from shoal.storage.paths import decode_once, join_inside, safe_relpath

BAD = {
    "BI-01 traversal": ["../../etc/passwd", "a/../../b", "a/..", "..", "a/../b", "../"],
    "BI-02 absolute": ["/etc/passwd", "C:\\win.ini", "C:/x", "\\\\server\\share", "c:x", "/"],
    "BI-03 backslash": ["..\\..\\x", "\\..\\x", "a\\b"],
    "BI-04 encoded": ["%2e%2e%2f", "..%2f", "%2E%2E%5C", "a%2fb", "a%2Fb", "%2e%2e/x"],
    "BI-05 double-encoded": ["%252e%252e%252f", "a%25b", "%25"],
    "BI-06 overlong/unicode dots": ["%c0%ae%c0%ae/", "．．／", "．．/x", "a/．．", "ﬁle.txt", "a\ufffdb"],
    "BI-07 control chars": ["a\x00.txt", "a\n", "a\rb", "a\tb", "a\x7f", "a\x85b", "a\u202eb", "a\u200bb"],
    "BI-08 params, query, fragment": ["x;/../../etc", "a;b", "a?/a", "a#/../", "a?", "#"],
    "BI-09 non-canonical": ["a//b", "./a", ".", "", "a/.", "a/./b", "a/b/.", "dir//", "...", ". ", "a/.. "],
    "BI-11 length": [
        "a" * 1025,
        "/".join(["x" * 200] * 6),
        "/".join(["a"] * 65),
        "b" * 256,
        "é" * 513,
    ],
    "BI-31 archive member names": ["../evil.sh", "/usr/bin/evil", "C:\\Windows\\evil.dll", "./../x"],
}
BAD_CASES = [pytest.param(raw, id=f"{group}: {raw[:30]!r}") for group, raws in BAD.items() for raw in raws]

GOOD = [
    ("a/b.txt", "a/b.txt"),
    ("model/MLmodel", "model/MLmodel"),
    ("dir/", "dir"),
    ("données/x.csv", "données/x.csv"),
    ("日本語/ファイル.txt", "日本語/ファイル.txt"),
    ("a b/c d.txt", "a b/c d.txt"),
    ("100%.txt", "100%.txt"),
    ("a..b/.hidden", "a..b/.hidden"),
    ("x" * 255, "x" * 255),
    ("/".join(["a"] * 64), "/".join(["a"] * 64)),
    ("/".join(["x" * 200] * 5) + "/" + "y" * 19, "/".join(["x" * 200] * 5) + "/" + "y" * 19),
    ("2024-01-01T10:00/out.json", "2024-01-01T10:00/out.json"),
]


@pytest.mark.parametrize("raw", BAD_CASES)
def test_bad_paths_are_rejected_naming_the_input(raw: str) -> None:
    with pytest.raises(UserError) as info:
        safe_relpath(raw)
    assert type(info.value) is UserError
    assert repr(raw)[:60] in str(info.value)


@pytest.mark.parametrize(("raw", "canonical"), GOOD)
def test_good_paths_are_canonical(raw: str, canonical: str) -> None:
    assert safe_relpath(raw) == canonical
    assert safe_relpath(canonical) == canonical  # idempotent


def test_empty_only_when_allowed() -> None:
    assert safe_relpath("", allow_empty=True) == ""
    with pytest.raises(UserError, match="is empty"):
        safe_relpath("")


@pytest.mark.parametrize("raw", [None, b"a", 3, ["a"]])
def test_non_strings_are_user_errors(raw: object) -> None:
    with pytest.raises(UserError, match="must be a string"):
        safe_relpath(raw)  # type: ignore[arg-type]


def test_decode_once_then_validate() -> None:
    assert safe_relpath(decode_once("a%20b/c.txt")) == "a b/c.txt"
    with pytest.raises(UserError):
        safe_relpath(decode_once("%2e%2e%2fetc"))
    with pytest.raises(UserError):  # double encoding survives one decode and is refused
        safe_relpath(decode_once("%252e%252e%252f"))
    with pytest.raises(UserError, match="UTF-8"):
        decode_once("%c0%ae")


def test_join_inside_joins_under_the_real_root(tmp_path) -> None:
    assert join_inside(tmp_path, "a/b.txt") == tmp_path.resolve() / "a" / "b.txt"
    assert join_inside(tmp_path, "", allow_empty=True) == tmp_path.resolve()
    with pytest.raises(UserError):
        join_inside(tmp_path, "../x")


def test_join_inside_rejects_symlink_escapes(tmp_path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("canary")
    (root / "inner").mkdir()
    os.symlink(outside, root / "link")
    os.symlink("/", root / "slash")
    os.symlink(root / "inner", root / "ok")
    for rel in ["link", "link/secret", "slash/etc/passwd", "link/new-file"]:
        with pytest.raises(UserError, match="outside"):
            join_inside(root, rel)
    assert join_inside(root, "ok/x") == root.resolve() / "ok" / "x"  # a link that stays inside


def test_property_accepted_paths_stay_inside_root(tmp_path) -> None:
    """B-09: for every accepted p, realpath(root / p) is inside root."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    os.symlink(tmp_path, root / "up")  # a planted escape the validator alone cannot see
    os.symlink(root / "sub", root / "side")
    tokens = [
        "a", "b", "sub", "up", "side", ".", "..", "/", "//", "\\", "%", "%2e", "%2F", "%5c", "%25",
        "\x00", "\n", ":", "C:", ";", "?", "#", " ", "．", "／", "é", "e\u0301", "~", "\u202e", "...",
    ]  # fmt: skip
    rng = random.Random(1234)
    root_real = os.path.realpath(root)
    accepted = 0
    for _ in range(20000):
        raw = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 8)))
        try:
            canonical = safe_relpath(raw)
        except UserError:
            continue
        assert os.path.normpath(canonical) == canonical
        assert ".." not in canonical.split("/")
        try:
            joined = join_inside(root, raw)
        except UserError:
            assert canonical.split("/")[0] == "up", raw  # only the planted link may be refused
            continue
        accepted += 1
        real = os.path.realpath(joined)
        assert real == root_real or real.startswith(root_real + os.sep), raw
    assert accepted > 500  # the generator must actually exercise the accepting side
