"""The root of govreg's exception tree.

Every error a user can see derives from :class:`GovregError`; the CLI and the
HTTP API catch it in one place and turn ``diagnostics()`` into a message and
an exit code or status.

    GovregError
    ├── ConfigError          settings, home, keys missing or unsafe
    ├── InputError           bad input from a user (files, columns, names)
    ├── NotFoundError        unknown model, version, principal
    ├── AuthError            missing, unknown, revoked or expired credential
    ├── PermissionDenied     authenticated but not allowed (role, segregation)
    ├── TransitionError      a lifecycle transition that is not allowed
    ├── TooManyRequests      over a rate or concurrency limit; retry after N seconds
    ├── DeadlineExceeded     a wait ran out of time (the work goes on)
    ├── PolicyError          a policy file that is invalid (policies/)
    ├── IntegrityError       the ledger or a key fails verification (audits/)
    └── MerkleError          a Merkle proof does not verify (audits/)
"""

from __future__ import annotations


class GovregError(Exception):
    """Base error; ``str(err)`` is one line that says what to fix."""

    exit_code = 1

    def diagnostics(self) -> str:
        return str(self)


class ConfigError(GovregError):
    exit_code = 3


class InputError(GovregError):
    exit_code = 2


class NotFoundError(GovregError):
    exit_code = 4


class AuthError(GovregError):
    exit_code = 5


class PermissionDenied(GovregError):
    exit_code = 6


class TransitionError(GovregError):
    exit_code = 7


class IntegrityError(GovregError):
    exit_code = 8


class TooManyRequests(GovregError):
    """Over a limit (refusals per principal or address, concurrent reports): nothing
    was done; ``retry_after`` is how many seconds to wait before trying again."""

    exit_code = 11

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(int(retry_after), 1)


class DeadlineExceeded(GovregError):
    """A wait for work that goes on elsewhere (an evaluation on the server, a
    version reaching a status) ran out of time; the work itself was not stopped."""

    exit_code = 9


def quote(value: object, limit: int = 40) -> str:
    """``value`` as an escaped, quoted text of at most ``limit`` characters inside
    the quotes, for error messages that name a value from a user's file: control
    characters and non-ASCII come escaped, a long value is cut with ``...``."""
    text = str(value).encode("unicode_escape").decode("ascii").replace("'", "\\'")
    if len(text) > limit:
        text = text[: max(limit - 3, 1)] + "..."
    return f"'{text}'"
