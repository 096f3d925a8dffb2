"""Coverage, N-1, closures impact and service areas against the independent networkx oracle on real OSM
extracts, with defenders and havens at intersections (one-way ones included), mid-street and at borders."""

from __future__ import annotations

import json

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from shapely.ops import substring

from havenmap import _areas, costs
from havenmap import coverage as hc
from havenmap.costs import cost_weights
from havenmap.havens import nearest_havens
from havenmap.network import from_graph

from ._oracle import Oracle, Place, Streets, edge_keys, piece_times, to_gdf

WALK_MIX = {"node": 0.35, "mid": 0.45, "beyond": 0.1, "border": 0.1}  # walk: no one-way streets


# ---------------------------------------------------------------------- points and the oracle
class _Layers:
    """Defenders and havens placed where bugs live (intersections, one-way ones included), with their truth."""

    def __init__(self, net, n_def: int, n_hav: int, seed: int, haven_mix: dict | None = None):
        st = Streets(net.to_networkx())
        mix = None if st.oneway else WALK_MIX
        self.net = net
        self.defender_places = st.sample("d", n_def, seed, mix)
        self.haven_places = st.sample("h", n_hav, seed + 50, haven_mix if st.oneway and haven_mix else mix)
        self.defenders = to_gdf(self.defender_places, net.crs)
        self.havens = to_gdf(self.haven_places, net.crs)

    def __iter__(self):  # defenders, havens = _layers(...)
        return iter((self.defenders, self.havens))

    def oracle(self, weights=None, cost: str = "time") -> Oracle:
        return Oracle.for_network(self.net, cost, weights)

    def routes(self, oracle: Oracle, without: str | None = None) -> dict[str, list[tuple]]:
        """{defender: [(cost, physical time, length, haven), ...] every reachable haven, cheapest first}."""
        havens = [h for h in self.haven_places if h.id != without]
        return oracle.nearest(self.defender_places, havens, len(havens))


_CACHE: dict = {}


def _layers(net, n_def=120, n_hav=8, seed=1, haven_mix=None) -> _Layers:
    key = (id(net), n_def, n_hav, seed, str(haven_mix))
    if key not in _CACHE:
        _CACHE[key] = _Layers(net, n_def, n_hav, seed, haven_mix)
    return _CACHE[key]


# havens where one-way streets end or start (a haven at the end of one is reached from every street there)
HAVENS_AT_ONE_WAY_NODES = {"oneway_end": 0.5, "near_node": 0.2, "mid": 0.3}


# ---------------------------------------------------------------------- every node
@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_node_reach_agrees_with_networkx(fixture, request):
    net = request.getfixturevalue(fixture)
    lay = _layers(net, n_hav=9, seed=4, haven_mix=HAVENS_AT_ONE_WAY_NODES)
    reach = hc.node_reach(net, lay.havens)
    oracle = lay.oracle()
    exp = np.min([oracle.node_costs(net, h) for h in lay.haven_places], axis=0)
    got = reach.time_s[:, 0]
    assert np.isfinite(exp).sum() > 0.5 * net.n_nodes
    wrong = ~np.isclose(got, exp, rtol=1e-9, atol=1e-6) & ~(np.isinf(got) & np.isinf(exp))
    examples = [f"node {net.node_id[i]}: expected {exp[i]:.3f} s, got {got[i]:.3f} s" for i in np.flatnonzero(wrong)]
    assert not wrong.any(), f"{wrong.sum()} of {net.n_nodes} nodes wrong, e.g. " + "; ".join(examples[:5])
    assert ((reach.haven[:, 0] >= 0) == np.isfinite(exp)).all()


