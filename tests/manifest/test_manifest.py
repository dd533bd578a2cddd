import gc
import json
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from batchrun.errors import ManifestError, ManifestIssue
from batchrun.manifest.describe import describe
from batchrun.manifest.loader import Manifest, load_manifest, load_manifests
from batchrun.manifest.yamlnodes import resolve
from tests.helpers.paths import DATA, ROOT

DATA = DATA / "manifests"
BAD = json.loads((DATA / "bad" / "expected.json").read_text())["manifests"]
GOOD = json.loads((DATA / "good" / "expected.json").read_text())["manifests"]
GOOD_ENVIRON = {
    "BATCHRUN_TEST_SUBSCRIPTION": "11111111-1111-1111-1111-111111111111",
    "BATCHRUN_TEST_REGION": "eu",
}
SUB1 = "11111111-1111-1111-1111-111111111111"
SUB2 = "22222222-2222-2222-2222-222222222222"
HEADER = f"""\
version: 1
defaults:
  subscription: {SUB1}
  resource_group: rg-data
runs:
"""

Load = Callable[..., Manifest]
Write = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def write(text: str, name: str = "manifest.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def load(write: Write) -> Load:
    """Load manifest text; ``runs`` text is appended to a header with subscription defaults."""

    def load(runs: str, *, environ: Mapping[str, str] | None = None) -> Manifest:
        body = HEADER + textwrap.indent(textwrap.dedent(runs), "  ")
        return load_manifest(write(body), environ=environ or {})

    return load


def errors_of(
    write: Write, text: str, environ: Mapping[str, str] | None = None
) -> list[ManifestIssue]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(text), environ=environ or {})
    return caught.value.issues


# -- the corpus -------------------------------------------------------------------------------


def test_every_bad_manifest_has_its_expected_issues() -> None:
    assert sorted(path.name for path in (DATA / "bad").glob("*.yaml")) == sorted(BAD)
    assert len(BAD) >= 30


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_manifest_reports_every_issue_where_it_is(name: str) -> None:
    path = DATA / "bad" / name
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={})
    issues = caught.value.issues
    expected = BAD[name]
    assert [(i.line, i.column, i.path) for i in issues] == [
        (e["line"], e["column"], e["path"]) for e in expected
    ]
    for issue, wanted in zip(issues, expected, strict=True):
        assert wanted["message"] in issue.message
        assert issue.file == str(path)


def test_every_good_manifest_is_listed() -> None:
    assert sorted(path.name for path in (DATA / "good").glob("*.yaml")) == sorted(GOOD)


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_manifest_expands_to_the_expected_runs(name: str) -> None:
    manifest = load_manifest(DATA / "good" / name, environ=GOOD_ENVIRON)
    assert [run.id for run in manifest.runs] == GOOD[name]["ids"]
    assert len(manifest.warnings) == GOOD[name]["warnings"]


def test_demo_config_has_over_100_distinct_runs_in_3_factories_and_2_subscriptions() -> None:
    manifest = load_manifest(ROOT / "configs" / "demo.yaml", environ={})
    runs = manifest.runs
    assert len(runs) >= 100
    assert {run.factory for run in runs} == {"sales-eu", "sales-us", "finance-core"}
    assert {run.subscription for run in runs} == {SUB1, SUB2}
    assert len({(r.factory, r.pipeline, json.dumps(r.parameters)) for r in runs}) == len(runs)
    assert {run.parameters["run_date"] for run in runs} == {"2026-11-26"}
    assert not manifest.warnings


# -- errors -----------------------------------------------------------------------------------


