"""Output never depends on the order rows arrive in: ties are broken by id."""

from __future__ import annotations

import random

import pytest
from conftest import ROOT

RULES = sorted((ROOT / "rules").glob("*.yaml"))
# The sample, and the reports fixture whose customers tie on totals, methods
# and (day, hour) pairs on purpose.
DATA = [
    ROOT / "data" / "sample" / "transactions.csv",
    ROOT / "tests" / "data" / "reports" / "transactions.csv",
]


def reorder(source, folder):
    """Write ``source`` reversed, and shuffled with a fixed seed."""
    header, *rows = source.read_text().splitlines()
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    paths = []
    for name, order in (("reversed.csv", rows[::-1]), ("shuffled.csv", shuffled)):
        path = folder / name
        path.write_text("\n".join([header, *order]) + "\n")
        paths.append(path)
    return paths


@pytest.mark.parametrize("data", DATA, ids=["sample", "reports"])
@pytest.mark.parametrize("rules", RULES, ids=[path.stem for path in RULES])
def test_row_order_does_not_change_output(rules, data, tmp_path, custan):
    baseline = custan("run", rules, "--format", "csv", "--data", data)
    assert baseline.code == 0, baseline.err
    for path in reorder(data, tmp_path):
        outcome = custan("run", rules, "--format", "csv", "--data", path)
        assert outcome.code == 0, outcome.err
        assert outcome.out == baseline.out, f"{rules.name} differs for {path.name}"
