"""Benchmark: reach at scale — nearest haven of every node, service areas, N-1 — vs networkx and raw scipy.

For each network size (synthetic street grids from ``_synthetic.py``: jittered nodes, varied
edge lengths, missing links, ~10 % one-ways, arterial speeds; built directly as arrays) it
times, in one run:

* **nearest haven of every node** (50 havens): ``havenmap.coverage.node_reach`` vs networkx
  ``multi_source_dijkstra_path_length`` vs raw ``scipy.sparse.csgraph.dijkstra(min_only=True)``
  on a prebuilt CSR (the floor: no snapping, no labels), and the same scipy call asked which
  haven is nearest (``return_predecessors=True``, the only way scipy reports it); the runs
  alternate so that background load falls on all of them alike;
* **service areas** (50 havens, 5/10/15 min): the exact reached road pieces of every haven
  (havenmap's bounded Dijkstra per haven + piece extraction) vs networkx
  ``single_source_dijkstra_path_length(cutoff=)`` per haven vs raw bounded ``csgraph.dijkstra``;
  and, separately, havenmap's polygons (``service_areas``, end to end);
* **N-1 over 50 havens** (10,000 defenders): havenmap's coverage + ``n_minus_1`` vs one
  coverage run, vs recomputing coverage 50 times (brute force), vs networkx (50 multi-source runs);
* **nearest havens with routes** for 100,000 defenders (``nearest_havens``, k = 1, route
  geometry, and the GeoJSON written) against ``coverage`` of the same defenders, peak memory;
* **peak memory** of the havenmap process for that size (``ru_maxrss``; each size and each
  library runs in its own subprocess, so the numbers do not mix);

and a **scale run**: 100 havens + 10,000 defenders, coverage + N-1 + service areas + writing
the CLI's output files, at the largest size, end to end in a fresh process (network built
from arrays first: OSM loading is benchmarked elsewhere).

networkx is skipped where it would take more than ``--nx-budget`` seconds and reported as
"skipped (est. X s)", extrapolated from the previous size: n log n for whole-graph searches,
the number of reached road pieces for the bounded (service-area) ones.

Times are CPU seconds of the benchmark process (the searches are single-threaded; on a shared
machine CPU time is not inflated by other processes), except the polygons, which are traced on
every core and timed on the wall clock (CPU time printed beside); the scale run also prints
wall time.

Run (about 6 minutes on 2 cores)::

    python benchmarks/bench_reach.py                    # 10k, 100k, 1M nodes
    python benchmarks/bench_reach.py --sizes 10000,100000 --scale 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

N_HAVENS = 50
N_DEFENDERS = 10_000
MINUTES = (5.0, 10.0, 15.0)


def _timed(fn, repeat: int):
    """(best CPU seconds of this process, last result) over ``repeat`` runs.

    CPU time, not wall time: the searches timed here are single-threaded, so on an idle machine
    the two agree, and on a shared one CPU time is not inflated by other processes. The best
    of the runs, not the median: what other processes add (cache and memory-bandwidth
    contention) only ever slows a run down, for havenmap and the baselines alike.
    """
    times, out = [], None
    for _ in range(repeat):
        start = time.process_time()
        out = fn()
        times.append(time.process_time() - start)
    return float(np.min(times)), out


def _timed_alternating(fns: dict, repeat: int) -> dict[str, tuple[float, object]]:
    """:func:`_timed` of several functions, their runs alternating: name -> (best CPU s, last result).

    On a shared machine the background load drifts; alternating puts havenmap and its floors
    under the same drift, so a ratio is not decided by which one ran in a quiet moment.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, object] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.process_time()
            results[name] = fn()
            times[name].append(time.process_time() - start)
    return {name: (float(np.min(times[name])), results[name]) for name in fns}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(n: int, n_havens: int, n_defenders: int):
    from _synthetic import random_points, street_grid

    start = time.perf_counter()
    net = street_grid(n, seed=1)
    build = time.perf_counter() - start
    havens = random_points(net, n_havens, "h", seed=2)
    defenders = random_points(net, n_defenders, "d", seed=3)
    return net, havens, defenders, build


def _haven_nodes(net, havens) -> np.ndarray:
    """Each haven's nearest-road end node (for the node-based baselines)."""
    from havenmap.snap import snap_points

    snapped = snap_points(net, havens)
    return np.unique(net.edge_v[snapped["edge"].to_numpy()])


