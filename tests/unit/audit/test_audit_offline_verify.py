"""Specification of archive export and offline verification, end to end."""

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from perpetua.audit.canonical import AuditEvent, encode_event, make_event
from perpetua.audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    generate_key,
    sign_checkpoint,
)
from perpetua.audit.merkle import Frontier, leaf_hash
from perpetua.audit.offline_verify import (
    practice_log_origin,
    verify_archive,
    write_archive,
)

PRACTICE = "0b6a1a5e-0000-4000-8000-000000000001"
OTHER_PRACTICE = "0b6a1a5e-0000-4000-8000-000000000002"
ORIGIN = practice_log_origin(PRACTICE)
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SKEY, VKEY = generate_key(ORIGIN)
SIGNER = NoteSigner.from_key(SKEY)


def event(index: int, practice: str = PRACTICE) -> AuditEvent:
    return make_event(
        practice_id=practice,
        index=index,
        time=START + timedelta(seconds=index),
        actor_kind="user",
        actor_id=f"user-{index % 3}",
        actor_role="front_desk",
        action="patient:read",
        resource_type="patient",
        resource_ids=[f"patient-{index}"],
        patient_ids=[f"patient-{index}"],
        purpose_of_use="TREAT",
        reason="Confirming the visit" if index % 2 else None,
        ip="203.0.113.7",
        user_agent="Mozilla/5.0",
        request_id=f"req-{index}",
        outcome="success",
    )


def seal(
    events: Sequence[bytes], sizes: Sequence[int], signer: NoteSigner = SIGNER
) -> list[str]:
    """What the sealing job does: fold leaves into a frontier, sign at each size."""
    frontier = Frontier()
    notes = []
    for size in sizes:
        frontier.extend([leaf_hash(e) for e in events[frontier.size : size]])
        moment = START + timedelta(minutes=size)
        notes.append(
            sign_checkpoint(Checkpoint(ORIGIN, size, frontier.root(), moment), signer)
        )
    return notes


def archive(count: int = 12, sizes: Sequence[int] = (4, 9, 12)) -> bytes:
    lines = [encode_event(event(i)) for i in range(count)]
    out = io.BytesIO()
    write_archive(
        out,
        practice_id=PRACTICE,
        origin=ORIGIN,
        verifier_key=VKEY,
        events=lines,
        checkpoints=seal(lines, sizes),
    )
    return out.getvalue()


def verify(data: bytes, **kwargs: object):  # type: ignore[no-untyped-def]
    return verify_archive(io.BytesIO(data), **kwargs)  # type: ignore[arg-type]


GOOD = archive()
GOOD_LINES = GOOD.split(b"\n")[:-1]


def test_an_untouched_archive_verifies_with_a_pinned_key() -> None:
    report = verify(GOOD, trusted_key=VKEY)
    assert report.ok, report.message
    assert report.code == "ok"
    assert (report.event_count, report.sealed_count, report.unsealed_count) == (
        12,
        12,
        0,
    )
    assert report.checkpoint_count == 3
    assert report.key_pinned
    assert report.last_checkpoint is not None
    assert report.last_checkpoint.time == START + timedelta(minutes=12)


def test_archive_written_from_event_mappings_is_identical_to_one_from_bytes() -> None:
    lines = [encode_event(event(i)) for i in range(12)]
    out = io.BytesIO()
    write_archive(
        out,
        practice_id=PRACTICE,
        origin=ORIGIN,
        verifier_key=VKEY,
        events=[event(i) for i in range(12)],
        checkpoints=seal(lines, (4, 9, 12)),
    )
    assert out.getvalue() == GOOD


def test_archive_verifies_from_a_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "audit.jsonl"
    path.write_bytes(GOOD)
    assert verify_archive(path, trusted_key=VKEY).ok


def test_unpinned_key_is_reported_as_such() -> None:
    report = verify(GOOD)
    assert report.ok
    assert not report.key_pinned
    assert "not pinned" in report.message


def test_archive_signed_by_another_key_fails_against_the_pinned_key() -> None:
    _, other_vkey = generate_key(ORIGIN)
    report = verify(GOOD, trusted_key=other_vkey)
    assert (report.ok, report.code) == (False, "key_mismatch")


def test_events_after_the_last_checkpoint_are_reported_unsealed_not_proven() -> None:
    report = verify(archive(count=15, sizes=(4, 12)))
    assert report.ok
    assert (report.sealed_count, report.unsealed_count) == (12, 3)
    assert "3 later events are unsealed" in report.message


def test_an_empty_log_verifies_and_proves_nothing() -> None:
    report = verify(archive(count=0, sizes=()))
    assert report.ok
    assert report.event_count == 0


def test_events_without_any_checkpoint_fail() -> None:
    report = verify(archive(count=3, sizes=()))
    assert (report.ok, report.code) == (False, "no_checkpoint")


@pytest.mark.parametrize("line_number", range(len(GOOD_LINES)))
def test_changing_any_single_byte_of_any_line_fails(line_number: int) -> None:
    line = GOOD_LINES[line_number]
    for position in range(len(line)):
        lines = list(GOOD_LINES)
        mutated = bytearray(line)
        mutated[position] ^= 0x01 if mutated[position] != 0x0B else 0x02
        lines[line_number] = bytes(mutated)
        report = verify(b"\n".join(lines) + b"\n")
        assert not report.ok, (line_number, position, bytes(mutated))


@pytest.mark.parametrize("line_number", range(len(GOOD_LINES)))
def test_dropping_any_single_line_fails(line_number: int) -> None:
    lines = GOOD_LINES[:line_number] + GOOD_LINES[line_number + 1 :]
    report = verify(b"\n".join(lines) + b"\n")
    assert not report.ok


