"""Emulator settings (one declared table: defaults, flags, help) and the YAML config file.

The config file holds the topology (subscriptions → resource groups → factories → pipelines,
with declared parameters) and, under ``settings:``, defaults for any option; flags given on the
command line win over it::

    settings: {write_burst: 40, fail_503: 0.02}
    subscriptions:
      11111111-1111-1111-1111-111111111111:
        resource_groups:
          rg-data:
            factories:
              sales-eu:
                pipelines:
                  LoadOrders: {parameters: [partition, region, run_date]}
                  BuildMarts: {}          # no declared parameters: any name is accepted
                  LoadRefunds:            # typed parameters with defaults, and ADF's queue
                    parameters: {region: {type: String, defaultValue: eu}, partition: {type: Int}}
                    concurrency: 2
                  BuildMarts2:            # its own run length and failure rate, and how it fails
                    duration_ms: 20000
                    failure_rate: 0.1
                    activities: [{name: Lookup1, type: Lookup}, {name: CopyMarts, type: Copy}]
                    failure: {activity: CopyMarts, code: "2200", failure_type: UserError,
                              message: "ErrorCode=UserErrorSourceBlobNotExist, ..."}

A pipeline's ``parameters`` is either a list of names (any value is accepted) or a mapping of
name to a ParameterSpecification (``type`` one of the spec's ParameterType values, optional
``defaultValue``); a run lists the parameters sent plus the defaults of those not sent.
``concurrency`` (at least 1) is the spec's ``Pipeline.concurrency``: at most that many runs are
InProgress at once, the rest wait Queued (at most ``queue_cap`` of them). ``queued_ms``,
``duration_ms`` and ``failure_rate`` override the settings of the same name for that pipeline;
``activities`` (name and type, run one after another) and ``failure`` (which activity fails, with
which ``code``, ``message`` and ``failure_type``) shape what ``queryActivityruns`` answers.

Top-level keys starting with ``x-`` are ignored: a place to define YAML anchors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from batchrun.emulator.wire import NAME_RULES

# the spec's ParameterSpecification.type enum (ParameterType)
PARAMETER_TYPES = ("Object", "String", "Int", "Float", "Bool", "Array", "SecureString")
# the tenant the emulator's tokens claim to come from (a foreign subscription's differs)
HOME_TENANT = "72f988bf-0000-4000-8000-00000000e1a7"


class ConfigError(Exception):
    """The config file or an option cannot be used; the message says where and why."""


def _opt(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = _opt("127.0.0.1", "address to bind")
    port: int = _opt(8765, "port to bind; 0 picks a free one")
    accept_any: bool = _opt(False, "any well-formed subscription/group/factory/pipeline exists")
    history: str | None = _opt(None, "JSON/YAML file of past runs to seed (recovery scenarios)")
    quiet: bool = _opt(False, "no per-request log lines on stderr")
    tls_cert: str | None = _opt(None, "PEM certificate chain: serve https (needs --tls-key)")
    tls_key: str | None = _opt(None, "PEM private key of --tls-cert")
    # auth
    expect_token: str | None = _opt(None, "accept only this bearer token", repr=False)
    identity_header: str = _opt(
        "batchrun-emulator", "secret X-IDENTITY-HEADER value for /msi/token", repr=False
    )
    token_ttl_s: int = _opt(3600, "lifetime of tokens from /msi/token, seconds")
    identity_fail_after: int | None = _opt(
        None, "/msi/token hands out this many tokens, then drops every connection (an outage)"
    )
    home_tenant: str = _opt(HOME_TENANT, "tenant id the bearer tokens are taken to come from")
    foreign_tenant_subscriptions: str = _opt(
        "", "comma-separated subscription ids of another tenant: every request to them is 401"
    )
    # ARM throttling
    write_burst: int = _opt(200, "per-subscription write bucket size")
    write_refill: float = _opt(10.0, "write tokens refilled per second")
    read_burst: int = _opt(250, "per-subscription read bucket size")
    read_refill: float = _opt(25.0, "read tokens refilled per second")
    hourly: bool = _opt(False, "sovereign-cloud model: fixed budgets per one-hour window")
    hourly_writes: int = _opt(1200, "writes per hour window with --hourly")
    hourly_reads: int = _opt(12000, "reads per hour window with --hourly")
    global_bucket_per_subscription: bool = _opt(
        True,
        "the global (all-principals) buckets are per subscription, as in ARM; off: one global "
        "write bucket for the whole emulator (an older habit)",
    )
    # run lifecycle
    run_queued_ms: int = _opt(1000, "time a new run stays Queued")
    run_duration_ms: int = _opt(5000, "time a run stays InProgress")
    run_failure_rate: float = _opt(0.0, "probability that a run ends Failed")
    cancel_ms: int = _opt(1000, "time a run stays Canceling after a cancel")
    visibility_delay_ms: int = _opt(0, "a new run is invisible to reads for this long")
    queue_cap: int = _opt(100, "Queued runs a pipeline with a concurrency value may hold")
    queue_refusal_status: int = _opt(400, "HTTP status of a createRun refused by a full queue")
    queue_refusal_code: str = _opt("BadRequest", "CloudError code of that refusal")
    queue_refusal_retry_after_s: int = _opt(0, "Retry-After on that refusal; 0 sends none")
    rerun_invoked_by: str = _opt(
        "Manual",
        "invokedBy name and type of a run created with referencePipelineRunId (ADF does not "
        "document it)",
    )
    # ADF's answers
    single_run_group_filter: bool = _opt(
        True, "refuse a RunGroupId filter with more than one value, as ADF does"
    )
    correlation_from_client_request_id: bool = _opt(
        False,
        "without x-ms-correlation-request-id, reuse x-ms-client-request-id as the correlation "
        "id; off: ARM's own (a new id), as real ARM does",
    )
    # faults
    seed: int = _opt(0, "seed for faults, latency and run outcomes")
    latency_ms: float = _opt(0.0, "mean added latency (createRun; reads with --faults-on-reads)")
    jitter_ms: float = _opt(0.0, "latency varies uniformly by up to ± this")
    fail_500: float = _opt(0.0, "probability of a 500 before the run is created")
    fail_503: float = _opt(0.0, "probability of a 503 before the run is created")
    fail_503_retry_after_s: int = _opt(1, "Retry-After on injected 503s; 0 sends none")
    throttle_retry_after: str = _opt(
        "", "Retry-After of every 429, seconds or an HTTP-date, instead of the bucket's wait"
    )
    fail_502_html: float = _opt(0.0, "probability of a gateway 502 with an HTML body")
    fail_500_after_create: float = _opt(0.0, "probability of a 500 after the run is created")
    drop_after_create: float = _opt(0.0, "probability of closing the connection after creating")
    garbled_after_create: float = _opt(
        0.0, "probability of a 200 with an HTML body, no runId, after creating"
    )
    stall_after_create: float = _opt(0.0, "probability of answering only after --stall-ms")
    stall_ms: int = _opt(30000, "delay of a stalled answer")
    faults_on_reads: bool = _opt(False, "also inject faults and latency into reads")

    def problems(self) -> list[str]:
        found: list[str] = []
        for name in (
            "fail_500",
            "fail_503",
            "fail_502_html",
            "fail_500_after_create",
            "drop_after_create",
            "garbled_after_create",
            "stall_after_create",
            "run_failure_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                found.append(f"{name} must be a probability between 0 and 1, not {value}")
        if self.fault_total() > 1.0:
            found.append(f"the fault probabilities add up to {self.fault_total():g}; at most 1")
        found.extend(
            f"{name} must be at least 1"
            for name in ("write_burst", "read_burst", "hourly_writes", "hourly_reads")
            if getattr(self, name) < 1
        )
        found.extend(
            f"{name} must be above 0 (tokens per second)"
            for name in ("write_refill", "read_refill")
            if getattr(self, name) <= 0
        )
        non_negative = (
            "token_ttl_s",
            "run_queued_ms",
            "run_duration_ms",
            "cancel_ms",
            "visibility_delay_ms",
            "latency_ms",
            "jitter_ms",
            "stall_ms",
            "fail_503_retry_after_s",
            "queue_refusal_retry_after_s",
        )
        found.extend(
            f"{name} must not be negative" for name in non_negative if getattr(self, name) < 0
        )
        if self.identity_fail_after is not None and self.identity_fail_after < 0:
            found.append("identity_fail_after must not be negative")
        if self.queue_cap < 0:
            found.append("queue_cap must not be negative")
        if not 400 <= self.queue_refusal_status <= 599:
            found.append(
                f"queue_refusal_status must be an HTTP error status (400-599), "
                f"not {self.queue_refusal_status}"
            )
        if not self.queue_refusal_code:
            found.append("queue_refusal_code must not be empty")
        if not 0 <= self.port <= 65535:
            found.append(f"port must be 0-65535, not {self.port}")
        if (self.tls_cert is None) != (self.tls_key is None):
            found.append("tls_cert and tls_key go together: give both to serve https, or neither")
        return found

    def fault_total(self) -> float:
        return (
            self.fail_500
            + self.fail_503
            + self.fail_502_html
            + self.fail_500_after_create
            + self.drop_after_create
            + self.garbled_after_create
            + self.stall_after_create
        )

    def foreign_subscriptions(self) -> frozenset[str]:
        """The casefolded ids of ``foreign_tenant_subscriptions``."""
        items = self.foreign_tenant_subscriptions.split(",")
        return frozenset(item.strip().casefold() for item in items if item.strip())


SETTING_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}
# str settings that hold a comma-separated list; a config file may give a YAML list
_LIST_SETTINGS = {"foreign_tenant_subscriptions"}


def setting_type(name: str) -> type:
    """The Python type of a setting (``str | None`` counts as ``str``)."""
    annotation = str(SETTING_FIELDS[name].type)
    return _TYPES[annotation.split(" | ")[0]]


def coerce_setting(name: str, value: Any, *, where: str) -> Any:
    if name not in SETTING_FIELDS:
        raise ConfigError(f"{where}: unknown setting '{name}' (known: {', '.join(SETTING_FIELDS)})")
    kind = setting_type(name)
    if name in _LIST_SETTINGS and isinstance(value, list):
        # YAML reads long digit runs as ints; subscription ids are names
        value = ",".join(str(item) for item in value)
    if value is None and "None" in str(SETTING_FIELDS[name].type):
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: '{name}' must be {kind.__name__}, not {value!r}")
    return value


def build_settings(file_values: Mapping[str, Any], cli_values: Mapping[str, Any]) -> Settings:
    """Defaults, then the config file's ``settings:``, then the command line."""
    settings = Settings(**{**file_values, **cli_values})
    problems = settings.problems()
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    return settings


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    """The spec's ParameterSpecification: a type, and a default when one is declared."""

    type: str = "String"
    has_default: bool = False
    default: Any = None


