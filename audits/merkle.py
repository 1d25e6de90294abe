"""RFC 6962 Merkle trees: hashes, roots, proofs and their verification.

Leaves hash as SHA-256(0x00 || data), interior nodes as SHA-256(0x01 || left ||
right), and the empty tree's root is SHA-256 of the empty string. Functions that
take ``leaves`` take leaf *hashes*, not data.

Verifiers return ``None`` and raise :class:`MerkleError` with a one-line message
when a proof does not hold. Besides the inclusion and consistency proofs of
RFC 6962 / RFC 9162 the module handles the subtree proofs of
draft-ietf-plants-merkle-tree-certs: a subtree is a leaf range ``[start, end)``
whose ``start`` is a multiple of the smallest power of two ``>= end - start``,
which lets its hash be checked against any tree that reaches ``end``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Self

from core.errors import GovregError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleError",
    "complete_subtrees",
    "consistency_proof",
    "consistency_proof_nodes",
    "fold",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "leaf_hash",
    "node_hash",
    "root",
    "subtree_consistency_proof",
    "subtree_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_SIZE_LIMIT = 1 << 64  # tree sizes and indexes are uint64 on the wire (RFC 9162)


class MerkleError(GovregError):
    """A Merkle proof, tree size or stored frontier does not check out."""

    # a failed proof is an integrity failure, as IntegrityError (not its subclass:
    # the ledger's own code tells the two apart)
    exit_code = 8
    http_status = 409
    problem_type = "integrity-failure"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# -- small pure helpers -------------------------------------------------------


def _split(n: int) -> int:
    """RFC 6962's k: the largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _bit_ceil(n: int) -> int:
    """The smallest power of two ``>= n`` (1 for 0 and 1)."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _hashes(count: int) -> str:
    return f"{count} hash" if count == 1 else f"{count} hashes"


def _short(value: bytes) -> str:
    return value.hex()[:16] + "..." if value else "(empty)"


def _check_count(what: str, value: int) -> None:
    if not 0 <= value < _SIZE_LIMIT:
        raise MerkleError(f"{what} {value} is outside 0..2^64-1")


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise MerkleError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_proof(what: str, proof: Sequence[bytes], expected: int, where: str) -> None:
    if len(proof) != expected:
        raise MerkleError(f"{what} has {_hashes(len(proof))}, expected {expected} {where}")
    for i, item in enumerate(proof):
        _check_hash(f"{what} hash {i}", item)


def _check_subtree(start: int, end: int) -> None:
    _check_count("subtree start", start)
    _check_count("subtree end", end)
    if start > end:
        raise MerkleError(f"subtree start {start} is greater than end {end}")
    width = _bit_ceil(end - start)
    if start % width:
        raise MerkleError(
            f"[{start}, {end}) is not a subtree: start {start} is not a multiple of {width}"
        )


def _inclusion_proof_size(index: int, size: int) -> int:
    """len(PATH(index, D[size])): siblings below the level where the paths to ``index`` and
    ``size - 1`` part, then one left sibling per set bit of ``index`` above it."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _proof_ranges(start: int, end: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes make up the proof for ``[start, end)`` in the tree over
    ``[lo, hi)``, in proof order.

    This is SUBTREE_SUBPROOF of draft-ietf-plants-merkle-tree-certs; for ``[0, m)`` it is
    RFC 6962's PROOF (section 2.1.2) and for ``[m, m + 1)`` its PATH (section 2.1.1).
    Needs a non-empty subtree with ``lo <= start < end <= hi``.
    """
    ranges: list[tuple[int, int]] = []
    known = True  # SUBPROOF's b: the hash of [start, end) is known to the verifier
    while (start, end) != (lo, hi):
        mid = lo + _split(hi - lo)
        if end <= mid:  # inside the left subtree: commit to the right one
            ranges.append((mid, hi))
            hi = mid
        elif start >= mid:  # inside the right subtree: commit to the left one
            ranges.append((lo, mid))
            lo = mid
        else:  # straddles mid (then start == lo): the left subtree is shared
            ranges.append((lo, mid))
            lo = start = mid
            known = False
    if not known:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _range_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    compact = CompactRange()
    for i in range(lo, hi):
        compact.append(leaves[i])
    return compact.root()


def _proof(leaves: Sequence[bytes], start: int, end: int, lo: int, hi: int) -> list[bytes]:
    return [_range_root(leaves, a, b) for a, b in _proof_ranges(start, end, lo, hi)]


# -- roots --------------------------------------------------------------------


class CompactRange:
    """Streaming root over appended leaf hashes, keeping one hash per set bit of the size.

    ``state()`` and ``from_state()`` store and resume the frontier, so a checkpoint's root
    follows from the previous checkpoint's state and the new leaves alone.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # perfect subtrees, largest (leftmost) first

    @classmethod
    def from_state(cls, size: int, hashes: list[bytes]) -> Self:
        """Resume from ``state()``; the hashes must be one per set bit of ``size``."""
        _check_count("compact range size", size)
        expected = size.bit_count()
        if len(hashes) != expected:
            raise MerkleError(
                f"compact range of size {size} needs {_hashes(expected)}, got {len(hashes)}"
            )
        for i, item in enumerate(hashes):
            _check_hash(f"compact range hash {i}", item)
        compact = cls()
        compact._size = size
        compact._hashes = [bytes(item) for item in hashes]
        return compact

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> list[tuple[int, bytes]]:
        """Add one leaf hash, merging equal-sized subtrees like a binary carry.

        Returns the complete subtrees this leaf completes, as ``(level, hash)`` from
        level 1 up: the subtree of level ``k`` covers the last ``2**k`` leaves.
        """
        _check_hash("leaf hash", leaf)
        if self._size + 1 >= _SIZE_LIMIT:
            raise MerkleError("compact range is full at 2^64-1 leaves")
        self._hashes.append(bytes(leaf))
        completed: list[tuple[int, bytes]] = []
        carry = self._size
        level = 0
        while carry & 1:
            right = self._hashes.pop()
            self._hashes[-1] = node_hash(self._hashes[-1], right)
            level += 1
            completed.append((level, self._hashes[-1]))
            carry >>= 1
        self._size += 1
        return completed

    def root(self) -> bytes:
        """MTH of the leaves so far: fold the subtrees from the right."""
        if not self._hashes:
            return EMPTY_ROOT
        acc = self._hashes[-1]
        for item in reversed(self._hashes[:-1]):
            acc = node_hash(item, acc)
        return acc

    def state(self) -> list[bytes]:
        """The frontier hashes, largest subtree first (a copy)."""
        return list(self._hashes)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1 over leaf hashes."""
    return _range_root(leaves, 0, len(leaves))


# -- proofs from stored complete subtrees -------------------------------------------


def complete_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """``[start, end)`` as complete subtrees ``(level, end)``, largest (leftmost) first.

    A complete subtree of level ``k`` covers ``2**k`` leaves and ends at a multiple of
    ``2**k``; ``(level, end)`` names it by its level and the leaf count where it ends.
    Needs ``start`` to be a multiple of the smallest power of two ``>= end - start``
    (every range of an RFC 6962 proof is), so the hash of ``[start, end)`` is
    :func:`fold` of these subtrees' hashes.
    """
    _check_subtree(start, end)
    parts: list[tuple[int, int]] = []
    width = end - start
    at = start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            at += 1 << level
            parts.append((level, at))
    return parts


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of adjacent complete subtrees, largest first (as :func:`complete_subtrees`
    lists them): folded from the right, as MTH splits them."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for item in reversed(hashes[:-1]):
        acc = node_hash(item, acc)
    return acc


def inclusion_proof_nodes(index: int, size: int) -> list[list[tuple[int, int]]]:
    """The complete subtrees of each element of PATH(index, D[size]), in proof order.

    Each element is the hash of one complete subtree, but for at most one on the right
    border: the :func:`fold` of up to log2(size) of them. O(log size) subtrees in all.
    """
    _check_count("tree size", size)
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is not below tree size {size}")
    return [complete_subtrees(a, b) for a, b in _proof_ranges(index, index + 1, 0, size)]


def consistency_proof_nodes(old_size: int, size: int) -> list[list[tuple[int, int]]]:
    """The complete subtrees of each element of PROOF(old_size, D[size]), in proof order."""
    _check_count("tree size", size)
    if not 0 <= old_size <= size:
        raise MerkleError(f"old size {old_size} is outside 0..{size}")
    if old_size == size:
        return []
    if old_size == 0:
        raise MerkleError(f"consistency from the empty tree to size {size} is not defined")
    return [complete_subtrees(a, b) for a, b in _proof_ranges(0, old_size, 0, size)]


# -- proof generation ---------------------------------------------------------


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 section 2.1.1."""
    if not 0 <= index < len(leaves):
        raise MerkleError(f"leaf index {index} is not below tree size {len(leaves)}")
    return _proof(leaves, index, index + 1, 0, len(leaves))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) of RFC 6962 section 2.1.2; empty when the sizes are equal."""
    size = len(leaves)
    if not 0 <= old_size <= size:
        raise MerkleError(f"old size {old_size} is outside 0..{size}")
    if old_size == size:
        return []
    if old_size == 0:
        raise MerkleError(f"consistency from the empty tree to size {size} is not defined")
    return _proof(leaves, 0, old_size, 0, size)


def subtree_inclusion_proof(
    leaves: Sequence[bytes], index: int, subtree: tuple[int, int]
) -> list[bytes]:
    """Inclusion proof of leaf ``index`` in the subtree ``(start, end)`` of ``leaves``."""
    start, end = subtree
    _check_subtree(start, end)
    if end > len(leaves):
        raise MerkleError(f"subtree end {end} is beyond tree size {len(leaves)}")
    if not start <= index < end:
        raise MerkleError(f"leaf index {index} is outside subtree [{start}, {end})")
    return _proof(leaves, index, index + 1, start, end)


def subtree_consistency_proof(leaves: Sequence[bytes], subtree: tuple[int, int]) -> list[bytes]:
    """SUBTREE_PROOF(start, end, D[n]) of draft-ietf-plants-merkle-tree-certs."""
    start, end = subtree
    _check_subtree(start, end)
    if end > len(leaves):
        raise MerkleError(f"subtree end {end} is beyond tree size {len(leaves)}")
    if start == end:
        return []
    return _proof(leaves, start, end, 0, len(leaves))


# -- verification -------------------------------------------------------------


def _verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes, *, where: str
) -> None:
    """RFC 9162 section 2.1.3.2; ``where`` names the leaf in messages."""
    _check_hash("leaf hash", leaf)
    # 1. leaf_index must be below tree_size.
    if index >= size:
        raise MerkleError(f"leaf index {index} is not below tree size {size}")
    expected = _inclusion_proof_size(index, size)
    _check_proof("inclusion proof", proof, expected, where)
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = index, size - 1
    # 3. Set r to hash.
    r = leaf
    # 4. For each value p in the inclusion_path array:
    for p in proof:
        # 4a. If sn is 0, stop and fail.
        if sn == 0:
            raise MerkleError(f"inclusion proof {where} is longer than the path to the root")
        # 4b. If LSB(fn) is set, or if fn is equal to sn:
        if fn & 1 or fn == sn:
            # 4b.i. Set r to HASH(0x01 || p || r).
            r = node_hash(p, r)
            # 4b.ii. If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # 4b, otherwise: set r to HASH(0x01 || r || p).
            r = node_hash(r, p)
        # 4c. Right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 and r must equal root_hash.
    if sn != 0:
        raise MerkleError(f"inclusion proof {where} stops short of the root")
    if r != root:
        raise MerkleError(f"inclusion proof {where} leads to {_short(r)}, not {_short(root)}")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash ``leaf`` is leaf ``index`` of the tree of ``size`` with ``root``."""
    _check_count("leaf index", index)
    _check_count("tree size", size)
    _verify_inclusion(leaf, index, size, proof, root, where=f"for leaf {index} of {size}")


