"""Shared helpers: run the command line in-process and read what it wrote."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from custan.cli import main

ROOT = Path(__file__).resolve().parent.parent


class Outcome:
    """Exit code and captured streams of one command-line run."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    def csv_rows(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.out)))

    def json_rows(self) -> list[dict]:
        return json.loads(self.out)


@pytest.fixture
def custan(capsys):
    """Call ``custan(*args)`` to run the command line and get an Outcome."""

    def run(*args: str) -> Outcome:
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def write_rules(folder: Path, text: str, name: str = "rules.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def write_transactions(folder: Path, rows: list[tuple], name: str = "tx.csv") -> Path:
    """Write a Payload-shaped CSV of (id, type, status, amount, created_at,
    account, method) rows."""
    path = folder / name
    lines = ["id,type,status,amount,created_at,sender.account_id,sender.method_id"]
    lines += [",".join(str(value) for value in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
