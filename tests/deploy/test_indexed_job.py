"""configs/deploy/kubernetes-indexed-job.yaml: N shards as an Indexed Job, then one summary.

The shard's shell is run for real (``/bin/sh`` with ``JOB_COMPLETION_INDEX`` set and a stand-in
``batchrun`` that prints its arguments), and what it would exec is parsed by batchrun's own
parser: every index gets a distinct ``--shard K/N``, its own report on the PVC and its own
identity, and the summary reads exactly those N reports.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from batchrun.cli.main import build_parser
from batchrun.manifest.loader import load_manifest
from batchrun.manifest.shard import parse_shard, select
from tests.deploy.test_deploy import documents, mount_of

if TYPE_CHECKING:
    from pathlib import Path

NAME = "kubernetes-indexed-job.yaml"
IDENTITIES = "/etc/batchrun-identities"


def cronjobs() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in documents(NAME) if doc["kind"] == "CronJob"}


def job(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = cronjobs()[name]["spec"]["jobTemplate"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    (only,) = job(name)["template"]["spec"]["containers"]
    return dict(only)


def config_map(name: str) -> dict[str, str]:
    (found,) = [
        d for d in documents(NAME) if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name
    ]
    return dict(found["data"])


def executed(spec: dict[str, Any], tmp_path: Path, env: dict[str, str]) -> tuple[list[str], str]:
    """What the container's shell would exec batchrun with, and its AZURE_CLIENT_ID."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "batchrun"
    stand_in.write_text('#!/bin/sh\nprintf "%s\\0" "${AZURE_CLIENT_ID:-}" "$@"\n')
    stand_in.chmod(0o755)
    identities = tmp_path / "identities"
    identities.mkdir(exist_ok=True)
    for key, value in config_map("batchrun-identities").items():
        (identities / key).write_text(value)
    shell, flag, script, zero = spec["command"]
    assert (shell, flag, zero) == ("/bin/sh", "-c", "batchrun")
    assert 'exec batchrun "$@"' in script, "the shell must exec batchrun: signals reach it"
    script = script.replace(IDENTITIES, str(identities))
    done = subprocess.run(
        ["/bin/sh", "-c", script, "batchrun", *map(str, spec["args"])],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **env},
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    client_id, *argv = done.stdout.decode().split("\0")[:-1]
    return argv, client_id


def test_the_shards_are_an_indexed_job_of_n_pods() -> None:
    spec = job("batchrun-shards")
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    assert spec["backoffLimitPerIndex"] in (0, 1)
    assert spec["activeDeadlineSeconds"] > 0
    labels = spec["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"


def test_each_index_runs_its_own_shard_report_and_identity(tmp_path: Path) -> None:
    spec = job("batchrun-shards")
    n = spec["completions"]
    shards, reports, identities = [], set(), set()
    for index in range(n):
        argv, client_id = executed(
            container("batchrun-shards"), tmp_path, {"JOB_COMPLETION_INDEX": str(index)}
        )
        args = build_parser().parse_args(argv)
        assert args.command == "run" and args.resume and args.log_format == "json"
        shards.append(parse_shard(args.shard))
        assert args.report.name.endswith(f"-shard-{index + 1}-of-{n}.jsonl")
        assert not mount_of(container("batchrun-shards"), str(args.report)).get("readOnly", False)
        mount_of(container("batchrun-shards"), str(args.manifest))
        reports.add(args.report)
        identities.add(client_id)
    assert [(s.index, s.count) for s in shards] == [(k, n) for k in range(1, n + 1)]
    assert len(reports) == n
    assert len(identities) == n, "one identity per shard: ARM's budgets add up"
    # the shards cover the manifest exactly once
    text = config_map("batchrun-manifest")["nightly.yaml"]
    (tmp_path / "nightly.yaml").write_text(text)
    runs = load_manifest(tmp_path / "nightly.yaml", environ={}).runs
    picked = [spec.id for shard in shards for spec in select(runs, shard)]
    assert sorted(picked) == sorted(spec.id for spec in runs)


def test_the_summary_reads_every_shard_report_after_the_deadline(tmp_path: Path) -> None:
    n = job("batchrun-shards")["completions"]
    shard_reports = set()
    for index in range(n):
        argv, _ = executed(
            container("batchrun-shards"), tmp_path, {"JOB_COMPLETION_INDEX": str(index)}
        )
        shard_reports.add(build_parser().parse_args(argv).report)
    argv, _ = executed(container("batchrun-summary"), tmp_path, {})
    args = build_parser().parse_args(argv)
    assert args.command == "summary" and args.format == "html"
    assert set(args.reports) == shard_reports
    assert mount_of(container("batchrun-summary"), str(args.output))["name"] == "reports"
    # after the shards' deadline: 02:00 + activeDeadlineSeconds < the summary's minute
    shards_at = cronjobs()["batchrun-shards"]["spec"]["schedule"].split()
    summary_at = cronjobs()["batchrun-summary"]["spec"]["schedule"].split()
    start = int(shards_at[1]) * 60 + int(shards_at[0])
    deadline = start + job("batchrun-shards")["activeDeadlineSeconds"] // 60
    assert int(summary_at[1]) * 60 + int(summary_at[0]) > deadline


@pytest.mark.parametrize("name", ["batchrun-shards", "batchrun-summary"])
def test_the_pods_run_as_the_image_user_without_the_api_token(name: str) -> None:
    pod = job(name)["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container(name)["securityContext"]["readOnlyRootFilesystem"] is True
