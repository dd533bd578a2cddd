"""The shared nouns: the loader's quick RunSpec builder makes what the constructor makes."""

from __future__ import annotations

import dataclasses

import pytest

from batchrun.model import RunSpec, position, run_spec_of

FIELDS = (
    "id",
    "sub",
    "rg",
    "fac",
    "pipe",
    {"n": 1},
    "ref",
    True,
    False,
    "act",
    "m.yaml",
    position(3, 5),
)


def test_run_spec_of_sets_every_field_as_the_constructor_does() -> None:
    built, quick = RunSpec(*FIELDS), run_spec_of(FIELDS)
    assert quick == built
    assert dataclasses.astuple(quick) == dataclasses.astuple(built) == FIELDS
    # compare=False: == would not notice the position
    assert quick.source == built.source == "m.yaml:3:5"
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.id = "other"  # type: ignore[misc]


def test_run_spec_of_refuses_a_short_row() -> None:
    with pytest.raises(ValueError, match="not enough values"):
        run_spec_of(FIELDS[:-1])


def test_run_spec_of_refuses_a_long_row() -> None:
    with pytest.raises(ValueError, match="too many values"):
        run_spec_of((*FIELDS, "extra"))


def test_source_is_empty_for_a_run_of_no_manifest_and_keeps_long_positions() -> None:
    assert RunSpec("id", "sub", "rg", "fac", "pipe").source == ""
    far = RunSpec("id", "sub", "rg", "fac", "pipe", file="m.yaml", at=position(3_000_000, 70_000))
    assert far.source == "m.yaml:3000000:70000"
