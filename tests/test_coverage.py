"""Coverage, N-1, closures impact and service areas against networkx oracles on real OSM extracts."""

from __future__ import annotations

import itertools
import json

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from shapely.ops import substring

from havenmap import costs
from havenmap import coverage as hc
from havenmap.costs import cost_weights
from havenmap.havens import nearest_havens
from havenmap.network import from_graph
from havenmap.snap import snap_points

from ._oracle import random_points_on_edges, split_graph


# ---------------------------------------------------------------------- oracles
def _oracle_routes(net, defenders, havens, weights):
    """{defender: sorted [(cost, haven, physical time)]} by networkx Dijkstra from every haven (reversed graph).

    The physical time is summed along the networkx path that minimises ``weights``.
    """
    layers = [snap_points(net, defenders), snap_points(net, havens)]
    g_w = split_graph(net, layers, weights)
    g_t = split_graph(net, layers, net.edge_time)
    closed = [(u, v, k) for u, v, k, w in g_w.edges(keys=True, data="w") if not np.isfinite(w)]
    g_w.remove_edges_from(closed)
    reverse = g_w.reverse(copy=False)
    out = {d: [] for d in defenders["id"]}
    for h in havens["id"]:
        if h not in g_w:
            continue
        dist, paths = nx.single_source_dijkstra(reverse, h, weight="w")
        for d in out:
            if d in dist:
                path = paths[d][::-1]  # d -> ... -> h
                t = 0.0
                for a, b in itertools.pairwise(path):
                    keys = g_w[a][b]
                    best = min(keys, key=lambda k, a=a, b=b: g_w[a][b][k]["w"])
                    t += g_t[a][b][best]["w"]
                out[d].append((dist[d], h, t))
    return {d: sorted(v) for d, v in out.items()}


def _node_oracle(net, havens, weights):
    """networkx cost from every network node to its nearest haven (havens spliced into the graph)."""
    g = split_graph(net, [snap_points(net, havens)], weights)
    g.remove_edges_from([(u, v, k) for u, v, k, w in g.edges(keys=True, data="w") if not np.isfinite(w)])
    sources = [h for h in havens["id"] if h in g]
    return nx.multi_source_dijkstra_path_length(g.reverse(copy=False), sources, weight="w")


def _layers(net, n_def=120, n_hav=8, seed=1):
    return random_points_on_edges(net, n_def, "d", seed), random_points_on_edges(net, n_hav, "h", seed + 50)


# ---------------------------------------------------------------------- every node
@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_node_reach_agrees_with_networkx(fixture, request):
    net = request.getfixturevalue(fixture)
    _, havens = _layers(net, n_hav=9, seed=4)
    reach = hc.node_reach(net, havens)
    expected = _node_oracle(net, havens, net.edge_time)
    got = reach.time_s[:, 0]
    exp = np.array([expected.get(i, np.inf) for i in range(net.n_nodes)])
    assert np.isfinite(exp).sum() > 0.5 * net.n_nodes
    np.testing.assert_allclose(got, exp, rtol=1e-9, atol=1e-6)
    assert ((reach.haven[:, 0] >= 0) == np.isfinite(exp)).all()


# ---------------------------------------------------------------------- coverage
def _check_coverage(net, defenders, havens, weights, minutes=(1, 2, 4)):
    cov = hc.coverage(net, defenders, havens, minutes, edge_weights=weights)
    oracle = _oracle_routes(net, defenders, havens, net.edge_time if weights is None else weights)
    frame = cov.defenders.set_index("defender_id")
    for d, routes in oracle.items():
        row = frame.loc[d]
        if not routes:
            assert not row["reachable"] and gpd.pd.isna(row["haven_id"])
            continue
        cost, _, t = routes[0]
        assert row["reachable"]
        assert row["travel_time_s"] == pytest.approx(t, rel=1e-7, abs=1e-6)
        # the haven found is one the oracle reaches at the same cost (ties may pick another)
        assert any(np.isclose(c, cost, rtol=1e-9) and h == row["haven_id"] for c, h, _ in routes)
        if len(routes) > 1:
            assert row["second_travel_time_s"] == pytest.approx(routes[1][2], rel=1e-7, abs=1e-6)
        else:
            assert np.isnan(row["second_travel_time_s"]) and gpd.pd.isna(row["second_haven_id"])
    best = np.array([oracle[d][0][2] if oracle[d] else np.inf for d in defenders["id"]])
    bands = cov.bands().set_index("minutes")
    for m in minutes:
        assert bands.loc[m, "covered"] == int((best <= 60 * m).sum())
        assert bands.loc[m, "share"] == pytest.approx((best <= 60 * m).mean())
    return cov