# ---------------------------------------------------------------------- coverage
def _check_coverage(lay: _Layers, weights, minutes=(1, 2, 4), cost: str = "time"):
    net = lay.net
    cov = hc.coverage(net, lay.defenders, lay.havens, minutes, cost=cost, edge_weights=weights)
    oracle = lay.routes(lay.oracle(weights, cost))
    frame = cov.defenders.set_index("defender_id")
    where = {p.id: p for p in lay.defender_places}
    failures = []
    for d, routes in oracle.items():
        row = frame.loc[d]
        if not routes:
            if row["reachable"] or not gpd.pd.isna(row["haven_id"]):
                failures.append(f"{where[d]}: expected no haven, got {row['haven_id']} {row['travel_time_s']:.2f} s")
            continue
        cost_1, t, _, h = routes[0]
        # the haven found is one the oracle reaches at the same cost (ties may pick another)
        same = {o[3]: o for o in routes if np.isclose(o[0], cost_1, rtol=1e-9, atol=1e-6)}
        ok = bool(row["reachable"]) and row["haven_id"] in same
        ok = ok and np.isclose(row["travel_time_s"], same[row["haven_id"]][1], rtol=1e-7, atol=1e-6)
        if len(routes) > 1:
            ok = ok and np.isclose(row["second_travel_time_s"], routes[1][1], rtol=1e-7, atol=1e-6)
        else:
            ok = ok and np.isnan(row["second_travel_time_s"]) and gpd.pd.isna(row["second_haven_id"])
        if not ok:
            second = f", then {routes[1][3]} {routes[1][1]:.2f} s" if len(routes) > 1 else ""
            failures.append(
                f"{where[d]}: expected {h} {t:.2f} s{second}; got {row['haven_id']} {row['travel_time_s']:.2f} s, "
                f"then {row['second_haven_id']} {row['second_travel_time_s']:.2f} s"
            )
    assert not failures, f"{len(failures)} of {len(oracle)} defenders wrong, e.g.\n" + "\n".join(failures[:10])
    best = np.array([oracle[d][0][1] if oracle[d] else np.inf for d in lay.defenders["id"]])
    bands = cov.bands().set_index("minutes")
    for m in minutes:
        assert bands.loc[m, "covered"] == int((best <= 60 * m).sum())
        assert bands.loc[m, "share"] == pytest.approx((best <= 60 * m).mean())
    return cov


@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_coverage_agrees_with_networkx(fixture, request):
    net = request.getfixturevalue(fixture)
    minutes = (1, 2, 4) if fixture == "aguascalientes_drive" else (5, 10, 15)
    cov = _check_coverage(_layers(net), None, minutes)
    # per haven: the defenders it serves are those whose best haven it is
    served = cov.defenders.groupby("haven_id").size()
    assert cov.havens.set_index("haven_id")["served"].loc[served.index].tolist() == served.tolist()
    assert cov.havens["served"].sum() == cov.defenders["reachable"].sum()


def test_coverage_with_danger_and_length_costs_reports_physical_time(aguascalientes_drive):
    net = aguascalientes_drive
    lay = _layers(net, n_def=80, seed=7)
    risk = np.random.default_rng(3).uniform(0.0, 2.0, net.n_edges)
    danger = cost_weights(net, risk=risk, alpha=3.0, max_risk=1.8)
    _check_coverage(lay, danger)
    _check_coverage(lay, net.edge_length.copy())
    _check_coverage(lay, None, cost="length")


def test_coverage_with_closures_agrees_with_networkx_without_those_edges(aguascalientes_drive):
    net = aguascalientes_drive
    lay = _layers(net, n_def=100, seed=9)
    closed = np.random.default_rng(5).random(net.n_edges) < 0.12
    weights = net.edge_time.copy()
    weights[closed] = np.inf
    cov = _check_coverage(lay, weights)
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
        ("aguascalientes_drive", "danger"),
        ("demo_walk", "danger"),
    ],
)
def test_n_minus_1_equals_recomputing_without_each_haven(fixture, model, request):
    """N-1 against the oracle recomputed without each haven (not against havenmap's own second-best)."""
    net = request.getfixturevalue(fixture)
    lay = _layers(net, n_def=150, n_hav=7, seed=21)
    minutes = (0.5, 1, 2) if fixture == "aguascalientes_drive" else (3, 6, 10)
    kw: dict = {"cost": "length"} if model == "length" else {}
    if model == "danger":  # routes chosen by danger: the second-best haven may be physically nearer
        risk = np.random.default_rng(4).gamma(0.5, 4.0, net.n_edges)
        kw["edge_weights"] = costs.danger_weights(net, risk, alpha=2.0)
    cov = hc.coverage(net, lay.defenders, lay.havens, minutes, **kw)
    n1 = hc.n_minus_1(cov).set_index("haven_id")
    oracle = lay.oracle(kw.get("edge_weights"), kw.get("cost", "time"))
    routes = lay.routes(oracle)
    ids = lay.defenders["id"].to_numpy()

    def best_time(without=None):
        return np.array([next((o[1] for o in routes[d] if o[3] != without), np.inf) for d in ids])

    widest = 60 * max(minutes)
    before = best_time()
    assert n1["lose_all_cover"].sum() + n1[[f"lost_{m:g}" for m in minutes]].to_numpy().sum() > 0
    for h in lay.havens["id"]:
        after = best_time(without=h)
        row = n1.loc[h]
        for m in minutes:
            assert row[f"covered_{m:g}"] == int((after <= 60 * m).sum()), (h, m)
            assert row[f"lost_{m:g}"] == int(((before <= 60 * m) & (after > 60 * m)).sum()), (h, m)
        assert row["cut_off"] == int((np.isfinite(before) & ~np.isfinite(after)).sum()), h
        losing = (before <= widest) & (after > widest)
        assert row["lose_all_cover"] == int(losing.sum()), h
        assert set(row["lose_all_cover_ids"].split(";")) - {""} == set(ids[losing]), h


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
def _road_samples(net, oracle: Oracle, n_per_edge: int):
    """Points along every physical road: (rep edge, fraction), ``n_per_edge`` per road, ends excluded."""
    _, twin = oracle.on_network(net)
    idx = np.arange(net.n_edges)
    reps = idx[(twin < 0) | (idx < twin)]
    fr = np.linspace(0.0, 1.0, n_per_edge + 2)[1:-1]
    return reps, np.repeat(reps, len(fr)), np.tile(fr, len(reps))


