"""Claims: a runId claimed is found again, however many were claimed since; others are not."""

from __future__ import annotations

import uuid

from batchrun.run.claims import Claims
from batchrun.run.sharedreads import claim_key


def test_every_claimed_run_id_is_found_across_chunks() -> None:
    claims = Claims()
    run_ids = [str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15) % (1 << 128))) for n in range(10_000)]
    for run_id in run_ids:
        claims.add(claim_key(run_id))
    assert all(claim_key(run_id) in claims for run_id in run_ids)
    assert claim_key(run_id.upper()) in claims  # a GUID's case does not matter
    assert claim_key(str(uuid.UUID(int=12345))) not in claims


def test_run_ids_sharing_their_high_word_are_told_apart() -> None:
    claims = Claims()
    high = 0xDEADBEEF << 64
    for low in range(0, 10_000, 2):  # only even low words, over several chunks
        claims.add(high | low)
    assert high | 4 in claims
    assert high | 9_998 in claims
    assert high | 5 not in claims
    assert (high + (1 << 64)) | 4 not in claims


def test_run_ids_that_are_not_guids_are_kept_as_text() -> None:
    claims = Claims()
    claims.add(claim_key("run-7"))
    assert "run-7" in claims
    assert "run-8" not in claims
    assert claim_key("00000000-0000-0000-0000-000000000000") not in claims
