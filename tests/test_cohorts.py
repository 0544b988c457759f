"""Signup cohorts and retention on a hand-made fixture, every cell worked out by hand.

The fixture (tests/data/cohorts) has these purchases, that is processed
payments, after converting every instant to UTC:

    acct_a  signup 2024-01-05              -> cohort 2024-01
            t01 2024-01-06 10.00, t02 2024-01-20 5.50,
            t04 2024-03-01T00:30+01:00 = 2024-02-29T23:30Z 20.00
    acct_b  signup 2024-01-31T23:30-02:00 = 2024-02-01T01:30Z -> cohort 2024-02
            t06 2024-02-02 30.00, t07 2024-04-15 12.25
    acct_c  signup 2024-02-10              -> cohort 2024-02
            t12 2024-02-15T18:00 3.00, t13 2024-02-15T20:00 2.00,
            t08 2024-03-11 8.00
    acct_d  signup 2024-02-20              -> cohort 2024-02, never bought
    acct_x  no account row                 -> cohort unknown
            t10 2024-01-15 40.00, t11 2024-03-15 60.00
    acct_y  no account row                 -> cohort unknown
            t14 2024-04-01 25.00

Not purchases: t03 (declined), t05 (refund), t09 (voided, acct_d's only row).
"""

from __future__ import annotations

from conftest import ROOT, write_rules

DATA = ROOT / "tests" / "data" / "cohorts"
COHORTS = ROOT / "rules" / "cohorts.yaml"
RETENTION = ROOT / "rules" / "cohort_retention.yaml"
FIXTURE = ["--data", DATA / "transactions.csv", "--accounts", DATA / "accounts.csv"]


def test_cohort_activity_cells(custan):
    outcome = custan("run", COHORTS, *FIXTURE, "--format", "csv")
    assert outcome.code == 0, outcome.err
    cells = {
        (row["signup_month"], row["active_month"]): (
            row["active_customers"],
            row["revenue"],
            row["purchases"],
        )
        for row in outcome.csv_rows()
    }
    assert cells == {
        # acct_a: t01 + t02 = 15.50 in two purchases.
        ("2024-01", "2024-01"): ("1", "15.50", "2"),
        # acct_a: t04 falls on 2024-02-29 in UTC, not in March.
        ("2024-01", "2024-02"): ("1", "20.00", "1"),
        # acct_b (t06 30.00) and acct_c (t12 + t13 = 5.00): 35.00 in three.
        ("2024-02", "2024-02"): ("2", "35.00", "3"),
        # acct_c: t08.
        ("2024-02", "2024-03"): ("1", "8.00", "1"),
        # acct_b: t07.
        ("2024-02", "2024-04"): ("1", "12.25", "1"),
        # acct_x: t10, then t11; acct_y: t14.
        ("unknown", "2024-01"): ("1", "40.00", "1"),
        ("unknown", "2024-03"): ("1", "60.00", "1"),
        ("unknown", "2024-04"): ("1", "25.00", "1"),
    }


def test_cohort_rows_sorted_by_group(custan):
    outcome = custan("run", COHORTS, *FIXTURE, "--format", "csv")
    keys = [(row["signup_month"], row["active_month"]) for row in outcome.csv_rows()]
    # No sort is declared, so the group columns order the rows.
    assert keys == sorted(keys)


def test_cohort_summary_totals(custan):
    outcome = custan("run", COHORTS, *FIXTURE)
    assert outcome.code == 0, outcome.err
    # 11 purchases: t01 t02 t04 t06 t07 t08 t10 t11 t12 t13 t14; their amounts
    # sum to 15.50 + 20.00 + 35.00 + 8.00 + 12.25 + 40.00 + 60.00 + 25.00.
    assert "11 purchases worth 215.75" in outcome.out


def test_cohort_table_is_a_matrix(custan):
    outcome = custan("run", COHORTS, *FIXTURE)
    lines = outcome.out.splitlines()
    header = next(line for line in lines if "signup_month \\ active_month" in line)
    for month in ("2024-01", "2024-02", "2024-03", "2024-04"):
        assert month in header
    row = next(line for line in lines if line.startswith("│ 2024-02"))
    # Cells 2024-01 (empty), 2024-02 (2), 2024-03 (1), 2024-04 (1).
    assert [cell.strip() for cell in row.split("│")[2:6]] == ["", "2", "1", "1"]


def test_retention_shares(custan):
    outcome = custan("run", RETENTION, *FIXTURE, "--format", "csv")
    assert outcome.code == 0, outcome.err
    shares = {
        (row["signup_month"], row["months_after_signup"]): (
            row["accounts"],
            row["active_accounts"],
            row["retention"],
        )
        for row in outcome.csv_rows()
    }
    assert shares == {
        # Cohort 2024-01 is acct_a alone, active in months 0 and 1 (t04 is
        # 2024-02-29 in UTC, one calendar month after the 2024-01 signup).
        ("2024-01", "0"): ("1", "1", "1"),
        ("2024-01", "1"): ("1", "1", "1"),
        # Cohort 2024-02 has three accounts: acct_b, acct_c and acct_d.
        # Month 0 (February): b and c, 2/3. Month 1 (March): c, 1/3.
        # Month 2 (April): b, 1/3. The file sets output.decimals to 4.
        ("2024-02", "0"): ("3", "2", "0.6667"),
        ("2024-02", "1"): ("3", "1", "0.3333"),
        ("2024-02", "2"): ("3", "1", "0.3333"),
    }


