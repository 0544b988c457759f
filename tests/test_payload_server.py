"""Tests for the local Payload API server, over real HTTP with httpx and the SDK.

Expected values are worked out by hand from tests/data/payload_server: twelve
transactions of four accounts (acct_a..acct_d), all timestamps in UTC.
"""

import base64
import json
import logging
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import payload
import pytest

from custan.testing.payload_server import ISO_8601_UTC, PayloadServer

DATA = Path(__file__).parent / "data" / "payload_server"
KEY = "test_secret_key_local"

# Processed payments per account, from transactions.csv:
#   acct_a: txn_01 100.10 + txn_02 250.25             = 350.35  (2)
#   acct_b: txn_05 1234.56 + txn_06 0.10 + txn_07 0.20 = 1234.86 (3)
#   acct_c: txn_08 75.00                               = 75.00   (1)
#   acct_d: txn_11 60.00 + txn_12 40.00                = 100.00  (2)
# txn_03 and txn_10 are refunds, txn_04 is voided and txn_09 declined.
CLV_ROWS = [
    ("acct_b", "1234.86", 3),
    ("acct_a", "350.35", 2),
    ("acct_d", "100.00", 2),
    ("acct_c", "75.00", 1),
]


@pytest.fixture
def server():
    with PayloadServer.from_dir(DATA, key=KEY) as running:
        yield running


def get(server, path, params=None, version=None, auth=(KEY, "")):
    headers = {"X-API-Version": version} if version else {}
    return httpx.get(
        server.url + path, params=params, headers=headers, auth=auth, timeout=10
    )


def ids(response):
    return [row["id"] for row in response.json()["values"]]


def sdk_session(server, version="v2"):
    return payload.Session(KEY, api_url=server.url, api_version=version)


# --- the official SDK running the reporting guide's queries -----------------


def test_sdk_customer_lifetime_value(server):
    pl = sdk_session(server)
    rows = (
        pl.Transaction.select(
            pl.attr.sender.account_id,
            pl.attr.amount.sum(),
            pl.attr.amount.avg(),
            pl.attr.id.count(),
        )
        .filter_by(pl.attr.type == "payment", pl.attr.status == "processed")
        .group_by(pl.attr.sender.account_id)
        .order_by("desc(sum(amount))")
        .limit(50)
        .all()
    )
    assert [row["sender.account_id"] for row in rows] == [r[0] for r in CLV_ROWS]
    assert [row["sum(amount)"] for row in rows] == [1234.86, 350.35, 100.0, 75.0]
    assert [row["count(id)"] for row in rows] == [3, 2, 2, 1]
    # avg = sum / count: 1234.86 / 3, 350.35 / 2, 100 / 2, 75 / 1.
    averages = [row["avg(amount)"] for row in rows]
    assert averages == pytest.approx([411.62, 175.175, 50.0, 75.0])


def test_sdk_dayofweek_hour_grouping(server):
    pl = sdk_session(server)
    rows = (
        pl.Transaction.select(
            pl.attr.created_at.dayofweek(),
            pl.attr.created_at.hour(),
            pl.attr.amount.sum(),
            pl.attr.id.count(),
        )
        .filter_by(pl.attr.type == "payment", pl.attr.status == "processed")
        .group_by(pl.attr.created_at.dayofweek(), pl.attr.created_at.hour())
        .order_by("dayofweek(created_at)", "hour(created_at)")
        .all()
    )
    # MySQL numbering, 1 = Sunday. Sundays: txn_07 09:00 (0.20), txn_06 23:59
    # (0.10) and txn_08 23:30 (75.00). Fridays (6): txn_01 09:15, txn_11 14:59.
    # Saturdays (7): txn_12 09:30, txn_02 14:30 + txn_05 14:05.
    expected = [
        (1, 9, 0.20, 1),
        (1, 23, 75.10, 2),
        (6, 9, 100.10, 1),
        (6, 14, 60.00, 1),
        (7, 9, 40.00, 1),
        (7, 14, 1484.81, 2),
    ]
    actual = [
        (
            row["dayofweek(created_at)"],
            row["hour(created_at)"],
            row["sum(amount)"],
            row["count(id)"],
        )
        for row in rows
    ]
    assert actual == expected


