"""Siting against oracles that share none of its model.

- PySAL spopt (PuLP + HiGHS) on the same cost matrix: MCLP, p-median and LSCP optima equal ours;
- brute force over every choice of sites on tiny instances, for all four objectives (the N-1
  ``backup`` has no peer library), with existing havens, weights and unreachable pairs;
- a hand-built road where greedy is suboptimal (and our optimum beats it);
- real one-way streets (downtown Aguascalientes, drive) with defenders and sites at intersections,
  where the independent networkx routing oracle gives the travel times and brute force the optimum;
- bad input through the CLI: one line, exit 2, nothing written.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from havenmap import routing, siting
from havenmap.errors import InputError
from havenmap.network import from_graph
from havenmap.scenario import demo_dir, load_scenario
from havenmap.siting import SitingParams, site_havens, solve_sites

from ._oracle import Oracle, Streets, random_points_on_edges, to_gdf

DEMO = demo_dir()
NETWORK = DEMO / "helsinki.osm.pbf"


# ====================================================================== brute force (from the definitions)
def _subsets(n_existing: int, n_sites: int, k: int):
    for comb in itertools.combinations(range(n_existing, n_sites), k):
        mask = np.zeros(n_sites, dtype=bool)
        mask[:n_existing] = True
        mask[list(comb)] = True
        yield mask


def _covered(t, w, band, mask) -> float:
    return float(w[(t[:, mask] <= band).any(axis=1)].sum())


def _after_worst_loss(t, w, band, mask) -> float:
    sites = np.flatnonzero(mask)
    return min(_covered(t, w, band, mask & (np.arange(len(mask)) != h)) for h in sites)


def brute_force(t, w, band, n_existing, new, objective):
    """The optimum by enumeration: coverage (weight), backup ((worst-loss weight, weight)), time ((served weight,
    -weighted cost)), cover-all ((weight covered, -number of new sites))."""
    s = t.shape[1]
    if objective == "cover-all":
        best = None
        for k in range(0, new + 1):
            for mask in _subsets(n_existing, s, k):
                key = (_covered(t, w, band, mask), -k)
                best = key if best is None or key > best else best
        return best
    values = []
    for mask in _subsets(n_existing, s, new):
        if objective == "coverage":
            values.append(_covered(t, w, band, mask))
        elif objective == "backup":
            values.append((_after_worst_loss(t, w, band, mask), _covered(t, w, band, mask)))
        else:
            m = t[:, mask].min(axis=1)
            ok = np.isfinite(m)
            values.append((float(w[ok].sum()), -float((w[ok] * m[ok]).sum())))
    return max(values)


def _ours(sol, t, w, band, objective):
    """Our answer in the brute force's terms, recomputed here from the open sites."""
    mask = sol.open
    if objective == "coverage":
        return _covered(t, w, band, mask)
    if objective == "backup":
        return (_after_worst_loss(t, w, band, mask), _covered(t, w, band, mask))
    m = t[:, mask].min(axis=1)
    ok = np.isfinite(m)
    return (float(w[ok].sum()), -float((w[ok] * m[ok]).sum()))


def _random_instance(rng):
    d, ne, nc = int(rng.integers(3, 14)), int(rng.integers(0, 3)), int(rng.integers(2, 7))
    t = rng.uniform(0, 100, (d, ne + nc)).round(0)
    t[rng.random(t.shape) < 0.25] = np.inf
    w = rng.integers(0, 5, d).astype(float)
    if rng.random() < 0.5:
        w *= rng.uniform(0.1, 3.0, d)
    return t, w, ne, int(rng.integers(1, nc + 1))


@pytest.mark.parametrize("objective", siting.OBJECTIVES)
def test_optimum_equals_brute_force_on_tiny_instances(objective):
    rng = np.random.default_rng({"coverage": 1, "time": 2, "backup": 3, "cover-all": 4}[objective])
    band = 40.0
    for trial in range(120):
        t, w, ne, new = _random_instance(rng)
        sol = solve_sites(t, w, new=new, objective=objective, threshold=band, n_existing=ne)
        assert sol.optimal and sol.gap == 0.0, (trial, sol.status)
        best = brute_force(t, w, band, ne, new, objective)
        if objective == "cover-all":
            got = (_covered(t, w, band, sol.open), -int(sol.open[ne:].sum()))
            assert got == pytest.approx(best), (trial, got, best)
            assert sol.value == -best[1]
            coverable = float(w[(t <= band).any(axis=1)].sum())
            assert sol.all_covered == (best[0] >= coverable - 1e-9)
        else:
            got = _ours(sol, t, w, band, objective)
            assert got == pytest.approx(best), (trial, got, best)
            assert int(sol.open[ne:].sum()) == new and sol.open[:ne].all()
        # the reported value is the answer's own (recomputed from the matrix here)
        if objective == "coverage":
            assert sol.value == pytest.approx(got)
        elif objective == "backup":
            assert sol.value == pytest.approx(got[0])
        elif objective == "time":
            assert sol.value == pytest.approx(-got[1])


