"""Each server worker appends the counted refusals of ended intervals periodically,
and every counted refusal at shutdown (see :mod:`registry.denials`)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from core.errors import GovregError

if TYPE_CHECKING:
    from registry.services import Registry

log = logging.getLogger(__name__)


class DenialFlusher:
    """A daemon thread that calls ``registry.flush_denials()`` every ``interval``
    seconds; :meth:`stop` ends it and flushes every count (``every=True``)."""

    def __init__(self, registry: Registry, interval: float) -> None:
        self.registry = registry
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="govreg-denials", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=10)
        self._flush(every=True)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self._flush(every=False)

    def _flush(self, *, every: bool) -> None:
        try:
            self.registry.flush_denials(every=every)
        except (GovregError, OSError) as exc:  # the counts stay in the table for the next flush
            log.warning("could not append the counted refusals: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a database error must not end the worker
            log.warning("could not append the counted refusals: %s", type(exc).__name__)
