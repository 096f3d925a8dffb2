"""Patrol planning: feasibility re-checked independently, exact optimum on small instances (Held-Karp),
travel times against networkx, determinism, day-to-day variety, frequencies, outputs and errors."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from havenmap import _gpx, _vrp, layers, patrol, routing
from havenmap.errors import InfeasibleError, InputError, OffNetworkError
from havenmap.patrol import SCHEDULE_COLUMNS, plan_patrols
from havenmap.scenario import demo_dir
from havenmap.snap import snap_points

from ._oracle import Oracle, Streets, random_points_on_edges, to_gdf

FAST = {"max_iterations": 400, "time_limit_s": 20.0}
# random instances often hold a target no unit can reach in time: the plan warns, the tests check the list
pytestmark = pytest.mark.filterwarnings("ignore:.*no unit can visit within its shift:UserWarning")


# =========================================================================== independent checker
def check_plan(plan: patrol.PatrolPlan, net=None) -> int:
    """Re-derive every unit's timeline from the travel-time matrix; assert feasibility. Returns #visits.

    Independent of the solver's numbers: only the visiting order is taken from the plan.
    """
    pr = plan.problem
    tg = pr.targets.set_index(pr.targets["id"].astype(str))
    units = pr.units.set_index("unit")
    sched = plan.schedule
    assert list(sched.columns) == list(SCHEDULE_COLUMNS)
    assert set(sched["day"]) == set(range(1, plan.days + 1))
    assert len(sched.groupby(["unit", "day"])) == len(units) * plan.days  # every unit, every day
    visits = 0
    for (unit, _day), rows in sched.groupby(["unit", "day"]):
        rows = rows.sort_values("stop")
        ids = list(rows["target_id"])
        assert list(rows["stop"]) == list(range(len(rows)))
        assert ids[0] == "" and ids[-1] == "" and all(ids[1:-1]), "starts and ends at the base"
        assert rows["arrival_min"].iat[0] == 0 and rows["departure_min"].iat[0] == 0
        base = pr.base_index(units.loc[unit, "base_id"])
        here, t = base, 0.0
        for tid, arr, dep in zip(
            ids[1:-1], rows["arrival_min"].iloc[1:-1], rows["departure_min"].iloc[1:-1], strict=True
        ):
            j = pr.stop_index(tid)
            t += pr.time_s[here, j]
            assert np.isfinite(t)
            assert arr * 60 == pytest.approx(t, abs=1e-6)
            ws, we = tg.loc[tid, "window_start_min"], tg.loc[tid, "window_end_min"]
            start = max(t, ws * 60) if np.isfinite(ws) else t
            if np.isfinite(we):
                assert start <= we * 60 + 1e-6, f"{unit} starts {tid} after its window"
            t = start + tg.loc[tid, "service_minutes"] * 60
            assert dep * 60 == pytest.approx(t, abs=1e-6)
            here = j
            visits += 1
        if len(ids) > 2:
            t += pr.time_s[here, base]
        assert rows["arrival_min"].iat[-1] * 60 == pytest.approx(t, abs=1e-6)
        assert t <= units.loc[unit, "shift_minutes"] * 60 + 1e-6, f"{unit} back after the shift"
    stops = sched.loc[sched["target_id"] != ""]
    assert not stops.duplicated(["day", "target_id"]).any(), "a target visited twice on one day"

    # routes: prize, duration, and geometry along the roads from the base and back
    prio = tg["priority"]
    for day in range(1, plan.days + 1):
        expected = prio.loc[sorted(plan.visited(day))].sum()
        assert plan.summary["per_day"][day - 1]["prize"] == pytest.approx(expected)
    assert len(plan.routes) == sched.groupby(["unit", "day"])["target_id"].apply(lambda s: (s != "").any()).sum()
    utm = plan.routes.estimate_utm_crs() if len(plan.routes) else None
    for row in plan.routes.itertuples():
        route = plan.unit_route(row.unit, row.day)
        assert row.prize == pytest.approx(prio.loc[route].sum())
        assert row.n_targets == len(route)
        back = sched.loc[(sched["unit"] == row.unit) & (sched["day"] == row.day), "arrival_min"].iat[-1]
        assert row.duration_min == pytest.approx(back)
        if net is None:
            continue
        line = gpd.GeoSeries([row.geometry], crs=4326).to_crs(utm).iat[0]
        legs = [pr.base_index(row.base_id), *(pr.stop_index(t) for t in route), pr.base_index(row.base_id)]
        road_m = sum(pr.length_m[a, b] for a, b in itertools.pairwise(legs))
        assert line.length == pytest.approx(road_m, rel=0.01, abs=2.0)
        base_pt = plan.bases.set_index("id").geometry.loc[row.base_id]
        snapped = snap_points(net, gpd.GeoDataFrame({"id": ["b"]}, geometry=[base_pt], crs=4326))
        start = gpd.GeoSeries(shapely.points([line.coords[0], line.coords[-1]]), crs=utm)
        base_utm = gpd.GeoSeries([base_pt], crs=4326).to_crs(utm).iat[0]
        assert start.distance(base_utm).max() <= float(snapped["snap_distance_m"].iat[0]) + 1.0
        day_stops = plan.stops.loc[(plan.stops["unit"] == row.unit) & (plan.stops["day"] == row.day)].to_crs(utm)
        assert list(day_stops.sort_values("stop")["target_id"]) == route
        assert day_stops.distance(line).max() < 0.5, "every stop lies on the route"
    return visits


# =========================================================================== exact oracle
def _feasible_subsets(time, base, locs, service, early, late, shift):
    """feasible[mask]: some visiting order of the targets in ``mask`` fits the shift and windows (Held-Karp)."""
    n = len(locs)
    best = np.full((1 << n, n), np.inf)  # earliest departure from the last target
    for j in range(n):
        start = max(time[base, locs[j]], early[j])
        if start <= late[j]:
            best[1 << j, j] = start + service[j]
    inner = time[np.ix_(locs, locs)]
    for mask in range(1, 1 << n):
        row = best[mask]
        if not np.isfinite(row).any():
            continue
        for j in range(n):
            if mask >> j & 1:
                continue
            start = max(np.min(row + inner[:, j]), early[j])
            if start <= late[j]:
                best[mask | 1 << j, j] = min(best[mask | 1 << j, j], start + service[j])
    back = time[locs, base]
    ok = np.any(best + back[None, :] <= shift, axis=1)
    ok[0] = True
    return ok


def exact_best_prize(plan: patrol.PatrolPlan, grid: bool) -> float:
    """Best total priority over all plans (1 or 2 units), on the solver's 0.1 s grid or in exact times."""
    pr = plan.problem
    tg = pr.targets
    n, nb = len(tg), pr.n_bases
    k = patrol.TICKS_PER_S
    if grid:  # the solver's conservative rounding: travel, service, window start up; window end, shift down
        time = np.ceil(pr.time_s * k - 1e-9)
        service = np.ceil(tg["service_minutes"].to_numpy() * 60 * k - 1e-9)
        early = np.ceil(np.nan_to_num(tg["window_start_min"].to_numpy() * 60, nan=0) * k - 1e-9)
        late = np.floor(np.nan_to_num(tg["window_end_min"].to_numpy() * 60, nan=np.inf) * k + 1e-9)
        shifts = np.floor(pr.units["shift_minutes"].to_numpy() * 60 * k + 1e-9)
    else:
        time, service = pr.time_s, tg["service_minutes"].to_numpy() * 60
        early = np.nan_to_num(tg["window_start_min"].to_numpy() * 60, nan=0)
        late = np.nan_to_num(tg["window_end_min"].to_numpy() * 60, nan=np.inf)
        shifts = pr.units["shift_minutes"].to_numpy() * 60
    locs = np.arange(nb, nb + n)
    masks = np.arange(1 << n)
    prize = ((masks[:, None] >> np.arange(n)) & 1) @ tg["priority"].to_numpy(dtype=float)
    feas = [
        _feasible_subsets(time, pr.base_index(b), locs, service, early, late, s)
        for b, s in zip(pr.units["base_id"], shifts, strict=True)
    ]
    if len(feas) == 1:
        return float(prize[feas[0]].max())
    g = np.where(feas[1], prize, -np.inf)  # best feasible subset of M for unit 2 (subset-max transform)
    for i in range(n):
        has = (masks >> i) & 1 == 1
        g[has] = np.maximum(g[has], g[masks[has] ^ (1 << i)])
    return float(np.where(feas[0], prize + g[(masks[-1]) ^ masks], -np.inf).max())


