"""batchrun: trigger many Azure Data Factory pipeline runs from one YAML manifest.

The package, room by room (imports flow downwards only; ``make lint`` checks it):

``cli``
    The command line: one module per sub-command, the one error → exit-code map. Thin: it
    parses, builds settings, configures logging once, runs, and exits. Nothing imports it.
``run``
    ``batchrun run``: the runner, the scheduler and its request slots, the per-run state,
    identical-entry ordering, reconciliation of lost answers, the intent journal, progress, the
    recovery guard, following runs to their end (``--wait``, ``watch``, ``cancel``), the order
    of ``needs`` and ``--only-missing``, and the numbers they run by (``constants``).
``recover``
    ``batchrun recover``: find the runs to recover after an incident, and write the reviewed
    recovery manifest. ``run`` and ``recover`` never import each other.
``manifest``
    YAML in, frozen :class:`~batchrun.model.RunSpec`\\ s out: the rules, positioned YAML nodes,
    ``${VAR}`` substitution, the loader, ``dates`` ranges, the ``needs`` graph and its order,
    scope files, shards and the JSON Schema.
``report``
    The JSONL report: the writer, the reader, ``summary`` and its rendering.
``arm``
    Everything that talks to ARM/ADF: the client over one aiohttp session, CloudError parsing,
    transport errors, rate-limit headers, pacing, the retry policy, paged reads, auth, clouds.
``model``, ``errors``, ``times``, ``text``, ``log``, ``waits``
    The shared nouns, the exception tree, UTC timestamps, text for people (cut to one line,
    counted nouns), structlog's setup (with the redaction of secrets), and waiting for
    whichever of a stop, a change or a timer comes first.
``emulator``
    A local ARM/ADF emulator for demos, tests and benchmarks: an independent oracle that shares
    nothing with the client but the wire format. Only ``cli``, ``demo`` and tests import it.
"""

# the one place the version is written: the build (pyproject.toml's [tool.hatch.version]) reads
# it from here, and a constant costs nothing at import, where importlib.metadata (with email and
# zipfile) and the lookup of the installed distribution cost ~0.01 s of every command's start
__version__ = "0.1.0"
