"""``batchrun validate --online``: what tonight's runs depend on in ADF, read before the night.

With the night's identity and endpoint it reads, for the runs of the manifests:

* every distinct pipeline once (``GET …/pipelines/{name}``): it exists, so does its factory
  (ARM's 404 says which is missing), every parameter sent is declared and every parameter
  declared without a default is sent (:mod:`batchrun.run.declared`), and a pipeline with
  ``concurrency`` is not sent more runs than ADF holds;
* every distinct reference run of a recovery entry (``GET …/pipelineruns/{id}``): it exists, and
  is a run of the entry's pipeline.

The first pipeline of each factory is read first; when ARM says the factory (or its resource
group or subscription) does not exist, the rest of that factory is not read. Reads are paced per
subscription on the reads budget and retried by the project's policy; at most ``concurrency``
are in flight. A 401 stops the reads (``auth_error``); every other answer becomes a finding at
the manifest entry it concerns, with what ADF said.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from batchrun.arm.pacing import Pacers, Sleep
from batchrun.arm.retry import RetrySettings, retrying
from batchrun.errors import ApiError, AuthError, TransportError
from batchrun.model import FactoryRef, RunSpec
from batchrun.run.declared import Definition, parameter_problems, queue_problem

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from batchrun.arm.client import PipelineResponse

__all__ = ["Finding", "PipelineReader", "Preflight", "PreflightSettings", "preflight"]

T = TypeVar("T")
_FACTORY_GONE = frozenset({"SubscriptionNotFound", "ResourceGroupNotFound"})


class PipelineReader(Protocol):
    """The reads a preflight makes (:class:`~batchrun.arm.client.AdfClient` is one)."""

    async def get_pipeline(
        self, *, subscription: str, resource_group: str, factory: str, pipeline: str
    ) -> PipelineResponse: ...

    async def get_pipeline_run(
        self, *, subscription: str, resource_group: str, factory: str, run_id: str
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ADF says is wrong with a manifest entry (``source`` is its FILE:LINE:COL)."""

    source: str
    message: str
    runs: int = 1

    def __str__(self) -> str:
        counted = f" ({self.runs} runs)" if self.runs > 1 else ""
        return f"{self.source}: {self.message}{counted}"

    def to_dict(self) -> dict[str, Any]:
        file, line, column = _position(self.source)
        return {
            "file": file,
            "line": line,
            "column": column,
            "message": self.message,
            "runs": self.runs,
        }


@dataclass(frozen=True, slots=True)
class PreflightSettings:
    retry: RetrySettings
    concurrency: int  # reads in flight at once


@dataclass(frozen=True, slots=True)
class Preflight:
    findings: tuple[Finding, ...]
    factories: int
    pipelines: int
    reference_runs: int
    reads: int
    # ARM answered 401: the reads stopped, and the findings are not the whole story
    auth_error: ApiError | None = None


class _Rejected(Exception):
    """ARM answered 401: the token is bad for every read, so none is worth sending."""


