"""``batchrun run``: the runner, the scheduler, reconciliation, the journal, progress."""