@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_coverage_agrees_with_networkx(fixture, request):
    net = request.getfixturevalue(fixture)
    defenders, havens = _layers(net)
    minutes = (1, 2, 4) if fixture == "aguascalientes_drive" else (5, 10, 15)
    cov = _check_coverage(net, defenders, havens, None, minutes)
    # per haven: the defenders it serves are those whose best haven it is
    served = cov.defenders.groupby("haven_id").size()
    assert cov.havens.set_index("haven_id")["served"].loc[served.index].tolist() == served.tolist()
    assert cov.havens["served"].sum() == cov.defenders["reachable"].sum()


def test_coverage_with_danger_and_length_costs_reports_physical_time(aguascalientes_drive):
    net = aguascalientes_drive
    defenders, havens = _layers(net, n_def=80, seed=7)
    risk = np.random.default_rng(3).uniform(0.0, 2.0, net.n_edges)
    danger = cost_weights(net, risk=risk, alpha=3.0, max_risk=1.8)
    _check_coverage(net, defenders, havens, danger)
    _check_coverage(net, defenders, havens, net.edge_length.copy())


def test_coverage_with_closures_agrees_with_networkx_without_those_edges(aguascalientes_drive):
    net = aguascalientes_drive
    defenders, havens = _layers(net, n_def=100, seed=9)
    closed = np.random.default_rng(5).random(net.n_edges) < 0.12
    weights = net.edge_time.copy()
    weights[closed] = np.inf
    cov = _check_coverage(net, defenders, havens, weights)
    assert (~cov.defenders["reachable"]).sum() > 0  # the closures do cut someone off


def test_coverage_matches_nearest_havens(demo_walk):
    net = demo_walk
    defenders, havens = _layers(net, n_def=60, seed=12)
    cov = hc.coverage(net, defenders, havens, (5, 10))
    near = nearest_havens(net, defenders, havens, k=2)
    for rank, col in ((1, "travel_time_s"), (2, "second_travel_time_s")):
        ref = near.loc[near["rank"] == rank].set_index("defender_id").loc[defenders["id"], "travel_time_s"]
        np.testing.assert_allclose(cov.defenders[col].to_numpy(), ref.to_numpy(), rtol=1e-9, atol=1e-6)


def test_off_network_defender_and_haven(aguascalientes_drive):
    net = aguascalientes_drive
    defenders, havens = _layers(net, n_def=10, n_hav=3, seed=2)
    far = gpd.GeoSeries([shapely.Point(-102.0, 22.5)], crs=4326)
    defenders = gpd.GeoDataFrame(
        {"id": [*defenders["id"], "far"]}, geometry=[*defenders.geometry, far.iloc[0]], crs=4326
    )
    havens = gpd.GeoDataFrame({"id": [*havens["id"], "far_h"]}, geometry=[*havens.geometry, far.iloc[0]], crs=4326)
    with pytest.warns(UserWarning, match="far"):
        cov = hc.coverage(net, defenders, havens, (5,))
    row = cov.defenders.set_index("defender_id").loc["far"]
    assert not row["reachable"] and row["reason"].startswith("off network") and np.isnan(row["band_min"])
    assert cov.havens.set_index("haven_id").loc["far_h", "served"] == 0
    assert list(cov.defenders.columns) == hc.COVERAGE_COLUMNS


