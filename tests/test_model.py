"""The shared nouns: the loader's quick RunSpec builder makes what the constructor makes."""

from __future__ import annotations

import dataclasses

import pytest

from batchrun.model import RunSpec, run_spec_of

FIELDS = ("id", "sub", "rg", "fac", "pipe", {"n": 1}, "ref", True, False, "act", "m.yaml:3:5")


def test_run_spec_of_sets_every_field_as_the_constructor_does() -> None:
    built, quick = RunSpec(*FIELDS), run_spec_of(FIELDS)
    assert quick == built
    assert dataclasses.astuple(quick) == dataclasses.astuple(built) == FIELDS
    assert quick.source == "m.yaml:3:5"  # compare=False: == would not notice it
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.id = "other"  # type: ignore[misc]


def test_run_spec_of_refuses_a_short_row() -> None:
    with pytest.raises(ValueError, match="not enough values"):
        run_spec_of(FIELDS[:-1])


def test_run_spec_of_refuses_a_long_row() -> None:
    with pytest.raises(ValueError, match="too many values"):
        run_spec_of((*FIELDS, "extra"))