def small_instance(net, n: int, n_bases: int, seed: int, shift: float):
    rng = np.random.default_rng(seed)
    pts = random_points_on_edges(net, n + n_bases, "p", seed)
    targets = pts.iloc[:n].copy()
    targets["id"] = [f"T{i}" for i in range(n)]
    targets["priority"] = rng.integers(1, 11, n)
    targets["service_minutes"] = rng.uniform(0.3, 1.5, n).round(2)
    start = np.where(rng.random(n) < 0.3, rng.uniform(0, shift / 2, n).round(1), np.nan)
    targets["window_start_min"] = start
    targets["window_end_min"] = start + shift / 3
    bases = pts.iloc[n:].copy()
    bases["id"] = [f"B{i}" for i in range(n_bases)]
    return targets.reset_index(drop=True), bases.reset_index(drop=True)


@pytest.mark.parametrize(("n", "units", "shift", "seed"), [(8, 1, 8.0, 2), (8, 1, 12.0, 5), (8, 1, 8.0, 3)])
def test_one_unit_prize_equals_brute_force_optimum(aguascalientes_drive, n, units, shift, seed):
    targets, bases = small_instance(aguascalientes_drive, n, units, seed, shift)
    plan = plan_patrols(aguascalientes_drive, targets, bases, units=units, shift_minutes=shift, seed=seed, **FAST)
    check_plan(plan, aguascalientes_drive)
    got = plan.summary["per_day"][0]["prize"]
    best = exact_best_prize(plan, grid=True)
    assert 0 < got < targets["priority"].sum(), "a non-trivial instance: some but not all targets fit"
    assert got == best
    assert exact_best_prize(plan, grid=False) == best  # the 0.1 s grid loses nothing here


