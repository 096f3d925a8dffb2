"""Hand-built networks with hand-computed answers (tests/data/routing/): routing at intersections,
on one-way streets, parallel roads, self-loops and dead ends, for every analysis of the routing core.

The answers in expected.toml were worked on paper. ``test_oracle_equals_the_hand_answers`` proves
the independent oracle (tests/_oracle.py) on them before it is trusted on real streets.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from havenmap import costs, routing
from havenmap import coverage as hc
from havenmap.havens import nearest_havens
from havenmap.network import load_network

from ._oracle import BruteForce, Oracle, UndirectedOracle, assert_snapped_as_placed, edge_keys, piece_times
from ._routing_fixtures import DATA, build_graph, checkpoints, fixture_names, load_fixture

NAMES = fixture_names()
COST_ATTR = {"time": "travel_time", "length": "length"}


def _with(section: str) -> list[str]:
    return [n for n in NAMES if section in load_fixture(n).expected]


def _approx(value):
    return pytest.approx(value, rel=1e-6, abs=1e-4)


def _close(a: float, b: float) -> bool:
    return (math.isinf(a) and math.isinf(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-4)


# ---------------------------------------------------------------------- the fixtures themselves
@pytest.mark.parametrize("name", NAMES)
def test_points_snap_onto_the_roads_they_were_placed_on(name):
    fx = load_fixture(name)
    places = [*fx.defenders, *fx.havens]
    assert_snapped_as_placed(fx.net, places, fx.layer(places), Oracle(fx.graph).twin)


def test_the_graphml_copy_is_the_toml_network():
    from_file = load_network(DATA / "parallel_roads.graphml")
    built = build_graph("parallel_roads")
    graph = from_file.to_networkx()
    assert sorted(graph.edges(keys=True)) == sorted(built.edges(keys=True))
    for e in built.edges(keys=True):
        for attr in ("length", "travel_time"):
            assert graph.edges[e][attr] == built.edges[e][attr]
    assert nx.get_node_attributes(graph, "x") == nx.get_node_attributes(built, "x")


# ---------------------------------------------------------------------- the oracle against the hand answers
def _oracle_nearest_matches(oracle, fx, expected, key: str):
    got = oracle.nearest(fx.defenders, fx.havens, len(fx.havens))
    for d, rows in expected.items():
        assert len(got[d]) == len(rows), (d, got[d])
        for (c, t, length, h), (_, et, el) in zip(got[d], rows, strict=True):
            assert c == _approx(et if key == "time" else el), (d, h)  # the rank's cost
            mine = next(r for r in rows if r[0] == h)  # equal costs may come in either order
            assert (c, t, length) == (_approx(mine[1 if key == "time" else 2]), _approx(mine[1]), _approx(mine[2]))


@pytest.mark.parametrize("name", NAMES)
def test_oracle_equals_the_hand_answers(name):
    fx = load_fixture(name)
    exp = fx.expected
    places = fx.places
    for cost, expected in exp["nearest"].items():
        oracle = Oracle(fx.graph, COST_ATTR[cost])
        _oracle_nearest_matches(oracle, fx, expected, cost)
        # and the brute force (points inserted as nodes) agrees on every defender-haven cost
        brute = BruteForce(oracle, [*fx.defenders, *fx.havens])
        for d in fx.defenders:
            want = [oracle.route(d, h)[0] for h in fx.havens]
            np.testing.assert_allclose(brute.costs_from(d, fx.havens), want, rtol=1e-12, atol=1e-9)
    for m in exp.get("matrix", []):
        oracle = Oracle(fx.graph, COST_ATTR[m["cost"]])
        _, t, length = oracle.matrix([places[i] for i in m["origins"]], [places[i] for i in m["destinations"]])
        np.testing.assert_allclose(t, m["time_s"], rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(length, m["length_m"], rtol=1e-6, atol=1e-4)
    for r in exp.get("reach", []):
        oracle = Oracle(fx.graph)
        for u, v, k, f, t in r["points"]:
            assert _close(oracle.costs_along(places[r["haven"]], [(u, v, k)], [f])[0], t), (r["haven"], u, v, f)
    if "distances" in exp:
        d = exp["distances"]
        undirected = UndirectedOracle(fx.graph)
        found = {
            (a, b): x
            for a in d["a"]
            for b, x in zip(
                d["b"], undirected.distances(places[a], [places[b] for b in d["b"]], d["max_m"]), strict=True
            )
            if math.isfinite(x)
        }
        assert found == {(a, b): _approx(x) for a, b, x in d["pairs"]}
    if "closures" in exp:
        closed = {tuple(e) for e in exp["closures"]["closed"]}
        oracle = Oracle(fx.graph, {e: math.inf if e in closed else t for e, t in _times(fx.graph).items()})
        _oracle_nearest_matches(oracle, fx, exp["closures"]["nearest"], "time")


def _times(graph):
    return {(u, v, k): d["travel_time"] for u, v, k, d in graph.edges(keys=True, data=True)}


# ---------------------------------------------------------------------- nearest havens
def _check_nearest(result, expected: dict, cost: str, k: int, n_havens: int):
    """The first k ranks of ``expected`` (every reachable haven, cheapest first; ties in either order)."""
    column = "travel_time_s" if cost == "time" else "distance_m"
    by_defender = {d: rows.sort_values("rank") for d, rows in result.groupby("defender_id")}
    assert set(by_defender) == set(expected)
    for d, every in expected.items():
        got = by_defender[d]
        rows = every[:k]
        assert got["rank"].tolist() == list(range(1, min(k, n_havens) + 1)), d
        cost_of = {h: (t if cost == "time" else length) for h, t, length in every}
        for rank, row in enumerate(got.itertuples(), start=1):
            where = f"defender {d}, rank {rank}: got {row.haven_id} {row.travel_time_s} s {row.distance_m} m"
            if rank > len(rows):
                assert not row.reachable, f"{where}; expected no haven"
                continue
            assert row.reachable, f"{where}; expected {rows[rank - 1]}"
            want = [h for h, t, length in every if _close(cost_of[h], cost_of[rows[rank - 1][0]])]
            assert row.haven_id in want, f"{where}; expected one of {want} at rank {rank}"
            _, t, length = next(r for r in every if r[0] == row.haven_id)
            assert getattr(row, column) == _approx(cost_of[row.haven_id]), f"{where}; expected {rows[rank - 1]}"
            assert (row.travel_time_s, row.distance_m) == (_approx(t), _approx(length)), (
                f"{where}; expected {t} s {length} m"
            )


@pytest.mark.parametrize("cost", ["time", "length"])
@pytest.mark.parametrize("name", NAMES)
def test_nearest_havens_equal_the_hand_answers(name, cost):
    fx = load_fixture(name)
    for k in range(1, len(fx.havens) + 1):
        result = nearest_havens(fx.net, fx.layer(fx.defenders), fx.layer(fx.havens), k=k, cost=cost)
        _check_nearest(result, fx.expected["nearest"][cost], cost, k, len(fx.havens))


def test_a_graphml_network_gives_the_hand_answers():
    fx = load_fixture("parallel_roads", network=load_network(DATA / "parallel_roads.graphml"))
    for cost in ("time", "length"):
        result = nearest_havens(fx.net, fx.layer(fx.defenders), fx.layer(fx.havens), k=2, cost=cost)
        _check_nearest(result, fx.expected["nearest"][cost], cost, 2, 2)


@pytest.mark.parametrize("name", _with("closures"))
def test_closures_equal_the_hand_answers(name):
    fx = load_fixture(name)
    weights = costs.cost_weights(fx.net, closures=checkpoints(name))
    keys = edge_keys(fx.net)
    assert {keys[i] for i in np.flatnonzero(~np.isfinite(weights))} == {
        tuple(e) for e in fx.expected["closures"]["closed"]
    }
    k = len(fx.havens)
    result = nearest_havens(fx.net, fx.layer(fx.defenders), fx.layer(fx.havens), k=k, edge_weights=weights)
    _check_nearest(result, fx.expected["closures"]["nearest"], "time", k, k)


# ---------------------------------------------------------------------- coverage and N-1
@pytest.mark.parametrize("name", _with("coverage"))
def test_coverage_equals_the_hand_answers(name):
    fx = load_fixture(name)
    exp = fx.expected["coverage"]
    cov = hc.coverage(fx.net, fx.layer(fx.defenders), fx.layer(fx.havens), exp["minutes"])
    frame = cov.defenders.set_index("defender_id")
    for d, (h, t) in exp["best"].items():
        row = frame.loc[d]
        assert (row["haven_id"], row["travel_time_s"]) == (h, _approx(t)), d
        assert row["reachable"]
        band = exp["band_min"][d]
        assert (math.isnan(band) and math.isnan(row["band_min"])) or row["band_min"] == band, d
        second = exp["second"][d]
        if second:
            assert (row["second_haven_id"], row["second_travel_time_s"]) == (second[0], _approx(second[1])), d
        else:
            assert np.isnan(row["second_travel_time_s"]), d
    bands = cov.bands().set_index("minutes")
    assert [int(bands.loc[m, "covered"]) for m in exp["minutes"]] == exp["covered"]
    served = cov.havens.set_index("haven_id")["served"]
    assert {h: int(served[h]) for h in exp["served"]} == exp["served"]


@pytest.mark.parametrize("name", _with("n_minus_1"))
def test_n_minus_1_equals_the_hand_answers(name):
    fx = load_fixture(name)
    minutes = fx.expected["coverage"]["minutes"]
    cov = hc.coverage(fx.net, fx.layer(fx.defenders), fx.layer(fx.havens), minutes)
    n1 = hc.n_minus_1(cov).set_index("haven_id")
    for h, exp in fx.expected["n_minus_1"].items():
        row = n1.loc[h]
        assert [int(row[f"covered_{m:g}"]) for m in minutes] == exp["covered"], h
        assert [int(row[f"lost_{m:g}"]) for m in minutes] == exp["lost"], h
        assert int(row["cut_off"]) == exp["cut_off"], h
        assert int(row["lose_all_cover"]) == len(exp["lose_all_cover"]), h
        assert set(row["lose_all_cover_ids"].split(";")) - {""} == set(exp["lose_all_cover"]), h


# ---------------------------------------------------------------------- service areas
@pytest.mark.parametrize("name", _with("reach"))
def test_reach_edges_equal_the_hand_answers(name):
    fx = load_fixture(name)
    twin = Oracle(fx.graph).twin
    keys = edge_keys(fx.net)
    for r in fx.expected["reach"]:
        pieces = hc.reach_edges(fx.net, fx.layer([r["haven"]]), r["minutes"])
        limit = 60.0 * r["minutes"]
        for u, v, k, f, t in r["points"]:
            got = piece_times(fx.net, twin, pieces, [keys.index((u, v, k))], [f])[0]
            where = f"haven {r['haven']}, point {f} along {u}->{v}: got {got} s"
            if t <= limit:
                assert got == _approx(t), f"{where}, expected {t} s"
            else:
                assert got > limit - 1e-9, f"{where}, expected beyond the {limit:g} s band ({t} s)"


# ---------------------------------------------------------------------- legs and undirected distances
@pytest.mark.parametrize("name", _with("matrix"))
def test_travel_matrix_equals_the_hand_answers(name):
    fx = load_fixture(name)
    for m in fx.expected["matrix"]:
        tm = routing.travel_matrix(fx.net, fx.layer(m["origins"]), fx.layer(m["destinations"]), cost=m["cost"])
        assert list(tm.origin_ids) == m["origins"] and list(tm.destination_ids) == m["destinations"]
        np.testing.assert_allclose(tm.time_s, m["time_s"], rtol=1e-6, atol=1e-4, err_msg=f"{name} time_s")
        np.testing.assert_allclose(tm.length_m, m["length_m"], rtol=1e-6, atol=1e-4, err_msg=f"{name} length_m")
        np.testing.assert_allclose(tm.cost, tm.time_s if m["cost"] == "time" else tm.length_m, rtol=1e-9, atol=1e-5)


@pytest.mark.parametrize("name", _with("distances"))
def test_network_distances_equal_the_hand_answers(name):
    fx = load_fixture(name)
    d = fx.expected["distances"]
    got = routing.network_distances(fx.net, fx.layer(d["a"]), fx.layer(d["b"]), d["max_m"])
    assert list(got.columns[:3]) == ["a_id", "b_id", "distance_m"]
    found = {(a, b): x for a, b, x in got[["a_id", "b_id", "distance_m"]].itertuples(index=False)}
    assert found == {(a, b): _approx(x) for a, b, x in d["pairs"]}
