"""Cost models: closures from barrier files, danger-aware weights, risk tables, and their errors."""

from __future__ import annotations

import warnings

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from havenmap import costs
from havenmap import coverage as hc
from havenmap.errors import InputError
from havenmap.havens import nearest_havens
from havenmap.network import from_graph

from ._oracle import Oracle, Streets, assert_nearest_matches, edge_keys, random_points_on_edges, to_gdf


def _mid(net, e, offset_m=0.0):
    line = net.edge_geometries([e])[0]
    p = line.interpolate(0.5, normalized=True)
    a, b = np.asarray(line.coords[0]), np.asarray(line.coords[-1])
    normal = np.array([-(b - a)[1], (b - a)[0]]) / max(np.hypot(*(b - a)), 1e-9)
    return shapely.Point(np.asarray(p.coords[0]) + offset_m * normal)


def _barriers(net, seed=0):
    """Checkpoints 4 m off random roads, a long line across town, a polygon: (GeoDataFrame, network CRS)."""
    rng = np.random.default_rng(seed)
    reps = net.undirected_edges
    pts = [_mid(net, int(e), 4.0) for e in rng.choice(reps, 6, replace=False)]
    lo, hi = net.node_xy.min(axis=0), net.node_xy.max(axis=0)
    line = shapely.LineString([lo + (hi - lo) * [0.2, 0.3], lo + (hi - lo) * [0.8, 0.6]])
    poly = shapely.Point(lo + (hi - lo) * [0.5, 0.2]).buffer(120.0)
    geoms = [*pts, line, poly]
    return gpd.GeoDataFrame({"id": [f"b{i}" for i in range(len(geoms))]}, geometry=geoms, crs=net.crs)


def _oracle_mask(net, barriers, tol=costs.DEFAULT_POINT_TOLERANCE_M):
    """Closed edges by a per-barrier, per-edge shapely loop (DE-9IM for lines)."""
    lines = net.edge_geometries()
    closed = np.zeros(net.n_edges, dtype=bool)
    for geom in barriers.to_crs(net.crs).geometry:
        if geom.geom_type == "Point":
            d = shapely.distance(geom, lines)
            closed |= (d <= tol) & (d <= d.min() + 1.0)
        elif geom.geom_type == "LineString":
            closed |= np.array(
                [ln.relate_pattern(geom, "T********") or ln.relate_pattern(geom, "*T*******") for ln in lines]
            )
        else:
            closed |= shapely.intersects(lines, geom)
    return closed


@pytest.mark.parametrize("fixture", ["aguascalientes_drive", "demo_walk"])
def test_closure_mask_agrees_with_a_per_edge_shapely_oracle(fixture, request, tmp_path):
    net = request.getfixturevalue(fixture)
    barriers = _barriers(net, seed=3)
    path = tmp_path / "barriers.geojson"
    barriers.to_crs(4326).to_file(path)
    mask = costs.closure_mask(net, path)
    expected = _oracle_mask(net, gpd.read_file(path))
    assert mask.sum() > 10
    np.testing.assert_array_equal(mask, expected)
    # a closed two-way road is closed both ways
    twin = net.edge_twin[mask]
    assert mask[twin[twin >= 0]].all()


def _street_graph():
    """A cross: centre 0 with arms to 1 (east), 2 (north), 3 (west), 4 (south), 500 m each, two-way, 10 m/s."""
    g = nx.MultiDiGraph(crs="EPSG:32635")
    x0, y0 = 500000.0, 6670000.0
    g.add_node(0, x=x0, y=y0)
    for n, (dx, dy) in enumerate([(500, 0), (0, 500), (-500, 0), (0, -500)], start=1):
        g.add_node(n, x=x0 + dx, y=y0 + dy)
        g.add_edge(0, n, length=500.0, travel_time=50.0)
        g.add_edge(n, 0, length=500.0, travel_time=50.0)
    return g


def _closed_pairs(net, mask):
    ids = net.node_id
    return {(int(ids[u]), int(ids[v])) for u, v in zip(net.edge_u[mask], net.edge_v[mask], strict=True)}


