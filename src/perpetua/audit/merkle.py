"""Merkle tree hashing for the audit log, as specified by RFC 9162 section 2.1.

This module guards the arithmetic that makes the audit log tamper-evident: once a
checkpoint commits to the root of the first ``n`` events, changing, dropping or
reordering any of them changes the root. Everything follows RFC 9162 (Certificate
Transparency v2), which keeps RFC 6962's hashing, so any CT-compatible tool can
check our roots and proofs:

- leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || l || r)``;
- the tree over ``n`` leaves splits at the largest power of two below ``n``;
- inclusion proofs (section 2.1.3) and consistency proofs (section 2.1.4).

The sealing job never rebuilds the tree. It keeps a ``Frontier``: the roots of the
perfect subtrees that make up the tree so far, one per set bit of the size. That
is at most 64 hashes, cheap to persist, and enough to append leaves and to compute
the root at the current size.

Proof generation reads subtree hashes through a callback, so the database side can
answer from stored hashes instead of loading every leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "InvalidProof",
    "SubtreeHash",
    "consistency_proof",
    "consistency_proof_from_leaves",
    "inclusion_proof",
    "inclusion_proof_from_leaves",
    "inclusion_proof_size",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "root_from_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

# The root of the empty tree is the hash of the empty string (RFC 9162 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

# A callback returning MTH(D[start:end]) for the log's leaves, 0 <= start < end.
SubtreeHash = Callable[[int, int], bytes]


class InvalidProof(ValueError):
    """A proof, frontier or tree size does not fit the tree it claims to describe."""


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf; the 0x00 prefix keeps leaves and nodes in separate domains."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash an interior node from its two children."""
    return _sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    # For n >= 2: the k of RFC 9162 2.1.1, with k < n <= 2k.
    return 1 << ((n - 1).bit_length() - 1)


def _perfect_root(hashes: list[bytes]) -> bytes:
    """Root of a perfect subtree given its 2**h leaf (or node) hashes."""
    sha = _sha256
    while len(hashes) > 1:
        it = iter(hashes)
        # Pairing adjacent hashes level by level in a comprehension keeps the loop
        # in C as much as Python allows; this is the hot path of verification.
        hashes = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=True)]
    return hashes[0]


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes, computed bottom-up in O(n) node hashes.

    Pairing level by level and carrying an odd last hash up unchanged yields the
    same left-balanced tree as RFC 9162's recursive split.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    sha = _sha256
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        it = iter(level[: len(level) - (1 if odd is not None else 0)])
        level = [sha(b"\x01" + a + b).digest() for a, b in zip(it, it, strict=True)]
        if odd is not None:
            level.append(odd)
    return level[0]


