"""The decision cutoff is the policy's: a submission cannot pick another one.

A cutoff given at submission (CLI ``--cutoff``, API ``cutoff``, SDK
``cutoff=``) is accepted only when it equals the policy's ``decision_cutoff``;
another cutoff is a policy change, proposed and adopted like any other.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from govreg_kit import MODEL, submit_args

from core.errors import GovregError, InputError
from policies.loader import find_policy
from registry.rules import check_cutoff


def refusal(cut: str, *, policy: str = "credit-risk@1", shown: str = "0.5", new: int = 2) -> str:
    return (
        f"--cutoff {cut} differs from the decision_cutoff {shown} of policy {policy}, and the "
        f"cutoff is the policy's. To decide at {cut}, write credit-risk-v{new}.yaml, a copy of "
        f"{policy} with version: {new} and decision_cutoff: {cut}; propose it with "
        f"`govreg policies propose credit-risk-v{new}.yaml`, have a compliance officer who "
        f"did not propose it adopt it with `govreg policies approve credit-risk@{new} "
        f'--comment "..."`, then submit with --policy credit-risk@{new}'
    )


def policy_file(tmp: Path, *, version: int, cutoff: str, min_auc: str | None = None) -> Path:
    """A copy of the shipped credit-risk policy with another version and cutoff."""
    data = find_policy("credit-risk").canonical()
    data["version"] = version
    data["decision_cutoff"] = cutoff
    if min_auc is not None:
        data["gates"][0]["params"]["min_auc"] = min_auc
    path = tmp / f"credit-risk-v{version}.json"  # JSON is YAML
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def adopt_by_cli(kit: Any, path: Path, ref: str) -> None:
    proposed = kit.home.cli("policies", "propose", str(path), api_key=kit.key("validator-1"))
    assert proposed.exit_code == 0, proposed.output
    adopted = kit.home.cli(
        "policies", "approve", ref, "--comment", "cutoff review", api_key=kit.key("compliance-1")
    )
    assert (adopted.exit_code, adopted.stdout) == (0, f"adopted {ref}\n")


def test_another_cutoff_is_refused_and_records_nothing(kit: Any) -> None:
    kit.people("ds-1")
    before = kit.state()
    for given, shown in (("0.9", "0.9"), ("0.35", "0.35"), ("0.500001", "0.500001")):
        with pytest.raises(InputError) as caught:
            kit.submit(cutoff=given)
        assert str(caught.value) == refusal(shown)
        assert caught.value.exit_code == 2
        result = kit.home.cli(*submit_args(kit.files, cutoff=given), api_key=kit.key("ds-1"))
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == f"error: {refusal(shown)}\n"
        with_json = kit.home.cli(
            *submit_args(kit.files, cutoff=given), "--json", api_key=kit.key("ds-1")
        )
        assert (with_json.exit_code, with_json.stderr) == (2, "")
        assert json.loads(with_json.stdout) == {
            "error": {"type": "InputError", "message": refusal(shown), "exit_code": 2}
        }
    assert kit.state() == before
    assert kit.row() is None
    assert kit.rows("models") == []
    kit.verify()


def test_the_policys_own_cutoff_is_accepted_in_any_spelling(kit: Any) -> None:
    for number, given in enumerate(("0.5", "0.50", "5e-1", " 0.5 ", "0.5000"), start=1):
        assert kit.submit(cutoff=given) == number
        assert kit.row(MODEL, number)["cutoff"] == "0.5"  # the policy's text, not the caller's
    result = kit.home.cli(*submit_args(kit.files, cutoff="0.50"), api_key=kit.key("ds-1"))
    assert (result.exit_code, result.stdout) == (0, "submitted pd v6\n")
    submitted = kit.events(model=MODEL, version=6, types=["version.submitted"])
    assert submitted[0].data["cutoff"] == "0.5"
    assert submitted[0].data["policy"]["decision_cutoff"] == "0.5"
    kit.verify()


def test_another_cutoff_through_the_governed_flow(kit: Any, tmp_path: Path) -> None:
    """Propose credit-risk@2 at 0.9, adopt it, submit under it: the gates decide at 0.9."""
    adopt_by_cli(kit, policy_file(tmp_path, version=2, cutoff="0.9"), "credit-risk@2")

    submitted = kit.home.cli(
        *submit_args(kit.files, policy_id="credit-risk@2"), api_key=kit.key("ds-1")
    )
    assert (submitted.exit_code, submitted.stdout) == (0, "submitted pd v1\n")
    # the policy's cutoff may be repeated; the superseded one is refused now
    again = kit.home.cli(
        *submit_args(kit.files, policy_id="credit-risk@2", cutoff="0.90"),
        api_key=kit.key("ds-1"),
    )
    assert (again.exit_code, again.stdout) == (0, "submitted pd v2\n")
    size = kit.size()
    old = kit.home.cli(*submit_args(kit.files, cutoff="0.5"), api_key=kit.key("ds-1"))
    assert old.exit_code == 2
    assert old.stderr == f"error: {refusal('0.5', policy='credit-risk@2', shown='0.9', new=3)}\n"
    assert kit.size() == size
    # the version of the shipped policy is still there, by name
    under_v1 = kit.submit(policy_id="credit-risk@1", cutoff="0.5")
    assert under_v1 == 3

    row = kit.row(MODEL, 1)
    assert (row["policy_id"], row["policy_version"], row["cutoff"]) == ("credit-risk", 2, "0.9")
    assert kit.row(MODEL, 3)["cutoff"] == "0.5"

    evaluated = kit.home.cli("evaluate", MODEL, "1", "--json", api_key=kit.key("ds-1"))
    # the kit's small model fails its explainability gate (see tests/cli/test_cli.py)
    assert evaluated.exit_code == 10, evaluated.output
    assert json.loads(evaluated.stdout)["status"] == "gates_failed"
    at_09 = _fairness(kit, 1)
    kit.registry.evaluate(kit["ds-1"], MODEL, 3)
    at_05 = _fairness(kit, 3)
    assert at_09["details"]["cutoff"] == "0.9"
    assert at_05["details"]["cutoff"] == "0.5"
    # the recorded cutoff decided who was approved, group by group
    assert _approved(at_09) == _expected_approved(kit, Decimal("0.9"))
    assert _approved(at_05) == _expected_approved(kit, Decimal("0.5"))
    assert _approved(at_09) != _approved(at_05)
    kit.verify()


def _fairness(kit: Any, version: int) -> dict[str, Any]:
    [event] = [
        e
        for e in kit.events(model=MODEL, version=version, types=["gate.evaluated"])
        if e.data["gate_id"] == "fairness"
    ]
    result: dict[str, Any] = event.data["result"]
    return result


def _approved(result: dict[str, Any]) -> dict[str, int]:
    """Approved applicants by sex, as the fairness gate counted them."""
    groups = result["details"]["attributes"]["sex"]["groups"]
    return {str(g["group"]): int(g["approved"]) for g in groups}


def _expected_approved(kit: Any, cutoff: Decimal) -> dict[str, int]:
    """The same count from the model's own predictions: approved when p < cutoff."""
    import lightgbm as lgb
    import pandas as pd

    booster = lgb.Booster(model_str=kit.files.model_text)
    frame = pd.read_parquet(kit.files.validation_parquet)
    approved = booster.predict(frame[booster.feature_name()]) < float(cutoff)
    return {
        str(g): int(approved[(frame["sex"] == g).to_numpy()].sum()) for g in frame["sex"].unique()
    }


