"""What every peer process shares: its command line (``RUNS.json --endpoint URL --concurrency
N``), its fan-out (one coroutine per run under an ``asyncio.Semaphore``, timed from the first
request to the last answer) and its answer (one JSON object on stdout; exit 1 when a run failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Awaitable, Callable

Run = dict[str, Any]


def arguments(
    prog: str, description: str | None, *, runs: str, endpoint: str
) -> argparse.ArgumentParser:
    """The peer's command line; the caller adds its own options before parsing."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("runs", type=Path, help=runs)
    parser.add_argument("--endpoint", required=True, help=endpoint)
    parser.add_argument("--concurrency", type=int, default=16, help="the semaphore's size")
    return parser


def read_runs(path: Path) -> list[Run]:
    runs: list[Run] = json.loads(path.read_text(encoding="utf-8"))
    return runs


async def fan_out(
    runs: list[Run], one: Callable[[Run], Awaitable[bool]], *, concurrency: int
) -> tuple[float, list[bool]]:
    """``one`` for every run, at most ``concurrency`` at a time: the wall time, the outcomes."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(run: Run) -> bool:
        async with gate:
            return await one(run)

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(gated(run) for run in runs))
    return time.perf_counter() - started, outcomes


def tally(wall: float, outcomes: list[bool], errors: Counter[str], *, done: str) -> dict[str, Any]:
    """The peer's JSON object: ``done`` names what a good outcome did (``succeeded``, ``read``)."""
    return {
        "wall_s": wall,
        done: sum(outcomes),
        "failed": len(outcomes) - sum(outcomes),
        "errors": dict(errors),
    }


def answer(result: dict[str, Any]) -> int:
    print(json.dumps(result))
    return 0 if result["failed"] == 0 else 1