def test_sdk_payment_method_grouping(server):
    pl = sdk_session(server)
    rows = (
        pl.Transaction.select(
            pl.attr.sender.method_id, pl.attr.amount.sum(), pl.attr.id.count()
        )
        .filter_by(pl.attr.type == "payment", pl.attr.status == "processed")
        .group_by(pl.attr.sender.method_id)
        .order_by("desc(count(id))", "sender[method_id]")
        .all()
    )
    # pm_b1 carries all three acct_b payments. Ties on count sort by method id.
    actual = [
        (row["sender.method_id"], row["sum(amount)"], row["count(id)"]) for row in rows
    ]
    assert actual == [
        ("pm_b1", 1234.86, 3),
        ("pm_d1", 100.0, 2),
        ("pm_a1", 100.10, 1),
        ("pm_a2", 250.25, 1),
        ("pm_c1", 75.0, 1),
    ]


def test_sdk_year_month_grouping(server):
    pl = sdk_session(server)
    rows = (
        pl.Transaction.select(
            pl.attr.created_at.year(),
            pl.attr.created_at.month(),
            pl.attr.amount.sum(),
            pl.attr.id.count(),
        )
        .filter_by(pl.attr.type == "payment", pl.attr.status == "processed")
        .group_by(pl.attr.created_at.year(), pl.attr.created_at.month())
        .order_by("year(created_at)", "month(created_at)")
        .all()
    )
    # 2023-12: txn_08. 2024-01: txn_01 + txn_02. 2024-02: txn_05 + txn_06.
    # 2024-03: txn_07 + txn_11 + txn_12 = 0.20 + 60 + 40.
    actual = [
        (
            row["year(created_at)"],
            row["month(created_at)"],
            row["sum(amount)"],
            row["count(id)"],
        )
        for row in rows
    ]
    assert actual == [
        (2023, 12, 75.0, 1),
        (2024, 1, 350.35, 2),
        (2024, 2, 1234.66, 2),
        (2024, 3, 100.20, 3),
    ]


def test_sdk_accounts_filter_by_ids(server):
    pl = sdk_session(server)
    accounts = pl.Account.filter_by(pl.attr.id == "acct_a|acct_c").all()
    assert [account.id for account in accounts] == ["acct_a", "acct_c"]
    assert all(isinstance(account, payload.Account) for account in accounts)
    assert accounts[1].created_at == "2023-12-01 00:00:00"


def test_sdk_v1_transactions_shape(server):
    pl = sdk_session(server, version=None)
    transaction = pl.Transaction.get("txn_05")
    assert transaction.customer_id == "acct_b"
    assert transaction.payment_method_id == "pm_b1"
    assert transaction.status == "processed"
    assert transaction.sender is None


def test_sdk_v1_customers_endpoint(server):
    pl = sdk_session(server, version=None)
    customers = pl.Customer.filter_by(pl.attr.created_at >= "2023-12-01").all()
    assert [customer.id for customer in customers] == ["acct_c", "acct_d"]
    assert all(isinstance(customer, payload.Customer) for customer in customers)


def test_sdk_sees_injected_errors(server):
    pl = sdk_session(server)
    server.faults.rate_limit(1)
    with pytest.raises(payload.TooManyRequests):
        pl.Transaction.filter_by(pl.attr.type == "payment").all()
    server.faults.unavailable(1)
    with pytest.raises(payload.ServiceUnavailable):
        pl.Transaction.filter_by(pl.attr.type == "payment").all()
    with pytest.raises(payload.InvalidAttributes):
        pl.Transaction.select(pl.attr.nonexistent).all()


# --- query-string forms -------------------------------------------------------


def test_list_params_encoded_brackets(server):
    # The SDK's own encoding: %5B and %5D for the brackets, %28 and %29 for parens.
    query = (
        "type=payment&status=processed&limit=50"
        "&fields%5B0%5D=sender%5Baccount_id%5D&fields%5B1%5D=sum%28amount%29"
        "&group_by%5B0%5D=sender%5Baccount_id%5D"
        "&order_by%5B0%5D=desc%28sum%28amount%29%29"
    )
    response = get(server, "transactions?" + query, version="v2")
    rows = response.json()["values"]
    assert [row["sender.account_id"] for row in rows] == [r[0] for r in CLV_ROWS]


