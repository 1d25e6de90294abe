"""The one error tree: drawn whole in ``core.errors``' docstring, one exit code and
one problem type per class, the README's and docs/api.md's tables equal to the
classes, and each error answered by the API and read back by the client as the
same error."""

from __future__ import annotations

import gc
import importlib
import inspect
import pkgutil
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import core.errors
from audits.merkle import MerkleError
from core.errors import (
    PROBLEM_BASE,
    AuthError,
    ConfigError,
    GovregError,
    InputError,
    IntegrityError,
    NotFoundError,
    PermissionDenied,
    TooManyRequests,
    TransitionError,
    error_classes,
    error_for_problem,
    problem_types,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("audits", "core", "govreg", "registry", "reports", "serving", "validation", "policies")
# a module that does something when imported: the CLI's entry point
NOT_IMPORTED = {"govreg.__main__"}
# the HTTP layer's own exception (answered as ``http-413``)
OUTSIDE = {"govreg.api.gate.BodyTooLarge"}


def _modules() -> Iterator[Any]:
    # walked by folder: the test folders mirror the packages' names (tests/audits,
    # ...), and with them on sys.path a package's __path__ can name them too
    for name in PACKAGES:
        yield importlib.import_module(name)
        for info in pkgutil.walk_packages([str(ROOT / name)], name + "."):
            if info.name not in NOT_IMPORTED:
                yield importlib.import_module(info.name)


@pytest.fixture(scope="module")
def modules() -> list[Any]:
    return list(_modules())


def _walk(cls: type[GovregError], depth: int = 0) -> Iterator[tuple[int, type[GovregError]]]:
    yield depth, cls
    for sub in sorted(cls.__subclasses__(), key=lambda c: c.__name__):
        yield from _walk(sub, depth + 1)


def _drawing() -> list[tuple[str, str]]:
    """(tree glyphs and name, module) of every class as the docstring must draw it."""
    walked = list(_walk(GovregError))
    lines = []
    for i, (depth, cls) in enumerate(walked):

        def last(at: int, d: int) -> bool:
            for later, _ in walked[at + 1 :]:
                if later <= d:
                    return later < d
            return True

        prefix = ""
        for level in range(1, depth):
            ancestor = max(j for j in range(i) if walked[j][0] == level)
            prefix += "    " if last(ancestor, level) else "│   "
        if depth:
            prefix += "└── " if last(i, depth) else "├── "
        lines.append((prefix + cls.__name__, cls.__module__))
    return lines


def _docstring_tree() -> list[tuple[str, str, str]]:
    doc = core.errors.__doc__ or ""
    drawn = doc.split("::\n\n", 1)[1]
    rows = []
    for line in drawn.splitlines():
        found = re.fullmatch(r"    ([│├└─ ]*\w+) +([\w.]+) +(\S.*)", line)
        assert found, line
        rows.append((found[1], found[2], found[3]))
    return rows


def test_the_docstring_draws_the_whole_tree(modules: list[Any]) -> None:
    drawn = _docstring_tree()
    assert [(name, module) for name, module, _ in drawn] == _drawing()
    assert len(drawn) == len(error_classes()) == 30
    assert all(len(line) > 10 for _, _, line in drawn)  # one line that says something


def test_the_drawing_fails_when_a_class_is_added(modules: list[Any]) -> None:
    class Unlisted(InputError):
        pass

    try:
        drawn = {name.rpartition(" ")[2]: (name, module) for name, module in _drawing()}
        assert drawn["Unlisted"][0].startswith("│   ")  # under InputError
        assert drawn["Unlisted"][1] == __name__
        assert _drawing() != [(name, module) for name, module, _ in _docstring_tree()]
    finally:
        del Unlisted
        gc.collect()  # a class is a cycle: only a collection takes it from the tree
    assert "Unlisted" not in {cls.__name__ for cls in error_classes()}


def test_every_exception_of_the_packages_is_in_the_tree(modules: list[Any]) -> None:
    outside = set()
    for module in modules:
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
                and not issubclass(obj, GovregError)
            ):
                outside.add(f"{module.__name__}.{name}")
    assert outside == OUTSIDE


