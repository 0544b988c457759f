"""Plugins: entry-point discovery, custan plugins, hooks, and their failures.

The example plugins in plugins/ must be installed first:
pip install -e plugins/custan-webhook -e plugins/custan-stats
"""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import write_rules, write_transactions
from sqlglot import exp

from custan import plugins
from custan.compiler.aggregates import Aggregate, call, filtered
from custan.compiler.plan import compile_rules
from custan.errors import RulesError
from custan.expressions.functions import Function, Typed
from custan.expressions.types import NUMERIC
from custan.hookspecs import hookimpl
from custan.model import load_rules
from custan.sinks.text_formats import formatted_rows
from custan.sources.file_source import FileSource

# acct_a: 10.00 + 30.00 processed, 99.00 declined; acct_b: 5.50 and 7.25.
ROWS = [
    ("t1", "payment", "processed", "10.00", "2024-03-01 10:00:00", "acct_a", "pm_a"),
    ("t2", "payment", "processed", "30.00", "2024-03-05 10:00:00", "acct_a", "pm_a"),
    ("t3", "payment", "declined", "99.00", "2024-03-06 10:00:00", "acct_a", "pm_a"),
    ("t4", "payment", "processed", "5.50", "2024-03-02 10:00:00", "acct_b", "pm_b"),
    ("t5", "payment", "processed", "7.25", "2024-03-03 10:00:00", "acct_b", "pm_b"),
]

TOTALS = """\
version: 1
source: {path: tx.csv}
filters: ["status = 'processed'"]
metrics:
  total: {agg: sum, of: amount}
output:
  columns: [total]
"""


@pytest.fixture(autouse=True)
def fresh_plugins():
    """Load entry points anew for each test, so a faked distribution is seen."""
    plugins.reset_entry_points()
    yield
    plugins.use_entry_points(True)
    plugins.reset_entry_points()


@pytest.fixture
def registered():
    """Register plugin objects for one test; unregister them afterwards."""
    manager = plugins.get_plugin_manager()
    names: list[str] = []

    def register(plugin, name: str):
        manager.register(plugin, name=name)
        names.append(name)

    yield register
    for name in names:
        manager.unregister(name=name)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_transactions(tmp_path, ROWS)
    return tmp_path


def fake_distribution(folder: Path, monkeypatch, name: str, entry_point: str) -> None:
    """Install metadata for a distribution whose plugin module does not exist."""
    info = folder / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n"
    (info / "METADATA").write_text(metadata)
    (info / "entry_points.txt").write_text(f"[custan]\n{entry_point}\n")
    monkeypatch.syspath_prepend(str(folder))


# Discovery and listing


def test_plugins_json_lists_examples(custan):
    outcome = custan("plugins", "--format", "json")
    listed = {item["name"]: item for item in json.loads(outcome.out)}
    assert outcome.code == 0
    assert listed["stats"] == {
        "name": "stats",
        "distribution": "custan-stats",
        "version": "0.1.0",
        "hooks": ["register_metrics"],
        "error": None,
    }
    assert listed["webhook"]["distribution"] == "custan-webhook"
    assert listed["webhook"]["hooks"] == ["register_sinks"]
    # custan's own plugin shows only with --all.
    assert "custan" not in listed


def test_plugins_all_includes_builtins(custan):
    outcome = custan("plugins", "--all", "--format", "json")
    listed = {item["name"]: item for item in json.loads(outcome.out)}
    assert listed["custan"]["hooks"] == [
        "register_functions",
        "register_metrics",
        "register_sinks",
        "register_sources",
    ]


def test_plugins_table_shows_versions(custan):
    outcome = custan("plugins")
    assert outcome.code == 0
    lines = [line for line in outcome.out.splitlines() if "custan-stats" in line]
    assert len(lines) == 1
    assert "stats" in lines[0]
    assert "0.1.0" in lines[0]
    assert "register_metrics" in lines[0]


