"""What ``batchrun recover`` writes and prints: the recovery manifest, and the summary.

The manifest is manifest v1, so ``batchrun run`` takes it as it is, and it is meant to be read
before it is run: a header says what was searched, each entry has a comment with its run's start
time, status and message (one line), and the groups that were skipped are listed at the end.
The same plan always gives the same bytes: entries are sorted by subscription, resource group,
factory, pipeline and runStart, and nothing depends on the time it was written.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from typing import TYPE_CHECKING, Final

import yaml
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from batchrun.errors import OutputError, UsageError
from batchrun.text import counted, shorten
from batchrun.times import utc_iso

if TYPE_CHECKING:
    from pathlib import Path

    from batchrun.arm.reads import PipelineRun
    from batchrun.model import FactoryRef
    from batchrun.recover.search import Recovery, RecoveryPlan, Skip

MESSAGE_CHARS: Final = 120
_PLAIN: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.()-]*")
_RESOLVER: Final = Resolver()


def render_manifest(plan: RecoveryPlan, *, output: str) -> str:
    """The recovery manifest for ``plan`` (which must have something to recover)."""
    settings, recoveries, skipped = plan.settings, plan.recoveries, plan.skipped
    factories = len({r.factory.key for r in recoveries})
    lines = [
        "# Recovery manifest written by `batchrun recover`. Review it, delete the entries that",
        f"# must not be rerun, then: batchrun run {output}",
        f"# window: {_window(plan)}",
        f"# status: {', '.join(settings.statuses)}; pipelines: {_pipelines(plan)}",
        "# each entry reruns the latest run of a recovery group, in that group, "
        + settings.start.describe(),
        f"# {counted(len(recoveries), 'run')} to recover in {counted(factories, 'factory')}"
        + (f"; {counted(len(skipped), 'group')} skipped (listed at the end)" if skipped else ""),
        "version: 1",
        "runs:",
    ]
    for recovery in recoveries:
        lines.append("")
        lines.extend(_entry(recovery, plan))
    if skipped:
        lines += ["", "# Skipped groups: not rerun"]
        lines.extend(f"#   {_skip_line(skip)}" for skip in skipped)
    return "\n".join(lines) + "\n"


def _entry(recovery: Recovery, plan: RecoveryPlan) -> list[str]:
    reference, spec = recovery.reference, recovery.spec(plan.settings.start)
    lines = [f"  # {_describe_run(reference)}"]
    first = recovery.found[0]
    if first.run_id != reference.run_id:
        lines.append(
            f"  #   latest run of its group, rerun since the first failure in the window: "
            f"{utc_iso(first.run_start, timespec='seconds')} {first.status} (run {first.run_id})"
        )
    fields: list[tuple[str, str]] = [
        ("id", yaml_string(spec.id)),
        ("subscription", yaml_string(spec.subscription)),
        ("resource_group", yaml_string(spec.resource_group)),
        ("factory", yaml_string(spec.factory)),
        ("pipeline", yaml_string(spec.pipeline)),
        ("reference_run_id", yaml_string(reference.run_id)),
        ("is_recovery", "true"),
    ]
    if spec.start_from_failure:
        fields.append(("start_from_failure", "true"))
    if spec.start_activity_name is not None:
        fields.append(("start_activity_name", yaml_string(spec.start_activity_name)))
    lines.append(f"  - {fields[0][0]}: {fields[0][1]}")
    lines.extend(f"    {key}: {value}" for key, value in fields[1:])
    return lines


def render_summary(plan: RecoveryPlan) -> str:
    """What was found per factory and pipeline, what was skipped and why, what failed."""
    searched = len(plan.searches)
    subscriptions = len({search.factory.subscription.casefold() for search in plan.searches})
    lines = [
        f"searched {counted(searched, 'factory')} in {counted(subscriptions, 'subscription')} "
        f"({counted(plan.queries, 'query')})",
        f"{_window(plan)}; status {', '.join(plan.settings.statuses)}; "
        f"pipelines {_pipelines(plan)}",
    ]
    rows: list[tuple[str, int, int, int, int]] = []
    for search in sorted(plan.searches, key=lambda s: s.factory.key):
        if search.error is not None or not search.found:
            continue
        runs = Counter(run.pipeline for run in search.found)
        groups = Counter(run.pipeline for run in {r.group_key: r for r in search.found}.values())
        recover = Counter(r.reference.pipeline for r in search.recoveries)
        skipped = Counter(s.run.pipeline for s in search.skipped)
        rows.append((str(search.factory), 0, 0, 0, 0))
        for pipeline in sorted(runs, key=str.casefold):
            row = (runs[pipeline], groups[pipeline], recover[pipeline], skipped[pipeline])
            rows.append((f"  {pipeline}", *row))
    if rows:
        width = max(len(row[0]) for row in rows)
        lines.append(f"{'':<{width}}  {'runs':>6}  {'groups':>6}  {'recover':>7}  {'skipped':>7}")
        for name, *numbers in rows:
            if not name.startswith("  "):
                lines.append(name)
                continue
            a, b, c, d = numbers
            lines.append(f"{name:<{width}}  {a:>6}  {b:>6}  {c:>7}  {d:>7}")
    else:
        lines.append("no runs found")
    skipped_groups = plan.skipped
    if skipped_groups:
        lines.append(f"skipped {counted(len(skipped_groups), 'group')}:")
        lines.extend(f"  {_skip_line(skip)}" for skip in skipped_groups)
    failures = plan.failures
    if failures:
        lines.append(f"could not search {counted(len(failures), 'factory')}:")
        lines.extend(f"  {search.factory}: {search.error}" for search in failures)
    return "\n".join(lines)


def check_output(path: Path, *, force: bool) -> None:
    """Refuse, before anything is searched, an output file that exists (unless ``force``)."""
    try:
        is_dir, parent_is_dir, exists = path.is_dir(), path.parent.is_dir(), path.exists()
    except OSError as exc:  # a name too long for the file system, a loop of links, ...
        raise UsageError(f"{path}: cannot be used as -o: {exc.strerror or exc}") from None
    if is_dir:
        raise UsageError(f"{path}: is a directory; give -o a file name")
    if not parent_is_dir:
        raise UsageError(f"{path}: the directory {path.parent} does not exist")
    if exists and not force:
        raise UsageError(
            f"{path}: already exists; choose another -o, or pass --force to replace it"
        )


def write_manifest(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path``: never over an existing file unless ``force``, never half."""
    data = text.encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if force:
            temporary.replace(path)
        else:
            _link_new(temporary, path, data)
    except FileExistsError:
        raise UsageError(
            f"{path}: already exists; choose another -o, or pass --force to replace it"
        ) from None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the recovery manifest: {exc.strerror}") from exc
    finally:
        # the temporary name is longer than the path's: when it could not be made, it cannot be
        # removed either, and that must not hide the error above
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def _link_new(temporary: Path, path: Path, data: bytes) -> None:
    # link(2) fails when the target exists, so a file that appeared meanwhile is never replaced
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: exclusive create instead
        with path.open("xb") as out:
            out.write(data)


