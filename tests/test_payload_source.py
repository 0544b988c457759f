"""Tests for the Payload source against the local Payload server on 127.0.0.1.

Most expected values come from the files source run on the same CSV: the
two routes share only the compiled plan, so agreement checks the fetching,
the pushdown and the rebuilding of metrics. Other values are worked out by
hand from the rows each test writes.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from custan.api import run
from custan.errors import CustanError, DataError, RunError
from custan.model import load_rules
from custan.model.ruleset import Input
from custan.sinks.text_formats import CsvSink
from custan.sources.payload import PayloadSource, client
from custan.sources.payload.client import RetryPolicy
from custan.sources.payload.source import text_of, value_at
from custan.sources.payload.urls import redact_url
from custan.testing.payload_server import ISO_8601_UTC, PayloadServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
SAMPLE_TRANSACTIONS = SAMPLE / "transactions.csv"
RULES_FILES = sorted((ROOT / "rules").glob("*.yaml"))
KEY = "test_secret_key_payload_source"
FAST_RETRY = RetryPolicy(attempts=6, base_seconds=0.01, max_wait_seconds=0.05)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample_server():
    with PayloadServer.from_dir(SAMPLE, key=KEY) as server:
        yield server


@pytest.fixture
def server():
    with PayloadServer.from_dir(SAMPLE, key=KEY) as running:
        yield running


def payload_source(server, **options) -> PayloadSource:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("environ", {"PAYLOAD_API_KEY": KEY})
    spec = Input(
        kind="payload", url=server.url, api_version=options.pop("version", None)
    )
    return PayloadSource(spec, **options)


def output_of(rules, **options) -> tuple[str, list]:
    """The CSV text a run writes and its summary values."""
    # A fixed now keeps files that use as_of: now comparable across two runs.
    result = run(rules, now=NOW, **options)
    try:
        stream = io.StringIO()
        CsvSink().write(result, stream)
        summary = [(item.name, item.value) for item in result.summary]
    finally:
        result.close()
    return stream.getvalue(), summary


def files_output(rules) -> tuple[str, list]:
    return output_of(rules, data=str(SAMPLE_TRANSACTIONS))


def write_rules(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: 1\nsource:\n  path: {SAMPLE_TRANSACTIONS}\n{body}")
    return path


def grouped(requests) -> list:
    return [r for r in requests if "group_by" in r.query]


def plain(requests) -> list:
    return [r for r in requests if "group_by" not in r.query and "max" not in r.query]


@pytest.mark.parametrize("rules_path", RULES_FILES, ids=lambda path: path.name)
@pytest.mark.parametrize("pushdown", [True, False], ids=["pushdown", "fetched"])
def test_rules_file_matches_files_source(sample_server, rules_path, pushdown):
    rules = load_rules(rules_path)
    if rules.source.columns or rules.source.format not in (None, "csv"):
        pytest.skip("the file maps its own columns, so the sample CSV does not fit it")
    # Expected: the files source over the same CSV the server was loaded from.
    expected = files_output(rules)
    source = payload_source(sample_server, pushdown=pushdown)
    assert output_of(rules, data=None, source=source) == expected


def test_rfm_pushdown_sends_one_row_per_customer(sample_server):
    sample_server.clear_requests()
    source = payload_source(sample_server)
    run(ROOT / "rules" / "rfm.yaml", source=source).close()
    requests = sample_server.requests
    # One ungrouped max(created_at), then one grouped query: a page with the
    # 32 customers who have processed payments (count by hand in
    # transactions.csv: acct_0001..acct_0032 all do) and an empty page.
    assert len(requests) == 3
    assert [r.rows for r in requests] == [1, 32, 0]
    assert len(grouped(requests)) == 2
    assert "type=payment" in requests[1].query
    assert "status=processed" in requests[1].query


PUSHED_RULES = """
filters:
  - type = 'payment'
  - status in ('processed', 'authorized')
  - amount > 1
