"""Synthetic street networks for benchmarks, built directly as :class:`havenmap.RoadNetwork` arrays.

The network is a realistic-looking street grid, not a lattice: node positions are jittered,
a share of links is missing (blocks merged, dead ends), some streets bend (an extra vertex
in the geometry, so lengths vary), about 10 % of residential streets are one-way, and
arterials (every 8th row/column, 50 km/h), highways (every 40th, 80 km/h) and a mix of
residential/tertiary streets (30/40 km/h) give the speeds a real hierarchy. Everything is
numpy: a million-node network builds in seconds, with no networkx graph behind it.

Used by ``benchmarks/bench_reach.py``; importable from other benchmarks::

    from _synthetic import street_grid, random_points
    net = street_grid(100_000, seed=1)
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from havenmap._arrays import ragged_index as _ragged_index
from havenmap.network import RoadNetwork

#: Projected CRS of the synthetic city (UTM 14N, around Aguascalientes, Mexico).
CRS = pyproj.CRS.from_epsg(32614)
ORIGIN = (780_000.0, 2_420_000.0)


def street_grid(
    n_nodes: int,
    *,
    seed: int = 0,
    spacing_m: float = 110.0,
    missing: float = 0.08,
    oneway: float = 0.10,
    bend: float = 0.3,
) -> RoadNetwork:
    """A jittered street grid of about ``n_nodes`` nodes as a :class:`RoadNetwork`.

    Parameters
    ----------
    n_nodes
        Target node count (the grid is ``rows × cols`` with ``rows * cols >= n_nodes``).
    seed
        Random seed (the same seed gives the same network).
    spacing_m
        Mean block side, metres.
    missing
        Share of grid links left out (never on arterials), so blocks and detours vary.
    oneway
        Share of residential/tertiary streets that are one-way (random direction).
    bend
        Share of streets whose geometry bends through an extra vertex.
    """
    rng = np.random.default_rng(seed)
    rows = int(np.floor(np.sqrt(n_nodes)))
    cols = int(np.ceil(n_nodes / rows))
    n = rows * cols
    r, c = np.divmod(np.arange(n), cols)
    xy = np.column_stack([ORIGIN[0] + c * spacing_m, ORIGIN[1] + r * spacing_m])
    xy += rng.normal(0.0, 0.12 * spacing_m, size=(n, 2))

    idx = np.arange(n).reshape(rows, cols)
    h_u, h_v = idx[:, :-1].ravel(), idx[:, 1:].ravel()  # horizontal links along row r
    v_u, v_v = idx[:-1, :].ravel(), idx[1:, :].ravel()  # vertical links along column c
    u = np.concatenate([h_u, v_u])
    v = np.concatenate([h_v, v_v])
    line = np.concatenate([r[h_u], c[v_u]])  # the row / column the link runs along
    speed = np.where(
        line % 40 == 0, 80.0, np.where(line % 8 == 0, 50.0, rng.choice([30.0, 30.0, 30.0, 40.0], size=len(u)))
    )
    highway = np.where(
        speed == 80.0, "trunk", np.where(speed == 50.0, "secondary", np.where(speed == 40.0, "tertiary", "residential"))
    )
    keep = (speed >= 50.0) | (rng.random(len(u)) >= missing)
    u, v, speed, highway = u[keep], v[keep], speed[keep], highway[keep]
    flip = rng.random(len(u)) < 0.5
    u, v = np.where(flip, v, u), np.where(flip, u, v)
    one = (speed < 50.0) & (rng.random(len(u)) < oneway)

    # geometry: straight, or bent through a vertex pushed sideways from the midpoint
    m = len(u)
    bent = rng.random(m) < bend
    a, b = xy[u], xy[v]
    normal = np.column_stack([-(b - a)[:, 1], (b - a)[:, 0]])
    mid = 0.5 * (a + b) + normal * rng.uniform(-0.25, 0.25, size=(m, 1))
    counts = np.where(bent, 3, 2)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    geom = np.empty((offsets[-1], 2))
    geom[offsets[:-1]] = a
    geom[offsets[1:] - 1] = b
    geom[offsets[:-1][bent] + 1] = mid[bent]
    seg = np.hypot(*np.diff(geom, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    length = cum[offsets[1:] - 1] - cum[offsets[:-1]]

    # directed edges: every street forward; two-way streets also backward (twins)
    back = np.flatnonzero(~one)
    e_u = np.concatenate([u, v[back]])
    e_v = np.concatenate([v, u[back]])
    street = np.concatenate([np.arange(m), back])
    reverse = np.concatenate([np.zeros(m, bool), np.ones(len(back), bool)])
    twin = np.full(len(street), -1, dtype=np.int64)
    twin[back] = m + np.arange(len(back))
    twin[m + np.arange(len(back))] = back

    g_counts = counts[street]
    g_offsets = np.concatenate([[0], np.cumsum(g_counts)]).astype(np.int64)
    flat = _ragged_index(offsets[:-1][street], g_counts)
    start = np.repeat(offsets[:-1][street], g_counts)
    end = np.repeat(offsets[1:][street] - 1, g_counts)
    flat = np.where(np.repeat(reverse, g_counts), start + end - flat, flat)

    e_speed = speed[street]
    e_length = length[street]
    lon, lat = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True).transform(xy[:, 0], xy[:, 1])
    attrs = pd.DataFrame(
        {
            "osmid": street.astype(np.int64) + 1,
            "highway": pd.array(highway[street], dtype="string"),
            "name": pd.array([None] * len(street), dtype="string"),
            "oneway": one[street],
            "maxspeed": pd.array(e_speed.astype(int).astype(str), dtype="string"),
        }
    )
    return RoadNetwork(
        crs=CRS,
        network_type="drive",
        node_id=np.arange(1, n + 1, dtype=np.int64),
        node_xy=xy,
        node_lonlat=np.column_stack([lon, lat]),
        edge_u=e_u.astype(np.int64),
        edge_v=e_v.astype(np.int64),
        edge_key=np.zeros(len(street), dtype=np.int64),
        edge_length=e_length,
        edge_time=e_length / (e_speed / 3.6),
        edge_speed=e_speed,
        edge_twin=twin,
        geom_offsets=g_offsets,
        geom_xy=geom[flat],
        edge_attrs=attrs,
        source=f"synthetic street grid {rows}x{cols} (seed {seed})",
    )


def random_points(net: RoadNetwork, n: int, prefix: str, *, seed: int, offset_m: float = 15.0) -> gpd.GeoDataFrame:
    """``n`` points near random streets (up to ``offset_m`` off the road), ids ``prefix0..``, network CRS."""
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, net.n_edges, n)
    frac = rng.uniform(0.05, 0.95, n)
    a = net.geom_xy[net.geom_offsets[edges]]
    b = net.geom_xy[net.geom_offsets[edges + 1] - 1]
    pts = a + (b - a) * frac[:, None] + rng.uniform(-offset_m, offset_m, size=(n, 2))
    return gpd.GeoDataFrame({"id": [f"{prefix}{i}" for i in range(n)]}, geometry=shapely.points(pts), crs=net.crs)
