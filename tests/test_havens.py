"""Nearest havens against the independent networkx oracle (points at intersections, one-way ones included),
hand-worked cases, unreachable and off-network defenders."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely

from havenmap import costs
from havenmap.havens import NEAREST_COLUMNS, nearest_havens
from havenmap.network import from_graph
from havenmap.snap import snap_points

from ._oracle import Oracle, Streets, assert_nearest_matches, random_points_on_edges, to_gdf


def _check_against_oracle(net, model: str, k: int, n_def: int = 80, n_hav: int = 7, seed: int = 3) -> int:
    """nearest_havens for k = 1..k against the independent oracle, on points placed where bugs live.

    A good share of defenders and havens stand exactly on intersections (on drive: where one-way
    streets start or end, or a few decimetres along such a street from its node), the others
    mid-street, at dead ends and at the extract's borders.
    """
    st = Streets(net.to_networkx())
    mix = None if st.oneway else {"node": 0.35, "mid": 0.45, "beyond": 0.1, "border": 0.1}
    defenders, havens = st.sample("d", n_def, seed, mix), st.sample("h", n_hav, seed + 100, mix)
    weights = _danger(net) if model == "danger" else None
    cost = "length" if model == "length" else "time"
    expected = Oracle.for_network(net, cost, weights).nearest(defenders, havens, k)
    column = {"time": "travel_time_s", "length": "distance_m", "danger": None}[model]
    checked = 0
    for kk in range(1, k + 1):
        result = nearest_havens(
            net, to_gdf(defenders, net.crs), to_gdf(havens, net.crs), k=kk, cost=cost, edge_weights=weights
        )
        checked += assert_nearest_matches(
            result, {d: rows[:kk] for d, rows in expected.items()}, column, kk, n_hav, [*defenders, *havens]
        )
    return checked


def _danger(net):
    """Danger-aware weights: risk per road (the same both ways), a risk cap closing the worst 5 % of roads."""
    risk = np.random.default_rng(17).gamma(0.6, 1.5, net.n_edges)
    twin = net.edge_twin
    risk[twin >= 0] = np.maximum(risk[twin >= 0], risk[twin[twin >= 0]])
    return costs.danger_weights(net, risk, alpha=2.0, max_risk=float(np.quantile(risk, 0.95)))


@pytest.mark.parametrize("model", ["time", "length", "danger"])
def test_k_nearest_agree_with_networkx_on_real_drive_network(aguascalientes_drive, model):
    assert _check_against_oracle(aguascalientes_drive, model, k=3) > 300


@pytest.mark.parametrize("cost", ["time", "length"])
def test_nearest_agree_with_networkx_on_demo_walk_network(demo_walk, cost):
    assert _check_against_oracle(demo_walk, cost, k=2, n_def=60, n_hav=10, seed=11) > 150


def test_result_columns_and_route_geometry(aguascalientes_drive):
    net = aguascalientes_drive
    defenders = random_points_on_edges(net, 20, "d", 5)
    havens = random_points_on_edges(net, 4, "h", 6)
    result = nearest_havens(net, defenders, havens, k=2)
    assert list(result.columns) == [*NEAREST_COLUMNS, "geometry"]
    assert result.crs.equals("EPSG:4326")
    assert len(result) == 40 and set(result["defender_id"]) == set(defenders["id"])
    projected = result.loc[result["reachable"]].to_crs(net.crs)
    d_snap = snap_points(net, defenders).set_index("id")
    h_snap = snap_points(net, havens).set_index("id")
    for row in projected.itertuples():
        start, end = row.geometry.coords[0], row.geometry.coords[-1]
        assert (
            np.hypot(*np.subtract(start, d_snap.loc[row.defender_id, ["snap_x", "snap_y"]].to_numpy(dtype=float)))
            < 0.01
        )
        assert np.hypot(*np.subtract(end, h_snap.loc[row.haven_id, ["snap_x", "snap_y"]].to_numpy(dtype=float))) < 0.01
        # planar length in UTM vs great-circle distance_m: equal within the UTM scale error
        assert row.geometry.length == pytest.approx(row.distance_m, rel=0.005, abs=0.5)


def _street_graph(oneway_back: bool = False) -> nx.MultiDiGraph:
    """A 1 km straight street a—b in a projected CRS, plus a spur b—c; 10 m/s everywhere."""
    g = nx.MultiDiGraph(crs="EPSG:32635")
    g.add_node(1, x=500000.0, y=6670000.0)
    g.add_node(2, x=501000.0, y=6670000.0)
    g.add_node(3, x=501000.0, y=6670500.0)
    g.add_edge(1, 2, length=1000.0, travel_time=100.0)
    if not oneway_back:
        g.add_edge(2, 1, length=1000.0, travel_time=100.0)
    g.add_edge(2, 3, length=500.0, travel_time=50.0)
    g.add_edge(3, 2, length=500.0, travel_time=50.0)
    return g


def _points(rows, crs="EPSG:32635"):
    return gpd.GeoDataFrame({"id": [r[0] for r in rows]}, geometry=[shapely.Point(r[1], r[2]) for r in rows], crs=crs)


def test_mid_street_defender_goes_the_right_way_hand_worked():
    net = from_graph(_street_graph())
    havens = _points([("west", 500000.0, 6670010.0), ("north", 501000.0, 6670500.0)])
    # 900 m along the street: 90 s back west, 10 + 50 = 60 s to the north haven
    defenders = _points([("d", 500900.0, 6670005.0)])
    result = nearest_havens(net, defenders, havens, k=2)
    assert list(result["haven_id"]) == ["north", "west"]
    assert result["travel_time_s"].tolist() == pytest.approx([60.0, 90.0])
    assert result["distance_m"].tolist() == pytest.approx([600.0, 900.0])


def test_one_way_street_forces_the_long_way_or_no_way():
    net = from_graph(_street_graph(oneway_back=True))
    havens = _points([("west", 500000.0, 6670000.0)])
    defenders = _points([("d", 500100.0, 6670000.0)])
    result = nearest_havens(net, defenders, havens)
    assert not result["reachable"].iat[0]
    assert result.geometry.iat[0] is None
    assert "no road route" in result["reason"].iat[0]


def test_off_network_defender_is_listed_unreachable_with_reason_and_warning():
    net = from_graph(_street_graph())
    havens = _points([("west", 500000.0, 6670000.0)])
    defenders = _points([("near", 500500.0, 6670010.0), ("far", 500500.0, 6672000.0)])
    with pytest.warns(UserWarning, match="far"):
        result = nearest_havens(net, defenders, havens, max_snap_m=250)
    far = result.set_index("defender_id").loc["far"]
    assert not far["reachable"] and far["reason"].startswith("off network: 1,581 m")
    assert result.set_index("defender_id").loc["near", "travel_time_s"] == pytest.approx(50.0)


def test_custom_edge_weights_close_roads_without_touching_the_network():
    net = from_graph(_street_graph())
    before = net.edge_time.copy()
    havens = _points([("west", 500000.0, 6670000.0), ("north", 501000.0, 6670500.0)])
    defenders = _points([("d", 500900.0, 6670000.0)])
    weights = net.edge_time.copy()
    u, v = net.node_id[net.edge_u], net.node_id[net.edge_v]
    weights[((u == 1) & (v == 2)) | ((u == 2) & (v == 1))] = np.inf
    result = nearest_havens(net, defenders, havens, edge_weights=weights)
    # the street is closed both ways: the defender standing on it cannot move
    assert not result["reachable"].iat[0]
    np.testing.assert_array_equal(net.edge_time, before)


def test_cut_pieces_match_shapely_substring(aguascalientes_drive):
    from shapely.ops import substring

    from havenmap._graph import _cut_pieces

    net = aguascalientes_drive
    rng = np.random.default_rng(7)
    edges = rng.integers(0, net.n_edges, 200)
    a, b = rng.uniform(0, 1, 200), rng.uniform(0, 1, 200)
    f0, f1 = np.minimum(a, b), np.maximum(a, b)
    f0[:20], f1[20:40] = 0.0, 1.0
    coords, counts = _cut_pieces(net, edges, f0, f1)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i, e in enumerate(edges):
        line = shapely.LineString(net.edge_coords(e))
        expected = substring(line, f0[i], f1[i], normalized=True)
        got = coords[offsets[i] : offsets[i + 1]]
        assert shapely.LineString(got).length == pytest.approx(expected.length, abs=1e-6)
        np.testing.assert_allclose(got[0], expected.coords[0], atol=1e-6)
        np.testing.assert_allclose(got[-1], expected.coords[-1], atol=1e-6)
        assert shapely.LineString(got).hausdorff_distance(expected) < 1e-6
