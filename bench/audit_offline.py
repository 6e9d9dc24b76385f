"""Throughput of the audit log's offline core: sealing, verifying, proof sizes.

Measures, in one run on one machine:

- sealing: canonical encoding + leaf hash + frontier append, per event;
- verification: ``verify_archive`` over an exported file, events per second,
  for version 1 lines (whose leaf hashes the line itself) and, side by side, for
  version 3 lines (the version the database seals today, whose leaf hashes a
  binary form the verifier rebuilds from each line);
- inclusion proof sizes for logs of 10**3..10**7 leaves. Sizes up to
  ``--build-limit`` are measured on real trees with generated proofs; beyond it
  they are computed arithmetically from the tree shape (no hashing), and the
  output says which is which.

Run: ``python bench/audit_offline.py [--events N]``. The last line is
``audit_verify_events_per_s: X``.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from perpetua.audit.canonical import (
    AuditEvent,
    encode_event,
    leaf_input,
    make_event,
    make_event_v3,
)
from perpetua.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    generate_key,
    sign_checkpoint,
)
from perpetua.audit.merkle import (
    Frontier,
    inclusion_proof_from_leaves,
    inclusion_proof_size,
    leaf_hash,
    root_from_leaf_hashes,
    verify_inclusion,
)
from perpetua.audit.offline_verify import (
    practice_log_origin,
    verify_archive,
    write_archive,
)

PRACTICE = "0b6a1a5e-0000-4000-8000-000000000001"


def make_events(count: int) -> list[AuditEvent]:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    rng = random.Random(7)
    roles = ["front_desk", "provider", "billing", "agent"]
    actions = ["patient:read", "appointment:create", "coverage:read", "call:read"]
    return [
        make_event(
            practice_id=PRACTICE,
            index=i,
            time=start + timedelta(microseconds=i * 1500),
            actor_kind="user",
            actor_id=f"{rng.getrandbits(128):032x}",
            actor_role=rng.choice(roles),
            action=rng.choice(actions),
            resource_type="patient",
            resource_ids=[f"{rng.getrandbits(128):032x}"],
            patient_ids=[f"{rng.getrandbits(128):032x}"],
            purpose_of_use="TREAT",
            reason="Confirming the appointment time" if i % 4 == 0 else None,
            ip=f"198.51.100.{i % 250}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Perpetua-Console",
            request_id=f"{rng.getrandbits(64):016x}",
            outcome="success",
        )
        for i in range(count)
    ]


def make_events_v3(count: int) -> list[AuditEvent]:
    """Version 3 events of the same shape: the database's fields, UUID ids."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    rng = random.Random(7)
    roles = ["front_desk", "provider", "biller", "manager"]
    actions = ["view", "create", "update", "export"]

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    return [
        make_event_v3(
            event_id=uid(),
            practice_id=PRACTICE,
            index=i,
            time=start + timedelta(microseconds=i * 1500),
            actor_kind="user",
            actor_id=uid(),
            actor_role=rng.choice(roles),
            action=rng.choice(actions),
            resource_type="patient",
            outcome="success",
            row_count=1,
            resource_ids=[uid()],
            patient_ids=[uid()],
            purpose_of_use="TREAT",
            reason="Confirming the appointment time" if i % 4 == 0 else None,
            ip=f"198.51.100.{i % 250}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Perpetua-Console",
            request_id=f"{rng.getrandbits(64):016x}",
        )
        for i in range(count)
    ]


def bench_sealing(events: list[AuditEvent]) -> tuple[float, list[bytes]]:
    frontier = Frontier()
    lines = []
    began = time.perf_counter()
    for event in events:
        data = encode_event(event)
        frontier.append(leaf_hash(data))
        lines.append(data)
    elapsed = time.perf_counter() - began
    return len(events) / elapsed, lines


def bench_verify(
    lines: list[bytes],
    checkpoints_every: int,
    leaf_of: Callable[[bytes], bytes] = leaf_hash,
) -> tuple[float, int]:
    origin = practice_log_origin(PRACTICE)
    skey, vkey = generate_key(origin)
    signer = NoteSigner.from_key(skey)
    frontier = Frontier()
    notes = []
    for size in [*range(checkpoints_every, len(lines), checkpoints_every), len(lines)]:
        frontier.extend([leaf_of(line) for line in lines[frontier.size : size]])
        notes.append(sign_checkpoint(Checkpoint(origin, size, frontier.root()), signer))

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "audit.jsonl")
        with open(path, "wb") as out:
            write_archive(
                out,
                practice_id=PRACTICE,
                origin=origin,
                verifier_key=vkey,
                events=lines,
                checkpoints=notes,
            )
        file_size = os.path.getsize(path)
        began = time.perf_counter()
        report = verify_archive(path, trusted_key=vkey)
        elapsed = time.perf_counter() - began
    if not report.ok:
        raise SystemExit(f"verification failed: {report.message}")
    return len(lines) / elapsed, file_size


def proof_sizes(build_limit: int) -> list[str]:
    rows = []
    for exponent in range(3, 8):
        size = 10**exponent
        indices = [0, size // 2, size - 1]
        if size <= build_limit:
            leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(size)]
            root = root_from_leaf_hashes(leaves)
            lengths = []
            for index in indices:
                proof = inclusion_proof_from_leaves(index, leaves)
                assert verify_inclusion(index, size, leaves[index], proof, root)
                lengths.append(len(proof))
            how = "measured"
        else:
            lengths = [inclusion_proof_size(index, size) for index in indices]
            how = "computed"
        longest = max(lengths)
        rows.append(
            f"  10^{exponent:<2} leaves: {min(lengths)}-{longest} hashes, "
            f"<= {longest * 32} bytes ({how})"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--checkpoint-every", type=int, default=10_000)
    parser.add_argument("--build-limit", type=int, default=100_000)
    args = parser.parse_args()

    print(f"cpus: {os.cpu_count()}, events: {args.events}")
    events = make_events(args.events)
    seal_rate, lines = bench_sealing(events)
    del events
    print(f"sealing (encode + leaf hash + frontier append): {seal_rate:,.0f} events/s")

    verify_rate, file_size = bench_verify(lines, args.checkpoint_every)
    checkpoints = -(-args.events // args.checkpoint_every)
    print(
        f"verification of a {file_size / 1e6:.1f} MB archive with {checkpoints} "
        f"checkpoints: {verify_rate:,.0f} events/s"
    )

    v3_lines = [encode_event(event) for event in make_events_v3(args.events)]
    v3_rate, v3_size = bench_verify(
        v3_lines, args.checkpoint_every, lambda line: leaf_hash(leaf_input(line))
    )
    del v3_lines
    print(
        f"verification of a {v3_size / 1e6:.1f} MB archive of version 3 events, "
        f"same run: {v3_rate:,.0f} events/s ({v3_rate / verify_rate:.2f}x version 1)"
    )
    print("inclusion proof sizes (first, middle, last leaf):")
    for row in proof_sizes(args.build_limit):
        print(row)
    print(f"audit_verify_events_per_s: {verify_rate:.0f}")


if __name__ == "__main__":
    main()