def test_order_is_by_marginal_gain_and_gains_add_up():
    rng = np.random.default_rng(7)
    for _ in range(40):
        t, w, ne, new = _random_instance(rng)
        sol = solve_sites(t, w, new=new, objective="coverage", threshold=40.0, n_existing=ne)
        mask = np.zeros(t.shape[1], dtype=bool)
        mask[:ne] = True
        start = _covered(t, w, 40.0, mask)
        for j, gain in zip(sol.chosen, sol.gains, strict=True):
            # each step takes the largest gain among the chosen sites not yet opened
            rest = [k for k in sol.chosen if not mask[k]]
            best = max(_covered(t, w, 40.0, mask | (np.arange(len(mask)) == k)) for k in rest)
            mask[j] = True
            assert _covered(t, w, 40.0, mask) - start == pytest.approx(gain) and start + gain == pytest.approx(best)
            start += gain
        assert start == pytest.approx(sol.value)


def test_p_median_lists_grow_until_the_relaxation_is_tight(monkeypatch):
    """Short candidate lists (one, then doubled) still give the exact p-median: the fallback is a true lower bound."""
    monkeypatch.setattr(siting, "_MIN_LIST", 1)
    monkeypatch.setattr(siting, "_LIST_FACTOR", 0.0)
    rng = np.random.default_rng(11)
    grew = 0
    for _ in range(25):
        t = rng.uniform(1, 100, (30, 14)).round(1)
        w = rng.integers(1, 4, 30).astype(float)
        sol = solve_sites(t, w, new=7, objective="time", threshold=1.0)
        best = brute_force(t, w, 1.0, 0, 7, "time")
        assert sol.optimal and -sol.value == pytest.approx(best[1])
        grew += sol.stats["rounds"] > 1
    assert grew > 5  # the growth path was exercised


# ====================================================================== greedy is not enough
def _line_network():
    """A straight two-way road of 31 nodes, 100 m apart, 10 m/s (10 s per 100 m); projected CRS."""
    g = nx.MultiDiGraph(crs="EPSG:32635")
    for i in range(31):
        g.add_node(i, x=500000.0 + 100.0 * i, y=6670000.0)
    for i in range(30):
        g.add_edge(i, i + 1, length=100.0, travel_time=10.0)
        g.add_edge(i + 1, i, length=100.0, travel_time=10.0)
    return from_graph(g)


def _at(rows, crs="EPSG:32635", **columns):
    frame = gpd.GeoDataFrame(
        {"id": [r[0] for r in rows], **columns},
        geometry=[shapely.Point(500000.0 + x, 6670000.0) for _, x in rows],
        crs=crs,
    )
    return frame.to_crs(4326)


def _greedy_coverage(t, w, band, n_existing, new):
    mask = np.zeros(t.shape[1], dtype=bool)
    mask[:n_existing] = True
    for _ in range(new):
        options = [j for j in range(n_existing, t.shape[1]) if not mask[j]]
        j = max(options, key=lambda j: _covered(t, w, band, mask | (np.arange(len(mask)) == j)))
        mask[j] = True
    return _covered(t, w, band, mask)


