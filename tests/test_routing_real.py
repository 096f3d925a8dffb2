"""Real streets, points where the bugs live: downtown Aguascalientes (drive, ~45 % one-way edges) and
central Helsinki (walk), with many points exactly at intersections (one-way ones included), within
the node tolerance of them, mid-street and at the extract's borders and dead ends.

The truth is the independent oracle of tests/_oracle.py (networkx on the original graph, points by
explicit arithmetic), itself checked here against a brute force that inserts the points as nodes.
Nearest havens, coverage, N-1, closures and service areas are checked in test_havens.py,
test_coverage.py and test_costs.py on the same kind of points; this file holds the oracle's own
checks and the many-to-many legs, patrol legs and undirected threat distances.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from functools import cache

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from havenmap import costs, patrol, routing, threat

from ._oracle import (
    BruteForce,
    Oracle,
    Place,
    Streets,
    UndirectedOracle,
    assert_snapped_as_placed,
    edge_keys,
    to_gdf,
)

WALK_MIX = {"node": 0.35, "mid": 0.45, "beyond": 0.1, "border": 0.1}  # walk: no one-way streets


@cache
def streets(net) -> Streets:
    return Streets(net.to_networkx())


def _places(net, prefix: str, n: int, seed: int, mix=None) -> list[Place]:
    if mix is None and not streets(net).oneway:
        mix = WALK_MIX
    return streets(net).sample(prefix, n, seed, mix)


def _danger(net, seed: int):
    rng = np.random.default_rng(seed)
    risk = rng.gamma(0.6, 1.5, net.n_edges)
    twin = net.edge_twin
    risk[twin >= 0] = np.maximum(risk[twin >= 0], risk[twin[twin >= 0]])  # one risk per road
    return costs.danger_weights(net, risk, alpha=2.0, max_risk=float(np.quantile(risk, 0.93)))


# ---------------------------------------------------------------------- the oracle itself
@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_points_are_placed_where_intended(fixture, request):
    net = request.getfixturevalue(fixture)
    places = _places(net, "p", 80, 3)
    kinds = {p.kind for p in places}
    one_way = {"oneway_start", "oneway_end", "near-node"} if streets(net).oneway else set()
    assert kinds >= one_way | {"node", "mid", "border"}
    if streets(net).oneway:  # at nodes where a one-way street starts or ends, and beside them
        assert sum(p.at_node and p.node in streets(net).oneway_nodes for p in places) >= 25
    assert_snapped_as_placed(net, places, to_gdf(places, net.crs), streets(net).twin)


@pytest.mark.parametrize(
    ("fixture", "model"),
    [("aguascalientes_drive", "time"), ("aguascalientes_drive", "danger"), ("demo_walk", "length")],
)
def test_oracle_agrees_with_a_brute_force_that_inserts_the_points_as_nodes(fixture, model, request):
    net = request.getfixturevalue(fixture)
    places = _places(net, "p", 40, 5)
    weights = _danger(net, 2) if model == "danger" else None
    oracle = Oracle.for_network(net, "length" if model == "length" else "time", weights)
    cost, _, _ = oracle.matrix(places, places)
    brute = BruteForce(oracle, places)
    expected = np.array([brute.costs_from(p, places) for p in places])
    assert np.isfinite(expected).mean() > 0.6
    np.testing.assert_allclose(cost, expected, rtol=1e-12, atol=1e-9)
    # the two-way streets the oracle found from the geometries are havenmap's (a cross-check of the data;
    # duplicated ways may pair differently, but only with an identical reversed geometry)
    keys = edge_keys(net)
    index = {k: i for i, k in enumerate(keys)}
    mine = np.array([index.get(oracle.twin.get(k), -1) for k in keys])
    np.testing.assert_array_equal(mine >= 0, net.edge_twin >= 0)
    for i in np.flatnonzero(mine != net.edge_twin):
        np.testing.assert_allclose(net.edge_coords(mine[i]), net.edge_coords(net.edge_twin[i]))


# ---------------------------------------------------------------------- many-to-many legs
def _check_matrix(tm, origins, destinations, oracle, what: str):
    cost, t, length = oracle.matrix(origins, destinations)
    assert list(tm.origin_ids) == [p.id for p in origins]
    assert list(tm.destination_ids) == [p.id for p in destinations]
    assert np.isfinite(cost).mean() > 0.5
    wrong = ~np.isclose(tm.time_s, t, rtol=1e-6, atol=1e-3) & ~(np.isinf(tm.time_s) & np.isinf(t))
    examples = [
        f"{origins[i]} -> {destinations[j]}: expected {t[i, j]:.2f} s, got {tm.time_s[i, j]:.2f} s"
        for i, j in zip(*np.nonzero(wrong), strict=True)
    ]
    assert not wrong.any(), f"{what}: {wrong.sum()} of {wrong.size} legs wrong, e.g.\n" + "\n".join(examples[:10])
    np.testing.assert_allclose(tm.cost, cost, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(tm.length_m, length, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("cost", ["time", "length", "danger"])
def test_travel_matrix_on_real_one_way_streets(aguascalientes_drive, cost):
    net = aguascalientes_drive
    origins = _places(net, "o", 24, 11)
    destinations = [*_places(net, "t", 20, 12), *origins[:4]]  # 4 shared: a point to itself is 0
    weights = _danger(net, 3) if cost == "danger" else None
    tm = routing.travel_matrix(
        net,
        to_gdf(origins, net.crs),
        to_gdf(destinations, net.crs),
        cost="time" if weights is not None else cost,
        edge_weights=weights,
    )
    oracle = Oracle.for_network(net, "time" if weights is not None else cost, weights)
    _check_matrix(tm, origins, destinations, oracle, f"travel_matrix ({cost})")
    for what in ("cost", "time_s", "length_m"):  # the routing spec: 0 from a point to itself
        np.testing.assert_array_equal(np.diag(getattr(tm, what)[:4, -4:]), 0.0, err_msg=f"{what} to itself")


def test_travel_matrix_on_the_walk_network(demo_walk):
    net = demo_walk
    pts = _places(net, "w", 20, 13)
    tm = routing.travel_matrix(net, to_gdf(pts, net.crs), to_gdf(pts, net.crs))
    _check_matrix(tm, pts, pts, Oracle.for_network(net), "travel_matrix (walk)")


def _node_of(net, targets: gpd.GeoDataFrame) -> list[int]:
    """The node each displaced target stands on (its coordinates are a node's)."""
    xy = shapely.get_coordinates(targets.to_crs(net.crs).geometry)
    tree = shapely.STRtree(shapely.points(net.node_xy))
    idx, dist = tree.query_nearest(shapely.points(xy), return_distance=True)
    assert (dist < 1e-3).all(), "a defender target is not on an intersection"
    return net.node_id[idx[1]].tolist()


def test_patrol_legs_with_defender_targets_at_one_way_junctions(aguascalientes_drive):
    """Defender check-in targets are displaced to junctions, so they stand on one-way junctions all the time."""
    net = aguascalientes_drive
    people = _places(net, "D", 36, 21)
    defenders = to_gdf(people, net.crs, {"consent": ["visit", "drive-by"] * 18})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        targets = patrol.targets_from_defenders(net, defenders)
    nodes = _node_of(net, targets)
    st = streets(net)
    assert sum(n in st.oneway_nodes for n in nodes) > 15
    base_places = [
        st.at_node("B0", st.oneway_nodes[7], "oneway_node"),
        *(replace(p, id=f"B{i + 1}") for i, p in enumerate(_places(net, "b", 2, 22, {"mid": 1}))),
    ]
    bases = to_gdf(base_places, net.crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = patrol.plan_patrols(net, targets, bases, units=3, shift_minutes=600, solver="greedy")
    pr = plan.problem
    assert pr.base_ids == ["B0", "B1", "B2"]
    node_of = dict(zip(targets["id"].astype(str), nodes, strict=True))
    stops = [*base_places, *(st.at_node(str(t), node_of[str(t)], "target") for t in pr.targets["id"])]
    _, t, _ = Oracle.for_network(net).matrix(stops, stops)
    wrong = ~np.isclose(pr.time_s, t, rtol=1e-6, atol=1e-3) & ~(np.isinf(pr.time_s) & np.isinf(t))
    examples = [
        f"{stops[i]} -> {stops[j]}: expected {t[i, j]:.1f} s, got {pr.time_s[i, j]:.1f} s"
        for i, j in zip(*np.nonzero(wrong), strict=True)
    ]
    assert not wrong.any(), f"{wrong.sum()} of {wrong.size} patrol legs wrong, e.g.\n" + "\n".join(examples[:10])


# ---------------------------------------------------------------------- undirected metres (threat)
@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_network_distances_are_undirected_road_metres(fixture, request):
    net = request.getfixturevalue(fixture)
    a, b = _places(net, "a", 25, 31), _places(net, "i", 25, 32)
    limit = 700.0
    got = routing.network_distances(net, to_gdf(a, net.crs), to_gdf(b, net.crs), limit)
    assert list(got.columns[:3]) == ["a_id", "b_id", "distance_m"]
    oracle = UndirectedOracle(net.to_networkx())
    expected = {}
    for p in a:
        for q, d in zip(b, oracle.distances(p, b, limit), strict=True):
            if math.isfinite(d):
                expected[(p.id, q.id)] = d
    assert len(expected) > 40
    found = {(x, y): d for x, y, d in got[["a_id", "b_id", "distance_m"]].itertuples(index=False)}
    near_limit = {k for k, d in expected.items() if d > limit - 1e-3}
    assert set(found) - near_limit == set(expected) - near_limit
    for key, d in expected.items():
        if key in found:
            assert found[key] == pytest.approx(d, rel=1e-6, abs=1e-3), key


def _incidents(places, as_of, crs) -> gpd.GeoDataFrame:
    n = len(places)
    frame = to_gdf(
        places,
        crs,
        {
            "incident_id": pd.array([p.id for p in places], dtype="string"),
            "date": [as_of - pd.Timedelta(days=1)] * n,
            "event_type": pd.array(["Violence against civilians"] * n, dtype="string"),
            "sub_event_type": pd.array(["Attack"] * n, dtype="string"),
            "fatalities": np.ones(n, dtype=np.int64),
            "geo_precision": np.ones(n, dtype=np.int64),
            "notes": pd.array([""] * n, dtype="string"),
            "source": pd.array(["test"] * n, dtype="string"),
        },
    )
    frame = frame.drop(columns="id")
    frame.attrs["source"] = "incidents.csv"
    return frame


def test_early_warning_nearest_incident_is_undirected_road_metres(aguascalientes_drive):
    net = aguascalientes_drive
    as_of = pd.Timestamp("2026-05-01")
    people, events = _places(net, "d", 30, 41), _places(net, "x", 16, 42)
    distance_m = 500.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alerts = threat.early_warning(
            net, _incidents(events, as_of, net.crs), to_gdf(people, net.crs), as_of, distance_m=distance_m
        )
    oracle = UndirectedOracle(net.to_networkx())
    nearest = {p.id: oracle.distances(p, events, distance_m).min() for p in people}
    # a deadly attack within distance_m / 2 always alerts; the nearest is reported in road metres
    must = {d for d, x in nearest.items() if x <= distance_m / 2 - 1e-3}
    assert len(must) >= 5
    got = alerts.set_index("defender_id")
    assert must <= set(got.index), f"not alerted: {sorted(must - set(got.index))}"
    where = {p.id: p for p in people}
    wrong = [
        f"{where[d]}: expected {nearest[d]:.1f} m, got {row['nearest_m']:.1f} m"
        for d, row in got.iterrows()
        if not math.isclose(row["nearest_m"], nearest[d], abs_tol=0.051)
    ]
    assert not wrong, f"{len(wrong)} of {len(got)} alerts with a wrong nearest_m, e.g.\n" + "\n".join(wrong[:8])
