#!/usr/bin/env python3
"""Svodka against DuckDB on the same Parquet files: time, peak memory and equal values.

Generates the demo data set (`svodka demo --deals N`), imports it into a snapshot store,
then for each report that has an independent DuckDB implementation in `bench/sql/`
runs `svodka run REPORT` (JSON out) and the DuckDB SQL over the store's Parquet files,
`--runs` times each, interleaved, and prints the medians, their ratio, Svodka's peak RSS,
and whether every block's values agree. Exits 1 when any value differs.

    python3 bench/bench.py                          # 1 000 000 deals, release build
    python3 bench/bench.py --deals 20000 --check    # values only (the CI test)

Needs Python's `duckdb` package (`pip install duckdb`).
"""

import argparse
import datetime as dt
import decimal
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ["forgotten", "manager_efficiency", "marketing", "sales_dynamics", "sales_plan", "clients"]
SQL = ROOT / "bench" / "sql"
TABLES = [
    "users", "departments", "pipelines", "stages", "sources", "companies", "contacts",
    "leads", "deals", "activities", "stage_history", "plans", "bonus_tiers",
    "onec_counterparties", "onec_sales",
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deals", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--from", dest="period_from", default="2026-10-01")
    p.add_argument("--to", dest="period_to", default="2026-10-31")
    p.add_argument("--as-of", dest="as_of", default=None, help="default: --to")
    p.add_argument("--work", type=Path, default=ROOT / "target" / "bench",
                   help="where the data set and the store are kept between runs")
    p.add_argument("--svodka", type=Path, default=None,
                   help="the binary (default: target/release/svodka, else target/bench-fast/svodka, "
                        "else target/debug/svodka)")
    p.add_argument("--reports", default=None, help="comma-separated (default: every report with SQL)")
    p.add_argument("--check", action="store_true", help="one run each, values only, no timings")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="DuckDB's threads")
    return p.parse_args()


def svodka_binary(given):
    if given:
        return given
    for profile in ("release", "bench-fast", "debug"):
        b = ROOT / "target" / profile / "svodka"
        if b.exists():
            return b
    sys.exit("no svodka binary: build with `cargo build --release` (or `--profile bench-fast`) "
             "or give --svodka")


# Starts a command and writes its peak RSS (KiB) and wall time (s) to the file named by
# the first argument.
# The harness runs commands through this small process rather than forking them itself:
# a child forked from the harness starts with the harness's own memory high-water mark
# (DuckDB's tables live in it), and Linux reports that mark as the child's peak RSS.
PEAK = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {seconds}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS in MiB of that process, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:
        proc = subprocess.Popen([sys.executable, "-c", PEAK, peak.name, *map(str, cmd)],
                                stdout=out, stderr=err, env=env)
        code = proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        kib, seconds = (peak.read() or "0 0").split()
    if code != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({code}):\n{stderr.decode(errors='replace')}")
    return float(seconds), int(kib) / 1024, stdout, stderr


def prepare(svodka, args):
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / f"demo-{args.deals}-{args.seed}"
    store = args.work / f"store-{args.deals}-{args.seed}"
    if not (data / "deals.csv").exists():
        print(f"generating {args.deals} deals into {data} …", file=sys.stderr)
        run_measured([svodka, "demo", "--out", data, "--deals", str(args.deals), "--seed", str(args.seed)])
    if not (store / "CURRENT").exists():
        print(f"importing into {store} …", file=sys.stderr)
        run_measured([svodka, "store", "import", "--data", data, "--store", store])
    snapshot = store / "snapshots" / (store / "CURRENT").read_text().strip()
    return store, snapshot


def month_shift(day, months):
    """The same day `months` earlier, clamped to the month's last day."""
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    first = dt.date(y, m + 1, 1)
    last = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return min(day.replace(year=first.year, month=first.month, day=1) + dt.timedelta(days=day.day - 1), last)


def previous_period(start, end, as_of):
    """the report definitions: a period of whole months moves back as many months, else as many days."""
    next_day = end + dt.timedelta(days=1)
    if start.day == 1 and next_day.day == 1:
        months = (next_day.year - start.year) * 12 + next_day.month - start.month
        prev_start = month_shift(start, months)
        prev_end = month_shift(next_day, months) - dt.timedelta(days=1)
        return prev_start, prev_end, min(month_shift(as_of, months), prev_end)
    days = (end - start).days + 1
    shift = dt.timedelta(days=days)
    return start - shift, end - shift, as_of - shift


