from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from batchrun.errors import UsageError
from batchrun.manifest.shard import Shard, parse_shard, select

IDS = [f"run-{n:04d}" for n in range(1000)]


@dataclass(frozen=True)
class Run:
    id: str


@pytest.mark.parametrize("count", range(1, 8))
def test_every_run_lands_in_exactly_one_shard(count: int) -> None:
    shards = [Shard(index, count) for index in range(1, count + 1)]
    for run_id in IDS:
        assert sum(shard.selects(run_id) for shard in shards) == 1, run_id


@pytest.mark.parametrize("count", range(2, 8))
def test_shards_are_roughly_balanced(count: int) -> None:
    expected = len(IDS) / count
    for index in range(1, count + 1):
        size = len(select([Run(i) for i in IDS], Shard(index, count)))
        assert 0.75 * expected <= size <= 1.25 * expected, (index, count, size)


# Computed once with BLAKE2b; a change here moves runs between shards of a running rollout.
PINNED = {
    ("sales-eu", 4): 4,
    ("sales-us", 4): 1,
    ("run-0001", 4): 4,
    ("LoadOrders-2026-11-26", 4): 3,
    ("ünïcode-run", 4): 1,
    ("sales-eu", 7): 2,
    ("LoadOrders-2026-11-26", 7): 7,
    ("ünïcode-run", 7): 3,
}


@pytest.mark.parametrize(("run_id", "count"), sorted(PINNED))
def test_assignment_is_pinned(run_id: str, count: int) -> None:
    assert [k for k in range(1, count + 1) if Shard(k, count).selects(run_id)] == [
        PINNED[run_id, count]
    ]


@pytest.mark.e2e
def test_assignment_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import json, sys\n"
        "from batchrun.manifest.shard import Shard\n"
        "ids = json.load(sys.stdin)\n"
        "print(json.dumps([next(k for k in range(1, 6) if Shard(k, 5).selects(i)) for i in ids]))\n"
    )
    sample = IDS[:200]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(sample),
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    here = [next(k for k in range(1, 6) if Shard(k, 5).selects(i)) for i in sample]
    assert json.loads(out) == here


def test_select_keeps_manifest_order() -> None:
    runs = [Run(i) for i in IDS[:50]]
    chosen = select(runs, Shard(2, 3))
    assert chosen == [run for run in runs if run in chosen]
    assert chosen and len(chosen) < len(runs)


def test_one_shard_of_one_selects_everything() -> None:
    assert select([Run(i) for i in IDS], parse_shard("1/1")) == [Run(i) for i in IDS]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/4", Shard(1, 4)), ("4/4", Shard(4, 4)), (" 2 / 8 ", Shard(2, 8)), ("1/1", Shard(1, 1))],
)
def test_parse_shard_accepts_k_of_n(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected
    assert str(parse_shard(text)) == f"{expected.index}/{expected.count}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3/2", "--shard 3/2: K must be between 1 and N (1..2)"),
        ("0/4", "--shard 0/4: K must be between 1 and N (1..4)"),
        ("1/0", "--shard 1/0: N must be at least 1"),
        ("2", "--shard 2: expected K/N"),
        ("a/b", "--shard a/b: expected K/N"),
        ("-1/4", "--shard -1/4: expected K/N"),
        ("1/4/2", "--shard 1/4/2: expected K/N"),
        ("", "--shard : expected K/N"),
    ],
)
def test_parse_shard_rejects_with_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard(text)
    assert str(caught.value).startswith(message)


def test_a_malformed_shard_is_answered_with_an_example() -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard("half")
    assert str(caught.value).endswith("(e.g. --shard 2/4 for the second of four slices)")


def test_shard_refuses_to_be_built_out_of_range() -> None:
    with pytest.raises(ValueError, match="1 <= K <= N"):
        Shard(0, 3)