def test_issue_reads_file_line_column_path_and_message(write: Write) -> None:
    path = write(HEADER + "  - factory: my_factory\n    pipeline: LoadOrders\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={})
    assert str(caught.value) == (
        f"{path}:6:14: runs[0].factory: 'my_factory' is not a valid factory name: 3-63 letters,"
        " digits and hyphens, starting and ending with a letter or digit (no '--')"
    )


def test_all_errors_are_reported_at_once_sorted_by_position(
    write: Write,
) -> None:
    issues = errors_of(
        write,
        HEADER
        + """\
  - factory: sales-eu
    pipeline: Load.Orders
  - factory: [ab, sales-us]
    pipeline: LoadOrders
    is_recovery: "yes"
  - factroy: sales-eu
    pipeline: LoadOrders
""",
    )
    assert [(i.line, i.column, i.path) for i in issues] == [
        (7, 15, "runs[0].pipeline"),
        (8, 15, "runs[1].factory[0]"),
        (10, 18, "runs[1].is_recovery"),
        (11, 5, "runs[2].factroy"),
    ]
    assert "\n".join(str(i) for i in issues) == str(ManifestError(issues))


def test_an_error_in_defaults_is_reported_once_not_per_run(write: Write) -> None:
    runs = "".join(f"  - factory: sales-eu\n    pipeline: P{n}\n" for n in range(50))
    issues = errors_of(write, HEADER.replace("rg-data", "rg data") + runs)
    assert [(i.path, i.line) for i in issues] == [("defaults.resource_group", 4)]


def test_missing_file_is_a_manifest_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "nope.yaml", environ={})
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (0, 0)
    assert "cannot read the manifest: No such file or directory" in issue.message


def test_directory_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read the manifest"):
        load_manifest(tmp_path, environ={})