def test_optimum_beats_greedy_where_greedy_is_suboptimal():
    """Clusters at 0, 1000, 2000, 3000 m (weights 1, 3, 3, 1); sites at 500, 1500, 2500 m reach ±600 m (1 min).

    Greedy opens 1500 m first (weight 6), then one side (+1): 7. Opening 500 and 2500 m covers all: 8.
    Every point is exactly at an intersection.
    """
    net = _line_network()
    defenders = _at(
        [("a1", 0), ("b1", 1000), ("b2", 1000), ("b3", 1000), ("c1", 2000), ("c2", 2000), ("c3", 2000), ("d1", 3000)]
    )
    candidates = _at([("west", 500), ("middle", 1500), ("east", 2500)])
    result = site_havens(net, defenders, candidates, new=2, minutes=1.0, objective="coverage")
    assert set(result.summary["chosen"]) == {"west", "east"}
    assert result.summary["value"] == 8.0 and result.summary["optimal"]
    t = routing.travel_matrix(net, defenders, candidates).time_s
    assert t[0].tolist() == pytest.approx([50.0, 150.0, 250.0])  # hand-worked: 10 s per 100 m
    assert _greedy_coverage(t, np.ones(8), 60.0, 0, 2) == 7.0
    assert result.summary["coverage"]["after"]["1"]["covered"] == 8
    # with weights, the same geometry: clusters b and c now weigh 10 each; the middle site alone is worth 20
    weighted = defenders.assign(weight=[1, 10, 0, 0, 10, 0, 0, 1])
    result = site_havens(net, weighted, candidates, new=1, minutes=1.0)
    assert result.summary["chosen"] == ["middle"] and result.summary["value"] == 20.0


def test_unreachable_defenders_are_reported_not_averaged():
    """A defender on a separate road (on the network, no route to any site) is listed; the mean is the others'."""
    g = nx.MultiDiGraph(crs="EPSG:32635")
    for i in range(11):
        g.add_node(i, x=500000.0 + 100.0 * i, y=6670000.0)
    for i in range(10):
        g.add_edge(i, i + 1, length=100.0, travel_time=10.0)
        g.add_edge(i + 1, i, length=100.0, travel_time=10.0)
    for i, x in ((20, 0.0), (21, 100.0), (22, 200.0), (23, 300.0), (24, 400.0), (25, 500.0)):  # an island
        g.add_node(i, x=500000.0 + x, y=6672000.0)
    for i in range(20, 25):
        g.add_edge(i, i + 1, length=100.0, travel_time=10.0)
        g.add_edge(i + 1, i, length=100.0, travel_time=10.0)
    net = from_graph(g)
    defenders = gpd.GeoDataFrame(
        {"id": ["near", "far", "island"]},
        geometry=[
            shapely.Point(500100.0, 6670000.0),
            shapely.Point(500900.0, 6670000.0),
            shapely.Point(500200.0, 6672000.0),
        ],
        crs="EPSG:32635",
    )
    candidates = _at([("c0", 0), ("c5", 500), ("c10", 1000)])
    result = site_havens(net, defenders, candidates, new=1, minutes=1.0, objective="time")
    s = result.summary
    assert s["chosen"] == ["c5"]  # 40 s + 40 s beats 10 + 90 or 90 + 10: both 100
    assert s["value"] == pytest.approx(80.0)
    assert s["unreached"]["ids"] == ["island"] and s["unreached"]["defenders"] == 1
    assert s["mean_time_s"] == pytest.approx(40.0)


# ====================================================================== spopt on the same cost matrix
@pytest.fixture(scope="module")
def walk_instance(demo_walk):
    """80 defenders, 3 existing havens and 14 candidates on the demo's Helsinki walk network, weights 1-5."""
    net = demo_walk
    defenders = random_points_on_edges(net, 80, "d", 21)
    sites = random_points_on_edges(net, 17, "s", 22)
    t = routing.travel_matrix(net, defenders, sites).time_s
    w = np.random.default_rng(23).integers(1, 6, len(defenders)).astype(float)
    return t, w, 3


quiet_pulp = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # PuLP 3 on its 4.0 API


def _spopt_solver():
    pulp = pytest.importorskip("pulp")
    pytest.importorskip("spopt")
    solver = pulp.HiGHS(msg=False)  # spopt's examples use CBC, which is not bundled
    if not solver.available():
        pytest.skip("PuLP's HiGHS interface needs highspy (pip install highspy)")
    return solver