def test_no_plugins_flag_keeps_builtins(custan, folder):
    listed = json.loads(custan("--no-plugins", "plugins", "--format", "json").out)
    assert listed == []
    # Built-in sinks still work; the webhook format is gone from the choices.
    rules = write_rules(folder, TOTALS)
    assert custan("--no-plugins", "run", rules, "--format", "csv").code == 0
    outcome = custan("--no-plugins", "run", rules, "--format", "webhook")
    assert outcome.code == 2
    assert "invalid choice: 'webhook'" in outcome.err


def test_disable_variable_turns_discovery_off(custan, folder, monkeypatch):
    monkeypatch.setenv("CUSTAN_DISABLE_PLUGINS", "1")
    rules = write_rules(folder, TOTALS.replace("agg: sum", "agg: median"))
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 2
    assert "unknown aggregate 'median'" in outcome.err
    assert json.loads(custan("plugins", "--format", "json").out) == []


# Example plugins used from rules files


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def test_rules_use_stats_and_webhook(custan, folder):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rules = write_rules(
        folder,
        """\
version: 1
requires: [custan-stats, custan-webhook]
source: {path: tx.csv}
filters: ["status = 'processed'"]
metrics:
  typical: {agg: median, of: amount}
segments:
  - {name: big, when: typical >= 20}
  - {name: small}
output:
  columns: [typical, segment]
""",
    )
    host, port = server.server_address[:2]
    try:
        outcome = custan(
            "run",
            rules,
            "--format",
            "webhook",
            "--output",
            f"http://{host}:{port}/hook",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.code == 0, outcome.err
    assert len(server.bodies) == 1
    rows = json.loads(server.bodies[0], parse_float=Decimal)["rows"]
    # acct_a: median of 10.00 and 30.00 = 20.00; acct_b: of 5.50 and 7.25 = 6.375,
    # which custan writes half-even to cents as 6.38.
    assert rows == [
        {"customer_id": "acct_a", "typical": Decimal("20.00"), "segment": "big"},
        {"customer_id": "acct_b", "typical": Decimal("6.38"), "segment": "small"},
    ]


def test_validate_accepts_installed_requirements(custan, folder):
    rules = write_rules(folder, "requires: [custan-stats, custan_webhook]\n" + TOTALS)
    outcome = custan("validate", rules)
    assert outcome.code == 0, outcome.err
    assert outcome.out == f"{rules}: ok\n"


def test_validate_names_missing_requirements(custan, folder):
    text = "requires: [custan-stats, custan-absent-one, custan-absent-two]\n" + TOTALS
    rules = write_rules(folder, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert outcome.err == (
        f"error: {rules}: requires: missing required distributions: "
        "'custan-absent-one', 'custan-absent-two'; install them with "
        "'pip install custan-absent-one custan-absent-two'\n"
    )


# A plugin defined here, registered directly


def _double(args: list[Typed], call_info) -> Typed:
    return Typed(
        exp.Mul(this=args[0].node, expression=exp.Literal.number(2)), args[0].type
    )


def _largest_declined(value, condition):
    declined = exp.EQ(
        this=exp.column("status", quoted=True),
        expression=exp.Literal.string("declined"),
    )
    where = declined if condition is None else exp.and_(condition, declined)
    return filtered(call("max", value), where)


class UpperSink:
    """Writes each row on one line, with the customer id in capitals."""

    name = "upper"

    def write(self, result, stream):
        for customer, *values in formatted_rows(result):
            stream.write(" ".join([customer.upper(), *map(str, values)]) + "\n")


class InlinePlugin:
    def __init__(self):
        self.events: list[tuple] = []

    @hookimpl
    def register_metrics(self, register):
        register(
            Aggregate(
                "max_declined",
                _largest_declined,
                lambda value_type: value_type,
                accepts=NUMERIC,
            )
        )

    @hookimpl
    def register_functions(self, register):
        register(Function("double", _double, 1, 1))

    @hookimpl
    def register_sinks(self, register):
        register("upper", UpperSink)

    @hookimpl
    def register_sources(self, register):
        register("shared_csv", lambda spec, data: FileSource(spec, data))

    @hookimpl
    def before_run(self, rules):
        self.events.append(("before", rules.name))

    @hookimpl
    def after_run(self, rules, result_summary):
        self.events.append(("after", result_summary))


INLINE_RULES = """\
version: 1
name: inline
source: {kind: shared_csv, path: tx.csv}
metrics:
  worst: {agg: max_declined, of: amount}
  spent: {agg: sum, of: amount, where: "status = 'processed'"}
derived:
  twice: double(spent)
output:
  columns: [twice]
  summary:
    values:
      customers: count(*)
    lines: ["{customers} customers"]
"""


def test_inline_plugin_adds_sink_and_metric(custan, folder, registered):
    plugin = InlinePlugin()
    registered(plugin, "inline")
    rules = write_rules(folder, INLINE_RULES.replace("[twice]", "[worst, twice]"))
    outcome = custan("run", rules, "--format", "upper")
    assert outcome.code == 0, outcome.err
    # worst: acct_a's one declined payment is 99.00; acct_b has none.
    # twice: 2 * processed spend, acct_a 2 * 40.00 and acct_b 2 * 12.75.
    assert outcome.out == "ACCT_A 99.00 80.00\nACCT_B None 25.50\n"


def test_inline_plugin_function_and_source(custan, folder, registered):
    registered(InlinePlugin(), "inline")
    rules = write_rules(folder, INLINE_RULES)
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    # twice = 2 * processed spend: acct_a 2 * 40.00, acct_b 2 * 12.75.
    assert outcome.csv_rows() == [
        {"customer_id": "acct_a", "twice": "80.00"},
        {"customer_id": "acct_b", "twice": "25.50"},
    ]


def test_lifecycle_hooks_see_run(custan, folder, registered):
    plugin = InlinePlugin()
    registered(plugin, "inline")
    rules = write_rules(folder, INLINE_RULES)
    custan("run", rules, "--format", "csv")
    assert plugin.events[0] == ("before", "inline")
    kind, summary = plugin.events[1]
    assert kind == "after"
    assert summary["file"] == str(rules)
    # Two customers; as_of is the newest created_at, t3 at 2024-03-06 10:00 UTC.
    assert summary["rows"] == 2
    assert summary["as_of"] == "2024-03-06T10:00:00+00:00"
    assert summary["values"] == {"customers": 2}


def test_plugin_unregistered_after_test(custan):
    listed = json.loads(custan("plugins", "--format", "json").out)
    assert "inline" not in [item["name"] for item in listed]


def test_compile_rules_alone_uses_builtins(folder):
    rules = load_rules(write_rules(folder, TOTALS.replace("agg: sum", "agg: median")))
    with pytest.raises(RulesError, match="unknown aggregate 'median'"):
        compile_rules(rules)


def test_unknown_source_kind_lists_kinds(custan, folder):
    rules = write_rules(folder, TOTALS.replace("{path: tx.csv}", "{kind: warehouse}"))
    outcome = custan("run", rules)
    assert outcome.code == 2
    # payload joins files when custan.sources.payload is installed.
    assert "unknown source kind 'warehouse'; available: files" in outcome.err


def test_payload_source_imported_lazily():
    code = (
        "import sys\n"
        "from custan import plugins\n"
        "kinds = sorted(plugins.sources().entries)\n"
        "print(kinds, 'custan.sources.payload' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    present = importlib.util.find_spec("custan.sources.payload") is not None
    expected = "['files', 'payload']" if present else "['files']"
    assert completed.stdout == f"{expected} False\n"


# Failures


class ClashingPlugin:
    @hookimpl
    def register_sinks(self, register):
        register("csv", UpperSink)
        register("shout", UpperSink)


class FaultyPlugin:
    @hookimpl
    def register_metrics(self, register):
        raise RuntimeError("metrics table is corrupt")


class GatePlugin:
    @hookimpl
    def before_run(self, rules):
        raise PermissionError("runs are closed on Sundays")


def test_taken_name_rejected_others_kept(custan, folder, registered, caplog):
    registered(ClashingPlugin(), "clash")
    rules = write_rules(folder, TOTALS)
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    # The built-in csv sink still writes: acct_a 10.00 + 30.00, acct_b 5.50 + 7.25.
    assert outcome.out == "customer_id,total\nacct_a,40.00\nacct_b,12.75\n"
    assert caplog.messages == [
        "plugin 'clash', hook register_sinks: sink 'csv' is already registered by "
        "plugin 'custan'"
    ]
    # The plugin's other sink is still registered.
    shouted = custan("run", rules, "--format", "shout")
    assert shouted.out == "ACCT_A 40.00\nACCT_B 12.75\n"


def test_raising_hook_spares_run(custan, folder, registered, caplog):
    registered(FaultyPlugin(), "faulty")
    outcome = custan("run", write_rules(folder, TOTALS), "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert caplog.messages == [
        "plugin 'faulty', hook register_metrics: raised RuntimeError: "
        "metrics table is corrupt"
    ]


def test_raising_before_run_stops_run(custan, folder, registered):
    registered(GatePlugin(), "gate")
    outcome = custan("run", write_rules(folder, TOTALS), "--format", "csv")
    assert outcome.code == 1
    assert outcome.out == ""
    assert outcome.err == (
        "error: plugin 'gate', hook before_run: raised PermissionError: "
        "runs are closed on Sundays\n"
    )


def test_wrong_registration_type_reported(custan, registered, caplog):
    class WrongPlugin:
        @hookimpl
        def register_functions(self, register):
            register("not a function")

    registered(WrongPlugin(), "wrong")
    plugins.function_table()
    assert caplog.messages == [
        "plugin 'wrong', hook register_functions: expected a Function, got str"
    ]


def test_broken_plugin_listed_with_error(custan, tmp_path, monkeypatch):
    fake_distribution(
        tmp_path,
        monkeypatch,
        "custan-broken",
        "broken = custan_module_that_is_not_there",
    )
    listed = {
        item["name"]: item
        for item in json.loads(custan("plugins", "--format", "json").out)
    }
    assert listed["broken"] == {
        "name": "broken",
        "distribution": "custan-broken",
        "version": "1.2.3",
        "hooks": [],
        "error": (
            "ModuleNotFoundError: No module named 'custan_module_that_is_not_there'"
        ),
    }
    # The other plugins still load.
    assert listed["stats"]["error"] is None


def test_broken_plugin_spares_unrelated_run(custan, folder, monkeypatch, caplog):
    fake_distribution(
        folder, monkeypatch, "custan-broken", "broken = custan_module_that_is_not_there"
    )
    caplog.set_level(logging.WARNING)
    rules = write_rules(folder, TOTALS.replace("agg: sum", "agg: median"))
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    # Medians: acct_a of 10.00 and 30.00 is 20.00; acct_b of 5.50 and 7.25 is 6.375.
    assert outcome.out == "customer_id,total\nacct_a,20.00\nacct_b,6.38\n"
    assert caplog.messages == [
        "plugin 'broken' failed to import: ModuleNotFoundError: No module named "
        "'custan_module_that_is_not_there'"
    ]


def test_broken_required_plugin_fails_validate(custan, folder, monkeypatch):
    fake_distribution(
        folder, monkeypatch, "custan-broken", "broken = custan_module_that_is_not_there"
    )
    rules = write_rules(folder, "requires: [custan-broken]\n" + TOTALS)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert outcome.err.endswith(
        f"error: {rules}: requires: plugin 'broken' failed to import: "
        "ModuleNotFoundError: No module named 'custan_module_that_is_not_there'\n"
    )


def test_unknown_name_mentions_broken_plugin(custan, folder, monkeypatch):
    fake_distribution(
        folder, monkeypatch, "custan-broken", "broken = custan_module_that_is_not_there"
    )
    rules = write_rules(folder, TOTALS.replace("agg: sum", "agg: trimmed_mean"))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert outcome.err.rstrip().endswith(
        "(plugins that failed to import: 'broken'; see 'custan plugins')"
    )
    assert "unknown aggregate 'trimmed_mean'" in outcome.err


def test_required_plugin_with_plugins_off(custan, folder):
    text = TOTALS.replace("version: 1", "version: 1\nrequires: [custan-stats]")
    rules = write_rules(folder, text.replace("agg: sum", "agg: median"))
    outcome = custan("--no-plugins", "validate", rules)
    assert outcome.code == 2
    assert "requires 'custan-stats', but plugins are turned off by --no-plugins" in (
        outcome.err
    )