def test_invalid_utf8_is_reported_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(HEADER.encode() + b"  - factory: caf\xe9\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={})
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (6, 17)
    assert "invalid YAML" in issue.message
    assert "UTF-8" in issue.message


def test_unquoted_substitution_in_flow_style_gets_a_quoting_hint(
    write: Write,
) -> None:
    (issue,) = errors_of(write, HEADER + "  - {factory: sales-${REGION}, pipeline: LoadOrders}\n")
    assert "quote a value that holds ${...}" in issue.message


def test_explicit_id_that_collides_names_both_positions(write: Write) -> None:
    issues = errors_of(
        write,
        HEADER
        + "  - {id: a, factory: sales-eu, pipeline: P}\n"
        + "  - {id: a, factory: sales-us, pipeline: P}\n",
    )
    assert [(i.line, i.column, i.path) for i in issues] == [(7, 10, "runs[1].id")]
    assert "already used by runs[0].id (line 6, column 10)" in issues[0].message


def test_misspelt_required_field_is_not_also_reported_missing(
    write: Write,
) -> None:
    issues = errors_of(write, HEADER + "  - pipline: LoadOrders\n    factory: sales-eu\n")
    assert [i.message for i in issues] == ["unknown key 'pipline': did you mean 'pipeline'?"]


def test_gc_is_enabled_again_after_a_load_that_fails(write: Write) -> None:
    assert gc.isenabled()
    errors_of(write, "version: 1\nruns: []\n")
    assert gc.isenabled()


# -- defaults, matrix, ids --------------------------------------------------------------------


def test_defaults_parameters_merge_key_by_key_and_the_run_wins(
    write: Write,
) -> None:
    manifest = load_manifest(
        write(
            f"""\
            version: 1
            defaults:
              subscription: {SUB1}
              resource_group: rg-data
              parameters: {{env: prod, region: eu}}
            runs:
              - factory: sales-eu
                pipeline: LoadOrders
                resource_group: rg-sales
                parameters: {{region: us, batch: 7}}
              - factory: sales-us
                pipeline: LoadOrders
            """
        ),
        environ={},
    )
    first, second = manifest.runs
    assert first.parameters == {"env": "prod", "region": "us", "batch": 7}
    assert first.resource_group == "rg-sales"
    assert second.parameters == {"env": "prod", "region": "eu"}
    assert second.resource_group == "rg-data"


def test_runs_do_not_share_parameter_dicts(load: Load) -> None:
    manifest = load(
        """\
        - factory: [sales-eu, sales-us]
          pipeline: LoadOrders
          parameters: {region: eu}
        """
    )
    first, second = manifest.runs
    first.parameters["region"] = "changed"
    assert second.parameters == {"region": "eu"}


def test_matrix_expands_factory_major_with_ids_from_the_list_dimensions(load: Load) -> None:
    manifest = load(
        """\
        - id: nightly
          factory: [sales-eu, sales-us]
          pipeline: [LoadOrders, BuildMarts]
        - id: marts
          factory: finance-core
          pipeline: [BuildMarts, ExportReports]
        - factory: [sales-eu, finance-core]
          pipeline: LoadInvoices
        """
    )
    assert [(run.id, run.factory, run.pipeline) for run in manifest.runs] == [
        ("nightly.sales-eu.LoadOrders", "sales-eu", "LoadOrders"),
        ("nightly.sales-eu.BuildMarts", "sales-eu", "BuildMarts"),
        ("nightly.sales-us.LoadOrders", "sales-us", "LoadOrders"),
        ("nightly.sales-us.BuildMarts", "sales-us", "BuildMarts"),
        ("marts.BuildMarts", "finance-core", "BuildMarts"),
        ("marts.ExportReports", "finance-core", "ExportReports"),
        ("sales-eu.LoadInvoices", "sales-eu", "LoadInvoices"),
        ("finance-core.LoadInvoices", "finance-core", "LoadInvoices"),
    ]


def test_two_identical_entries_are_two_runs_with_distinct_ids(load: Load) -> None:
    manifest = load(
        """\
        - {factory: sales-eu, pipeline: LoadOrders}
        - {factory: sales-eu, pipeline: LoadOrders}
        - {factory: sales-eu, pipeline: LoadOrders}
        """
    )
    assert [run.id for run in manifest.runs] == [
        "sales-eu.LoadOrders",
        "sales-eu.LoadOrders#2",
        "sales-eu.LoadOrders#3",
    ]
    assert manifest.runs[0] != manifest.runs[1]


def test_every_expanded_run_points_at_its_entry(load: Load) -> None:
    manifest = load("- factory: [sales-eu, sales-us]\n  pipeline: LoadOrders\n")
    assert {run.source for run in manifest.runs} == {f"{manifest.path}:6:5"}


def test_recovery_fields_reach_the_run(load: Load) -> None:
    (run,) = load(
        """\
        - factory: sales-eu
          pipeline: LoadOrders
          reference_run_id: 2f7fdb90-5df1-4b8e-ac2f-064cfa58202b
          is_recovery: true
          start_activity_name: CopySales
        """
    ).runs
    assert run.recovery_query() == {
        "referencePipelineRunId": "2f7fdb90-5df1-4b8e-ac2f-064cfa58202b",
        "isRecovery": "true",
        "startActivityName": "CopySales",
    }


# -- environment substitution -----------------------------------------------------------------


def test_variables_come_from_the_given_environ(load: Load, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION", "from-os-environ")
    (run,) = load(
        """\
        - factory: sales-${REGION}
          pipeline: LoadOrders
          parameters:
            date: ${RUN_DATE:-2026-11-26}
            empty: ${EMPTY:-fallback}
            price: $$5
            nested: {paths: ["/in/${REGION}", /out]}
        """,
        environ={"REGION": "eu", "EMPTY": ""},
    ).runs
    assert run.factory == "sales-eu"
    assert run.parameters == {
        "date": "2026-11-26",
        "empty": "fallback",
        "price": "$5",
        "nested": {"paths": ["/in/eu", "/out"]},
    }


def test_substituted_values_stay_strings(load: Load) -> None:
    (run,) = load(
        "- {factory: sales-eu, pipeline: LoadOrders, parameters: {n: '${N}'}}\n",
        environ={"N": "5"},
    ).runs
    assert run.parameters == {"n": "5"}


def test_unset_variable_is_an_error_naming_it_at_its_column(write: Write) -> None:
    (issue,) = errors_of(write, HEADER + "  - factory: sales-${REGION}\n    pipeline: LoadOrders\n")
    assert (issue.line, issue.column, issue.path) == (6, 20, "runs[0].factory")
    assert "environment variable REGION is not set" in issue.message


def test_names_are_validated_after_substitution(write: Write) -> None:
    text = HEADER + "  - factory: ${FACTORY}\n    pipeline: LoadOrders\n"
    (issue,) = errors_of(write, text, environ={"FACTORY": "sales_eu"})
    assert "'sales_eu' is not a valid factory name" in issue.message
    assert load_manifest(write(text), environ={"FACTORY": "sales-eu"}).runs[0].factory == "sales-eu"


# -- warnings ---------------------------------------------------------------------------------


def test_subscription_that_is_not_a_guid_is_a_warning_once(load: Load) -> None:
    manifest = load(
        """\
        - {factory: sales-eu, pipeline: LoadOrders, subscription: my-subscription}
        - {factory: sales-us, pipeline: LoadOrders, subscription: my-subscription}
        """
    )
    assert len(manifest.runs) == 2
    (warning,) = manifest.warnings
    assert (warning.line, warning.path) == (6, "runs[0].subscription")
    assert "'my-subscription' does not look like a subscription id" in warning.message


# -- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_is_stable_across_loads_and_layouts(
    write: Write,
) -> None:
    block = load_manifest(
        write(
            HEADER + "  - factory: sales-eu\n    pipeline: LoadOrders\n    parameters: {a: 1, b: 2}"
        ),
        environ={},
    )
    again = load_manifest(block.path, environ={})
    flow = load_manifest(
        write(
            f"version: 1\nruns: [{{subscription: '{SUB1}', resource_group: rg-data,"
            " factory: sales-eu, pipeline: LoadOrders, parameters: {b: 2, a: 1}}]\n",
            name="flow.yaml",
        ),
        environ={},
    )
    assert len(block.fingerprint) == 64
    assert block.fingerprint == again.fingerprint == flow.fingerprint


@pytest.mark.parametrize(
    "change",
    [
        "parameters: {a: 1, b: 3}",
        "parameters: {a: 1, b: '2'}",
        "parameters: {a: 1, b: 2, c: null}",
        "parameters: {a: 1, b: 2}\n    id: named",
        "parameters: {a: 1, b: 2}\n    reference_run_id: x",
    ],
)
def test_fingerprint_changes_when_a_run_changes(write: Write, change: str) -> None:
    base = HEADER + "  - factory: sales-eu\n    pipeline: LoadOrders\n    "
    before = load_manifest(write(base + "parameters: {a: 1, b: 2}\n"), environ={})
    after = load_manifest(write(base + change + "\n", name="changed.yaml"), environ={})
    assert before.fingerprint != after.fingerprint


def test_fingerprint_follows_the_environment(load: Load) -> None:
    runs = "- {factory: sales-eu, pipeline: LoadOrders, parameters: {d: '${D:-x}'}}\n"
    assert load(runs).fingerprint == load(runs, environ={"D": "x"}).fingerprint
    assert load(runs).fingerprint != load(runs, environ={"D": "y"}).fingerprint


# -- several manifests, describe --------------------------------------------------------------


def test_load_manifests_reports_the_errors_of_every_file(write: Write) -> None:
    good = write(HEADER + "  - {factory: sales-eu, pipeline: LoadOrders}\n", name="good.yaml")
    bad1 = write(HEADER + "  - {factory: sales_eu, pipeline: LoadOrders}\n", name="bad1.yaml")
    bad2 = write("version: 3\n", name="bad2.yaml")
    with pytest.raises(ManifestError) as caught:
        load_manifests([good, bad1, bad2], environ={})
    assert [(i.file, i.path) for i in caught.value.issues] == [
        (str(bad1), "runs[0].factory"),
        (str(bad2), "version"),
    ]


def test_describe_counts_runs_per_subscription_and_factory(write: Write) -> None:
    first = write(
        HEADER
        + "  - {factory: [sales-us, sales-eu], pipeline: [LoadOrders, BuildMarts]}\n"
        + f"  - {{factory: finance-core, pipeline: LoadOrders, subscription: {SUB2}}}\n",
        name="first.yaml",
    )
    second = write(
        HEADER + "  - {factory: sales-eu, pipeline: ExportReports, subscription: odd-one}\n",
        name="second.yaml",
    )
    manifests = load_manifests([first, second], environ={})
    warning = (
        "runs[0].subscription: 'odd-one' does not look like a subscription id, which is a GUID"
    )
    assert describe(manifests) == textwrap.dedent(
        f"""\
        6 runs in 2 manifests
        subscription {SUB1}: 4 runs
          sales-eu            2
          sales-us            2
        subscription {SUB2}: 1 run
          finance-core        1
        subscription odd-one: 1 run
          sales-eu            1
        1 warning:
          {second}:6:64: {warning}"""
    )


# -- YAML details -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["hello", "yes", "No", "on", "~", "", "null", "123", "0x1F", "1_000", "012", "-5", "+3",
     "1.5", ".inf", "-.Inf", ".nan", "1e3", "2026-11-26", "2026-11-26T02:00:00Z", "<<", "=",
     "12:30", "sales-eu", "$x", "true"],
)  # fmt: skip
def test_tag_resolution_matches_pyyaml(text: str) -> None:
    for implicit in ((True, False), (False, True)):
        expected = Resolver().resolve(ScalarNode, text, implicit)  # type: ignore[no-untyped-call]
        assert resolve(ScalarNode, text, implicit) == expected