metrics:
  total: {agg: sum, of: amount}
  mean: {agg: avg, of: amount}
  smallest: {agg: min, of: amount}
  largest: {agg: max, of: amount}
  first_seen: {agg: min, of: created_at}
  purchases: {agg: count}
  with_method: {agg: count, of: sender.method_id}
  big: {agg: count, where: "amount >= 1000"}
  recent: {agg: sum, of: amount, window: 30 days}
  not_first_method: {agg: count, where: "sender.method_id not in ('pm_0001_0')"}
  usual_method: {agg: mode, of: sender.method_id}
  usual_day: {agg: mode, of: day_of_week(created_at)}
  usual_hour: {agg: mode, of: hour(created_at)}
output:
  sort: [-total]
"""


def test_pushed_shapes_match_files_source(server, tmp_path):
    rules = write_rules(tmp_path, PUSHED_RULES)
    expected = files_output(rules)
    actual = output_of(rules, source=payload_source(server))
    assert actual == expected
    assert plain(server.requests) == []


def test_mode_day_of_week_uses_iso_numbers(tmp_path):
    # acct_a pays twice on Sunday 2026-11-01 and twice on Monday 2026-11-02.
    # ISO numbers Monday 1 and Sunday 7, so the tie goes to Monday (1); with
    # MySQL's numbering (Sunday 1) it would wrongly go to Sunday.
    rows = [
        {
            "id": f"t{n}",
            "type": "payment",
            "status": "processed",
            "amount": "10.00",
            "created_at": day,
            "sender.account_id": "acct_a",
            "sender.method_id": "pm_1",
        }
        for n, day in enumerate(
            [
                "2026-11-01 10:00:00",
                "2026-11-01 11:00:00",
                "2026-11-02 10:00:00",
                "2026-11-02 12:00:00",
            ]
        )
    ]
    rules = write_rules(
        tmp_path,
        """
metrics:
  usual_day: {agg: mode, of: day_of_week(created_at)}
  usual_hour: {agg: mode, of: hour(created_at)}
  mean: {agg: avg, of: amount}
""",
    )
    with PayloadServer.from_records(rows, key=KEY) as server:
        result = run(rules, source=payload_source(server))
        rows_out = [row for batch in result.batches() for row in batch]
        result.close()
        assert plain(server.requests) == []
    # Hours: 10 twice, 11 and 12 once each, so the mode is 10.
    # Mean: 40.00 / 4 = 10.
    assert rows_out == [("acct_a", 1, 10, Decimal("10"))]


def test_avg_is_exact_decimal(tmp_path):
    # 0.10 + 0.10 + 0.20 = 0.40 over 3 payments: 0.1333… kept to 12 places,
    # where a float average would be 0.13333333333333333.
    rows = [
        {
            "id": f"t{n}",
            "type": "payment",
            "status": "processed",
            "amount": amount,
            "created_at": f"2026-11-0{n + 1} 10:00:00",
            "sender.account_id": "acct_a",
        }
        for n, amount in enumerate(["0.10", "0.10", "0.20"])
    ]
    rules = write_rules(tmp_path, "metrics:\n  mean: {agg: avg, of: amount}\n")
    with PayloadServer.from_records(rows, key=KEY) as server:
        result = run(rules, source=payload_source(server))
        (row,) = [row for batch in result.batches() for row in batch]
        result.close()
    assert row[1] == Decimal("0.133333333333")


FETCHED_RULES = """
filters:
  - type = 'payment'
  - status = 'processed'
metrics:
  opening: {agg: first, of: amount}
  closing: {agg: last, of: amount}
  total: {agg: sum, of: amount}
  above_mean: {agg: count, where: "amount > total / 10"}
output:
  sort: [-total]