@pytest.mark.parametrize("minutes", [2.0, 4.0])
@quiet_pulp
def test_mclp_equals_spopt(walk_instance, minutes):
    from spopt.locate import MCLP

    solver = _spopt_solver()
    t, w, ne = walk_instance
    band = 60.0 * minutes
    for new in (1, 3, 5):
        ours = solve_sites(t, w, new=new, objective="coverage", threshold=band, n_existing=ne)
        predefined = np.r_[np.ones(ne), np.zeros(t.shape[1] - ne)].astype(int)
        model = MCLP.from_cost_matrix(t, w, band, p_facilities=new + ne, predefined_facilities_arr=predefined)
        model.solve(solver)
        assert ours.optimal
        assert ours.value == pytest.approx(model.problem.objective.value())


@quiet_pulp
def test_p_median_equals_spopt(walk_instance):
    from spopt.locate import PMedian

    solver = _spopt_solver()
    t, w, ne = walk_instance
    keep = np.isfinite(t).all(axis=1)  # spopt's p-median needs every pair reachable
    t, w = t[keep], w[keep]
    for new in (1, 2, 4):
        ours = solve_sites(t, w, new=new, objective="time", n_existing=ne)
        predefined = np.r_[np.ones(ne), np.zeros(t.shape[1] - ne)].astype(int)
        model = PMedian.from_cost_matrix(t, w, p_facilities=new + ne, predefined_facilities_arr=predefined)
        model.solve(solver)
        assert ours.optimal
        assert ours.value == pytest.approx(model.problem.objective.value(), rel=1e-9)
    # and without existing havens (every defender's list starts short: the relaxation is tightened)
    ours = solve_sites(t[:, ne:], w, new=3, objective="time")
    model = PMedian.from_cost_matrix(t[:, ne:], w, p_facilities=3)
    model.solve(solver)
    assert ours.value == pytest.approx(model.problem.objective.value(), rel=1e-9)


@pytest.mark.parametrize("minutes", [3.0, 5.0])
@quiet_pulp
def test_lscp_equals_spopt(walk_instance, minutes):
    from spopt.locate import LSCP

    solver = _spopt_solver()
    t, w, ne = walk_instance
    band = 60.0 * minutes
    coverable = (t <= band).any(axis=1)
    ours = solve_sites(t, w, new=t.shape[1] - ne, objective="cover-all", threshold=band, n_existing=ne)
    predefined = np.r_[np.ones(ne), np.zeros(t.shape[1] - ne)].astype(int)
    model = LSCP.from_cost_matrix(t[coverable], band, predefined_facilities_arr=predefined)
    model.solve(solver)
    assert ours.optimal and ours.all_covered
    assert ours.value + ne == pytest.approx(model.problem.objective.value())  # spopt counts the existing ones
    assert _covered(t, w, band, ours.open) == pytest.approx(w[coverable].sum())
    # a cap below the cover: the most weight possible, with the fewest havens, and it says so
    short = solve_sites(t, w, new=max(int(ours.value) - 1, 1), objective="cover-all", threshold=band, n_existing=ne)
    assert not short.all_covered


# ====================================================================== real one-way streets, points at intersections
@pytest.fixture(scope="module")
def agu_places(aguascalientes_drive):
    st = Streets(aguascalientes_drive.to_networkx())
    defenders = st.sample("d", 45, seed=31)
    sites = st.sample(
        "s", 11, seed=32, mix={"oneway_start": 0.25, "oneway_end": 0.25, "near_node": 0.15, "node": 0.15, "mid": 0.2}
    )
    return defenders, sites


