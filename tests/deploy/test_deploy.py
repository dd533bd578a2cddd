"""The deployment recipes in configs/deploy/ parse, run a real batchrun command line through the
image's entrypoint, and set only environment variables that something in the container reads."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchrun.cli.main import build_parser
from batchrun.manifest.loader import load_manifest
from tests.helpers.paths import ROOT

DEPLOY = ROOT / "configs" / "deploy"
RECIPES = ["containerapps-job.yaml", "kubernetes-cronjob.yaml"]
IMAGE_UID = 10001  # the Dockerfile's USER (tests/test_image.py checks that side)

# Variables azure-identity's DefaultAzureCredential reads (its EnvironmentVariables; checked
# against the installed library below). batchrun's own variables are found in its sources.
AZURE_IDENTITY_ENV = {
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
}
REQUIRED_ACTIONS = {
    "Microsoft.DataFactory/factories/pipelines/createrun/action",
    "Microsoft.DataFactory/factories/pipelineruns/read",
    "Microsoft.DataFactory/factories/querypipelineruns/action",
}


def documents(name: str) -> list[dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text(encoding="utf-8")) if doc]
    assert docs and all(isinstance(doc, dict) for doc in docs)
    return docs


def pod_specs(name: str) -> list[dict[str, Any]]:
    """Container Apps: properties.template; Kubernetes: each CronJob's pod template spec."""
    specs = []
    for doc in documents(name):
        if "properties" in doc:
            specs.append(doc["properties"]["template"])
        elif doc.get("kind") == "CronJob":
            specs.append(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    assert specs, f"{name}: no container template found"
    return specs


def containers(name: str) -> list[dict[str, Any]]:
    return [container for spec in pod_specs(name) for container in spec["containers"]]


def batchrun_argv(container: dict[str, Any]) -> list[str]:
    """The arguments batchrun gets: the image's ENTRYPOINT ["batchrun"] with ``args``, or a
    ``/bin/sh -c 'exec batchrun "$@" MORE...' batchrun`` wrapper that appends MORE to them."""
    args = [str(arg) for arg in container.get("args", [])]
    command = container.get("command")
    if not command:
        return args
    assert command[:2] == ["/bin/sh", "-c"] and len(command) == 4, command
    script = shlex.split(command[2])
    assert script[:3] == ["exec", "batchrun", "$@"], f"the wrapper must exec batchrun: {script}"
    assert command[3] == "batchrun"  # $0
    return [*args, *script[3:]]


def mounts(container: dict[str, Any]) -> list[dict[str, Any]]:
    return list(container.get("volumeMounts", []))


def mount_of(container: dict[str, Any], path: str) -> dict[str, Any]:
    found = [m for m in mounts(container) if Path(path).is_relative_to(m["mountPath"])]
    assert found, f"{path} is on no mounted volume"
    return max(found, key=lambda m: len(m["mountPath"]))


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(action.choices, dict)
    return set(action.choices)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_parses(name: str) -> None:
    assert documents(name)


@pytest.mark.parametrize("name", RECIPES)
def test_args_are_a_real_batchrun_command_line(name: str) -> None:
    for container in containers(name):
        argv = batchrun_argv(container)
        assert argv and argv[0] in subcommands(), argv
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{name}: batchrun rejects {argv}")
        assert args.command == argv[0]
        if getattr(args, "resume", False):
            assert args.report is not None, "--resume needs --report"
        if args.command == "run":
            mount_of(container, str(args.manifest))
            assert args.report is not None, "a job must say where its report goes"
            report_mount = mount_of(container, str(args.report))
            assert not report_mount.get("readOnly", False)
            assert args.log_format == "json"


@pytest.mark.parametrize("name", RECIPES)
def test_report_path_is_fixed_per_day_so_a_retry_resumes_it(name: str) -> None:
    for container in containers(name):
        argv = batchrun_argv(container)
        report = argv[argv.index("--report") + 1]
        assert "$(date -u +%Y-%m-%d)" in report
        assert "--resume" in argv


def code_env_names() -> set[str]:
    names: set[str] = set()
    for source in (ROOT / "batchrun").rglob("*.py"):
        names |= set(re.findall(r"[\"']([A-Z][A-Z0-9_]{2,})[\"']", source.read_text("utf-8")))
    return names


def test_azure_identity_reads_the_variables_we_allow() -> None:
    from azure.identity._constants import EnvironmentVariables

    known = {value for value in vars(EnvironmentVariables).values() if isinstance(value, str)}
    assert known >= AZURE_IDENTITY_ENV


@pytest.mark.parametrize("name", RECIPES)
def test_env_vars_are_read_by_the_code(name: str) -> None:
    read = code_env_names() | AZURE_IDENTITY_ENV
    for container in containers(name):
        for variable in container.get("env", []):
            assert variable["name"] in read, f"{name}: nothing reads {variable['name']}"


def test_containerapps_job_is_scheduled_with_a_user_assigned_identity() -> None:
    (job,) = documents("containerapps-job.yaml")
    assert job["identity"]["type"] == "UserAssigned"
    config = job["properties"]["configuration"]
    assert config["triggerType"] == "Schedule"
    assert len(config["scheduleTriggerConfig"]["cronExpression"].split()) == 5
    assert config["replicaTimeout"] > 0
    assert config["replicaRetryLimit"] in (0, 1)
    (container,) = containers("containerapps-job.yaml")
    assert "AZURE_CLIENT_ID" in {variable["name"] for variable in container["env"]}
    (volume,) = job["properties"]["template"]["volumes"]
    assert volume["storageType"] == "AzureFile"
    assert f"uid={IMAGE_UID}" in volume["mountOptions"]


def test_kubernetes_cronjob_uses_workload_identity_and_runs_as_the_image_user() -> None:
    docs = {doc["kind"]: doc for doc in documents("kubernetes-cronjob.yaml")}
    account = docs["ServiceAccount"]
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"]
    cron = docs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    job = cron["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0
    assert job["backoffLimit"] in (0, 1)
    template = job["template"]
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    spec = template["spec"]
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    # workload identity's projected token does not need the Kubernetes API token mounted
    assert account["automountServiceAccountToken"] is False
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == IMAGE_UID
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]
    args = build_parser().parse_args(batchrun_argv(container))
    assert spec["terminationGracePeriodSeconds"] > args.grace
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    report_volume = volumes[mount_of(container, str(args.report))["name"]]
    claim = docs["PersistentVolumeClaim"]["metadata"]["name"]
    assert report_volume["persistentVolumeClaim"]["claimName"] == claim


def test_kubernetes_configmap_holds_a_valid_manifest(tmp_path: Path) -> None:
    docs = {doc["kind"]: doc for doc in documents("kubernetes-cronjob.yaml")}
    (container,) = containers("kubernetes-cronjob.yaml")
    manifest_path = Path(build_parser().parse_args(batchrun_argv(container)).manifest)
    configmap = docs["ConfigMap"]
    volume = next(
        volume
        for volume in pod_specs("kubernetes-cronjob.yaml")[0]["volumes"]
        if volume["name"] == mount_of(container, str(manifest_path))["name"]
    )
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    text = configmap["data"][manifest_path.name]
    copy = tmp_path / manifest_path.name
    copy.write_text(text, encoding="utf-8")
    manifest = load_manifest(copy, environ={})
    assert manifest.runs


def test_custom_role_grants_what_batchrun_calls() -> None:
    role = json.loads((DEPLOY / "custom-role.json").read_text(encoding="utf-8"))
    assert role["IsCustom"] is True
    assert set(role["Actions"]) >= REQUIRED_ACTIONS
    assert not any("*" in action for action in role["Actions"])
    assert role["AssignableScopes"]