def worker_havenmap(n: int, repeat: int) -> dict:
    """Timings of havenmap and of the raw scipy floor on one size."""
    from scipy.sparse import csgraph

    from havenmap import _graph
    from havenmap import coverage as hc
    from havenmap.snap import snap_points

    net, havens, defenders, build = _setup(n, N_HAVENS, N_DEFENDERS)
    out = {"n": net.n_nodes, "edges": net.n_edges, "build_s": build}
    # one-time per network: the snapping index and the cost graph's cached CSR
    start = time.perf_counter()
    snap_points(net, havens)
    graph = _graph.cost_graph(net)
    graph.csr(reverse=True)
    graph.in_open()
    out["setup_s"] = time.perf_counter() - start
    nodes = _haven_nodes(net, havens)
    rev = net.csr().T.tocsr()

    timed = _timed_alternating(
        {
            "hm": lambda: hc.node_reach(net, havens),
            "floor": lambda: csgraph.dijkstra(rev, indices=nodes, min_only=True),
            # the same call asked which haven is nearest (scipy returns it only with the predecessors)
            "floor_which": lambda: csgraph.dijkstra(rev, indices=nodes, min_only=True, return_predecessors=True),
        },
        2 * repeat,
    )
    (out["nearest_hm"], reach), (out["nearest_floor"], _) = timed["hm"], timed["floor"]
    out["nearest_floor_which"] = timed["floor_which"][0]
    out["nearest_reached"] = int(np.isfinite(reach.time_s[:, 0]).sum())

    limit = 60.0 * max(MINUTES)

    def hm_reach():
        places = _graph.Places.from_snapped(net, snap_points(net, havens))
        return sum(len(r.edge) for r in _graph.bounded_reach(_graph.cost_graph(net), places, limit))

    def floor_reach():
        total = 0
        for i in range(0, len(nodes), 8):
            dist = csgraph.dijkstra(rev, indices=nodes[i : i + 8], limit=limit)
            total += int(np.isfinite(dist).sum())
        return total

    timed = _timed_alternating({"hm": hm_reach, "floor": floor_reach}, repeat)
    (out["areas_hm"], out["pieces"]), (out["areas_floor"], out["area_nodes"]) = timed["hm"], timed["floor"]
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    areas = hc.service_areas(net, havens, MINUTES)  # traced on every core: wall time, CPU time alongside
    out["polygons_hm"], out["polygons_cpu"] = time.perf_counter() - start_wall, time.process_time() - start_cpu
    out["polygon_vertices"] = int(
        sum(
            len(g.exterior.coords) if g.geom_type == "Polygon" else sum(len(p.exterior.coords) for p in g.geoms)
            for g in areas.geometry
        )
    )

    out["coverage_hm"], cov = _timed(lambda: hc.coverage(net, defenders, havens, MINUTES), repeat)
    out["n1_hm"], _ = _timed(lambda: hc.n_minus_1(hc.coverage(net, defenders, havens, MINUTES)), repeat)
    # brute force: coverage recomputed without each haven (measured on a few, scaled to all)
    ids = havens["id"].to_numpy()
    probe = 3
    start = time.perf_counter()
    for h in ids[:probe]:
        hc.coverage(net, defenders, havens.loc[havens["id"] != h], MINUTES)
    out["n1_brute_est"] = (time.perf_counter() - start) / probe * len(ids)
    out["covered_15"] = int(cov.covered(15).sum())
    out["peak_mb"] = _peak_mb()
    return out