# ---------------------------------------------------------------------- N-1
@pytest.mark.parametrize(
    ("fixture", "model"),
    [
        ("aguascalientes_drive", "time"),
        ("demo_walk", "time"),
        ("aguascalientes_drive", "length"),
        ("demo_walk", "danger"),
    ],
)
def test_n_minus_1_equals_recomputing_without_each_haven(fixture, model, request):
    net = request.getfixturevalue(fixture)
    defenders, havens = _layers(net, n_def=150, n_hav=7, seed=21)
    minutes = (0.5, 1, 2) if fixture == "aguascalientes_drive" else (3, 6, 10)
    kw: dict = {"cost": "length"} if model == "length" else {}
    if model == "danger":  # routes chosen by danger: the second-best haven may be physically nearer
        risk = np.random.default_rng(4).gamma(0.5, 4.0, net.n_edges)
        kw["edge_weights"] = costs.danger_weights(net, risk, alpha=2.0)
    cov = hc.coverage(net, defenders, havens, minutes, **kw)
    n1 = hc.n_minus_1(cov).set_index("haven_id")
    widest = 60 * max(minutes)
    before = cov.best_time
    assert n1["lose_all_cover"].sum() + n1[[f"lost_{m:g}" for m in minutes]].to_numpy().sum() > 0
    for h in havens["id"]:
        brute = hc.coverage(net, defenders, havens.loc[havens["id"] != h], minutes, **kw)
        after = brute.best_time
        row = n1.loc[h]
        for m in minutes:
            assert row[f"covered_{m:g}"] == int((after <= 60 * m).sum())
            assert row[f"lost_{m:g}"] == int(((before <= 60 * m) & (after > 60 * m)).sum())
        assert row["cut_off"] == int((np.isfinite(before) & ~np.isfinite(after)).sum())
        losing = (before <= widest) & (after > widest)
        assert row["lose_all_cover"] == int(losing.sum())
        ids = set(row["lose_all_cover_ids"].split(";")) - {""}
        assert ids == set(defenders["id"].to_numpy()[losing])
        # the exact new best time of everyone: the second-best when h was best
        derived = np.where(cov.best == list(havens["id"]).index(h), cov.second_time, cov.best_time)
        np.testing.assert_allclose(derived, after, rtol=1e-9)


# ---------------------------------------------------------------------- closures impact
def _street_graph():
    """a —1 km— b —0.5 km— c, all two-way at 10 m/s, projected CRS."""
    g = nx.MultiDiGraph(crs="EPSG:32635")
    g.add_node(1, x=500000.0, y=6670000.0)
    g.add_node(2, x=501000.0, y=6670000.0)
    g.add_node(3, x=501000.0, y=6670500.0)
    for u, v, length in ((1, 2, 1000.0), (2, 1, 1000.0), (2, 3, 500.0), (3, 2, 500.0)):
        g.add_edge(u, v, length=length, travel_time=length / 10.0)
    return g


def _pts(rows, crs="EPSG:32635"):
    return gpd.GeoDataFrame({"id": [r[0] for r in rows]}, geometry=[shapely.Point(r[1], r[2]) for r in rows], crs=crs)


def test_closures_impact_hand_worked():
    net = from_graph(_street_graph())
    havens = _pts([("west", 500000.0, 6670000.0), ("north", 501000.0, 6670500.0)])
    defenders = _pts([("d1", 500100.0, 6670000.0), ("d2", 500900.0, 6670000.0), ("d3", 501000.0, 6670400.0)])
    # d1: 10 s to west; d2: 10 + 50 = 60 s to north; d3: 10 s to north
    open_cov = hc.coverage(net, defenders, havens, (1,))
    assert open_cov.defenders["travel_time_s"].tolist() == pytest.approx([10.0, 60.0, 10.0])
    # a checkpoint on b—c (the spur): d2 must go west (90 s), d3 is cut off (stands on the closed road)
    barriers = _pts([("cp", 501003.0, 6670250.0)])
    closed = hc.coverage(net, defenders, havens, (1,), edge_weights=cost_weights(net, closures=barriers))
    impact = hc.closures_impact(open_cov, closed).set_index("defender_id")
    assert list(impact.index) == ["d3", "d2"]
    assert impact.loc["d3", "cut_off"] and impact.loc["d3", "haven_without_closures"] == "north"
    assert impact.loc["d3", "time_without"] == pytest.approx(10.0) and np.isnan(impact.loc["d3", "time_with"])
    assert impact.loc["d2", "haven_with_closures"] == "west"
    assert impact.loc["d2", "time_with"] == pytest.approx(90.0) and impact.loc["d2", "band_with"] != 1.0


