"""The webhook sink against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from custan.cli import main

TRANSACTIONS = """\
id,type,status,amount,created_at,sender.account_id,sender.method_id
t1,payment,processed,10.10,2024-01-01 00:00:00,acct_a,pm_a
t2,payment,processed,0.20,2024-01-02 00:00:00,acct_a,pm_a
t3,payment,processed,99999999999.99,2024-01-03 00:00:00,acct_b,pm_b
t4,payment,processed,5.00,2024-01-04 00:00:00,acct_c,pm_c
t5,payment,declined,7.00,2024-01-04 00:00:00,acct_c,pm_c
"""

RULES = """\
version: 1
name: Totals
requires: [custan-webhook]
source: {path: tx.csv}
filters: ["status = 'processed'"]
metrics:
  total: {agg: sum, of: amount}
output:
  columns: [total]
  sort: [customer_id]
"""


class Receiver(BaseHTTPRequestHandler):
    """Stores every request and responds with the next scripted status."""

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        server = self.server
        server.requests.append({"headers": dict(self.headers), "body": body})
        status = server.statuses.pop(0) if server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no" if status >= 400 else b"ok")

    def log_message(self, format, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.requests = []
    server.statuses = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def rules(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "tx.csv").write_text(TRANSACTIONS)
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    monkeypatch.setenv("CUSTAN_WEBHOOK_BACKOFF", "0.01")
    return path


def url_of(server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/hook"


def post(rules: Path, capsys, *options: str):
    code = main(["run", str(rules), "--format", "webhook", *options])
    return code, capsys.readouterr()


def test_rows_posted_in_batches(receiver, rules, capsys, monkeypatch):
    monkeypatch.setenv("CUSTAN_WEBHOOK_BATCH_SIZE", "2")
    code, captured = post(rules, capsys, "--output", url_of(receiver))
    assert code == 0, captured.err
    # Three customers in batches of two: two requests.
    assert len(receiver.requests) == 2
    first = json.loads(receiver.requests[0]["body"], parse_float=Decimal)
    second = json.loads(receiver.requests[1]["body"], parse_float=Decimal)
    assert first["rules"] == "Totals"
    assert (first["batch"], first["batches"]) == (1, 2)
    assert (second["batch"], second["batches"]) == (2, 2)
    assert first["run"] == second["run"]
    # acct_a: 10.10 + 0.20 = 10.30; acct_b one payment; acct_c only 5.00 processed.
    assert first["rows"] == [
        {"customer_id": "acct_a", "total": Decimal("10.30")},
        {"customer_id": "acct_b", "total": Decimal("99999999999.99")},
    ]
    assert second["rows"] == [{"customer_id": "acct_c", "total": Decimal("5.00")}]
    assert captured.out == ""


def test_money_sent_as_exact_json_numbers(receiver, rules, capsys):
    code, captured = post(rules, capsys, "--output", url_of(receiver))
    assert code == 0, captured.err
    body = receiver.requests[0]["body"].decode()
    # Through a float, json.dumps would write 10.3; the body keeps the cents.
    assert '"total": 10.30' in body
    assert '"total": 99999999999.99' in body


def test_url_and_headers_from_environment(receiver, rules, capsys, monkeypatch):
    monkeypatch.setenv("CUSTAN_WEBHOOK_URL", url_of(receiver))
    monkeypatch.setenv("CUSTAN_WEBHOOK_HEADER_AUTHORIZATION", "Bearer token-1")
    monkeypatch.setenv("CUSTAN_WEBHOOK_HEADER_X_TEAM", "growth")
    code, captured = post(rules, capsys)
    assert code == 0, captured.err
    headers = receiver.requests[0]["headers"]
    assert headers["Authorization"] == "Bearer token-1"
    assert headers["X-Team"] == "growth"
    assert headers["Content-Type"] == "application/json"


def test_retry_keeps_idempotency_key(receiver, rules, capsys, caplog):
    receiver.statuses = [503, 429]
    code, captured = post(rules, capsys, "--output", url_of(receiver))
    assert code == 0, captured.err
    # Two failures, then the third attempt of the one batch succeeds.
    assert len(receiver.requests) == 3
    keys = {request["headers"]["Idempotency-Key"] for request in receiver.requests}
    assert len(keys) == 1
    bodies = {request["body"] for request in receiver.requests}
    assert len(bodies) == 1
    retries = [record.getMessage() for record in caplog.records]
    assert len(retries) == 2
    assert retries[0].endswith("batch 1 of 1: HTTP 503; retrying in 0.01 s")
    # The backoff doubles: 0.01 s, then 0.02 s.
    assert retries[1].endswith("batch 1 of 1: HTTP 429; retrying in 0.02 s")


def test_batches_get_distinct_keys(receiver, rules, capsys, monkeypatch):
    monkeypatch.setenv("CUSTAN_WEBHOOK_BATCH_SIZE", "1")
    code, captured = post(rules, capsys, "--output", url_of(receiver))
    assert code == 0, captured.err
    keys = [request["headers"]["Idempotency-Key"] for request in receiver.requests]
    assert len(keys) == 3
    assert len(set(keys)) == 3


def test_gives_up_after_retries(receiver, rules, capsys, monkeypatch):
    monkeypatch.setenv("CUSTAN_WEBHOOK_RETRIES", "2")
    receiver.statuses = [503, 503, 503, 503]
    url = url_of(receiver)
    code, captured = post(rules, capsys, "--output", url)
    # One attempt and two retries.
    assert len(receiver.requests) == 3
    assert code == 1
    assert captured.err.endswith(
        f"error: webhook {url}, batch 1 of 1: failed after 3 attempts: HTTP 503\n"
    )


def test_client_error_not_retried(receiver, rules, capsys):
    receiver.statuses = [400]
    url = url_of(receiver)
    code, captured = post(rules, capsys, "--output", url)
    assert len(receiver.requests) == 1
    assert code == 1
    assert captured.err == (
        f"error: webhook {url}, batch 1 of 1: rejected with HTTP 400: no\n"
    )


def test_unreachable_webhook_reported(rules, capsys, monkeypatch):
    monkeypatch.setenv("CUSTAN_WEBHOOK_RETRIES", "1")
    # Bind a port, then close it, so nothing listens there.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    url = url_of(server)
    server.server_close()
    code, captured = post(rules, capsys, "--output", url)
    assert code == 1
    assert f"error: webhook {url}, batch 1 of 1: failed after 2 attempts: Connect" in (
        captured.err
    )


def test_missing_url_is_usage_error(rules, capsys, monkeypatch):
    monkeypatch.delenv("CUSTAN_WEBHOOK_URL", raising=False)
    code, captured = post(rules, capsys)
    assert code == 2
    assert captured.err == (
        "error: the webhook format needs a URL; pass --output URL or set "
        "CUSTAN_WEBHOOK_URL\n"
    )


def test_invalid_batch_size_rejected(rules, capsys, monkeypatch):
    monkeypatch.setenv("CUSTAN_WEBHOOK_BATCH_SIZE", "0")
    code, captured = post(rules, capsys, "--output", "http://127.0.0.1:9/hook")
    assert code == 2
    assert captured.err == (
        "error: invalid CUSTAN_WEBHOOK_BATCH_SIZE '0'; "
        "expected a number of at least 1\n"
    )


def test_password_in_url_not_shown(receiver, rules, capsys):
    host, port = receiver.server_address[:2]
    secret_url = f"http://user:secret@{host}:{port}/hook?token=abc"
    code, captured = post(rules, capsys, "--output", secret_url)
    assert code == 0
    receiver.statuses = [400]
    code, captured = post(rules, capsys, "--output", secret_url)
    assert code == 1
    assert "secret" not in captured.err
    assert "abc" not in captured.err
