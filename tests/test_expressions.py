"""The expression language: aggregates inside other forms, %, day names."""

from __future__ import annotations

from conftest import write_rules, write_transactions

HEADER = """version: 1
source: {path: tx.csv}
filters: ["type = 'payment'", "status = 'processed'"]
metrics:
  total: {agg: sum, of: amount}
  purchases: {agg: count}
  first_purchase: {agg: min, of: created_at}
"""


def three_customers(folder):
    # a: 60.00 + 70.00 = 130.00 in 2 purchases; b: 50.00; c: 150.00.
    # 2026-01-05 is a Monday, 2026-01-11 a Sunday.
    write_transactions(
        folder,
        [
            ("t1", "payment", "processed", "60.00", "2026-01-05T10:00:00Z", "a", "pm"),
            ("t2", "payment", "processed", "70.00", "2026-01-06T10:00:00Z", "a", "pm"),
            ("t3", "payment", "processed", "50.00", "2026-01-11T10:00:00Z", "b", "pm"),
            ("t4", "payment", "processed", "150.00", "2026-01-07T10:00:00Z", "c", "pm"),
        ],
    )


def test_grouped_values_test_aggregates(tmp_path, custan):
    # Each value aggregates even where the aggregate sits in a CASE
    # condition, an IN list or BETWEEN bounds. Groups by purchases:
    # 1 -> b and c: 2 customers, totals 50 to 150, so 100 is between them.
    # 2 -> a alone: 1 customer, 130 to 130.
    three_customers(tmp_path)
    rules = write_rules(
        tmp_path,
        HEADER
        + """output:
  group_by: [purchases]
  values:
    customers: count(*)
    label: case when count(*) >= 2 then 'many' else 'one' end
    even: count(*) in (2, 4)
    spans_100: 100 between min(total) and max(total)
    empty: sum(total) is null
""",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines() == [
        "purchases,customers,label,even,spans_100,empty",
        "1,2,many,true,true,false",
        "2,1,one,false,false,false",
    ]


def test_aggregate_in_case_cannot_nest(tmp_path, custan):
    # The count() inside the CASE makes sum() aggregate an aggregate, which
    # the engine cannot run, so validate reports it with its field.
    three_customers(tmp_path)
    rules = write_rules(
        tmp_path,
        HEADER
        + """output:
  group_by: [purchases]
  values:
    bad: sum(case when count(*) > 1 then 1 else 0 end)
""",
    )
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "output.values.bad" in outcome.err
    assert "sum() cannot take another aggregate" in outcome.err


def test_grouped_value_named_as_of_is_rejected(tmp_path, custan):
    three_customers(tmp_path)
    rules = write_rules(
        tmp_path,
        HEADER
        + """output:
  values:
    as_of: count(*)
""",
    )
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "'as_of' is reserved" in outcome.err


def test_remainder_type_and_zero_divisor(tmp_path, custan):
    # a: 2 purchases, 130.00; b: 1, 50.00; c: 1, 150.00.
    # purchases % 2: 0, 1, 1. total % 100 stays money: 30.00, 50.00, 50.00.
    # Dividing by zero gives null (an empty cell), as / does.
    three_customers(tmp_path)
    rules = write_rules(
        tmp_path,
        HEADER
        + """derived:
  parity: purchases % 2
  beyond_hundreds: total % 100
  by_zero: purchases % (purchases - purchases)
output:
  columns: [parity, beyond_hundreds, by_zero]
""",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines() == [
        "customer_id,parity,beyond_hundreds,by_zero",
        "a,0,30.00,",
        "b,1,50.00,",
        "c,1,50.00,",
    ]


def test_day_name_of_an_instant_or_a_day_number(tmp_path, custan):
    # First purchases: a Mon 01-05, b Sun 01-11, c Wed 01-07. A day number
    # names the same day as the instant; 8 is no ISO day and has no name.
    three_customers(tmp_path)
    rules = write_rules(
        tmp_path,
        HEADER
        + """derived:
  of_instant: day_name(first_purchase)
  of_number: day_name(day_of_week(first_purchase))
  of_decimal: day_name(floor(day_of_week(first_purchase) * 100 / 100))
  of_eight: day_name(8)
output:
  columns: [of_instant, of_number, of_decimal, of_eight]
""",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines() == [
        "customer_id,of_instant,of_number,of_decimal,of_eight",
        "a,Mon,Mon,Mon,",
        "b,Sun,Sun,Sun,",
        "c,Wed,Wed,Wed,",
    ]


def test_day_name_rejects_text(tmp_path, custan):
    three_customers(tmp_path)
    rules = write_rules(
        tmp_path,
        HEADER
        + """derived:
  day: day_name('Monday')
""",
    )
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "argument 1 must be an instant or a day number 1-7, not text" in outcome.err
