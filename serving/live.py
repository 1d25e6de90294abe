"""Scorers held by a running server, kept in step with the ledger.

Each worker process holds its own :class:`LiveModels`. A background thread
reads the ledger head (one indexed ``max(seq)`` query) every
``poll_interval`` seconds; when it moved, every held model is checked again
(checks 1 to 3, from the ledger) and dropped, kept or reloaded. So a
promotion, suspension or retirement reaches every worker within
``poll_interval`` plus one check (the bound the docs state: 2 s with the
default 0.5 s interval), and expiry is checked on every request against
the clock. A request keeps the scorer it was handed, so requests in flight
finish on the version they started with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from core.clock import utcnow
from core.errors import GovregError, NotFoundError
from serving.errors import Check, LoadRefused
from serving.loader import ServingConfig, load_approved

if TYPE_CHECKING:
    from registry.services import Registry
    from serving.scoring import Scorer

Key = tuple[str, str]
PROPAGATION_BOUND_SECONDS = 2.0


class LiveModels:
    def __init__(
        self,
        registry: Registry,
        config: ServingConfig,
        *,
        poll_interval: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = registry
        self.config = config
        self.poll_interval = poll_interval
        self.clock = clock
        self._held: dict[Key, Scorer | GovregError] = {}
        self._seen: dict[Key, int | None] = {}  # last governing seq each held model was checked at
        self._lock = threading.Lock()
        self._head = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._head = self._read_head()
        self._thread = threading.Thread(target=self._run, name="govreg-live-models", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:  # keep polling whatever one round met
                logging.getLogger("govreg.serving").exception("checking the ledger head failed")

    @property
    def head(self) -> int:
        """The ledger head as the poller last saw it."""
        return self._head

    def _read_head(self) -> int:
        with self.registry.reading() as conn:
            return int(self.registry.ledger.head(conn)[0])

    # -- reading -----------------------------------------------------------------
    def get(self, model: str, alias: str = "champion") -> Scorer:
        """The scorer for ``model@alias`` now, or the refusal (LoadRefused / NotFoundError)."""
        key = (model, alias)
        with self._lock:
            held = self._held.get(key)
        if held is None:
            held = self._load(key)
        if isinstance(held, GovregError):
            raise held
        if held.revalidate_by <= self.clock():
            refusal = LoadRefused(
                Check.STATUS,
                f"{model} v{held.version}",
                f"past its revalidation date {held.approval.revalidate_by}",
            )
            with self._lock:
                self._held[key] = refusal
            raise refusal
        return held

    def _load(self, key: Key) -> Scorer | GovregError:
        model, alias = key
        if key not in self._seen:
            self._seen[key] = self._marks({model}).get(model)
        held: Scorer | GovregError
        try:
            held = load_approved(self.registry, model, alias, config=self.config, now=self.clock())
        except (LoadRefused, NotFoundError) as exc:
            held = exc
        with self._lock:
            self._held[key] = held
        return held

    def refresh(self) -> bool:
        """Re-check the held models whose governing events moved; True if the ledger moved.

        Checks 1 to 3 read every leaf up to the checkpoint, so they run only for
        a model with a new governing event (an alias set, a suspension, ...):
        one indexed query per held model tells.
        """
        head = self._read_head()
        if head == self._head:
            return False
        self._head = head
        with self._lock:
            keys = list(self._held)
        marks = self._marks({model for model, _ in keys})
        for key in keys:
            if self._seen.get(key) != marks.get(key[0]):
                self._recheck(key)
                self._seen[key] = marks.get(key[0])
        # Our own serving.loaded / serving.refused events moved the head again: skip
        # them, unless a held model's governing events moved meanwhile (a promotion
        # committed while a re-check waited to record its refusal): the head read
        # above then stays, and the next round re-checks.
        after = self._read_head()
        with self._lock:
            keys = list(self._held)
        marks = self._marks({model for model, _ in keys})
        if all(self._seen.get(key) == marks.get(key[0]) for key in keys):
            self._head = after
        return True

    def _marks(self, models: set[str]) -> dict[str, int]:
        """The last governing event's seq of each model."""
        from serving.approval import GOVERNING_EVENTS

        with self.registry.reading() as conn:
            return self.registry.ledger.last_seqs(conn, models, GOVERNING_EVENTS)

    def _recheck(self, key: Key) -> None:
        from serving.approval import check_approval

        model, alias = key
        with self._lock:
            held = self._held.get(key)
        if held is not None and not isinstance(held, GovregError):
            try:
                with self.registry.reading() as conn:
                    approval = check_approval(
                        conn,
                        self.registry.ledger,
                        self.config.public_key,
                        model=model,
                        alias=alias,
                        now=self.clock(),
                    )
            except (LoadRefused, NotFoundError):
                pass  # reload below records the refusal
            else:
                if (approval.version, approval.artifact_digest) == (
                    held.version,
                    held.artifact_digest,
                ):
                    return  # still the same approved bytes: keep the parsed model
        self._load(key)