@pytest.mark.parametrize("objective", ["coverage", "backup", "time", "cover-all"])
def test_real_one_way_streets_against_the_networkx_oracle(aguascalientes_drive, agu_places, objective):
    net = aguascalientes_drive
    defender_places, site_places = agu_places
    ne = 2
    weights = np.random.default_rng(33).integers(1, 4, len(defender_places)).astype(float)
    defenders = to_gdf(defender_places, net.crs, {"weight": weights})
    existing = to_gdf(site_places[:ne], net.crs)
    candidates = to_gdf(site_places[ne:], net.crs)
    oracle = Oracle.for_network(net, "time")
    cost, t, _ = oracle.matrix(defender_places, site_places)  # every pair, by networkx on the original graph
    minutes = 2.5
    band = 60.0 * minutes
    assert 0.2 < np.mean(t <= band) < 0.8  # a band that makes the choice matter
    new = 3
    result = site_havens(net, defenders, candidates, existing=existing, new=new, minutes=minutes, objective=objective)
    chosen = result.summary["chosen"]
    mask = np.zeros(len(site_places), dtype=bool)
    mask[:ne] = True
    mask[[ne + [p.id for p in site_places[ne:]].index(c) for c in chosen]] = True
    best = brute_force(t, weights, band, ne, new, objective)
    if objective == "coverage":
        assert _covered(t, weights, band, mask) == pytest.approx(best)
        assert result.summary["value"] == pytest.approx(best)
    elif objective == "backup":
        assert (_after_worst_loss(t, weights, band, mask), _covered(t, weights, band, mask)) == pytest.approx(best)
        assert result.summary["value"] == pytest.approx(best[0])
    elif objective == "time":
        m = cost[:, mask].min(axis=1)
        assert -float((weights * m)[np.isfinite(m)].sum()) == pytest.approx(best[1], rel=1e-9)
    else:
        assert (_covered(t, weights, band, mask), -len(chosen)) == pytest.approx(best)
    assert result.summary["optimal"]
    # coverage after siting (the routing core's nearest havens) agrees with the oracle, band by band
    for m_band, row in result.summary["coverage"]["after"].items():
        assert row["covered_weight"] == pytest.approx(_covered(t, weights, 60.0 * float(m_band), mask))
    before = result.summary["coverage"]["before"][f"{minutes:g}"]["covered_weight"]
    assert before == pytest.approx(_covered(t, weights, band, np.arange(len(mask)) < ne))
    # the worst single loss, before and after, weighted, from the oracle's matrix
    assert result.summary["worst_loss"]["after"]["weight_after_loss"] == pytest.approx(
        _after_worst_loss(t, weights, band, mask)
    )
    assert result.summary["worst_loss"]["before"]["weight_after_loss"] == pytest.approx(
        _after_worst_loss(t, weights, band, np.arange(len(mask)) < ne)
    )


def test_bounded_searches_under_a_length_cost_miss_no_pair(aguascalientes_drive, agu_places):
    """Routes chosen by length, band on their physical time: the bounded matrix gives the optimum of the full one."""
    net = aguascalientes_drive
    defender_places, site_places = agu_places
    defenders, sites = to_gdf(defender_places, net.crs), to_gdf(site_places, net.crs)
    full = routing.travel_matrix(net, defenders, sites, cost="length").time_s
    for objective in ("coverage", "backup"):
        result = site_havens(net, defenders, sites, new=3, minutes=2.0, objective=objective, cost="length")
        exact = solve_sites(full, None, new=3, objective=objective, threshold=120.0)
        assert result.summary["value"] == pytest.approx(exact.value)


# ====================================================================== the Python API, outputs and parameters
@pytest.fixture(scope="module")
def demo_result(demo_walk):
    from havenmap import layers

    defenders = layers.read_defenders(DEMO / "defenders.csv")
    havens = layers.read_havens(DEMO / "havens.geojson")
    candidates = siting.candidates_from_osm(
        NETWORK, "amenity=library,community_centre,university,school", exclude=havens
    )
    with pytest.warns(UserWarning, match="too far from any road"):
        result = site_havens(
            demo_walk, defenders, candidates, existing=havens, new=2, minutes=4, objective="backup",
            off_network_candidates="drop",
        )  # fmt: skip
    return demo_walk, defenders, havens, candidates, result


