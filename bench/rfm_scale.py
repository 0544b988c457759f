"""Time custan's RFM run against baselines measured in the same run.

The CDNOW log is replicated N times (customer ids made unique per copy) and
written as whitespace-aligned text like the original. Each contender runs as
its own process, so wall time and peak memory (max RSS) are whole-process
figures:

- custan: ``custan run examples/cdnow/rfm.yaml --data BIG --format csv``
- duckdb-sql: the same RFM written by hand as one DuckDB query
- python-loop: the guide's approach, a Python loop over every record
  (skipped above --loop-limit rows, because it is the slow reference)

Usage: python bench/rfm_scale.py [--copies 1 10 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "cdnow" / "rfm.yaml"
MASTER = ROOT / "examples" / "cdnow" / "CDNOW_master.txt"
ROWS_PER_COPY = 69_659

HAND_WRITTEN_SQL = r"""
SET TimeZone = 'UTC';
COPY (
  WITH raw AS (
    SELECT string_split_regex(trim(line), '\s+') AS f
    FROM read_csv('{path}', columns={{'line': 'VARCHAR'}}, delim='\x1f', header=false,
                  quote='', escape='', auto_detect=false)
  ), tx AS (
    SELECT f[1] AS customer_id, strptime(f[2], '%Y%m%d')::TIMESTAMPTZ AS created_at,
           f[4]::DECIMAL(18,4) AS amount
    FROM raw WHERE f[1] <> 'customer_id'
  ), m AS (
    SELECT customer_id, max(created_at) AS last_purchase, count(*) AS purchases,
           sum(amount) AS total
    FROM tx GROUP BY customer_id
  ), s AS (
    SELECT *, floor(date_diff('microsecond', last_purchase,
                              TIMESTAMPTZ '1998-07-01 00:00:00+00') / 86400e6) AS days
    FROM m
  ), scored AS (
    SELECT *,
      CASE WHEN days < 30 THEN 5 WHEN days < 90 THEN 4 WHEN days < 180 THEN 3
           WHEN days < 365 THEN 2 ELSE 1 END AS r,
      CASE WHEN purchases >= 20 THEN 5 WHEN purchases >= 10 THEN 4
           WHEN purchases >= 5 THEN 3 WHEN purchases >= 2 THEN 2 ELSE 1 END AS f,
      CASE WHEN total >= 10000 THEN 5 WHEN total >= 5000 THEN 4
           WHEN total >= 1000 THEN 3 WHEN total >= 500 THEN 2 ELSE 1 END AS m
    FROM s
  )
  SELECT customer_id, last_purchase, purchases, round(total, 2) AS total, days, r, f, m,
    CASE WHEN r >= 4 AND f >= 4 AND m >= 4 THEN 'Champions'
         WHEN r >= 4 AND f >= 3 THEN 'Loyal Customers'
         WHEN r >= 4 AND m >= 4 THEN 'Big Spenders'
         WHEN r >= 3 THEN 'Promising' WHEN f >= 3 THEN 'Need Attention'
         WHEN m >= 3 THEN 'At Risk' ELSE 'Lost' END AS segment
  FROM scored ORDER BY total DESC, customer_id
) TO '{output}' (HEADER);
"""

PYTHON_LOOP = r"""
import sys
from datetime import datetime, timezone
from decimal import Decimal
as_of = datetime(1998, 7, 1, tzinfo=timezone.utc)
customers = {}
with open(sys.argv[1]) as handle:
    next(handle)
    for line in handle:
        customer, day, _, value = line.split()
        when = datetime.strptime(day, "%Y%m%d").replace(tzinfo=timezone.utc)
        record = customers.setdefault(customer, [when, 0, Decimal(0)])
        record[0] = max(record[0], when)
        record[1] += 1
        record[2] += Decimal(value)
with open(sys.argv[2], "w") as out:
    for customer, (last, count, total) in sorted(customers.items(), key=lambda kv: -kv[1][2]):
        days = (as_of - last).days
        out.write(f"{customer},{last.isoformat()},{count},{total},{days}\n")
"""


def make_log(copies: int, folder: Path) -> Path:
    """Write the CDNOW log ``copies`` times, each copy with its own customer ids."""
    path = folder / f"cdnow_x{copies}.txt"
    connection = duckdb.connect()
    connection.execute(f"""
        COPY (
         SELECT line FROM (
          SELECT ' customer_id  date number_of_cds  dollar_value' AS line, -1 AS copy, 0 AS n
          UNION ALL
          SELECT ' ' || lpad(copy::VARCHAR, 3, '0') || trim(line), copy, n
          FROM (SELECT line, row_number() OVER () AS n
                FROM read_csv('{MASTER}', columns={{'line': 'VARCHAR'}}, delim='\x1f',
                              header=false, quote='', escape='', auto_detect=false)
                OFFSET 1),
               range({copies}) AS copies(copy)
         ) ORDER BY copy, n
        ) TO '{path}' (HEADER false, QUOTE '', DELIMITER '\x1f')
    """)
    return path


def measure(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return wall seconds and peak resident memory in MiB."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        error = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{command[:3]} failed: {error}")
    return elapsed, usage.ru_maxrss / 1024


def contenders(log: Path, folder: Path, with_loop: bool) -> dict[str, list[str]]:
    script = folder / "hand_written.sql"
    script.write_text(HAND_WRITTEN_SQL.format(path=log, output=folder / "sql.csv"))
    loop = folder / "loop.py"
    loop.write_text(PYTHON_LOOP)
    commands = {
        "custan": [
            sys.executable,
            "-m",
            "custan",
            "run",
            str(RULES),
            "--data",
            str(log),
            "--as-of",
            "1998-07-01",
            "--format",
            "csv",
            "-o",
            str(folder / "custan.csv"),
            "-q",
        ],
        "duckdb-sql": [
            sys.executable,
            "-c",
            "import duckdb,sys; duckdb.connect().execute(open(sys.argv[1]).read())",
            str(script),
        ],
    }
    if with_loop:
        commands["python-loop"] = [
            sys.executable,
            str(loop),
            str(log),
            str(folder / "loop.csv"),
        ]
    return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop-limit", type=int, default=1_000_000)
    args = parser.parse_args()
    print(
        f"{'rows':>10} {'contender':>12} {'median s':>9} {'max MiB':>8} "
        f"{'time/custan':>12} {'mem/custan':>11}"
    )
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for copies in args.copies:
            log = make_log(copies, folder)
            rows = copies * ROWS_PER_COPY
            commands = contenders(log, folder, rows <= args.loop_limit)
            figures = {}
            for label, command in commands.items():
                runs = [measure(command) for _ in range(args.repeat)]
                figures[label] = (
                    statistics.median(r[0] for r in runs),
                    max(r[1] for r in runs),
                )
            base_time, base_memory = figures["custan"]
            for label, (seconds, memory) in figures.items():
                print(
                    f"{rows:>10,} {label:>12} {seconds:>9.2f} {memory:>8.0f} "
                    f"{seconds / base_time:>12.2f} {memory / base_memory:>11.2f}"
                )


if __name__ == "__main__":
    main()