def _reached_intervals(net, oracle: Oracle, reps, haven: Place, limit):
    """Exact reached stretches (rep edge, f_lo, f_hi) of every physical road within ``limit`` of the haven."""
    w_all, twin_all = oracle.on_network(net)
    node_t = oracle.node_costs(net, haven)
    e, twin = reps, twin_all[reps]
    w = w_all[e]
    w_back = np.where(twin >= 0, w_all[np.maximum(twin, 0)], np.inf)
    dv, du = node_t[net.edge_v[e]], node_t[net.edge_u[e]]
    with np.errstate(invalid="ignore", divide="ignore"):
        rows = [
            (e, np.clip(1 - (limit - dv) / w, 0, 1), np.ones(len(e)), dv <= limit),  # forward to v
            (e, np.zeros(len(e)), np.clip((limit - du) / w_back, 0, 1), du <= limit),  # back to u
        ]
    out = [(ee[ok], lo[ok], hi[ok]) for ee, lo, hi, ok in rows]
    if not haven.at_node:  # the haven's own road, travelled straight to it
        keys = edge_keys(net)
        own = keys.index(haven.edge)
        for i in np.flatnonzero((e == own) | (twin == own)):
            f_h = haven.fraction if e[i] == own else 1.0 - haven.fraction
            out.append((e[[i]], [max(f_h - limit / w[i], 0.0)], [f_h]))
            if np.isfinite(w_back[i]):
                out.append((e[[i]], [f_h], [min(f_h + limit / w_back[i], 1.0)]))
    return [np.concatenate([np.asarray(x[k]) for x in out]) for k in range(3)]


@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_reach_edges_are_exactly_the_reachable_pieces(fixture, request):
    net = request.getfixturevalue(fixture)
    lay = _layers(net, n_hav=4, seed=31, haven_mix=HAVENS_AT_ONE_WAY_NODES)
    max_min = 1.5 if fixture == "aguascalientes_drive" else 6.0
    pieces = hc.reach_edges(net, lay.havens, max_min)
    oracle = lay.oracle()
    w, _ = oracle.on_network(net)
    _, edges, fracs = _road_samples(net, oracle, 7)
    limit = 60 * max_min
    for h in lay.haven_places:
        mine = pieces.loc[pieces["haven_id"] == h.id]
        # no piece claims a time better than the oracle's at either end; time is linear along the piece
        for side in ("from", "to"):
            at = mine[f"fraction_{side}"].to_numpy()
            # the best of a hair either side: an end at the haven itself is not a rounding error away from it
            truth = np.min(
                [
                    oracle.costs_along_edges(net, h, mine["edge"].to_numpy(), np.clip(at + d, 0, 1))
                    for d in (-1e-8, 0, 1e-8)
                ],
                axis=0,
            )
            claimed = mine[f"time_{side}_s"].to_numpy()
            bad = claimed < truth - 1e-5
            assert not bad.any(), f"{h}: {bad.sum()} pieces claim less than the true time at their {side} end"
        e, f0, f1 = mine["edge"].to_numpy(), mine["fraction_from"].to_numpy(), mine["fraction_to"].to_numpy()
        np.testing.assert_allclose(
            mine["time_from_s"] - mine["time_to_s"], np.abs(f1 - f0) * w[e], rtol=1e-9, atol=1e-6, err_msg=str(h)
        )
        # and every point of road within the band is covered at exactly its time, nothing beyond is
        expected = oracle.costs_along_edges(net, h, edges, fracs)
        got = piece_times(net, oracle.twin, mine, edges, fracs)
        inside = expected <= limit
        assert inside.sum() > 20
        wrong = inside & ~np.isclose(got, expected, rtol=1e-9, atol=1e-6)
        assert not wrong.any(), f"{h}: {wrong.sum()} of {inside.sum()} points within the band wrong, e.g. " + "; ".join(
            f"{edge_keys(net)[edges[i]]} at {fracs[i]:.2f}: expected {expected[i]:.2f} s, got {got[i]:.2f} s"
            for i in np.flatnonzero(wrong)[:4]
        )
        assert (got[~inside] > limit - 1e-6).all()  # nothing beyond the band is listed as within it


