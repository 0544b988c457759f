"""The guide's per-customer reports, run from rules/ on a small fixture.

Every expected value below was worked out by hand from
tests/data/reports/transactions.csv, evaluated as of AS_OF. The fixture's
purchases (processed payments), in UTC, with T = AS_OF = Tue 2026-06-30 12:00:

acct_01  6 purchases, 10,000.00; first T-95d (Fri 03-27 12:00), then
         Wed 05-06 09:00, Mon 05-11 18:00, Wed 06-03 09:15 (written -04:00),
         Mon 06-15 18:45 (written 06-16 00:15+05:30), Fri 06-26 20:00.
         Methods pm_01b, c, a, b, a, c: a three-way tie, pm_01b first in the
         file. Also a declined payment (Wed 09:30, pm_01b) and a refund
         (pm_01c), which would break both ties if they counted.
acct_02  4 purchases, exactly 5,000.00; Thu 03-12 12:00 (T-110d), Sun 03-15
         10:00, Thu 03-19 16:00, Mon 03-23 12:00 (T-99d). A declined payment
         on 06-01 would make it active if it counted.
acct_03  4 purchases, 6,000.00; Mon 03-02 12:00 (T-120d exactly), Tue 03-10
         12:00, Fri 03-20 12:00, Wed 04-01 12:00 (T-90d exactly, written
         08:00-04:00), the last one 1,500.00.
acct_04  2 purchases, 5,000.01 (2,500.00 + 2,500.01); Wed 04-01 12:00 (T-90d)
         and 04-01 13:00 (T-89d23h, written 18:30+05:30).
acct_05  4 purchases, 7,500.00; Thu 01-01 12:00 (T-180d), Tue 02-10 08:00,
         Thu 03-05 08:00, Wed 04-01 11:00 (T-90d1h, written 07:00-04:00).
         Methods pm_05b 2,000.00, pm_05a 1,750.00 and 2,250.00, none 1,500.00.
acct_06  2 purchases, 400.00; Sun 05-31 12:00 (T-30d exactly, 150.00) and
         Sun 06-21 06:00 (T-9d6h, 250.00, written 08:00+02:00). A voided
         payment at T-100d and a refund do not count.
acct_07  1 purchase, 1,200.00, Fri 05-01 12:00 (T-60d exactly).
acct_08  1 purchase, 300.00, Fri 05-01 11:59:59 (T-60d-1s), no method id.
acct_09  1 purchase, 2,500.00, Tue 06-30 10:00 (T-2h); another on 07-01 is
         after AS_OF and does not count.
"""

from __future__ import annotations

import json
from decimal import Decimal

from conftest import ROOT, write_rules

RULES = ROOT / "rules"
DATA = ROOT / "tests" / "data" / "reports" / "transactions.csv"
AS_OF = "2026-06-30T12:00:00Z"
# Before every purchase in the fixture: no customer has bought anything yet.
BEFORE_ANY = "2025-12-31T00:00:00Z"


def report(custan, name: str, *options: str, as_of: str = AS_OF, fmt: str = "csv"):
    """Run rules/<name>.yaml on the fixture and return the Outcome."""
    outcome = custan(
        "run",
        RULES / f"{name}.yaml",
        "--data",
        DATA,
        "--as-of",
        as_of,
        "--format",
        fmt,
        *options,
    )
    assert outcome.code == 0, outcome.err
    return outcome


def csv_lines(custan, name: str, *options: str, as_of: str = AS_OF) -> list[str]:
    return report(custan, name, *options, as_of=as_of).out.splitlines()


def last_lines(
    custan, name: str, count: int, *options: str, as_of: str = AS_OF
) -> list[str]:
    """The last lines of the table format: the summary lines, when there are count."""
    out = report(custan, name, *options, as_of=as_of, fmt="table").out
    return [line.rstrip() for line in out.splitlines()][-count:]


def test_every_rules_file_validates(custan):
    files = sorted(RULES.glob("*.yaml"))
    outcome = custan("validate", *files)
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines() == [f"{path}: ok" for path in files]