def test_list_params_forms_agree(server):
    raw = (
        "transactions?type=payment&status=processed"
        "&fields[1]=sum(amount)&fields[0]=sender[account_id]"
        "&group_by[0]=sender[account_id]&order_by[0]=desc(sum(amount))"
    )
    repeated = (
        "transactions?type=payment&status=processed"
        "&fields=sender[account_id]&fields=sum(amount)"
        "&group_by=sender[account_id]&order_by=desc(sum(amount))"
    )
    joined = (
        "transactions?type=payment&status=processed"
        "&fields=sender[account_id],sum(amount)"
        "&group_by=sender[account_id]&order_by=desc(sum(amount)),sender[account_id]"
    )
    bodies = [get(server, path, version="v2").text for path in (raw, repeated, joined)]
    assert bodies[0] == bodies[1]
    assert bodies[0] == bodies[2]
    # fields[1] came before fields[0] in the URL, but the index sets the key order.
    first_row = json.loads(bodies[0])["values"][0]
    assert list(first_row) == ["sender.account_id", "sum(amount)"]


def test_order_by_several_keys(server):
    response = get(
        server, "transactions", {"order_by": "status,desc(amount)", "type": "refund"}
    )
    # Refunds are txn_03 (processed, 50.00) and txn_10 (voided, 10.00).
    assert ids(response) == ["txn_03", "txn_10"]


# --- exact numbers and formats ------------------------------------------------


def test_amounts_keep_exact_decimal_text(server):
    response = get(
        server,
        "transactions",
        {
            "fields": "sender[account_id],sum(amount),min(amount),max(amount)",
            "group_by": "sender[account_id]",
            "sender[account_id]": "acct_b",
        },
        version="v2",
    )
    # 1234.56 + 0.10 + 0.20 in binary floating point is 1234.8600000000001.
    assert '"sum(amount)":1234.86,' in response.text
    assert '"min(amount)":0.10,' in response.text
    assert '"max(amount)":1234.56}' in response.text
    parsed = json.loads(response.text, parse_float=Decimal)
    assert parsed["values"][0]["sum(amount)"] == Decimal("1234.86")


def test_date_functions_mysql_numbering(server):
    fields = [
        "year(created_at)",
        "month(created_at)",
        "monthname(created_at)",
        "day(created_at)",
        "dayname(created_at)",
        "dayofweek(created_at)",
        "dayofyear(created_at)",
        "weekofyear(created_at)",
        "hour(created_at)",
        "minute(created_at)",
        "second(created_at)",
        "unix_timestamp(created_at)",
    ]
    response = get(server, "transactions/txn_06", {"fields": ",".join(fields)})
    row = response.json()

    # txn_06 is 2024-02-04 23:59:59 UTC, a Sunday: day 31 + 4 = 35 of the year,
    # ISO week 5 (2024-01-01 was a Monday), and 1704067200 (2024-01-01) +
    # 34 * 86400 + 86399 = 1707091199 seconds since the epoch.
    assert row["year(created_at)"] == 2024
    assert row["month(created_at)"] == 2
    assert row["monthname(created_at)"] == "February"
    assert row["day(created_at)"] == 4
    assert row["dayname(created_at)"] == "Sunday"
    assert row["dayofweek(created_at)"] == 1
    assert row["dayofyear(created_at)"] == 35
    assert row["weekofyear(created_at)"] == 5
    assert row["hour(created_at)"] == 23
    assert row["minute(created_at)"] == 59
    assert row["second(created_at)"] == 59
    assert row["unix_timestamp(created_at)"] == 1707091199
    assert row["object"] == "transaction"


def test_count_distinct_and_ungrouped_aggregate(server):
    response = get(
        server,
        "transactions",
        {"fields": "count_distinct(sender[account_id]),count(id),sum(amount)"},
        version="v2",
    )
    # Four accounts, twelve transactions, and every amount in the file summed:
    # 350.35 + 50.00 + 999.99 (acct_a rest) + 1234.86 + 75.00 + 20.00 + 10.00
    # + 100.00 = 2840.20.
    assert response.json()["values"] == [
        {
            "count_distinct(sender.account_id)": 4,
            "count(id)": 12,
            "sum(amount)": 2840.20,
        }
    ]


