"""RFC 6962 Merkle trees: transparency-dev vectors, reference roots and proofs, tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audits.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleError,
    complete_subtrees,
    consistency_proof,
    consistency_proof_nodes,
    fold,
    inclusion_proof,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    root,
    subtree_consistency_proof,
    subtree_inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)
from core.errors import GovregError

# ../shared/testdata/rfc6962 from the project root, or where GOVREG_TEST_RFC6962 says.
VECTORS = Path(
    os.environ.get("GOVREG_TEST_RFC6962")
    or Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "rfc6962"
)
KINDS = ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(130)]
EXTRA = leaf_hash(b"not in the tree")


# -- references written from the specifications -------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """Largest power of two smaller than n (n >= 2), by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves: list[bytes]) -> bytes:
    """MTH of RFC 6962 section 2.1, recursively."""
    if not leaves:
        return _sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return _sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:]))


def _path(leaves: list[bytes], m: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1."""
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return [*_path(leaves[:k], m), _mth(leaves[k:])]
    return [*_path(leaves[k:], m - k), _mth(leaves[:k])]


def _subproof(leaves: list[bytes], start: int, end: int, known: bool = True) -> list[bytes]:
    """SUBTREE_SUBPROOF of draft-ietf-plants-merkle-tree-certs (RFC 6962's SUBPROOF at 0)."""
    n = len(leaves)
    if (start, end) == (0, n):
        return [] if known else [_mth(leaves)]
    k = _k(n)
    if end <= k:
        return [*_subproof(leaves[:k], start, end, known), _mth(leaves[k:])]
    if start >= k:
        return [*_subproof(leaves[k:], start - k, end - k, known), _mth(leaves[:k])]
    return [*_subproof(leaves[k:], 0, end - k, False), _mth(leaves[:k])]


def _sides(start: int, end: int, n: int, known: bool = True) -> str:
    """Shape of that proof: "S" for a seed hash, then the side of each sibling."""
    if (start, end) == (0, n):
        return "" if known else "S"
    k = _k(n)
    if end <= k:
        return _sides(start, end, k, known) + "R"
    if start >= k:
        return _sides(start - k, end - k, n - k, known) + "L"
    return _sides(0, end - k, n - k, False) + "L"


def _subtrees(size: int) -> Iterator[tuple[int, int]]:
    """Every non-empty subtree [start, end) with end <= size."""
    for start in range(size):
        for end in range(start + 1, size + 1):
            width = 1 << (end - start - 1).bit_length()
            if start % width == 0:
                yield start, end


# -- tampering ----------------------------------------------------------------


def _flip(item: bytes, bit: int) -> bytes:
    out = bytearray(item)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _tampered(proof: list[bytes], salt: int) -> Iterator[tuple[str, list[bytes]]]:
    """Proofs one edit away: a bit flipped in each hash, each hash dropped, a hash added.

    The flipped bit moves with ``salt`` so the whole run touches every bit position;
    ``test_every_bit_flip_is_caught`` flips all 256 of them for a few trees.
    """
    for i, item in enumerate(proof):
        bit = (salt + 37 * i) % 256
        yield f"bit {bit} of hash {i} flipped", [*proof[:i], _flip(item, bit), *proof[i + 1 :]]
        yield f"hash {i} dropped", [*proof[:i], *proof[i + 1 :]]
        yield f"hash {i} doubled", [*proof[: i + 1], *proof[i:]]
    for i in range(len(proof) + 1):
        yield f"foreign hash added at {i}", [*proof[:i], EXTRA, *proof[i:]]


def _other_sizes(size: int, above: int) -> list[int]:
    """Wrong tree sizes to try: those near ``size`` and twice it, all greater than ``above``."""
    return [n for n in [*range(size - 6, size + 7), 2 * size] if n > above and n != size]


def _accepts(verify: Callable[..., None], *args: Any) -> bool:
    try:
        verify(*args)
    except MerkleError:
        return False
    return True


# -- transparency-dev vectors ---------------------------------------------------


def _vector_params() -> list[Any]:
    if not VECTORS.is_dir():
        return [pytest.param(None, id="rfc6962-vectors-missing")]
    return [
        pytest.param(path, id=path.relative_to(VECTORS).as_posix())
        for path in sorted(VECTORS.rglob("*.json"))
    ]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "", validate=True)


def _run_vector(kind: str, case: dict[str, Any]) -> None:
    proof = [_b64(item) for item in case["proof"] or []]
    if kind == "inclusion":
        verify_inclusion(
            _b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"])
        )
    elif kind == "consistency":
        verify_consistency(
            case["size1"], case["size2"], proof, _b64(case["root1"]), _b64(case["root2"])
        )
    elif kind == "subtreeinclusion":
        subtree = (case["start"], case["end"])
        verify_subtree_inclusion(
            _b64(case["leafHash"]), case["leafIdx"], subtree, proof, _b64(case["root"])
        )
    elif kind == "subtreeconsistency":
        subtree = (case["start"], case["end"])
        verify_subtree_consistency(
            subtree, case["size"], proof, _b64(case["root1"]), _b64(case["root2"])
        )
    else:
        pytest.fail(f"unknown vector kind {kind!r}")


@pytest.mark.parametrize("path", _vector_params())
def test_vector(path: Path | None) -> None:
    if path is None:
        pytest.skip(f"RFC 6962 vectors not found at {VECTORS}")
    case = json.loads(path.read_text(encoding="utf-8"))
    kind = path.relative_to(VECTORS).parts[0]
    if case["wantErr"]:
        with pytest.raises(MerkleError):
            _run_vector(kind, case)
    else:
        _run_vector(kind, case)


def test_vectors_cover_every_kind_both_ways() -> None:
    if not VECTORS.is_dir():
        pytest.skip(f"RFC 6962 vectors not found at {VECTORS}")
    seen = set()
    for path in VECTORS.rglob("*.json"):
        case = json.loads(path.read_text(encoding="utf-8"))
        seen.add((path.relative_to(VECTORS).parts[0], case["wantErr"]))
    assert seen == {(kind, want) for kind in KINDS for want in (False, True)}


# -- hashes and roots -------------------------------------------------------------

# The eight-leaf reference tree used across RFC 6962 implementations.
REFERENCE_DATA = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
REFERENCE_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"abc") == _sha256(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == _sha256(b"\x01" + b"L" * 32 + b"R" * 32)
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT


def test_reference_roots() -> None:
    leaves = [leaf_hash(data) for data in REFERENCE_DATA]
    assert [root(leaves[:n]).hex() for n in range(1, 9)] == REFERENCE_ROOTS


def test_root_matches_recursive_definition() -> None:
    for n in range(71):
        assert root(LEAVES[:n]) == _mth(LEAVES[:n]), n


# -- compact range ------------------------------------------------------------------

EXPECTED_ROOTS = [_mth(LEAVES[:n]) for n in range(131)]


def test_compact_range_root_after_every_append() -> None:
    compact = CompactRange()
    assert (compact.size, compact.root(), compact.state()) == (0, EMPTY_ROOT, [])
    for n, leaf in enumerate(LEAVES, start=1):
        compact.append(leaf)
        assert compact.size == n
        assert compact.root() == EXPECTED_ROOTS[n] == root(LEAVES[:n]), n
        assert len(compact.state()) == n.bit_count()


def test_compact_range_resumes_from_state() -> None:
    compact = CompactRange()
    for n in range(131):
        resumed = CompactRange.from_state(compact.size, compact.state())
        assert resumed.root() == compact.root() == EXPECTED_ROOTS[n]
        for m in range(n, 131):
            assert resumed.root() == EXPECTED_ROOTS[m], (n, m)
            if m < 130:
                resumed.append(LEAVES[m])
        if n < 130:
            compact.append(LEAVES[n])


def test_compact_range_state_is_a_copy() -> None:
    compact = CompactRange()
    for leaf in LEAVES[:5]:
        compact.append(leaf)
    compact.state().clear()
    hashes = compact.state()
    resumed = CompactRange.from_state(5, hashes)
    hashes[0] = EXTRA
    assert compact.root() == resumed.root() == EXPECTED_ROOTS[5]


def test_compact_range_rejects_bad_state_and_leaves() -> None:
    with pytest.raises(MerkleError) as caught:
        CompactRange.from_state(5, [LEAVES[0]] * 3)
    assert str(caught.value) == "compact range of size 5 needs 2 hashes, got 3"
    with pytest.raises(MerkleError) as caught:
        CompactRange.from_state(4, [b"short"])
    assert str(caught.value) == "compact range hash 0 is 5 bytes, expected 32"
    with pytest.raises(MerkleError) as caught:
        CompactRange.from_state(-1, [])
    assert str(caught.value) == "compact range size -1 is outside 0..2^64-1"
    with pytest.raises(MerkleError) as caught:
        CompactRange().append(b"raw data, not a leaf hash")
    assert str(caught.value) == "leaf hash is 25 bytes, expected 32"


# -- inclusion and consistency proofs for trees of 1..40 leaves ------------------------


@pytest.mark.parametrize("size", range(1, 41))
def test_inclusion_proofs(size: int) -> None:
    leaves, top = LEAVES[:size], EXPECTED_ROOTS[size]
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        assert proof == _path(leaves, index)
        verify_inclusion(leaves[index], index, size, proof, top)
        args = (leaves[index], index, size)
        tampered = [
            what
            for what, bad in _tampered(proof, salt=64 * size + index)
            if _accepts(verify_inclusion, *args, bad, top)
        ]
        assert tampered == []
        wrong_index = [
            other
            for other in range(size + 2)
            if other != index and _accepts(verify_inclusion, leaves[index], other, size, proof, top)
        ]
        assert wrong_index == []
        assert not _accepts(verify_inclusion, EXTRA, index, size, proof, top)
        # A proof does not bind the tree size (the signed checkpoint does): a wrong size
        # passes exactly when its proof has the same shape, and fails otherwise.
        shape = _sides(index, index + 1, size)
        for other in _other_sizes(size, above=index):
            same_shape = _sides(index, index + 1, other) == shape
            accepted = _accepts(verify_inclusion, leaves[index], index, other, proof, top)
            assert accepted == same_shape, (index, other)


@pytest.mark.parametrize("size", range(1, 41))
def test_consistency_proofs(size: int) -> None:
    leaves, new_root = LEAVES[:size], EXPECTED_ROOTS[size]
    for old in range(1, size + 1):
        old_root = EXPECTED_ROOTS[old]
        proof = consistency_proof(leaves, old)
        assert proof == (_subproof(leaves, 0, old) if old < size else [])
        verify_consistency(old, size, proof, old_root, new_root)
        tampered = [
            what
            for what, bad in _tampered(proof, salt=64 * size + old)
            if _accepts(verify_consistency, old, size, bad, old_root, new_root)
        ]
        assert tampered == []
        wrong_old = [
            other
            for other in range(size + 2)
            if other != old and _accepts(verify_consistency, other, size, proof, old_root, new_root)
        ]
        assert wrong_old == []
        assert not _accepts(verify_consistency, old, size, proof, EXTRA, new_root)
        assert not _accepts(verify_consistency, old, size, proof, old_root, EXTRA)
        if old < size:
            assert not _accepts(verify_consistency, old, size, proof, new_root, old_root)
        # As for inclusion, a wrong new size passes exactly when the proof shape matches.
        shape = _sides(0, old, size)
        for other in _other_sizes(size, above=old - 1):
            same_shape = _sides(0, old, other) == shape
            accepted = _accepts(verify_consistency, old, other, proof, old_root, new_root)
            assert accepted == same_shape, (old, other)


def test_wrong_size_with_the_same_shape_passes() -> None:
    """Leaf 0 of 3 and leaf 0 of 4 have proofs of the same shape, so the size comes from
    the signed checkpoint together with the root, never from the proof."""
    proof = inclusion_proof(LEAVES[:3], 0)
    verify_inclusion(LEAVES[0], 0, 3, proof, EXPECTED_ROOTS[3])
    verify_inclusion(LEAVES[0], 0, 4, proof, EXPECTED_ROOTS[3])


@pytest.mark.parametrize("size", [1, 6, 11])
def test_every_bit_flip_is_caught(size: int) -> None:
    leaves, top = LEAVES[:size], EXPECTED_ROOTS[size]
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        for i, bit in ((i, bit) for i in range(len(proof)) for bit in range(256)):
            bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
            assert not _accepts(verify_inclusion, leaves[index], index, size, bad, top)
    for old in range(1, size):
        proof = consistency_proof(leaves, old)
        for i, bit in ((i, bit) for i in range(len(proof)) for bit in range(256)):
            bad = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
            args = (old, size, bad, EXPECTED_ROOTS[old], top)
            assert not _accepts(verify_consistency, *args)


# -- subtree proofs (draft-ietf-plants-merkle-tree-certs) ------------------------------


@pytest.mark.parametrize("size", range(1, 21))
def test_subtree_consistency_proofs(size: int) -> None:
    leaves, top = LEAVES[:size], EXPECTED_ROOTS[size]
    subtrees = list(_subtrees(size))
    for start, end in subtrees:
        sub_root = _mth(leaves[start:end])
        proof = subtree_consistency_proof(leaves, (start, end))
        assert proof == _subproof(leaves, start, end)
        verify_subtree_consistency((start, end), size, proof, sub_root, top)
        tampered = [
            what
            for what, bad in _tampered(proof, salt=64 * size + 8 * start + end)
            if _accepts(verify_subtree_consistency, (start, end), size, bad, sub_root, top)
        ]
        assert tampered == []
        assert not _accepts(verify_subtree_consistency, (start, end), size, proof, EXTRA, top)
        assert not _accepts(verify_subtree_consistency, (start, end), size, proof, sub_root, EXTRA)
        shape = _sides(start, end, size)
        wrong_subtree = [
            other
            for other in subtrees
            if other != (start, end)
            and _accepts(verify_subtree_consistency, other, size, proof, sub_root, top)
        ]
        assert wrong_subtree == []
        for other in _other_sizes(size, above=end - 1):
            same_shape = _sides(start, end, other) == shape
            args = ((start, end), other, proof, sub_root, top)
            accepted = _accepts(verify_subtree_consistency, *args)
            assert accepted == same_shape, (start, end, other)


@pytest.mark.parametrize("size", range(1, 17))
def test_subtree_inclusion_proofs(size: int) -> None:
    leaves = LEAVES[:size]
    for start, end in _subtrees(size):
        sub_root = _mth(leaves[start:end])
        for index in range(start, end):
            proof = subtree_inclusion_proof(leaves, index, (start, end))
            assert proof == _path(leaves[start:end], index - start)
            verify_subtree_inclusion(leaves[index], index, (start, end), proof, sub_root)
            tampered = [
                what
                for what, bad in _tampered(proof, salt=64 * index + end)
                if _accepts(
                    verify_subtree_inclusion, leaves[index], index, (start, end), bad, sub_root
                )
            ]
            assert tampered == []
            wrong_index = [
                other
                for other in range(start - 1, end + 1)
                if other not in (index, -1)
                and _accepts(
                    verify_subtree_inclusion, leaves[index], other, (start, end), proof, sub_root
                )
            ]
            assert wrong_index == []


def test_prefix_subtree_proofs_are_the_rfc_6962_proofs() -> None:
    leaves = LEAVES[:29]
    for m in range(1, 29):
        assert subtree_consistency_proof(leaves, (0, m)) == consistency_proof(leaves, m)
        assert subtree_inclusion_proof(leaves, m, (0, 29)) == inclusion_proof(leaves, m)


def test_empty_subtree_is_consistent_with_any_tree_that_reaches_it() -> None:
    verify_subtree_consistency((4, 4), 5, [], EMPTY_ROOT, EXTRA)
    assert subtree_consistency_proof(LEAVES[:5], (4, 4)) == []
    with pytest.raises(MerkleError) as caught:
        verify_subtree_consistency((4, 4), 5, [], EXTRA, EXTRA)
    assert str(caught.value) == "hash of the empty subtree is not SHA-256 of the empty string"
    with pytest.raises(MerkleError) as caught:
        verify_subtree_consistency((8, 8), 5, [], EMPTY_ROOT, EXTRA)
    assert str(caught.value) == "subtree end 8 is beyond tree size 5"


# -- edge cases and messages --------------------------------------------------------------


def test_empty_tree_consistency() -> None:
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    assert consistency_proof([], 0) == []
    with pytest.raises(MerkleError) as caught:
        verify_consistency(0, 0, [], EXTRA, EXTRA)
    assert str(caught.value) == "root of the empty tree is not SHA-256 of the empty string"
    with pytest.raises(MerkleError) as caught:
        verify_consistency(0, 4, [], EMPTY_ROOT, EXPECTED_ROOTS[4])
    assert str(caught.value) == (
        "consistency from the empty tree to size 4 is not defined (RFC 9162 needs 0 < old size)"
    )
    with pytest.raises(MerkleError):
        consistency_proof(LEAVES[:4], 0)


def test_inclusion_message_for_a_short_proof() -> None:
    proof = inclusion_proof(LEAVES[:12], 5)
    with pytest.raises(MerkleError) as caught:
        verify_inclusion(LEAVES[5], 5, 12, proof[:3], EXPECTED_ROOTS[12])
    assert str(caught.value) == "inclusion proof has 3 hashes, expected 4 for leaf 5 of 12"


def test_inclusion_message_for_a_wrong_root() -> None:
    proof = inclusion_proof(LEAVES[:12], 5)
    with pytest.raises(MerkleError) as caught:
        verify_inclusion(LEAVES[5], 5, 12, proof, EXTRA)
    assert str(caught.value) == (
        f"inclusion proof for leaf 5 of 12 leads to {EXPECTED_ROOTS[12].hex()[:16]}..., "
        f"not {EXTRA.hex()[:16]}..."
    )


def test_consistency_messages() -> None:
    proof = consistency_proof(LEAVES[:7], 3)
    with pytest.raises(MerkleError) as caught:
        verify_consistency(5, 3, proof, EXPECTED_ROOTS[5], EXPECTED_ROOTS[3])
    assert str(caught.value) == "old size 5 is greater than new size 3"
    with pytest.raises(MerkleError) as caught:
        verify_consistency(3, 7, [*proof, EXTRA], EXPECTED_ROOTS[3], EXPECTED_ROOTS[7])
    assert str(caught.value) == "consistency proof has 5 hashes, expected 4 from size 3 to 7"
    with pytest.raises(MerkleError) as caught:
        verify_consistency(3, 7, proof, EXTRA, EXPECTED_ROOTS[7])
    assert str(caught.value) == (
        f"consistency proof from size 3 to 7 leads to old root {EXPECTED_ROOTS[3].hex()[:16]}..., "
        f"not {EXTRA.hex()[:16]}..."
    )
    with pytest.raises(MerkleError) as caught:
        verify_consistency(4, 4, [EXTRA], EXPECTED_ROOTS[4], EXPECTED_ROOTS[4])
    assert str(caught.value) == "consistency proof between equal sizes 4 has 1 hash, expected none"
    with pytest.raises(MerkleError) as caught:
        verify_consistency(4, 4, [], EXPECTED_ROOTS[4], EXPECTED_ROOTS[5])
    assert str(caught.value) == "roots differ for equal tree sizes 4"


def test_subtree_messages() -> None:
    with pytest.raises(MerkleError) as caught:
        verify_subtree_inclusion(LEAVES[3], 3, (3, 5), [], EXTRA)
    assert str(caught.value) == "[3, 5) is not a subtree: start 3 is not a multiple of 2"
    with pytest.raises(MerkleError) as caught:
        verify_subtree_inclusion(LEAVES[3], 3, (4, 6), [], EXTRA)
    assert str(caught.value) == "leaf index 3 is outside subtree [4, 6)"
    with pytest.raises(MerkleError) as caught:
        verify_subtree_consistency((4, 6), 8, [], EXTRA, EXTRA)
    assert str(caught.value) == (
        "subtree consistency proof has 0 hashes, expected 2 for [4, 6) in tree size 8"
    )


def test_sizes_and_hashes_are_checked() -> None:
    proof = inclusion_proof(LEAVES[:4], 1)
    with pytest.raises(MerkleError) as caught:
        verify_inclusion(LEAVES[1], -1, 4, proof, EXPECTED_ROOTS[4])
    assert str(caught.value) == "leaf index -1 is outside 0..2^64-1"
    with pytest.raises(MerkleError) as caught:
        verify_inclusion(LEAVES[1], 1, 1 << 64, proof, EXPECTED_ROOTS[4])
    assert str(caught.value) == "tree size 18446744073709551616 is outside 0..2^64-1"
    with pytest.raises(MerkleError) as caught:
        verify_inclusion(LEAVES[1], 1, 4, [proof[0], b""], EXPECTED_ROOTS[4])
    assert str(caught.value) == "inclusion proof hash 1 is 0 bytes, expected 32"
    with pytest.raises(MerkleError) as caught:
        inclusion_proof(LEAVES[:4], 4)
    assert str(caught.value) == "leaf index 4 is not below tree size 4"
    with pytest.raises(MerkleError) as caught:
        subtree_consistency_proof(LEAVES[:4], (4, 8))
    assert str(caught.value) == "subtree end 8 is beyond tree size 4"


def test_merkle_error_is_a_govreg_error() -> None:
    assert issubclass(MerkleError, GovregError)


# -- proofs from stored complete subtrees -------------------------------------------


def _node_table(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """(level, end) -> hash, as the ledger stores them: leaves, and the nodes each
    append reports."""
    tree = CompactRange()
    nodes: dict[tuple[int, int], bytes] = {}
    for end, leaf in enumerate(leaves, 1):
        nodes[(0, end)] = leaf
        for level, value in tree.append(leaf):
            assert (level, end) not in nodes
            nodes[(level, end)] = value
    return nodes


def test_append_reports_every_complete_subtree_it_completes() -> None:
    tree = CompactRange()
    assert tree.append(LEAVES[0]) == []
    assert tree.append(LEAVES[1]) == [(1, node_hash(LEAVES[0], LEAVES[1]))]
    assert tree.append(LEAVES[2]) == []
    assert tree.append(LEAVES[3]) == [
        (1, node_hash(LEAVES[2], LEAVES[3])),
        (2, root(LEAVES[:4])),
    ]
    # Exactly the complete subtrees of level >= 1, each the root of its leaves.
    nodes = _node_table(LEAVES)
    inner = {key: value for key, value in nodes.items() if key[0] > 0}
    expected = {
        (level, end): root(LEAVES[end - (1 << level) : end])
        for level in range(1, 8)
        for end in range(1 << level, len(LEAVES) + 1, 1 << level)
    }
    assert inner == expected
    assert len(inner) == 65 + 32 + 16 + 8 + 4 + 2 + 1  # 130 leaves


def test_complete_subtrees_of_a_range() -> None:
    assert complete_subtrees(0, 0) == []
    assert complete_subtrees(0, 1) == [(0, 1)]
    assert complete_subtrees(0, 7) == [(2, 4), (1, 6), (0, 7)]
    assert complete_subtrees(64, 101) == [(5, 96), (2, 100), (0, 101)]
    assert complete_subtrees(8, 16) == [(3, 16)]
    with pytest.raises(
        MerkleError, match=r"^\[3, 7\) is not a subtree: start 3 is not a multiple of 4$"
    ):
        complete_subtrees(3, 7)
    assert fold([]) == EMPTY_ROOT
    nodes = _node_table(LEAVES)
    for start, end in ((0, 7), (64, 101), (0, 130), (128, 130)):
        assert fold([nodes[n] for n in complete_subtrees(start, end)]) == root(LEAVES[start:end])


@pytest.mark.parametrize("size", range(1, 131))
def test_proofs_from_nodes_equal_proofs_from_leaves(size: int) -> None:
    leaves = LEAVES[:size]
    nodes = _node_table(leaves)
    top = root(leaves)
    for index in range(size):
        shape = inclusion_proof_nodes(index, size)
        proof = [fold([nodes[n] for n in element]) for element in shape]
        assert proof == inclusion_proof(leaves, index)
        verify_inclusion(leaves[index], index, size, proof, top)
        # O(log n) reads: at most one element is a fold, of at most log2(size) subtrees.
        assert sum(len(element) for element in shape) <= 2 * max(size.bit_length(), 1)
        assert sum(len(element) > 1 for element in shape) <= 1
    for old in range(1, size + 1):
        shape = consistency_proof_nodes(old, size)
        proof = [fold([nodes[n] for n in element]) for element in shape]
        assert proof == consistency_proof(leaves, old)
        verify_consistency(old, size, proof, root(leaves[:old]), top)


def test_proof_nodes_refuse_impossible_sizes() -> None:
    with pytest.raises(MerkleError, match=r"^leaf index 5 is not below tree size 5$"):
        inclusion_proof_nodes(5, 5)
    with pytest.raises(MerkleError, match=r"^old size 6 is outside 0..5$"):
        consistency_proof_nodes(6, 5)
    with pytest.raises(MerkleError, match=r"^consistency from the empty tree to size 5"):
        consistency_proof_nodes(0, 5)
    assert consistency_proof_nodes(5, 5) == []


def _happy(kind: str) -> list[dict[str, Any]]:
    if not VECTORS.is_dir():
        pytest.skip(f"RFC 6962 vectors not found at {VECTORS}")
    cases = [json.loads(p.read_text(encoding="utf-8")) for p in (VECTORS / kind).rglob("*.json")]
    return [case for case in cases if not case["wantErr"]]


def test_vectors_rebuilt_from_nodes() -> None:
    """Every happy-path inclusion and consistency vector over the reference tree is the
    proof built from the stored-node shape, and verifies with the SDK's function."""
    leaves = [leaf_hash(data) for data in REFERENCE_DATA]
    nodes = _node_table(leaves)
    built = 0
    for case in _happy("inclusion"):
        size, index = case["treeSize"], case["leafIdx"]
        if size > len(leaves) or _b64(case["leafHash"]) != leaves[index]:
            continue
        proof = [fold([nodes[n] for n in e]) for e in inclusion_proof_nodes(index, size)]
        assert proof == [_b64(h) for h in case["proof"] or []]
        verify_inclusion(leaves[index], index, size, proof, _b64(case["root"]))
        built += 1
    for case in _happy("consistency"):
        old, size = case["size1"], case["size2"]
        if size > len(leaves) or old == 0 or _b64(case["root2"]) != root(leaves[:size]):
            continue
        proof = [fold([nodes[n] for n in e]) for e in consistency_proof_nodes(old, size)]
        assert proof == [_b64(h) for h in case["proof"] or []]
        verify_consistency(old, size, proof, _b64(case["root1"]), _b64(case["root2"]))
        built += 1
    assert built >= 2
