"""A submitter's lineage is checked before anything is recorded: whatever JSON (or
other data) arrives, the check returns the object it records or refuses with an
InputError; it never raises anything else."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError
from registry.inputs import MAX_LINEAGE_BYTES, check_lineage

json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), json_data, max_size=6) | json_data)
def test_any_value_is_kept_or_refused_with_an_input_error(value: Any) -> None:
    message = None
    try:
        kept = check_lineage(value)
    except InputError as exc:
        message = str(exc)
    if message is not None:
        assert message.startswith("lineage ")
    else:
        assert kept == ({} if value is None else value)
        assert isinstance(kept, dict)
        assert "mlflow" not in kept


def test_a_lineage_at_the_limit_is_kept_and_one_byte_more_is_refused() -> None:
    filler = "x" * (MAX_LINEAGE_BYTES - len('{"notes":""}'))
    assert check_lineage({"notes": filler}) == {"notes": filler}
    with pytest.raises(InputError) as refused:
        check_lineage({"notes": filler + "x"})
    assert str(refused.value) == "lineage is 16385 bytes as JSON; at most 16384 are kept"


def test_a_deeply_nested_lineage_is_refused() -> None:
    nested: Any = "leaf"
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(InputError) as refused:
        check_lineage({"deep": nested})
    assert str(refused.value) == "lineage is nested too deeply to be recorded"