def test_ltv_top_customers(custan):
    # Totals from the fixture, largest first. Averages are total / purchases:
    # 10,000.00 / 6 = 1,666.666... -> 1,666.67; 5,000.01 / 2 = 2,500.005,
    # exactly half a cent, rounded half-even to 2,500.00.
    # 5,000.01 and 5,000.00 differ by a cent and keep that order.
    assert csv_lines(custan, "ltv") == [
        "customer_id,total,average_order,purchases",
        "acct_01,10000.00,1666.67,6",
        "acct_05,7500.00,1875.00,4",
        "acct_03,6000.00,1500.00,4",
        "acct_04,5000.01,2500.00,2",
        "acct_02,5000.00,1250.00,4",
        "acct_09,2500.00,2500.00,1",
        "acct_07,1200.00,1200.00,1",
        "acct_06,400.00,200.00,2",
        "acct_08,300.00,300.00,1",
    ]


def test_ltv_summary_covers_the_top_list(custan):
    # All 9: 10,000 + 7,500 + 6,000 + 5,000.01 + 5,000 + 2,500 + 1,200 + 400
    # + 300 = 37,900.01; / 9 = 4,211.112... -> 4,211.11.
    assert last_lines(custan, "ltv", 2) == [
        "Top 9 customers represent $37,900.01 in total revenue",
        "Average revenue per top customer: $4,211.11",
    ]
    # Top 3: 10,000 + 7,500 + 6,000 = 23,500.00; / 3 = 7,833.333... -> 7,833.33.
    assert last_lines(custan, "ltv", 2, "--limit", "3") == [
        "Top 3 customers represent $23,500.00 in total revenue",
        "Average revenue per top customer: $7,833.33",
    ]


def test_ltv_summary_without_customers(custan):
    assert last_lines(custan, "ltv", 2, as_of=BEFORE_ANY) == [
        "Top 0 customers represent $0.00 in total revenue",
        "Average revenue per top customer: $0.00",
    ]


def test_tiers_inclusive_edges(custan):
    # 10,000.00 is exactly Platinum's edge and 5,000.00 exactly Gold's.
    assert csv_lines(custan, "tiers") == [
        "customer_id,total,tier",
        "acct_01,10000.00,Platinum",
        "acct_05,7500.00,Gold",
        "acct_03,6000.00,Gold",
        "acct_04,5000.01,Gold",
        "acct_02,5000.00,Gold",
        "acct_09,2500.00,Silver",
        "acct_07,1200.00,Silver",
        "acct_06,400.00,Bronze",
        "acct_08,300.00,Bronze",
    ]
    # Gold: 7,500 + 6,000 + 5,000.01 + 5,000 = 23,500.01. Silver: 2,500 +
    # 1,200 = 3,700. Bronze: 400 + 300 = 700.
    assert last_lines(custan, "tiers", 4) == [
        "Platinum customers: 1, revenue $10,000.00",
        "Gold customers: 4, revenue $23,500.01",
        "Silver customers: 2, revenue $3,700.00",
        "Bronze customers: 2, revenue $700.00",
    ]


GROUPED_TIERS = """version: 1
source: {path: tx.csv}
filters: ["type = 'payment'", "status = 'processed'"]
metrics:
  total: {agg: sum, of: amount}
tiers:
  tier:
    of: total
    levels: [{name: Platinum, at_least: 10000}, {name: Gold, at_least: 5000},
             {name: Silver, at_least: 1000}]
    default: Bronze
output:
  group_by: [tier]
  values:
    customers: count(*)
    customer_share: share(count(*))
    revenue: sum(total)
    revenue_share: share(sum(total))
  sort: [-revenue]
  decimals: 4
"""


