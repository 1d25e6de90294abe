"""Roles and the one table of who may do what.

The CLI, the HTTP API and the tests read this table; the docs show it.
Segregation-of-duties rules that depend on the version (the submitter never
signs, one person one sign-off) live in :mod:`registry.signoffs` and
:mod:`registry.rules`.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    DATA_SCIENTIST = "data_scientist"
    VALIDATOR = "validator"
    COMPLIANCE_OFFICER = "compliance_officer"
    BUSINESS_OWNER = "business_owner"
    AUDITOR = "auditor"
    SERVICE = "service"


class Action(StrEnum):
    MANAGE_PRINCIPALS = "manage_principals"
    ROTATE_KEYS = "rotate_keys"
    PURGE_DECISIONS = "purge_decisions"
    SUBMIT = "submit"
    EVALUATE = "evaluate"
    SIGN = "sign"
    PROMOTE = "promote"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    RETIRE = "retire"
    PROPOSE_POLICY = "propose_policy"
    APPROVE_POLICY = "approve_policy"
    READ = "read"
    VERIFY = "verify"
    FETCH_MODEL = "fetch_model"
    SCORE = "score"


SIGNING_ROLES = frozenset({Role.VALIDATOR, Role.COMPLIANCE_OFFICER, Role.BUSINESS_OWNER})
_READERS = frozenset(Role) - {Role.SERVICE}

PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.MANAGE_PRINCIPALS: frozenset({Role.ADMIN}),
    Action.ROTATE_KEYS: frozenset({Role.ADMIN}),
    Action.PURGE_DECISIONS: frozenset({Role.ADMIN}),
    Action.SUBMIT: frozenset({Role.DATA_SCIENTIST}),
    Action.EVALUATE: frozenset({Role.DATA_SCIENTIST, Role.VALIDATOR}),
    Action.SIGN: SIGNING_ROLES,
    Action.PROMOTE: frozenset({Role.COMPLIANCE_OFFICER, Role.BUSINESS_OWNER}),
    Action.SUSPEND: frozenset({Role.COMPLIANCE_OFFICER, Role.BUSINESS_OWNER, Role.VALIDATOR}),
    Action.REINSTATE: frozenset({Role.COMPLIANCE_OFFICER, Role.BUSINESS_OWNER}),
    Action.RETIRE: frozenset({Role.COMPLIANCE_OFFICER, Role.BUSINESS_OWNER}),
    Action.PROPOSE_POLICY: frozenset({Role.VALIDATOR, Role.COMPLIANCE_OFFICER}),
    Action.APPROVE_POLICY: frozenset({Role.COMPLIANCE_OFFICER}),
    Action.READ: _READERS,
    Action.VERIFY: _READERS,
    Action.FETCH_MODEL: frozenset({Role.SERVICE}),
    Action.SCORE: frozenset({Role.SERVICE}),
}


def allowed(role: str, action: Action) -> bool:
    return role in PERMISSIONS[action]