def test_result_tables_and_files(demo_result, tmp_path):
    net, defenders, _, _, result = demo_result
    assert list(result.sites.columns) == siting.SITES_COLUMNS
    assert result.sites["order"].tolist() == [1, 2]
    assert list(result.sites["site_id"]) == result.summary["chosen"]
    assert set(result.candidates.loc[result.candidates["chosen"], "site_id"]) == set(result.summary["chosen"])
    assert result.candidates.crs.equals("EPSG:4326")
    assert list(result.havens["status"]).count("new") == 2 and list(result.havens["status"]).count("existing") == 14
    s = result.summary
    for key in ("objective", "value", "optimal", "gap", "coverage", "worst_loss", "unreached", "timing", "model"):
        assert key in s
    assert set(s["coverage"]["before"]) == {"4", "5", "10", "15"}
    assert s["coverage"]["after"]["4"]["covered"] >= s["coverage"]["before"]["4"]["covered"]
    assert s["worst_loss"]["after"]["weight_after_loss"] == pytest.approx(s["value"])  # backup: the N-1 value
    assert s["worst_loss"]["after"]["weight_after_loss"] >= s["worst_loss"]["before"]["weight_after_loss"]
    assert {"D049", "D050"} <= set(s["unreached"]["ids"])
    siting.write_siting_outputs(result, tmp_path, net=net, defenders=defenders)
    assert pd.read_csv(tmp_path / "sites.csv").columns.tolist() == siting.SITES_COLUMNS
    assert json.loads((tmp_path / "siting.json").read_text())["chosen"] == s["chosen"]
    assert (tmp_path / "siting.json").stat().st_mode & 0o077 == 0  # names unreached defenders: owner-only
    geo = gpd.read_file(tmp_path / "siting.geojson")
    assert geo["chosen"].sum() == 2 and len(geo) == len(result.candidates)
    html = (tmp_path / "siting_map.html").read_text()
    assert "Candidate sites" in html and "Within 4 min before siting" in html and "Within 4 min of a haven" in html
    # defenders are aggregated: no defender's coordinates reach the page
    for lon, lat in shapely.get_coordinates(defenders.geometry.to_numpy())[:48]:
        assert f"{lat:.5f}" not in html or f"{lon:.5f}" not in html
    assert "<img src=x" not in html


def test_weights_priority_column_and_bad_weights():
    frame = pd.DataFrame({"id": ["a", "b", "c"], "Priority": ["2", "0.5", "3"]})
    assert siting.defender_weights(frame).tolist() == [2.0, 0.5, 3.0]
    assert siting.defender_weights(pd.DataFrame({"id": ["a"]})).tolist() == [1.0]
    for bad in ("-1", "", "nan", "lots", "inf"):
        frame = pd.DataFrame({"id": ["a", "b"], "weight": ["1", bad]})
        frame.attrs["source"] = "defenders.csv"
        with pytest.raises(
            InputError, match=re.escape(f"defenders.csv: row 2, id 'b', column 'weight': weight {bad!r}")
        ):
            siting.defender_weights(frame)


def test_params_validate_and_load_from_toml(tmp_path):
    path = tmp_path / "siting.toml"
    path.write_text('[siting]\nobjective = "backup"\nnew = 2\nminutes = 7.5\ntime_limit_s = 30\ncandidates = "c.csv"\n')
    params = SitingParams.from_file(path)
    assert params == SitingParams(objective="backup", new=2, minutes=7.5, time_limit_s=30.0)
    assert params.report_bands == (5.0, 7.5, 10.0, 15.0)
    for kwargs, word in (
        ({"objective": "fastest"}, "objective"),
        ({"new": 0}, "new"),
        ({"new": 2.5}, "new"),
        ({"minutes": -1}, "minutes"),
        ({"minutes": float("nan")}, "minutes"),
        ({"time_limit_s": 0}, "time_limit_s"),
    ):
        with pytest.raises(InputError, match=word):
            SitingParams(**kwargs)
    path.write_text("[siting]\nnew = 2\nspeed = 3\n")
    with pytest.raises(InputError, match=r"siting.toml: \[siting\]: unknown siting key 'speed'"):
        SitingParams.from_file(path)


def test_scenario_siting_section(tmp_path):
    base = f'network = "{NETWORK}"\nhavens = "{DEMO / "havens.geojson"}"\ndefenders = "{DEMO / "defenders.csv"}"\n'
    scenario = load_scenario(DEMO / "scenario.toml")
    assert scenario.siting["params"].objective == "backup" and scenario.siting["candidates_osm"]
    bad = tmp_path / "s.toml"
    bad.write_text(base + "[siting]\nnew = 2\n")
    with pytest.raises(InputError, match=r"\[siting\] needs exactly one of candidates"):
        load_scenario(bad)
    bad.write_text(base + '[siting]\ncandidates = "c.csv"\nnew = 0\n')
    with pytest.raises(InputError, match=r"s.toml: \[siting\]: new = 0"):
        load_scenario(bad)


