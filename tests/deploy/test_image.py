"""The container recipe, proven without a Docker engine.

The Dockerfile is checked statically (final stage: non-root uid, entrypoint, labels), and the
``venv`` fixture repeats its two steps on this machine: build the wheel from exactly the files the
builder stage copies, with the hashed build backend it installs, then install the hashed
dependencies and the wheel into a fresh venv with the same pip options and files. That venv's
``batchrun`` then runs a small batch against the emulator, authenticated through the emulator's
managed-identity endpoint as in Azure Container Apps.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.report.summary import summarize
from tests.helpers.cli import cli_env, start
from tests.helpers.paths import ROOT

if TYPE_CHECKING:
    from tests.helpers.emulator import StartEmulator

DOCKERFILE = ROOT / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
BUILD_REQUIREMENTS = ROOT / "build-requirements.txt"
BASE_IMAGE = re.compile(r"python:3\.11-slim@sha256:[0-9a-f]{64}")
# the version's one home, which the build reads (pyproject.toml's [tool.hatch.version])
_VERSION_LINE = re.search(
    r'^__version__ = "([^"]+)"$',
    (ROOT / "batchrun" / "__init__.py").read_text(encoding="utf-8"),
    re.MULTILINE,
)
assert _VERSION_LINE is not None, "batchrun/__init__.py has no __version__ line"
VERSION = _VERSION_LINE[1]
# The options of the Dockerfile's `pip install`s (test_pip_options_match_... checks).
PIP_OPTIONS = ["--no-cache-dir", "--only-binary=:all:", "--require-hashes"]
WHEEL_OPTIONS = ["--no-cache-dir", "--no-deps", "--no-index"]
UID = "10001"
LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.source",
    "org.opencontainers.image.licenses",
}


def instructions(stage: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of one stage ("builder" or "final"), continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword.upper(), " ".join(rest.split())))
    return stages[0] if stage == "builder" else stages[-1]


def test_final_stage_runs_batchrun_as_a_fixed_non_root_uid() -> None:
    final = dict(instructions("final"))
    assert BASE_IMAGE.fullmatch(final["FROM"]), final["FROM"]
    assert final["USER"] == f"{UID}:{UID}"
    assert json.loads(final["ENTRYPOINT"]) == ["batchrun"]
    assert json.loads(final["CMD"]) == ["--help"]
    assert final["WORKDIR"] == "/work"
    assert "PYTHONDONTWRITEBYTECODE=1" in final["ENV"]
    assert "PYTHONUNBUFFERED=1" in final["ENV"]


def test_final_stage_carries_every_oci_label() -> None:
    labels = " ".join(args for keyword, args in instructions("final") if keyword == "LABEL")
    assert set(re.findall(r"(org\.opencontainers\.image\.\w+)=", labels)) == LABELS
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def test_both_stages_start_from_the_same_base_pinned_by_digest() -> None:
    builder, final = dict(instructions("builder")), dict(instructions("final"))
    assert BASE_IMAGE.fullmatch(builder["FROM"].removesuffix(" AS builder")), builder["FROM"]
    assert builder["FROM"].removesuffix(" AS builder") == final["FROM"]


def _pip_installs(stage: str) -> list[list[str]]:
    runs = [args for keyword, args in instructions(stage) if keyword == "RUN"]
    commands = [part for args in runs for part in args.split("&&")]
    return [shlex.split(command) for command in commands if "pip install" in command]


def test_pip_options_match_the_dockerfile() -> None:
    dependencies, wheel = _pip_installs("final")
    for option in PIP_OPTIONS:
        assert option in dependencies
    assert dependencies[dependencies.index("-r") + 1].endswith("/constraints.txt")
    for option in WHEEL_OPTIONS:
        assert option in wheel
    assert wheel[-1] == "/dist/batchrun-${VERSION}-py3-none-any.whl"


def test_builder_builds_with_the_hashed_backend_only() -> None:
    (backend,) = _pip_installs("builder")
    for option in PIP_OPTIONS:
        assert option in backend
    assert backend[backend.index("-r") + 1].endswith("/build-requirements.txt")
    runs = " ".join(args for keyword, args in instructions("builder") if keyword == "RUN")
    assert "pip wheel --no-cache-dir --no-deps --no-build-isolation" in runs
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert requires["build-system"]["requires"][0].startswith("hatchling")
    assert "hatchling" in pins(BUILD_REQUIREMENTS)


def pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a pip-compile ``--generate-hashes`` file; asserts that
    every requirement is an exact version with at least one sha256."""
    found: dict[str, str] = {}
    text = path.read_text(encoding="utf-8")
    for block in re.split(r"\n(?=[A-Za-z0-9])", "\n" + text):
        lines = [line.strip() for line in block.strip().splitlines()]
        if not lines or lines[0].startswith("#"):
            continue
        requirement = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+) \\", lines[0])
        assert requirement, lines[0]
        hashes = [line for line in lines[1:] if line.startswith("--hash=")]
        assert hashes, f"{lines[0]} has no --hash"
        for line in hashes:
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line), line
        found[_normalise(requirement[1])] = requirement[2]
    assert found, f"{path} pins nothing"
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("path", [CONSTRAINTS, BUILD_REQUIREMENTS], ids=lambda p: p.name)
def test_requirements_pin_exact_versions_with_hashes(path: Path) -> None:
    assert pins(path)


