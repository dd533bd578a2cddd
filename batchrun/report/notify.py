"""Telling people: one message per batch, when it ends, through ``apprise`` (Teams, Slack, email,
webhooks and a hundred more, from one URL each).

A notifier URL carries its secret (a webhook token, a password), so it is never printed, logged
or written to the report: where batchrun must name one it names its scheme only
(:func:`masked`). A message that cannot be delivered is a warning, never a different exit code:
the report is the record, the message only points at it.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchrun.report.reader import read_records
from batchrun.report.summary import summarize
from batchrun.text import shorten

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "EXAMPLES",
    "Ending",
    "Failures",
    "Message",
    "compose",
    "masked",
    "read_failures",
    "send",
]

# examples per error code: enough to see a pattern, few enough for a chat message
EXAMPLES = 5
_MESSAGE_CHARS = 200
_SPLIT = re.compile(r"[\s,]+")


def notify_urls(given: Sequence[str] | None, environ: Mapping[str, str]) -> list[str]:
    """``--notify`` URLs, else ``$BATCHRUN_NOTIFY`` (separated by spaces or commas)."""
    if given:
        return list(given)
    return [url for url in _SPLIT.split(environ.get("BATCHRUN_NOTIFY", "")) if url]


def masked(url: str) -> str:
    """The scheme of ``url``, and nothing of its secret: ``slack://…``."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://…" if sep and scheme.isalnum() else "a notifier URL"


@dataclass(frozen=True, slots=True)
class Example:
    id: str
    factory: str
    pipeline: str
    message: str
    monitor_url: str


@dataclass(frozen=True, slots=True)
class Failures:
    """Failed runs grouped by error code (a trigger's CloudError code, or the failed activity's
    code in ADF), with up to :data:`EXAMPLES` of each."""

    counts: Mapping[str, int]
    examples: Mapping[str, tuple[Example, ...]]


def read_failures(paths: Sequence[Path]) -> Failures:
    last: dict[str, dict[str, Any]] = {}
    for path in paths:
        for record in read_records(path):
            if isinstance(record.get("id"), str):
                last.pop(record["id"], None)
                last[record["id"]] = record
    counts: dict[str, int] = {}
    examples: dict[str, list[Example]] = {}
    for run_id, record in last.items():
        problem = _problem(record)
        if problem is None:
            continue
        code = str(problem.get("code") or "unknown")
        counts[code] = counts.get(code, 0) + 1
        shown = examples.setdefault(code, [])
        if len(shown) < EXAMPLES:
            shown.append(
                Example(
                    id=run_id,
                    factory=str(record.get("factory", "")),
                    pipeline=str(record.get("pipeline", "")),
                    message=shorten(str(problem.get("message") or ""), _MESSAGE_CHARS),
                    monitor_url=str(record.get("monitor_url") or ""),
                )
            )
    ordered = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return Failures(ordered, {code: tuple(examples[code]) for code in ordered})


def _problem(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if record.get("status") == "failed":
        error = record.get("error")
        return error if isinstance(error, dict) else {}
    outcome = record.get("outcome")
    if isinstance(outcome, str) and outcome != "Succeeded":
        failure = record.get("failure")
        return failure if isinstance(failure, dict) else {"code": outcome}
    return None


@dataclass(frozen=True, slots=True)
class Ending:
    """How the batch ended, as the CLI knows it: its exit code and what it said about it."""

    name: str  # the manifest's (or the watched report's) file name
    code: int
    verdict: str
    report: Path | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    failed: bool


def compose(ending: Ending) -> Message:
    title = f"batchrun {ending.name}: {ending.verdict}"
    lines: list[str] = []
    if ending.detail:
        lines += [ending.detail, ""]
    report = ending.report
    if report is None or not report.exists() or report.stat().st_size == 0:
        lines.append("No report line was written.")
        return Message(title, "\n".join(lines), ending.code != 0)
    summary = summarize([report])
    counts = ", ".join(f"{n} {status}" for status, n in summary.statuses.items() if n)
    lines.append(f"{summary.runs} runs: {counts or 'none'}")
    if summary.outcomes is not None:
        ended = ", ".join(f"{n} {name}" for name, n in summary.outcomes.outcomes.items() if n)
        lines.append(f"in ADF: {ended}")
    failures = read_failures([report])
    for code, count in failures.counts.items():
        lines += ["", f"{code}: {count} run(s)"]
        for example in failures.examples[code]:
            link = f" {example.monitor_url}" if example.monitor_url else ""
            lines.append(
                f"- {example.id} ({example.factory}/{example.pipeline}): {example.message}{link}"
            )
    lines += ["", f"report: {report}"]
    return Message(title, "\n".join(lines), ending.code != 0)


def send(urls: Sequence[str], message: Message) -> list[str]:
    """Send ``message`` to every URL; the warnings to print (masked), empty when all went."""
    # here, not at the top: only a batch that notifies pays for apprise's plugins
    import apprise

    warnings = []
    with _quiet_apprise():
        for url in urls:
            notifier = apprise.Apprise()
            if not notifier.add(url):
                warnings.append(
                    f"{masked(url)} is not a notifier URL apprise knows; nothing was sent "
                    "there (see https://github.com/caronc/apprise/wiki for the forms)"
                )
                continue
            delivered = notifier.notify(
                title=message.title,
                body=message.body,
                body_format=apprise.NotifyFormat.TEXT,
                notify_type=apprise.NotifyType.FAILURE
                if message.failed
                else apprise.NotifyType.SUCCESS,
            )
            if not delivered:
                warnings.append(
                    f"the notification to {masked(url)} could not be delivered; "
                    "the report has everything it would have said"
                )
    return warnings


@contextmanager
def _quiet_apprise() -> Iterator[None]:
    # apprise logs its own failures, and they can name the URL's host, user or token: the
    # warnings batchrun prints (masked) say what went wrong instead
    logger = logging.getLogger("apprise")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