def test_point_line_polygon_rules_hand_worked():
    net = from_graph(_street_graph())
    crs = "EPSG:32635"
    x0, y0 = 500000.0, 6670000.0

    def mask_of(geom):
        return _closed_pairs(net, costs.closure_mask(net, gpd.GeoDataFrame({"id": ["b"]}, geometry=[geom], crs=crs)))

    # a checkpoint on the east arm closes it (both ways) and nothing else
    assert mask_of(shapely.Point(x0 + 250, y0 + 3)) == {(0, 1), (1, 0)}
    # a checkpoint on the junction closes every road meeting there
    assert len(mask_of(shapely.Point(x0 + 0.5, y0 + 0.5))) == 8
    # a line along the east-west road closes it but not the cross streets it touches at the centre
    assert mask_of(shapely.LineString([(x0 - 500, y0), (x0 + 500, y0)])) == {(0, 1), (1, 0), (0, 3), (3, 0)}
    # a line across the north arm closes it
    assert mask_of(shapely.LineString([(x0 - 20, y0 + 200), (x0 + 20, y0 + 210)])) == {(0, 2), (2, 0)}
    # a no-go area around the south end closes the south arm
    assert mask_of(shapely.Point(x0, y0 - 480).buffer(40)) == {(0, 4), (4, 0)}
    # a checkpoint 100 m from any road closes nothing, with a warning naming it
    with pytest.warns(UserWarning, match="close no road.*b"):
        assert mask_of(shapely.Point(x0 + 250, y0 + 100)) == set()


def test_closures_agree_with_networkx_on_the_graph_without_those_edges(aguascalientes_drive, tmp_path):
    net = aguascalientes_drive
    before = net.edge_time.copy()
    st = Streets(net.to_networkx())
    barriers = _barriers(net, seed=5)
    # and a checkpoint exactly on an intersection where a one-way street ends: every road there closes
    junction = st.oneway_ends[11]
    barriers.loc[len(barriers)] = ["b_node", shapely.Point(st.at_node("x", junction).xy)]
    path = tmp_path / "closures.gpkg"
    barriers.to_file(path)
    weights = costs.cost_weights(net, closures=path)
    np.testing.assert_array_equal(net.edge_time, before)  # the network is never changed
    closed = costs.closure_mask(net, path)
    keys = edge_keys(net)
    assert {e for i in np.flatnonzero(closed) for e in keys[i][:2]} >= {junction}
    # defenders where bugs live, and on the intersections at both ends of every closed road: they may
    # still leave by the streets that are open
    ends = sorted({n for i in np.flatnonzero(closed) for n in keys[i][:2]} & st.clear_nodes)
    defenders = [*st.sample("d", 60, 8), *(st.at_node(f"end{n}", n, "closed-road end") for n in ends)]
    havens = st.sample("h", 6, 9)
    expected = Oracle.for_network(net, "time", weights).nearest(defenders, havens, 1)
    near = nearest_havens(net, to_gdf(defenders, net.crs), to_gdf(havens, net.crs), edge_weights=weights)
    assert_nearest_matches(near, expected, "travel_time_s", 1, len(havens), [*defenders, *havens])
    cov = hc.coverage(net, to_gdf(defenders, net.crs), to_gdf(havens, net.crs), (2,), edge_weights=weights)
    frame = cov.defenders.set_index("defender_id")
    for d, options in expected.items():
        if not options:
            assert not frame.loc[d, "reachable"], d
        else:
            assert frame.loc[d, "travel_time_s"] == pytest.approx(options[0][1], rel=1e-9), d
    cut = sum(not o for o in expected.values())
    assert 0 < cut < len(expected)


# ---------------------------------------------------------------------- danger
def test_danger_weights_formula_and_cap(aguascalientes_drive):
    net = aguascalientes_drive
    risk = np.random.default_rng(1).uniform(0, 3, net.n_edges)
    w = costs.danger_weights(net, risk, alpha=0.5, max_risk=2.0)
    ok = risk <= 2.0
    np.testing.assert_allclose(w[ok], net.edge_time[ok] * (1 + 0.5 * risk[ok]))
    assert np.isinf(w[~ok]).all()
    np.testing.assert_allclose(costs.danger_weights(net, risk, alpha=0.0), net.edge_time)
    np.testing.assert_allclose(
        costs.danger_weights(net, risk, cost="length", alpha=2.0), net.edge_length * (1 + 2 * risk)
    )
    for bad in ({"alpha": -1.0}, {"alpha": np.nan}, {"max_risk": -0.5}):
        with pytest.raises(InputError, match=r"--alpha|--max-risk"):
            costs.danger_weights(net, risk, **bad)


