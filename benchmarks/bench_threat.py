"""Benchmark: network kernel density of 100,000 incidents on a 100,000-node street grid.

Builds a jittered street grid directly as a :class:`havenmap.RoadNetwork` (arrays; no OSM
file), scatters incidents (hotspots + background, a year of dates, ACLED types, 85 % / 10 % / 5 %
geo_precision 1 / 2 / 3), and times :func:`havenmap.threat.compute_threat` producing the
per-edge risk (weighting + snapping + network KDE), then the optional parts (density grid,
Gi* hotspots, space-time scan). As an in-process baseline it also times one plain
``csgraph.dijkstra`` over the whole grid from 1,000 sources with the same distance limit
(the naive "one Dijkstra per incident" approach, extrapolated to all incidents).

Run: ``python benchmarks/bench_threat.py [--side 317] [--incidents 100000]``
"""

from __future__ import annotations

import argparse
import time
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from scipy.sparse import csgraph

from havenmap import threat
from havenmap.network import RoadNetwork, utm_crs
from havenmap.threat import DEFAULT_TYPE_WEIGHTS, compute_threat


def grid_network(side: int, spacing_m: float = 100.0, seed: int = 0) -> RoadNetwork:
    """A ``side × side`` jittered street grid, every street two-way (straight edges)."""
    rng = np.random.default_rng(seed)
    crs = utm_crs(25.0, 60.0)
    ix, iy = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    xy = np.column_stack([ix.ravel(), iy.ravel()]).astype(float) * spacing_m
    xy += rng.uniform(-0.2, 0.2, xy.shape) * spacing_m + np.array([380_000.0, 6_650_000.0])
    node = (ix * side + iy).ravel()
    idx = node.reshape(side, side)
    a = np.concatenate([idx[:-1, :].ravel(), idx[:, :-1].ravel()])
    b = np.concatenate([idx[1:, :].ravel(), idx[:, 1:].ravel()])
    u, v = np.concatenate([a, b]), np.concatenate([b, a])
    m = len(a)
    twin = np.concatenate([np.arange(m) + m, np.arange(m)])
    length = np.hypot(*(xy[u] - xy[v]).T)
    back = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lonlat = np.column_stack(back.transform(xy[:, 0], xy[:, 1]))
    geom_xy = np.empty((2 * len(u), 2))
    geom_xy[0::2], geom_xy[1::2] = xy[u], xy[v]
    speed = np.full(len(u), 30.0)
    return RoadNetwork(
        crs=crs,
        network_type="drive",
        node_id=node.astype(np.int64) + 1,
        node_xy=xy,
        node_lonlat=lonlat,
        edge_u=u.astype(np.int64),
        edge_v=v.astype(np.int64),
        edge_key=np.zeros(len(u), np.int64),
        edge_length=length,
        edge_time=length / (speed / 3.6),
        edge_speed=speed,
        edge_twin=twin,
        geom_offsets=np.arange(0, 2 * len(u) + 1, 2, dtype=np.int64),
        geom_xy=geom_xy,
        edge_attrs=pd.DataFrame(
            {
                "osmid": np.zeros(len(u), np.int64),
                "highway": pd.array([None] * len(u), dtype="string"),
                "name": pd.array([None] * len(u), dtype="string"),
            }
        ),
        source="synthetic-grid",
    )


