"""Benchmark: a backtest of 100 weekly as-of dates, 100,000 incidents, a 100k-node street grid — serial vs Dask.

The street grid is ``benchmarks/_synthetic.py``'s :func:`street_grid` (jittered, one-way streets,
road hierarchy); the incidents a :func:`havenmap.synthetic.synthetic_history` on it (persistent,
emerging and fading hotspots with repeat sites, plus background: about 1,000 a week over 110
weeks), with 1,000 defenders. The same backtest runs

* serially in one process (``workers=0``), and
* on a :class:`distributed.LocalCluster` of 1 and 2 single-threaded worker processes,

each in a fresh Python process so that peak memory is that run's own. Printed per run: wall
time, speed-up over serial, peak resident memory of each worker (or of the serial process),
bytes of shared inputs (network, incidents, defenders: sent once per worker) and bytes sent
to workers in all, against what sending the shared inputs with every task would cost. The
scores of every run are compared with the serial one (they must be identical).

Run: ``python benchmarks/bench_backtest.py [--nodes 100000] [--dates 100] [--incidents 100000]
[--defenders 1000] [--workers 1,2]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _synthetic import street_grid  # noqa: E402

from havenmap.synthetic import synthetic_defenders, synthetic_history  # noqa: E402


def make_inputs(folder: Path, nodes: int, dates: int, incidents: int, defenders: int) -> dict:
    """Write the history and defenders as GeoParquet; return the backtest's dates."""
    net = street_grid(nodes, seed=1)
    warm_up = 10
    weeks = dates + warm_up + 1
    per_week = incidents / weeks
    hotspots = max(int(net.n_nodes / 1000), 3)  # about one per 1,000 nodes
    rate = 6.0
    background = max(per_week - hotspots * rate * 0.75, per_week * 0.3)
    t0 = time.perf_counter()
    hist = synthetic_history(
        net,
        weeks=weeks,
        seed=7,
        persistent=hotspots * 4 // 10,
        emerging=hotspots * 3 // 10,
        fading=hotspots * 3 // 10,
        rate_per_week=rate,
        background_per_week=background,
    )
    d = synthetic_defenders(net, defenders, seed=7, near=hist.hotspots["node"].to_numpy())
    hist.incidents.to_parquet(folder / "incidents.parquet")
    d.to_parquet(folder / "defenders.parquet")
    start = hist.start + pd.Timedelta(days=7 * warm_up - 1)
    end = start + pd.Timedelta(days=7 * (dates - 1))
    return {
        "start": start.date().isoformat(),
        "end": end.date().isoformat(),
        "incidents": len(hist.incidents),
        "defenders": len(d),
        "nodes": net.n_nodes,
        "edges": net.n_edges,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def one_run(folder: Path, nodes: int, start: str, end: str, workers: int) -> None:
    """Run one backtest in this (fresh) process and print its record as JSON."""
    import geopandas as gpd

    from havenmap.backtest import backtest

    net = street_grid(nodes, seed=1)
    inc = gpd.read_parquet(folder / "incidents.parquet")
    d = gpd.read_parquet(folder / "defenders.parquet")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = backtest(net, inc, d, start, end, "7d", "7d", workers=workers, bootstrap=1000, distance_m=1000.0)
    total = time.perf_counter() - t0
    res.scores.to_csv(folder / f"scores-{workers}.csv", index=False)
    ex = res.manifest["execution"]
    print(json.dumps({"workers": workers, "total_s": total, **ex, "pai_5": res.summary["havenmap"]["pai_5"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--dates", type=int, default=100)
    ap.add_argument("--incidents", type=int, default=100_000)
    ap.add_argument("--defenders", type=int, default=1000)
    ap.add_argument("--workers", default="1,2", help="comma-separated local worker counts to compare with serial")
    ap.add_argument("--one", nargs=4, metavar=("FOLDER", "START", "END", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        folder, start, end, workers = args.one
        one_run(Path(folder), args.nodes, start, end, int(workers))
        return
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        folder = Path(tmp)
        info = make_inputs(folder, args.nodes, args.dates, args.incidents, args.defenders)
        print(
            f"{info['nodes']:,} nodes, {info['edges']:,} edges; {info['incidents']:,} incidents, "
            f"{info['defenders']:,} defenders; {args.dates} weekly as-of dates {info['start']} .. {info['end']} "
            f"(inputs made in {info['seconds']} s)",
            flush=True,
        )
        runs = []
        for workers in [0, *(int(w) for w in args.workers.split(","))]:
            cmd = [
                sys.executable,
                __file__,
                "--nodes",
                str(args.nodes),
                "--one",
                tmp,
                info["start"],
                info["end"],
                str(workers),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(proc.stderr)
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            r = runs[-1]
            print(f"  {'serial' if workers == 0 else f'{workers} worker(s)'}: {r['seconds']:.1f} s", flush=True)
        serial = runs[0]
        reference = (folder / "scores-0.csv").read_bytes()
        print(
            f"\n{'run':>10} {'total s':>8} {'tasks s':>8} {'speed-up':>9} {'task CPU s':>11} {'CPU / serial':>13} "
            f"{'peak MB per worker':>19} {'shared MB':>10} {'sent MB':>8} {'if sent per task MB':>20} {'identical':>10}"
        )
        for r in runs:
            serial_run = r["mode"] == "serial"
            peaks = ", ".join(f"{p / 1e6:.0f}" for p in r["peak_rss_bytes"].values())
            per_task = 0 if serial_run else r["shared_bytes"] * args.dates / 1e6
            same = (folder / f"scores-{0 if serial_run else r['workers']}.csv").read_bytes() == reference
            print(
                f"{'serial' if serial_run else str(r['workers']) + ' workers':>10} {r['total_s']:8.1f} "
                f"{r['seconds']:8.1f} {serial['seconds'] / r['seconds']:9.2f} {r['task_cpu_seconds']:11.1f} "
                f"{r['task_cpu_seconds'] / serial['task_cpu_seconds']:13.2f} {peaks:>19} "
                f"{r['shared_bytes'] / 1e6:10.1f} {r['sent_bytes'] / 1e6:8.1f} {per_task:20.0f} {same!s:>10}"
            )
        import os

        print(
            f"\nhavenmap PAI at 5 %: {serial['pai_5']}. total = the backtest call (preparation, tasks, summary); "
            "tasks = the date tasks incl. scattering (cluster start excluded); task CPU = the tasks' own thread time, "
            f"which other load on the machine does not inflate (load average now {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs)."
        )
        if not all(np.isfinite([r["seconds"] for r in runs])):
            sys.exit(1)


if __name__ == "__main__":
    main()