def test_osm_tags_and_candidates_from_the_network_file(tmp_path):
    assert siting.parse_osm_tags("amenity=clinic,place_of_worship, healthcare=doctor") == {
        "amenity": ("clinic", "place_of_worship"),
        "healthcare": ("doctor",),
    }
    for bad in ("clinic", "amenity=", "=clinic", ""):
        with pytest.raises(InputError, match="--candidates-osm"):
            siting.parse_osm_tags(bad)
    found = siting.candidates_from_osm(NETWORK, "amenity=library")
    assert len(found) >= 5 and found["id"].str.match(r"^(node|way|relation)/\d+$").all()
    assert found["id"].is_unique and found.crs.equals("EPSG:4326")
    assert "Helsingin keskustakirjasto Oodi" in set(found["name"])  # a library mapped as a building (an area)
    with pytest.raises(InputError, match="not an OSM file"):
        siting.candidates_from_osm(tmp_path / "city.graphml", "amenity=library")


def test_time_limit_returns_the_best_found_with_its_gap():
    rng = np.random.default_rng(41)
    t = rng.uniform(0, 600, (400, 60))
    w = rng.integers(1, 10, 400).astype(float)
    sol = solve_sites(t, w, new=8, objective="backup", threshold=150.0, time_limit_s=0.05)
    assert sol.open[:].sum() == 8
    assert sol.value == pytest.approx(_after_worst_loss(t, w, 150.0, sol.open))
    if sol.optimal:
        assert sol.gap == 0.0
    else:
        assert sol.bound >= sol.value - 1e-6 and sol.gap == pytest.approx((sol.bound - sol.value) / sol.value)
        assert sol.status in ("time limit", siting._STATUS["greedy"])


# ====================================================================== the command line
def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "havenmap.cli", *args], capture_output=True, text=True, timeout=300)


def _site(out: Path, *extra: str, defenders: Path = DEMO / "defenders.csv") -> subprocess.CompletedProcess:
    return run(
        "site", "--network", str(NETWORK), "--network-type", "walk", "--defenders", str(defenders),
        "--havens", str(DEMO / "havens.geojson"), *extra, "--out", str(out),
    )  # fmt: skip


def test_cli_site_writes_the_outputs(tmp_path):
    out = tmp_path / "site"
    proc = _site(out, "--candidates-osm", "amenity=library,community_centre,university", "--new", "2", "--minutes", "4")
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {
        "sites.csv",
        "siting.json",
        "siting.geojson",
        "siting_map.html",
        "manifest.json",
    }
    summary = json.loads((out / "siting.json").read_text())
    assert summary["optimal"] and len(summary["chosen"]) == 2
    assert "1. open" in proc.stdout and "proven optimal" in proc.stdout


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _candidates_csv(tmp_path: Path, rows: str) -> Path:
    return _write(tmp_path / "candidates.csv", "id,name,latitude,longitude\n" + rows)


