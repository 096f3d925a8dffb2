"""Patrol planning benchmark: PyVRP vs a greedy baseline vs OR-Tools routing, same instances and time limit.

Instances: 3-10 units, 100-1,000 targets placed at random on the real test networks
(downtown Aguascalientes, drive, from ../shared/data; the demo's central Helsinki, walk),
seeded priorities 1-10, service 1-8 minutes, a fifth of the targets with a time window.
All three solvers get the same integer instance (0.1 s grid, the same lexicographic
prizes: priority first, travel time second); every solution is re-checked for feasibility
in exact times before its prize counts.

Run:  python benchmarks/bench_patrol.py [--time-limit 10] [--quick]
Needs OR-Tools (benchmark-only: ``pip install -e .[bench]``); without it the OR-Tools
column is skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from havenmap import _vrp, patrol
from havenmap.network import load_network
from havenmap.scenario import demo_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def random_targets(net, n: int, seed: int, service_range: tuple[float, float], shift_min: float):
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, net.n_edges, n)
    frac = rng.uniform(0.05, 0.95, n)
    pts = [
        shapely.LineString(net.edge_coords(e)).interpolate(f, normalized=True) for e, f in zip(edges, frac, strict=True)
    ]
    windowed = rng.random(n) < 0.2
    start = np.where(windowed, rng.uniform(0, 0.6 * shift_min, n).round(1), np.nan)
    return gpd.GeoDataFrame(
        {
            "id": [f"T{i:04d}" for i in range(n)],
            "priority": rng.integers(1, 11, n).astype(float),
            "service_minutes": rng.uniform(*service_range, n).round(2),
            "window_start_min": start,
            "window_end_min": start + 0.3 * shift_min,
        },
        geometry=pts,
        crs=net.crs,
    ).to_crs(4326)


def random_bases(net, k: int, seed: int):
    rng = np.random.default_rng(seed + 999)
    nodes = rng.choice(net.n_nodes, k, replace=False)
    return gpd.GeoDataFrame(
        {"id": [f"B{i}" for i in range(k)]}, geometry=shapely.points(net.node_xy[nodes]), crs=net.crs
    ).to_crs(4326)


def solve_ortools(inst: _vrp.Instance, time_limit_s: float) -> _vrp.SolveResult:
    """OR-Tools routing: disjunction per target (penalty = prize), a time dimension with windows and shifts."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    start_clock = time.perf_counter()
    n_loc = inst.n_bases + inst.n_targets
    starts = [int(b) for b in inst.vehicle_base]
    manager = pywrapcp.RoutingIndexManager(n_loc, inst.n_vehicles, starts, starts)
    routing = pywrapcp.RoutingModel(manager)
    service = np.concatenate([np.zeros(inst.n_bases, dtype=np.int64), inst.service])
    transit = np.minimum(inst.duration + service[:, None], _vrp.UNREACHABLE)
    cost_cb = routing.RegisterTransitMatrix(inst.cost.tolist())
    time_cb = routing.RegisterTransitMatrix(transit.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(cost_cb)
    horizon = int(inst.vehicle_shift.max())
    routing.AddDimension(time_cb, horizon, horizon, True, "Time")
    dim = routing.GetDimensionOrDie("Time")
    for i in range(inst.n_targets):
        index = manager.NodeToIndex(inst.loc(i))
        late = int(min(inst.tw_late[i], horizon))
        if inst.tw_early[i] > late:
            routing.AddDisjunction([index], int(inst.prize[i]))
            dim.CumulVar(index).SetRange(0, horizon)
            routing.solver().Add(routing.ActiveVar(index) == 0)
            continue
        dim.CumulVar(index).SetRange(int(inst.tw_early[i]), late)
        routing.AddDisjunction([index], int(inst.prize[i]))
    for v in range(inst.n_vehicles):
        dim.CumulVar(routing.End(v)).SetMax(int(inst.vehicle_shift[v]))
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(int(time_limit_s * 1000))
    solution = routing.SolveWithParameters(params)
    routes: list[list[int]] = [[] for _ in range(inst.n_vehicles)]
    if solution is not None:
        for v in range(inst.n_vehicles):
            index = routing.Start(v)
            while not routing.IsEnd(index):
                node = manager.IndexToNode(index)
                if node >= inst.n_bases:
                    routes[v].append(node - inst.n_bases)
                index = solution.Value(routing.NextVar(index))
    return _vrp.SolveResult(routes, time.perf_counter() - start_clock, solver="ortools")


def evaluate(prep, result: _vrp.SolveResult, priority: np.ndarray) -> tuple[float, int, bool]:
    ok = all(_vrp.route_feasible(prep.exact_inst, v, r) for v, r in enumerate(result.routes))
    seen = sorted({t for r in result.routes for t in r})
    return float(priority[seen].sum()), len(seen), ok


def run_case(name, net, n_targets, n_units, n_bases, shift_min, service_range, time_limit, seed, has_ortools):
    targets = random_targets(net, n_targets, seed, service_range, shift_min)
    bases = random_bases(net, n_bases, seed)
    units = patrol._units_table(n_units, bases["id"].tolist(), shift_min, net.network_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        prep = patrol._prepare(net, patrol.as_targets(targets), bases, units, None, None, 1.0, 250.0)
        matrix_s = time.perf_counter() - t0
    priority = prep.targets["priority"].to_numpy(dtype=float)
    prize = _vrp.lexicographic_prizes(priority, prep.bound, resolution=patrol._PRIZE_STEPS)
    inst = patrol._with(prep.inst, prize=prize)
    rows = []
    solvers = [
        ("greedy", lambda: _vrp.greedy(inst)),
        ("pyvrp", lambda: _vrp.solve_pyvrp(inst, time_limit_s=time_limit, seed=seed, max_iterations=None)),
    ]
    if has_ortools:
        solvers.append(("ortools", lambda: solve_ortools(inst, time_limit)))
    for solver, fn in solvers:
        res = fn()
        prize, visited, ok = evaluate(prep, res, priority)
        rows.append((solver, prize, visited, res.runtime_s, ok))
    return {
        "name": name,
        "targets": len(prep.targets),
        "units": n_units,
        "shift": shift_min,
        "matrix_s": matrix_s,
        "rows": rows,
        "possible": float(priority.sum()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per solver and instance")
    parser.add_argument("--quick", action="store_true", help="only the two smallest instances")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    try:
        import ortools  # noqa: F401

        has_ortools = True
    except ImportError:
        has_ortools = False
        print("OR-Tools not installed (pip install -e .[bench]): skipping that column", file=sys.stderr)

    cases = []
    agu = SHARED / "aguascalientes.osm.bz2"
    if agu.exists():
        drive = load_network(agu, "drive")
        cases += [
            ("aguascalientes drive", drive, 100, 3, 2, 20.0, (1.0, 3.0)),
            ("aguascalientes drive", drive, 300, 5, 3, 30.0, (1.0, 3.0)),
            ("aguascalientes drive", drive, 1000, 10, 4, 30.0, (1.0, 3.0)),
        ]
    else:
        print(f"{agu} not found: skipping the drive network", file=sys.stderr)
    walk = load_network(demo_dir() / "helsinki.osm.pbf", "walk")
    cases += [
        ("helsinki walk", walk, 100, 3, 2, 90.0, (2.0, 8.0)),
        ("helsinki walk", walk, 300, 5, 3, 120.0, (2.0, 8.0)),
        ("helsinki walk", walk, 1000, 10, 4, 180.0, (2.0, 8.0)),
    ]
    if args.quick:
        cases = sorted(cases, key=lambda c: c[2])[:2]

    print(
        f"time limit {args.time_limit:g} s per solver and instance; prize = sum of priorities visited "
        "(feasibility re-checked in exact times)\n"
    )
    header = (
        "| network | targets | units | shift min | matrix s | greedy prize (n) | PyVRP prize (n) | "
        "OR-Tools prize (n) | PyVRP / greedy | PyVRP / OR-Tools | time s greedy / PyVRP / OR-Tools |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, net, n, units, bases, shift, service in cases:
        out = run_case(name, net, n, units, bases, shift, service, args.time_limit, args.seed, has_ortools)
        by = {r[0]: r for r in out["rows"]}
        assert all(r[4] for r in out["rows"]), f"infeasible solution in {name} {n}: {out['rows']}"
        g, p = by["greedy"], by["pyvrp"]
        o = by.get("ortools")
        cell = lambda r: f"{r[1]:.0f} ({r[2]})" if r else "n/a"  # noqa: E731
        ratio = lambda a, b: f"{a[1] / b[1]:.3f}" if a and b and b[1] > 0 else "n/a"  # noqa: E731
        times = f"{g[3]:.2f} / {p[3]:.1f} / {o[3]:.1f}" if o else f"{g[3]:.2f} / {p[3]:.1f} / n/a"
        print(
            f"| {name} | {out['targets']} | {units} | {shift:g} | {out['matrix_s']:.2f} | {cell(g)} | {cell(p)} | "
            f"{cell(o)} | {ratio(p, g)} | {ratio(p, o)} | {times} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
