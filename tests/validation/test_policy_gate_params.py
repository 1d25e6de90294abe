"""Typed gate parameters in the policy schema: unknown keys and wrong types are refused."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from core.canonical import canonical_bytes
from policies.loader import find_policy, load_policy_file
from policies.schema import (
    ExplainabilityParams,
    FairnessParams,
    GateSpec,
    PerformanceParams,
    PolicyError,
)
from validation.result import fmt

PACKAGED = Path(find_policy.__code__.co_filename).parent / "credit-risk.yaml"


def write_policy(tmp_path: Path, gate: dict[str, object]) -> Path:
    data = yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))
    data["gates"] = [gate]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_default_policy_encodes_the_six_gates() -> None:
    policy = find_policy("credit-risk")
    kinds = [g.kind for g in policy.gates]
    assert kinds == [
        "performance",
        "fairness",
        "data_schema",
        "explainability",
        "stability",
        "latency",
    ]
    assert all(g.blocking for g in policy.gates)
    performance, fairness, _, explain, stability, latency = (g.params for g in policy.gates)
    assert isinstance(performance, PerformanceParams)
    assert (performance.min_auc, performance.min_ks) == (Decimal("0.80"), Decimal("0.35"))
    assert isinstance(fairness, FairnessParams)
    assert fairness.min_adverse_impact_ratio == Decimal("0.80")
    assert fairness.max_equalized_odds_difference == Decimal("0.10")
    assert fairness.protected == []  # taken from the submission
    assert (fairness.min_group_size, fairness.min_group_defaults) == (100, 30)
    assert fairness.min_group_non_defaults == 30
    assert isinstance(explain, ExplainabilityParams)
    assert explain.monotone == {
        "income": "decreasing",
        "debt_to_income": "increasing",
        "credit_utilisation": "increasing",
        "delinquencies_2y": "increasing",
    }
    assert stability.get("fail_psi") == Decimal("0.25")
    assert stability["warn_psi"] == Decimal("0.10")
    assert latency["max_p99_ms"] == Decimal("100")
    assert policy.decision_cutoff == Decimal("0.5")


def test_canonical_form_has_decimal_strings_and_no_kind() -> None:
    policy = find_policy("credit-risk")
    canonical = policy.canonical()
    canonical_bytes(canonical)  # refuses floats
    gate = canonical["gates"][0]
    assert gate["params"] == {
        "min_auc": "0.8",
        "min_ks": "0.35",
        "warn_auc": None,
        "warn_ks": None,
        "calibration_bins": 10,
    }
    assert policy.digest == find_policy("credit-risk").digest


def test_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, {"id": "performance", "kind": "performance", "params": {"min_aucc": 0.8}}
    )
    with pytest.raises(PolicyError, match=r"key 'gates\.0\.params\.performance\.min_aucc'"):
        load_policy_file(path)


def test_wrong_type_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = write_policy(
        tmp_path, {"id": "fairness", "kind": "fairness", "params": {"min_group_size": "many"}}
    )
    with pytest.raises(PolicyError, match=r"gates\.0\.params\.fairness\.min_group_size"):
        load_policy_file(path)
    path = write_policy(
        tmp_path,
        {"id": "explain", "kind": "explainability", "params": {"monotone": {"income": "down"}}},
    )
    with pytest.raises(PolicyError, match=r"params\.explainability\.monotone\.income"):
        load_policy_file(path)


def test_kind_inside_params_and_bad_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="'kind' is not a parameter"):
        GateSpec.model_validate({"id": "p", "kind": "performance", "params": {"kind": "latency"}})
    with pytest.raises(ValueError, match="warn_psi must not exceed fail_psi"):
        GateSpec.model_validate(
            {"id": "s", "kind": "stability", "params": {"warn_psi": 0.3, "fail_psi": 0.25}}
        )
    with pytest.raises(ValueError, match="less than or equal to 1"):
        GateSpec.model_validate({"id": "p", "kind": "performance", "params": {"min_auc": 1.5}})


def test_params_default_per_kind_and_round_trip() -> None:
    spec = GateSpec(id="latency", kind="latency")
    assert spec.params.model_dump() == {
        "max_p99_ms": Decimal("100"),
        "warn_p99_ms": None,
        "runs": 1000,
        "warmup": 50,
        "num_threads": 1,
    }
    again = GateSpec.model_validate(spec.model_dump())
    assert again == spec
    assert fmt(spec.params["max_p99_ms"]) == "100"
    with pytest.raises(KeyError):
        spec.params["kind"]


def test_the_serving_section_bounds_proof_age_and_leaves_old_digests_alone(
    tmp_path: Path,
) -> None:
    import hashlib

    from policies.schema import Policy

    policy = find_policy("credit-risk")
    assert policy.serving is None
    assert "serving" not in policy.canonical()
    # The digest of a policy written before the section existed is unchanged.
    without = policy.model_dump(mode="json", exclude={"serving"})
    assert policy.digest == hashlib.sha256(canonical_bytes(without)).hexdigest()
    data = yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))
    data["serving"] = {"max_proof_age_seconds": 600}
    bounded = Policy.model_validate(data)
    assert bounded.serving is not None
    assert bounded.serving.max_proof_age_seconds == 600
    assert bounded.canonical()["serving"] == {"max_proof_age_seconds": 600}
    assert bounded.digest != policy.digest
    for bad in (59, 7 * 86400 + 1, "an hour"):
        data["serving"] = {"max_proof_age_seconds": bad}
        with pytest.raises(ValueError, match="max_proof_age_seconds"):
            Policy.model_validate(data)