BAD_CLI = {
    "candidate_off_network": (
        lambda p: [
            "--candidates",
            str(_candidates_csv(p, "C1,Library,60.1700,24.9450\nC2,Far,60.1300,24.9450\n")),
            "--new",
            "1",
        ],
        ["candidates.csv", "'C2'", "from the nearest road", "--max-snap-m"],
    ),
    "duplicate_candidate_ids": (
        lambda p: ["--candidates", str(_candidates_csv(p, "C1,A,60.1700,24.9450\nC1,B,60.1710,24.9460\n"))],
        ["candidates.csv", "'C1'"],
    ),
    "candidate_id_of_a_haven": (
        lambda p: [
            "--candidates",
            str(_candidates_csv(p, "H01,A,60.1700,24.9450\nC2,B,60.1710,24.9460\n")),
            "--new",
            "1",
        ],
        ["'H01'", "existing haven"],
    ),
    "new_above_candidates": (
        lambda p: ["--candidates", str(_candidates_csv(p, "C1,A,60.1700,24.9450\n")), "--new", "3"],
        ["--new 3", "1 candidate"],
    ),
    "no_candidate_within_reach": (
        lambda p: [
            "--candidates",
            str(_candidates_csv(p, "C1,A,60.1700,24.9450\n")),
            "--new",
            "1",
            "--minutes",
            "0.01",
        ],
        ["no candidate site is within 0.01 min"],
    ),
    "new_zero": (lambda p: ["--candidates-osm", "amenity=library", "--new", "0"], ["--new"]),
    "unknown_objective": (lambda p: ["--candidates-osm", "amenity=library", "--objective", "nearest"], ["nearest"]),
    "bad_tags": (lambda p: ["--candidates-osm", "library"], ["--candidates-osm", "key=value"]),
    "both_candidate_sources": (
        lambda p: [
            "--candidates-osm",
            "amenity=library",
            "--candidates",
            str(_candidates_csv(p, "C1,A,60.17,24.94\n")),
        ],
        ["exactly one of --candidates"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CLI))
def test_cli_bad_input_one_line_exit_2_nothing_written(tmp_path, case):
    extra, expected = BAD_CLI[case]
    out = tmp_path / "out"
    proc = _site(out, *extra(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    for word in expected:
        assert word in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("value", ["-2", "", "NaN"])
def test_cli_bad_weights_fail_before_the_network_loads(tmp_path, value):
    defenders = _write(
        tmp_path / "d.csv", f"id,latitude,longitude,weight\nd1,60.17,24.945,1\nd2,60.171,24.946,{value}\n"
    )
    out = tmp_path / "out"
    proc = _site(out, "--candidates-osm", "amenity=library", defenders=defenders)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "d.csv: row 2, id 'd2', column 'weight'" in errors[0]
    assert "Loading the" not in proc.stderr  # checked before the network is read
    assert not out.exists()


def test_cli_candidates_osm_needs_an_osm_network(tmp_path):
    graphml = _write(tmp_path / "city.graphml", "<graphml/>")
    out = tmp_path / "out"
    proc = run(
        "site", "--network", str(graphml), "--defenders", str(DEMO / "defenders.csv"), "--candidates-osm",
        "amenity=library", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 2 and "not an OSM file" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_new_is_a_cap_for_cover_all_and_a_warning_when_short(tmp_path):
    out = tmp_path / "out"
    proc = _site(out, "--candidates-osm", "amenity=library,community_centre,university,school", "--new", "1",
                 "--minutes", "3", "--objective", "cover-all")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "siting.json").read_text())
    if not summary["all_covered"]:
        assert "cannot cover every defender" in proc.stderr
    assert summary["value"] <= 1


def test_defender_cells_not_points_on_the_map_unless_asked(demo_result, tmp_path):
    from havenmap import maps

    net, defenders, _, _, result = demo_result
    kw = {"roads": net, "havens": result.havens, "candidates": result.candidates, "defenders": defenders}
    kw |= {"coverage": result.coverage_after.defenders, "minutes": 4}
    default = maps.save_map(maps.siting_map(**kw), tmp_path / "cells.html")
    assert "EXACT DEFENDER LOCATIONS" not in default.read_text()
    assert default.stat().st_mode & 0o077 == 0  # the demo's safe houses (havens not public) make it owner-only
    exact = maps.save_map(maps.siting_map(**kw, exact_defenders=True), tmp_path / "exact.html")
    assert "EXACT DEFENDER LOCATIONS" in exact.read_text()
    assert exact.stat().st_mode & 0o077 == 0  # exact points: owner-only


def test_math_helpers_of_this_file():
    """The brute force itself on a hand-worked case: 2 defenders, sites A (reaches both), B (reaches one)."""
    t = np.array([[10.0, 10.0], [10.0, math.inf]])
    w = np.array([1.0, 2.0])
    assert brute_force(t, w, 20.0, 0, 1, "coverage") == 3.0
    assert brute_force(t, w, 20.0, 0, 2, "backup") == (1.0, 3.0)  # losing A leaves defender 0 only
    assert brute_force(t, w, 20.0, 0, 1, "cover-all") == (3.0, -1)
    assert brute_force(t, w, 20.0, 0, 1, "time") == (3.0, -30.0)


def test_user_text_stays_inert_in_the_outputs(tmp_path):
    net = _line_network()
    defenders = _at([("a", 0), ("b", 1000), ("c", 2000)])
    evil = "<img src=x onerror=alert(1)>{{ 7*7 }}"
    candidates = _at([("=cmd|' /C calc'!A0", 500), ("c2", 1500)], name=[evil, "plain"])
    result = site_havens(net, defenders, candidates, new=1, minutes=1.0)
    siting.write_siting_outputs(result, tmp_path, net=net, defenders=defenders)
    assert result.summary["chosen"] == ["=cmd|' /C calc'!A0"]  # a tie (2 defenders each): the first candidate
    html = (tmp_path / "siting_map.html").read_text()
    assert "<img src=x" not in html  # text only, never markup
    assert "{{ 7*7 }}" in html  # never evaluated as a template
    assert "\n'=cmd|" in (tmp_path / "sites.csv").read_text()  # a spreadsheet formula, defused
