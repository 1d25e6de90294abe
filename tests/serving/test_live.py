"""Live models in one worker: refresh picks up changes; a request in flight keeps its model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from govreg_kit import MODEL, Kit

from audits.signing import load_public_key
from serving.errors import Check, LoadRefused
from serving.live import LiveModels
from serving.loader import ServingConfig

# A started poller that does not poll during the test: the test's own refresh() is the
# round it checks (with the default 0.5 s, a loaded machine let the poller refresh first).
STARTED_NOT_POLLING = 3600.0


def _live(kit: Kit, **kwargs: object) -> LiveModels:
    config = ServingConfig(public_key=load_public_key(kit.settings.public_key_path))
    return LiveModels(kit.registry, config, **kwargs)  # type: ignore[arg-type]


def test_suspension_stops_new_requests_but_not_one_in_flight(kit: Kit) -> None:
    kit.approved()
    kit.registry.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    live = _live(kit, poll_interval=STARTED_NOT_POLLING)
    live.start()
    try:
        in_flight = live.get(MODEL)
        row = dict.fromkeys(in_flight.features, 0.5)
        before = in_flight.score([row])
        kit.registry.suspend(kit["compliance-1"], MODEL, 1, reason="drift")
        assert live.refresh() is True
        with pytest.raises(LoadRefused) as caught:
            live.get(MODEL)
        assert caught.value.check == Check.STATUS
        # The request that already held the scorer finishes on v1, unchanged.
        assert in_flight.score([row]) == before
        assert in_flight.version == 1
        # Nothing else moved: a second refresh re-checks nothing and records nothing.
        size = kit.size()
        assert live.refresh() is False
        assert kit.size() == size
    finally:
        live.stop()


def test_unrelated_events_do_not_reload_a_held_model(kit: Kit) -> None:
    kit.approved()
    kit.registry.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    live = _live(kit, poll_interval=STARTED_NOT_POLLING)
    live.start()
    try:
        held = live.get(MODEL)
        kit.submit("other-model")  # moves the head, not credit-pd's governing events
        assert live.refresh() is True
        assert live.get(MODEL) is held
        assert len(kit.events(types=["serving.loaded"])) == 1
    finally:
        live.stop()


def test_expiry_is_checked_on_every_request(kit: Kit) -> None:
    kit.approved()
    kit.registry.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    now = [datetime.now(UTC)]
    live = _live(kit, clock=lambda: now[0])
    held = live.get(MODEL)
    assert held.version == 1
    now[0] = held.revalidate_by + timedelta(seconds=1)
    with pytest.raises(LoadRefused, match="past its revalidation date"):
        live.get(MODEL)


def test_a_promotion_committed_during_a_recheck_is_not_skipped(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-check refuses the suspended v1, and v2 is promoted before its refusal
    is recorded (the refusal waited for the writers' lock): the refusal moves the
    head past the promotion, yet the next round still re-checks and serves v2."""
    from serving import live as live_module

    kit.approved()
    kit.registry.promote(kit["compliance-1"], MODEL, 1, alias="champion")
    live = _live(kit)
    assert live.get(MODEL).version == 1
    live.refresh()  # the head, past v1's serving.loaded
    v2 = kit.approved()
    kit.registry.suspend(kit["compliance-1"], MODEL, 1, reason="drift")
    real_load = live_module.load_approved
    promoted: list[bool] = []

    def load_then_promote(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_load(*args, **kwargs)
        finally:
            if not promoted:
                kit.registry.promote(kit["compliance-1"], MODEL, v2, alias="champion")
                promoted.append(True)

    monkeypatch.setattr(live_module, "load_approved", load_then_promote)
    assert live.refresh() is True
    with pytest.raises(LoadRefused, match="suspended"):
        live.get(MODEL)
    assert kit.events(types=["alias.set"])[-1].version == v2
    assert live.refresh() is True  # the promotion, not skipped
    assert live.get(MODEL).version == v2
    assert live.refresh() is False