def test_grouped_tiers_csv_and_json(tmp_path, custan):
    # The per-tier table the tiers file mentions. Shares of 9 customers:
    # 4/9 = 0.4444, 1/9 = 0.1111, 2/9 = 0.2222. Shares of 37,900.01:
    # 23,500.01 -> 0.62005.. = 0.6201; 10,000 -> 0.26385.. = 0.2639;
    # 3,700 -> 0.09762.. = 0.0976; 700 -> 0.01846.. = 0.0185.
    rules = write_rules(tmp_path, GROUPED_TIERS)
    common = ("run", rules, "--data", DATA, "--as-of", AS_OF)
    outcome = custan(*common, "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines() == [
        "tier,customers,customer_share,revenue,revenue_share",
        "Gold,4,0.4444,23500.01,0.6201",
        "Platinum,1,0.1111,10000.00,0.2639",
        "Silver,2,0.2222,3700.00,0.0976",
        "Bronze,2,0.2222,700.00,0.0185",
    ]
    outcome = custan(*common, "--format", "json")
    rows = json.loads(outcome.out, parse_float=Decimal)
    assert rows[0] == {
        "tier": "Gold",
        "customers": 4,
        "customer_share": Decimal("0.4444"),
        "revenue": Decimal("23500.01"),
        "revenue_share": Decimal("0.6201"),
    }
    assert [row["tier"] for row in rows] == ["Gold", "Platinum", "Silver", "Bronze"]


def test_at_risk_edges_are_strict(custan):
    # acct_05's last purchase is 90 days 1 hour old: at risk, and whole days
    # since it are 90. acct_03 (exactly 90 days) and acct_04 (89 days 23 h)
    # are not yet; acct_02 is 99 days old but spent exactly 5,000.00, not more.
    assert csv_lines(custan, "at_risk") == [
        "customer_id,total,last_purchase,days_since_last",
        "acct_05,7500.00,2026-04-01T11:00:00Z,90",
    ]
    assert last_lines(custan, "at_risk", 1) == [
        "Found 1 high-value customers at risk of churning",
    ]


def test_at_risk_an_hour_later(custan):
    # At 13:00 acct_03's last purchase is 90 days 1 hour old and joins;
    # acct_04's is now exactly 90 days old and still does not.
    assert csv_lines(custan, "at_risk", as_of="2026-06-30T13:00:00Z") == [
        "customer_id,total,last_purchase,days_since_last",
        "acct_05,7500.00,2026-04-01T11:00:00Z,90",
        "acct_03,6000.00,2026-04-01T12:00:00Z,90",
    ]


def test_frequency_distribution_over_all_customers(custan):
    # Purchases per customer: 6 (01), 4 (02, 03, 05), 2 (04, 06), 1 (07, 08, 09).
    assert csv_lines(custan, "frequency") == [
        "purchases,customers",
        "1,3",
        "2,2",
        "4,3",
        "6,1",
    ]
    assert last_lines(custan, "frequency", 1) == ["9 customers in all"]


def test_new_vs_returning_last_30_days(custan):
    # The window starts at T-30d = 05-31 12:00, inclusive.
    # New: acct_06 (first purchase exactly at T-30d; its voided payment at
    # T-100d does not make it returning): 150 + 250; acct_09: 2,500 (its
    # 07-01 purchase is after as_of). 2,900.00 from 3 purchases, 2 customers.
    # Returning: acct_01's 06-03, 06-15 and 06-26 purchases, 2,000 + 1,250 +
    # 1,250 = 4,500.00 from 3; its declined payment and refund do not count.
    # acct_02's declined payment on 06-01 does not make it a customer here.
    assert csv_lines(custan, "new_vs_returning") == [
        "customer_type,revenue,purchases,customers",
        "new,2900.00,3,2",
        "returning,4500.00,3,1",
    ]
    assert last_lines(custan, "new_vs_returning", 2) == [
        "New customers: $2,900.00 from 3 purchases",
        "Returning customers: $4,500.00 from 3 purchases",
    ]


def test_grouped_reports_show_their_as_of(custan):
    # A grouped row has no customer, but the caption still names the instant.
    out = report(custan, "frequency", fmt="table").out
    assert "2026-06-30T12:00:00Z" in out


