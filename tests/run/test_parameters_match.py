"""``parameters_match`` on the shapes the main table (test_reconcile.py) leaves out: containers
of another kind or length, strings and nulls inside containers, values already decoded."""

from __future__ import annotations

from typing import Any

import pytest

from batchrun.run.reconcile import parameters_match


@pytest.mark.parametrize(
    ("ours", "theirs", "same"),
    [
        ({"a": []}, {"a": "{}"}, False),
        ({"a": {}}, {"a": "[]"}, False),
        ({"a": [1, 2]}, {"a": "[1]"}, False),
        ({"a": [1]}, {"a": "[1, 2]"}, False),
        ({"a": {"k": 1}}, {"a": '{"k": 1, "l": 2}'}, False),
        ({"a": ["x", None]}, {"a": '["x",null]'}, True),
        ({"a": ["x"]}, {"a": '["y"]'}, False),
        ({"a": [None]}, {"a": "[0]"}, False),
        # a value some client already decoded: compared as it is
        ({"a": 1}, {"a": 1}, True),
        ({"a": [1]}, {"a": [1]}, True),
    ],
)
def test_parameters_match_containers_and_decoded_values(
    ours: dict[str, Any], theirs: dict[str, Any], same: bool
) -> None:
    assert parameters_match(ours, theirs) is same
