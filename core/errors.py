"""The root of govreg's exception tree.

Every error a user can see derives from :class:`GovregError`; the CLI and the
HTTP API catch it in one place and turn ``diagnostics()`` into a message and
an exit code or a problem document. Each class declares what it becomes, and a
subclass inherits it unless it says otherwise: ``exit_code`` (the README's
"Exit codes"), ``http_status`` and ``problem_type`` (the problem document's
``type`` is :data:`PROBLEM_BASE` + ``problem_type``). Every class answering
with a problem type has the exit code of the class that declares that type
(:func:`problem_types`), so the remote CLI, told the type, exits as the local
one does. The whole tree (a test keeps it equal to the classes)::

    GovregError                        core.errors       any other error
    ├── AuthError                      core.errors       missing, unknown, revoked or expired key
    │   └── Unvouched                  registry.vouching a principal the ledger does not vouch for
    ├── ConfigError                    core.errors       settings, home, keys or a service unusable
    ├── DeadlineExceeded               core.errors       a wait ran out of time (the work goes on)
    │   └── WaitTimeout                govreg.sdk        the SDK's Client.wait ran out of time
    ├── DecisionLogError               serving.errors    the decision log cannot take a decision
    ├── DemoIncomplete                 govreg.demo       a step of the demo failed; the others ran
    ├── InputError                     core.errors       bad input (files, columns, names, values)
    │   ├── ApplicantsRefused          serving.scoring   no applicant of a request could be scored
    │   ├── EmptyPolicyError           validation.runner a policy without gates
    │   └── WorkersError               audits.parallel   a --workers value that is no count or auto
    ├── IntegrityError                 core.errors       evidence (ledger, keys) fails verification
    │   ├── AnchorError                audits.anchors    an anchor folder fails a check
    │   ├── BundleInvalid              reports.bundle    an evidence bundle does not verify
    │   ├── DecisionVerificationFailed serving.decisions the decision log does not verify
    │   ├── LoadRefused                serving.errors    a version that may not be served
    │   ├── NoteError                  audits.notes      a signed note does not parse or verify
    │   │   ├── KeyMismatch            audits.notes      the note names another key
    │   │   ├── MalformedNote          audits.notes      not a signed note of the expected shape
    │   │   └── SignatureInvalid       audits.notes      the note's signature does not verify
    │   ├── RecordNotProved            audits.records    an envelope record that does not prove
    │   ├── SignerRefused              audits.ledger     the signer would not sign: writes stop
    │   └── VerificationFailed         audits.verify     the ledger does not verify
    ├── MerkleError                    audits.merkle     a Merkle proof or tree size does not check
    ├── NotFoundError                  core.errors       unknown model, version, principal, policy
    ├── PermissionDenied               core.errors       not allowed (role, segregation of duties)
    ├── PolicyError                    policies.schema   a policy file that is invalid
    ├── TooManyRequests                core.errors       over a rate or concurrency limit
    └── TransitionError                core.errors       a lifecycle transition that is not allowed
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

PROBLEM_BASE: Final = "https://govreg.dev/problems/"


class GovregError(Exception):
    """Base error; ``str(err)`` is one line that says what to fix."""

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 400
    problem_type: ClassVar[str] = "bad-request"
    # raised only by a client in its own process (a wait that ran out of time),
    # never sent as a problem document: free of the rule that a problem type has
    # one exit code
    local_only: ClassVar[bool] = False

    def diagnostics(self) -> str:
        return str(self)


class ConfigError(GovregError):
    exit_code = 3
    http_status = 500
    problem_type = "server-configuration"


class InputError(GovregError):
    exit_code = 2
    http_status = 422
    problem_type = "invalid-input"


class NotFoundError(GovregError):
    exit_code = 4
    http_status = 404
    problem_type = "not-found"


class AuthError(GovregError):
    exit_code = 5
    http_status = 401
    problem_type = "unauthenticated"


class PermissionDenied(GovregError):
    exit_code = 6
    http_status = 403
    problem_type = "forbidden"


class TransitionError(GovregError):
    exit_code = 7
    http_status = 409
    problem_type = "transition-not-allowed"


class IntegrityError(GovregError):
    exit_code = 8
    http_status = 409
    problem_type = "integrity-failure"


class TooManyRequests(GovregError):
    """Over a limit (refusals per principal or address, concurrent reports): nothing
    was done; ``retry_after`` is how many seconds to wait before trying again."""

    exit_code = 11
    http_status = 429
    problem_type = "too-many-requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(int(retry_after), 1)


class DeadlineExceeded(GovregError):
    """A wait for work that goes on elsewhere (an evaluation on the server, a
    version reaching a status) ran out of time; the work itself was not stopped."""

    exit_code = 9
    local_only = True  # raised by the waiting client, never by the server


# A bare status, without a problem type any class declares (an answer of the
# HTTP layer itself, such as 413 from the upload limit or 404 for an unknown
# path), stands for these errors; a 409 for a TransitionError (only its type tells
# an integrity failure); any other status for a GovregError.
_BY_STATUS: Final[dict[int, type[GovregError]]] = {
    401: AuthError,
    403: PermissionDenied,
    404: NotFoundError,
    409: TransitionError,
    413: InputError,
    422: InputError,
}


def error_classes() -> list[type[GovregError]]:
    """:class:`GovregError` and every subclass defined so far, parents first."""
    found: list[type[GovregError]] = []

    def walk(cls: type[GovregError]) -> None:
        found.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(GovregError)
    return found


def problem_types() -> dict[str, type[GovregError]]:
    """Each problem type of the classes defined so far -> the class that declares
    it nearest the root (the ``core.errors`` one first among equals)."""
    declaring = [cls for cls in error_classes() if "problem_type" in vars(cls)]
    declaring.sort(key=lambda cls: (len(cls.__mro__), cls.__module__ != __name__, cls.__name__))
    found: dict[str, type[GovregError]] = {}
    for cls in declaring:
        found.setdefault(cls.problem_type, cls)
    return found


def error_for_problem(problem_type: str, status: int) -> type[GovregError]:
    """The error a problem document stands for, told by its ``type`` (the URL's
    last segment is the slug): the class that declares that type, or
    its nearest ancestor with the same exit code that takes only a message (a
    refusal to serve comes back as an :class:`IntegrityError`). The status
    decides only when no class declares the type; :class:`TooManyRequests` needs
    its ``retry_after`` from the caller."""
    declared = problem_types().get(problem_type.rpartition("/")[2])
    if declared is None:
        return _BY_STATUS.get(status, GovregError)
    for cls in declared.__mro__:
        if (
            issubclass(cls, GovregError)
            and cls.exit_code == declared.exit_code
            and cls.__init__ is GovregError.__init__
        ):
            return cls
    return declared


def error_from_response(response: Any) -> GovregError:
    """The error an HTTP answer with a problem document stands for (an ``httpx``
    response: ``status_code``, ``headers``, ``text``, ``json()``), its ``detail``
    as the message; a 429 with the ``Retry-After`` it names."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail", response.text))
    error = error_for_problem(str(body.get("type", "")), response.status_code)
    if response.status_code == 429 or issubclass(error, TooManyRequests):
        wait = response.headers.get("Retry-After", "1")
        return TooManyRequests(detail, retry_after=int(wait) if wait.isdigit() else 1)
    return error(detail)


def quote(value: object, limit: int = 40) -> str:
    """``value`` as an escaped, quoted text of at most ``limit`` characters inside
    the quotes, for error messages that name a value from a user's file: control
    characters and non-ASCII come escaped, a long value is cut with ``...``."""
    text = str(value).encode("unicode_escape").decode("ascii").replace("'", "\\'")
    if len(text) > limit:
        text = text[: max(limit - 3, 1)] + "..."
    return f"'{text}'"
