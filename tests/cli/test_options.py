"""Shared options: durations must be finite and positive; log levels ignore case."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import pytest

from batchrun.cli.options import positive_float
from tests.helpers.cli import batchrun_offline, manifest_text

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "infinity", "0", "-1", "1e-400"])
def test_positive_float_refuses_what_is_not_a_finite_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive_float(text)


@pytest.mark.parametrize(("text", "value"), [("30", 30.0), ("2.5", 2.5), ("1e3", 1000.0)])
def test_positive_float_takes_finite_positive_numbers(text: str, value: float) -> None:
    assert positive_float(text) == value


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--connect-timeout", "inf"),
        ("--reconcile-window", "nan"),
        ("--read-timeout", "-inf"),
        ("--grace", "nan"),
    ],
)
@pytest.mark.e2e
def test_a_duration_that_is_not_finite_exits_2_naming_the_option(
    tmp_path: Path, option: str, value: str
) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(1))
    # a dry run would send nothing anyway: the option must be refused while parsing
    done = batchrun_offline("run", str(manifest), "--dry-run", f"{option}={value}")
    assert done.returncode == 2, done.stderr
    assert f"argument {option}: must be a finite number greater than 0" in done.stderr
    assert repr(value) in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.e2e
def test_recover_refuses_an_infinite_connect_timeout(tmp_path: Path) -> None:
    scope = tmp_path / "scope.yaml"
    scope.write_text("version: 1\nfactories: []\n")
    done = batchrun_offline(
        "recover", "--scope", str(scope), "--since", "2026-11-25T22:00Z", "--dry-run",
        "--connect-timeout", "inf",
    )  # fmt: skip
    assert done.returncode == 2
    assert "argument --connect-timeout: must be a finite number greater than 0" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("level", ["INFO", "Debug", "warning"])
def test_log_level_ignores_case(tmp_path: Path, level: str) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(manifest_text(2))
    done = batchrun_offline("validate", str(manifest), "--log-level", level, "--log-format", "json")
    assert done.returncode == 0, done.stderr
    assert "2 runs" in done.stdout


@pytest.mark.e2e
def test_an_unknown_log_level_is_still_refused() -> None:
    done = batchrun_offline("validate", "nothing.yaml", "--log-level", "LOUD")
    assert done.returncode == 2
    assert "argument --log-level: invalid choice: 'loud'" in done.stderr