@dataclass(frozen=True, slots=True)
class ActivitySpec:
    """One activity of a pipeline, as ``queryActivityruns`` names it."""

    name: str
    type: str = "Copy"


@dataclass(frozen=True, slots=True)
class ActivityFailure:
    """How a failed run of a pipeline fails: which activity, and the error it reports.

    ``None`` fields take the emulator's default (the last activity; a Copy's missing source blob).
    """

    activity: str | None = None
    code: str | None = None
    message: str | None = None
    failure_type: str | None = None


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    name: str
    # None: parameters are not declared, any name is accepted
    parameters: frozenset[str] | None = None
    # types and defaults by name; a name declared only in the list form is a String
    definitions: Mapping[str, ParameterSpec] = field(default_factory=dict)
    concurrency: int | None = None
    queued_ms: int | None = None  # None: the settings' run_queued_ms
    duration_ms: int | None = None  # None: the settings' run_duration_ms
    failure_rate: float | None = None  # None: the settings' run_failure_rate
    activities: tuple[ActivitySpec, ...] = ()  # empty: a Lookup then a Copy
    failure: ActivityFailure | None = None  # None: the last activity fails, a missing blob

    def definition(self, name: str) -> ParameterSpec:
        return self.definitions.get(name) or ParameterSpec()

    def defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.definitions.items() if p.has_default}