@pytest.mark.parametrize(("shift", "seed"), [(8.0, 3), (10.0, 2)])
def test_two_units_two_bases_prize_equals_exact_optimum(aguascalientes_drive, shift, seed):
    targets, bases = small_instance(aguascalientes_drive, 12, 2, seed, shift)
    plan = plan_patrols(aguascalientes_drive, targets, bases, units=2, shift_minutes=shift, seed=seed, **FAST)
    assert list(plan.problem.units["base_id"]) == ["B0", "B1"]  # round-robin over the bases
    check_plan(plan, aguascalientes_drive)
    got = plan.summary["per_day"][0]["prize"]
    best = exact_best_prize(plan, grid=True)
    assert 0 < got < targets["priority"].sum()
    assert got == best
    greedy = plan_patrols(aguascalientes_drive, targets, bases, units=2, shift_minutes=shift, solver="greedy")
    check_plan(greedy, aguascalientes_drive)
    assert greedy.summary["per_day"][0]["prize"] <= got


# =========================================================================== travel times
def _stops(net, n: int, seed: int):
    """Stops where bugs live (intersections, one-way ones included, mid-street, borders), with their truth."""
    places = Streets(net.to_networkx()).sample("s", n, seed)
    return places, to_gdf(places, net.crs)


def test_leg_matrix_matches_networkx(aguascalientes_drive):
    net = aguascalientes_drive
    places, pts = _stops(net, 14, 21)
    legs = routing.travel_matrix(net, pts, pts)
    _, t, length = Oracle.for_network(net).matrix(places, places)
    np.testing.assert_allclose(legs.time_s, t, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(legs.length_m, length, rtol=1e-9, atol=1e-6)  # the same routes' metres


def test_danger_aware_legs_follow_the_weighted_cost_with_physical_times(aguascalientes_drive):
    net = aguascalientes_drive
    rng = np.random.default_rng(4)
    risk = np.where(rng.random(net.n_edges) < 0.3, rng.uniform(1, 5, net.n_edges), 0.0)
    weights = net.edge_time * (1 + 2.0 * risk)
    places, pts = _stops(net, 10, 8)
    plain = routing.travel_matrix(net, pts, pts)
    legs = routing.travel_matrix(net, pts, pts, edge_weights=weights)
    cost, t, length = Oracle.for_network(net, edge_weights=weights).matrix(places, places)
    np.testing.assert_allclose(legs.cost, cost, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(legs.time_s, t, rtol=1e-9, atol=1e-6)  # physical times along the chosen routes
    np.testing.assert_allclose(legs.length_m, length, rtol=1e-9, atol=1e-6)
    assert (legs.time_s >= plain.time_s - 1e-5).all()  # no danger-aware leg is faster than the fastest


def test_danger_aware_plan_is_feasible(aguascalientes_drive):
    net = aguascalientes_drive
    rng = np.random.default_rng(4)
    risk = np.where(rng.random(net.n_edges) < 0.3, rng.uniform(1, 5, net.n_edges), 0.0)
    targets, bases = small_instance(net, 10, 2, 6, 10.0)
    plan = plan_patrols(net, targets, bases, units=2, shift_minutes=10, risk=risk, risk_alpha=2.0, **FAST)
    assert plan.summary["danger_aware"]
    check_plan(plan, net)


# =========================================================================== days
def _demo():
    d = demo_dir()
    return patrol.read_targets(d / "targets.csv"), layers.read_bases(d / "bases.csv")


def test_demo_plan_outputs(demo_walk, tmp_path):
    targets, bases = _demo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_patrols(demo_walk, targets, bases, units=3, shift_minutes=60, days=3, seed=5, **FAST)
    assert check_plan(plan, demo_walk) > 10
    files = patrol.write_patrol_outputs(plan, tmp_path, roads=demo_walk)
    routes = gpd.read_file(tmp_path / "patrol_routes.geojson")
    assert len(routes) == len(plan.routes) and set(routes.geom_type) == {"LineString"}
    assert {"unit", "day", "base_id", "prize", "duration_min"} <= set(routes.columns)
    sched = pd.read_csv(tmp_path / "patrol_schedule.csv", keep_default_na=False)
    assert list(sched.columns) == list(SCHEDULE_COLUMNS)
    assert len(sched) == len(plan.schedule)
    freq = pd.read_csv(tmp_path / "target_frequency.csv")
    assert list(freq.columns) == list(patrol.FREQUENCY_COLUMNS) and len(freq) == len(plan.frequency)
    summary = json.loads((tmp_path / "patrol_summary.json").read_text())
    assert [d["day"] for d in summary["per_day"]] == [1, 2, 3] and summary["reproducible"]
    assert len(files["gpx"]) == len(plan.routes)
    ns = {"g": _gpx.GPX_NS}
    for row in plan.routes.itertuples():
        path = tmp_path / "gpx" / f"{row.unit}_day-{row.day}.gpx"
        root = ET.parse(path).getroot()
        assert root.tag == f"{{{_gpx.GPX_NS}}}gpx" and root.get("version") == "1.1"
        pts = root.findall("g:trk/g:trkseg/g:trkpt", ns)
        assert len(pts) == len(row.geometry.coords)
        first = (float(pts[0].get("lon")), float(pts[0].get("lat")))
        assert first == pytest.approx(row.geometry.coords[0], abs=1e-6)
        names = [w.findtext("g:name", namespaces=ns) for w in root.findall("g:wpt", ns)]
        assert names == [f"base {row.base_id}", *plan.unit_route(row.unit, row.day)]
    if hasattr(__import__("havenmap.maps").maps, "patrol_map"):
        html = (tmp_path / "patrol_map.html").read_text()
        assert '<script src="http' not in html
    assert oct(os.stat(tmp_path / "patrol_routes.geojson").st_mode & 0o777) == "0o644"


def test_same_seed_same_plan_other_seed_other_plan(aguascalientes_drive):
    targets, bases = small_instance(aguascalientes_drive, 14, 2, 9, 10.0)
    kw = {"units": 2, "shift_minutes": 10, "days": 3, **FAST}
    a = plan_patrols(aguascalientes_drive, targets, bases, seed=11, **kw)
    b = plan_patrols(aguascalientes_drive, targets, bases, seed=11, **kw)
    c = plan_patrols(aguascalientes_drive, targets, bases, seed=12, **kw)
    pd.testing.assert_frame_equal(a.schedule, b.schedule)
    pd.testing.assert_frame_equal(a.frequency, b.frequency)
    assert not a.schedule.equals(c.schedule)
    for p in (a, c):
        check_plan(p, aguascalientes_drive)


def test_twenty_days_vary_and_frequencies_follow_priority(aguascalientes_drive):
    net = aguascalientes_drive
    targets, bases = small_instance(net, 16, 1, 13, 10.0)
    targets["priority"] = np.repeat(np.arange(1, 9), 2)
    targets["window_start_min"] = np.nan
    targets["window_end_min"] = np.nan
    plan = plan_patrols(net, targets, bases, units=1, shift_minutes=10, days=20, seed=1, max_iterations=200)
    check_plan(plan)
    days = [plan.visited(d) for d in range(1, 21)]
    jaccard = [1 - len(a & b) / len(a | b) for a, b in itertools.pairwise(days)]
    assert np.mean(jaccard) > 0.3, "plans change from day to day"
    assert len({frozenset(s) for s in days}) >= 10
    f = plan.frequency
    assert f["target_frequency"].max() <= 1.0 + 1e-12
    assert np.abs(f["planned_frequency"] - f["target_frequency"]).mean() < 0.1
    assert np.corrcoef(f["priority"], f["planned_frequency"])[0, 1] > 0.7
    low = f.loc[f["priority"] <= 2, "planned_frequency"].mean()
    high = f.loc[f["priority"] >= 7, "planned_frequency"].mean()
    assert high > low + 0.3
    assert (f.loc[f["priority"] <= 2, "planned_frequency"] > 0).any(), "low priority still visited sometimes"
    # target frequencies: proportional to priority where below 1, summing to the realised daily visits
    free = f["target_frequency"] < 1 - 1e-9
    ratio = f.loc[free, "target_frequency"] / f.loc[free, "priority"]
    assert ratio.std() < 1e-9
    assert f["target_frequency"].sum() == pytest.approx(np.mean([len(s) for s in days]))


def test_time_windows_make_units_wait(demo_walk):
    targets, bases = _demo()
    targets = targets.iloc[:3].copy()
    targets["window_start_min"] = [30.0, 0.0, np.nan]
    targets["window_end_min"] = [31.0, 0.5, np.nan]  # the second cannot be reached in time
    targets["priority"] = [50, 50, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_patrols(demo_walk, targets.iloc[:2], bases.iloc[:1], units=1, shift_minutes=60, **FAST)
        both = plan_patrols(demo_walk, targets, bases.iloc[:1], units=1, shift_minutes=60, **FAST)
    check_plan(plan, demo_walk)
    check_plan(both, demo_walk)
    assert both.unit_route("unit-1", 1) == [targets["id"].iat[2], targets["id"].iat[0]]  # fills the wait
    row = plan.schedule.loc[plan.schedule["target_id"] == targets["id"].iat[0]].iloc[0]
    assert row["arrival_min"] < 30.0
    assert row["departure_min"] == pytest.approx(30.0 + targets["service_minutes"].iat[0])
    assert targets["id"].iat[1] in plan.summary["unreachable_targets"]
    assert targets["id"].iat[1] not in plan.visited(1)


# =========================================================================== target sources
def test_hotspot_roads_are_covered_when_driven_along(aguascalientes_drive):
    net = aguascalientes_drive
    edges = net.edges_gdf()
    edges["edge"] = np.arange(net.n_edges)
    long = edges.loc[edges["length"] > 80].sample(30, random_state=3)
    long["risk"] = np.linspace(1, 5, len(long))
    long["significance"] = ["hot 95%"] * 25 + ["not significant"] * 5
    targets = patrol.targets_from_hotspots(net, long)
    assert len(targets) <= 25 and set(targets["kind"]) == {"road"}
    assert (targets["edge_fraction"] == 0.5).all()
    bases = random_points_on_edges(net, 1, "B", 2)
    plan = plan_patrols(net, targets, bases, units=1, shift_minutes=8, days=4, seed=2, **FAST)
    check_plan(plan, net)
    f = plan.frequency.set_index("target_id")
    assert (f["presence_frequency"] >= f["planned_frequency"] - 1e-12).all()
    # oracle: a road is covered on a day if some route's geometry runs along >= half of it
    utm = plan.routes.estimate_utm_crs()
    roads = gpd.GeoSeries(net.edge_geometries(targets["edge"].to_numpy()), crs=net.crs).to_crs(utm)
    lines = plan.routes.to_crs(utm)
    expected = np.zeros(len(targets))
    ambiguous = np.zeros(len(targets), dtype=bool)
    for day in range(1, 5):
        day_lines = lines.loc[lines["day"] == day].geometry.union_all().buffer(0.3)
        share = roads.intersection(day_lines).length.to_numpy() / roads.length.to_numpy()
        expected += share >= 0.5
        ambiguous |= np.abs(share - 0.5) < 0.05
    got = f.loc[targets["id"], "presence_frequency"].to_numpy() * 4
    assert np.array_equal(got[~ambiguous], expected[~ambiguous])
    assert got.sum() > 0
    assert sum(d["hotspot_roads_covered"] for d in plan.summary["per_day"]) == got.sum()


def test_defender_targets_need_consent_and_stay_displaced(demo_walk, tmp_path):
    d = layers.read_defenders(demo_dir() / "defenders.csv")
    d["consent"] = (["none", "drive-by", "visit", ""] * 20)[: len(d)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        targets = patrol.targets_from_defenders(demo_walk, d, service_minutes=7)
    consenting = d.loc[d["consent"].isin(["drive-by", "visit"]), "id"]
    assert set(targets["id"]) <= set(consenting) and len(targets) >= len(consenting) - 2  # 2 are offshore
    by_id = targets.set_index("id")
    assert (
        by_id.loc[d.loc[d["consent"] == "drive-by", "id"].loc[lambda s: s.isin(by_id.index)], "service_minutes"] == 0
    ).all()
    assert (
        by_id.loc[d.loc[d["consent"] == "visit", "id"].loc[lambda s: s.isin(by_id.index)], "service_minutes"] == 7
    ).all()
    # every target sits exactly on a road intersection, never on the defender's position
    xy = np.column_stack(gpd.GeoSeries(targets.geometry, crs=4326).to_crs(demo_walk.crs).pipe(lambda g: (g.x, g.y)))
    nearest = np.min(
        np.hypot(xy[:, None, 0] - demo_walk.node_xy[None, :, 0], xy[:, None, 1] - demo_walk.node_xy[None, :, 1]), axis=1
    )
    assert nearest.max() < 0.01
    bases = layers.read_bases(demo_dir() / "bases.csv")
    plan = plan_patrols(demo_walk, targets, bases, units=2, shift_minutes=45, **FAST)
    check_plan(plan, demo_walk)
    assert not plan.exact
    patrol.write_patrol_outputs(plan, tmp_path, roads=demo_walk)
    # no point written anywhere (route vertices, GPX track and waypoints) is at a defender's position
    written = [np.asarray(g.coords) for g in gpd.read_file(tmp_path / "patrol_routes.geojson").geometry]
    for path in (tmp_path / "gpx").glob("*.gpx"):
        root = ET.parse(path).getroot()
        written.append(
            np.array([(float(p.get("lon")), float(p.get("lat"))) for p in root.iter() if p.get("lon") is not None])
        )
    pts = gpd.GeoSeries(shapely.points(np.vstack(written)), crs=4326).to_crs(demo_walk.crs)
    homes = d.loc[d["id"].isin(consenting)].to_crs(demo_walk.crs)
    assert min(pts.distance(h).min() for h in homes.geometry) > 1.0, "an exact defender position was written"
    exact = patrol.targets_from_defenders(demo_walk, d.iloc[:12], exact=True)
    plan = plan_patrols(demo_walk, exact, bases, units=1, shift_minutes=45, **FAST)
    assert plan.exact
    patrol.write_patrol_outputs(plan, tmp_path / "exact", write_map=False)
    assert oct(os.stat(tmp_path / "exact" / "patrol_routes.geojson").st_mode & 0o777) == "0o600"
    bad = d.copy()
    bad.loc[3, "consent"] = "maybe"
    with pytest.raises(InputError, match=r"row 4.*consent.*'maybe'.*none, drive-by or visit"):
        patrol.targets_from_defenders(demo_walk, bad)
    with pytest.raises(InputError, match="consent"):
        patrol.targets_from_defenders(demo_walk, d.drop(columns="consent"))


def test_havens_as_checkins_and_combined_targets(demo_walk):
    havens = layers.read_havens(demo_dir() / "havens.geojson")
    targets, bases = _demo()
    checkins = patrol.targets_from_havens(havens, priority=2, service_minutes=3)
    both = patrol.combine_targets(targets, checkins)
    assert len(both) == len(targets) + len(havens)
    assert set(both["kind"]) == {"point", "haven"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_patrols(demo_walk, both, bases, units=2, shift_minutes=40, **FAST)
    check_plan(plan, demo_walk)
    with pytest.raises(InputError, match="more than one target source"):
        patrol.combine_targets(targets, targets)


# =========================================================================== input checks
def test_targets_file_errors_name_row_and_column(tmp_path):
    def write(text):
        path = tmp_path / "t.csv"
        path.write_text("id,latitude,longitude,priority,service_minutes,window_start_min,window_end_min\n" + text)
        return path

    with pytest.raises(InputError, match=r"t.csv: row 2, id 'b', column 'priority': 'high' is not a number"):
        patrol.read_targets(write("a,60.17,24.94,3,5,,\nb,60.17,24.95,high,5,,\n"))
    with pytest.raises(InputError, match=r"row 1, id 'a', column 'window_end_min'.*ends \(5 min\) before"):
        patrol.read_targets(write("a,60.17,24.94,3,5,10,5\n"))
    with pytest.raises(InputError, match=r"row 1, id 'a', column 'service_minutes': -2 is negative"):
        patrol.read_targets(write("a,60.17,24.94,3,-2,,\n"))
    with pytest.raises(InputError, match=r"row 1, id 'a', column 'priority': the priority is blank"):
        patrol.read_targets(write("a,60.17,24.94,,2,,\n"))
    ok = patrol.read_targets(write("a,60.17,24.94,3,,,\n"))
    assert ok["service_minutes"].iat[0] == 0 and np.isnan(ok["window_end_min"].iat[0])


def test_infeasible_requests_get_one_line_messages(demo_walk):
    targets, bases = _demo()
    far = pd.concat(
        [bases, gpd.GeoDataFrame({"id": ["B9"]}, geometry=[shapely.Point(24.94, 60.12)], crs=4326)], ignore_index=True
    )
    units = pd.DataFrame({"unit": ["u1", "u2"], "base_id": ["B1", "B9"], "shift_minutes": [60, 60]})
    with pytest.raises(OffNetworkError, match=r"base 'B9' is [\d,]+ m from the nearest road") as err:
        plan_patrols(demo_walk, targets, far, units=units, **FAST)
    assert "\n" not in str(err.value)
    with pytest.raises(
        InfeasibleError,
        match=r"shortest round trip .* takes \d+\.\d min but the longest shift is 2 "
        r"min",
    ) as err:
        plan_patrols(demo_walk, targets, bases, units=2, shift_minutes=2, **FAST)
    assert "\n" not in str(err.value)
    with pytest.raises(InfeasibleError, match="at least one unit"):
        plan_patrols(demo_walk, targets, bases, units=0, shift_minutes=60)
    with pytest.raises(InputError, match="no targets"):
        patrol.combine_targets()
    with pytest.raises(InputError, match="no targets"):
        patrol.as_targets(targets.iloc[:0])


def test_units_file(tmp_path, demo_walk):
    targets, bases = _demo()
    path = tmp_path / "units.csv"
    path.write_text("unit,base_id,shift_minutes,profile\nalpha,B1,30,walk\nbravo,B2,,walk\n")
    units = patrol.read_units(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_patrols(demo_walk, targets, bases, units=units, shift_minutes=50, **FAST)
    check_plan(plan, demo_walk)
    assert dict(zip(plan.problem.units["unit"], plan.problem.units["shift_minutes"], strict=True)) == {
        "alpha": 30.0,
        "bravo": 50.0,
    }
    path.write_text("unit,base_id,profile\nalpha,B1,drive\n")
    with pytest.raises(InputError, match=r"row 1, id 'alpha', column 'profile'.*one network per run"):
        plan_patrols(demo_walk, targets, bases, units=patrol.read_units(path), shift_minutes=50)
    path.write_text("unit,base_id\nalpha,B7\n")
    with pytest.raises(InputError, match=r"base 'B7' is not among the bases"):
        plan_patrols(demo_walk, targets, bases, units=patrol.read_units(path), shift_minutes=50)


def test_gpx_escapes_user_text():
    nasty = "a<b>&\"c' \x01"
    text = _gpx.gpx_document(
        nasty, np.array([[24.9, 60.1], [24.91, 60.11]]), [_gpx.Waypoint(24.9, 60.1, nasty, nasty)], description=nasty
    )
    root = ET.fromstring(text.encode())
    ns = {"g": _gpx.GPX_NS}
    assert root.findtext("g:metadata/g:name", namespaces=ns) == "a<b>&\"c' "
    assert root.findtext("g:wpt/g:desc", namespaces=ns) == "a<b>&\"c' "
    assert len(root.findall("g:trk/g:trkseg/g:trkpt", ns)) == 2


def test_target_frequencies_water_filling():
    # hand-worked: 10 and 5 are capped at 1, the remaining 1 visit/day is shared by the two 1s
    assert patrol.target_frequencies(np.array([10.0, 5, 1, 1, 0]), 3.0) == pytest.approx([1, 1, 0.5, 0.5, 0])
    assert patrol.target_frequencies(np.array([4.0, 2, 1]), 1.4) == pytest.approx([0.8, 0.4, 0.2])
    assert patrol.target_frequencies(np.array([1.0, 2.0]), 10).tolist() == [1.0, 1.0]


def test_greedy_baseline_is_feasible(demo_walk):
    targets, bases = _demo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_patrols(demo_walk, targets, bases, units=3, shift_minutes=45, solver="greedy", days=2)
    assert check_plan(plan, demo_walk) > 0
    inst = _vrp.Instance(
        duration=np.array([[0, 5], [5, 0]]),
        cost=np.array([[0, 5], [5, 0]]),
        n_bases=1,
        service=np.array([1]),
        tw_early=np.array([0]),
        tw_late=np.array([100]),
        prize=np.array([3]),
        vehicle_base=np.array([0]),
        vehicle_shift=np.array([11]),
    )
    assert _vrp.greedy(inst).routes == [[0]]
    assert _vrp.greedy(_with_shift(inst, 10)).routes == [[]]


def test_rewriting_outputs_leaves_no_stale_gpx(demo_walk, tmp_path):
    targets, bases = _demo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        three = plan_patrols(demo_walk, targets, bases, units=3, shift_minutes=45, solver="greedy", days=2)
        one = plan_patrols(demo_walk, targets, bases, units=1, shift_minutes=45, solver="greedy", days=1)
    patrol.write_patrol_outputs(three, tmp_path, write_map=False)
    assert len(list((tmp_path / "gpx").glob("*.gpx"))) == len(three.routes)
    written = patrol.write_patrol_outputs(one, tmp_path, write_map=False)
    assert sorted(p.name for p in (tmp_path / "gpx").glob("*.gpx")) == sorted(p.name for p in written["gpx"])
    assert len(written["gpx"]) == len(one.routes)


def _with_shift(inst, shift):
    return _vrp.Instance(**{**inst.__dict__, "vehicle_shift": np.array([shift])})


# =========================================================================== CLI
def test_cli_patrol_demo_and_errors(tmp_path):
    d = demo_dir()
    args = [
        sys.executable,
        "-m",
        "havenmap.cli",
        "patrol",
        "-n",
        str(d / "helsinki.osm.pbf"),
        "--network-type",
        "walk",
        "--targets",
        str(d / "targets.csv"),
        "--bases",
        str(d / "bases.csv"),
    ]
    ok = subprocess.run(
        [
            *args,
            "--units",
            "2",
            "--shift-minutes",
            "45",
            "--days",
            "2",
            "--iterations",
            "300",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    for name in (
        "patrol_routes.geojson",
        "patrol_schedule.csv",
        "target_frequency.csv",
        "patrol_summary.json",
        "gpx/unit-1_day-1.gpx",
    ):
        assert (tmp_path / "out" / name).exists(), name
    bad = subprocess.run(
        [*args, "--units", "2", "--shift-minutes", "1", "--out", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    lines = [ln for ln in bad.stderr.splitlines() if ln.startswith("havenmap: error:")]
    assert len(lines) == 1 and "shortest round trip" in lines[0]
    assert not (tmp_path / "bad" / "patrol_routes.geojson").exists()
