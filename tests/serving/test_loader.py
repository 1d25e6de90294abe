"""The fail-closed loader: each refusal names its check, is recorded, and parses nothing."""

from __future__ import annotations

import logging
import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from govreg_kit import MODEL, Kit, passing_results
from ledger_helpers import drop_guard_rails, sql

from audits.signing import load_public_key
from core.clock import utcnow
from serving.errors import Check, LoadRefused
from serving.loader import ServingConfig, load_approved


def _config(kit: Kit, **overrides: Any) -> ServingConfig:
    return ServingConfig(public_key=load_public_key(kit.settings.public_key_path), **overrides)


def _refused(kit: Kit, check: Check, **kwargs: Any) -> LoadRefused:
    before = kit.size()
    with pytest.raises(LoadRefused) as caught:
        load_approved(kit.registry, MODEL, config=kwargs.pop("config", _config(kit)), **kwargs)
    assert caught.value.check == check
    # One serving.refused event, naming the check, and nothing else.
    assert kit.size() == before + 1
    last = kit.events(types=["serving.refused"])[-1]
    assert last.seq == before + 1
    assert last.data["check"] == check.value
    assert last.index == {"check": check.value}
    return caught.value


def _promoted(kit: Kit) -> int:
    version = kit.approved()
    kit.registry.promote(kit["compliance-1"], MODEL, version, alias="champion")
    return version


def test_loads_the_promoted_version_and_records_it(kit: Kit) -> None:
    version = _promoted(kit)
    approval = kit.events(types=["version.approved"])[-1]
    scorer = load_approved(kit.registry, MODEL, "champion", config=_config(kit))
    assert (scorer.model, scorer.version, scorer.approval_seq) == (MODEL, version, approval.seq)
    assert scorer.artifact_digest == approval.data["artifact_digest"]
    loaded = kit.events(types=["serving.loaded"])
    assert len(loaded) == 1
    assert loaded[0].actor == "serving"
    assert loaded[0].data["alias"] == "champion"
    assert loaded[0].index == {
        "approval_seq": approval.seq,
        "artifact_digest": approval.data["artifact_digest"],
    }
    # By version too.
    assert load_approved(kit.registry, MODEL, version=version, config=_config(kit)).version == 1


def test_never_approved(kit: Kit) -> None:
    kit.submit()
    error = _refused(kit, Check.STATUS, version=1)
    assert "the version is submitted, never approved" in str(error)


def test_alias_not_set(kit: Kit) -> None:
    kit.approved()
    from core.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"pd@champion is not set"):
        load_approved(kit.registry, MODEL, "champion", config=_config(kit))
    assert kit.events(types=["serving.refused"])[-1].data["check"] == "status"


def test_gates_failed(kit: Kit) -> None:
    kit.evaluated(results=passing_results(fairness="failed"))
    error = _refused(kit, Check.GATES, version=1)
    assert "blocking gates did not pass under credit-risk@1: fairness failed" in str(error)


def test_signoffs_incomplete(kit: Kit) -> None:
    kit.evaluated()
    kit.sign("validator-1")
    error = _refused(kit, Check.SIGNOFFS, version=1)
    assert str(error).endswith(
        "required sign-offs are incomplete: compliance_officer (0 of 1), business_owner (0 of 1)"
    )


def test_suspended_then_reinstated(kit: Kit) -> None:
    _promoted(kit)
    kit.registry.suspend(kit["compliance-1"], MODEL, 1, reason="drift")
    assert "the version is suspended" in str(_refused(kit, Check.STATUS))
    kit.registry.reinstate(kit["compliance-1"], MODEL, 1, reason="fixed")
    assert load_approved(kit.registry, MODEL, config=_config(kit)).version == 1


def test_retired(kit: Kit) -> None:
    _promoted(kit)
    kit.registry.retire(kit["compliance-1"], MODEL, 1, reason="replaced")
    assert "the version is retired" in str(_refused(kit, Check.STATUS))


def test_past_revalidation(kit: Kit) -> None:
    _promoted(kit)
    later = utcnow() + timedelta(days=400)
    error = _refused(kit, Check.STATUS, now=later)
    assert "past its revalidation date" in str(error)


def test_bytes_swapped_after_approval(kit: Kit) -> None:
    _promoted(kit)
    digest = kit.events(types=["version.approved"])[-1].data["artifact_digest"]
    blob = kit.registry.store.path_for(digest)
    blob.chmod(0o644)
    blob.write_text(kit.files.model_text.replace("tree", "tree ", 1), encoding="utf-8")
    error = _refused(kit, Check.DIGEST)
    assert f"the approved digest is {digest}" in str(error)


def test_symlinked_artifact(kit: Kit, tmp_path: Path) -> None:
    _promoted(kit)
    digest = kit.events(types=["version.approved"])[-1].data["artifact_digest"]
    blob = kit.registry.store.path_for(digest)
    copy = tmp_path / "same-bytes.txt"
    copy.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(copy)
    error = _refused(kit, Check.FILE)
    assert "symlink" in str(error)