def synthetic_incidents(net: RoadNetwork, n: int, seed: int = 1) -> gpd.GeoDataFrame:
    """``n`` incidents: 60 % around 40 Gaussian hotspots (sigma 300 m), 40 % uniform; a year of dates."""
    rng = np.random.default_rng(seed)
    lo, hi = net.node_xy.min(axis=0), net.node_xy.max(axis=0)
    n_hot = int(0.6 * n)
    centres = rng.uniform(lo, hi, (40, 2))
    xy = np.vstack(
        [centres[rng.integers(0, 40, n_hot)] + rng.normal(0, 300, (n_hot, 2)), rng.uniform(lo, hi, (n - n_hot, 2))]
    )
    xy = np.clip(xy, lo, hi)
    types = DEFAULT_TYPE_WEIGHTS[DEFAULT_TYPE_WEIGHTS["sub_event_type"] != ""]
    pick = types.iloc[rng.integers(0, len(types), n)]
    as_of = pd.Timestamp("2026-11-20")
    frame = gpd.GeoDataFrame(
        {
            "incident_id": pd.array([f"S{i:06d}" for i in range(n)], dtype="string"),
            "date": as_of - pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
            "event_type": pd.array(pick["event_type"].to_numpy(), dtype="string"),
            "sub_event_type": pd.array(pick["sub_event_type"].to_numpy(), dtype="string"),
            "fatalities": rng.poisson(0.3, n).astype(np.int64),
            "geo_precision": rng.choice([1, 2, 3], n, p=[0.85, 0.10, 0.05]).astype(np.int64),
            "notes": pd.array([""] * n, dtype="string"),
            "source": pd.array(["synthetic"] * n, dtype="string"),
        },
        geometry=shapely.points(xy),
        crs=net.crs,
    ).to_crs("EPSG:4326")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=317, help="grid side (317 → 100,489 nodes)")
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--bandwidth-m", type=float, default=400.0)
    parser.add_argument("--cluster-permutations", type=int, default=199)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    h = args.bandwidth_m

    t0 = time.perf_counter()
    net = grid_network(args.side)
    inc = synthetic_incidents(net, args.incidents)
    print(
        f"network: {net.n_nodes:,} nodes, {net.n_edges:,} directed edges; {len(inc):,} incidents "
        f"(built in {time.perf_counter() - t0:.1f} s)"
    )

    t0 = time.perf_counter()
    result = compute_threat(net, inc, bandwidth_m=h, grid=False, hotspots=False, clusters=False)
    t_risk = time.perf_counter() - t0
    used = int((result.incidents["status"] == "used").sum())
    print(
        f"EDGE RISK (compute_threat: weighting + snapping + network KDE, bandwidth {h:.0f} m): "
        f"{t_risk:.2f} s for {used:,} incidents; risk > 0 on {(result.risk > 0).mean():.0%} of edges"
    )

    # where the time goes (private steps, same work as above)
    t0 = time.perf_counter()
    weighted = threat.weigh_incidents(inc)
    t1 = time.perf_counter()
    snapped = threat._snap_incidents(net, weighted, threat.INCIDENT_MAX_SNAP_M)
    t2 = time.perf_counter()
    threat._edge_risk_from_incidents(net, snapped, h, "quartic", 1.0)
    t3 = time.perf_counter()
    print(
        f"  breakdown (second run, warm caches): weighting {t1 - t0:.2f} s, snapping {t2 - t1:.2f} s, "
        f"network KDE {t3 - t2:.2f} s"
    )

    used_mask = snapped["weight"].to_numpy() > 0
    xy = shapely.get_coordinates(snapped.geometry[used_mask].to_crs(net.crs).to_numpy())
    t0 = time.perf_counter()
    grid = threat._planar_grid(
        xy,
        snapped["weight"].to_numpy()[used_mask],
        h * snapped["bandwidth_factor"].to_numpy()[used_mask],
        np.vstack([net.node_xy.min(axis=0), net.node_xy.max(axis=0)]),
        100.0,
    )
    t_grid = time.perf_counter() - t0
    t0 = time.perf_counter()
    phys, w = threat._band_weights(net, h / 2)
    t_band = time.perf_counter() - t0
    value = np.bincount(
        threat._canonical(net)[snapped["edge"].to_numpy()[snapped["weight"] > 0]],
        weights=snapped["weight"].to_numpy()[snapped["weight"] > 0],
        minlength=net.n_edges,
    )[phys]
    t0 = time.perf_counter()
    threat.getis_ord_star(value, w)
    t_gi = time.perf_counter() - t0
    t0 = time.perf_counter()
    clusters = threat.space_time_clusters(net, snapped, permutations=args.cluster_permutations)
    t_scan = time.perf_counter() - t0
    print(
        f"optional parts: density grid {t_grid:.2f} s ({grid.values.size:,} cells of 100 m); "
        f"Gi* band weights {t_band:.2f} s ({w.nnz:,} pairs within {h / 2:.0f} m) + Gi* {t_gi:.2f} s; "
        f"space-time scan {t_scan:.2f} s ({args.cluster_permutations} replicates, {len(clusters)} clusters)"
    )

    # baseline: plain bounded Dijkstra per source on the whole network (what the tiling avoids)
    matrix = net.csr(cost="length")
    sources = np.random.default_rng(2).choice(net.n_nodes, 1000, replace=False)
    t0 = time.perf_counter()
    for chunk in np.array_split(sources, 10):
        csgraph.dijkstra(matrix, directed=False, indices=chunk, limit=h)
    t_naive = time.perf_counter() - t0
    est = t_naive / 1000 * used
    print(
        f"baseline: whole-network bounded csgraph.dijkstra from 1,000 nodes: {t_naive:.2f} s → ~{est:.0f} s "
        f"for {used:,} incidents before any kernel arithmetic ({est / t_risk:.1f}× the whole edge-risk step)"
    )


if __name__ == "__main__":
    main()