def test_iso_timestamp_format_option():
    with PayloadServer.from_dir(DATA, key=KEY, timestamp_format=ISO_8601_UTC) as server:
        response = get(server, "transactions/txn_08")
    assert response.json()["created_at"] == "2023-12-31T23:30:00Z"


def test_nested_function_key_uses_dots():
    records = [
        {"id": "inv_1", "type": "payment", "status": "processed", "totals.total": 5},
        {"id": "inv_2", "type": "payment", "status": "processed", "totals.total": 7.5},
    ]
    with PayloadServer.from_records(records, key=KEY) as server:
        response = get(server, "transactions", {"fields": "sum(totals[total])"})
    # 5 + 7.5, stored as DECIMAL(18,2).
    assert response.text == '{"object":"list","values":[{"sum(totals.total)":12.50}]}'


# --- filters ------------------------------------------------------------------

# Each case is (query, expected ids in id order), read off transactions.csv.
FILTER_CASES = [
    ("amount=50", ["txn_03"]),
    ("amount=50.00", ["txn_03"]),
    ("status=!processed", ["txn_04", "txn_09", "txn_10"]),
    ("amount=%3E1000", ["txn_05"]),
    ("amount=>=999.99", ["txn_04", "txn_05"]),
    ("amount=<1", ["txn_06", "txn_07"]),
    ("amount=<=10", ["txn_06", "txn_07", "txn_10"]),
    ("status=voided|declined", ["txn_04", "txn_09", "txn_10"]),
    ("amount=<1|>1000", ["txn_05", "txn_06", "txn_07"]),
    ("amount=>100&amount=<1000", ["txn_01", "txn_02", "txn_04"]),
    # `_` is a literal here, so txn_01 ("n_0" then "1") must not match.
    ("id=?*_1*", ["txn_10", "txn_11", "txn_12"]),
    # The Python SDK's contains() sends `?*v`: values ending in v.
    ("type=?*und", ["txn_03", "txn_10"]),
    ("created_at=>=2024-03-01", ["txn_07", "txn_09", "txn_10", "txn_11", "txn_12"]),
    ("created_at=<2024-01-01 00:00:00", ["txn_08"]),
    # 01:00 at +01:00 is midnight UTC, after txn_08 at 23:30 UTC.
    ("created_at=<2024-01-01T01:00:00%2B01:00", ["txn_08"]),
    # Midnight at +01:00 is 23:00 UTC on the 31st, before txn_08.
    ("created_at=<2024-01-01T00:00:00%2B01:00", []),
    ("created_at=<2024-01-01T00:00:00Z", ["txn_08"]),
    # A raw `+` decodes to a space, and the server reads it back as the sign.
    ("created_at=<2024-01-01T01:00:00+01:00", ["txn_08"]),
    ("year(created_at)=2023", ["txn_08"]),
    ("dayofweek(created_at)=1", ["txn_06", "txn_07", "txn_08"]),
    ("hour(created_at)=>=23", ["txn_06", "txn_08"]),
    ("monthname(created_at)=December", ["txn_08"]),
    ("customer_id=acct_c", ["txn_08", "txn_09", "txn_10"]),
    ("payment_method_id=pm_a2", ["txn_02"]),
]


@pytest.mark.parametrize("query,expected", FILTER_CASES)
def test_filter_operators(server, query, expected):
    response = get(server, "transactions?" + query)
    assert response.status_code == 200, response.text
    assert ids(response) == expected


@pytest.mark.parametrize(
    "query,expected",
    [
        ("status=voided", ["txn_04", "txn_10"]),
        ("status[value]=voided", ["txn_04", "txn_10"]),
        ("sender[account_id]=acct_d", ["txn_11", "txn_12"]),
        ("sender%5Bmethod_id%5D=pm_a2", ["txn_02"]),
    ],
)
def test_filter_v2_paths(server, query, expected):
    response = get(server, "transactions?" + query, version="v2")
    assert ids(response) == expected


