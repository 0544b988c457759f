"""Bad rules and bad data: one clear message, the right exit code, no output file."""

from __future__ import annotations

import os

from conftest import write_rules, write_transactions

GOOD = """version: 1
source: {path: tx.csv}
metrics:
  total: {agg: sum, of: amount}
  purchases: {agg: count}
segments:
  - name: Big
    when: total >= 100
  - name: Small
"""


def good_data(folder):
    return write_transactions(
        folder,
        [
            ("t1", "payment", "processed", "150.00", "2026-01-01T00:00:00Z", "c", "pm"),
        ],
    )


def run_to_file(custan, folder, rules):
    output = folder / "out.csv"
    outcome = custan("run", rules, "-o", output)
    return outcome, output


def test_malformed_yaml_names_line(tmp_path, custan):
    good_data(tmp_path)
    rules = write_rules(
        tmp_path, "version: 1\nmetrics:\n  total: {agg: sum, of: amount\n"
    )
    outcome, output = run_to_file(custan, tmp_path, rules)
    assert outcome.code == 2
    assert f"{rules}:4:1: invalid YAML" in outcome.err
    assert not output.exists()


def test_unknown_name_in_rule(tmp_path, custan):
    good_data(tmp_path)
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", "totl >= 100"))
    outcome, output = run_to_file(custan, tmp_path, rules)
    assert outcome.code == 2
    assert f"{rules}:8:11: segments[0].when: unknown name 'totl'" in outcome.err
    assert "declared names: as_of, customer_id, purchases, total" in outcome.err
    assert not output.exists()


def test_text_compared_with_number(tmp_path, custan):
    good_data(tmp_path)
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", "total >= 'high'"))
    outcome, output = run_to_file(custan, tmp_path, rules)
    assert outcome.code == 2
    assert (
        f"{rules}:8:11: segments[0].when: cannot compare money with text" in outcome.err
    )
    assert not output.exists()


def test_schema_violation_names_field(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD.replace("{agg: count}", "{agg: count, off: id}"))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert f"{rules}:5:27: metrics.purchases: unknown key 'off'" in outcome.err


def test_missing_column_names_it(tmp_path, custan):
    (tmp_path / "tx.csv").write_text(
        "id,type,status,created_at,sender.account_id\nt1,payment,processed,2026-01-01,c\n"
    )
    rules = write_rules(tmp_path, GOOD)
    outcome, output = run_to_file(custan, tmp_path, rules)
    assert outcome.code == 1
    assert "tx.csv: missing column 'amount'" in outcome.err
    assert (
        "columns found: id, type, status, created_at, sender.account_id" in outcome.err
    )
    assert not output.exists()


def test_unparseable_amount_names_row(tmp_path, custan):
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "10.00", "2026-01-01", "c", "pm"),
            ("t2", "payment", "processed", "12.5O", "2026-01-01", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, GOOD)
    outcome, output = run_to_file(custan, tmp_path, rules)
    assert outcome.code == 1
    # Row 2 of the data is line 3 of the file, after the header.
    assert (
        "tx.csv: row 2 (line 3): column 'amount' (amount): cannot parse" in outcome.err
    )
    assert not output.exists()


def test_unparseable_timestamp_names_row(tmp_path, custan):
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "10.00", "yesterday", "c", "pm"),
        ],
    )
    rules = write_rules(tmp_path, GOOD)
    outcome, output = run_to_file(custan, tmp_path, rules)
    assert outcome.code == 1
    assert (
        "row 1 (line 2): column 'created_at' (created_at): cannot parse 'yesterday'"
        in (outcome.err)
    )
    assert not output.exists()


def test_missing_data_file(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD)
    outcome, output = run_to_file(custan, tmp_path, rules)
    assert outcome.code == 1
    assert f"error: {tmp_path}/tx.csv: data file not found" in outcome.err
    assert not output.exists()


def test_unreadable_data_file(tmp_path, custan):
    (tmp_path / "tx.parquet").write_bytes(b"\x00\x01 not a parquet file")
    rules = write_rules(tmp_path, GOOD.replace("tx.csv", "tx.parquet"))
    outcome, output = run_to_file(custan, tmp_path, rules)
    assert outcome.code == 1
    assert "tx.parquet: cannot read parquet data" in outcome.err
    assert not output.exists()


def test_failed_run_keeps_previous_output(tmp_path, custan):
    good_data(tmp_path)
    rules = write_rules(tmp_path, GOOD)
    output = tmp_path / "out.csv"
    assert custan("run", rules, "-o", output, "-q").code == 0
    before = output.read_text()
    (tmp_path / "tx.csv").write_text("id,amount\n")
    assert custan("run", rules, "-o", output).code == 1
    assert output.read_text() == before
    assert [name for name in os.listdir(tmp_path) if name.startswith(".custan-")] == []