def test_danger_aware_route_avoids_risk_and_reports_exposure(aguascalientes_drive):
    net = aguascalientes_drive
    rng = np.random.default_rng(4)
    risk = rng.uniform(0, 1, net.n_edges)
    risk[net.edge_twin >= 0] = risk[np.maximum(net.edge_twin[net.edge_twin >= 0], 0)]  # same road, same risk
    weights = costs.danger_weights(net, risk, alpha=4.0, max_risk=0.9)
    st = Streets(net.to_networkx())
    defenders, havens = st.sample("d", 40, 13), st.sample("h", 4, 14)
    result = nearest_havens(
        net, to_gdf(defenders, net.crs), to_gdf(havens, net.crs), edge_weights=weights, risk=risk
    ).set_index("defender_id")
    # exposure = risk x metres along the route: the oracle with risk x length as its physical "time"
    graph = net.to_networkx()
    keys = edge_keys(net)
    exposure_graph = graph.copy()
    for key, x in zip(keys, (risk * net.edge_length).tolist(), strict=True):
        exposure_graph.edges[key]["travel_time"] = x
    by_weight = dict(zip(keys, weights.tolist(), strict=True))
    expected = Oracle(graph, by_weight).nearest(defenders, havens, 1)
    exposure = Oracle(exposure_graph, by_weight).nearest(defenders, havens, 1)
    checked, failures = 0, []
    for d in defenders:
        if not expected[d.id]:
            if result.loc[d.id, "reachable"]:
                failures.append(f"{d}: expected no haven")
            continue
        _, t, _, _ = expected[d.id][0]
        x = exposure[d.id][0][1]
        got_t, got_x = result.loc[d.id, "travel_time_s"], result.loc[d.id, "exposure"]
        if not (np.isclose(got_t, t, rtol=1e-7) and np.isclose(got_x, x, rtol=1e-7, atol=1e-6)):
            failures.append(f"{d}: expected {t:.2f} s exposure {x:.2f}, got {got_t:.2f} s exposure {got_x:.2f}")
        checked += 1
    assert not failures, f"{len(failures)} wrong, e.g.\n" + "\n".join(failures[:8])
    assert checked > 20
    assert "exposure" not in nearest_havens(net, to_gdf(defenders, net.crs), to_gdf(havens, net.crs)).columns


# ---------------------------------------------------------------------- risk tables
def test_edge_risk_matches_by_u_v_key_by_edge_and_fills_twins(demo_walk, tmp_path):
    net = demo_walk
    edges = net.edges_gdf()
    edges["edge"] = np.arange(net.n_edges)
    edges["risk"] = np.random.default_rng(2).uniform(0, 5, net.n_edges)
    shuffled = edges.sample(frac=1.0, random_state=1)
    np.testing.assert_allclose(costs.edge_risk(net, shuffled[["u", "v", "key", "risk"]]), edges["risk"])
    np.testing.assert_allclose(costs.edge_risk(net, shuffled[["edge", "risk"]]), edges["risk"])
    # the shared edge-risk schema as GeoJSON (u, v, key, edge, risk, geometry), EPSG:4326
    path = tmp_path / "edge_risk.geojson"
    shuffled[["u", "v", "key", "edge", "risk", "geometry"]].to_crs(4326).to_file(path)
    np.testing.assert_allclose(costs.edge_risk(net, path), edges["risk"], rtol=1e-9)
    # one row per physical road (undirected layer): the twin gets the same risk, no edge is missing
    undirected = net.edges_gdf(undirected=True)
    undirected["risk"] = np.arange(len(undirected), dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = costs.edge_risk(net, undirected[["u", "v", "key", "risk"]])
    reps = net.undirected_edges
    np.testing.assert_array_equal(r[reps], undirected["risk"].to_numpy())
    has = net.edge_twin[reps] >= 0
    np.testing.assert_array_equal(r[net.edge_twin[reps][has]], r[reps][has])
    # without key, a row applies to every parallel edge between u and v
    nokey = edges.drop_duplicates(["u", "v"])[["u", "v"]].assign(risk=2.0)
    assert (costs.edge_risk(net, nokey) == 2.0).all()
    # edges absent from the table get 0 (their twins aside), with a warning
    with pytest.warns(UserWarning, match="have no risk row; they get risk 0"):
        partial = costs.edge_risk(net, edges.iloc[:10][["edge", "risk"]])
    expected = np.zeros(net.n_edges)
    twins = net.edge_twin[:10]
    expected[twins[twins >= 0]] = edges["risk"].to_numpy()[:10][twins >= 0]
    expected[:10] = edges["risk"].to_numpy()[:10]
    np.testing.assert_array_equal(partial, expected)


def _frame(net):
    edges = net.edges_gdf()[["u", "v", "key"]].reset_index(drop=True)
    edges["risk"] = 0.5
    return edges


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({(6, "risk"): np.nan}, r"row 7, column 'risk': risk is blank or NaN"),
        ({(6, "risk"): -0.1}, r"row 7, column 'risk': risk is negative"),
        ({(2, "risk"): "high"}, r"row 3, column 'risk': risk is not a finite number"),
        ({(2, "risk"): np.inf}, r"row 3, column 'risk': risk is not a finite number"),
        ({(4, "u"): 12345}, r"row 5, column 'u': no edge u=12345"),
        ({(4, "key"): 7}, r"row 5, column 'u': no edge .*key=7"),
        ({(4, "v"): "x"}, r"row 5, column 'v': is not a whole number"),
    ],
)
def test_bad_risk_tables_name_file_row_and_column(aguascalientes_drive, tmp_path, change, message):
    net = aguascalientes_drive
    path = tmp_path / "risk.csv"
    frame = _frame(net)
    for (row, col), value in change.items():
        frame[col] = frame[col].astype(object)
        frame.loc[row, col] = value
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=f"^{path}: {message}"):
        costs.edge_risk(net, path)


