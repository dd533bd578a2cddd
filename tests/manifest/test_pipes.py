"""A manifest given as a pipe (``batchrun run <(generate)``, ``/dev/stdin``): read once, the same
as the file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ManifestError
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.scope import load_scope

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SUB = "11111111-1111-1111-1111-111111111111"
HEAD = f"version: 1\ndefaults: {{subscription: {SUB}, resource_group: rg-data}}\nruns:\n"
# more than a pipe's buffer (64 KiB): the writer and the reader overlap, as with a generator
ONE_A_LINE = HEAD + "".join(
    f"  - {{id: r{n}, factory: fac-{n % 3}, pipeline: P, parameters: {{n: {n}}}}}\n"
    for n in range(3000)
)
BLOCK = HEAD + "".join(
    f"  - id: r{n}\n    factory: fac-{n % 3}\n    pipeline: P\n    parameters:\n      n: {n}\n"
    for n in range(3000)
)


@contextmanager
def piped(text: str) -> Iterator[str]:
    """A path that reads ``text`` from a pipe, as the shell's ``<(...)`` gives one."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as out:
            out.write(text.encode())

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        yield f"/dev/fd/{read_end}"
    finally:
        os.close(read_end)
        writer.join(timeout=10)


@pytest.mark.parametrize("text", [ONE_A_LINE, BLOCK], ids=["one-a-line", "block"])
def test_a_piped_manifest_reads_as_the_file_does(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    from_file = load_manifest(path, environ={})
    with piped(text) as name:
        from_pipe = load_manifest(name, environ={})
    assert len(from_pipe.runs) == 3000
    assert from_pipe.runs == from_file.runs
    assert from_pipe.fingerprint == from_file.fingerprint


def test_an_error_in_a_piped_manifest_has_its_line_and_hint(tmp_path: Path) -> None:
    # the hint reads the text again: a pipe cannot be read twice
    text = HEAD + "  - factory: fac-0\n    pipeline: P\n    parameters:\n      a: 1\n     b: 2\n"
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as from_file:
        load_manifest(path, environ={})
    with piped(text) as name, pytest.raises(ManifestError) as from_pipe:
        load_manifest(name, environ={})
    expected = [(i.line, i.column, i.message) for i in from_file.value.issues]
    assert [(i.line, i.column, i.message) for i in from_pipe.value.issues] == expected
    assert "is this key indented under 'parameters'" in expected[0][2]


def test_a_piped_manifest_names_the_factories_of_a_scope(tmp_path: Path) -> None:
    with piped(ONE_A_LINE) as name:
        scope = load_scope(name, environ={})
    assert sorted(ref.factory for ref in scope.factories) == ["fac-0", "fac-1", "fac-2"]


@pytest.mark.e2e
def test_validate_reads_a_manifest_from_standard_input(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(ONE_A_LINE)
    command = [sys.executable, "-m", "batchrun", "validate"]
    from_file = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=60)
    from_pipe = subprocess.run(
        [*command, "/dev/stdin"], input=ONE_A_LINE, capture_output=True, text=True, timeout=60
    )
    assert from_file.returncode == 0, from_file.stderr
    assert from_pipe.returncode == 0, from_pipe.stderr
    assert from_pipe.stdout.replace("/dev/stdin", "M") == from_file.stdout.replace(str(path), "M")
    assert "3000 runs" in from_pipe.stdout