def test_a_problem_type_has_one_status_and_one_exit_code(modules: list[Any]) -> None:
    """So the type tells the status and the remote CLI exits as the local one."""
    owners = problem_types()
    for cls in error_classes():
        owner = owners[cls.problem_type]
        assert cls.http_status == owner.http_status, cls
        if not cls.local_only:
            assert cls.exit_code == owner.exit_code, cls
    local = {cls.__name__ for cls in error_classes() if cls.local_only}
    assert local == {"DeadlineExceeded", "WaitTimeout"}  # raised by the one who waits
    statuses = {slug: cls.http_status for slug, cls in owners.items()}
    assert statuses == {
        "bad-request": 400,
        "unauthenticated": 401,
        "forbidden": 403,
        "not-found": 404,
        "transition-not-allowed": 409,
        "integrity-failure": 409,
        "model-not-servable": 409,
        "invalid-input": 422,
        "invalid-policy": 422,
        "too-many-requests": 429,
        "server-configuration": 500,
        "decision-log-unavailable": 503,
        "ledger-signer-refused": 503,
    }


def test_the_exit_codes_are_distinct_per_meaning(modules: list[Any]) -> None:
    """One exit code, one meaning: the classes declaring a code are one class and
    its subclasses (2 also PolicyError, a policy file being bad input; 8 also
    MerkleError, a failed proof being an integrity failure)."""
    declaring: dict[int, list[str]] = {}
    for cls in error_classes():
        if "exit_code" in vars(cls):
            declaring.setdefault(cls.exit_code, []).append(cls.__name__)
    assert {code: sorted(names) for code, names in declaring.items()} == {
        1: ["GovregError"],
        2: ["InputError", "PolicyError"],
        3: ["ConfigError"],
        4: ["NotFoundError"],
        5: ["AuthError"],
        6: ["PermissionDenied"],
        7: ["TransitionError"],
        8: ["IntegrityError", "MerkleError"],
        9: ["DeadlineExceeded"],
        11: ["TooManyRequests"],
    }