def test_approval_not_covered_by_a_checkpoint(
    tampered_kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    """Every checkpoint deleted: the load is refused, and so is the signing of its
    refusal (the signer will not start a tree over a ledger with its checkpoints
    gone), which is logged instead of recorded."""
    kit = tampered_kit
    _promoted(kit)
    drop_guard_rails(kit.ctx)
    sql(kit.ctx, "DELETE FROM ledger_checkpoints")
    before = kit.size()
    with caplog.at_level(logging.ERROR), pytest.raises(LoadRefused) as caught:
        load_approved(kit.registry, MODEL, config=_config(kit))
    assert caught.value.check == Check.CHECKPOINT
    assert "is not covered by a signed checkpoint" in str(caught.value)
    assert kit.size() == before
    refusal = (
        f"the ledger holds events 1..{before} but no signed checkpoint (checkpoints were "
        "deleted: every write signs one); refusing to sign (run `govreg audit verify`)"
    )
    assert caplog.messages == [
        f"the ledger's signer refused to sign a checkpoint: {refusal}",
        f"{MODEL}: refused to load, but the refusal could not be recorded: {refusal}",
    ]


def test_checkpoint_signed_by_another_key(kit: Kit, tmp_path: Path) -> None:
    from audits.signing import create_signing_key

    _promoted(kit)
    create_signing_key(tmp_path)
    other = ServingConfig(public_key=load_public_key(tmp_path / "checkpoint.pub"))
    error = _refused(kit, Check.CHECKPOINT, config=other)
    assert "not the given public key" in str(error)


def test_edited_approval_event_is_refused(tampered_kit: Kit) -> None:
    kit = tampered_kit
    _promoted(kit)
    seq = kit.events(types=["version.approved"])[-1].seq
    drop_guard_rails(kit.ctx)
    sql(kit.ctx, f"UPDATE ledger_events SET actor = 'someone-else' WHERE seq = {seq}")
    error = _refused(kit, Check.CHECKPOINT)
    # The selected row's sealed header is compared before its leaf (as audit verify does).
    assert f"event {seq}: its plaintext column 'actor' differs from its sealed header" in str(error)


class _Sentinel:
    """Unpickling this creates a file: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (self.path,))


def test_pickle_artifact_is_never_parsed(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pickle that got approved anyway (as if the submission check had a hole).
    sentinel = tmp_path / "pickle-ran"
    payload = tmp_path / "model.pkl"
    payload.write_bytes(pickle.dumps(_Sentinel(sentinel), protocol=4))
    import registry.inputs as inputs

    model = kit.files.model.read_bytes()
    real = inputs.inspect_artifact(model, source="model")
    monkeypatch.setattr(inputs, "inspect_artifact", lambda data, source: real)
    contract = inputs.data_contract
    monkeypatch.setattr(
        inputs, "data_contract", lambda data, frame, source: contract(model, frame, source=source)
    )
    version = kit.submit(artifact=payload)
    monkeypatch.undo()
    kit.registry.start_evaluation(kit["ds-1"], MODEL, version)
    kit.registry.evaluations.record_evaluation(kit["ds-1"], MODEL, version, 1, passing_results())
    for who in ("validator-1", "compliance-1", "owner-1"):
        kit.sign(who, MODEL, version)
    error = _refused(kit, Check.FORMAT, version=version)
    assert "pickle" in str(error)
    assert not sentinel.exists()


def test_a_suspension_moved_to_another_version_is_not_believed(tampered_kit: Kit) -> None:
    kit = tampered_kit
    version = _promoted(kit)
    kit.registry.suspend(kit["compliance-1"], MODEL, version, reason="drift")
    seq = kit.events(types=["version.suspended"])[-1].seq
    drop_guard_rails(kit.ctx)
    sql(kit.ctx, f"UPDATE ledger_events SET version = 999 WHERE seq = {seq}")
    error = _refused(kit, Check.CHECKPOINT)
    assert f"event {seq}: its plaintext columns do not hash to its stored leaf" in str(error)


def test_a_suspension_hidden_after_a_reload_witnessed_it_is_not_believed(
    tampered_kit: Kit,
) -> None:
    kit = tampered_kit
    version = _promoted(kit)
    kit.registry.suspend(kit["compliance-1"], MODEL, version, reason="drift")
    seq = kit.events(types=["version.suspended"])[-1].seq
    kit.registry.reinstate(kit["compliance-1"], MODEL, version, reason="fixed")
    # This load hashes the whole ledger once, the suspension included.
    assert load_approved(kit.registry, MODEL, "champion", config=_config(kit)).version == version
    drop_guard_rails(kit.ctx)
    sql(kit.ctx, f"UPDATE ledger_events SET version = 999 WHERE seq = {seq}")
    # The next load hashes only newer events; the witnessed suspension is missed by name.
    error = _refused(kit, Check.CHECKPOINT)
    assert str(error).endswith(
        f"event {seq} of {MODEL} v{version} is no longer selected by its plaintext columns "
        "(an envelope field was edited since it was verified)"
    )


def test_a_tampered_tree_node_fails_the_proof(tampered_kit: Kit) -> None:
    kit = tampered_kit
    _promoted(kit)
    submitted = kit.events(types=["version.submitted"])[-1].seq
    drop_guard_rails(kit.ctx)
    # Every stored node: the proof of the version's first event reads some of them.
    assert sql(kit.ctx, "UPDATE ledger_tree_nodes SET hash = :h", {"h": bytes(32)}) > 0
    error = _refused(kit, Check.CHECKPOINT)
    assert str(error).endswith(f"event {submitted} does not hash to its signed leaf")