# ---------------------------------------------------------------------- service areas
def _edge_end_times(net, havens, weights):
    """Oracle per haven: networkx time from every node to it, and where it sits (havens spliced in)."""
    snapped = snap_points(net, havens)
    g = split_graph(net, [snapped], weights)
    g.remove_edges_from([(u, v, k) for u, v, k, w in g.edges(keys=True, data="w") if not np.isfinite(w)])
    out = {}
    for h, e_h, f_h in zip(snapped["id"], snapped["edge"], snapped["edge_fraction"], strict=True):
        dist = nx.single_source_dijkstra_path_length(g.reverse(copy=False), h, weight="w")
        out[h] = (np.array([dist.get(i, np.inf) for i in range(net.n_nodes)]), int(e_h), float(f_h))
    return out


def _reached_intervals(net, weights, node_t, e_h, f_h, limit):
    """Exact reached stretches (rep edge, f_lo, f_hi) of every physical road within ``limit`` seconds."""
    e = net.undirected_edges
    twin = net.edge_twin[e]
    w = weights[e]
    w_back = np.where(twin >= 0, weights[np.maximum(twin, 0)], np.inf)
    dv, du = node_t[net.edge_v[e]], node_t[net.edge_u[e]]
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = [
            (e, np.clip(1 - (limit - dv) / w, 0, 1), np.ones(len(e)), dv <= limit),  # forward to v
            (e, np.zeros(len(e)), np.clip((limit - du) / w_back, 0, 1), du <= limit),
        ]  # back to u
    out = [(ee[ok], lo[ok], hi[ok]) for ee, lo, hi, ok in rows]
    same = np.flatnonzero(e == e_h)
    for i in same:  # the haven's own road, travelled straight to it
        out.append((e[[i]], [max(f_h - limit / w[i], 0.0)], [f_h]))
        if np.isfinite(w_back[i]):
            out.append((e[[i]], [f_h], [min(f_h + limit / w_back[i], 1.0)]))
    return [np.concatenate([np.asarray(x[k]) for x in out]) for k in range(3)]


def _point_times(net, havens, weights, n_per_edge=7):
    """Oracle earliest time to each haven of points along every road (network rep edges)."""
    fr = np.linspace(0.0, 1.0, n_per_edge + 2)[1:-1]
    edges = np.repeat(net.undirected_edges, len(fr))
    fracs = np.tile(fr, len(net.undirected_edges))
    twin = net.edge_twin[edges]
    out = {}
    for h, (node_t, e_h, f_h) in _edge_end_times(net, havens, weights).items():
        t = (1 - fracs) * weights[edges] + node_t[net.edge_v[edges]]
        back = np.where(twin >= 0, fracs * weights[np.maximum(twin, 0)] + node_t[net.edge_u[edges]], np.inf)
        t = np.minimum(t, back)
        direct = np.where(
            fracs <= f_h,
            (f_h - fracs) * weights[edges],
            np.where(twin >= 0, (fracs - f_h) * weights[np.maximum(twin, 0)], np.inf),
        )
        out[h] = np.nan_to_num(np.where(edges == e_h, np.minimum(t, direct), t), nan=np.inf)
    return edges, fracs, out


@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_reach_edges_are_exactly_the_reachable_pieces(fixture, request):
    net = request.getfixturevalue(fixture)
    _, havens = _layers(net, n_hav=4, seed=31)
    max_min = 1.5 if fixture == "aguascalientes_drive" else 6.0
    pieces = hc.reach_edges(net, havens, max_min)
    edges, fracs, oracle = _point_times(net, havens, net.edge_time)
    limit = 60 * max_min
    for h, expected in oracle.items():
        got = _times_from_pieces(net, pieces.loc[pieces["haven_id"] == h], edges, fracs)
        inside = expected <= limit
        assert inside.sum() > 20
        np.testing.assert_allclose(got[inside], expected[inside], rtol=1e-9, atol=1e-6)
        assert (got[~inside] > limit - 1e-6).all()  # nothing beyond the band is listed as within it