def test_new_vs_returning_json_has_group_columns(custan):
    rows = json.loads(
        report(custan, "new_vs_returning", fmt="json").out, parse_float=Decimal
    )
    assert rows == [
        {
            "customer_type": "new",
            "revenue": Decimal("2900.00"),
            "purchases": 3,
            "customers": 2,
        },
        {
            "customer_type": "returning",
            "revenue": Decimal("4500.00"),
            "purchases": 3,
            "customers": 1,
        },
    ]


def test_new_vs_returning_missing_kind_is_zero(custan):
    # As of 2026-04-15 12:00 the window starts 03-16 12:00. Purchases in it:
    # acct_02 03-19 (1,250) and 03-23 (1,250), first on 03-12: returning.
    # acct_03 03-20 (1,500) and 04-01 (1,500), first 03-02: returning.
    # acct_04 04-01 twice (5,000.01), first 04-01: new. acct_05 03-05 is
    # outside; its 04-01 purchase (1,500) is in, first 01-01: returning.
    # acct_01 03-27 (3,000), first 03-27: new.
    # New: 5,000.01 + 3,000 = 8,000.01 from 3; returning: 2,500 + 3,000 +
    # 1,500 = 7,000.00 from 5.
    assert last_lines(custan, "new_vs_returning", 2, as_of="2026-04-15T12:00:00Z") == [
        "New customers: $8,000.01 from 3 purchases",
        "Returning customers: $7,000.00 from 5 purchases",
    ]
    # As of 2026-01-15 only acct_05 has bought (01-01, 2,000.00), and that is
    # its first purchase: no returning row, but the line still shows 0.
    assert last_lines(custan, "new_vs_returning", 2, as_of="2026-01-15T00:00:00Z") == [
        "New customers: $2,000.00 from 1 purchases",
        "Returning customers: $0.00 from 0 purchases",
    ]


def test_purchase_gaps_are_exact_elapsed_time(custan):
    # (last - first) / (purchases - 1), in days with the fraction:
    # acct_01: 03-27 12:00 to 06-26 20:00 is 91 d 8 h = 91.3333 d; / 5 =
    #          18.266666.. -> 18.266667 (the guide's floored gaps give 17.8).
    # acct_02: 11 d / 3 = 3.666666.. -> 3.666667.   acct_03: 30 d / 3 = 10.
    # acct_04: 1 h = 1/24 d = 0.041666.. -> 0.041667 (the guide's floored gap is 0).
    # acct_05: 90 d - 1 h = 89.958333.. d; / 3 = 29.986111..
    # acct_06: 20 d 18 h = 20.75 d.  One purchase (07, 08, 09): no row.
    assert csv_lines(custan, "purchase_gaps") == [
        "customer_id,purchases,first_purchase,last_purchase,average_gap_days",
        "acct_01,6,2026-03-27T12:00:00Z,2026-06-26T20:00:00Z,18.266667",
        "acct_02,4,2026-03-12T12:00:00Z,2026-03-23T12:00:00Z,3.666667",
        "acct_03,4,2026-03-02T12:00:00Z,2026-04-01T12:00:00Z,10",
        "acct_04,2,2026-04-01T12:00:00Z,2026-04-01T13:00:00Z,0.041667",
        "acct_05,4,2026-01-01T12:00:00Z,2026-04-01T11:00:00Z,29.986111",
        "acct_06,2,2026-05-31T12:00:00Z,2026-06-21T06:00:00Z,20.75",
    ]


def test_timing_peak_day_and_hour_in_utc(custan):
    # acct_01's slots: Fri 12, Wed 9, Mon 18, Wed 9, Mon 18, Fri 20. Wed 9 and
    # Mon 18 tie at 2 (Wed 9 first in the file); Monday is earlier.
    # The others' slots are all different, so the earliest one wins:
    # 02: Thu 12, Sun 10, Thu 16, Mon 12 -> Mon 12.
    # 03: Mon 12, Tue 12, Fri 12, Wed 12 -> Mon 12.  04: Wed 12, Wed 13.
    # 05: Thu 12, Tue 8, Thu 8, Wed 11 -> Tue 8.  06: Sun 12, Sun 6 -> Sun 6.
    assert csv_lines(custan, "timing") == [
        "customer_id,peak_day,peak_hour,peak_purchases,purchases",
        "acct_01,Mon,18,2,6",
        "acct_02,Mon,12,1,4",
        "acct_03,Mon,12,1,4",
        "acct_04,Wed,12,1,2",
        "acct_05,Tue,8,1,4",
        "acct_06,Sun,6,1,2",
        "acct_07,Fri,12,1,1",
        "acct_08,Fri,11,1,1",
        "acct_09,Tue,10,1,1",
    ]


