"""The suite's own rules, as tests/conftest.py enforces them."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_a_test_not_marked_e2e_cannot_start_python() -> None:
    with pytest.raises(AssertionError, match=r"not marked e2e: add @pytest\.mark\.e2e"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_other_programs_are_not_refused() -> None:
    # only Python and batchrun are the slow kind; `true` stands for a library's helper program
    assert subprocess.run(["true"], check=False).returncode == 0


@pytest.mark.e2e
def test_a_test_marked_e2e_may_start_python() -> None:
    done = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True)
    assert done.stdout == "ok\n"