"""


def test_unpushable_metrics_fetch_transactions(server, tmp_path):
    rules = write_rules(tmp_path, FETCHED_RULES)
    expected = files_output(rules)
    actual = output_of(rules, source=payload_source(server))
    assert actual == expected
    fetched = plain(server.requests)
    assert fetched, "first, last and a where on a metric need the transactions"
    # The filters travel with the request, so only processed payments come back.
    assert all("type=payment" in r.query for r in fetched)
    assert all("fields" in r.query for r in fetched)


def test_small_pages_in_flight_give_same_rows(server):
    rules = load_rules(ROOT / "rules" / "rfm.yaml")
    expected = files_output(rules)
    source = payload_source(server, pushdown=False, page_size=7, max_in_flight=3)
    assert output_of(rules, source=source) == expected
    offsets = [
        r.query.split("offset=")[1].split("&")[0] for r in plain(server.requests)
    ]
    assert len(offsets) == len(set(offsets)), "no page is fetched twice"


@pytest.mark.parametrize("name", ["rfm.yaml", "payment_methods.yaml", "btyd.yaml"])
def test_api_version_v1_matches_files(server, name):
    # One file per route: customer aggregates, expanded groups, transactions.
    rules = load_rules(ROOT / "rules" / name)
    expected = files_output(rules)
    assert output_of(rules, source=payload_source(server, version="v1")) == expected
    assert all("sender" not in r.query for r in server.requests)


def test_iso_timestamps_read_the_same(tmp_path):
    rules = load_rules(ROOT / "rules" / "rfm.yaml")
    expected = files_output(rules)
    with PayloadServer.from_dir(
        SAMPLE, key=KEY, timestamp_format=ISO_8601_UTC
    ) as server:
        for pushdown in (True, False):
            source = payload_source(server, pushdown=pushdown)
            assert output_of(rules, source=source) == expected


def test_value_at_reads_flat_and_nested_rows():
    flat = {"sender.account_id": "acct_a", "sum(amount)": Decimal("1.10")}
    nested = {"sender": {"account_id": "acct_a"}, "status": {"value": "processed"}}
    assert value_at(flat, "sender.account_id") == "acct_a"
    assert value_at(nested, "sender.account_id") == "acct_a"
    assert value_at(nested, "status") == "processed"
    assert value_at({"status": "processed"}, "status") == "processed"
    assert value_at(nested, "sender.method_id") is None
    assert text_of(Decimal("1E+2")) == "100"


def test_pushdown_100k_rows_per_customer(tmp_path):
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    # Row i: customer i // 100 (so rows 0..99 are acct_0000), amount
    # (i % 100) + 0.25, a refund when i % 10 = 0, one minute apart from 2026-01-01.
    connection.execute("""
        CREATE TABLE transactions AS SELECT
            'txn_' || i AS id,
            CASE WHEN i % 10 = 0 THEN 'refund' ELSE 'payment' END AS type,
            'processed' AS status,
            CAST((i % 100) + 0.25 AS DECIMAL(18,2)) AS amount,
            TIMESTAMPTZ '2026-01-01 00:00:00+00' + INTERVAL 1 MINUTE * i AS created_at,
            'acct_' || lpad(CAST(i // 100 AS VARCHAR), 4, '0') AS "sender.account_id",
            'pm_' || (i % 3) AS "sender.method_id"
        FROM range(100000) AS t(i)
    """)
    with PayloadServer(connection, key=KEY) as server:
        text, summary = output_of(
            ROOT / "rules" / "rfm.yaml", source=payload_source(server)
        )
        requests = server.requests
    # Each customer's 100 rows pay (0..99 without 0, 10, …, 90) = 4950 - 450 =
    # 4500 plus 90 × 0.25 = 22.50, so 4522.50 in 90 purchases; 1000 customers
    # give 4,522,500.00.
    assert dict(summary) == {"customers": 1000, "revenue": Decimal("4522500.0000")}
    lines = text.splitlines()
    assert len(lines) == 1 + 1000
    assert lines[1].split(",")[3:5] == ["90", "4522.50"]
    # max(created_at), then the 1000 customers in one page and an empty page.
    assert len(requests) <= 4
    assert sum(r.rows for r in requests) == 1 + 1000
    assert server.aggregations_run == 2


def test_rate_limits_and_unavailable_are_retried(server):
    rules = load_rules(ROOT / "rules" / "rfm.yaml")
    expected = files_output(rules)
    server.faults.rate_limit(3)
    server.faults.unavailable(1)
    assert output_of(rules, source=payload_source(server)) == expected
    statuses = [r.status for r in server.requests]
    assert statuses[:4] == [429, 429, 429, 503]
    assert statuses[4:] == [200] * (len(statuses) - 4)


def test_retry_after_is_honoured(server):
    rules = load_rules(ROOT / "rules" / "rfm.yaml")
    server.faults.rate_limit(1, retry_after=1)
    started = time.monotonic()
    output_of(rules, source=payload_source(server))
    # The fast policy waits at most 0.05 s, so a second means Retry-After ruled.
    assert time.monotonic() - started >= 1.0


def test_broken_bodies_are_retried(server):
    rules = load_rules(ROOT / "rules" / "rfm.yaml")
    expected = files_output(rules)
    server.faults.truncate(1, mode="content_length")
    server.faults.truncate(1, mode="cut_json")
    assert output_of(rules, source=payload_source(server)) == expected


def test_timeouts_end_in_clear_error(server):
    rules = load_rules(ROOT / "rules" / "rfm.yaml")
    server.faults.slow(0.5)
    source = payload_source(
        server, timeout=0.1, retry=RetryPolicy(attempts=2, base_seconds=0.01)
    )
    with pytest.raises(RunError, match="after 2 attempts.*timed out"):
        run(rules, source=source)


def test_other_errors_become_one_line(server):
    rules = load_rules(ROOT / "rules" / "rfm.yaml")
    server.faults.fail_always(500)
    with pytest.raises(RunError) as caught:
        run(rules, source=payload_source(server))
    message = str(caught.value)
    assert "\n" not in message
    assert "HTTP 500 InternalServerError: Injected failure with status 500" in message
    # A 500 is not retried: one request only.
    assert len(server.requests) == 1


@pytest.fixture
def payload_env(monkeypatch, server):
    monkeypatch.setenv("PAYLOAD_API_KEY", KEY)
    monkeypatch.setenv("PAYLOAD_API_URL", server.url)
    monkeypatch.delenv("PAYLOAD_API_VERSION", raising=False)
    monkeypatch.setattr(client, "DEFAULT_RETRY", FAST_RETRY)
    return server


def test_cli_source_payload_writes_same_csv(custan, payload_env, tmp_path):
    rules = ROOT / "rules" / "rfm.yaml"
    from_files = custan("run", rules, "--format", "csv")
    out = tmp_path / "out.csv"
    outcome = custan("run", rules, "--source", "payload", "-o", out, "-q")
    assert outcome.code == 0, outcome.err
    assert out.read_text() == from_files.out
    assert list(csv.reader(io.StringIO(out.read_text())))[0][0] == "customer_id"


def test_cli_failing_server_exits_1_without_output(custan, payload_env, tmp_path):
    payload_env.faults.fail_always(503)
    out = tmp_path / "out.csv"
    outcome = custan(
        "run", ROOT / "rules" / "rfm.yaml", "--source", "payload", "-o", out
    )
    assert outcome.code == 1
    assert "failed after 6 attempts" in outcome.err
    assert "HTTP 503" in outcome.err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_wrong_key_names_variable_not_key(
    custan, payload_env, monkeypatch, tmp_path
):
    wrong = "test_secret_key_wrong_one"
    monkeypatch.setenv("PAYLOAD_API_KEY", wrong)
    encoded = base64.b64encode(f"{wrong}:".encode()).decode()
    out = tmp_path / "out.csv"
    outcome = custan(
        "--debug", "run", ROOT / "rules" / "rfm.yaml", "--source", "payload", "-o", out
    )
    assert outcome.code == 1
    assert "HTTP 401" in outcome.err
    assert "PAYLOAD_API_KEY" in outcome.err
    assert wrong not in outcome.err + outcome.out
    assert encoded not in outcome.err + outcome.out
    assert not out.exists()


def test_wrong_key_error_text_hides_key(server):
    wrong = "test_secret_key_wrong_two"
    source = payload_source(server, environ={"PAYLOAD_KEY_B": wrong})
    source.settings = source.settings.__class__(server.url, "v2", "PAYLOAD_KEY_B")
    with pytest.raises(RunError) as caught:
        run(ROOT / "rules" / "rfm.yaml", source=source)
    assert "PAYLOAD_KEY_B" in str(caught.value)
    assert wrong not in str(caught.value)
    assert wrong not in repr(source)


def test_missing_key_names_the_variable(server):
    source = payload_source(server, environ={})
    with pytest.raises(CustanError, match="PAYLOAD_API_KEY is not set"):
        run(ROOT / "rules" / "rfm.yaml", source=source)
    assert server.requests == []


def test_rules_file_payload_source_reads_environment(custan, payload_env, tmp_path):
    rules = tmp_path / "rules.yaml"
    text = (ROOT / "rules" / "rfm.yaml").read_text()
    text = text.replace(
        "  path: ../data/sample/transactions.csv",
        "  kind: payload\n  key_env: PAYLOAD_API_KEY",
    )
    rules.write_text(text)
    from_files = custan("run", ROOT / "rules" / "rfm.yaml", "--format", "csv")
    outcome = custan("run", rules, "--format", "csv", "-q")
    assert outcome.code == 0, outcome.err
    assert outcome.out == from_files.out
    assert payload_env.requests


def test_cli_progress_hidden_off_terminal(custan, payload_env, tmp_path):
    # Standard error is captured, not a terminal, so no progress display is drawn.
    out = tmp_path / "out.csv"
    outcome = custan(
        "run", ROOT / "rules" / "rfm.yaml", "--source", "payload", "-o", out
    )
    assert outcome.code == 0, outcome.err
    # 32 customers, as counted in test_rfm_pushdown_sends_one_row_per_customer.
    assert outcome.err == f"wrote 32 rows to {out}\n"


def test_cli_sql_source_payload_reads_customer_metrics(custan, payload_env):
    outcome = custan("sql", ROOT / "rules" / "rfm.yaml", "--source", "payload")
    assert outcome.code == 0, outcome.err
    assert "customer_metrics" in outcome.out
    assert "read_csv" not in outcome.out
    assert payload_env.requests == []


def test_method_preferences_use_groups(server):
    rules = ROOT / "rules" / "payment_methods.yaml"
    expected = files_output(load_rules(rules))
    assert output_of(rules, source=payload_source(server)) == expected
    assert plain(server.requests) == []
    # One row per customer and method among processed payments, counted
    # straight from the CSV.
    pairs = (
        duckdb.connect()
        .execute(
            'SELECT count(DISTINCT ("sender.account_id", "sender.method_id")) '
            "FROM read_csv(?, all_varchar = true) "
            "WHERE type = 'payment' AND status = 'processed'",
            [str(SAMPLE_TRANSACTIONS)],
        )
        .fetchone()[0]
    )
    assert sum(r.rows for r in grouped(server.requests)) == pairs


def test_groups_expand_to_exact_counts_and_sums(tmp_path):
    # acct_a: pm_1 pays 10.00 and 20.00 on Monday 2026-11-02 at 09:xx,
    # pm_2 pays 5.00 at 09:30 Monday and 6.00 at 18:00 on Tuesday 2026-11-03.
    # Methods tie at 2 payments each, so the mode is the smaller, pm_1, with
    # 2 uses and 30.00. Slot = ISO day × 100 + hour: Monday 9 (109) three
    # times, Tuesday 18 (218) once, so the peak is 109 with 3 payments.
    payments = [
        ("pm_1", "10.00", "2026-11-02 09:00:00"),
        ("pm_1", "20.00", "2026-11-02 09:10:00"),
        ("pm_2", "5.00", "2026-11-02 09:30:00"),
        ("pm_2", "6.00", "2026-11-03 18:00:00"),
    ]
    rows = [
        {
            "id": f"t{n}",
            "type": "payment",
            "status": "processed",
            "amount": amount,
            "created_at": created_at,
            "sender.account_id": "acct_a",
            "sender.method_id": method,
        }
        for n, (method, amount, created_at) in enumerate(payments)
    ]
    rules = write_rules(
        tmp_path,
        """
metrics:
  method: {agg: mode, of: sender.method_id}
  uses: {agg: count, where: sender.method_id = method}
  spent: {agg: sum, of: amount, where: sender.method_id = method}
  slot: {agg: mode, of: day_of_week(created_at) * 100 + hour(created_at)}
  in_slot: {agg: count, where: day_of_week(created_at) * 100 + hour(created_at) = slot}
output:
  columns: [method, uses, spent, slot, in_slot]
""",
    )
    with PayloadServer.from_records(rows, key=KEY) as server:
        result = run(rules, source=payload_source(server))
        rows_out = [row for batch in result.batches() for row in batch]
        result.close()
        requests = server.requests
    assert rows_out == [("acct_a", "pm_1", 2, Decimal("30.0000"), 109, 3)]
    assert plain(requests) == []
    # Groups: (pm_1, Mon, 9), (pm_2, Mon, 9), (pm_2, Tue, 18).
    assert sum(r.rows for r in grouped(requests)) == 3


def test_amount_in_where_fetches_transactions(server, tmp_path):
    rules = write_rules(
        tmp_path,
        """
filters:
  - status = 'processed'
metrics:
  method: {agg: mode, of: sender.method_id}
  big_uses: {agg: count, where: sender.method_id = method and amount > 500}
""",
    )
    expected = files_output(rules)
    assert output_of(rules, source=payload_source(server)) == expected
    # A where on amount splits groups, so the transactions are fetched.
    assert plain(server.requests)


def test_refused_connection_ends_in_clear_error():
    with PayloadServer.from_dir(SAMPLE, key=KEY) as server:
        source = payload_source(server)
    # The server has closed its port, so every attempt is refused.
    with pytest.raises(RunError, match="after 6 attempts.*connection failed"):
        run(ROOT / "rules" / "rfm.yaml", source=source)


class CappedServer(PayloadServer):
    """A server that returns at most 3 rows a page, whatever the limit."""

    def _list(self, resource, query):
        return super()._list(resource, query)[:3]


def test_capped_page_size_is_an_error():
    rules = ROOT / "rules" / "rfm.yaml"
    with CappedServer.from_dir(SAMPLE, key=KEY) as server:
        source = payload_source(server, page_size=5)
        # Page 1 (offset 0) brings 3 of 5 rows and page 2 (offset 5) brings
        # more, so rows 3 and 4 would have been skipped without the check.
        with pytest.raises(CustanError, match="caps the page size"):
            run(rules, source=source)


def wait_until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the condition"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "as_of",
    [[], ["--as-of", "2026-12-01"]],
    ids=["latest-query", "page-threads"],
)
def test_ctrl_c_stops_request_in_flight(server, tmp_path, as_of):
    # The server holds each request for 30 s, far past the 5 s allowed below.
    # Without --as-of the first request asks for the newest created_at on the
    # main thread; with it, the first request is a page on a worker thread.
    server.faults.slow(30)
    environ = {**os.environ, "PAYLOAD_API_KEY": KEY, "PAYLOAD_API_URL": server.url}
    environ.pop("PAYLOAD_API_VERSION", None)
    out = tmp_path / "out.csv"
    command = [sys.executable, "-m", "custan", "run", str(ROOT / "rules" / "rfm.yaml")]
    command += ["--source", "payload", "-o", str(out), *as_of]
    process = subprocess.Popen(
        command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: server.requests_received >= 1, 30)
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, err = process.communicate(timeout=10)
        seconds = time.monotonic() - interrupted
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert err == "interrupted\n"
    assert seconds < 5
    assert not out.exists()


class OffsetIgnoringServer(PayloadServer):
    """A server that returns the first page for every offset.

    After 50 requests it returns no rows, so that a client which misses the
    repeat ends with wrong rows instead of running forever.
    """

    def _list(self, resource, query):
        if self.request_count >= 50:
            return []
        return super()._list(resource, dataclasses.replace(query, offset=0))


@pytest.mark.parametrize("pushdown", [True, False], ids=["pushdown", "fetched"])
def test_server_ignoring_offset_is_an_error(pushdown):
    rules = ROOT / "rules" / "rfm.yaml"
    with OffsetIgnoringServer.from_dir(SAMPLE, key=KEY) as server:
        source = payload_source(server, page_size=5, pushdown=pushdown)
        with pytest.raises(DataError) as caught:
            run(rules, source=source)
    # Page 1 (offset 0) is full, so pages 2 and 3 are requested together, and
    # page 2 (offset 5) is the first to come back the same as page 1.
    assert str(caught.value) == (
        "Payload returned the same 5 rows at offset 5 as at offset 0, so it "
        "ignores the offset parameter; check that the URL points at the Payload API"
    )


class LimitIgnoringServer(PayloadServer):
    """A server that returns all rows from the offset on, whatever the limit."""

    def _list(self, resource, query):
        return super()._list(resource, dataclasses.replace(query, limit=None))


def test_server_ignoring_limit_is_an_error():
    with LimitIgnoringServer.from_dir(SAMPLE, key=KEY) as server:
        source = payload_source(server, page_size=5)
        with pytest.raises(DataError) as caught:
            run(ROOT / "rules" / "rfm.yaml", source=source)
    # The first grouped page contains all 32 customers, counted in
    # test_rfm_pushdown_sends_one_row_per_customer.
    assert str(caught.value) == (
        "Payload returned 32 rows at offset 0 for a page of at most 5, so it "
        "ignores the limit parameter; check that the URL points at the Payload API"
    )


@pytest.mark.parametrize(
    ("url", "shown", "problem"),
    [
        ("notaurl", "notaurl", "it has no scheme"),
        ("ftp://x", "ftp://x", "its scheme is ftp"),
        ("http://", "http://", "it has no host"),
        (
            "ftp://user:sk_test_SECRET1@x/?key=sk_test_SECRET2",
            "ftp://x/",
            "its scheme is ftp",
        ),
    ],
)
def test_cli_invalid_url_fails_at_once(
    custan, payload_env, monkeypatch, url, shown, problem
):
    monkeypatch.setenv("PAYLOAD_API_URL", url)
    started = time.monotonic()
    outcome = custan("run", ROOT / "rules" / "rfm.yaml", "--source", "payload")
    assert outcome.code == 1
    assert outcome.err == (
        f"error: invalid Payload API URL {shown!r} in the environment variable "
        f"PAYLOAD_API_URL ({problem}); expected an http:// or https:// URL, "
        "such as https://api.payload.com\n"
    )
    # No attempt is made, so nothing waits for a retry.
    assert time.monotonic() - started < 1
    assert payload_env.requests == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://x", "its scheme is ftp"),
        ("http://a b/", "it contains a space or a control character"),
        ("http://h:abc/", "Port could not be cast to integer value as 'abc'"),
        # Only encoding the host name for the request finds that xn--a is not
        # valid IDNA, so the client reports this one.
        ("http://xn--a/", "Codepoint U+0080 at position 1 of '\\x80' not allowed"),
    ],
)
def test_invalid_url_in_rules_file_names_setting(url, problem):
    spec = Input(kind="payload", url=url)
    source = PayloadSource(spec, environ={"PAYLOAD_API_KEY": KEY})
    started = time.monotonic()
    with pytest.raises(RunError) as caught:
        run(ROOT / "rules" / "rfm.yaml", source=source)
    assert str(caught.value) == (
        f"invalid Payload API URL {url!r} in source.url of the rules file "
        f"({problem}); expected an http:// or https:// URL, "
        "such as https://api.payload.com"
    )
    assert time.monotonic() - started < 1


def test_retry_after_past_limit_names_wait(server):
    server.faults.rate_limit(1, retry_after=99999)
    started = time.monotonic()
    with pytest.raises(RunError) as caught:
        run(ROOT / "rules" / "rfm.yaml", source=payload_source(server))
    # The first request gets the 429, and 99999 s is past the default 120 s limit.
    pattern = (
        r"Payload request failed after 1 attempt in \d+\.\d s: HTTP 429; the "
        r"server asked to wait 99999 s \(Retry-After\), which goes past the "
        r"retry limit of 120 s; try again later"
    )
    assert re.fullmatch(pattern, str(caught.value)), str(caught.value)
    assert time.monotonic() - started < 5
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:sk_test_SECRET@127.0.0.1:8/", "http://127.0.0.1:8/"),
        ("https://h.example/v2/?key=sk_test_SECRET#x", "https://h.example/v2/"),
        ("https://[::1]:9/", "https://[::1]:9/"),
        ("user:sk_test_SECRET@host", "host"),
        ("notaurl", "notaurl"),
    ],
)
def test_redact_url_drops_credentials(url, shown):
    assert redact_url(url) == shown


def test_cli_url_credentials_never_shown(custan, payload_env, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "sk_test_SECRET123"
    port = payload_env.url.split(":")[2].rstrip("/")
    monkeypatch.setenv(
        "PAYLOAD_API_URL", f"http://user:{secret}@127.0.0.1:{port}/?token={secret}"
    )
    payload_env.faults.fail_always(503)
    outcome = custan(
        "--debug", "run", ROOT / "rules" / "rfm.yaml", "--source", "payload"
    )
    assert outcome.code == 1
    assert f"the API at http://127.0.0.1:{port}/ may be down" in outcome.err
    assert secret not in outcome.err + outcome.out
    assert secret not in caplog.text
    # The log lines that name the URL were written, and show it without secrets.
    assert f"from Payload at http://127.0.0.1:{port}/" in caplog.text


def test_key_typed_as_key_env_not_shown(custan, payload_env, tmp_path):
    rules = tmp_path / "rules.yaml"
    text = (ROOT / "rules" / "rfm.yaml").read_text()
    text = text.replace(
        "  path: ../data/sample/transactions.csv",
        "  kind: payload\n  key_env: sk_live_ABCDEF",
    )
    rules.write_text(text)
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 2
    # source: is on line 10 of rfm.yaml, and the error points at it.
    assert outcome.err == (
        f"error: {rules}:10:1: source.key_env must name an environment variable, "
        "such as PAYLOAD_API_KEY, that contains the Payload secret key\n"
    )
    assert "sk_live_ABCDEF" not in outcome.err + outcome.out


def test_empty_key_is_called_empty(server):
    source = payload_source(server, environ={"PAYLOAD_API_KEY": ""})
    with pytest.raises(RunError) as caught:
        run(ROOT / "rules" / "rfm.yaml", source=source)
    assert str(caught.value) == (
        "the environment variable PAYLOAD_API_KEY is empty; "
        "put the Payload secret key in it"
    )
    assert server.requests == []


class BadValueServer(PayloadServer):
    """A server that puts one bad value in the first row of each grouped response."""

    def __init__(self, *args, field: str, value, **options) -> None:
        super().__init__(*args, **options)
        self.field = field
        self.value = value

    def _list(self, resource, query):
        rows = super()._list(resource, query)
        if query.group_by and rows:
            # A new dict, so the server's cache of responses keeps the true value.
            rows = [{**rows[0], self.field: self.value}, *rows[1:]]
        return rows


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "sum(amount)",
            "abc",
            "'abc'; expected a decimal number with at most 34 digits before the point",
        ),
        (
            "sum(amount)",
            1e300,
            "1E+300; expected a decimal number with at most 34 digits before the point",
        ),
        (
            "sum(amount)",
            True,
            "true; expected a decimal number with at most 34 digits before the point",
        ),
        ("max(created_at)", "yesterday", "'yesterday'; expected a timestamp"),
    ],
    ids=["text", "huge", "boolean", "timestamp"],
)
def test_cli_invalid_value_exits_1_without_output(
    custan, monkeypatch, tmp_path, field, value, expected
):
    with BadValueServer.from_dir(SAMPLE, key=KEY, field=field, value=value) as server:
        monkeypatch.setenv("PAYLOAD_API_KEY", KEY)
        monkeypatch.setenv("PAYLOAD_API_URL", server.url)
        monkeypatch.delenv("PAYLOAD_API_VERSION", raising=False)
        out = tmp_path / "out.csv"
        outcome = custan(
            "run", ROOT / "rules" / "rfm.yaml", "--source", "payload", "-o", out
        )
    assert outcome.code == 1
    # The server writes 1e300 as the JSON number 1e+300, read as Decimal 1E+300.
    assert outcome.err == (
        f"error: Payload returned an invalid value for {field}: {expected}\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_abandoned_pages_log_no_retries(server, caplog):
    # Pages of 7 rows, 3 in flight: when the empty page ends the run, later
    # pages are still waiting on the slowed server as the client closes.
    server.faults.slow(0.2)
    caplog.set_level(logging.WARNING, logger="custan.sources.payload")
    source = payload_source(server, pushdown=False, page_size=7, max_in_flight=3)
    run(ROOT / "rules" / "rfm.yaml", source=source).close()
    # Give the abandoned requests time to fail after the run.
    time.sleep(0.5)
    assert caplog.records == []


def test_unsupported_api_version_is_rules_error(monkeypatch, custan):
    monkeypatch.setenv("PAYLOAD_API_KEY", "k")
    monkeypatch.setenv("PAYLOAD_API_VERSION", "v3")
    outcome = custan("run", ROOT / "rules" / "rfm.yaml", "--source", "payload")
    assert outcome.code == 2
    assert "unsupported Payload API version 'v3' in PAYLOAD_API_VERSION" in outcome.err
