"""RFC 6962 Merkle tree hashing, proofs and their verification (pure).

Leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 || left || right)``; the hash of the
empty tree is ``SHA-256("")``. Proof generation works on any source of subtree hashes: a
function ``range_hash(lo, hi)`` returning the Merkle tree hash of leaves ``[lo, hi)`` where
``lo`` is a multiple of the largest power of two not above ``hi - lo`` (the only ranges RFC 6962's
recursion asks for). :class:`MemoryTree` gives one over a list of leaf hashes; the SQLite ledger
gives one over its stored perfect subtrees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

RangeHash = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof that does not verify (the message says why)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2)."""
    if n < 2:
        raise ValueError("split_point needs n >= 2")
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """Decompose ``[lo, hi)`` into maximal aligned perfect subtrees, left to right.

    Returns ``(level, index)`` pairs: the subtree covers leaves
    ``[index << level, (index + 1) << level)``.
    """
    out: list[tuple[int, int]] = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else (hi - lo).bit_length() - 1
        while (1 << level) > hi - lo:
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash of consecutive perfect subtrees of decreasing size (right fold)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash (MTH) of a list of leaf hashes, iteratively in O(n)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []  # (level, hash) of perfect subtrees, left to right
    for i, h in enumerate(leaf_hashes):
        level = 0
        node = h
        j = i
        while j & 1:
            _, left = stack.pop()
            node = node_hash(left, node)
            level += 1
            j >>= 1
        stack.append((level, node))
    return fold_subtrees([h for _, h in stack])


class MemoryTree:
    """A Merkle tree over an in-memory list of leaf hashes (for tests, witnesses and bundles)."""

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    def __len__(self) -> int:
        return len(self._levels[0])

    def append(self, h: bytes) -> int:
        idx = len(self._levels[0])
        self._levels[0].append(h)
        level, j = 0, idx
        while j & 1:
            parent = node_hash(self._levels[level][j - 1], self._levels[level][j])
            level += 1
            j >>= 1
            if len(self._levels) <= level:
                self._levels.append([])
            self._levels[level].append(parent)
        return idx

    def subtree(self, level: int, index: int) -> bytes:
        return self._levels[level][index]

    def range_hash(self, lo: int, hi: int) -> bytes:
        return fold_subtrees([self.subtree(lv, ix) for lv, ix in perfect_subtrees(lo, hi)])

    def root(self, size: int | None = None) -> bytes:
        n = len(self) if size is None else size
        if n > len(self):
            raise ValueError(f"tree has {len(self)} leaves, not {n}")
        return self.range_hash(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(self.range_hash, index, len(self) if size is None else size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(self.range_hash, size1, len(self) if size2 is None else size2)


def inclusion_proof(range_hash: RangeHash, index: int, size: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]), leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[bytes] = []

    def walk(m: int, lo: int, hi: int) -> None:
        n = hi - lo
        if n == 1:
            return
        k = split_point(n)
        if m < k:
            walk(m, lo, lo + k)
            path.append(range_hash(lo + k, hi))
        else:
            walk(m - k, lo + k, hi)
            path.append(range_hash(lo, lo + k))

    walk(index, 0, size)
    return path


def consistency_proof(range_hash: RangeHash, size1: int, size2: int) -> list[bytes]:
    """RFC 6962 PROOF(size1, D[0:size2])."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    proof: list[bytes] = []

    def subproof(m: int, lo: int, hi: int, complete: bool) -> None:
        n = hi - lo
        if m == n:
            if not complete:
                proof.append(range_hash(lo, hi))
            return
        k = split_point(n)
        if m <= k:
            subproof(m, lo, lo + k, complete)
            proof.append(range_hash(lo + k, hi))
        else:
            subproof(m - k, lo + k, hi, False)
            proof.append(range_hash(lo, lo + k))

    subproof(size1, 0, size2, True)
    return proof


def _check_hash(name: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise ProofError(f"{name} is {len(h)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 section 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn = index, size - 1
    r = leaf
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
        if sn == 0:
            raise ProofError(f"inclusion proof is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof is too short ({len(proof)} hashes)")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``leaf`` is at ``index`` of the tree with ``root``."""
    _check_hash("root", root)
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise ProofError(
            f"inclusion proof of leaf {index} leads to root {got.hex()[:16]}…, "
            f"not the signed root {root.hex()[:16]}…"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise :class:`ProofError` unless the tree ``(size2, root2)`` extends ``(size1, root1)``
    (RFC 9162 section 2.1.4.2)."""
    if size1 < 0 or size2 < size1:
        raise ProofError(f"size {size2} is older than size {size1}")
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    for i, p in enumerate(proof):
        _check_hash(f"proof[{i}]", p)
    if size1 == size2:
        if proof:
            raise ProofError("trees of equal size need an empty proof")
        if root1 != root2:
            raise ProofError("same size, different roots: the log forked")
        return
    if size1 == 0:
        if proof:
            raise ProofError("consistency from the empty tree needs an empty proof")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: root1 is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != root1:
        raise ProofError(f"consistency proof does not lead to the old root of size {size1}")
    if sr != root2:
        raise ProofError(f"consistency proof does not lead to the new root of size {size2}")
