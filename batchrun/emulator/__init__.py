"""A local Azure Data Factory / ARM emulator for demos, tests and benchmarks.

It speaks the wire format of the ADF REST API 2018-06-01 (createRun, queryPipelineRuns, get,
cancel, get a pipeline) with ARM's throttling headers, plus a managed-identity token endpoint,
seeded fault injection and ``/_emulator/stats``. It shares nothing with the batchrun client but
the wire. Run it with ``python -m batchrun.emulator --help``.
"""
