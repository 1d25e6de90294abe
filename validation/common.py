"""Small helpers shared by the gates."""

from __future__ import annotations

from typing import TypeVar

from policies.schema import GateParams, GateSpec

P = TypeVar("P", bound=GateParams)


def params_of(spec: GateSpec, cls: type[P]) -> P:
    """``spec.params`` as ``cls``; a gate given another kind's parameters refuses to run."""
    params = spec.params
    if not isinstance(params, cls):
        raise TypeError(
            f"gate '{spec.id}' of kind '{spec.kind}' has {type(params).__name__}, "
            f"expected {cls.__name__}"
        )
    return params