def local_midnight_utc(day, tz):
    t = dt.datetime.combine(day, dt.time(0, 0), tzinfo=ZoneInfo(tz))
    return "TIMESTAMPTZ '" + t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00") + "'"


def for_period(text, previous):
    """`text` for the run's period, or for the previous one: its placeholders moved to the
    previous period's and `{p}`, which ends the names of what it makes, set to `_prev`."""
    if previous:
        for name in ("period_start", "period_end", "as_of_end", "as_of", "from_date", "to_date"):
            text = text.replace("{" + name + "}", "{prev_" + name + "}")
    return text.replace("{p}", "_prev" if previous else "")


def sql_blocks(report, params):
    """The setup statements and (block id, query) pairs of a report's SQL file.

    A file may start from shared facts, `-- uses: common.sql`, and from the same facts over
    the previous period, `-- uses: common.sql previous`. A section headed `-- setup (each
    period)` or `-- block: ID (each period)` is taken twice, for the run's period and for
    the previous one (see `for_period`); the second block is `ID.previous`, compared with
    the block's previous-period row."""
    text = (SQL / f"{report}.sql").read_text()
    for used, variant in reversed(re.findall(r"^-- uses: (\S+)(?: (previous))?\s*$", text, flags=re.M)):
        text = for_period((SQL / used).read_text(), bool(variant)) + "\n" + text
    parts = re.split(r"^-- (setup|block: ([\w.]+))( \(each period\))?\s*$", text, flags=re.M)
    sections = []
    # re.split yields: prefix, (marker, block id, each period, body)…
    for i in range(1, len(parts), 4):
        marker, block, each, body = parts[i:i + 4]
        periods = (False, True) if each else (False,)
        for previous in periods:
            name = block and (block + ".previous" if previous else block)
            sections.append((marker, name, for_period(body, previous)))
    setup, blocks = [], []
    for marker, block, body in sections:
        for k, v in params.items():
            body = body.replace("{" + k + "}", str(v))
        body = "\n".join(l for l in body.splitlines() if not l.lstrip().startswith("--"))
        statements = [s.strip() for s in body.split(";") if s.strip()]
        if marker == "setup":
            setup.extend(statements)
        else:
            assert len(statements) == 1, f"{report}: block {block} is not one query"
            blocks.append((block, statements[0]))
    return setup, blocks


def duckdb_run(snapshot, report, params, tz, threads):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute(f"SET TimeZone = '{tz}'")
    started = time.perf_counter()
    for t in TABLES:
        path = snapshot / f"{t}.parquet"
        if path.exists():
            con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{path}')")
    setup, blocks = sql_blocks(report, params)
    for s in setup:
        con.execute(s)
    out = {}
    for block, query in blocks:
        cur = con.execute(query)
        names = [d[0] for d in cur.description]
        out[block] = [dict(zip(names, row)) for row in cur.fetchall()]
    seconds = time.perf_counter() - started
    con.close()
    return seconds, out