def _times_from_pieces(net, pieces, edges, fracs):
    """Smallest time the listed pieces give each sample point (edge, fraction) of road; inf if none covers it."""
    e = pieces["edge"].to_numpy()
    f0, f1 = pieces["fraction_from"].to_numpy(), pieces["fraction_to"].to_numpy()
    t0, t1 = pieces["time_from_s"].to_numpy(), pieces["time_to_s"].to_numpy()
    # express every piece on the sampled (undirected) edge: a twin's fraction f is 1 - f there
    rep = np.isin(e, net.undirected_edges)
    e_rep = np.where(rep, e, net.edge_twin[e])
    frame = gpd.pd.DataFrame({"edge": e_rep, "f0": f0, "f1": f1, "t0": t0, "t1": t1, "flip": ~rep})
    samples = gpd.pd.DataFrame({"edge": edges, "f": fracs, "i": np.arange(len(edges))})
    both = samples.merge(frame, on="edge")
    f = np.where(both["flip"], 1 - both["f"], both["f"])
    within = (f >= both["f0"] - 1e-12) & (f <= both["f1"] + 1e-12)
    span = np.maximum(both["f1"] - both["f0"], 1e-12)
    t = both["t1"] + (both["t0"] - both["t1"]) * (both["f1"] - f) / span
    best = gpd.pd.Series(np.where(within, t, np.inf)).groupby(both["i"].to_numpy()).min()
    out = np.full(len(edges), np.inf)
    out[best.index.to_numpy()] = best.to_numpy()
    return out