def test_decimal_yaml_integers_become_json_numbers(load: Load) -> None:
    (run,) = load("- {factory: sales-eu, pipeline: P, parameters: {a: 0, b: -12, d: 7}}\n").runs
    assert run.parameters == {"a": 0, "b": -12, "d": 7}


# -- streaming: runs are read one entry at a time ---------------------------------------------


def test_an_anchor_in_one_run_is_usable_by_a_later_run(load: Load) -> None:
    manifest = load(
        """\
        - &first {factory: sales-eu, pipeline: LoadOrders, parameters: &p {a: 1}}
        - {<<: *first, pipeline: BuildMarts}
        - {factory: sales-us, pipeline: LoadOrders, parameters: *p}
        """
    )
    assert [(r.id, r.parameters) for r in manifest.runs] == [
        ("sales-eu.LoadOrders", {"a": 1}),
        ("sales-eu.BuildMarts", {"a": 1}),
        ("sales-us.LoadOrders", {"a": 1}),
    ]


@pytest.mark.parametrize(
    "text",
    [
        f"runs:\n  - {{factory: sales-eu, pipeline: P}}\nversion: 1\n"
        f"defaults: {{subscription: {SUB1}, resource_group: rg}}\n",
        f"version: 1\nruns:\n  - {{factory: sales-eu, pipeline: P}}\n"
        f"defaults: {{subscription: {SUB1}, resource_group: rg}}\n",
    ],
)
def test_defaults_and_version_may_follow_the_runs(write: Write, text: str) -> None:
    (run,) = load_manifest(write(text), environ={}).runs
    assert (run.subscription, run.resource_group) == (SUB1, "rg")


