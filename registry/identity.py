"""Who acts and what may be named: :class:`Principal` and the rules for names.

Every domain service names models, versions, persons and principals; the name
rules live here once, below all of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from core.errors import InputError, quote

# ASCII letters, digits, '.', '_', '-'. The pattern's '^' and '$' are for the API's
# JSON Schema readers (where '$' ends the text); Python checks with fullmatch,
# since its '$' also matches before a final newline.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$")


@dataclass(frozen=True)
class Principal:
    """Who acts. ``person`` is the human behind it (a person record, or ``oidc:<sub>``;
    empty means the principal's own name). ``models`` scopes a service principal to
    the models it may score and fetch; None is unscoped (every model)."""

    name: str
    role: str
    expires_at: str | None = None
    revoked_at: str | None = None
    person: str = ""
    models: tuple[str, ...] | None = None

    @property
    def person_id(self) -> str:
        return self.person or self.name

    def may_serve(self, model: str) -> bool:
        return self.models is None or model in self.models

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "person": self.person_id,
            "models": list(self.models) if self.models is not None else None,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


def principal_from_row(row: dict[str, Any]) -> Principal:
    models = row.get("models")
    return Principal(
        row["name"],
        row["role"],
        row["expires_at"],
        row["revoked_at"],
        person=row["person"],
        models=tuple(json.loads(models)) if models is not None else None,
    )


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InputError(
            f"{what} {quote(value)} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def name_key(name: str) -> str:
    """What two names must not share: NFKC-normalised and case-folded (``DS-1`` is
    ``ds-1``; ``ｄｓ-1`` too, should a name with such characters exist)."""
    import unicodedata

    return unicodedata.normalize("NFKC", name).casefold()


def refuse_lookalike(rows: list[dict[str, Any]], name: str, what: str) -> None:
    """Refuse a new name that only case or compatibility forms tell from an existing one."""
    key = name_key(name)
    for row in rows:
        if row["name"] != name and name_key(row["name"]) == key:
            raise InputError(
                f"{what} '{name}' is too like the existing {what} {quote(row['name'])} "
                "(names may not differ only in case or Unicode form); choose another name"
            )