def test_more_bad_risk_inputs(aguascalientes_drive, tmp_path):
    net = aguascalientes_drive
    frame = _frame(net)
    dup = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
    with pytest.raises(InputError, match=rf"row {len(frame) + 1}: the same edge as row 4"):
        costs.edge_risk(net, dup, label="risk")
    with pytest.raises(InputError, match="no 'risk' column"):
        costs.edge_risk(net, frame.drop(columns="risk"))
    with pytest.raises(InputError, match=r"no u/v .* or edge"):
        costs.edge_risk(net, pd.DataFrame({"risk": [0.1, 0.2]}))
    with pytest.raises(InputError, match=r"row 2, column 'edge': edge 99999 is not an edge index"):
        costs.edge_risk(net, pd.DataFrame({"edge": [0, 99999], "risk": [0.1, 0.2]}))
    with pytest.raises(InputError, match=f"3 risk values for {net.n_edges} edges"):
        costs.edge_risk(net, np.array([0.1, 0.2, 0.3]))
    bad = np.full(net.n_edges, 0.2)
    bad[17] = np.nan
    with pytest.raises(InputError, match="risk array: edge 17: risk is NaN"):
        costs.edge_risk(net, bad)
    bad[17] = -2
    with pytest.raises(InputError, match="risk array: edge 17: risk is negative"):
        costs.danger_weights(net, bad)
    # wrong CRS: the geometries say EPSG:3857 but hold UTM metres
    wrong = net.edges_gdf()[["u", "v", "key", "geometry"]].assign(risk=0.1).set_crs(3857, allow_override=True)
    path = tmp_path / "wrong_crs.geojson"
    wrong.to_file(path)
    with pytest.raises(
        InputError,
        match=rf"{path}: feature 1, column 'geometry': the geometry lies .* check the "
        r"file's CRS",
    ):
        costs.edge_risk(net, path)