@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_service_area_polygons_follow_the_reached_pieces(fixture, request):
    net = request.getfixturevalue(fixture)
    lay = _layers(net, n_hav=3, seed=41)
    minutes = (0.5, 1.0) if fixture == "aguascalientes_drive" else (3.0, 6.0)
    buffer_m = 30.0
    areas = hc.service_areas(net, lay.havens, minutes, buffer_m=buffer_m)
    assert list(areas.columns) == ["haven_id", "minutes", "geometry"] and areas.crs.equals("EPSG:4326")
    areas = areas.to_crs(net.crs)
    oracle = lay.oracle()
    reps, edges, fracs = _road_samples(net, oracle, 9)
    pts = _points_at(net, edges, fracs)
    cell = buffer_m / 3
    for h in lay.haven_places:
        t = oracle.costs_along_edges(net, h, edges, fracs)
        for m in minutes:
            poly = areas.loc[(areas["haven_id"] == h.id) & (areas["minutes"] == m), "geometry"].iloc[0]
            assert poly.geom_type in ("Polygon", "MultiPolygon") and poly.is_valid
            reached = t <= 60 * m
            assert reached.sum() > 5
            # every reached point of road is inside its band's polygon, with (nearly) the buffer around it
            assert shapely.contains_xy(poly.buffer(1e-6), pts[reached, 0], pts[reached, 1]).all(), (h, m)
            some = shapely.points(pts[np.flatnonzero(reached)[:: max(1, reached.sum() // 40)]])
            assert shapely.contains(poly.buffer(1e-6), shapely.buffer(some, buffer_m - 1.2 * cell)).all()
            # the exact reached pieces (oracle), and points of road well beyond them, are outside
            exact = _exact_reached_lines(net, *_reached_intervals(net, oracle, reps, h, 60 * m))
            _, dist = exact.query_nearest(shapely.points(pts), return_distance=True, all_matches=False)
            far = ~reached & (dist > buffer_m + 2.5 * cell)
            assert far.sum() > 5
            assert not shapely.contains_xy(poly, pts[far, 0], pts[far, 1]).any(), (h, m)
        # bands are nested (up to the outline simplification, half a grid cell)
        small, big = (
            areas.loc[(areas["haven_id"] == h.id) & (areas["minutes"] == m), "geometry"].iloc[0] for m in minutes
        )
        assert small.difference(big.buffer(cell / 2 + 1e-6)).area < 1e-6 * small.area
        assert small.area < big.area


def test_service_areas_traced_on_threads_equal_one_at_a_time(aguascalientes_drive, monkeypatch):
    """Havens traced side by side give the same polygons, in the same rows, as one after another."""
    net = aguascalientes_drive
    _, havens = _layers(net, n_hav=14, seed=61)
    by_workers = {}
    for workers in (1, 3):
        monkeypatch.setattr(_areas, "_usable_cpus", lambda w=workers: w)
        by_workers[workers] = hc.service_areas(net, havens, (0.5, 1.0, 2.0))
    one, three = by_workers[1], by_workers[3]
    assert len(one) == 3 * len(havens) and list(one["haven_id"]) == list(three["haven_id"])
    assert list(one["minutes"]) == list(three["minutes"])
    assert not one.geometry.is_empty.any()
    assert one.geometry.geom_equals_exact(three.geometry, tolerance=0.0).all()


def test_a_failure_while_tracing_on_threads_reaches_the_caller(aguascalientes_drive, monkeypatch):
    net = aguascalientes_drive
    _, havens = _layers(net, n_hav=6, seed=62)
    calls = []

    def fails_on_the_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            raise MemoryError("raster too large")
        return [shapely.Polygon()]

    monkeypatch.setattr(_areas, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(_areas, "haven_polygons", fails_on_the_fourth)
    with pytest.raises(MemoryError, match="raster too large"):
        hc.service_areas(net, havens, (1.0,))


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