@dataclass(frozen=True, slots=True)
class FactorySpec:
    subscription: str
    resource_group: str
    name: str
    pipelines: Mapping[str, PipelineSpec] = field(default_factory=dict)  # keyed by casefold()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subscription.casefold(), self.resource_group.casefold(), self.name.casefold())

    @property
    def path(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.DataFactory/factories/{self.name}"
        )


@dataclass(frozen=True, slots=True)
class Topology:
    """What exists. ARM names are case-insensitive, so every key is casefolded."""

    factories: Mapping[tuple[str, str, str], FactorySpec] = field(default_factory=dict)
    accept_any: bool = False

    def subscription_known(self, subscription: str) -> bool:
        wanted = subscription.casefold()
        return self.accept_any or any(key[0] == wanted for key in self.factories)

    def resource_group_known(self, subscription: str, resource_group: str) -> bool:
        wanted = (subscription.casefold(), resource_group.casefold())
        return self.accept_any or any(key[:2] == wanted for key in self.factories)

    def factory(self, subscription: str, resource_group: str, name: str) -> FactorySpec | None:
        key = (subscription.casefold(), resource_group.casefold(), name.casefold())
        found = self.factories.get(key)
        if found is None and self.accept_any:
            return FactorySpec(subscription, resource_group, name)
        return found

    def pipeline(self, factory: FactorySpec, name: str) -> PipelineSpec | None:
        found = factory.pipelines.get(name.casefold())
        if found is None and self.accept_any:
            return PipelineSpec(name)
        return found