@dataclass(frozen=True)
class ImageVenv:
    root: Path

    @property
    def batchrun(self) -> Path:
        return self.root / "bin" / "batchrun"

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"


def _context_copy(destination: Path) -> Path:
    """The files the builder stage COPYs, laid out as in its WORKDIR."""
    copies = [shlex.split(args) for keyword, args in instructions("builder") if keyword == "COPY"]
    assert copies, "the builder stage copies nothing"
    for *sources, target in copies:
        for source in sources:
            src = ROOT / source
            dest = destination / (Path(target) / src.name if target.endswith("/") else target)
            if src.is_dir():
                shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
    return destination


def _run(command: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False, **kwargs
    )
    assert result.returncode == 0, f"{command}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> ImageVenv:
    work = tmp_path_factory.mktemp("image")
    source = _context_copy(work / "src")
    dist = work / "dist"
    builder = ImageVenv(work / "builder")
    _run([sys.executable, "-m", "venv", builder.root])
    _run([builder.python, "-m", "pip", "install", *PIP_OPTIONS, "-r", BUILD_REQUIREMENTS])
    build: list[str | Path] = [
        "wheel",
        "--no-cache-dir",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        dist,
    ]
    _run([builder.python, "-m", "pip", *build, source])
    wheel = dist / f"batchrun-{VERSION}-py3-none-any.whl"
    assert wheel.is_file(), sorted(dist.iterdir())
    root = work / "venv"
    _run([sys.executable, "-m", "venv", root])
    venv = ImageVenv(root)
    _run([venv.python, "-m", "pip", "install", *PIP_OPTIONS, "-r", CONSTRAINTS])
    _run([venv.python, "-m", "pip", "install", *WHEEL_OPTIONS, wheel])
    _run([venv.python, "-m", "pip", "check"])
    return venv


@pytest.mark.e2e
def test_installed_wheel_reports_its_version(venv: ImageVenv) -> None:
    result = _run([venv.batchrun, "--version"], cwd=venv.root)
    assert result.stdout.strip() == f"batchrun {VERSION}"
    where = _run([venv.python, "-c", "import batchrun; print(batchrun.__file__)"], cwd=venv.root)
    assert Path(where.stdout.strip()).is_relative_to(venv.root)


@pytest.mark.e2e
def test_constraints_pin_everything_the_image_installs(venv: ImageVenv) -> None:
    frozen = _run([venv.python, "-m", "pip", "freeze", "--exclude", "batchrun"]).stdout
    installed = dict(line.split("==") for line in frozen.splitlines())
    assert {_normalise(name): version for name, version in installed.items()} == pins(CONSTRAINTS)


MANIFEST = """\
version: 1
defaults:
  subscription: 11111111-1111-1111-1111-111111111111
  resource_group: rg-data
runs:
  - id: sales-eu
    factory: sales-eu
    pipeline: LoadOrders
    parameters: {region: eu}
  - id: sales-us
    factory: sales-us
    pipeline: LoadOrders
  - id: marts
    factory: sales-eu
    pipeline: BuildMarts
"""


@pytest.mark.e2e
def test_installed_wheel_runs_a_batch_with_managed_identity(
    venv: ImageVenv,
    start_emulator: StartEmulator,
    tmp_path: Path,
) -> None:
    emulator = start(start_emulator, "--accept-any")
    manifest = tmp_path / "nightly.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    report = tmp_path / "r.jsonl"
    # nothing of this checkout's Python (PYTHONPATH...) may reach the image's venv
    env = {k: v for k, v in cli_env(emulator).items() if not k.startswith("PYTHON")}
    args = ["run", str(manifest), "--report", str(report), "--log-format", "json"]
    _run([venv.batchrun, *args], cwd=tmp_path, env=env, timeout=120)

    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["id"] for line in lines) == ["marts", "sales-eu", "sales-us"]
    for line in lines:
        assert line["status"] == "succeeded", line
        assert line["run_id"]
        assert line["http_status"] == 200
        assert line["subscription"] == "11111111-1111-1111-1111-111111111111"
    assert not summarize([report]).failed
    stats = emulator.stats()
    assert stats["requests"]["msiToken"].get("200", 0) >= 1  # the token came from /msi/token
    assert (stats["runs_created"], stats["duplicates"]) == (3, 0)