class Frontier:
    """The compact state of an append-only Merkle tree of ``size`` leaves.

    ``hashes`` holds the roots of the perfect subtrees that tile the leaves from
    left to right, largest first: one per set bit of ``size``. Persist it as
    ``(size, hashes)`` or with ``to_bytes``.
    """

    __slots__ = ("_stack", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise InvalidProof("tree size cannot be negative")

        # A frontier that does not match its size would silently produce wrong
        # roots for every later checkpoint, so refuse it at the door.
        if len(hashes) != size.bit_count():
            raise InvalidProof(
                f"a tree of size {size} needs {size.bit_count()} "
                f"frontier hashes, got {len(hashes)}"
            )
        if any(len(h) != HASH_SIZE for h in hashes):
            raise InvalidProof("frontier hashes must be 32 bytes")
        self.size = size
        self._stack = [bytes(h) for h in hashes]

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._stack)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self.size == other.size and self._stack == other._stack

    def __repr__(self) -> str:
        return f"Frontier(size={self.size}, root={self.root().hex()})"

    def copy(self) -> Frontier:
        return Frontier(self.size, self._stack)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (already ``leaf_hash``-ed) to the right of the tree."""
        self._push(leaf, 0)

    def _push(self, subtree: bytes, height: int) -> None:
        # Adding a perfect subtree of 2**height leaves is only well defined when
        # the tree so far ends on a 2**height boundary.
        stack = self._stack
        size = self.size >> height
        while size & 1:
            subtree = _sha256(b"\x01" + stack.pop() + subtree).digest()
            size >>= 1
        stack.append(subtree)
        self.size += 1 << height

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Append many leaf hashes; faster than ``append`` in a loop.

        The leaves are cut into the largest aligned perfect subtrees, each hashed
        level by level, then pushed onto the frontier as one node.
        """
        start, count = 0, len(leaves)
        while start < count:
            remaining = count - start
            if self.size:
                # Largest block the current size is aligned to.
                block = self.size & -self.size
                while block > remaining:
                    block >>= 1
            else:
                block = 1 << (remaining.bit_length() - 1)
            height = block.bit_length() - 1
            if block == 1:
                self._push(leaves[start], 0)
            else:
                self._push(_perfect_root(list(leaves[start : start + block])), height)
            start += block

    def root(self) -> bytes:
        """MTH of the tree at its current size."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        root = stack[-1]
        for left in reversed(stack[:-1]):
            root = _sha256(b"\x01" + left + root).digest()
        return root

    def to_bytes(self) -> bytes:
        """Serialize as an 8-byte big-endian size followed by the hashes."""
        return self.size.to_bytes(8, "big") + b"".join(self._stack)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise InvalidProof("a serialized frontier is 8 + 32*k bytes")
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        hashes = [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        return cls(size, hashes)

    @classmethod
    def from_leaf_hashes(cls, leaves: Sequence[bytes]) -> Frontier:
        frontier = cls()
        frontier.extend(leaves)
        return frontier


# Proof generation.


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1, ordered from the leaf upward."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []

    # Walk down from the root; each step records the sibling subtree's hash.
    start, end, m = 0, size, index
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if m < k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
            m -= k
    path.reverse()
    return path


def consistency_proof(
    old_size: int, new_size: int, subtree: SubtreeHash
) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 2.1.4.1."""
    if not 0 <= old_size <= new_size:
        raise InvalidProof(f"no consistency proof from {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []

    # SUBPROOF(m, D[start:end], whole_old_tree) unrolled into a loop.
    start, end, m, whole = 0, new_size, old_size, True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
            m -= k
            whole = False
    if not whole:
        path.append(subtree(start, end))
    path.reverse()
    return path


def _leaf_source(leaves: Sequence[bytes]) -> SubtreeHash:
    def subtree(start: int, end: int) -> bytes:
        return root_from_leaf_hashes(leaves[start:end])

    return subtree


def inclusion_proof_from_leaves(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Inclusion proof for ``leaves[index]`` in the tree over all ``leaves``."""
    return inclusion_proof(index, len(leaves), _leaf_source(leaves))


def consistency_proof_from_leaves(
    old_size: int, leaves: Sequence[bytes]
) -> list[bytes]:
    """Consistency proof from the first ``old_size`` leaves to all ``leaves``."""
    return consistency_proof(old_size, len(leaves), _leaf_source(leaves))


def inclusion_proof_size(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof, computed without hashing."""
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} is not in a tree of size {size}")
    count, start, end, m = 0, 0, size, index
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        count += 1
        if m < k:
            end = start + k
        else:
            start += k
            m -= k
    return count


# Proof verification.


def root_from_proof(
    index: int, size: int, leaf: bytes, proof: Iterable[bytes]
) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 2.1.3.2, steps 1-4).

    Raises ``InvalidProof`` when the proof has the wrong shape for the tree.
    """
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != HASH_SIZE:
            raise InvalidProof("proof hashes must be 32 bytes")
        if sn == 0:
            raise InvalidProof("inclusion proof is longer than the tree is tall")
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
        raise InvalidProof("inclusion proof is shorter than the tree is tall")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when ``proof`` shows ``leaf`` at ``index`` in the tree with ``root``."""
    try:
        computed = root_from_proof(index, size, leaf, proof)
    except InvalidProof:
        return False
    return computed == root


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """True when ``proof`` shows the old tree is a prefix of the new one.

    Follows RFC 9162 2.1.4.2; the edge cases it leaves to the caller are decided
    here: equal sizes need an empty proof and equal roots, and every tree extends
    the empty tree.
    """
    if not 0 <= old_size <= new_size:
        return False
    if any(len(c) != HASH_SIZE for c in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False

    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one, so its root is the
        # first node on the path and the proof omits it.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
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
    return sn == 0 and fr == old_root and sr == new_root