def test_timing_follows_the_files_time_zone(tmp_path, custan):
    # In Asia/Kolkata (+05:30, no daylight saving) acct_01's purchases fall
    # on Fri 17:30, Wed 14:30, Mon 23:30, Wed 14:45, Tue 00:15, Sat 01:30:
    # Wed 14 is the only slot with 2. For the others, 5 h 30 min later:
    # 02: Thu 17, Sun 15, Thu 21, Mon 17.  03: Mon 17, Tue 17, Fri 17, Wed 17.
    # 04: Wed 17, Wed 18.  05: Thu 17, Tue 13, Thu 13, Wed 16.
    # 06: Sun 17, Sun 11.  07: Fri 17:30.  08: Fri 17:29:59.  09: Tue 15:30.
    text = (RULES / "timing.yaml").read_text()
    assert "time_zone: UTC\n" in text
    rules = write_rules(
        tmp_path, text.replace("time_zone: UTC\n", "time_zone: Asia/Kolkata\n")
    )
    outcome = custan("run", rules, "--data", DATA, "--as-of", AS_OF, "--format", "csv")
    assert outcome.code == 0, outcome.err
    assert outcome.out.splitlines() == [
        "customer_id,peak_day,peak_hour,peak_purchases,purchases",
        "acct_01,Wed,14,2,6",
        "acct_02,Mon,17,1,4",
        "acct_03,Mon,17,1,4",
        "acct_04,Wed,17,1,2",
        "acct_05,Tue,13,1,4",
        "acct_06,Sun,11,1,2",
        "acct_07,Fri,17,1,1",
        "acct_08,Fri,17,1,1",
        "acct_09,Tue,15,1,1",
    ]


def test_payment_methods_tie_to_smallest_id(custan):
    # acct_01: pm_01a, pm_01b and pm_01c are used twice each; pm_01a paid
    # 1,000 + 1,250 = 2,250.00. acct_05: pm_05a twice (1,750 + 2,250), pm_05b
    # once, one purchase without a method. acct_08 has no method id at all.
    assert csv_lines(custan, "payment_methods") == [
        "customer_id,preferred_method,preferred_uses,preferred_amount,purchases",
        "acct_01,pm_01a,2,2250.00,6",
        "acct_02,pm_02,4,5000.00,4",
        "acct_03,pm_03,4,6000.00,4",
        "acct_04,pm_04,2,5000.01,2",
        "acct_05,pm_05a,2,4000.00,4",
        "acct_06,pm_06,2,400.00,2",
        "acct_07,pm_07,1,1200.00,1",
        "acct_08,,0,0.00,1",
        "acct_09,pm_09,1,2500.00,1",
    ]


def test_retention_of_the_cohort(custan):
    # Cohort: first purchase in [03-02 12:00, 04-01 12:00). acct_03 (03-02
    # 12:00, the start, included), acct_02 (03-12), acct_01 (03-27). Not
    # acct_04 (04-01 12:00, the end), nor acct_06, whose voided payment at
    # T-100d is no purchase. Only acct_01 bought in the last 30 days:
    # 1 / 3 = 33.33..% -> 33.3.
    assert csv_lines(custan, "retention") == [
        "cohort_size,retained_customers,retention_rate",
        "3,1,33.3",
    ]
    assert last_lines(custan, "retention", 3) == [
        "Cohort size: 3 customers",
        "Retained customers: 1",
        "Retention rate: 33.3%",
    ]