def test_validate_exits_2_when_any_file_fails(tmp_path, custan):
    good = write_rules(tmp_path, GOOD, "good.yaml")
    bad = write_rules(tmp_path, GOOD.replace("version: 1", "version: 3"), "bad.yaml")
    outcome = custan("validate", good, bad)
    assert outcome.code == 2
    assert f"{good}: ok" in outcome.out
    assert f"{bad}:1:1: version: unsupported version 3" in outcome.err


def test_unknown_function_lists_available(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", "eval(total) >= 100"))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "unknown function eval(); available: abs, ceil" in outcome.err


def test_query_syntax_rejected(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", "total >= (select 1)"))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "a query is not allowed in rules" in outcome.err


def test_segment_default_must_be_last(tmp_path, custan):
    text = (
        GOOD.replace("  - name: Small\n", "") + "  - name: Small\n    when: total < 5\n"
    )
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "the last segment is the default and takes no 'when'" in outcome.err


def test_cycle_between_derived_values(tmp_path, custan):
    text = GOOD + "derived:\n  a: b + 1\n  b: a + 1\n"
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "definitions refer to each other in a cycle: a -> b -> a" in outcome.err


def test_bad_as_of_option(tmp_path, custan):
    good_data(tmp_path)
    rules = write_rules(tmp_path, GOOD)
    outcome = custan("run", rules, "--as-of", "last tuesday")
    assert outcome.code == 2
    assert "--as-of: invalid as_of 'last tuesday'" in outcome.err


def test_unknown_option_is_usage_error(tmp_path, custan):
    outcome = custan("run", "x.yaml", "--colour")
    assert outcome.code == 2
    assert "unrecognized arguments: --colour" in outcome.err


def test_expression_size_is_capped(tmp_path, custan):
    # A flat list of 450 values is more than the 400 nodes an expression may hold.
    condition = "total in (" + ", ".join(str(n) for n in range(450)) + ")"
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", condition))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "the expression is too large (more than 400 parts)" in outcome.err


def test_expression_nesting_is_capped(tmp_path, custan):
    condition = "(" * 1000 + "total" + ")" * 1000 + " >= 100"
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", condition))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "the expression nests parentheses deeper than 24 levels" in outcome.err


def test_deep_tree_without_parentheses(tmp_path, custan):
    # 100 chained additions are 100 levels deep without one parenthesis.
    condition = " + ".join(["total"] * 100) + " >= 100"
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", condition))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "the expression nests deeper than 64 levels" in outcome.err


def test_parentheses_in_text_are_not_nesting(tmp_path, custan):
    condition = "total >= 100 or '" + "(" * 40 + "' = ''"
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", condition))
    assert custan("validate", rules).code == 0


def test_long_flat_chain_is_not_nesting(tmp_path, custan):
    # SQL parses a + b + c as ((a + b) + c): 40 terms are 40 levels deep but
    # written flat, and stay within the depth limit.
    condition = " + ".join(["total"] * 40) + " >= 100"
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", condition))
    assert custan("validate", rules).code == 0


def test_alias_bomb_is_rejected(tmp_path, custan):
    # Each level doubles the one before: nine levels would expand to 10^9 values.
    lines = ["version: 1", 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    rules = write_rules(tmp_path, "\n".join(lines) + "\n")
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "the file expands to more than 100,000 values through its aliases" in (
        outcome.err
    )


def test_deep_yaml_is_rejected(tmp_path, custan):
    rules = write_rules(tmp_path, "version: 1\nmetrics: " + "[" * 5000 + "]" * 5000)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "the YAML nests too deeply" in outcome.err


def test_aliases_share_bands(tmp_path, custan):
    text = (
        GOOD
        + """scores:
  a: {of: total, bands: &bands [{at_least: 100, score: 2}], default: 1}
  b: {of: purchases, bands: *bands, default: 1}
"""
    )
    rules = write_rules(tmp_path, text)
    assert custan("validate", rules).code == 0


def test_param_value_outside_choices(tmp_path, custan):
    text = GOOD + "params:\n  unit: {value: month, choices: [days, weeks]}\n"
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert f"{rules}:11:17: params.unit.value: 'month' is not one of the choices" in (
        outcome.err
    )


def test_amounts_must_be_plain_decimals(tmp_path, custan):
    # Each of these would be read silently otherwise: as 1000, as 1000 again,
    # or rounded to 8 places.
    rules = write_rules(tmp_path, GOOD)
    for amount in ("1_000", "1e3", "0.123456789"):
        write_transactions(
            tmp_path,
            [
                ("t1", "payment", "processed", "1.00", "2026-01-01", "c", "pm"),
                ("t2", "payment", "processed", amount, "2026-01-01", "c", "pm"),
            ],
        )
        outcome, output = run_to_file(custan, tmp_path, rules)
        assert outcome.code == 1, amount
        assert (
            f"row 2 (line 3): column 'amount' (amount): cannot parse '{amount}' "
            "as a decimal amount"
        ) in outcome.err
        assert not output.exists()


def test_empty_amount_or_instant_is_an_error(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD)
    for row, column in (
        (("t1", "payment", "processed", "", "2026-01-01", "c", "pm"), "amount"),
        (("t1", "payment", "processed", "5.00", "", "c", "pm"), "created_at"),
    ):
        write_transactions(tmp_path, [row])
        outcome = custan("run", rules, "--format", "csv")
        assert outcome.code == 1, column
        assert f"row 1 (line 2): column '{column}' ({column}): the value is empty" in (
            outcome.err
        )


def test_json_lines_error_names_line(tmp_path, custan):
    lines = [
        '{"id": "t1", "type": "payment", "status": "processed", "amount": "1.00",'
        ' "created_at": "2026-01-01", "sender.account_id": "c"}',
        '{"id": "t2", "type": "payment", "status": "processed", "amount": "x",'
        ' "created_at": "2026-01-01", "sender.account_id": "c"}',
    ]
    (tmp_path / "tx.jsonl").write_text("\n".join(lines) + "\n")
    rules = write_rules(tmp_path, GOOD.replace("tx.csv", "tx.jsonl"))
    outcome = custan("run", rules)
    assert outcome.code == 1
    assert "tx.jsonl: line 2: column 'amount' (amount): cannot parse 'x'" in outcome.err


def test_comment_in_expression_rejected(tmp_path, custan):
    # "total --5" would read as total followed by a comment, not total - (-5).
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", "total --5 >= 100"))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "comments (-- or /* */) are not allowed in expressions" in outcome.err


def test_unknown_time_zone_rejected(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD + "time_zone: Mars/Olympus\n")
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert f"{rules}:10:12: time_zone: unknown time zone 'Mars/Olympus'" in outcome.err


def test_invalid_date_format_rejected(tmp_path, custan):
    text = GOOD.replace(
        "source: {path: tx.csv}", "source: {path: tx.csv, date_format: '%Q'}"
    )
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "source.date_format: invalid date_format '%Q'" in outcome.err


def test_unknown_mapped_field_rejected(tmp_path, custan):
    text = GOOD.replace(
        "source: {path: tx.csv}", "source: {path: tx.csv, columns: {foo: x}}"
    )
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "source.columns.foo: unknown field 'foo'; expected one of: amount" in (
        outcome.err
    )


def test_field_mapped_and_constant_rejected(tmp_path, custan):
    text = GOOD.replace(
        "source: {path: tx.csv}",
        "source: {path: tx.csv, columns: {type: kind}, constants: {type: payment}}",
    )
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "field 'type' is both mapped to a column and set as a constant" in (
        outcome.err
    )


def test_invalid_constant_amount_rejected(tmp_path, custan):
    text = GOOD.replace(
        "source: {path: tx.csv}", "source: {path: tx.csv, constants: {amount: abc}}"
    )
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "constant amount 'abc' is not a decimal amount" in outcome.err


def test_empty_as_of_option_rejected(tmp_path, custan):
    good_data(tmp_path)
    rules = write_rules(tmp_path, GOOD)
    outcome = custan("run", rules, "--as-of", "")
    assert outcome.code == 2
    assert "--as-of: invalid as_of ''" in outcome.err


def test_file_name_with_brackets_is_literal(tmp_path, custan):
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "150.00", "2026-01-01", "c", "pm"),
        ],
        name="data[1].csv",
    )
    rules = write_rules(tmp_path, GOOD.replace("tx.csv", "'data[1].csv'"))
    outcome = custan("run", rules, "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines()[1] == "c,150.00,1,Big,"


def test_summary_placeholder_must_be_declared(tmp_path, custan):
    text = GOOD + (
        "output:\n  summary:\n    values: {customers: count(*)}\n"
        "    lines: ['{customers} customers, {revenue} spent']\n"
    )
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "{revenue} names no summary value; declared values: customers" in (
        outcome.err
    )


def test_score_without_default_explained(tmp_path, custan):
    text = GOOD + "scores:\n  s: {of: total, bands: [{at_least: 1, score: 2}]}\n"
    rules = write_rules(tmp_path, text)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "scores.s: a score needs either bands with a default" in outcome.err


def test_misspelt_top_level_key_named(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD.replace("metrics:", "metric:"))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "unknown key 'metric'" in outcome.err


def test_long_definition_chain_rejected(tmp_path, custan):
    # d1 reads total, d2 reads d1, and so on: 150 levels in all.
    chain = "".join(f"  d{n}: d{n - 1} + 1\n" for n in range(2, 151))
    rules = write_rules(tmp_path, GOOD + "derived:\n  d1: total + 1\n" + chain)
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "definitions build on each other more than 100 levels deep" in outcome.err


def test_ragged_csv_rows_explained(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD)
    header = "id,type,status,amount,created_at,sender.account_id\n"
    short = (
        header
        + "t1,payment,processed,5.00,2026-01-01\n"
        + "t2,payment,processed,5.00,2026-01-01,c\n"
    )
    (tmp_path / "tx.csv").write_text(short)
    outcome = custan("run", rules)
    assert outcome.code == 1
    assert "every row has as many fields as the header" in outcome.err
    wide = header + "t1,payment,processed,5.00,2026-01-01,c,extra\n"
    (tmp_path / "tx.csv").write_text(wide)
    outcome = custan("run", rules)
    assert outcome.code == 1
    assert "the header has 6 fields but rows have 7" in outcome.err


def test_latin1_csv_says_not_utf8(tmp_path, custan):
    rules = write_rules(tmp_path, GOOD)
    (tmp_path / "tx.csv").write_bytes(
        b"id,type,status,amount,created_at,sender.account_id\n"
        b"t1,payment,processed,5.00,2026-01-01,caf\xe9\n"
    )
    outcome = custan("run", rules)
    assert outcome.code == 1
    assert "This file is not utf-8 encoded" in outcome.err


def test_long_expression_message_is_short(tmp_path, custan):
    condition = "total in (" + ", ".join(str(n) for n in range(3000)) + ")"
    rules = write_rules(tmp_path, GOOD.replace("total >= 100", condition))
    outcome = custan("validate", rules)
    assert outcome.code == 2
    assert "the text is longer than the limit of 4000 characters" in outcome.err
    assert len(outcome.err) < 500


def test_overflow_is_not_blamed_on_data(tmp_path, custan):
    # Every amount reads fine; the product of three totals of 10^12 overflows.
    write_transactions(
        tmp_path,
        [
            ("t1", "payment", "processed", "1000000000000", "2026-01-01", "c", "pm"),
        ],
    )
    text = GOOD + "derived:\n  huge: total * total * total * total\n"
    rules = write_rules(tmp_path, text)
    outcome = custan("run", rules)
    assert outcome.code == 1
    assert "a computed value is out of range" in outcome.err
    assert "cannot read csv data" not in outcome.err


def test_glob_error_counts_rows_per_file(tmp_path, custan):
    folder = tmp_path / "parts"
    folder.mkdir()
    write_transactions(
        folder,
        [
            ("t1", "payment", "processed", "1.00", "2026-01-01", "c", "pm"),
            ("t2", "payment", "processed", "2.00", "2026-01-01", "c", "pm"),
        ],
        name="1.csv",
    )
    write_transactions(
        folder,
        [
            ("t3", "payment", "processed", "3.00", "2026-01-01", "c", "pm"),
            ("t4", "payment", "processed", "1e3", "2026-01-01", "c", "pm"),
        ],
        name="2.csv",
    )
    rules = write_rules(tmp_path, GOOD.replace("tx.csv", "'parts/*.csv'"))
    outcome = custan("run", rules)
    assert outcome.code == 1
    assert "2.csv: row 2 (line 3): column 'amount' (amount): cannot parse '1e3'" in (
        outcome.err
    )


def test_small_rules_mistakes_explained(tmp_path, custan):
    cases = [
        (GOOD + "filters:\n  - window: 90 dayz\n", "'90 dayz' is not a span"),
        (GOOD + "filters:\n  - window: 90\n", "90 is not text; put it in quotes"),
        (GOOD.replace("name: Small", "name: No"), "False is not text"),
        (
            GOOD + "derived:\n  Big Total: total\n",
            "is not a valid name; use lower-case",
        ),
        (
            GOOD
            + "output:\n  summary:\n    values: {n: count(*)}\n    lines: ['{n']\n",
            "a lone { or } in a summary line",
        ),
    ]
    for text, message in cases:
        rules = write_rules(tmp_path, text)
        outcome = custan("validate", rules)
        assert outcome.code == 2, message
        assert message in outcome.err


def test_empty_data_file_said_empty(tmp_path, custan):
    (tmp_path / "tx.csv").write_text("")
    rules = write_rules(tmp_path, GOOD)
    outcome = custan("run", rules)
    assert outcome.code == 1
    assert "tx.csv: the data file is empty" in outcome.err


def test_empty_output_path_rejected(tmp_path, custan):
    good_data(tmp_path)
    outcome = custan("run", write_rules(tmp_path, GOOD), "-o", "")
    assert outcome.code == 2
    assert "--output is empty" in outcome.err