# -- the README's and docs/api.md's tables ------------------------------------------------
def _exit_code_rows() -> dict[int, str]:
    """code -> error class of the README's "Exit codes" table (outcomes: none)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    return {
        int(code): kind.strip().strip("`")
        for code, kind in re.findall(r"^\|\s*(\d+)\s*\|([^|]*)\|", section, re.MULTILINE)
    }


def test_the_readme_lists_the_exit_code_of_every_class(modules: list[Any]) -> None:
    rows = _exit_code_rows()
    errors = {code: kind for code, kind in rows.items() if kind}
    assert {code for code, kind in rows.items() if not kind} == {0, 10}  # outcomes
    assert set(errors) == {cls.exit_code for cls in error_classes()}
    by_name = {cls.__name__: cls for cls in error_classes()}
    for code, kind in errors.items():
        assert by_name[kind].exit_code == code, kind
        assert "exit_code" in vars(by_name[kind]), kind  # the class that declares it


def test_docs_list_every_problem_type(modules: list[Any]) -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z-]+)` \| (\d+) \| ([^|]+) \| (\d+) \|$", text, re.MULTILINE)
    declaring: dict[str, set[str]] = {}
    for cls in error_classes():
        if "problem_type" in vars(cls):
            declaring.setdefault(cls.problem_type, set()).add(cls.__name__)
    owners = problem_types()
    assert {slug: (int(status), int(code)) for slug, status, _, code in rows} == {
        slug: (cls.http_status, cls.exit_code) for slug, cls in owners.items()
    }
    for slug, _, named, _ in rows:
        assert set(re.findall(r"`(\w+)`", named)) == declaring[slug], slug


# -- the problem document's type -> the error -----------------------------------------------
def test_the_type_tells_the_error_and_the_status_only_without_one(modules: list[Any]) -> None:
    from policies.schema import PolicyError
    from serving.decisions import DecisionLogError

    assert error_for_problem(PROBLEM_BASE + "integrity-failure", 409) is IntegrityError
    assert error_for_problem(PROBLEM_BASE + "transition-not-allowed", 409) is TransitionError
    # a refusal to serve needs a check and a subject: it comes back as its parent
    assert error_for_problem(PROBLEM_BASE + "model-not-servable", 409) is IntegrityError
    assert error_for_problem(PROBLEM_BASE + "invalid-policy", 422) is PolicyError
    assert error_for_problem(PROBLEM_BASE + "decision-log-unavailable", 503) is DecisionLogError
    assert error_for_problem(PROBLEM_BASE + "too-many-requests", 429) is TooManyRequests
    assert error_for_problem(PROBLEM_BASE + "server-configuration", 500) is ConfigError
    assert error_for_problem(PROBLEM_BASE + "bad-request", 400) is GovregError
    assert error_for_problem("integrity-failure", 200) is IntegrityError  # a bare slug too
    assert MerkleError not in {error_for_problem(slug, 409) for slug in problem_types()}
    # no type a class declares: the status (the HTTP layer's own answers)
    assert error_for_problem(PROBLEM_BASE + "http-413", 413) is InputError
    assert error_for_problem(PROBLEM_BASE + "http-404", 404) is NotFoundError
    assert error_for_problem("", 401) is AuthError
    assert error_for_problem("", 403) is PermissionDenied
    assert error_for_problem("", 409) is TransitionError
    assert error_for_problem("", 422) is InputError
    assert error_for_problem(PROBLEM_BASE + "http-405", 405) is GovregError
    assert error_for_problem("", 500) is GovregError  # not a ConfigError: no type said so
    assert error_for_problem("", 502) is GovregError


@given(st.text(max_size=80), st.integers(min_value=-1, max_value=1000))
def test_any_type_and_status_give_an_error_that_takes_a_message(kind: str, status: int) -> None:
    error = error_for_problem(kind, status)
    assert issubclass(error, GovregError)
    if error is not TooManyRequests:
        assert str(error("what to fix")) == "what to fix"
    declared = problem_types().get(kind.rpartition("/")[2])
    if declared is None:
        assert error in {GovregError, AuthError, PermissionDenied, NotFoundError}.union(
            {TransitionError, InputError}
        )
    else:
        assert error.exit_code == declared.exit_code


def test_the_client_knows_every_problem_type(modules: list[Any]) -> None:
    from govreg.api.problems import STATUS
    from govreg.client import PROBLEMS

    owners = problem_types()
    assert set(PROBLEMS) == set(owners) == {slug for _, _, slug in STATUS}
    for slug, cls in PROBLEMS.items():
        assert cls.exit_code == owners[slug].exit_code, slug


# -- over HTTP: the API's handler and the client's reading ------------------------------------
def _examples() -> list[GovregError]:
    from audits.verify import VerificationFailed
    from policies.schema import PolicyError
    from registry.vouching import Unvouched
    from serving.decisions import DecisionLogError, DecisionVerificationFailed
    from serving.errors import Check, LoadRefused
    from validation.runner import EmptyPolicyError

    return [
        GovregError("something else"),
        AuthError("the API key is revoked"),
        Unvouched("the principal's row is not vouched for"),
        PermissionDenied("'auditor-1' (auditor) may not submit"),
        NotFoundError("no model 'pd'"),
        TransitionError("pd v1 is submitted, not approved"),
        IntegrityError("seq 3: chain hash mismatch"),
        VerificationFailed("seq 4: missing", seq=4),
        DecisionVerificationFailed("batch 2: bad signature", batch=2),
        LoadRefused(Check.STATUS, "pd v1", "the version is suspended"),
        MerkleError("inclusion proof leads elsewhere"),
        InputError("--cutoff 0.9 differs"),
        EmptyPolicyError("policy p@1 has no gates"),
        PolicyError("policy.yaml: gates: field required"),
        TooManyRequests("too many refused requests", retry_after=7),
        ConfigError("no signing key at /srv/keys"),
        DecisionLogError("the decision log is closed; the decision was not recorded"),
    ]


def _index(name: str) -> int:
    return [type(exc).__name__ for exc in _examples()].index(name)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A real HTTP server: an app with the API's problem handler whose routes raise
    the examples (``/v1/raise/<n>``, and ``/v1/models/<n>/approved`` for the
    serving SDK's fetch)."""
    import socket
    import threading

    import uvicorn
    from fastapi import FastAPI

    from govreg.api.problems import install

    app = FastAPI()
    install(app)
    examples = _examples()

    @app.get("/v1/raise/{index}")
    def raise_one(index: int) -> None:
        raise examples[index]

    @app.get("/v1/models/{index}/approved")
    def refuse_fetch(index: int) -> None:
        raise examples[index]

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_api_answers_each_error_with_its_class_status_and_type(url: str) -> None:
    import httpx

    from govreg.api.problems import SERVER_CONFIGURATION_DETAIL

    with httpx.Client(base_url=url) as http:
        for index, exc in enumerate(_examples()):
            answer = http.get(f"/v1/raise/{index}")
            assert answer.status_code == type(exc).http_status, exc
            assert answer.headers["content-type"] == "application/problem+json"
            body = answer.json()
            assert body["type"] == PROBLEM_BASE + type(exc).problem_type
            assert body["status"] == answer.status_code
            detail = SERVER_CONFIGURATION_DETAIL if isinstance(exc, ConfigError) else str(exc)
            assert body["detail"] == detail
            assert answer.headers.get("retry-after") == (
                "7" if isinstance(exc, TooManyRequests) else None
            )
            assert ("www-authenticate" in answer.headers) == isinstance(exc, AuthError)
        assert http.get(f"/v1/raise/{_index('DecisionLogError')}").json() == {
            "type": "https://govreg.dev/problems/decision-log-unavailable",
            "title": "decision log unavailable",
            "status": 503,
            "detail": "the decision log is closed; the decision was not recorded",
        }
        merkle = http.get(f"/v1/raise/{_index('MerkleError')}").json()
        assert (merkle["status"], merkle["type"]) == (409, PROBLEM_BASE + "integrity-failure")