def test_retention_has_no_unknown_cohort(custan):
    outcome = custan("run", RETENTION, *FIXTURE, "--format", "csv")
    # acct_x and acct_y have no signup instant to count months from.
    assert {row["signup_month"] for row in outcome.csv_rows()} == {"2024-01", "2024-02"}


def test_accounts_with_repeated_id_keep_earliest(custan, tmp_path):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(
        (DATA / "accounts.csv").read_text() + "acct_a,2023-12-01T00:00:00Z\n"
    )
    outcome = custan(
        "run",
        COHORTS,
        "--data",
        DATA / "transactions.csv",
        "--accounts",
        accounts,
        "--format",
        "csv",
    )
    assert outcome.code == 0, outcome.err
    signups = {row["signup_month"] for row in outcome.csv_rows()}
    # acct_a's earlier row moves it from cohort 2024-01 to 2023-12.
    assert "2023-12" in signups
    assert "2024-01" not in signups


def test_accounts_option_needs_accounts_input(custan):
    outcome = custan(
        "run", ROOT / "rules" / "rfm.yaml", "--accounts", DATA / "accounts.csv"
    )
    assert outcome.code == 2
    assert "has no accounts input" in outcome.err


def test_accounts_bad_date_names_accounts_file(custan, tmp_path):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,created_at\nacct_a,not a date\n")
    outcome = custan(
        "run", COHORTS, "--data", DATA / "transactions.csv", "--accounts", accounts
    )
    assert outcome.code == 1
    assert str(accounts) in outcome.err


def test_accounts_missing_column(custan, tmp_path):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,created_at\nacct_a,2024-01-01\n")
    outcome = custan(
        "run", COHORTS, "--data", DATA / "transactions.csv", "--accounts", accounts
    )
    assert outcome.code == 1
    assert "missing column 'id'" in outcome.err


def test_account_created_at_needs_accounts(custan, tmp_path):
    rules = write_rules(
        tmp_path,
        "version: 1\n"
        "source: {path: tx.csv}\n"
        "metrics:\n  purchases: {agg: count}\n"
        "derived:\n  signup: month_of(account_created_at)\n",
    )
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "unknown name 'account_created_at'" in outcome.err


def test_per_key_named_like_field_rejected(custan, tmp_path):
    rules = write_rules(
        tmp_path,
        "version: 1\n"
        "source: {path: tx.csv}\n"
        "per:\n  amount: month_of(created_at)\n"
        "metrics:\n  purchases: {agg: count}\n",
    )
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "'amount' is reserved" in outcome.err


def test_per_month_rows_per_customer(custan, tmp_path):
    rules = write_rules(
        tmp_path,
        "version: 1\n"
        f"source: {{path: {DATA / 'transactions.csv'}}}\n"
        "filters: [\"type = 'payment'\", \"status = 'processed'\"]\n"
        "per:\n  month: month_of(created_at)\n"
        "metrics:\n  spent: {agg: sum, of: amount}\n"
        "output:\n  where: customer_id in ('acct_a', 'acct_c')\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    rows = [
        (row["customer_id"], row["month"], row["spent"]) for row in outcome.csv_rows()
    ]
    # One row per customer and month, ordered by customer, then month:
    # acct_a t01 + t02 in January, t04 in February (UTC); acct_c t12 + t13
    # in February, t08 in March.
    assert rows == [
        ("acct_a", "2024-01", "15.50"),
        ("acct_a", "2024-02", "20.00"),
        ("acct_c", "2024-02", "5.00"),
        ("acct_c", "2024-03", "8.00"),
    ]


def test_cohort_files_validate(custan):
    outcome = custan(
        "validate",
        COHORTS,
        RETENTION,
        ROOT / "rules" / "btyd.yaml",
        ROOT / "examples" / "cdnow" / "btyd.yaml",
    )
    assert outcome.code == 0, outcome.err
    assert outcome.out.count(": ok") == 4


def per_customer_rules(tmp_path, body: str, accounts: bool = False):
    """Write a rules file over the fixture's purchases with ``body`` appended."""
    text = (
        "version: 1\n"
        f"source: {{path: {DATA / 'transactions.csv'}}}\n"
        "filters: [\"type = 'payment'\", \"status = 'processed'\"]\n"
    )
    if accounts:
        text += f"accounts: {{path: {DATA / 'accounts.csv'}, include_all: true}}\n"
    return write_rules(tmp_path, text + body)


