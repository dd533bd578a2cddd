"""The topology ``batchrun emulator`` serves without --config, and the example history for it."""

from __future__ import annotations

from batchrun.emulator.config import demo_topology, describe_topology
from batchrun.emulator.history import load_history
from batchrun.manifest.loader import load_manifest
from tests.helpers.paths import ROOT


def test_the_demo_topology_has_every_pipeline_configs_demo_yaml_runs() -> None:
    topology = demo_topology()
    manifest = load_manifest(ROOT / "configs/demo.yaml", environ={})
    for run in manifest.runs:
        factory = topology.factory(run.subscription, run.resource_group, run.factory)
        assert factory is not None, run.id
        assert topology.pipeline(factory, run.pipeline) is not None, run.id
    assert describe_topology(topology) == (
        "3 factories (sales-eu, sales-us, finance-core) in 2 subscriptions, 15 pipelines"
    )


def test_the_example_history_loads_into_the_demo_topology() -> None:
    runs = load_history(ROOT / "configs/emulator-history.example.yaml", demo_topology())
    assert [(run.status, run.group_id == run.run_id) for run in runs] == [
        ("Failed", True),
        ("Succeeded", False),
        ("Cancelled", True),
    ]
