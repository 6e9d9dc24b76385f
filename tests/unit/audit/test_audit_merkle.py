"""Specification of the RFC 9162 Merkle tree: published vectors and properties."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpetua.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    InvalidProof,
    consistency_proof,
    consistency_proof_from_leaves,
    inclusion_proof_from_leaves,
    inclusion_proof_size,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# The eight leaves used by the Certificate Transparency reference test suites.
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    bytes(range(0x60, 0x70)),
]
# Published roots for the first n of those leaves, n = 0..8.
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# Published consistency proofs over the same leaves: (old, new) -> path.
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
# Published inclusion proof for leaf 5 ("@ABC") in the 8-leaf tree.
CT_INCLUSION_5_OF_8 = [
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
]

CT_LEAF_HASHES = [leaf_hash(leaf) for leaf in CT_LEAVES]


def reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 written as literally as possible, as an independent oracle."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(
        b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])
    ).digest()


@pytest.mark.parametrize("size", range(9))
def test_root_matches_published_ct_vector(size: int) -> None:
    expected = bytes.fromhex(CT_ROOTS[size])
    hashes = CT_LEAF_HASHES[:size]
    assert root_from_leaf_hashes(hashes) == expected
    assert Frontier.from_leaf_hashes(hashes).root() == expected
    assert reference_mth(CT_LEAVES[:size]) == expected


def test_empty_tree_root_is_hash_of_empty_string() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_use_distinct_prefixes() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


@pytest.mark.parametrize(("old", "new"), sorted(CT_CONSISTENCY))
def test_consistency_proof_matches_published_ct_vector(old: int, new: int) -> None:
    expected = [bytes.fromhex(h) for h in CT_CONSISTENCY[(old, new)]]
    assert consistency_proof_from_leaves(old, CT_LEAF_HASHES[:new]) == expected
    assert verify_consistency(
        old,
        new,
        bytes.fromhex(CT_ROOTS[old]),
        bytes.fromhex(CT_ROOTS[new]),
        expected,
    )


def test_inclusion_proof_matches_published_ct_vector() -> None:
    expected = [bytes.fromhex(h) for h in CT_INCLUSION_5_OF_8]
    assert inclusion_proof_from_leaves(5, CT_LEAF_HASHES) == expected
    assert verify_inclusion(
        5, 8, CT_LEAF_HASHES[5], expected, bytes.fromhex(CT_ROOTS[8])
    )


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(count)]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1)))
)
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    size, index = case
    leaves = _leaves(size)
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof_from_leaves(index, leaves)
    assert len(proof) == inclusion_proof_size(index, size)
    assert verify_inclusion(index, size, leaves[index], proof, root)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
    st.binary(min_size=1, max_size=8),
)
def test_inclusion_proof_fails_for_a_changed_leaf(
    case: tuple[int, int], other: bytes
) -> None:
    size, index = case
    leaves = _leaves(size)
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof_from_leaves(index, leaves)
    changed = leaf_hash(b"changed" + other)
    assert not verify_inclusion(index, size, changed, proof, root)
    if size > 1:
        wrong_index = (index + 1) % size
        assert not verify_inclusion(wrong_index, size, leaves[index], proof, root)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_consistency_between_any_two_sizes_verifies(case: tuple[int, int]) -> None:
    old, new = case
    leaves = _leaves(new)
    old_root = root_from_leaf_hashes(leaves[:old])
    new_root = root_from_leaf_hashes(leaves)
    proof = consistency_proof_from_leaves(old, leaves)
    assert verify_consistency(old, new, old_root, new_root, proof)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_fails_when_the_old_tree_was_rewritten(
    case: tuple[int, int],
) -> None:
    old, new = case
    leaves = _leaves(new)
    forged = [leaf_hash(b"forged"), *leaves[1:old]]
    proof = consistency_proof_from_leaves(old, leaves)
    assert not verify_consistency(
        old, new, root_from_leaf_hashes(forged), root_from_leaf_hashes(leaves), proof
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=8))
def test_frontier_extended_in_batches_matches_one_pass_root(batches: list[int]) -> None:
    total = sum(batches)
    leaves = _leaves(total)
    frontier = Frontier()
    start = 0
    for batch in batches:
        frontier.extend(leaves[start : start + batch])
        start += batch
        assert frontier.root() == root_from_leaf_hashes(leaves[:start])
    one_by_one = Frontier()
    for leaf in leaves:
        one_by_one.append(leaf)
    assert one_by_one == frontier
    assert len(frontier.hashes) == total.bit_count()


def test_frontier_round_trips_through_bytes() -> None:
    frontier = Frontier.from_leaf_hashes(_leaves(1234))
    restored = Frontier.from_bytes(frontier.to_bytes())
    assert restored == frontier
    restored.append(leaf_hash(b"next"))
    assert restored.root() == root_from_leaf_hashes(
        [*_leaves(1234), leaf_hash(b"next")]
    )


def test_frontier_refuses_hashes_that_do_not_fit_its_size() -> None:
    with pytest.raises(InvalidProof):
        Frontier(3, [EMPTY_ROOT])
    with pytest.raises(InvalidProof):
        Frontier(1, [b"short"])
    with pytest.raises(InvalidProof):
        Frontier.from_bytes(b"\x00" * 9)


def test_proofs_from_a_subtree_callback_match_proofs_from_leaves() -> None:
    leaves = _leaves(37)
    calls: list[tuple[int, int]] = []

    def subtree(start: int, end: int) -> bytes:
        calls.append((start, end))
        return reference_mth_of_hashes(leaves[start:end])

    assert consistency_proof(13, 37, subtree) == consistency_proof_from_leaves(
        13, leaves
    )
    assert calls


def reference_mth_of_hashes(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(
        reference_mth_of_hashes(hashes[:k]), reference_mth_of_hashes(hashes[k:])
    )


def test_malformed_proofs_are_rejected_not_raised() -> None:
    leaves = _leaves(8)
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof_from_leaves(3, leaves)
    assert not verify_inclusion(3, 8, leaves[3], [*proof, proof[0]], root)
    assert not verify_inclusion(3, 8, leaves[3], proof[:-1], root)
    assert not verify_inclusion(8, 8, leaves[3], proof, root)
    assert not verify_inclusion(3, 8, leaves[3], [b"x", *proof[1:]], root)
    assert not verify_consistency(4, 8, root, root, [])
    assert not verify_consistency(9, 8, root, root, [])
    assert not verify_consistency(8, 8, root, root, [root])


def test_inclusion_proof_size_grows_with_log2_of_the_tree() -> None:
    assert inclusion_proof_size(0, 1) == 0
    assert inclusion_proof_size(0, 2**20) == 20
    assert inclusion_proof_size(10**7 - 1, 10**7) <= 24
    with pytest.raises(InvalidProof):
        inclusion_proof_size(5, 5)