def worker_networkx(n: int, repeat: int) -> dict:
    """networkx timings on one size: the osmnx-style route (graph built from the same arrays, not timed).

    The graph is a reversed ``MultiDiGraph`` with a ``travel_time`` attribute per edge (what
    an osmnx user routes on; reversed so that distances run *to* the havens).
    """
    import networkx as nx
    import shapely

    net, havens, _, _ = _setup(n, N_HAVENS, 10)
    nodes = _haven_nodes(net, havens).tolist()
    start = time.process_time()
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(range(net.n_nodes))
    graph.add_edges_from(
        (int(v), int(u), {"travel_time": float(t)})
        for u, v, t in zip(net.edge_u, net.edge_v, net.edge_time, strict=True)
    )
    out = {"graph_s": time.process_time() - start}
    out["nearest_nx"], _ = _timed(
        lambda: nx.multi_source_dijkstra_path_length(graph, nodes, weight="travel_time"), repeat
    )
    limit = 60.0 * max(MINUTES)
    out["areas_nx"], reached = _timed(
        lambda: [nx.single_source_dijkstra_path_length(graph, h, cutoff=limit, weight="travel_time") for h in nodes], 1
    )
    # the osmnx isochrone recipe for polygons: buffer the reached edges and union them (one haven, widest band)
    dist = reached[0]
    inside = np.zeros(net.n_nodes, dtype=bool)
    inside[list(dist)] = True
    edges = np.flatnonzero(inside[net.edge_u] & inside[net.edge_v])
    start = time.process_time()
    shapely.union_all(
        shapely.buffer(net.edge_geometries(net.undirected_edges[np.isin(net.undirected_edges, edges)]), 50.0)
    )
    out["poly_nx_one"] = time.process_time() - start
    out["poly_nx_est"] = out["poly_nx_one"] * len(nodes) * len(MINUTES)
    out["peak_mb"] = _peak_mb()
    return out


def worker_nearest(n: int, n_havens: int, n_defenders: int) -> dict:
    """``nearest_havens`` with routes for many defenders vs ``coverage`` for the same ones, fresh process."""
    from havenmap import _io
    from havenmap import coverage as hc
    from havenmap.havens import nearest_havens

    net, havens, defenders, _ = _setup(n, n_havens, n_defenders)
    hc.coverage(net, defenders.iloc[:10], havens, MINUTES)  # build the snapping index and the CSR once
    before = _peak_mb()
    cpu0 = time.process_time()
    cov = hc.coverage(net, defenders, havens, MINUTES)
    t_cov = time.process_time() - cpu0
    cpu0 = time.process_time()
    routes = nearest_havens(net, defenders, havens, k=1)
    t_near = time.process_time() - cpu0
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        _io.write_geojson(Path(tmp) / "routes.geojson", routes, private=True)
        size = (Path(tmp) / "routes.geojson").stat().st_size
    t_write = time.process_time() - cpu0
    same = np.allclose(routes["travel_time_s"].to_numpy(), cov.defenders["travel_time_s"].to_numpy(), equal_nan=True)
    return {
        "n": net.n_nodes,
        "defenders": n_defenders,
        "coverage_s": t_cov,
        "nearest_s": t_near,
        "write_s": t_write,
        "output_mb": size / 1e6,
        "peak_before_mb": before,
        "peak_mb": _peak_mb(),
        "same_times": bool(same),
        "mean_route_m": float(np.nanmean(routes["distance_m"])),
    }


def worker_scale(n: int, n_havens: int, n_defenders: int) -> dict:
    """End to end: coverage + N-1 + service areas + the CLI's output files, fresh process."""
    from havenmap import _io
    from havenmap import coverage as hc

    net, havens, defenders, build = _setup(n, n_havens, n_defenders)
    after_build = _peak_mb()
    start, cpu0 = time.perf_counter(), time.process_time()
    cov = hc.coverage(net, defenders, havens, MINUTES)
    t_cov = time.process_time() - cpu0
    n1 = hc.n_minus_1(cov)
    t_n1 = time.process_time() - cpu0 - t_cov
    areas = hc.service_areas(net, havens, MINUTES)
    t_areas = time.process_time() - cpu0 - t_cov - t_n1
    with tempfile.TemporaryDirectory() as tmp:
        _io.write_geojson(Path(tmp) / "service_areas.geojson", areas, private=True)
        _io.write_csv(Path(tmp) / "coverage.csv", cov.defenders, private=True)
        _io.write_json(Path(tmp) / "coverage.json", cov.to_json(), private=True)
        _io.write_csv(Path(tmp) / "n_minus_1.csv", n1, private=True)
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    total = time.perf_counter() - start
    return {
        "n": net.n_nodes,
        "build_s": build,
        "coverage_s": t_cov,
        "n1_s": t_n1,
        "areas_s": t_areas,
        "total_s": total,
        "total_cpu_s": time.process_time() - cpu0,
        "peak_mb": _peak_mb(),
        "peak_after_build_mb": after_build,
        "output_mb": size / 1e6,
        "covered": {f"{m:g}": int(cov.covered(m).sum()) for m in MINUTES},
    }