def test_the_client_raises_an_error_with_the_servers_exit_code(url: str) -> None:
    from govreg.client import RemoteRegistry

    remote = RemoteRegistry(url, "grk_test_key")
    try:
        for index, exc in enumerate(_examples()):
            with pytest.raises(GovregError) as caught:
                remote._call("GET", f"/raise/{index}")
            assert caught.value.exit_code == exc.exit_code, exc
            assert type(caught.value) is error_for_problem(type(exc).problem_type, 0)
            if not isinstance(exc, ConfigError):
                assert str(caught.value) == str(exc)
        with pytest.raises(TooManyRequests) as waited:
            remote._call("GET", f"/raise/{_index('TooManyRequests')}")
        assert waited.value.retry_after == 7
        with pytest.raises(NotFoundError):  # no such route: the HTTP layer's http-404
            remote._call("GET", "/nothing-here")
    finally:
        remote.close()


def test_the_serving_sdk_reads_the_same_map(url: str) -> None:
    """fetch_approved: a refusal (an IntegrityError's or a TransitionError's type)
    is a LoadRefused; any other problem the error its type names."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from serving.errors import Check, LoadRefused
    from serving.remote import fetch_approved

    key = Ed25519PrivateKey.generate().public_key()  # never used: every fetch fails
    for index, exc in enumerate(_examples()):
        with pytest.raises(GovregError) as caught:
            fetch_approved(url, "grk_test_key", str(index), public_key=key)
        if isinstance(exc, IntegrityError | MerkleError | TransitionError):
            assert isinstance(caught.value, LoadRefused), exc
            assert caught.value.check == Check.STATUS
            assert str(caught.value) == (
                f"refused to serve {index}: status check failed: the server refused: {exc}"
            )
        else:
            assert type(caught.value) is error_for_problem(type(exc).problem_type, 0), exc
            assert caught.value.exit_code == exc.exit_code
    with pytest.raises(TooManyRequests) as waited:
        fetch_approved(url, "grk_test_key", str(_index("TooManyRequests")), public_key=key)
    assert waited.value.retry_after == 7
