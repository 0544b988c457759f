"""Generate the sample Payload-shaped transactions and accounts in this folder.

The data is synthetic and seeded, so running this again writes the same files.
Each customer follows an archetype chosen so that every RFM segment appears,
and the rows mix payments, refunds, voided and declined payments, and
timestamps written with different UTC offsets or with none.
"""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

END = datetime(2026, 11, 30, 18, 0, tzinfo=timezone.utc)
FOLDER = Path(__file__).parent
OFFSETS = [timezone.utc, timezone(timedelta(hours=-5)), timezone(timedelta(hours=2)),
           timezone(timedelta(hours=5, minutes=30)), None]

# (archetype, customers, purchases range, days back of the last purchase, amount range)
ARCHETYPES = [
    ("champion", 4, (20, 30), (0, 20), (250, 700)),
    ("loyal", 5, (10, 19), (5, 80), (40, 120)),
    ("big_spender", 3, (2, 4), (10, 60), (2500, 4000)),
    ("promising", 6, (1, 3), (95, 170), (50, 300)),
    ("need_attention", 4, (5, 9), (200, 350), (30, 90)),
    ("at_risk", 4, (2, 4), (400, 600), (400, 900)),
    ("lost", 6, (1, 2), (380, 700), (10, 200)),
]


def format_instant(moment: datetime, rng: random.Random) -> str:
    zone = rng.choice(OFFSETS)
    if zone is None:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    local = moment.astimezone(zone)
    return local.isoformat(timespec="seconds").replace("+00:00", "Z")


def customer_rows(rng: random.Random, account: str, spec) -> list[dict[str, str]]:
    _, _, purchases, last_back, amounts = spec
    count = rng.randint(*purchases)
    last = END - timedelta(days=rng.randint(*last_back), hours=rng.randint(0, 20))
    spread = timedelta(days=rng.randint(60, 500))
    methods = [f"pm_{account[5:]}_{n}" for n in range(rng.randint(1, 3))]
    moments = sorted(last - spread * rng.random() for _ in range(count - 1)) + [last]
    rows = []
    for moment in moments:
        cents = rng.randint(amounts[0] * 100, amounts[1] * 100)
        rows.append({
            "type": "payment", "status": "processed",
            "amount": str(Decimal(cents) / 100),
            "created_at": format_instant(moment, rng),
            "sender.account_id": account, "sender.method_id": rng.choice(methods),
        })
        noise = rng.random()
        if noise < 0.08:
            rows.append({**rows[-1], "type": "refund",
                         "created_at": format_instant(moment + timedelta(days=3), rng)})
        elif noise < 0.14:
            rows.append({**rows[-1], "status": rng.choice(["voided", "declined"]),
                         "created_at": format_instant(moment + timedelta(minutes=5), rng)})
    return rows


def main() -> None:
    rng = random.Random(20261130)
    transactions, accounts = [], []
    number = 0
    for spec in ARCHETYPES:
        for _ in range(spec[1]):
            number += 1
            account = f"acct_{number:04d}"
            rows = customer_rows(rng, account, spec)
            transactions += rows
            first = min(datetime.fromisoformat(r["created_at"]).replace(
                tzinfo=datetime.fromisoformat(r["created_at"]).tzinfo or timezone.utc)
                for r in rows)
            signup = first - timedelta(days=rng.randint(0, 40))
            accounts.append({"id": account,
                             "created_at": signup.astimezone(timezone.utc).isoformat()})
    rng.shuffle(transactions)
    for index, row in enumerate(transactions, start=1):
        row["id"] = f"txn_{index:05d}"
    columns = ["id", "type", "status", "amount", "created_at", "sender.account_id",
               "sender.method_id"]
    with open(FOLDER / "transactions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(transactions)
    with open(FOLDER / "accounts.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "created_at"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(accounts)


if __name__ == "__main__":
    main()