def yaml_string(value: str) -> str:
    """``value`` as a YAML scalar that a manifest reads back as exactly this string.

    Plain when that is unambiguous, double-quoted otherwise; ``$`` is doubled because manifest
    strings go through ``${VAR}`` substitution.
    """
    value = value.replace("$", "$$")
    tag = _RESOLVER.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    if _PLAIN.fullmatch(value) and tag == "tag:yaml.org,2002:str":
        return value
    dumped = yaml.safe_dump(value, default_style='"', allow_unicode=True, width=1_000_000)
    return dumped.strip().removesuffix("...").strip()


def one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """``text`` on one line of printable characters, at most ``limit`` long: a YAML comment."""
    return shorten(text, limit, tidy=True)


def _describe_run(run: PipelineRun) -> str:
    message = one_line(run.message) or "(no message)"
    return f"{utc_iso(run.run_start, timespec='seconds')} {run.status}: {message}"


def _skip_line(skip: Skip) -> str:
    run = skip.run
    return (
        f"{_factory(skip.factory)} {run.pipeline} run {run.run_id} "
        f"({run.status} {utc_iso(run.run_start, timespec='seconds')}): {skip.reason}"
    )


def _factory(factory: FactoryRef) -> str:
    return str(factory)


def _window(plan: RecoveryPlan) -> str:
    window = plan.settings.window
    since = utc_iso(window.since, timespec="seconds")
    until = utc_iso(window.until, timespec="seconds")
    return f"runs started {since} .. {until} (and updated in it)"


def _pipelines(plan: RecoveryPlan) -> str:
    return ", ".join(plan.settings.pipelines) or "all"
