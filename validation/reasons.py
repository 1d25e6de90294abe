"""Adverse-action reason texts: one per feature, or one per category of a categorical one.

A submission's reasons file (YAML or JSON) maps each model feature to a text,
or, for a categorical feature, to a default text and texts per category, so
that a declined applicant hears what counted against them (Regulation B asks
for specific principal reasons)::

    income: Income too low for the amount requested
    housing:
      default: Housing status
      categories:
        rent: Renting rather than owning a home
        free: No housing costs on record

:func:`normalise` checks the shape; :func:`check` that every model feature
has a text and that every category named is one of the model's, and keeps
the model's features only: that is the recorded form. :func:`text_for` picks the text
for a feature and, where given, the applicant's category.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    from validation.contract import DataContract

ReasonTexts = dict[str, Any]  # feature -> str | {"default": str, "categories": {str: str}}
MAX_TEXT = 300


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"reason text for {where} is empty; write one")
    if len(value) > MAX_TEXT:
        raise InputError(f"reason text for {where} is over {MAX_TEXT} characters")
    if any(ord(c) < 32 for c in value):
        raise InputError(f"reason text for {where} holds a control character")
    return value.strip()


def normalise(raw: Any) -> ReasonTexts:
    """The reason texts in their recorded form; a malformed mapping is an InputError."""
    from validation.contract import quote

    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InputError("reason texts must map feature names to texts")
    out: ReasonTexts = {}
    for feature, value in raw.items():
        if not isinstance(feature, str):
            raise InputError(f"reason texts: feature name {feature!r} must be text")
        where = f"feature {quote(feature)}"  # escaped: a name may hold a newline
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"default", "categories"})
            if unknown:
                raise InputError(
                    f"reason texts for {where}: unknown key {unknown[0]!r}; "
                    "use 'default' and 'categories'"
                )
            categories = value.get("categories") or {}
            if not isinstance(categories, Mapping):
                raise InputError(f"reason texts for {where}: 'categories' must map to texts")
            out[feature] = {
                "default": _text(value.get("default"), f"{where} (its 'default')"),
                "categories": {
                    _category(c): _text(t, f"{where}, category {c!r}")
                    for c, t in categories.items()
                },
            }
        else:
            out[feature] = _text(value, where)
    return out


def _category(value: Any) -> str:
    from validation.contract import category_key

    if isinstance(value, Mapping | list):
        raise InputError("a category in the reason texts must be a single value")
    return category_key(value)


def check(texts: ReasonTexts, contract: DataContract) -> ReasonTexts:
    """The texts of the model's features, checked: every model feature has one, and texts
    per category are given only for the model's categories. Texts for other features
    (one reasons file shared by several models) are left out of the record."""
    if not texts:
        return {}  # no reasons given: the explainability gate reports the features without one
    names = contract.names
    without = [f for f in names if f not in texts]
    if without:
        raise InputError(
            f"reason texts lack {len(without)} of the model's features: "
            + ", ".join(without[:8])
            + ("" if len(without) <= 8 else ", ...")
            + "; give each feature a text"
        )
    for feature in contract.features:
        value = texts[feature.name]
        if not isinstance(value, dict):
            continue
        if not feature.categorical:
            raise InputError(
                f"reason texts give categories for '{feature.name}', which is numeric; "
                "give it one text"
            )
        for category in value["categories"]:
            if feature.code(category) is None:
                raise InputError(
                    f"reason texts for '{feature.name}' name category {category!r}, which "
                    f"the model does not know; its categories are "
                    + ", ".join(repr(str(c)) for c in feature.categories[:8])
                )
    return {name: texts[name] for name in names}


def text_for(texts: Mapping[str, Any], feature: str, category: Any = None) -> str:
    """The reason text for ``feature`` (and the applicant's ``category``, if categorical)."""
    from validation.contract import category_key

    value = texts.get(feature)
    if value is None:
        return feature
    if isinstance(value, str):
        return value
    if category is not None:
        specific = value.get("categories", {}).get(category_key(category))
        if specific is not None:
            return str(specific)
    return str(value.get("default") or feature)


def has_text(texts: Mapping[str, Any], feature: str) -> bool:
    """Whether ``feature`` has a (non-empty) reason text."""
    value = texts.get(feature)
    if isinstance(value, Mapping):
        value = value.get("default")
    return isinstance(value, str) and bool(value.strip())