# ---------------------------------------------------------------------- barrier files
def test_bad_barrier_files_name_file_and_feature(aguascalientes_drive, tmp_path):
    net = aguascalientes_drive
    good = _barriers(net).to_crs(4326)
    # an empty geometry
    path = tmp_path / "empty.geojson"
    frame = good.copy()
    frame.loc[2, "geometry"] = shapely.Point()
    frame.to_file(path)
    with pytest.raises(InputError, match=rf"^{path}: feature 3, column 'geometry': the geometry is empty"):
        costs.read_barriers(path)
    # a geometry that is not a barrier
    path = tmp_path / "collection.geojson"
    frame = good.copy()
    frame.loc[1, "geometry"] = shapely.GeometryCollection([shapely.Point(0, 0), shapely.LineString([(0, 0), (1, 1)])])
    frame.to_file(path)
    with pytest.raises(
        InputError,
        match=rf"^{path}: feature 2, column 'geometry': a geometrycollection is not a "
        "barrier",
    ):
        costs.read_barriers(path)
    # projected coordinates declared as EPSG:4326 (the GeoJSON default): nothing lies near the network
    path = tmp_path / "wrong_crs.geojson"
    gpd.GeoDataFrame({"id": ["x"]}, geometry=[shapely.Point(21.87, -102.27)], crs=4326).to_file(path)
    with pytest.raises(
        InputError,
        match=rf"^{path}: none of the 1 barriers lies within the road network's area"
        ".*swapped",
    ):
        costs.closure_mask(net, path)
    # a frame without CRS holding metres
    nocrs = gpd.GeoDataFrame({"id": ["x"]}, geometry=[shapely.Point(781000.0, 2420500.0)])
    with pytest.raises(InputError, match="no CRS is declared and the coordinates are not degrees"):
        costs.read_barriers(nocrs, label="barriers")
    # a CSV of checkpoints without an id column
    path = tmp_path / "checkpoints.csv"
    path.write_text("latitude,longitude\n21.87,-102.27\n")
    with pytest.raises(InputError, match=rf"^{path}: .*id"):
        costs.read_barriers(path)
    # an unreadable file
    path = tmp_path / "broken.geojson"
    path.write_text("{not json")
    with pytest.raises(InputError, match=rf"^{path}: cannot be read"):
        costs.read_barriers(path)


def test_csv_checkpoints(aguascalientes_drive, tmp_path):
    net = aguascalientes_drive
    point = gpd.GeoSeries([_mid(net, int(net.undirected_edges[5]), 3.0)], crs=net.crs).to_crs(4326).iloc[0]
    path = tmp_path / "checkpoints.csv"
    path.write_text(f"id,latitude,longitude\ncp1,{point.y},{point.x}\n")
    barriers = costs.read_barriers(path)
    assert barriers["kind"].tolist() == ["point"] and barriers["barrier_id"].tolist() == ["cp1"]
    mask = costs.closure_mask(net, barriers)
    assert mask[net.undirected_edges[5]] and mask.sum() == 1 + (net.edge_twin[net.undirected_edges[5]] >= 0)


def test_route_exposure_helper(aguascalientes_drive):
    net = aguascalientes_drive
    risk = np.linspace(0, 1, net.n_edges)
    assert costs.route_exposure(net, risk, [3, 4], [1.0, 0.5]) == pytest.approx(
        risk[3] * net.edge_length[3] + 0.5 * risk[4] * net.edge_length[4]
    )


def test_nearest_command_with_closures_and_risk(aguascalientes_drive, tmp_path):
    from typer.testing import CliRunner

    from havenmap.cli import app

    from .conftest import shared_file

    net = aguascalientes_drive
    defenders = random_points_on_edges(net, 15, "d", 71)
    havens = random_points_on_edges(net, 3, "h", 72)
    defenders.to_file(tmp_path / "d.geojson")
    havens.to_file(tmp_path / "h.geojson")
    risk = net.edges_gdf()[["u", "v", "key"]].assign(risk=np.linspace(0, 2, net.n_edges))
    risk.to_csv(tmp_path / "risk.csv", index=False)
    _barriers(net, seed=7).to_file(tmp_path / "closures.geojson")
    base = [
        "nearest",
        "-n",
        str(shared_file("aguascalientes.osm.bz2")),
        "-d",
        str(tmp_path / "d.geojson"),
        "--havens",
        str(tmp_path / "h.geojson"),
    ]
    out = tmp_path / "routes.geojson"
    result = CliRunner().invoke(
        app,
        [
            *base,
            "--risk",
            str(tmp_path / "risk.csv"),
            "--alpha",
            "2",
            "--max-risk",
            "1.5",
            "--closures",
            str(tmp_path / "closures.geojson"),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    routes = gpd.read_file(out).set_index("defender_id")
    weights = costs.cost_weights(net, risk=risk, alpha=2.0, max_risk=1.5, closures=tmp_path / "closures.geojson")
    expected = nearest_havens(net, defenders, havens, edge_weights=weights, risk=costs.edge_risk(net, risk)).set_index(
        "defender_id"
    )
    np.testing.assert_allclose(
        routes.loc[expected.index, "exposure"].to_numpy(dtype=float),
        expected["exposure"].to_numpy(dtype=float),
        rtol=1e-9,
    )
    result = CliRunner().invoke(app, [*base, "--alpha", "2", "-o", str(out)])
    assert result.exit_code != 0
