"""A principal's row is trusted at authentication only as the ledger records it.

The ``principals`` table is a projection of the ledger. Someone who can write
to the database but holds no key could insert a row with an API key of their
own, or give an existing principal another role, or clear a revocation; the
honest server would then sign whatever that key does. So before a key is
accepted its row is compared with a replay of the ledger's principal events,
each of which must:

- be covered by the latest checkpoint (every commit is signed);
- hash to its stored leaf from its plaintext envelope, and open under its
  data key with that envelope sealed inside (AES-GCM);
- carry the authenticator only a holder of the signing key can make, where
  this process has the signing key (the server and the home's CLI do).

The replay is cached per process and redone only when the newest principal
event changes: one indexed ``max(seq)`` per authentication otherwise.

A principal event that does not check out refuses every key, not only the
keys it names: skipping it could bring back a key its genuine revocation
ended. What this cannot see: a principal event deleted from the middle of the ledger
(a revocation, say) leaves the rest valid here; ``govreg audit verify`` fails
on the gap.
"""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audits.events import EventType
from audits.ledger import COLUMNS, authenticator_of, row_leaf
from audits.tables import EVENTS_TABLE
from core.errors import AuthError, GovregError, quote
from registry.projection import MemoryView, apply

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from audits.ledger import Ledger

log = logging.getLogger(__name__)

PRINCIPAL_EVENTS = (EventType.PRINCIPAL_CREATED, EventType.PRINCIPAL_REVOKED)
_TYPES = ", ".join(f"'{t}'" for t in PRINCIPAL_EVENTS)
Row = dict[str, Any]


class Unvouched(AuthError):
    """An API key whose principal row the ledger does not back."""


class PrincipalVouch:
    """The principals as the ledger records them, replayed once per change."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._replayed: _Replayed | None = None

    def check(self, conn: Connection, row: Row) -> None:
        """Raise :class:`Unvouched` (and log why at ERROR) unless ``row`` is, column
        for column, the principal the ledger's events make."""
        from sqlalchemy import text

        newest = conn.execute(
            text(f"SELECT max(seq) FROM {EVENTS_TABLE} WHERE event_type IN ({_TYPES})")
        ).scalar()
        newest = int(newest or 0)
        with self._lock:
            replayed = self._replayed
        if replayed is None or replayed.newest != newest:
            replayed = self._replay(conn, newest)
            with self._lock:
                self._replayed = replayed
        name = quote(str(row["name"]))
        if replayed.problem is not None:
            raise Unvouched(
                f"no API key is accepted while the ledger's principal events do not check "
                f"out ({replayed.problem}); run `govreg audit verify`"
            )
        expected = replayed.principals.get(row["name"])
        if expected == row:
            return
        if expected is None:
            why = "no ledger event created it"
        else:
            columns = sorted(c for c in expected if expected[c] != row.get(c))
            verb = "differs" if len(columns) == 1 else "differ"
            why = f"its {', '.join(columns)} {verb} from the ledger's"
        log.error(
            "refused the API key of principal %s: %s (the principals table was changed "
            "outside govreg; run `govreg audit verify`)",
            name,
            why,
        )
        raise Unvouched(
            f"API key of {name} is not backed by the ledger ({why}); run `govreg audit verify`"
        )

    def _replay(self, conn: Connection, newest: int) -> _Replayed:
        from sqlalchemy import text

        latest = self.ledger.latest_checkpoint(conn)
        covered = latest.size if latest is not None else 0
        if newest > covered:
            return _refused(newest, f"principal event {newest} is not covered by a checkpoint")
        try:
            key: bytes | None = self.ledger.authenticator_key()
        except (GovregError, OSError):
            key = None  # a copy of the home without its signing key
        view = MemoryView()
        rows = conn.execute(
            text(
                f"SELECT {COLUMNS}, authenticator FROM {EVENTS_TABLE} "
                f"WHERE event_type IN ({_TYPES}) AND seq <= :newest ORDER BY seq"
            ),
            {"newest": newest},
        )
        for row in rows:
            problem = _problem(row, key)
            if problem is None:
                try:
                    apply(view, self.ledger.decrypt_row(conn, row))
                except GovregError as exc:
                    problem = str(exc)
            if problem is not None:
                return _refused(newest, f"seq {row.seq}: {problem}")
        principals = {name: r for (name,), r in view.tables["principals"].items()}
        return _Replayed(newest, principals, None)


@dataclass(frozen=True)
class _Replayed:
    """The principals replayed up to the newest principal event, or why none is."""

    newest: int
    principals: dict[str, Row]
    problem: str | None


def _refused(newest: int, problem: str) -> _Replayed:
    """A principal event that is not genuine: no principal is vouched for (skipping
    it could bring back a key its genuine revocation ended)."""
    log.error(
        "the ledger's principal events do not check out, so no API key is accepted: "
        "%s (run `govreg audit verify`)",
        problem,
    )
    return _Replayed(newest, {}, problem)


def _problem(row: Any, key: bytes | None) -> str | None:
    """What is wrong with a stored principal event's envelope, or None."""
    try:
        leaf = row_leaf(row)
    except (TypeError, ValueError) as exc:
        return f"malformed envelope ({type(exc).__name__})"
    if leaf != bytes(row.leaf_hash):
        return "its envelope does not hash to its stored leaf"
    if key is not None:
        stored = row.authenticator
        expected = authenticator_of(key, int(row.seq), leaf)
        if stored is None or not hmac.compare_digest(bytes(stored), expected):
            return "its authenticator is missing or invalid (not written by govreg)"
    return None
