"""``prove_record``: the one check of an envelope record against a signed checkpoint,
shared by the serving loader, the SDK's offline proof, the report and the bundle
verifier. Every way a record or its proof can be wrong is named, and nothing a
caller hands it raises anything but :class:`RecordNotProved`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import append_in, event_row

from audits.records import RecordNotProved, envelope_record, prove_record


@pytest.fixture
def proved(home: Any) -> Iterator[tuple[list[dict[str, Any]], dict[int, list[bytes]], Any]]:
    """Twelve events (bootstrap 1-3, then 4-7 and 8-12), their records, their proofs
    from the stored tree nodes, and the checkpoint at 12."""
    ctx = home.context()
    try:
        append_in(ctx, range(4, 8), range(8, 13))
        records = [envelope_record(event_row(ctx, seq)) for seq in range(1, 13)]
        with ctx.registry.reading() as conn:
            checkpoint = ctx.ledger.latest_checkpoint(conn)
            proofs = ctx.ledger.inclusion_proofs(conn, checkpoint.size, list(range(1, 13)))
        yield records, proofs, checkpoint
    finally:
        ctx.close()


def _unproved(env: Any, proof: Any, checkpoint: Any) -> RecordNotProved:
    with pytest.raises(RecordNotProved) as info:
        prove_record(env, proof, checkpoint)
    return info.value


def test_every_record_proves_into_the_checkpoint(proved: Any) -> None:
    records, proofs, checkpoint = proved
    assert checkpoint.size == 12
    for env in records:
        seq = env["seq"]
        assert prove_record(env, proofs[seq], checkpoint).hex() == env["leaf_hash"]
        # hex hashes, as a proof document carries them, prove the same
        as_hex = [h.hex() for h in proofs[seq]]
        assert prove_record(env, as_hex, checkpoint).hex() == env["leaf_hash"]


def test_an_edited_envelope_field_is_named_as_the_leaf(proved: Any) -> None:
    records, proofs, checkpoint = proved
    env = {**records[6], "actor": "mallory"}
    err = _unproved(env, proofs[7], checkpoint)
    assert (err.seq, err.reason, str(err)) == (
        7,
        "leaf",
        "event 7: its envelope does not hash to its leaf_hash",
    )
    ciphertext = bytearray(base64.b64decode(records[6]["ciphertext"]))
    ciphertext[0] ^= 1
    env = {**records[6], "ciphertext": base64.b64encode(bytes(ciphertext)).decode()}
    assert _unproved(env, proofs[7], checkpoint).reason == "leaf"


def test_a_leaf_rehashed_to_match_fails_the_inclusion(proved: Any) -> None:
    """Rewriting the envelope and its leaf_hash together leaves the signed root."""
    records, proofs, checkpoint = proved
    from audits.records import record_leaf

    env = {**records[6], "actor": "mallory"}
    env["leaf_hash"] = record_leaf(env).hex()
    err = _unproved(env, proofs[7], checkpoint)
    assert (err.seq, err.reason) == (7, "inclusion")
    assert str(err).startswith("event 7 is not included in checkpoint 12 (")


def test_a_wrong_proof_fails_the_inclusion(proved: Any) -> None:
    records, proofs, checkpoint = proved
    altered = [proofs[7][0][:-1] + bytes([proofs[7][0][-1] ^ 1]), *proofs[7][1:]]
    cases = {
        "altered hash": altered,
        "one hash short": proofs[7][:-1],
        "one hash extra": [*proofs[7], proofs[7][0]],
        "another event's": proofs[8],
    }
    for name, proof in cases.items():
        err = _unproved(records[6], proof, checkpoint)
        assert (name, err.seq, err.reason) == (name, 7, "inclusion")
    # a record moved to another seq (its leaf index) is not the leaf there
    moved = {**records[6], "seq": 8}
    assert _unproved(moved, proofs[8], checkpoint).reason == "leaf"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seq": "seven"}, "an event is not a govreg envelope record (ValueError: "),
        ({"nonce": "not base64!"}, "event 7 is not a govreg envelope record (Error"),
        ({"leaf_hash": "zz"}, "event 7 is not a govreg envelope record (ValueError: "),
        ({"version": [1]}, "event 7 is not a govreg envelope record (TypeError: "),
    ],
)
def test_a_malformed_record_is_named(proved: Any, change: dict[str, Any], named: str) -> None:
    records, proofs, checkpoint = proved
    err = _unproved({**records[6], **change}, proofs[7], checkpoint)
    assert err.reason == "malformed"
    assert str(err).startswith(named)


def test_a_missing_field_and_a_malformed_proof_are_named(proved: Any) -> None:
    records, proofs, checkpoint = proved
    env = {k: v for k, v in records[6].items() if k != "key_id"}
    err = _unproved(env, proofs[7], checkpoint)
    assert (err.seq, err.reason, str(err)) == (
        7,
        "malformed",
        "event 7 is not a govreg envelope record (KeyError: 'key_id')",
    )
    for proof, named in [
        ("ab" * 32, "TypeError: an inclusion proof is a list of hashes"),
        ([1], "TypeError: a proof hash is a int"),
        (["xyz"], "ValueError: non-hexadecimal number found in fromhex() arg at position 0"),
    ]:
        err = _unproved(records[6], proof, checkpoint)
        assert (err.seq, err.reason, str(err)) == (
            7,
            "malformed",
            f"event 7 is not a govreg envelope record ({named})",
        )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    field=st.sampled_from(
        [
            "seq",
            "recorded_at",
            "type",
            "actor",
            "model",
            "version",
            "index_fields",
            "key_id",
            "nonce",
            "ciphertext",
            "leaf_hash",
        ]
    ),
    value=_json,
    proof=_json | st.lists(st.binary(max_size=40) | st.text(max_size=70), max_size=6),
)
def test_fuzz_only_record_not_proved(proved: Any, field: str, value: Any, proof: Any) -> None:
    """Hostile JSON in any field or in the proof: refused by name, never a crash."""
    records, _, checkpoint = proved
    env = {**records[6], field: value}
    # only the true record with its true proof passes, and this is not it
    with pytest.raises(RecordNotProved) as info:
        prove_record(env, proof, checkpoint)
    assert info.value.reason in ("malformed", "leaf", "inclusion")
