"""``--help`` lists the exit codes and the defaults; ``batchrun schema``; ``validate --format json``
offline (in-process: no subprocess, no network)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
import structlog

from batchrun.cli.exits import EXIT_AUTH, EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from batchrun.cli.main import build_parser, main
from batchrun.manifest.schema import PACKAGED
from tests.helpers.paths import ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def _logging_reset() -> Iterator[None]:
    """main() and configure() set structlog up for the process: undo it for the next test."""
    yield
    structlog.reset_defaults()


GOOD = """\
version: 1
runs:
  - {subscription: 11111111-1111-1111-1111-111111111111, resource_group: rg-data,
     factory: sales-eu, pipeline: LoadOrders, parameters: {a: $RUN_DATE}}
"""


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--help"])
    assert caught.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys).split("exit codes:", 1)[1]
    codes = re.findall(r"^  (\d+)", text, re.MULTILINE)
    assert [int(code) for code in codes] == [
        EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, 129, EXIT_BROKEN_PIPE,
    ]  # fmt: skip
    assert "129/130/143  stopped by SIGHUP/SIGINT/SIGTERM" in text


@pytest.mark.parametrize(
    "shown",
    [
        "(default: 16)",
        "(default: AzurePublicCloud)",
        "(default: 8)",
        "(default: 600.0)",
        "(default: 30.0)",
        "(default: info)",
        "(default: console on a TTY, else json)",
    ],
)
def test_run_help_shows_the_defaults(capsys: pytest.CaptureFixture[str], shown: str) -> None:
    text = " ".join(help_text(capsys, "run").split())
    assert shown in text
    assert "(default: None)" not in text
    assert "(default: False)" not in text


def test_log_level_is_read_in_any_case() -> None:
    args = build_parser().parse_args(["validate", "m.yaml", "--log-level", "WARNING"])
    assert args.log_level == "warning"


def test_schema_prints_the_packaged_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == EXIT_OK
    printed = capsys.readouterr().out
    assert printed == PACKAGED.read_text(encoding="utf-8")
    assert json.loads(printed) == json.loads(
        (ROOT / "configs/manifest-v1.schema.json").read_text(encoding="utf-8")
    )


def test_the_readme_schema_comment_names_the_file_batchrun_schema_writes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Manifest format", 1)[1].split("\n## ", 1)[0]
    assert "# yaml-language-server: $schema=manifest-v1.schema.json\n" in section
    assert "batchrun schema >\n  manifest-v1.schema.json" in section


def test_validate_json_describes_a_valid_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(GOOD)
    assert main(["validate", "--format", "json", str(path)]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is True
    assert document["runs"] == 1
    assert document["manifests"][0]["factories"] == [
        {
            "subscription": "11111111-1111-1111-1111-111111111111",
            "resource_group": "rg-data",
            "factory": "sales-eu",
            "runs": 1,
        }
    ]
    (warning,) = document["warnings"]
    assert (warning["line"], warning["path"]) == (4, "runs[0].parameters.a")
    assert "is sent literally" in warning["message"]


def test_validate_json_lists_the_errors_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(GOOD.replace("factory: sales-eu", "factory: x"))
    assert main(["validate", "--format", "json", str(path)]) == EXIT_USAGE
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["valid"] is False
    (error,) = document["errors"]
    assert (error["file"], error["line"], error["path"]) == (str(path), 4, "runs[0].factory")
    assert f"{path}:4:" in captured.err