def test_a_syntax_error_after_invalid_runs_is_reported_alone(write: Write) -> None:
    text = HEADER + "  - {factory: sales_eu, pipeline: P}\n  - {factory: sales-eu, pipeline: P\n"
    (issue,) = errors_of(write, text)
    assert issue.message.startswith("invalid YAML")


def test_ids_collide_across_the_whole_file(write: Write) -> None:
    issues = errors_of(
        write,
        HEADER
        + "  - {id: sales-eu.P, factory: sales-us, pipeline: P}\n"
        + "  - {factory: sales-eu, pipeline: P}\n"
        + "  - {id: x, factory: [sales-eu, sales-us], pipeline: P}\n"
        + "  - {id: x.sales-us, factory: sales-us, pipeline: P}\n",
    )
    assert [(i.line, i.column, i.path) for i in issues] == [
        (6, 10, "runs[0].id"),
        (9, 10, "runs[3].id"),
    ]
    assert "is also the id derived for runs[1]" in issues[0].message
    assert "already used by runs[2].id (line 8, column 10)" in issues[1].message


def test_parameters_beside_a_reference_run_warn_that_adf_ignores_them(tmp_path: Path) -> None:
    path = tmp_path / "rerun.yaml"
    path.write_text(
        "version: 1\n"
        "defaults: {subscription: 11111111-1111-1111-1111-111111111111, resource_group: rg,"
        " parameters: {env: prod}}\n"
        "runs:\n"
        "  - {factory: sales-eu, pipeline: P, reference_run_id: abc}\n"
        "  - factory: sales-eu\n"
        "    pipeline: P\n"
        "    reference_run_id: abc\n"
        "    parameters: {day: 1}\n"
    )
    manifest = load_manifest(path, environ={})
    assert len(manifest.runs) == 2
    (warning,) = manifest.warnings
    assert (warning.line, warning.column, warning.path) == (8, 17, "runs[1].parameters")
    assert "ignored by ADF" in warning.message