def test_retention_of_an_empty_cohort_is_zero(custan):
    assert csv_lines(custan, "retention", as_of=BEFORE_ANY) == [
        "cohort_size,retained_customers,retention_rate",
        "0,0,0",
    ]


def test_churn_risk_ranking(custan):
    # age = whole days since the first purchase, expected = age / purchases,
    # risk = min(days since last / expected, 10), priority = risk x total.
    # acct_02: age 110, 4 purchases: expected 27.5; 99 > 55; risk 99 / 27.5 =
    #          3.6; x 5,000.00 = 18,000.00.
    # acct_03: age 120, 4: expected 30; 90 > 60; risk 3; x 6,000 = 18,000.00.
    # They tie and go by customer id. Not at risk: acct_05 (age 180, 4: 90
    # is not more than 2 x 45), acct_04 (89 < 2 x 45), acct_07 (60 < 120),
    # acct_01 (3 days). acct_06 and acct_08 spent 1,000 or less; acct_09 is
    # 2 hours old (age 0) and skipped.
    assert csv_lines(custan, "churn") == [
        "customer_id,total,purchases,customer_age,days_since_last,expected_interval,"
        "risk_score,priority",
        "acct_02,5000.00,4,110,99,27.5,3.6,18000.00",
        "acct_03,6000.00,4,120,90,30,3,18000.00",
    ]


def test_value_activity_segments(custan):
    # High value: 5,000 or more (acct_02's 5,000.00 counts). Active: last
    # purchase at or after T-60d = 05-01 12:00 (acct_07 at exactly that
    # instant is active, acct_08 one second earlier is not).
    assert csv_lines(custan, "value_activity") == [
        "customer_id,total,last_purchase,days_since_last,segment,action",
        "acct_01,10000.00,2026-06-26T20:00:00Z,3,Champions,Reward with VIP benefits",
        "acct_05,7500.00,2026-04-01T11:00:00Z,90,At Risk,Re-engagement campaign",
        "acct_03,6000.00,2026-04-01T12:00:00Z,90,At Risk,Re-engagement campaign",
        "acct_04,5000.01,2026-04-01T13:00:00Z,89,At Risk,Re-engagement campaign",
        "acct_02,5000.00,2026-03-23T12:00:00Z,99,At Risk,Re-engagement campaign",
        "acct_09,2500.00,2026-06-30T10:00:00Z,0,Promising,Upsell campaign",
        "acct_07,1200.00,2026-05-01T12:00:00Z,60,Promising,Upsell campaign",
        "acct_06,400.00,2026-06-21T06:00:00Z,9,Promising,Upsell campaign",
        "acct_08,300.00,2026-05-01T11:59:59Z,60,Hibernating,Win-back offer",
    ]
    assert last_lines(custan, "value_activity", 4) == [
        "Champions (1): Reward with VIP benefits",
        "At Risk (4): Re-engagement campaign",
        "Promising (3): Upsell campaign",
        "Hibernating (1): Win-back offer",
    ]


def test_ltv_windows_all_time_and_last_90_days(custan):
    # The window starts at T-90d = 04-01 12:00, inclusive. acct_01: all but
    # the 03-27 purchase, 10,000 - 3,000 = 7,000.00, 0.7 of all-time.
    # acct_03: only 04-01 12:00 (1,500.00), 0.25. acct_04: both, at 12:00 and
    # 13:00. acct_05's last purchase (04-01 11:00) is an hour too early.
    assert csv_lines(custan, "ltv_windows") == [
        "customer_id,all_time,last_90_days,recent_share",
        "acct_01,10000.00,7000.00,0.7",
        "acct_05,7500.00,0.00,0",
        "acct_03,6000.00,1500.00,0.25",
        "acct_04,5000.01,5000.01,1",
        "acct_02,5000.00,0.00,0",
        "acct_09,2500.00,2500.00,1",
        "acct_07,1200.00,1200.00,1",
        "acct_06,400.00,400.00,1",
        "acct_08,300.00,300.00,1",
    ]