@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_service_area_polygons_follow_the_reached_pieces(fixture, request):
    net = request.getfixturevalue(fixture)
    _, havens = _layers(net, n_hav=3, seed=41)
    minutes = (0.5, 1.0) if fixture == "aguascalientes_drive" else (3.0, 6.0)
    buffer_m = 30.0
    areas = hc.service_areas(net, havens, minutes, buffer_m=buffer_m)
    assert list(areas.columns) == ["haven_id", "minutes", "geometry"] and areas.crs.equals("EPSG:4326")
    areas = areas.to_crs(net.crs)
    edges, fracs, oracle = _point_times(net, havens, net.edge_time, n_per_edge=9)
    ends = _edge_end_times(net, havens, net.edge_time)
    pts = _points_at(net, edges, fracs)
    cell = buffer_m / 3
    for h, t in oracle.items():
        for m in minutes:
            poly = areas.loc[(areas["haven_id"] == h) & (areas["minutes"] == m), "geometry"].iloc[0]
            assert poly.geom_type in ("Polygon", "MultiPolygon") and poly.is_valid
            reached = t <= 60 * m
            assert reached.sum() > 5
            # every reached point of road is inside its band's polygon, with (nearly) the buffer around it
            assert shapely.contains_xy(poly.buffer(1e-6), pts[reached, 0], pts[reached, 1]).all()
            some = shapely.points(pts[np.flatnonzero(reached)[:: max(1, reached.sum() // 40)]])
            assert shapely.contains(poly.buffer(1e-6), shapely.buffer(some, buffer_m - 1.2 * cell)).all()
            # the exact reached pieces (oracle), and points of road well beyond them, are outside
            exact = _exact_reached_lines(net, *_reached_intervals(net, net.edge_time, *ends[h], 60 * m))
            _, dist = exact.query_nearest(shapely.points(pts), return_distance=True, all_matches=False)
            far = ~reached & (dist > buffer_m + 2.5 * cell)
            assert far.sum() > 5
            assert not shapely.contains_xy(poly, pts[far, 0], pts[far, 1]).any()
        # bands are nested (up to the outline simplification, half a grid cell)
        small, big = (
            areas.loc[(areas["haven_id"] == h) & (areas["minutes"] == m), "geometry"].iloc[0] for m in minutes
        )
        assert small.difference(big.buffer(cell / 2 + 1e-6)).area < 1e-6 * small.area
        assert small.area < big.area


def _points_at(net, edges, fracs):
    lines = net.edge_geometries(edges)
    return shapely.get_coordinates(shapely.line_interpolate_point(lines, fracs, normalized=True))


def _exact_reached_lines(net, edges, lo, hi):
    """STRtree of the reached stretches of road (shapely substring of each edge's geometry)."""
    lines = net.edge_geometries(edges)
    parts = [substring(line, a, b, normalized=True) for line, a, b in zip(lines, lo, hi, strict=True) if b >= a]
    return shapely.STRtree(parts)


def test_service_area_respects_closures_and_off_network_havens(aguascalientes_drive):
    net = aguascalientes_drive
    _, havens = _layers(net, n_hav=2, seed=51)
    open_areas = hc.service_areas(net, havens, (1.0,)).to_crs(net.crs)
    weights = net.edge_time.copy()
    weights[np.random.default_rng(1).random(net.n_edges) < 0.3] = np.inf
    closed_areas = hc.service_areas(net, havens, (1.0,), edge_weights=weights).to_crs(net.crs)
    for a, b in zip(open_areas.geometry, closed_areas.geometry, strict=True):
        # fewer roads reached; the closed-road area lies within the open one (up to the grids' cells)
        assert b.area < a.area and b.difference(a.buffer(2 * 50.0 / 3)).area < 1.0
    far = gpd.GeoDataFrame({"id": ["far"]}, geometry=[shapely.Point(-102.0, 22.5)], crs=4326)
    both = gpd.GeoDataFrame({"id": [*havens["id"], "far"]}, geometry=[*havens.geometry, far.geometry[0]], crs=4326)
    with pytest.warns(UserWarning, match="far"):
        areas = hc.service_areas(net, both, (1.0,))
    assert areas.set_index("haven_id").loc["far", "geometry"].is_empty


def test_parse_minutes():
    assert hc.parse_minutes("15, 5,10") == (5.0, 10.0, 15.0)
    assert hc.parse_minutes([2.5]) == (2.5,)
    for bad in ("5,x", "-1", "0", ""):
        with pytest.raises(hc.InputError, match="--minutes"):
            hc.parse_minutes(bad)


# ---------------------------------------------------------------------- CLI
def test_coverage_command_writes_every_output(tmp_path, aguascalientes_drive):
    from typer.testing import CliRunner

    from havenmap.cli import app
    from havenmap.costs import closure_mask

    from .conftest import shared_file

    net = aguascalientes_drive
    defenders, havens = _layers(net, n_def=40, n_hav=4, seed=61)
    defenders.to_file(tmp_path / "d.geojson")
    havens.to_file(tmp_path / "h.geojson")
    line = shapely.LineString(net.node_xy[[0, net.n_nodes // 2]])
    gpd.GeoDataFrame({"id": ["cut"]}, geometry=[line], crs=net.crs).to_file(tmp_path / "closures.geojson")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "coverage",
            "-n",
            str(shared_file("aguascalientes.osm.bz2")),
            "-d",
            str(tmp_path / "d.geojson"),
            "--havens",
            str(tmp_path / "h.geojson"),
            "--minutes",
            "1,2",
            "--closures",
            str(tmp_path / "closures.geojson"),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("service_areas.geojson", "coverage.csv", "coverage.json", "n_minus_1.csv", "closures_impact.csv"):
        assert (out / name).exists() and (out / name).stat().st_mode & 0o077 == 0
    summary = json.loads((out / "coverage.json").read_text())
    weights = net.edge_time.copy()
    weights[closure_mask(net, tmp_path / "closures.geojson")] = np.inf
    cov = hc.coverage(net, defenders, havens, (1, 2), edge_weights=weights)
    assert summary["defenders"] == 40
    assert summary["bands"]["1"]["covered"] == cov.bands()["covered"].iat[0]
    assert summary["bands"]["2"]["share"] == pytest.approx(cov.bands()["share"].iat[1], abs=1e-6)
    csv = (out / "coverage.csv").read_text().splitlines()[0].split(",")
    assert csv[:6] == [
        "defender_id",
        "haven_id",
        "travel_time_s",
        "second_haven_id",
        "second_travel_time_s",
        "reachable",
    ]
    areas = gpd.read_file(out / "service_areas.geojson")
    assert len(areas) == 8 and set(areas["minutes"]) == {1.0, 2.0}
