"""Load policies from YAML files: the ones shipped with govreg, or a file given."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from policies.schema import Policy, PolicyError

PACKAGED_DIR = Path(__file__).resolve().parent
DEFAULT_POLICY = "credit-risk"


def load_policy_file(path: Path) -> Policy:
    """Parse and validate one policy file; errors name the file and the key."""
    import yaml
    from pydantic import ValidationError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"policy file {path}: cannot read it ({exc.strerror})") from exc
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not data:
        raise PolicyError(f"policy file {path}: empty or not a mapping; a policy needs gates")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PolicyError(f"policy file {path}: key '{key}': {first['msg']}") from exc


@cache
def _shipped() -> tuple[Policy, ...]:
    """The policy files shipped in this package, parsed once per process."""
    found: dict[tuple[str, int], Policy] = {}
    for path in sorted(PACKAGED_DIR.glob("*.yaml")):
        policy = load_policy_file(path)
        found.setdefault((policy.id, policy.version), policy)
    return tuple(found[key] for key in sorted(found))


def all_policies() -> list[Policy]:
    """Every shipped policy, sorted by id and version."""
    return list(_shipped())


def find_policy(policy_id: str) -> Policy:
    """The newest shipped version of ``policy_id`` (``id`` or ``id@version``)."""
    wanted_id, _, wanted_version = policy_id.partition("@")
    found = [
        p
        for p in _shipped()
        if p.id == wanted_id and (not wanted_version or str(p.version) == wanted_version)
    ]
    if not found:
        raise PolicyError(f"no shipped policy '{policy_id}'; see `govreg policies list`")
    return max(found, key=lambda p: p.version)