# ---------------------------------------------------------------------- driver
def _run(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _ratio(a: float | None, b: float | None, digits: int = 1) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.{digits}f}×"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="node counts, comma-separated")
    parser.add_argument("--scale", type=int, default=None, help="node count of the scale run (default: largest)")
    parser.add_argument("--scale-havens", type=int, default=100)
    parser.add_argument("--scale-defenders", type=int, default=10_000)
    parser.add_argument("--nearest-nodes", type=int, default=100_000, help="grid size of the nearest-with-routes run")
    parser.add_argument("--nearest-defenders", type=int, default=100_000)
    parser.add_argument("--nx-budget", type=float, default=180.0, help="skip networkx above this estimate (s)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.worker:
        kind, n = args.worker[0], int(args.worker[1])
        if kind == "havenmap":
            result = worker_havenmap(n, args.repeat)
        elif kind == "networkx":
            result = worker_networkx(n, args.repeat)
        elif kind == "nearest":
            result = worker_nearest(n, int(args.worker[2]), int(args.worker[3]))
        else:
            result = worker_scale(n, int(args.worker[2]), int(args.worker[3]))
        print(json.dumps(result))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB RAM, "
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {__import__('scipy').__version__}, "
        f"networkx {__import__('networkx').__version__}"
    )
    print(
        f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine: times are "
        "CPU seconds of the benchmark process, best of the repeats)"
    )
    print(
        f"{N_HAVENS} havens, {N_DEFENDERS:,} defenders, bands {', '.join(f'{m:g}' for m in MINUTES)} min; "
        "networkx (osmnx-style MultiDiGraph, travel_time) and scipy run on prebuilt graphs (not timed)\n"
    )
    rows, prev_nx, prev_hm = [], None, None
    for n in sizes:
        hm = _run(["--worker", "havenmap", str(n), "--repeat", str(args.repeat)])
        nx_est = None
        if prev_nx is not None:
            # a whole-graph search grows as n log n; a bounded one as the road it reaches
            grow = (hm["n"] * np.log(hm["n"])) / (prev_nx["n"] * np.log(prev_nx["n"]))
            grow_reach = hm["pieces"] / prev_hm["pieces"]
            nx_est = {
                "nearest_nx": prev_nx["nearest_nx"] * grow,
                "areas_nx": prev_nx["areas_nx"] * grow_reach,
                "poly_nx_est": prev_nx["poly_nx_est"] * grow_reach,
            }
        if nx_est is None or (nx_est["nearest_nx"] + nx_est["areas_nx"]) * 3 < args.nx_budget:
            nxr = _run(["--worker", "networkx", str(n), "--repeat", "1"])
            nxr["n"], nxr["skipped"] = hm["n"], False
        else:
            nxr = {"n": hm["n"], "skipped": True, **nx_est}
        prev_nx, prev_hm = nxr, hm
        rows.append((hm, nxr))
        _print_size(hm, nxr)
    scale_n = args.scale or max(sizes)
    print(
        f"\nscale run: {args.scale_havens} havens + {args.scale_defenders:,} defenders, coverage + N-1 + "
        f"service areas + output files, {scale_n:,}-node grid, fresh process"
    )
    sc = _run(["--worker", "scale", str(scale_n), str(args.scale_havens), str(args.scale_defenders)])
    print(f"  load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  network built from arrays in {_fmt(sc['build_s'])} (peak {sc['peak_after_build_mb']:,.0f} MB so far)")
    print(
        f"  CPU: coverage {_fmt(sc['coverage_s'])} (incl. building the snapping index) · N-1 {_fmt(sc['n1_s'])} · "
        f"service areas {_fmt(sc['areas_s'])} · all incl. writing {_fmt(sc['total_cpu_s'])}; "
        f"wall clock {_fmt(sc['total_s'])}"
    )
    print(f"  peak RSS {sc['peak_mb']:,.0f} MB · outputs {sc['output_mb']:.1f} MB · covered per band {sc['covered']}")
    nr = _run(["--worker", "nearest", str(args.nearest_nodes), "100", str(args.nearest_defenders)])
    print(
        f"\nnearest havens with routes for {nr['defenders']:,} defenders, 100 havens, {nr['n']:,}-node grid "
        f"(mean route {nr['mean_route_m']:,.0f} m): nearest_havens {_fmt(nr['nearest_s'])} vs coverage "
        f"{_fmt(nr['coverage_s'])} of the same defenders = {_ratio(nr['nearest_s'], nr['coverage_s'])}; "
        f"GeoJSON {nr['output_mb']:.0f} MB written in {_fmt(nr['write_s'])}; peak RSS {nr['peak_mb']:,.0f} MB "
        f"({nr['peak_before_mb']:,.0f} MB before routing); same times as coverage: {nr['same_times']}"
    )


