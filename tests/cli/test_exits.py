"""The one map from an error to the CLI's exit code and message."""

from __future__ import annotations

import pytest

from batchrun.cli.exits import EXIT_AUTH, EXIT_USAGE, exit_for
from batchrun.errors import (
    ApiError,
    AuthError,
    BatchrunError,
    ManifestError,
    ManifestIssue,
    OutputError,
    ReportError,
    ScopeError,
    TransportError,
    UsageError,
)

ISSUES = [
    ManifestIssue("nightly.yaml", 3, 5, "runs[0].factory", "'a_b' is not a valid factory name"),
    ManifestIssue("nightly.yaml", 9, 1, "", "unknown key 'run'"),
]


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (UsageError("--shard 3/2: K must be at most N"), EXIT_USAGE,
         "batchrun: error: --shard 3/2: K must be at most N"),
        (ReportError("r.jsonl: no report to resume"), EXIT_USAGE,
         "batchrun: error: r.jsonl: no report to resume"),
        (OutputError("out.yaml: cannot write the recovery manifest: No space left on device"),
         EXIT_USAGE,
         "batchrun: error: out.yaml: cannot write the recovery manifest: No space left on device"),
        (AuthError("ManagedIdentityCredential: no endpoint"), EXIT_AUTH,
         "batchrun: authentication failed; nothing was sent:\nManagedIdentityCredential: no "
         "endpoint"),
        (ManifestError(ISSUES), EXIT_USAGE,
         "nightly.yaml:3:5: runs[0].factory: 'a_b' is not a valid factory name\n"
         "nightly.yaml:9:1: unknown key 'run'\n"
         "batchrun: 2 problem(s); nothing was sent"),
    ],
)  # fmt: skip
def test_expected_errors_map_to_their_exit_code_and_message(
    error: BatchrunError, code: int, message: str
) -> None:
    ending = exit_for(error, undone="nothing was sent")
    assert ending is not None
    assert (ending.code, ending.message) == (code, message)


def test_a_scope_error_says_nothing_was_searched_whatever_the_command() -> None:
    ending = exit_for(ScopeError(ISSUES[:1]), undone="nothing was sent")
    assert ending is not None
    assert ending.code == EXIT_USAGE
    assert ending.message == (
        "nightly.yaml:3:5: runs[0].factory: 'a_b' is not a valid factory name\n"
        "batchrun: 1 problem(s); nothing was searched"
    )


def test_the_command_says_what_was_not_done() -> None:
    ending = exit_for(AuthError("no token"), undone="nothing was searched")
    assert ending is not None
    assert ending.message.startswith("batchrun: authentication failed; nothing was searched:")


@pytest.mark.parametrize(
    "error",
    [
        ApiError(status=500, code="InternalServerError", message="boom"),
        TransportError(status=None, code="ConnectionReset", message="reset"),
        BatchrunError("a new kind nobody mapped"),
    ],
)
def test_errors_the_cli_does_not_expect_are_not_mapped(error: BatchrunError) -> None:
    # an ApiError reaching the edge is a bug: main() lets it show its traceback
    assert exit_for(error, undone="nothing was sent") is None
