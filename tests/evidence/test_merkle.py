"""RFC 6962 hashing and proofs against the Certificate Transparency reference vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.evidence import merkle

GOLDEN = json.loads(
    (Path(__file__).parents[1] / "golden" / "evidence" / "rfc6962_vectors.json").read_text()
)
LEAVES = [bytes.fromhex(x) for x in GOLDEN["leaves"]]
ROOTS = [bytes.fromhex(x) for x in GOLDEN["roots"]]
HASHES = [merkle.leaf_hash(x) for x in LEAVES]


def test_hasher_vectors() -> None:
    h = GOLDEN["hasher"]
    assert merkle.EMPTY_ROOT.hex() == h["empty_root"]
    assert merkle.leaf_hash(b"").hex() == h["empty_leaf"]
    assert merkle.leaf_hash(b"L123456").hex() == h["leaf_L123456"]
    assert merkle.node_hash(b"N123", b"N456").hex() == h["node_N123_N456"]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots(size: int) -> None:
    assert merkle.root_of(HASHES[:size]) == ROOTS[size - 1]
    assert merkle.MemoryTree(HASHES).root(size) == ROOTS[size - 1]


def test_empty_root() -> None:
    assert merkle.root_of([]) == merkle.EMPTY_ROOT
    assert merkle.MemoryTree().root() == merkle.EMPTY_ROOT


@pytest.mark.parametrize(
    "case", GOLDEN["inclusion_proofs"], ids=lambda c: f"{c['leaf']}/{c['size']}"
)
def test_inclusion_vectors(case: dict[str, object]) -> None:
    idx = int(case["leaf"]) - 1  # type: ignore[call-overload]
    size = int(case["size"])  # type: ignore[call-overload]
    want = [bytes.fromhex(p) for p in case["proof"]]  # type: ignore[attr-defined]
    tree = merkle.MemoryTree(HASHES[:size])
    assert tree.inclusion_proof(idx) == want
    merkle.verify_inclusion(idx, size, HASHES[idx], want, ROOTS[size - 1])
    # corruptions the reference suite also rejects
    bad_cases = [
        (idx, size * 2, HASHES[idx], want),
        (idx, size, merkle.leaf_hash(b"WrongLeaf"), want),
        (idx, size, HASHES[idx], [*want, ROOTS[size - 1]]),
        (idx, size, HASHES[idx], [ROOTS[size - 1], *want]),
    ]
    if idx + 1 < size:
        bad_cases.append((idx + 1, size, HASHES[idx], want))
    for i in range(len(want)):
        flipped = list(want)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        bad_cases.append((idx, size, HASHES[idx], flipped))
    if want:
        bad_cases.append((idx, size, HASHES[idx], want[:-1]))
    for bi, bs, bl, bp in bad_cases:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(bi, bs, bl, bp, ROOTS[size - 1])


@pytest.mark.parametrize(
    "case", GOLDEN["consistency_proofs"], ids=lambda c: f"{c['size1']}-{c['size2']}"
)
def test_consistency_vectors(case: dict[str, object]) -> None:
    s1, s2 = int(case["size1"]), int(case["size2"])  # type: ignore[call-overload]
    want = [bytes.fromhex(p) for p in case["proof"]]  # type: ignore[attr-defined]
    tree = merkle.MemoryTree(HASHES[:s2])
    assert tree.consistency_proof(s1) == want
    merkle.verify_consistency(s1, s2, want, ROOTS[s1 - 1], ROOTS[s2 - 1])
    if not want:
        return
    bad = [
        (s1, s2, [], ROOTS[s1 - 1], ROOTS[s2 - 1]),
        (s1, s2, want, ROOTS[s2 - 1], ROOTS[s1 - 1]),
        (s1, s2, want[:-1], ROOTS[s1 - 1], ROOTS[s2 - 1]),
        (s1, s2, [*want, ROOTS[s1 - 1]], ROOTS[s1 - 1], ROOTS[s2 - 1]),
        (s1, s2, [want[0], *want], ROOTS[s1 - 1], ROOTS[s2 - 1]),
    ]
    for i in range(len(want)):
        flipped = list(want)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        bad.append((s1, s2, flipped, ROOTS[s1 - 1], ROOTS[s2 - 1]))
    for a, b, p, r1, r2 in bad:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(a, b, p, r1, r2)


def test_bad_arguments_are_clear_errors() -> None:
    tree = merkle.MemoryTree(HASHES)
    with pytest.raises(ValueError, match="outside"):
        tree.inclusion_proof(8)
    with pytest.raises(ValueError, match="no consistency proof"):
        tree.consistency_proof(9, 8)
    with pytest.raises(merkle.ProofError, match="32"):
        merkle.verify_inclusion(0, 1, b"short", [], ROOTS[0])
    with pytest.raises(merkle.ProofError, match="forked"):
        merkle.verify_consistency(3, 3, [], ROOTS[2], ROOTS[3])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=70),
    appends=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=4),
)
def test_consistency_across_appends(n: int, appends: list[int]) -> None:
    """Every earlier checkpoint stays provably consistent with every later one."""
    tree = merkle.MemoryTree()
    sizes: list[tuple[int, bytes]] = []
    counter = 0
    for batch in [n, *appends]:
        for _ in range(batch):
            tree.append(merkle.leaf_hash(counter.to_bytes(4, "big")))
            counter += 1
        sizes.append((len(tree), tree.root()))
        assert tree.root() == merkle.root_of(
            [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(counter)]
        )
    for i, (s1, r1) in enumerate(sizes):
        for s2, r2 in sizes[i:]:
            merkle.verify_consistency(s1, s2, tree.consistency_proof(s1, s2), r1, r2)
        if s1 < len(tree):
            # a changed old leaf breaks consistency with the old root
            forged = merkle.MemoryTree(
                [merkle.leaf_hash(b"x")] + [tree.subtree(0, j) for j in range(1, len(tree))]
            )
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(
                    s1, len(tree), forged.consistency_proof(s1), r1, forged.root()
                )
    last = len(tree) - 1
    for idx in {0, last // 2, last}:
        merkle.verify_inclusion(
            idx, len(tree), tree.subtree(0, idx), tree.inclusion_proof(idx), tree.root()
        )
