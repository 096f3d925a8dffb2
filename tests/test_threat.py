"""Threat picture and early warning: hand-checked kernel profiles, decay, weights, network KDE against
brute force, Gi* against esda, alerts, the space-time scan, risk files and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import esda
import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from libpysal.weights import WSP
from scipy import sparse
from scipy.sparse import csgraph

from havenmap import _graph, _io, _kde, threat
from havenmap._scan import space_time_scan
from havenmap.errors import InputError
from havenmap.network import from_graph
from havenmap.scenario import demo_dir

DEMO = demo_dir()
CRS = "EPSG:32635"
X0, Y0 = 500_000.0, 6_650_000.0
AS_OF = pd.Timestamp("2026-11-20")


# --------------------------------------------------------------------------- helpers


def straight_road(n_nodes: int = 21, spacing: float = 100.0, name: str = "Testgatan"):
    """A straight two-way street along x, nodes every ``spacing`` metres (ids 1..n)."""
    graph = nx.MultiDiGraph(crs=CRS)
    for i in range(n_nodes):
        graph.add_node(i + 1, x=X0 + i * spacing, y=Y0)
    for i in range(n_nodes - 1):
        for a, b in ((i + 1, i + 2), (i + 2, i + 1)):
            graph.add_edge(a, b, key=0, length=spacing, name=name, highway="residential", speed_kph=5.0)
    return from_graph(graph)


def incidents_at(
    xs, ages=0, event_type="Violence against civilians", sub_event_type="Attack", fatalities=0, precision=1, y=0.0
) -> gpd.GeoDataFrame:
    """Canonical incidents at x metres along the test road, ``ages`` days before AS_OF."""
    xs = np.atleast_1d(np.asarray(xs, dtype=float))
    n = len(xs)
    frame = gpd.GeoDataFrame(
        {
            "incident_id": pd.array([f"T{i + 1}" for i in range(n)], dtype="string"),
            "date": AS_OF - pd.to_timedelta(np.broadcast_to(ages, n), unit="D"),
            "event_type": pd.array(np.broadcast_to(event_type, n).tolist(), dtype="string"),
            "sub_event_type": pd.array(np.broadcast_to(sub_event_type, n).tolist(), dtype="string"),
            "fatalities": np.broadcast_to(fatalities, n).astype(np.int64),
            "geo_precision": np.broadcast_to(precision, n).astype(np.int64),
            "notes": pd.array([""] * n, dtype="string"),
            "source": pd.array(["csv"] * n, dtype="string"),
        },
        geometry=shapely.points(X0 + xs, np.full(n, Y0 + y)),
        crs=CRS,
    ).to_crs("EPSG:4326")
    frame.attrs["source"] = "test.csv"
    return frame


def quartic(t):
    t = np.minimum(np.abs(t), 1.0)
    return 15 / 16 * (1 - t**2) ** 2


def quartic_cdf(t):  # ∫_0^min(t,1) of the quartic kernel, worked by hand: 15/16 (t − 2t³/3 + t⁵/5)
    t = np.minimum(t, 1.0)
    return 15 / 16 * (t - 2 * t**3 / 3 + t**5 / 5)


def risk_of(net, result, x_from):
    """Risk of the edge starting at x_from (m) along the test road, eastbound."""
    u = round(x_from / 100.0) + 1
    e = np.flatnonzero((net.node_id[net.edge_u] == u) & (net.node_id[net.edge_v] == u + 1))[0]
    return result.risk[e]


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


# --------------------------------------------------------------------------- kernel profile


def test_one_incident_on_a_straight_road_gives_the_kernel_profile():
    net = straight_road()
    # the one-kernel estimator ('kde', the default before backtests); 'mix' is two such kernels, tested below
    res = threat.compute_threat(
        net, incidents_at([1050.0]), AS_OF, method="kde", bandwidth_m=400, hotspots=False, clusters=False, grid=False
    )
    # weight 1 (attack, no deaths, today, exact place); h = 400 m; density per km = 1000 · k(d/h) / h
    peak = 1000 * (15 / 16) / 400  # 2.34375 per km
    assert peak == pytest.approx(2.34375)
    node_x = net.node_xy[:, 0] - X0
    expected_nodes = 1000 * quartic(np.abs(node_x - 1050) / 400) / 400
    np.testing.assert_allclose(res.node_risk, expected_nodes, atol=1e-12)
    # hand values: 50 m away 2.34375·(1 − 1/64)² = 2.27118; 150 m: ·(1 − 9/64)² = 1.73087; 350 m: ·(15/64)²
    node = {round(x): r for x, r in zip(node_x, res.node_risk, strict=True)}
    assert node[1000] == pytest.approx(2.34375 * (63 / 64) ** 2)
    assert node[1200] == pytest.approx(2.34375 * (55 / 64) ** 2)
    assert node[1400] == pytest.approx(2.34375 * (15 / 64) ** 2)
    assert node[1500] == 0.0 and node[600] == 0.0
    # edge risk = mean density along the edge: own edge (1000-1100): 2·K(50/400) per 100 m
    assert risk_of(net, res, 1000) == pytest.approx(10 * 2 * quartic_cdf(0.125))
    assert risk_of(net, res, 1100) == pytest.approx(10 * (quartic_cdf(150 / 400) - quartic_cdf(50 / 400)))
    assert risk_of(net, res, 1400) == pytest.approx(10 * (0.5 - quartic_cdf(350 / 400)))
    assert risk_of(net, res, 1500) == 0.0 and risk_of(net, res, 500) == 0.0
    # the same by brute-force numerical integration of the profile over the edge 1100-1200
    x = np.linspace(1100, 1200, 200_001)
    numeric = np.trapezoid(1000 * quartic((x - 1050) / 400) / 400, x) / 100
    assert risk_of(net, res, 1100) == pytest.approx(numeric, rel=1e-8)
    # no junction: the whole unit mass lies on the road (risk per km × km of road, one direction)
    east = net.node_id[net.edge_u] < net.node_id[net.edge_v]
    assert (res.risk[east] * net.edge_length[east] / 1000).sum() == pytest.approx(1.0)
    # both directions of the street carry the same risk
    assert np.allclose(res.risk, res.risk[net.edge_twin])


def test_decay_halves_at_the_half_life_and_precision_spreads():
    inc = incidents_at([1000, 1000, 1000, 1000], ages=[0, 30, 60, 30])
    w = threat.weigh_incidents(inc, AS_OF, half_life_days=30)
    np.testing.assert_allclose(w["decay"], [1, 0.5, 0.25, 0.5])
    np.testing.assert_allclose(w["weight"], [1, 0.5, 0.25, 0.5])
    w10 = threat.weigh_incidents(inc, AS_OF, half_life_days=10)
    assert w10["weight"].iloc[1] == pytest.approx(0.125)

    net = straight_road()
    kw = {"method": "kde", "bandwidth_m": 400, "hotspots": False, "clusters": False, "grid": False}  # one half-life
    fresh = threat.compute_threat(net, incidents_at([1050]), AS_OF, **kw)
    old = threat.compute_threat(net, incidents_at([1050], ages=30), AS_OF, **kw)
    np.testing.assert_allclose(old.risk, fresh.risk / 2)
    # fatalities: factor 1 + ln(1 + f); geo_precision 2: half weight over twice the bandwidth
    dead = threat.weigh_incidents(incidents_at([1050], fatalities=3), AS_OF)
    assert dead["weight"].iloc[0] == pytest.approx(1 + math.log(4))
    vague = threat.compute_threat(net, incidents_at([1000], precision=2), AS_OF, **kw)
    assert vague.node_risk[net.node_index([11])[0]] == pytest.approx(0.5 * 1000 * (15 / 16) / 800)
    assert vague.node_risk[net.node_index([18])[0]] == pytest.approx(0.5 * 1000 * quartic(700 / 800) / 800)


def test_mix_is_a_narrow_long_memory_kernel_plus_a_wide_recent_one():
    net = straight_road()
    kw = {"hotspots": False, "clusters": False, "grid": False}

    def kde(h, ages):
        return threat.compute_threat(
            net, incidents_at([1050.0], ages=ages), AS_OF, method="kde", bandwidth_m=h, half_life_days=1e12, **kw
        )

    for age in (0.0, 10.0, 90.0):
        mix = threat.compute_threat(net, incidents_at([1050.0], ages=age), AS_OF, **kw)  # the default: 'mix'
        # the memories as rates per day, 0.8 · 2^(-a/120)/120 (place) and 0.2 · 2^(-a/21)/21 (recent), scaled so a
        # fresh incident weighs 1: a place kernel of 25 m and a recent kernel of 250 m with those weights
        place, recent, norm = 0.8 * 0.5 ** (age / 120) / 120, 0.2 * 0.5 ** (age / 21) / 21, 0.8 / 120 + 0.2 / 21
        expected = place / norm * kde(25.0, age).risk + recent / norm * kde(250.0, age).risk
        np.testing.assert_allclose(mix.risk, expected, rtol=1e-9, atol=1e-12)
        assert mix.incidents["decay"].iloc[0] == pytest.approx((place + recent) / norm)
        assert mix.params["method"] == "mix" and mix.params["place_bandwidth_m"] == 25.0
    # by hand, a fresh incident at 1050 m: the place kernel (25 m) stays on its own 100 m piece, the recent one
    # (250 m) puts 2·K(50/250) there and K(150/250) - K(50/250) on the next piece; shares 0.412 and 0.588
    fresh = threat.compute_threat(net, incidents_at([1050.0]), AS_OF, **kw)
    w_place, w_recent = (0.8 / 120) / (0.8 / 120 + 0.2 / 21), (0.2 / 21) / (0.8 / 120 + 0.2 / 21)
    assert risk_of(net, fresh, 1000) == pytest.approx(10 * (w_place + w_recent * 2 * quartic_cdf(0.2)))
    assert risk_of(net, fresh, 1100) == pytest.approx(10 * w_recent * (quartic_cdf(0.6) - quartic_cdf(0.2)))
    assert risk_of(net, fresh, 1300) == 0.0
    with pytest.raises(InputError, match="place_bandwidth_m applies to --method mix only"):
        threat.compute_threat(net, incidents_at([1050.0]), AS_OF, method="kde", place_bandwidth_m=10, **kw)
    with pytest.raises(InputError, match="--method 'etas': use one of mix, kde"):
        threat.compute_threat(net, incidents_at([1050.0]), AS_OF, method="etas", **kw)


def test_type_weights_unknown_types_and_future_dates_are_reported_by_row():
    inc = incidents_at(
        [100, 200, 300],
        ages=[0, -3, 1],
        event_type=["Protests", "Riots", "Curfew breach"],
        sub_event_type=["Peaceful protest", "Mob violence", ""],
    )
    with pytest.warns(UserWarning) as caught:
        w = threat.weigh_incidents(inc, AS_OF)
    messages = " | ".join(str(c.message) for c in caught)
    assert "unknown event type 'Curfew breach' in row 3 (id 'T3')" in messages
    assert "weighted 0.5" in messages and "--weights" in messages
    assert "dated after the as-of date 2026-11-20 are left out: row 2 (id 'T2')" in messages
    assert list(w["status"]) == ["used", "future", "used"]
    assert w["weight"].iloc[0] == pytest.approx(0.1)  # peaceful protest
    assert w["weight"].iloc[1] == 0.0  # future: left out
    assert w["type_weight"].iloc[2] == threat.UNKNOWN_TYPE_WEIGHT
    assert bool(w["violent"].iloc[2]) and not bool(w["violent"].iloc[0])  # unknown counts as violent (safe side)


def test_in_memory_rows_without_date_or_fatalities_are_named():
    inc = incidents_at([100, 200, 300])
    inc["fatalities"] = [0.0, np.nan, 2.0]
    inc["date"] = [AS_OF, AS_OF, pd.NaT]
    with pytest.warns(UserWarning) as caught:
        w = threat.weigh_incidents(inc, AS_OF)
    messages = " | ".join(str(c.message) for c in caught)
    assert "fatalities missing in row 2 (id 'T2'); counted as 0" in messages
    assert "no date in row 3 (id 'T3'); left out" in messages
    assert list(w["status"]) == ["used", "used", "no date"]
    np.testing.assert_allclose(w["weight"], [1.0, 1.0, 0.0])


def test_weights_table_overrides_defaults(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("event_type,sub_event_type,weight\nprotests, peaceful protest ,0.9\nCurfew breach,,2\n")
    table = threat.read_weights(path)
    inc = incidents_at(
        [100, 300, 400],
        event_type=["Protests", "Curfew breach", "Protests"],
        sub_event_type=["Peaceful protest", "", "Protest with intervention"],
    )
    w = threat.weigh_incidents(inc, AS_OF, weights=table)
    np.testing.assert_allclose(w["type_weight"], [0.9, 2.0, 0.3])
    assert bool(w["violent"].iloc[1])  # a new type weighing >= 0.5 counts as violent
    # a whole-type row (blank sub-event) overrides the built-in sub-event rows of that type
    whole = tmp_path / "whole.csv"
    whole.write_text("event_type,sub_event_type,weight\nRiots,,2.0\n")
    riots = incidents_at(
        [100, 300], event_type=["Riots", "Riots"], sub_event_type=["Mob violence", "Violent demonstration"]
    )
    np.testing.assert_allclose(threat.weigh_incidents(riots, AS_OF, weights=whole)["type_weight"], [2.0, 2.0])
    bad = tmp_path / "bad.csv"
    bad.write_text("event_type,weight\nRiots,0.5\nBattles,heavy\n")
    with pytest.raises(InputError, match=r"bad.csv: row 2, column 'weight': weight 'heavy' is not a number >= 0"):
        threat.read_weights(bad)
    with pytest.raises(InputError, match="missing column 'weight'"):
        threat.read_weights(pd.DataFrame({"event_type": ["Riots"]}))


def _split_pieces(net, edge, frac):
    """Test oracle: the undirected road pieces with points inserted as nodes n, n+1, ... (written here, from
    scratch): arrays a, b, length (m), parent (canonical edge), and the node of every point."""
    canon = net.canonical_edge
    phys = net.undirected_edges
    cuts = {}
    for j, (e, f) in enumerate(zip(edge, frac, strict=True)):
        c = int(canon[e])
        cuts.setdefault(c, []).append((f if c == e else 1 - f, net.n_nodes + j))
    a, b, length, parent = [], [], [], []
    for c in phys.tolist():
        prev, prev_f = int(net.edge_u[c]), 0.0
        for f, node in sorted(cuts.get(c, [])):
            a.append(prev), b.append(node), length.append((f - prev_f) * net.edge_length[c]), parent.append(c)
            prev, prev_f = node, f
        a.append(prev), b.append(int(net.edge_v[c])), length.append((1 - prev_f) * net.edge_length[c])
        parent.append(c)
    a, b, length = np.array(a), np.array(b), np.array(length)
    n = net.n_nodes + len(edge)
    rows, cols, w = np.r_[a, b], np.r_[b, a], np.r_[length, length] + 1e-12
    order = np.lexsort((w, cols, rows))  # parallel pieces: keep the shortest
    first = np.r_[True, (np.diff(rows[order]) != 0) | (np.diff(cols[order]) != 0)]
    keep = order[first]
    matrix = sparse.csr_matrix((w[keep], (rows[keep], cols[keep])), shape=(n, n))
    return a, b, length, np.array(parent), matrix, net.n_nodes + np.arange(len(edge))


# --------------------------------------------------------------------------- network KDE vs brute force


def test_network_kde_matches_brute_force_on_real_streets(demo_walk):
    net = demo_walk
    g = _graph.undirected_graph(net)
    matrix = sparse.csr_matrix((g.data, g.indices, g.indptr), shape=(g.n, g.n))
    rng = np.random.default_rng(7)
    cand = rng.choice(len(g.a), 200, replace=False)
    # the closed form along a point's own piece assumes no shortcut between its ends
    d_ab = csgraph.dijkstra(matrix, indices=g.a[cand])[np.arange(len(cand)), g.b[cand]]
    pieces = cand[np.abs(d_ab - g.length[cand]) < 1e-6][:30]
    offsets = rng.uniform(0, 1, len(pieces)) * g.length[pieces]
    w = rng.uniform(0.5, 2.0, len(pieces))
    h = 150.0
    node_density, piece_mass = _kde.network_kde(g, pieces, offsets, w, h)

    # oracle: every point spliced in as a node, unbounded Dijkstra on the whole network, and the
    # density integrated numerically along every piece
    edge = g.parent[pieces]
    frac = offsets / net.edge_length[edge]
    sa, sb, slength, sparent, smatrix, nodes = _split_pieces(net, edge, frac)
    dist = csgraph.dijkstra(smatrix, indices=nodes)
    truth_nodes = (w[:, None] * quartic(dist[:, : net.n_nodes] / h)).sum(axis=0) / h
    np.testing.assert_allclose(node_density, truth_nodes, atol=1e-12)
    x = (np.arange(400) + 0.5) / 400  # midpoint rule, 400 samples per piece
    mass = np.zeros(len(sa))
    for i in range(len(nodes)):
        reach = np.flatnonzero(np.minimum(dist[i, sa], dist[i, sb]) < h)
        d = np.minimum(
            dist[i, sa[reach]][:, None] + x * slength[reach, None],
            dist[i, sb[reach]][:, None] + (1 - x) * slength[reach, None],
        )
        mass[reach] += w[i] * quartic(d / h).mean(axis=1) * slength[reach] / h
    truth = np.bincount(sparent, mass, minlength=net.n_edges)[g.parent]
    assert truth.sum() > 5
    np.testing.assert_allclose(piece_mass, truth, atol=5e-6)  # the numerical integration's own error


# --------------------------------------------------------------------------- Gi*


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")
def test_gi_star_equals_esda(demo_walk):
    phys, w = threat._band_weights(demo_walk, 120.0)
    assert (w != w.T).nnz == 0 and np.all(w.diagonal() == 1)
    # the band is right: midpoint-to-midpoint network distance <= 120 m, by brute force for 25 pieces
    half = np.full(len(phys), 0.5)
    *_, full, nodes = _split_pieces(demo_walk, phys, half)
    some = np.arange(0, len(phys), len(phys) // 25)[:25]
    d = csgraph.dijkstra(full, indices=nodes[some])[:, nodes]
    np.testing.assert_array_equal(w[some].toarray() > 0, d <= 120.0)

    rng = np.random.default_rng(3)
    y = rng.gamma(0.3, 2.0, len(phys)) * (rng.random(len(phys)) < 0.2)
    z, p = threat.getis_ord_star(y, w)
    ref = esda.G_Local(y, WSP(w).to_W(silence_warnings=True), transform="B", star=True, permutations=0)
    np.testing.assert_allclose(z, ref.Zs, rtol=1e-10, atol=1e-10)  # agreement with esda: to 1e-10
    np.testing.assert_allclose(p, 2 * ref.p_norm, rtol=1e-10, atol=1e-14)

    # permutation inference is esda's own, same seed
    small = w[:150][:, :150]
    zp, pp = threat.getis_ord_star(y[:150] + 0.1, small, permutations=99, seed=5)
    ref = esda.G_Local(
        y[:150] + 0.1, WSP(small).to_W(silence_warnings=True), transform="B", star=True, permutations=99, seed=5
    )
    np.testing.assert_allclose(zp, ref.Zs, rtol=1e-10)
    np.testing.assert_allclose(pp, np.minimum(1, 2 * ref.p_sim))


def test_hotspots_on_the_demo_find_kaisaniemi(demo_walk):
    inc = threat.layers.read_incidents(DEMO / "incidents.csv")
    res = threat.compute_threat(demo_walk, inc, "2026-11-20", cluster_permutations=199)
    hot = res.hotspots
    assert set(hot["significance"]) <= {"hot 99%", "hot 95%", "hot 90%"} and len(hot) > 20
    for col in ("u", "v", "key", "edge", "risk", "gi_z", "p_value", "significance"):
        assert col in hot.columns
    assert hot.crs.to_epsg() == 4326 and (hot["q_value"] < 0.10).all()
    # the escalating hotspot near Kaisaniemi (~60.1755 N, 24.9460 E) is among the hottest roads
    top = shapely.get_coordinates(
        shapely.line_interpolate_point(hot.geometry.iloc[:20].to_numpy(), 0.5, normalized=True)
    )
    dist_m = np.hypot((top[:, 0] - 24.9460) * 55_400, (top[:, 1] - 60.1755) * 111_200)
    assert np.median(dist_m) < 500
    # emerging space-time cluster: ends on as-of day, significant, around Kaisaniemi
    assert len(res.clusters) >= 1
    c = res.clusters.iloc[0]
    assert c["end_date"] == "2026-11-20" and c["days"] <= 14 and c["p_value"] <= 0.01
    centre = res.clusters.to_crs(demo_walk.crs).geometry.centroid.to_crs("EPSG:4326").iloc[0]
    assert math.hypot((centre.x - 24.9460) * 55_400, (centre.y - 60.1755) * 111_200) < 700
    # the planar grid keeps the weighted mass (per km² × cell area)
    g = res.grid
    used = res.incidents["weight"].sum()
    assert (g.values.sum() * (g.cell_m / 1000) ** 2) == pytest.approx(used, rel=1e-6)


# --------------------------------------------------------------------------- early warning


def test_surge_alerts_steady_background_does_not():
    net = straight_road(n_nodes=101)  # 10 km of street
    defenders = gpd.GeoDataFrame(
        {"id": ["A", "B", "C", "D"]},
        geometry=shapely.points(X0 + np.array([1000, 8000, 5000, 3000.0]), Y0 + 20),
        crs=CRS,
    ).to_crs("EPSG:4326")
    riot = {"event_type": "Riots", "sub_event_type": "Mob violence"}
    parts = [
        incidents_at([1200] * 5, ages=[0, 1, 2, 4, 6], **riot),  # A: surge, 200 m away
        incidents_at([1300], ages=[50], **riot),  # A: quiet baseline
        incidents_at([8300] * 14, ages=np.arange(0, 98, 7), **riot),  # B: one a week, steady
        incidents_at([5300], ages=[2], fatalities=1),  # C: deadly attack 300 m away
        incidents_at([3600], ages=[2], fatalities=1),  # D: the same 600 m away (beyond D/2)
    ]
    inc = pd.concat(parts, ignore_index=True)
    inc["incident_id"] = pd.array([f"I{i}" for i in range(len(inc))], dtype="string")
    alerts = threat.early_warning(net, gpd.GeoDataFrame(inc, crs="EPSG:4326"), defenders, AS_OF)
    assert list(alerts["defender_id"]) == ["A", "C"]
    a = alerts.set_index("defender_id")
    lam = 1.5 * 7 / 90  # (1 baseline event + 0.5) over 90 days, for 7 days
    p_hand = 1 - sum(math.exp(-lam) * lam**k / math.factorial(k) for k in range(5))
    assert a.loc["A", "p_value"] == pytest.approx(p_hand, rel=1e-9)
    assert a.loc["A", "recent_count"] == 5 and a.loc["A", "baseline_count"] == 1
    assert a.loc["A", "level"] == "high" and a.loc["A", "score"] > a.loc["C", "score"]
    assert a.loc["A", "reason"] == (
        "5 violent events within 1,000 m in the last 7 days vs. 0.1/week before; nearest 200 m on Testgatan"
    )
    assert a.loc["C", "severe_count"] == 1 and a.loc["C", "level"] == "high"
    assert a.loc["C", "reason"].endswith("nearest 300 m on Testgatan; 1 severe within 500 m (1 killed)")
    # B: 1 this week vs 13 in the 90 days before: p = P(X >= 1 | 13.5·7/90) ≈ 0.65, no alert
    for col in alerts.columns:
        assert col not in ("geometry", "latitude", "longitude", "x", "y")


def test_early_warning_needs_dates():
    net = straight_road()
    inc = incidents_at([100])
    inc["date"] = pd.NaT
    d = gpd.GeoDataFrame({"id": ["A"]}, geometry=shapely.points([X0 + 100], [Y0]), crs=CRS)
    with pytest.raises(InputError, match="no dates; early warning needs an event date"):
        quiet(threat.early_warning, net, inc, d)


# --------------------------------------------------------------------------- space-time scan


def test_space_time_scan_finds_an_injected_cluster_and_nothing_in_noise():
    rng = np.random.default_rng(11)
    n_days = 120
    x, y = rng.uniform(0, 4000, 400), rng.uniform(0, 4000, 400)
    day = rng.integers(0, n_days, 400)
    assert all(c.p_value > 0.05 for c in space_time_scan(x, y, day, n_days, permutations=199, seed=1))
    cx, cy = 1000 + rng.normal(0, 80, 20), 1000 + rng.normal(0, 80, 20)
    found = space_time_scan(
        np.r_[x, cx], np.r_[y, cy], np.r_[day, rng.integers(n_days - 4, n_days, 20)], n_days, permutations=199, seed=1
    )
    best = found[0]
    assert best.p_value == pytest.approx(1 / 200) and best.days <= 14 and best.observed >= 20
    assert best.relative_risk > 3
    centre = (np.array(best.centre_cell) + 0.5) * 250
    assert np.hypot(*(centre - 1000)) < 400


# --------------------------------------------------------------------------- risk files


def test_edge_risk_round_trip_and_wrong_network(tmp_path):
    net = straight_road()
    res = threat.compute_threat(net, incidents_at([1050, 420]), AS_OF, hotspots=False, clusters=False)
    frame = res.edge_risk
    assert list(frame.columns[:5]) == ["u", "v", "key", "edge", "risk"] and frame.crs.to_epsg() == 4326
    assert len(frame) == net.n_edges and (frame.geometry.geom_type == "LineString").all()
    path = _io.write_geojson(tmp_path / "edge_risk.geojson", frame)
    np.testing.assert_array_equal(threat.read_risk(path, net), res.risk)
    np.testing.assert_array_equal(threat.risk_array(res, net), res.risk)
    np.testing.assert_array_equal(threat.risk_array(str(path), net), res.risk)
    other = straight_road(n_nodes=5)
    other.node_id = other.node_id + 1000
    with pytest.raises(InputError, match=r"no edge u=1, v=2, key=0 in this road network"):
        threat.read_risk(path, other)
    with pytest.raises(InputError, match="one value per edge"):
        threat.risk_array(np.zeros(3), net)


def test_far_away_incidents_are_named():
    net = straight_road()
    inc = incidents_at([1000, 900, 800], y=np.array([0.0, 0.0, 5000.0]))
    with pytest.warns(UserWarning, match=r"1 incident\(s\) lie farther than 500 m .* row 3 \(id 'T3'\) 5,000 m"):
        res = threat.compute_threat(net, inc, AS_OF, hotspots=False, clusters=False, grid=False)
    assert list(res.incidents["status"]) == ["used", "used", "off network"]
    with pytest.raises(InputError, match="farther than"):
        threat.compute_threat(net, incidents_at([1000], y=80_000.0), AS_OF)


# --------------------------------------------------------------------------- CLI


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "havenmap.cli", *args], capture_output=True, text=True, timeout=300)


NET_ARGS = ("--network", str(DEMO / "helsinki.osm.pbf"), "--network-type", "walk")


def test_cli_threat_and_alerts_on_the_demo(tmp_path):
    out = tmp_path / "threat"
    proc = run(
        "threat", *NET_ARGS, "--incidents", str(DEMO / "incidents.csv"), "--as-of", "2026-11-20", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "hot road pieces" in proc.stdout and "emerging cluster" in proc.stdout
    risk = gpd.read_file(out / "edge_risk.geojson")
    assert risk.crs.to_epsg() == 4326 and {"u", "v", "key", "risk"} <= set(risk.columns)
    assert (risk["risk"] >= 0).all() and (risk["risk"] > 0).mean() > 0.5
    hot = gpd.read_file(out / "hotspots.geojson")
    assert len(hot) and set(hot["significance"]) <= {"hot 99%", "hot 95%", "hot 90%"}
    assert len(gpd.read_file(out / "clusters.geojson")) >= 1
    assert (out / "threat_map.html").exists()

    alerts_csv = tmp_path / "alerts.csv"
    proc = run(
        "alerts",
        *NET_ARGS,
        "--incidents",
        str(DEMO / "incidents.csv"),
        "--defenders",
        str(DEMO / "defenders.csv"),
        "--as-of",
        "2026-11-20",
        "--distance-m",
        "400",
        "--out",
        str(alerts_csv),
    )
    assert proc.returncode == 0, proc.stderr
    assert "D049" in proc.stderr  # offshore defenders are named, not assessed
    table = pd.read_csv(alerts_csv, dtype={"defender_id": str})
    body = json.loads(alerts_csv.with_suffix(".json").read_text())
    assert body["as_of"] == "2026-11-20" and [a["defender_id"] for a in body["alerts"]] == list(table["defender_id"])
    assert {"defender_id", "score", "level", "reason", "recent_count", "baseline_count"} <= set(table.columns)
    assert table["score"].is_monotonic_decreasing and 0 < len(table) < 48
    assert not ({"D049", "D050"} & set(table["defender_id"]))
    assert not ({"latitude", "longitude", "lat", "lon", "geometry"} & set(table.columns))
    assert table["reason"].str.contains("violent event").all()
    assert alerts_csv.stat().st_mode & 0o077 == 0
    # defenders nearest Kaisaniemi (the surge) top the list
    d = pd.read_csv(DEMO / "defenders.csv", dtype={"id": str}).set_index("id")
    top = d.loc[table["defender_id"].iloc[:5]]
    assert np.all(np.hypot((top["longitude"] - 24.9460) * 55_400, (top["latitude"] - 60.1755) * 111_200) < 500)
    # no defender coordinates anywhere in the outputs
    text = alerts_csv.read_text() + alerts_csv.with_suffix(".json").read_text()
    assert "60.17908" not in text and "24.95133" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--as-of", "yesterday"), "--as-of 'yesterday' is not a date"),
        (("--weights", "{bad_weights}"), "row 1, column 'weight': weight '-1' is not a number >= 0"),
        (("--incidents", "{far}"), "farther than"),
        (("--method", "etas"), "'etas' is not one of 'mix', 'kde'"),
    ],
)
def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, args, message):
    bad_weights = tmp_path / "w.csv"
    bad_weights.write_text("event_type,sub_event_type,weight\nRiots,,-1\n")
    far = tmp_path / "far.csv"
    far.write_text(
        "id,date,event_type,latitude,longitude\n1,2026-11-01,Riots,-33.9,18.4\n2,2026-11-02,Riots,-33.9,18.5\n"
    )
    files = {"bad_weights": bad_weights, "far": far}
    args = tuple(a.format(**files) for a in args)
    base = {"--incidents": str(DEMO / "incidents.csv")}
    if "--incidents" in args:
        base = {}
    flat = [x for kv in base.items() for x in kv]
    proc = run("threat", *NET_ARGS, *flat, *args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("havenmap: error")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_cli_alerts_refuses_a_json_out(tmp_path):
    proc = run(
        "alerts",
        *NET_ARGS,
        "--incidents",
        str(DEMO / "incidents.csv"),
        "--defenders",
        str(DEMO / "defenders.csv"),
        "--out",
        str(tmp_path / "alerts.json"),
    )
    assert proc.returncode == 2 and "name the CSV file" in proc.stderr


def test_too_few_incidents_give_no_hotspots_but_a_warning():
    net = straight_road()
    with pytest.warns(UserWarning, match="too few for a hotspot test"):
        res = threat.compute_threat(net, incidents_at([1050, 420]), AS_OF, clusters=False)
    assert res.gi is None and len(res.hotspots) == 0 and (res.risk > 0).any()