def verify_subtree_inclusion(
    leaf: bytes, index: int, subtree: tuple[int, int], proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the subtree ``(start, end)`` whose hash is
    ``root``: an RFC 9162 inclusion check in the subtree shifted to start at 0."""
    start, end = subtree
    _check_count("leaf index", index)
    _check_subtree(start, end)
    if not start <= index < end:
        raise MerkleError(f"leaf index {index} is outside subtree [{start}, {end})")
    where = f"for leaf {index} of subtree [{start}, {end})"
    _verify_inclusion(leaf, index - start, end - start, proof, root, where=where)


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the tree of
    ``new_size`` with ``new_root`` (RFC 9162 section 2.1.4.2).

    Equal sizes need an empty proof and equal roots (the empty-tree hash at size 0).
    A proof from size 0 to a larger size is refused: RFC 9162 defines none, and the
    transparency-dev vectors expect an error.
    """
    _check_count("old size", old_size)
    _check_count("new size", new_size)
    if old_size > new_size:
        raise MerkleError(f"old size {old_size} is greater than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise MerkleError(
                f"consistency proof between equal sizes {old_size} has "
                f"{_hashes(len(proof))}, expected none"
            )
        if old_size == 0 and (old_root != EMPTY_ROOT or new_root != EMPTY_ROOT):
            raise MerkleError("root of the empty tree is not SHA-256 of the empty string")
        if old_root != new_root:
            raise MerkleError(f"roots differ for equal tree sizes {old_size}")
        return
    if old_size == 0:
        raise MerkleError(
            f"consistency from the empty tree to size {new_size} is not defined "
            "(RFC 9162 needs 0 < old size)"
        )
    where = f"from size {old_size} to {new_size}"
    expected = len(_proof_ranges(0, old_size, 0, new_size))
    _check_proof("consistency proof", proof, expected, where)
    # 1. If consistency_path is an empty array, stop and fail.
    if not proof:
        raise MerkleError(f"consistency proof {where} is empty")
    path = list(proof)
    # 2. If first is an exact power of 2, prepend first_hash to consistency_path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. If LSB(fn) is set, right-shift fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in consistency_path.
    fr = sr = path[0]
    # 6. For each subsequent value c in consistency_path:
    for c in path[1:]:
        # 6a. If sn is 0, stop and fail.
        if sn == 0:
            raise MerkleError(f"consistency proof {where} is longer than the path to the root")
        # 6b. If LSB(fn) is set, or if fn is equal to sn:
        if fn & 1 or fn == sn:
            # 6b.i. Set fr to HASH(0x01 || c || fr).
            fr = node_hash(c, fr)
            # 6b.ii. Set sr to HASH(0x01 || c || sr).
            sr = node_hash(c, sr)
            # 6b.iii. If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or
            # fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # 6b, otherwise: set sr to HASH(0x01 || sr || c).
            sr = node_hash(sr, c)
        # 6c. Right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. fr must equal first_hash, sr must equal second_hash, and sn must be 0.
    if sn != 0:
        raise MerkleError(f"consistency proof {where} stops short of the new root")
    if fr != old_root:
        raise MerkleError(
            f"consistency proof {where} leads to old root {_short(fr)}, not {_short(old_root)}"
        )
    if sr != new_root:
        raise MerkleError(
            f"consistency proof {where} leads to new root {_short(sr)}, not {_short(new_root)}"
        )


def verify_subtree_consistency(
    subtree: tuple[int, int],
    size: int,
    proof: Sequence[bytes],
    subtree_root: bytes,
    root: bytes,
) -> None:
    """Check that the subtree ``(start, end)`` with hash ``subtree_root`` is part of the
    tree of ``size`` with ``root`` (draft-ietf-plants-merkle-tree-certs, "Verifying a
    Subtree Consistency Proof").

    An empty subtree commits to nothing: it needs an empty proof and the empty-tree hash,
    and is consistent with any tree that reaches ``end``, as in transparency-dev/merkle.
    """
    start, end = subtree
    # 1. The subtree must be valid and end within the tree.
    _check_count("tree size", size)
    _check_subtree(start, end)
    if end > size:
        raise MerkleError(f"subtree end {end} is beyond tree size {size}")
    where = f"for [{start}, {end}) in tree size {size}"
    if start == end:
        if proof:
            raise MerkleError(f"proof for empty subtree has {_hashes(len(proof))}, expected none")
        if subtree_root != EMPTY_ROOT:
            raise MerkleError("hash of the empty subtree is not SHA-256 of the empty string")
        return
    expected = len(_proof_ranges(start, end, 0, size))
    _check_proof("subtree consistency proof", proof, expected, where)
    path = list(proof)
    # 2. Set fn to start, sn to end - 1 and tn to size - 1.
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        # 3. If sn is tn, right-shift fn, sn and tn equally until fn is sn.
        while fn != sn:
            fn >>= 1
            sn >>= 1
            tn >>= 1
    else:
        # 4. Otherwise right-shift them equally until fn is sn or LSB(sn) is not set.
        while fn != sn and sn & 1:
            fn >>= 1
            sn >>= 1
            tn >>= 1
    if fn == sn:
        # 5. If fn is sn, set fr and sr to node_hash.
        fr = sr = subtree_root
    else:
        # 6. Otherwise remove the first value of the proof and set fr and sr to it.
        if not path:
            raise MerkleError(f"subtree consistency proof {where} is empty")
        fr = sr = path.pop(0)
    # 7. For each remaining value c in the proof:
    for c in path:
        # 7.1. If tn is 0, stop and fail.
        if tn == 0:
            raise MerkleError(
                f"subtree consistency proof {where} is longer than the path to the root"
            )
        # 7.2. If LSB(sn) is set, or if sn is equal to tn:
        if sn & 1 or sn == tn:
            # 7.2.1. If fn < sn, set fr to HASH(0x01 || c || fr).
            if fn < sn:
                fr = node_hash(c, fr)
            # 7.2.2. Set sr to HASH(0x01 || c || sr).
            sr = node_hash(c, sr)
            # 7.2.3. Until LSB(sn) is set, right-shift fn, sn and tn equally.
            while not sn & 1:
                fn >>= 1
                sn >>= 1
                tn >>= 1
        else:
            # 7.3. Otherwise set sr to HASH(0x01 || sr || c).
            sr = node_hash(sr, c)
        # 7.4. Right-shift fn, sn and tn one time.
        fn >>= 1
        sn >>= 1
        tn >>= 1
    # 8. tn must be 0, fr must equal node_hash and sr must equal root_hash.
    if tn != 0:
        raise MerkleError(f"subtree consistency proof {where} stops short of the root")
    if fr != subtree_root:
        raise MerkleError(
            f"subtree consistency proof {where} leads to subtree hash {_short(fr)}, "
            f"not {_short(subtree_root)}"
        )
    if sr != root:
        raise MerkleError(
            f"subtree consistency proof {where} leads to root {_short(sr)}, not {_short(root)}"
        )