def test_filter_v1_rejects_sender_path(server):
    response = get(server, "transactions?sender[account_id]=acct_d")
    assert response.status_code == 400
    assert response.json()["error_type"] == "InvalidAttributes"


def test_filter_value_is_bound_not_pasted(server):
    response = get(server, "transactions", {"status": "x' OR '1'='1"})
    assert response.status_code == 200
    assert ids(response) == []


# --- versions -----------------------------------------------------------------


def test_version_header_forms(server):
    for header in ("2", "v2", "v2.0", "v2.5", "v2.x"):
        row = get(server, "transactions/txn_05", version=header).json()
        assert row["sender"] == {"account_id": "acct_b", "method_id": "pm_b1"}, header
        assert row["status"] == {"value": "processed"}, header
    for header in (None, "v1", "v1.0"):
        row = get(server, "transactions/txn_05", version=header).json()
        assert row["customer_id"] == "acct_b", header
        assert row["status"] == "processed", header
    assert get(server, "transactions", version="v3").status_code == 400


def test_v1_and_v2_object_shapes(server):
    v1 = get(server, "transactions", {"id": "txn_05"}).json()["values"][0]
    v2 = get(server, "transactions", {"id": "txn_05"}, version="v2").json()["values"][0]
    common = {
        "object": "transaction",
        "id": "txn_05",
        "type": "payment",
        "amount": 1234.56,
        "created_at": "2024-02-03 14:05:00",
    }
    assert v1 == {
        **common,
        "status": "processed",
        "customer_id": "acct_b",
        "payment_method_id": "pm_b1",
    }
    assert v2 == {
        **common,
        "status": {"value": "processed"},
        "sender": {"account_id": "acct_b", "method_id": "pm_b1"},
    }


def test_v2_selected_nested_fields(server):
    response = get(server, "transactions/txn_02", {"fields": "id,sender"}, version="v2")
    assert response.json() == {
        "object": "transaction",
        "id": "txn_02",
        "sender": {"account_id": "acct_a", "method_id": "pm_a2"},
    }


def test_grouped_rows_have_no_object_key(server):
    response = get(
        server,
        "transactions",
        {"fields": "status,sum(amount)", "group_by": "status", "type": "payment"},
        version="v2",
    )
    # Payments: processed 350.35 + 1234.86 + 75 + 100 = 1760.21, voided
    # txn_04 999.99, declined txn_09 20.00. Rows come ordered by the group key.
    assert response.json()["values"] == [
        {"status": "declined", "sum(amount)": 20.0},
        {"status": "processed", "sum(amount)": 1760.21},
        {"status": "voided", "sum(amount)": 999.99},
    ]


def test_accounts_and_customers_share_table(server):
    accounts = get(server, "accounts", version="v2").json()["values"]
    customers = get(server, "customers").json()["values"]
    assert [row["id"] for row in accounts] == ["acct_a", "acct_b", "acct_c", "acct_d"]
    assert {row["object"] for row in accounts} == {"account"}
    assert {row["object"] for row in customers} == {"customer"}
    assert [row["id"] for row in customers] == [row["id"] for row in accounts]


# --- paging and the aggregation cache ----------------------------------------


def test_paging_reuses_cached_aggregation(server):
    base = {
        "fields": "sender[account_id],sum(amount)",
        "group_by": "sender[account_id]",
        "order_by": "desc(sum(amount))",
        "type": "payment",
        "status": "processed",
        "limit": "2",
    }
    pages = [
        get(server, "transactions", {**base, "offset": str(offset)}, version="v2")
        for offset in (0, 2, 4)
    ]
    accounts = [[row["sender.account_id"] for row in p.json()["values"]] for p in pages]
    assert accounts == [["acct_b", "acct_a"], ["acct_d", "acct_c"], []]
    assert server.aggregations_run == 1
    get(server, "transactions", {**base, "status": "voided"}, version="v2")
    assert server.aggregations_run == 2


