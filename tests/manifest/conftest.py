from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from batchrun.errors import ManifestError
from batchrun.manifest.loader import load_manifest

if TYPE_CHECKING:
    from pathlib import Path

IssuesOf = Callable[..., list[str]]
Issues = Callable[[str], list[str]]  # a fixture built on issues_of for one kind of file


@pytest.fixture
def issues_of(tmp_path: Path) -> IssuesOf:
    """Write the text, read it (a manifest, unless ``read`` says), and return the issues raised
    as ``LINE:COLUMN: PATH: MESSAGE`` strings."""

    def issues_of(
        text: str,
        *,
        read: Callable[..., object] = load_manifest,
        error: type[ManifestError] = ManifestError,
        name: str = "m.yaml",
    ) -> list[str]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(error) as caught:
            read(path, environ={})
        return [str(issue).removeprefix(f"{path}:") for issue in caught.value.issues]

    return issues_of