def test_months_between_counts_calendar_months(custan, tmp_path):
    rules = per_customer_rules(
        tmp_path,
        "metrics:\n"
        "  first: {agg: min, of: created_at}\n"
        "  last: {agg: max, of: created_at}\n"
        "derived:\n"
        "  months: months_between(first, last)\n"
        "output:\n  columns: [months]\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    months = {row["customer_id"]: row["months"] for row in outcome.csv_rows()}
    # acct_a: 2024-01-06 to 2024-02-29 (UTC) is January to February, 1 month
    # although 54 days pass. acct_b: 2024-02-02 to 2024-04-15, 2 months.
    # acct_c: 2024-02-15 to 2024-03-11, 1 month though under 4 weeks pass.
    # acct_x: 2024-01-15 to 2024-03-15, 2. acct_y: one purchase, 0.
    assert months == {
        "acct_a": "1",
        "acct_b": "2",
        "acct_c": "1",
        "acct_x": "2",
        "acct_y": "0",
    }


def test_months_between_in_file_time_zone(custan, tmp_path):
    rules = per_customer_rules(
        tmp_path,
        "time_zone: Europe/Paris\n"
        "metrics:\n"
        "  first: {agg: min, of: created_at}\n"
        "  last: {agg: max, of: created_at}\n"
        "derived:\n"
        "  months: months_between(first, last)\n"
        "output:\n  where: customer_id = 'acct_a'\n  columns: [months]\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    # In Paris, t04 (2024-02-29T23:30Z) is 2024-03-01 00:30, so acct_a's
    # purchases run from January to March: 2 months, where UTC gives 1.
    assert outcome.csv_rows()[0]["months"] == "2"


def test_include_all_gives_idle_accounts_zeros(custan, tmp_path):
    rules = per_customer_rules(
        tmp_path,
        "metrics:\n"
        "  purchases: {agg: count}\n"
        "  spent: {agg: sum, of: amount}\n"
        "  last: {agg: max, of: created_at}\n"
        "output:\n  columns: [purchases, spent, last, account_created_at]\n",
        accounts=True,
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    rows = {row["customer_id"]: row for row in outcome.csv_rows()}
    # acct_d signed up but only has a voided payment: a row with 0 purchases
    # and 0.00 spent; max has no value to show, so it stays empty.
    assert rows["acct_d"]["purchases"] == "0"
    assert rows["acct_d"]["spent"] == "0.00"
    assert rows["acct_d"]["last"] == ""
    assert rows["acct_d"]["account_created_at"] == "2024-02-20T00:00:00Z"
    # acct_x has purchases but no account row: its signup is empty.
    assert rows["acct_x"]["account_created_at"] == ""
    assert sorted(rows) == ["acct_a", "acct_b", "acct_c", "acct_d", "acct_x", "acct_y"]


def test_customers_sharing_counts_distinct_customers(custan, tmp_path):
    rules = per_customer_rules(
        tmp_path,
        "per:\n  month: month_of(created_at)\n"
        "metrics:\n  purchases: {agg: count}\n"
        "derived:\n"
        "  in_month: customers_sharing(month)\n"
        "  everyone: customers_sharing()\n"
        "output:\n"
        "  where: customer_id = 'acct_c'\n"
        "  columns: [month, in_month, everyone]\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    rows = [
        (row["month"], row["in_month"], row["everyone"]) for row in outcome.csv_rows()
    ]
    # February has purchases by acct_a (t04, UTC), acct_b and acct_c: 3.
    # March has acct_c and acct_x: 2. All months together have the five
    # buyers a, b, c, x and y, each counted once however many rows they have.
    assert rows == [("2024-02", "3", "5"), ("2024-03", "2", "5")]


def test_per_metric_reads_same_row_metrics(custan, tmp_path):
    rules = per_customer_rules(
        tmp_path,
        "per:\n  month: month_of(created_at)\n"
        "metrics:\n"
        "  usual_method: {agg: mode, of: sender.method_id}\n"
        "  biggest: {agg: max, of: amount}\n"
        "  top_spend: {agg: sum, of: amount, where: amount >= biggest}\n"
        "  on_usual: {agg: count, where: sender.method_id = usual_method}\n"
        "output:\n  where: customer_id = 'acct_c'\n",
    )
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    rows = [
        (row["month"], row["biggest"], row["top_spend"], row["on_usual"])
        for row in outcome.csv_rows()
    ]
    # acct_c in February: 3.00 and 2.00, so the largest is 3.00 and only it
    # reaches it; both use pm_c. In March: 8.00 alone. The March maximum
    # must not leak into February, where no purchase reaches 8.00.
    assert rows == [("2024-02", "3.00", "3.00", "2"), ("2024-03", "8.00", "8.00", "1")]


def test_sql_reads_accounts_path(custan):
    outcome = custan("sql", COHORTS, *FIXTURE)
    assert outcome.code == 0, outcome.err
    # The accounts relation comes first and reads the --accounts file.
    assert outcome.out.startswith("WITH accounts AS (")
    assert str(DATA / "accounts.csv") in outcome.out
    assert "LEFT JOIN signups" in outcome.out