def test_reevaluating_under_a_policy_with_another_cutoff_is_refused(
    kit: Any, tmp_path: Path
) -> None:
    version = kit.evaluated()
    adopt_by_cli(kit, policy_file(tmp_path, version=2, cutoff="0.9"), "credit-risk@2")
    before = kit.state()
    message = (
        "policy credit-risk@2 decides at 0.9, but pd v1 was submitted at cutoff 0.5; a version "
        "keeps its cutoff: submit the model again with --policy credit-risk@2"
    )
    with pytest.raises(InputError) as caught:
        kit.registry.start_evaluation(kit["ds-1"], MODEL, version, policy_id="credit-risk@2")
    assert str(caught.value) == message
    result = kit.home.cli(
        "evaluate", MODEL, "1", "--policy", "credit-risk@2", api_key=kit.key("ds-1")
    )
    assert (result.exit_code, result.stderr) == (2, f"error: {message}\n")
    assert kit.state() == before
    # a policy version that keeps the cutoff re-evaluates as before
    adopt_by_cli(
        kit, policy_file(tmp_path, version=3, cutoff="0.50", min_auc="0.81"), "credit-risk@3"
    )
    assert (
        kit.registry.start_evaluation(kit["ds-1"], MODEL, version, policy_id="credit-risk@3") == 2
    )
    assert kit.row()["policy_version"] == 3
    kit.verify()


