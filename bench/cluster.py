#!/usr/bin/env python3
"""Svodka on its local engine against the same binary's Ballista cluster on loopback.

Uses the data set and store of `bench.py` (generated on first use), starts one
`svodka cluster scheduler` and `--executors` `svodka cluster executor` processes, then
runs each report `--runs` times locally and through the cluster (JSON out) and prints
the medians, their ratio, the run process's peak RSS in both modes, each executor's peak
RSS, and whether the two results are byte-identical. Exits 1 when any result differs.

    python3 bench/cluster.py                         # 1 000 000 deals, 2 executors
    python3 bench/cluster.py --deals 20000 --runs 1
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the data set, the store and the measured run are bench.py's)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deals", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--executors", type=int, default=2)
    p.add_argument("--slots", type=int, default=os.cpu_count() or 2, help="task slots per executor")
    p.add_argument("--from", dest="period_from", default="2026-10-01")
    p.add_argument("--to", dest="period_to", default="2026-10-31")
    p.add_argument("--work", type=Path, default=bench.ROOT / "target" / "bench")
    p.add_argument("--svodka", type=Path, default=None)
    p.add_argument("--reports", default=None, help="comma-separated (default: all six)")
    return p.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid):
    """A live process's peak resident memory (VmHWM), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_for(ready, what, seconds=60):
    deadline = time.time() + seconds
    while not ready():
        if time.time() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


def start_cluster(svodka, executors, slots, work):
    scheduler = f"127.0.0.1:{free_port()}"
    procs = [subprocess.Popen([svodka, "cluster", "scheduler", "--bind", scheduler],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]

    host, port = scheduler.split(":")

    def up():
        with socket.socket() as s:
            return s.connect_ex((host, int(port))) == 0
    wait_for(up, "the scheduler")
    for i in range(executors):
        procs.append(subprocess.Popen(
            [svodka, "cluster", "executor", "--scheduler", scheduler, "--port", str(free_port()),
             "--grpc-port", str(free_port()), "--work-dir", str(work / f"executor-{i}"),
             "--concurrent-tasks", str(slots)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def registered():
        out = subprocess.run([svodka, "cluster", "status", "--scheduler", scheduler],
                             capture_output=True, text=True)
        return out.returncode == 0 and len(out.stdout.strip().splitlines()) - 1 == executors
    wait_for(registered, "the executors to register")
    return scheduler, procs


def main():
    args = parse_args()
    svodka = bench.svodka_binary(args.svodka)
    store, _ = bench.prepare(svodka, args)
    reports = args.reports.split(",") if args.reports else bench.REPORTS
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scheduler, procs = start_cluster(svodka, args.executors, args.slots, tmp)
        try:
            print(f"{args.deals} deals, {store}, period {args.period_from}…{args.period_to}, "
                  f"{args.executors} executors × {args.slots} slots, {args.runs} run(s) each, {svodka}")
            print(f"{'report':<20} {'local s':>8} {'cluster s':>9} {'ratio':>6} "
                  f"{'local RSS':>10} {'run RSS':>8}  result")
            for report in reports:
                local_t, cluster_t, local_rss, run_rss = [], [], [], []
                outs = {}
                for mode in ("local", "cluster"):
                    out = tmp / f"{report}-{mode}.json"
                    cmd = [svodka, "run", report, "--data", store, "--from", args.period_from,
                           "--to", args.period_to, "--out", out]
                    if mode == "cluster":
                        cmd += ["--cluster", scheduler]
                    for _ in range(args.runs):
                        seconds, peak, _, _ = bench.run_measured(cmd)
                        (local_t if mode == "local" else cluster_t).append(seconds)
                        (local_rss if mode == "local" else run_rss).append(peak)
                    outs[mode] = out.read_bytes()
                same = outs["local"] == outs["cluster"]
                failed |= not same
                lo, cl = statistics.median(local_t), statistics.median(cluster_t)
                print(f"{report:<20} {lo:>8.2f} {cl:>9.2f} {cl / lo:>6.2f} "
                      f"{max(local_rss):>10.0f} {max(run_rss):>8.0f}  "
                      f"{'byte-identical' if same else 'DIFFERENT'}")
            print("peak RSS MiB: scheduler {:.0f}, executors {}".format(
                peak_rss_mib(procs[0].pid),
                ", ".join(f"{peak_rss_mib(p.pid):.0f}" for p in procs[1:])))
        finally:
            for p in procs:
                p.kill()
                p.wait()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