@dataclass(frozen=True, slots=True)
class ConfigFile:
    topology: Topology
    settings: Mapping[str, Any]


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _only(mapping: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )


def _check_name(kind: str, value: str, where: str) -> None:
    pattern, shortest, longest = NAME_RULES[kind]
    if not shortest <= len(value) <= longest or pattern.match(value) is None:
        raise ConfigError(
            f"{where}: '{value}' is not a valid {kind} "
            f"({shortest}-{longest} characters matching {pattern.pattern})"
        )


def _parameter(value: Any, where: str) -> ParameterSpec:
    spec = _mapping(value, where)
    _only(spec, {"type", "defaultValue"}, where)
    kind = spec.get("type")
    canonical = {t.casefold(): t for t in PARAMETER_TYPES}.get(str(kind).casefold())
    if canonical is None:
        raise ConfigError(
            f"{where}.type: expected one of {', '.join(PARAMETER_TYPES)}, got {kind!r}"
        )
    return ParameterSpec(canonical, "defaultValue" in spec, spec.get("defaultValue"))


def _parameters(value: Any, where: str) -> tuple[frozenset[str], dict[str, ParameterSpec]]:
    """The list form (names only) or the mapping form (name: {type, defaultValue})."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value), {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: expected a list of parameter names or a mapping of name to "
            "{type, defaultValue}"
        )
    definitions = {str(name): _parameter(body, f"{where}.{name}") for name, body in value.items()}
    return frozenset(definitions), definitions


def _concurrency(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected an integer of at least 1 (the spec's minimum)")
    return value


_PIPELINE_KEYS = {
    "parameters",
    "concurrency",
    "queued_ms",
    "duration_ms",
    "failure_rate",
    "activities",
    "failure",
}


def _millis(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected a whole number of milliseconds, 0 or more")
    return value


def _rate(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{where}: expected a probability between 0 and 1, got {value!r}")
    return float(value)


def _activities(value: Any, where: str) -> tuple[ActivitySpec, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of {{name, type}}")
    found: list[ActivitySpec] = []
    for index, item in enumerate(value):
        here = f"{where}[{index}]"
        spec = _mapping(item, here)
        _only(spec, {"name", "type"}, here)
        name, kind = spec.get("name"), spec.get("type", "Copy")
        if not isinstance(name, str) or not name or not isinstance(kind, str) or not kind:
            raise ConfigError(f"{here}: name and type must be non-empty strings")
        found.append(ActivitySpec(name, kind))
    if len({a.name.casefold() for a in found}) != len(found):
        raise ConfigError(f"{where}: activity names must be unique")
    return tuple(found)


def _failure(value: Any, where: str) -> ActivityFailure | None:
    if value is None:
        return None
    spec = _mapping(value, where)
    _only(spec, {"activity", "code", "message", "failure_type"}, where)
    texts = {key: spec.get(key) for key in ("activity", "code", "message", "failure_type")}
    for key, text in texts.items():
        if text is not None and not isinstance(text, str):
            raise ConfigError(f'{where}.{key}: expected a string (quote codes: "2200")')
    return ActivityFailure(**texts)


def _pipelines(value: Any, where: str) -> dict[str, PipelineSpec]:
    listed = isinstance(value, list)
    entries = dict.fromkeys(value) if listed else _mapping(value, where)
    pipelines: dict[str, PipelineSpec] = {}
    for name, body in entries.items():
        here = f"{where}.{name}"
        name = str(name)
        _check_name("pipelineName", name, here)
        spec = _mapping(body, here)
        _only(spec, _PIPELINE_KEYS, here)
        declared = spec.get("parameters")
        names, definitions = (
            (None, {}) if declared is None else _parameters(declared, f"{here}.parameters")
        )
        if name.casefold() in pipelines:
            raise ConfigError(f"{here}: pipeline declared twice (names are case-insensitive)")
        pipelines[name.casefold()] = PipelineSpec(
            name,
            names,
            definitions,
            _concurrency(spec.get("concurrency"), f"{here}.concurrency"),
            queued_ms=_millis(spec.get("queued_ms"), f"{here}.queued_ms"),
            duration_ms=_millis(spec.get("duration_ms"), f"{here}.duration_ms"),
            failure_rate=_rate(spec.get("failure_rate"), f"{here}.failure_rate"),
            activities=_activities(spec.get("activities"), f"{here}.activities"),
            failure=_failure(spec.get("failure"), f"{here}.failure"),
        )
    return pipelines


def parse_config(document: Any, *, source: str) -> ConfigFile:
    root = _mapping(document, source)
    # x-… keys are free, a place for YAML anchors (as in docker compose files)
    extensions = {key for key in root if str(key).startswith("x-")}
    _only(root, {"settings", "subscriptions", "accept_any", *extensions}, source)
    settings = {
        str(name): coerce_setting(str(name), value, where=f"{source}: settings")
        for name, value in _mapping(root.get("settings"), f"{source}: settings").items()
    }
    if "accept_any" in root:
        settings["accept_any"] = coerce_setting("accept_any", root["accept_any"], where=source)
    factories: dict[tuple[str, str, str], FactorySpec] = {}
    subscriptions = _mapping(root.get("subscriptions"), f"{source}: subscriptions")
    for subscription, sub_body in subscriptions.items():
        sub_where = f"{source}: subscriptions.{subscription}"
        sub_map = _mapping(sub_body, sub_where)
        _only(sub_map, {"resource_groups"}, sub_where)
        groups = _mapping(sub_map.get("resource_groups"), f"{sub_where}.resource_groups")
        for group, group_body in groups.items():
            group_where = f"{sub_where}.resource_groups.{group}"
            _check_name("resourceGroupName", str(group), group_where)
            group_map = _mapping(group_body, group_where)
            _only(group_map, {"factories"}, group_where)
            for name, body in _mapping(group_map.get("factories"), group_where).items():
                where = f"{group_where}.factories.{name}"
                _check_name("factoryName", str(name), where)
                factory_map = _mapping(body, where)
                _only(factory_map, {"pipelines"}, where)
                factory = FactorySpec(
                    str(subscription),
                    str(group),
                    str(name),
                    _pipelines(factory_map.get("pipelines"), f"{where}.pipelines"),
                )
                if factory.key in factories:
                    raise ConfigError(f"{where}: factory declared twice")
                factories[factory.key] = factory
    return ConfigFile(Topology(factories), settings)


# `batchrun emulator` without --config or --accept-any serves this: the factories, pipelines and
# parameters of configs/demo.yaml, so the README's commands work against it as they are written
_DEMO_PARAMETERS = {
    "partition": {"type": "Int"},
    "run_date": {"type": "String"},
    "region": {"type": "String", "defaultValue": "eu"},
}
_DEMO_PIPELINES = {
    **{
        name: {"parameters": _DEMO_PARAMETERS}
        for name in ("LoadOrders", "LoadCustomers", "LoadInvoices", "BuildMarts")
    },
    # ADF's queue: at most 4 InProgress, 100 Queued
    "ExportReports": {"parameters": _DEMO_PARAMETERS, "concurrency": 4},
}
DEMO_DOCUMENT: dict[str, Any] = {
    "subscriptions": {
        "11111111-1111-1111-1111-111111111111": {
            "resource_groups": {
                "rg-data": {
                    "factories": {
                        "sales-eu": {"pipelines": _DEMO_PIPELINES},
                        "sales-us": {"pipelines": _DEMO_PIPELINES},
                    }
                }
            }
        },
        "22222222-2222-2222-2222-222222222222": {
            "resource_groups": {
                "rg-data": {"factories": {"finance-core": {"pipelines": _DEMO_PIPELINES}}}
            }
        },
    }
}


def demo_topology() -> Topology:
    """What ``batchrun emulator`` serves when given no topology."""
    return parse_config(DEMO_DOCUMENT, source="the demo topology").topology


def describe_topology(topology: Topology) -> str:
    """ "3 factories (sales-eu, …) in 2 subscriptions, 15 pipelines": for the first log line."""
    factories = sorted(topology.factories.values(), key=lambda f: f.key)
    subscriptions = {factory.key[0] for factory in factories}
    pipelines = sum(len(factory.pipelines) for factory in factories)
    names = ", ".join(factory.name for factory in factories)
    return (
        f"{len(factories)} factories ({names}) in {len(subscriptions)} subscriptions, "
        f"{pipelines} pipelines"
    )


def load_config(path: Path) -> ConfigFile:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    config = parse_config(document, source=str(path))
    # files named in the config are relative to the config file
    relative = {
        name: str(path.parent / value)
        for name in ("history", "tls_cert", "tls_key")
        if (value := config.settings.get(name)) is not None and not Path(value).is_absolute()
    }
    if relative:
        config = ConfigFile(config.topology, {**config.settings, **relative})
    return config