def test_the_refusal_names_the_next_free_policy_version(sqlite_kit: Any, tmp_path: Path) -> None:
    kit = sqlite_kit
    # credit-risk@2 proposed but not adopted: the version to propose is 3
    proposed = kit.home.cli(
        "policies",
        "propose",
        str(policy_file(tmp_path, version=2, cutoff="0.7")),
        api_key=kit.key("validator-1"),
    )
    assert proposed.exit_code == 0, proposed.output
    with pytest.raises(InputError) as caught:
        kit.submit(cutoff="0.7")
    assert str(caught.value) == refusal("0.7", new=3)


# -- the cutoff parser, fuzzed --------------------------------------------------------
POLICY = find_policy("credit-risk")  # decision_cutoff 0.5


def _pieces(rng: random.Random) -> str:
    alphabet = "0123456789.eE+-_ \t\nnaNsifINFxy٣\x00"
    numbers = ["0.5", "0.50", "5e-1", ".5", "0.9", "1", "0", "-0.5", "NaN", "sNaN", "Inf", "1e999"]
    if rng.random() < 0.5:
        return rng.choice(numbers) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_cutoffs_are_accepted_only_when_equal_and_refused_in_one_line(seed: int) -> None:
    rng = random.Random(seed)
    accepted = 0
    for _ in range(2000):
        given = _pieces(rng)
        try:
            expected: Decimal | None = Decimal(given)
        except InvalidOperation:
            expected = None
        try:
            check_cutoff(POLICY, given, next_version=2)
        except InputError as exc:
            message = str(exc)
            assert "\n" not in message, repr(given)
            assert len(message) < 700, repr(given)
            assert message.startswith("--cutoff "), repr(given)
            assert expected is None or not expected.is_finite() or expected != Decimal("0.5")
        except GovregError as exc:  # pragma: no cover - any other error is a bug
            pytest.fail(f"{given!r}: {type(exc).__name__} {exc}")
        else:
            accepted += 1
            assert expected == Decimal("0.5"), repr(given)
    assert accepted > 0  # the generator does reach the equal spellings


def test_a_long_cutoff_is_shortened_in_the_message() -> None:
    with pytest.raises(InputError) as caught:
        check_cutoff(POLICY, "x" * 5000, next_version=2)
    assert str(caught.value) == f"--cutoff {'x' * 40 + '...'!r} is not a number"
    with pytest.raises(InputError) as caught:
        check_cutoff(POLICY, "0." + "3" * 100, next_version=2)
    assert str(caught.value).startswith("--cutoff 0." + "3" * 38 + "... differs from")


def test_the_sdk_takes_only_the_policys_cutoff(kit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from govreg.sdk import Client, Submitted

    monkeypatch.delenv("GOVREG_URL", raising=False)
    monkeypatch.setenv("GOVREG_DATABASE_URL", kit.home.database_url)
    files = kit.files
    args: dict[str, Any] = {
        "artifact": files.model,
        "train": files.train_csv,
        "validation": files.validation_parquet,
        "target": "default",
        "protected": ["sex", "age_band"],
    }
    kit.people("ds-1")
    before = kit.state()
    with Client(api_key=kit.key("ds-1"), home=kit.home.path) as client:
        with pytest.raises(InputError) as caught:
            client.submit(MODEL, cutoff="0.9", **args)
        assert str(caught.value) == refusal("0.9")
        assert kit.state() == before
        assert client.submit(MODEL, cutoff="0.5", **args) == Submitted(MODEL, 1, "submitted")
    assert kit.row()["cutoff"] == "0.5"
