"""The notification's words: grouped failures with examples, counts, the report; URLs masked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchrun.report.notify import EXAMPLES, Ending, compose, masked, notify_urls, read_failures
from tests.helpers.night import write_night

if TYPE_CHECKING:
    from pathlib import Path


def test_failures_are_grouped_by_code_with_at_most_five_examples(tmp_path: Path) -> None:
    report = write_night(tmp_path / "r.jsonl", 400)
    failures = read_failures([report])
    # n % 50 == 7 failed to trigger (throttled); n % 25 == 4 failed in ADF, by odd/even n
    assert failures.counts == {"SubscriptionRequestsThrottled": 8, "2200": 8, "UserErrorSftp": 8}
    for code, examples in failures.examples.items():
        assert len(examples) == EXAMPLES, code
    first = failures.examples["2200"][0]
    assert (first.id, first.factory, first.pipeline) == ("run-00029", "factory-1", "Load5")
    assert first.monitor_url.startswith("https://adf.azure.com/")
    assert "refused" in first.message


def test_the_message_has_title_counts_groups_and_report(tmp_path: Path) -> None:
    report = write_night(tmp_path / "r.jsonl", 100)
    message = compose(
        Ending(name="nightly.yaml", code=1, verdict="some runs failed", report=report)
    )
    assert message.title == "batchrun nightly.yaml: some runs failed"
    assert message.failed
    assert "100 runs: 98 succeeded, 2 failed" in message.body
    assert "in ADF: 94 Succeeded, 4 Failed" in message.body
    assert "SubscriptionRequestsThrottled: 2 run(s)" in message.body
    assert "- run-00004 (factory-0/Load4): run 4: the SFTP server" in message.body
    assert message.body.rstrip().endswith(f"report: {report}")


def test_an_early_end_without_a_report_says_so(tmp_path: Path) -> None:
    ending = Ending(
        name="n.yaml", code=2, verdict="stopped", report=tmp_path / "none.jsonl", detail="bad key"
    )
    message = compose(ending)
    assert message.body.startswith("bad key")
    assert "No report line was written." in message.body


def test_urls_come_from_flags_else_the_environment_and_are_masked() -> None:
    env = {"BATCHRUN_NOTIFY": "slack://a/b/c, json://u:p@h/  "}
    assert notify_urls(None, env) == ["slack://a/b/c", "json://u:p@h/"]
    assert notify_urls(["mailto://x"], env) == ["mailto://x"]
    assert notify_urls(None, {}) == []
    assert masked("msteams://team/tokenA/tokenB") == "msteams://…"
    assert "secret" not in masked("secret-without-scheme")
