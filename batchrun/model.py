"""The shared nouns: a run to trigger (:class:`RunSpec`) and a factory (:class:`FactoryRef`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class RunSpec:
    id: str
    subscription: str
    resource_group: str
    factory: str
    pipeline: str
    parameters: dict[str, Any] = field(default_factory=dict)
    reference_run_id: str | None = None
    is_recovery: bool | None = None
    start_from_failure: bool | None = None
    start_activity_name: str | None = None
    # where the manifest entry is, for messages that point back at it (:attr:`source`): the
    # file, one string shared by every run of a manifest, and the line and column packed in one
    # int (:func:`position`); one "FILE:LINE:COL" text a run was ~7 MB of a 100,000-run batch
    file: str = field(default="", compare=False)
    at: int = field(default=0, compare=False)

    @property
    def source(self) -> str:
        """``FILE:LINE:COL`` of the manifest entry (1-based); empty for a run of no manifest."""
        if not self.file:
            return ""
        return f"{self.file}:{self.at >> _COLUMN_BITS}:{self.at & _COLUMN_MASK}"

    def recovery_query(self) -> dict[str, str]:
        """The createRun query parameters for the recovery fields that are set, API spelling."""
        query: dict[str, str] = {}
        if self.reference_run_id is not None:
            query["referencePipelineRunId"] = self.reference_run_id
        if self.is_recovery is not None:
            query["isRecovery"] = "true" if self.is_recovery else "false"
        if self.start_activity_name is not None:
            query["startActivityName"] = self.start_activity_name
        if self.start_from_failure is not None:
            query["startFromFailure"] = "true" if self.start_from_failure else "false"
        return query


_COLUMN_BITS: Final = 32
_COLUMN_MASK: Final = (1 << _COLUMN_BITS) - 1


def position(line: int, column: int) -> int:
    """:attr:`RunSpec.at` of a 1-based line and column."""
    return line << _COLUMN_BITS | column


# the fields of a run in RunSpec's order; the manifest's rules and fingerprint use all but
# where it was read (file, at)
RUN_FIELDS: Final = (
    "id",
    "subscription",
    "resource_group",
    "factory",
    "pipeline",
    "parameters",
    "reference_run_id",
    "is_recovery",
    "start_from_failure",
    "start_activity_name",
    "file",
    "at",
)
if RunSpec.__slots__ != RUN_FIELDS:  # pragma: no cover (a field added without run_spec_of)
    raise RuntimeError(f"run_spec_of sets {RUN_FIELDS}, RunSpec has {RunSpec.__slots__}")
(
    _set_id,
    _set_subscription,
    _set_group,
    _set_factory,
    _set_pipeline,
    _set_parameters,
    _set_reference,
    _set_recovery,
    _set_from_failure,
    _set_activity,
    _set_file,
    _set_at,
) = (getattr(RunSpec, name).__set__ for name in RUN_FIELDS)


def run_spec_of(fields: tuple[Any, ...]) -> RunSpec:
    """The :class:`RunSpec` of every field's value, in order: the same as ``RunSpec(*fields)``.

    For the manifest loader, which builds one per run: a frozen dataclass's ``__init__`` sets
    each field through ``object.__setattr__``, and setting the slots directly, one statement
    each, takes a quarter of the time (~0.3 s of a 100,000-run ``validate``).
    """
    (
        run_id,
        subscription,
        group,
        factory,
        pipeline,
        parameters,
        reference,
        recovery,
        from_failure,
        activity,
        file,
        at,
    ) = fields  # ValueError unless every field is there, as RunSpec(*fields) would fail
    spec = object.__new__(RunSpec)
    _set_id(spec, run_id)
    _set_subscription(spec, subscription)
    _set_group(spec, group)
    _set_factory(spec, factory)
    _set_pipeline(spec, pipeline)
    _set_parameters(spec, parameters)
    _set_reference(spec, reference)
    _set_recovery(spec, recovery)
    _set_from_failure(spec, from_failure)
    _set_activity(spec, activity)
    _set_file(spec, file)
    _set_at(spec, at)
    return spec


@dataclass(frozen=True, slots=True, order=True)
class FactoryRef:
    subscription: str
    resource_group: str
    factory: str

    @property
    def key(self) -> tuple[str, str, str]:
        """ARM names are case-insensitive: the identity of the factory."""
        return (
            self.subscription.casefold(),
            self.resource_group.casefold(),
            self.factory.casefold(),
        )

    def __str__(self) -> str:
        return f"{self.subscription}/{self.resource_group}/{self.factory}"
