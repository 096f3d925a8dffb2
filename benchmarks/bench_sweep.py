"""Benchmark: a lose-each-haven sweep — serial vs 2 local Dask workers, against one independent run per variation.

On the real Aguascalientes drive network (``../shared/data``, or ``--network``) or a synthetic
street grid (``--grid 100000``, ``benchmarks/_synthetic.py``), with ``--havens`` havens and
``--defenders`` defenders at random road positions, the sweep ``lose_haven = "each"`` runs

* as the baseline a sweep replaces: per variation, :func:`havenmap.coverage.coverage` and
  :func:`havenmap.coverage.n_minus_1` with that haven removed (network already loaded: the
  per-variation network load of separate ``havenmap coverage`` runs is printed apart);
* :func:`havenmap.sweep.run_sweep` serially (``workers=0``);
* :func:`havenmap.sweep.run_sweep` on 2 local worker processes (cluster start printed apart).

Printed: seconds and the ratio to the baseline, and whether every row equals the serial one.

Run: ``python benchmarks/bench_sweep.py [--network FILE | --grid NODES] [--havens 40] [--defenders 2000]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from havenmap import coverage, load_network  # noqa: E402
from havenmap.scenario import load_scenario  # noqa: E402
from havenmap.sweep import load_sweep, run_sweep  # noqa: E402
from havenmap.synthetic import synthetic_defenders  # noqa: E402

DEFAULT_NETWORK = HERE.parent.parent / "shared" / "data" / "aguascalientes.osm.bz2"


def write_points(frame, path: Path) -> Path:
    ll = frame.to_crs("EPSG:4326")
    pd.DataFrame({"id": frame["id"], "latitude": ll.geometry.y, "longitude": ll.geometry.x}).to_csv(path, index=False)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--network", type=Path, default=DEFAULT_NETWORK)
    ap.add_argument("--grid", type=int, default=0, help="a synthetic street grid of this many nodes instead")
    ap.add_argument("--havens", type=int, default=40)
    ap.add_argument("--defenders", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.grid:
        from _synthetic import street_grid

        net = street_grid(args.grid, seed=1)
        network_file = None
    else:
        net = load_network(args.network, "drive")
        network_file = args.network
    load_s = time.perf_counter() - t0
    h = synthetic_defenders(net, args.havens, seed=1).assign(id=[f"H{i:03d}" for i in range(args.havens)])
    d = synthetic_defenders(net, args.defenders, seed=2)  # points near the roads, uniformly per km
    print(f"{net.n_nodes:,} nodes, {net.n_edges:,} edges; {args.havens} havens, {args.defenders:,} defenders")
    print(f"network load: {load_s:.2f} s (paid once per variation by separate `havenmap coverage` runs)")

    minutes = (5.0, 10.0, 15.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ids = h["id"].to_numpy()
        baseline_rows = []
        for hid in ids:
            cov = coverage.coverage(net, d, h.loc[ids != hid], minutes)
            n1 = coverage.n_minus_1(cov)
            baseline_rows.append((int(cov.covered(10.0).sum()), int(n1["lose_all_cover"].max())))
        baseline_s = time.perf_counter() - t0

        with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
            folder = Path(tmp)
            write_points(h, folder / "havens.csv")
            write_points(d, folder / "defenders.csv")
            src = network_file if network_file is not None else folder / "none.osm"
            (folder / "scenario.toml").write_text(
                f'network = "{Path(src).as_posix()}"\nhavens = "havens.csv"\ndefenders = "defenders.csv"\n'
                f"minutes = {list(minutes)}\n"
            )
            if network_file is None:
                (folder / "none.osm").write_text("")
            (folder / "sweep.toml").write_text('base = false\nlose_haven = "each"\n')
            plan = load_sweep(folder / "sweep.toml", load_scenario(folder / "scenario.toml"))
            runs = {}
            for workers in (0, args.workers):
                t0 = time.perf_counter()
                res = run_sweep(plan, net=net, workers=workers)
                runs[workers] = (time.perf_counter() - t0, res)
    serial_rows = runs[0][1].rows
    same = all(r.rows.equals(serial_rows) for _, r in runs.values())
    check = list(zip(serial_rows["covered_10"], serial_rows["worst_lose_all_cover"], strict=True))
    print(f"\n{'run':>28} {'seconds':>8} {'tasks s':>8} {'task CPU s':>11} {'shared MB':>10} {'x baseline':>11}")
    print(f"{'baseline (coverage per haven)':>28} {baseline_s:8.2f} {'':>8} {'':>11} {'':>10} {1.0:11.2f}")
    for workers, (total, res) in runs.items():
        ex = res.execution
        name = "sweep serial" if workers == 0 else f"sweep {ex['workers']} workers"
        print(
            f"{name:>28} {total:8.2f} {ex['seconds']:8.2f} {ex['task_cpu_seconds']:11.2f} "
            f"{ex['shared_bytes'] / 1e6:10.1f} {baseline_s / total:11.2f}"
        )
    print(
        f"\nrows identical serial vs workers: {same}; rows equal the baseline's figures: {check == baseline_rows}. "
        f"total = the run_sweep call (snapping, cluster start, tasks); tasks = the variation tasks incl. "
        f"scattering the network (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)."
    )
    if not same or check != baseline_rows:
        sys.exit(1)


if __name__ == "__main__":
    main()