def test_plain_paging_pushes_limit_down(server):
    first = get(server, "transactions", {"limit": "5", "order_by": "desc(amount)"})
    second = get(
        server,
        "transactions",
        {"limit": "5", "offset": "5", "order_by": "desc(amount)"},
    )
    # By amount: 1234.56, 999.99, 250.25, 100.10, 75.00 | 60, 50, 40, 20, 10.
    assert ids(first) == ["txn_05", "txn_04", "txn_02", "txn_01", "txn_08"]
    assert ids(second) == ["txn_11", "txn_03", "txn_12", "txn_09", "txn_10"]
    assert server.aggregations_run == 0


def test_offset_without_limit(server):
    assert ids(get(server, "transactions", {"offset": "10"})) == ["txn_11", "txn_12"]


def test_invalid_limit_rejected(server):
    response = get(server, "transactions", {"limit": "-1"})
    assert response.status_code == 400
    assert response.json()["error_type"] == "BadRequest"


# --- request log --------------------------------------------------------------


def test_request_log_records_rows_and_bytes(server):
    response = get(server, "transactions", {"type": "refund", "fields": "id"})
    records = server.requests
    assert server.request_count == 1
    assert records[0].method == "GET"
    assert records[0].path == "/transactions"
    assert records[0].query == "type=refund&fields=id"
    assert records[0].status == 200
    assert records[0].rows == 2
    assert records[0].bytes_sent == len(response.content)
    server.clear_requests()
    assert server.request_count == 0


def test_request_log_line_hides_key(server, caplog):
    caplog.set_level(logging.INFO, logger="custan.testing.payload_server")
    get(server, "transactions", {"limit": "1"})
    get(server, "transactions", auth=("wrong_key_value", ""))
    messages = [record.getMessage() for record in caplog.records]
    assert "GET /transactions?limit=1 -> 200 rows=1 bytes=" in messages[-2]
    assert "-> 401" in messages[-1]
    assert not any(KEY in message for message in messages)
    assert not any("wrong_key_value" in message for message in messages)


# --- authentication and errors ----------------------------------------------