def test_a_dropped_event_is_reported_at_its_index() -> None:
    lines = GOOD_LINES[:6] + GOOD_LINES[7:]
    report = verify(b"\n".join(lines) + b"\n")
    assert (report.code, report.first_bad_index) == ("index_gap", 5)


def test_swapped_events_are_reported_at_the_first_moved_index() -> None:
    lines = list(GOOD_LINES)
    lines[3], lines[4] = lines[4], lines[3]
    report = verify(b"\n".join(lines) + b"\n")
    assert (report.code, report.first_bad_index) == ("index_gap", 2)


def test_a_damaged_event_is_named_when_it_no_longer_decodes() -> None:
    lines = list(GOOD_LINES)
    lines[7] = lines[7].replace(b'"outcome":"success"', b'"outcome":"SUCCESS"')
    report = verify(b"\n".join(lines) + b"\n")
    assert (report.code, report.first_bad_index) == ("root_mismatch", 6)
    assert "event 6 is damaged" in report.message


def test_a_plausible_rewrite_is_caught_and_bounded_to_the_checkpoint_range() -> None:
    lines = list(GOOD_LINES)
    lines[7] = lines[7].replace(b'"actor_id":"user-0"', b'"actor_id":"user-1"')
    report = verify(b"\n".join(lines) + b"\n")
    assert report.code == "root_mismatch"
    assert report.first_bad_index == 4
    assert "events 4..8" in report.message


def test_a_consistently_resigned_forgery_fails_against_the_pinned_key() -> None:
    forger_skey, forger_vkey = generate_key(ORIGIN)
    lines = [encode_event(event(i)) for i in range(12)]
    lines[2] = encode_event({**event(2), "actor_id": "someone-else"})
    out = io.BytesIO()
    write_archive(
        out,
        practice_id=PRACTICE,
        origin=ORIGIN,
        verifier_key=forger_vkey,
        events=lines,
        checkpoints=seal(lines, (12,), NoteSigner.from_key(forger_skey)),
    )
    assert verify(out.getvalue()).ok
    assert verify(out.getvalue(), trusted_key=VKEY).code == "key_mismatch"


def test_an_archive_rolled_back_behind_a_trusted_checkpoint_fails() -> None:
    lines = [encode_event(event(i)) for i in range(12)]
    newest = seal(lines, (12,))[0]
    older = archive(count=9, sizes=(4, 9))
    report = verify(older, trusted_key=VKEY, trusted_checkpoints=[newest])
    assert (report.code, report.first_bad_index) == ("incomplete", 9)


def test_a_forked_history_disagrees_with_a_trusted_checkpoint() -> None:
    lines = [encode_event(event(i)) for i in range(12)]
    lines[1] = encode_event({**event(1), "reason": "rewritten"})
    forked = seal(lines, (12,))[0]
    report = verify(GOOD, trusted_key=VKEY, trusted_checkpoints=[forked])
    assert report.code == "trusted_checkpoint_mismatch"


def test_an_event_of_another_practice_is_named() -> None:
    lines = list(GOOD_LINES)
    lines[5] = encode_event(event(4, OTHER_PRACTICE))
    report = verify(b"\n".join(lines) + b"\n")
    assert (report.code, report.first_bad_index) == ("wrong_practice", 4)


def test_checkpoints_out_of_order_fail() -> None:
    lines = list(GOOD_LINES)
    lines[13], lines[14] = lines[14], lines[13]
    report = verify(b"\n".join(lines) + b"\n")
    assert report.code == "checkpoint_order"


def test_a_checkpoint_from_another_log_fails() -> None:
    lines = [encode_event(event(i)) for i in range(4)]
    frontier = Frontier.from_leaf_hashes([leaf_hash(e) for e in lines])
    foreign = sign_checkpoint(
        Checkpoint(practice_log_origin(OTHER_PRACTICE), 4, frontier.root()), SIGNER
    )
    out = io.BytesIO()
    write_archive(
        out,
        practice_id=PRACTICE,
        origin=ORIGIN,
        verifier_key=VKEY,
        events=lines,
        checkpoints=[foreign],
    )
    assert verify(out.getvalue()).code == "bad_checkpoint"


def test_a_truncated_archive_fails() -> None:
    assert verify(GOOD[:-1]).code == "bad_footer"
    assert not verify(GOOD[: len(GOOD) // 2]).ok
    assert verify(b"").code == "bad_header"


def test_the_header_states_format_practice_origin_and_key() -> None:
    header = json.loads(GOOD_LINES[0])
    assert header == {
        "format": "perpetua-audit-archive",
        "origin": ORIGIN,
        "practice_id": PRACTICE,
        "verifier_key": VKEY,
        "version": 1,
    }


def test_large_archive_crossing_read_blocks_verifies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import perpetua.audit.offline_verify as module

    monkeypatch.setattr(module, "_BLOCK", 997)
    data = archive(count=300, sizes=(1, 64, 65, 200, 299))
    report = verify(data, trusted_key=VKEY)
    assert report.ok, report.message
    assert report.unsealed_count == 1
    lines = data.split(b"\n")
    lines[150] = lines[150].replace(b"req-149", b"req-14X")
    assert verify(b"\n".join(lines)).code == "root_mismatch"


def test_the_writer_refuses_a_gap_in_the_events() -> None:
    with pytest.raises(ValueError, match="expected event 1"):
        write_archive(
            io.BytesIO(),
            practice_id=PRACTICE,
            origin=ORIGIN,
            verifier_key=VKEY,
            events=[event(0), event(2)],
            checkpoints=[],
        )
