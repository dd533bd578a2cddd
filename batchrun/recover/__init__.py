"""``batchrun recover``: find the runs to recover; write the reviewed recovery manifest."""