def test_auth_basic_and_bearer(server):
    basic = get(server, "transactions", {"limit": "1"})
    bearer = httpx.get(
        server.url + "transactions?limit=1",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert basic.status_code == 200
    assert bearer.status_code == 200
    assert basic.json() == bearer.json()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"test_secret_key_wrong:").decode(),
        "Bearer test_secret_key_wrong",
        "Basic not-base64!",
        "Digest " + KEY,
    ],
)
def test_auth_rejects_bad_credentials(server, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(server.url + "transactions", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["object"] == "error"
    assert body["error_type"] == "Unauthorized"
    assert body["error_description"] == body["description"]
    assert body["details"] == {}
    assert "test_secret_key" not in response.text


def test_unknown_attribute_and_function(server):
    unknown_field = get(server, "transactions", {"fields": "colour"})
    unknown_function = get(server, "transactions", {"fields": "median(amount)"})
    date_of_string = get(server, "transactions", {"fields": "year(status)"})
    assert unknown_field.status_code == 400
    assert unknown_field.json()["error_type"] == "InvalidAttributes"
    assert unknown_field.json()["details"] == {"colour": "Unknown attribute"}
    assert unknown_function.status_code == 400
    assert unknown_function.json()["error_type"] == "InvalidAttributes"
    assert date_of_string.json()["error_type"] == "InvalidAttributes"


def test_bad_requests(server):
    ungrouped = get(server, "transactions", {"fields": "id,sum(amount)"})
    aggregate_filter = get(server, "transactions?sum(amount)=>5")
    bad_date = get(server, "transactions", {"created_at": ">yesterday"})
    bad_number = get(server, "transactions", {"amount": "lots"})
    assert ungrouped.status_code == 400
    assert ungrouped.json()["error_type"] == "BadRequest"
    assert aggregate_filter.status_code == 400
    assert bad_date.status_code == 400
    assert bad_number.status_code == 400


def test_not_found(server):
    assert get(server, "payments").status_code == 404
    assert get(server, "payments").json()["error_type"] == "NotFound"
    assert get(server, "transactions/txn_99").status_code == 404
    assert get(server, "").status_code == 404


# --- fault switches -----------------------------------------------------------


def test_fault_rate_limit_burst(server):
    server.faults.rate_limit(2, retry_after=3)
    responses = [get(server, "transactions", {"limit": "1"}) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].headers["Retry-After"] == "3"
    assert responses[0].json()["error_type"] == "TooManyRequests"
    assert "Retry-After" not in responses[2].headers


def test_fault_unavailable_burst(server):
    server.faults.unavailable(2)
    responses = [get(server, "transactions", {"limit": "1"}) for _ in range(3)]
    assert [r.status_code for r in responses] == [503, 503, 200]
    assert responses[0].json()["error_type"] == "ServiceUnavailable"


def test_fault_slow_answers(server):
    server.faults.slow(0.3)
    started = time.monotonic()
    response = get(server, "transactions", {"limit": "1"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    server.faults.slow(1.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(server.url + "transactions", auth=(KEY, ""), timeout=0.2)
    server.faults.slow(0)
    started = time.monotonic()
    assert get(server, "transactions", {"limit": "1"}).status_code == 200
    assert time.monotonic() - started < 0.3


def test_fault_truncated_content_length(server):
    server.faults.truncate(1, mode="content_length")
    with pytest.raises(httpx.RemoteProtocolError):
        get(server, "transactions")
    assert get(server, "transactions").status_code == 200


def test_fault_truncated_json(server):
    server.faults.truncate(1, mode="cut_json")
    response = get(server, "transactions")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert server.requests[-1].bytes_sent == len(response.content)
    assert len(get(server, "transactions").json()["values"]) == 12


def test_fault_always_fail_until_cleared(server):
    server.faults.fail_always(500)
    statuses = [get(server, "transactions").status_code for _ in range(3)]
    assert statuses == [500, 500, 500]
    assert get(server, "transactions").json()["error_type"] == "InternalServerError"
    server.faults.fail_always(None)
    assert get(server, "transactions").status_code == 200


def test_fault_reset_clears_bursts(server):
    server.faults.rate_limit(5)
    server.faults.reset()
    assert get(server, "transactions").status_code == 200


def test_concurrent_requests(server):
    params = {"fields": "sum(amount)", "type": "payment", "status": "processed"}

    def fetch_total(_):
        return get(server, "transactions", params).json()["values"][0]["sum(amount)"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        totals = list(pool.map(fetch_total, range(32)))
    # Processed payments: 350.35 + 1234.86 + 75.00 + 100.00.
    assert totals == [1760.21] * 32
    assert server.request_count == 32


# --- loaders and the command line --------------------------------------------


def test_loaders_match_csv(server):
    source = duckdb.connect()
    source.execute("SET TimeZone = 'UTC'")
    csv_path = str(DATA / "transactions.csv")
    source.execute(f"CREATE TABLE transactions AS SELECT * FROM read_csv('{csv_path}')")
    source.execute(
        "CREATE TABLE accounts AS SELECT 'acct_z' AS id, NOW() AS created_at"
    )
    records = [
        dict(
            zip(
                [
                    "id",
                    "type",
                    "status",
                    "amount",
                    "created_at",
                    "sender.account_id",
                    "sender.method_id",
                ],
                line.split(","),
                strict=True,
            )
        )
        for line in (DATA / "transactions.csv").read_text().splitlines()[1:]
    ]
    params = {"fields": "sum(amount),count(id)", "type": "payment"}
    expected = get(server, "transactions", params).json()
    with PayloadServer.from_connection(source, key=KEY) as copied:
        assert get(copied, "transactions", params).json() == expected
        assert ids(get(copied, "accounts")) == ["acct_z"]
    with PayloadServer.from_records(records, key=KEY) as built:
        assert get(built, "transactions", params).json() == expected
        assert ids(get(built, "accounts")) == []


def test_command_line_serves_until_interrupted():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "custan.testing.payload_server",
            "--data",
            str(DATA),
            "--port",
            "0",
            "--key",
            KEY,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()
        url = line.split("listening on ")[1].strip()
        response = httpx.get(url + "transactions/txn_01", auth=(KEY, ""))
        assert response.json()["amount"] == 100.10
        log_line = process.stderr.readline()
        assert "GET /transactions/txn_01 -> 200 rows=1" in log_line
        assert KEY not in line + log_line
    finally:
        process.send_signal(subprocess.signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0
