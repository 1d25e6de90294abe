"""What the gates read from a policy: structural views of ``policies.schema``'s models.

``validation`` and ``policies`` are independent siblings in the package graph
(import-linter), so the gates do not import the policy schema; they accept
any object with these attributes. ``policies.schema.GateSpec`` and its
per-kind parameter models (``PerformanceParams`` ...) satisfy them, and
:func:`params_of` checks at run time that a gate got parameters of its kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol


class GateSpecLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def blocking(self) -> bool: ...
    @property
    def params(self) -> object: ...


class PolicyLike(Protocol):
    @property
    def ref(self) -> str: ...
    @property
    def gates(self) -> Sequence[GateSpecLike]: ...


class PerformanceParamsLike(Protocol):
    @property
    def min_auc(self) -> Decimal: ...
    @property
    def min_ks(self) -> Decimal: ...
    @property
    def warn_auc(self) -> Decimal | None: ...
    @property
    def warn_ks(self) -> Decimal | None: ...
    @property
    def calibration_bins(self) -> int: ...


class FairnessParamsLike(Protocol):
    @property
    def min_adverse_impact_ratio(self) -> Decimal: ...
    @property
    def max_equalized_odds_difference(self) -> Decimal: ...
    @property
    def min_group_size(self) -> int: ...
    @property
    def reference_groups(self) -> Mapping[str, str]: ...
    @property
    def protected(self) -> Sequence[str]: ...
    @property
    def intersections(self) -> bool: ...
    @property
    def bootstrap_samples(self) -> int: ...
    @property
    def confidence(self) -> Decimal: ...
    @property
    def seed(self) -> int: ...


class DataSchemaParamsLike(Protocol):
    @property
    def range_mostly(self) -> Decimal: ...
    @property
    def null_rate_tolerance(self) -> Decimal: ...
    @property
    def columns(self) -> Sequence[str]: ...
    @property
    def max_categories(self) -> int: ...


class ExplainabilityParamsLike(Protocol):
    @property
    def monotone(self) -> Mapping[str, str]: ...
    @property
    def max_monotone_violation_rate(self) -> Decimal: ...
    @property
    def monotone_rows(self) -> int: ...
    @property
    def grid_points(self) -> int: ...
    @property
    def importance_rows(self) -> int: ...
    @property
    def reason_texts(self) -> Mapping[str, str]: ...
    @property
    def seed(self) -> int: ...


class StabilityParamsLike(Protocol):
    @property
    def warn_psi(self) -> Decimal: ...
    @property
    def fail_psi(self) -> Decimal: ...
    @property
    def bins(self) -> int: ...


class LatencyParamsLike(Protocol):
    @property
    def max_p99_ms(self) -> Decimal: ...
    @property
    def warn_p99_ms(self) -> Decimal | None: ...
    @property
    def runs(self) -> int: ...
    @property
    def warmup(self) -> int: ...
    @property
    def num_threads(self) -> int: ...


def params_of(spec: GateSpecLike) -> Any:
    """``spec.params``, after checking they are parameters of the gate's kind.

    The parameter models carry their kind (``params.kind``), filled in from
    the gate by the policy schema; the caller annotates the result with the
    view of its kind (``params: PerformanceParamsLike = params_of(spec)``).
    """
    params = spec.params
    params_kind = getattr(params, "kind", None)
    if params_kind != spec.kind:
        raise TypeError(
            f"gate '{spec.id}' of kind '{spec.kind}' has parameters of kind '{params_kind}'"
        )
    return params