def normal(value):
    """A value as both sides can be compared: numbers to 2 decimals, instants in UTC."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, decimal.Decimal)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", value):
        return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc).isoformat()
    return value


def same(a, b):
    """Equal, numbers within rounding to 2 decimals (Svodka rounds ratios in output only)."""
    if isinstance(a, float) and isinstance(b, float) and not isinstance(a, bool):
        return abs(a - b) <= 0.0051 + 1e-12 * abs(b)
    return a == b


def compare(report, svodka_json, duck):
    """Differences between Svodka's blocks and DuckDB's, as readable lines."""
    problems = []
    blocks = {b["id"]: b["rows"] for b in svodka_json["blocks"]}
    blocks.update({b["id"] + ".totals": [b["totals"]] for b in svodka_json["blocks"] if b.get("totals")})
    blocks.update({b["id"] + ".previous": [b["previous"]["row"]]
                   for b in svodka_json["blocks"] if b.get("previous")})
    for block, expected in duck.items():
        if block not in blocks:
            problems.append(f"{report}.{block}: Svodka has no such block")
            continue
        rows = blocks[block]
        if len(rows) != len(expected):
            problems.append(f"{report}.{block}: {len(rows)} rows, DuckDB {len(expected)}")
        for i, (got, want) in enumerate(zip(rows, expected)):
            for col, w in want.items():
                g = got.get(col, "<missing>")
                if not same(normal(g), normal(w)):
                    problems.append(f"{report}.{block} row {i + 1} `{col}`: Svodka {g!r}, DuckDB {w!r}")
            if len(problems) > 20:
                return problems
    return problems


def main():
    args = parse_args()
    svodka = svodka_binary(args.svodka)
    store, snapshot = prepare(svodka, args)
    dataset = (snapshot / "dataset.yaml").read_text() if (snapshot / "dataset.yaml").exists() else ""
    tz = re.search(r"^timezone:\s*(\S+)", dataset, re.M)
    tz = tz.group(1).strip("'\"") if tz else "Europe/Moscow"
    portal = re.search(r"^portal_url:\s*(\S+)", dataset, re.M)
    portal = portal.group(1).strip("'\"") if portal else ""
    day = dt.date.fromisoformat
    period_from, period_to = day(args.period_from), day(args.period_to)
    as_of = day(args.as_of) if args.as_of else period_to
    params = {
        "period_start": local_midnight_utc(period_from, tz),
        "period_end": local_midnight_utc(period_to + dt.timedelta(days=1), tz),
        "as_of_end": local_midnight_utc(as_of + dt.timedelta(days=1), tz),
        "as_of": as_of.isoformat(),
        "lead_days": 3,
        "deal_days": 14,
        "portal": portal,
        "from_date": f"DATE '{period_from}'",
        "to_date": f"DATE '{period_to}'",
    }
    # The previous period: as many months before for whole months, else as many days.
    prev_from, prev_to, prev_as_of = previous_period(period_from, period_to, as_of)
    params.update({
        "prev_period_start": local_midnight_utc(prev_from, tz),
        "prev_period_end": local_midnight_utc(prev_to + dt.timedelta(days=1), tz),
        "prev_as_of_end": local_midnight_utc(prev_as_of + dt.timedelta(days=1), tz),
        "prev_as_of": prev_as_of.isoformat(),
        "prev_from_date": f"DATE '{prev_from}'",
        "prev_to_date": f"DATE '{prev_to}'",
    })
    reports = args.reports.split(",") if args.reports else REPORTS
    runs = 1 if args.check else args.runs
    failed = False
    print(f"{args.deals} deals, {store}, period {period_from}…{period_to}, as of {as_of}, "
          f"{runs} run(s) each, {svodka}")
    print(f"{'report':<20} {'svodka s':>9} {'duckdb s':>9} {'ratio':>6} {'peak RSS MiB':>13}  values")
    for report in reports:
        svodka_times, duck_times, rss = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            cmd = [svodka, "run", report, "--data", store, "--from", args.period_from,
                   "--to", args.period_to, "--as-of", as_of.isoformat(), "--out", out]
            has_sql = (SQL / f"{report}.sql").exists()
            for _ in range(runs):
                seconds, peak, _, _ = run_measured(cmd)
                svodka_times.append(seconds)
                rss.append(peak)
                if has_sql:
                    seconds, duck = duckdb_run(snapshot, report, params, tz, args.threads)
                    duck_times.append(seconds)
            result = json.loads(out.read_text())
        s = statistics.median(svodka_times)
        if not has_sql:
            timing = f"{'':>9} {'':>9} {'':>6} {'':>13}" if args.check else \
                f"{s:>9.2f} {'—':>9} {'—':>6} {max(rss):>13.0f}"
            print(f"{report:<20} {timing}  ran; no DuckDB SQL to compare with yet")
            continue
        problems = compare(report, result, duck)
        failed |= bool(problems)
        d = statistics.median(duck_times)
        compared = sum(len(rows) for rows in duck.values())
        verdict = (f"equal ({compared} rows in {len(duck)} blocks)" if not problems
                   else f"{len(problems)} differences")
        if args.check:
            print(f"{report:<20} {'':>9} {'':>9} {'':>6} {'':>13}  {verdict}")
        else:
            print(f"{report:<20} {s:>9.2f} {d:>9.2f} {s / d:>6.2f} {max(rss):>13.0f}  {verdict}")
        for p in problems:
            print("    " + p)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