def _print_size(hm: dict, nxr: dict) -> None:
    def nx_cell(key):
        value = nxr.get(key)
        return f"skipped (est. {_fmt(value)})" if nxr.get("skipped") else _fmt(value)

    print(
        f"== {hm['n']:,} nodes, {hm['edges']:,} edges (built in {_fmt(hm['build_s'])}; one-time index "
        f"{_fmt(hm['setup_s'])}; havenmap peak RSS {hm['peak_mb']:,.0f} MB"
        + ("" if nxr.get("skipped") else f", networkx process {nxr['peak_mb']:,.0f} MB")
        + ")"
    )
    print(f"  {'task':34s} {'havenmap':>10s} {'networkx':>24s} {'scipy floor':>12s} {'vs nx':>7s} {'vs floor':>9s}")
    print(
        f"  {'nearest haven of every node':34s} {_fmt(hm['nearest_hm']):>10s} {nx_cell('nearest_nx'):>24s} "
        f"{_fmt(hm['nearest_floor']):>12s} {_ratio(nxr.get('nearest_nx'), hm['nearest_hm']):>7s} "
        f"{_ratio(hm['nearest_hm'], hm['nearest_floor'], 2):>9s}"
    )
    print(
        f"    (scipy asked which haven too, return_predecessors=True: {_fmt(hm['nearest_floor_which'])}, "
        f"{_ratio(hm['nearest_floor_which'], hm['nearest_floor'], 2)} the floor; havenmap / that = "
        f"{_ratio(hm['nearest_hm'], hm['nearest_floor_which'], 2)})"
    )
    print(
        f"  {'service areas: reached pieces':34s} {_fmt(hm['areas_hm']):>10s} {nx_cell('areas_nx'):>24s} "
        f"{_fmt(hm['areas_floor']):>12s} {_ratio(nxr.get('areas_nx'), hm['areas_hm']):>7s} "
        f"{_ratio(hm['areas_hm'], hm['areas_floor'], 2):>9s}"
    )
    print(
        f"  {'service areas: polygons (all)':34s} {_fmt(hm['polygons_hm']):>10s} "
        f"{('est. ' + _fmt(nxr.get('poly_nx_est'))):>24s} {'':>12s} "
        f"{_ratio(nxr.get('poly_nx_est'), hm['polygons_hm']):>7s}"
    )
    print(
        f"    (wall time, traced on {_cores()} cores: {_fmt(hm['polygons_cpu'])} CPU; "
        f"{hm['pieces']:,} reached pieces, {hm['polygon_vertices']:,} outline vertices; networkx column: "
        "osmnx isochrone recipe, buffer+union of reached edges, one haven's widest band × 150)"
    )
    nx_n1 = None if nxr.get("nearest_nx") is None else nxr["nearest_nx"] * N_HAVENS
    print(
        f"  {'N-1 over 50 havens':34s} {_fmt(hm['n1_hm']):>10s} {('est. ' + _fmt(nx_n1)):>24s} "
        f"{'':>12s} {_ratio(nx_n1, hm['n1_hm']):>7s}"
    )
    print(
        f"    one coverage run {_fmt(hm['coverage_hm'])} → N-1 / coverage = "
        f"{_ratio(hm['n1_hm'], hm['coverage_hm'])}; brute force (50 coverage runs) est. "
        f"{_fmt(hm['n1_brute_est'])} = {_ratio(hm['n1_brute_est'], hm['n1_hm'])} slower"
    )


if __name__ == "__main__":
    main()