async def preflight(
    reader: PipelineReader,
    runs: Iterable[RunSpec],
    *,
    settings: PreflightSettings,
    pacers: Pacers | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Preflight:
    """Read what ``runs`` depend on and say what is wrong; raises AuthError when no token."""
    check = _Check(reader, settings, pacers or Pacers(sleep=sleep), sleep)
    try:
        await check.all(list(runs))
    except* _Rejected:
        pass
    return check.result()


class _Check:
    def __init__(
        self, reader: PipelineReader, settings: PreflightSettings, pacers: Pacers, sleep: Sleep
    ) -> None:
        self._reader = reader
        self._settings = settings
        self._pacers = pacers
        self._sleep = sleep
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._findings: dict[tuple[str, str], int] = {}
        # the factories ARM says do not exist, and what their entries are told
        self._gone: dict[tuple[str, str, str], str] = {}
        self._reads = 0
        self._auth_error: ApiError | None = None
        self._counts = (0, 0, 0)

    async def all(self, runs: list[RunSpec]) -> None:
        pipelines: dict[tuple[tuple[str, str, str], str], list[RunSpec]] = {}
        references: dict[tuple[tuple[str, str, str], str], list[RunSpec]] = {}
        for spec in runs:
            key = _factory(spec).key
            pipelines.setdefault((key, spec.pipeline.casefold()), []).append(spec)
            if spec.reference_run_id is not None:
                references.setdefault((key, spec.reference_run_id.lower()), []).append(spec)
        firsts: dict[tuple[str, str, str], list[RunSpec]] = {}
        for (factory, _), specs in pipelines.items():
            firsts.setdefault(factory, specs)
        self._counts = (len(firsts), len(pipelines), len(references))
        # a factory's first pipeline says whether the factory exists: the rest wait for it
        await self._each([partial(self._pipeline, specs) for specs in firsts.values()])
        later = []
        for (factory, _), specs in pipelines.items():
            if factory in self._gone:
                self._found(specs, self._gone[factory])  # the first's, or read again: the same
            elif specs is not firsts[factory]:
                later.append(partial(self._pipeline, specs))
        later += [
            partial(self._reference, specs)
            for (factory, _), specs in references.items()
            if factory not in self._gone
        ]
        await self._each(later)

    def result(self) -> Preflight:
        findings = [Finding(*key, runs) for key, runs in self._findings.items()]
        findings.sort(key=lambda finding: (_position(finding.source), finding.message))
        factories, pipelines, references = self._counts
        return Preflight(
            findings=tuple(findings),
            factories=factories,
            pipelines=pipelines,
            reference_runs=references,
            reads=self._reads,
            auth_error=self._auth_error,
        )

    async def _each(self, reads: Sequence[Callable[[], Awaitable[None]]]) -> None:
        async def bounded(read: Callable[[], Awaitable[None]]) -> None:
            try:
                await read()
            finally:
                self._slots.release()

        async with asyncio.TaskGroup() as tasks:
            for read in reads:
                await self._slots.acquire()  # before the task: tasks never pile up
                tasks.create_task(bounded(read))

    def _found(self, specs: Iterable[RunSpec], message: str) -> None:
        for spec in specs:
            key = (spec.source, message)
            self._findings[key] = self._findings.get(key, 0) + 1

    async def _pipeline(self, specs: list[RunSpec]) -> None:
        first = specs[0]
        factory = _factory(first)
        try:
            answer = await self._read(
                factory.subscription,
                lambda: self._reader.get_pipeline(
                    subscription=factory.subscription,
                    resource_group=factory.resource_group,
                    factory=factory.factory,
                    pipeline=first.pipeline,
                ),
                lambda answer: answer.limits.remaining_reads,
            )
        except ApiError as exc:
            if _factory_gone(exc):
                self._gone[factory.key] = f"factory {_where(factory)} does not exist: {_said(exc)}"
            elif exc.status == 404:
                message = f"pipeline {first.pipeline} does not exist in factory {factory.factory}"
                self._found(specs, f"{message}: {_said(exc)}")
            else:
                message = f"could not read pipeline {first.pipeline} of factory {factory.factory}"
                self._found(specs, f"{message}: {_said(exc)}")
            return
        definition = Definition.from_resource(answer.resource, asked=first.pipeline)
        for spec in specs:
            for problem in parameter_problems(spec, definition):
                self._found([spec], problem)
        queued = queue_problem(specs, definition)
        if queued is not None:
            self._found([queued[0]], queued[1])

    async def _reference(self, specs: list[RunSpec]) -> None:
        first = specs[0]
        factory, run_id = _factory(first), str(first.reference_run_id)
        try:
            run = await self._read(
                factory.subscription,
                lambda: self._reader.get_pipeline_run(
                    subscription=factory.subscription,
                    resource_group=factory.resource_group,
                    factory=factory.factory,
                    run_id=run_id,
                ),
                lambda _: None,
            )
        except ApiError as exc:
            if exc.status == 404:
                message = f"reference run {run_id} does not exist in factory {factory.factory}"
            else:
                message = f"could not read reference run {run_id} of factory {factory.factory}"
            self._found(specs, f"{message}: {_said(exc)}")
            return
        pipeline = run.get("pipelineName")
        for spec in specs:
            if isinstance(pipeline, str) and pipeline.casefold() != spec.pipeline.casefold():
                self._found(
                    [spec],
                    f"reference run {run_id} is a run of pipeline {pipeline}, not "
                    f"{spec.pipeline}: ADF reruns a run only as its own pipeline",
                )

    async def _read(
        self,
        subscription: str,
        call: Callable[[], Awaitable[T]],
        remaining: Callable[[T], int | None],
    ) -> T:
        pacer = self._pacers[subscription.casefold()]
        async for attempt in retrying(self._settings.retry, sleep=self._sleep):
            with attempt:
                await pacer.acquire()
                self._reads += 1
                try:
                    answer = await call()
                except TransportError:
                    pacer.abandoned()
                    raise
                except ApiError as exc:
                    if exc.status == 429:
                        pacer.throttled_for(exc.retry_after)
                    else:
                        pacer.completed(None)  # an answer: it spent a read
                    if exc.status == 401:
                        self._auth_error = self._auth_error or exc
                        raise _Rejected from exc
                    raise
                except AuthError:
                    pacer.abandoned()
                    raise
                pacer.completed(remaining(answer))
                return answer
        raise AssertionError("retrying() reraises")  # pragma: no cover


def _factory(spec: RunSpec) -> FactoryRef:
    return FactoryRef(spec.subscription, spec.resource_group, spec.factory)


def _factory_gone(exc: ApiError) -> bool:
    """Whether a 404 for a pipeline says its factory (or what holds it) is missing: ARM's own
    codes for the subscription and group, or a ResourceNotFound naming the factory."""
    if exc.status != 404:
        return False
    if exc.code in _FACTORY_GONE:
        return True
    message = exc.message.lower()
    return exc.code == "ResourceNotFound" and "factories/" in message and "pipelines" not in message


def _where(factory: FactoryRef) -> str:
    return (
        f"{factory.factory} (subscription {factory.subscription}, "
        f"resource group {factory.resource_group})"
    )


def _said(exc: ApiError) -> str:
    status = f"{exc.status} " if exc.status is not None else ""
    return f"ADF said {status}{exc.code}: {exc.message}"


def _position(source: str) -> tuple[str, int, int]:
    file, _, rest = source.rpartition(":")
    file, _, line = file.rpartition(":")
    try:
        return file, int(line), int(rest)
    except ValueError:
        return source, 0, 0
