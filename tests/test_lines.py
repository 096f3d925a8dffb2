"""Road networks from line layers, proven against peers that do not share our model.

Oracles: momepy's ``gdf_to_nx`` (primal graph of line ends) and PySAL spaghetti (network
distances between snapped points) on real street layers shipped by registry packages
(libpysal's ``geodanet/streets.shp``, momepy's ``bubenec.gpkg``); networkx on the graph of the
same roads read from OSM XML, exported by the test as a Geofabrik-style shapefile; GEOS noding
(``shapely.node``) for crossings; hand-computed fixtures for every topology rule.

For peer comparisons our distances use the planar length of each edge geometry
(``RoadNetwork.geom_length``), the length momepy and spaghetti use; ``edge_length`` itself is
great-circle metres, as for OSM (checked separately).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.sparse import csgraph
from scipy.spatial import cKDTree
from shapely.geometry import LineString, MultiLineString, Point, Polygon

import havenmap as hm
from havenmap.errors import InputError, NetworkError
from havenmap.lines import LineOptions, from_lines, network_report, read_lines
from havenmap.network import load_network

from .conftest import shared_file

libpysal_examples = pytest.importorskip("libpysal.examples")
momepy = pytest.importorskip("momepy")

STREETS = libpysal_examples.get_path("streets.shp")
CRIMES = libpysal_examples.get_path("crimes.shp")
SCHOOLS = libpysal_examples.get_path("schools.shp")
BUBENEC = momepy.datasets.get_path("bubenec")
UTM33 = "EPSG:32633"
X0, Y0 = 500_000.0, 5_000_000.0  # a local origin in UTM 33N (on its central meridian)


# ---------------------------------------------------------------------- helpers
def layer(*geoms, crs=UTM33, **columns) -> gpd.GeoDataFrame:
    """A line layer in metres around (X0, Y0); geometries given relative to the origin."""
    moved = [shapely.transform(g, lambda c: c + np.array([X0, Y0])) for g in geoms]
    return gpd.GeoDataFrame(columns, geometry=moved, crs=crs)


def planar(net: hm.RoadNetwork) -> hm.RoadNetwork:
    """The network with planar geometry lengths (what momepy and spaghetti measure)."""
    return dataclasses.replace(net, edge_length=net.geom_length.copy(), _cache={})


def node_at(net: hm.RoadNetwork, xy) -> np.ndarray:
    """Our node index at each projected point (within 1 mm), or a failed assertion."""
    dist, idx = cKDTree(net.node_xy).query(np.atleast_2d(np.asarray(xy, dtype=float)))
    assert (dist < 1e-3).all(), f"no node within 1 mm of {np.atleast_2d(xy)[dist >= 1e-3][:3]}"
    return idx


def local(net, x, y):
    return node_at(net, [[X0 + x, Y0 + y]])[0]


def planar_distances(net: hm.RoadNetwork, sources: np.ndarray) -> np.ndarray:
    return csgraph.dijkstra(net.csr(weights=net.geom_length), indices=sources)


def assert_matches_oracle(net: hm.RoadNetwork, graph: nx.Graph, *, weight: str, n_sources: int = 40, seed: int = 0):
    """Shortest path lengths between the oracle's nodes equal ours between the same places."""
    nodes = list(graph.nodes)
    ours_of = dict(zip(nodes, node_at(net, np.array(nodes)).tolist(), strict=True))
    rng = np.random.default_rng(seed)
    sources = [nodes[i] for i in rng.choice(len(nodes), min(n_sources, len(nodes)), replace=False)]
    ours = planar_distances(net, np.array([ours_of[s] for s in sources]))
    compared = 0
    for row, s in enumerate(sources):
        theirs = nx.single_source_dijkstra_path_length(graph, s, weight=weight)
        for t in nodes:
            expected = theirs.get(t, np.inf)
            got = ours[row, ours_of[t]]
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-6), (s, t)
            compared += np.isfinite(expected)
    return compared


def momepy_graph(frame: gpd.GeoDataFrame, **kw) -> nx.Graph:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return momepy.gdf_to_nx(frame, approach="primal", **kw)


def near_roads(net: hm.RoadNetwork, n: int, prefix: str, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` points within about 30 m of the network's nodes, with ids ``prefix0..``."""
    rng = np.random.default_rng(seed)
    xy = net.node_xy[rng.choice(net.n_nodes, n, replace=False)] + rng.uniform(-30, 30, (n, 2))
    return gpd.GeoDataFrame({"id": [f"{prefix}{i}" for i in range(n)]}, geometry=shapely.points(xy), crs=net.crs)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "havenmap.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


# ---------------------------------------------------------------------- peer oracles on real street layers
@pytest.mark.parametrize(("path", "name"), [(STREETS, None), (BUBENEC, "streets")])
def test_real_street_layers_match_momepy_shortest_paths(path, name):
    net = read_lines(path, layer=name)
    frame = gpd.read_file(path, layer=name).to_crs(net.crs)
    graph = momepy_graph(frame)
    assert net.n_nodes == graph.number_of_nodes()
    assert net.n_edges == 2 * graph.number_of_edges()  # every line two-way: twin edges
    assert (net.edge_twin >= 0).all() and (net.edge_twin[net.edge_twin] == np.arange(net.n_edges)).all()
    assert assert_matches_oracle(net, graph, weight="mm_len") > 500
    # great-circle lengths stay within the UTM scale error of the planar ones
    np.testing.assert_allclose(net.edge_length, net.geom_length, rtol=5e-3)


def test_one_way_lines_match_momepy_directed_graph():
    net0 = read_lines(STREETS)
    frame = gpd.read_file(STREETS).to_crs(net0.crs)
    rng = np.random.default_rng(3)
    frame["oneway"] = rng.choice(["B", "F", "T"], len(frame), p=[0.5, 0.3, 0.2])
    net = from_lines(frame, oneway_column="oneway")
    # the oracle: T lines drawn the other way, and momepy's boolean one-way column
    oracle = frame.copy()
    against = oracle["oneway"] == "T"
    oracle.loc[against, "geometry"] = shapely.reverse(oracle.loc[against, "geometry"].to_numpy())
    oracle["is_oneway"] = oracle["oneway"] != "B"
    graph = momepy_graph(oracle.drop(columns="oneway"), directed=True, oneway_column="is_oneway")
    assert net.n_edges == graph.number_of_edges()
    assert (net.edge_twin < 0).sum() == oracle["is_oneway"].sum()
    assert assert_matches_oracle(net, graph, weight="mm_len", n_sources=60) > 1000


def test_messy_copy_of_a_real_layer_gives_the_clean_distances():
    """Split, merged, reversed, duplicated, repeated-vertex and zero-length rows; loose ends near junctions."""
    clean = gpd.read_file(STREETS)
    net0 = read_lines(STREETS)
    frame = clean.to_crs(net0.crs).reset_index(drop=True)
    oracle = momepy_graph(frame)
    rng = np.random.default_rng(7)
    geoms = list(frame.geometry)
    rows = []
    # loose ends: pull one end 0.4 m away from junctions of 3+ lines (the others keep the junction)
    ends = shapely.get_coordinates(shapely.get_point(frame.geometry.to_numpy(), -1))
    starts = shapely.get_coordinates(shapely.get_point(frame.geometry.to_numpy(), 0))
    keys = pd.Series([tuple(np.round(p, 6)) for p in np.vstack([starts, ends])]).value_counts()
    pulled, used = 0, set()
    for g in geoms:
        coords = np.asarray(g.coords)
        kind = rng.random()
        junction = tuple(np.round(coords[-1], 6))
        if keys[junction] >= 3 and junction not in used and kind < 0.25:
            used.add(junction)
            angle = rng.uniform(0, 2 * np.pi)
            coords = coords.copy()
            coords[-1] += 0.4 * np.array([np.cos(angle), np.sin(angle)])
            pulled += 1
            rows.append(LineString(coords))
        elif kind < 0.4 and len(coords) >= 3:  # split at an interior vertex into two rows
            k = len(coords) // 2
            rows += [LineString(coords[: k + 1]), LineString(coords[k:])]
        elif kind < 0.5 and len(coords) >= 3:  # one row as a MultiLineString of its two halves
            k = len(coords) // 2
            rows.append(MultiLineString([coords[: k + 1], coords[k:]]))
        elif kind < 0.6:
            rows.append(LineString(coords[::-1]))
        elif kind < 0.7:  # duplicated, once the other way round
            rows += [LineString(coords), LineString(coords[::-1])]
        elif kind < 0.8:  # a repeated vertex
            rows.append(LineString(np.vstack([coords[:1], coords])))
        else:
            rows.append(LineString(coords))
    rows += [LineString([starts[0], starts[0]]), None]  # a zero-length line and an empty row
    messy = gpd.GeoDataFrame(geometry=rows, crs=net0.crs)
    net = from_lines(messy)
    report = network_report(net)
    assert pulled > 10 and report.ends_joined == pulled and report.max_join_m == pytest.approx(0.4)
    assert report.dropped["duplicate_pieces"] > 10 and report.dropped["zero_length_pieces"] == 1
    assert report.dropped["empty_geometries"] == 1
    assert report.components == 1 and report.crossings == 0
    assert assert_matches_oracle(net, oracle, weight="mm_len", n_sources=60) > 5000


def test_spaghetti_network_distances_between_snapped_points():
    spaghetti = pytest.importorskip("spaghetti")
    net = planar(read_lines(STREETS))
    streets = gpd.read_file(STREETS).to_crs(net.crs)
    crimes = gpd.read_file(CRIMES).to_crs(net.crs)
    schools = gpd.read_file(SCHOOLS).to_crs(net.crs)
    crimes["id"] = [f"c{i}" for i in range(len(crimes))]
    schools["id"] = [f"s{i}" for i in range(len(schools))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ntw = spaghetti.Network(in_data=streets)
        ntw.snapobservations(crimes, "crimes")
        ntw.snapobservations(schools, "schools")
        expected = ntw.allneighbordistances("crimes", "schools")

    routes = hm.nearest_havens(net, crimes, schools, k=len(schools), cost="length")
    got = routes.pivot(index="defender_id", columns="haven_id", values="distance_m")
    got = got.loc[crimes["id"], schools["id"]].to_numpy()
    # points within 2 m of an intersection count as at it (routing rule 1); spaghetti keeps them apart
    snapped = hm.snap_points(net, pd.concat([crimes, schools], ignore_index=True))
    length = net.geom_length[snapped["edge"].to_numpy()]
    offset = snapped["edge_offset_m"].to_numpy()
    mid_street = np.minimum(offset, length - offset) > 2.0
    rows, cols = mid_street[: len(crimes)], mid_street[len(crimes) :]
    assert rows.sum() > 200 and cols.sum() >= 6
    # spaghetti rounds vertices to 11 significant digits (0.1 mm at UTM northings): 1 mm tolerance
    np.testing.assert_allclose(got[np.ix_(rows, cols)], expected[np.ix_(rows, cols)], rtol=0, atol=1e-3)
    # undirected road metres between the same points (threat kernels, alerts) agree too
    from havenmap.routing import network_distances

    pairs = network_distances(net, crimes, schools, 1e6)
    table = pairs.pivot(index="a_id", columns="b_id", values="distance_m").loc[crimes["id"], schools["id"]]
    np.testing.assert_allclose(table.to_numpy()[np.ix_(rows, cols)], expected[np.ix_(rows, cols)], rtol=0, atol=1e-3)


# ---------------------------------------------------------------------- the same roads from OSM and from a shapefile
@pytest.fixture(scope="module")
def geofabrik_roads(tmp_path_factory):
    """The drive roads of the Aguascalientes extract exported as a Geofabrik-style shapefile (EPSG:4326)."""
    osm = load_network(shared_file("aguascalientes.osm.bz2"), "drive")
    edges = osm.edges_gdf(to_crs="EPSG:4326", undirected=True)
    one_way = osm.edge_twin[osm.undirected_edges] < 0
    tagged = edges["maxspeed"].notna().to_numpy()
    frame = gpd.GeoDataFrame(
        {
            "osm_id": edges["osmid"].astype(str).to_numpy(),
            "code": 5100,
            "fclass": edges["highway"].astype(str).to_numpy(),
            "name": edges["name"].astype(object).where(edges["name"].notna(), None).to_numpy(),
            "oneway": np.where(one_way, "F", "B"),  # geometries run along the edge: F = as drawn
            "maxspeed": np.where(tagged, np.round(edges["speed_kph"].to_numpy()), 0).astype(int),
        },
        geometry=edges.geometry.to_numpy(),
        crs="EPSG:4326",
    )
    path = tmp_path_factory.mktemp("geofabrik") / "gis_osm_roads_free_1.shp"
    frame.to_file(path)
    return osm, path


def test_osm_and_its_geofabrik_shapefile_give_the_same_network(geofabrik_roads):
    osm, path = geofabrik_roads
    net = read_lines(path, oneway_column="oneway", speed_column="maxspeed", class_column="fclass")
    assert net.crs == osm.crs and net.n_nodes == osm.n_nodes and net.n_edges == osm.n_edges
    ours = node_at(net, osm.node_xy)  # every OSM node is a node of the line network
    assert len(set(ours.tolist())) == osm.n_nodes

    def edge_table(n, u, v):
        frame = pd.DataFrame({"u": u, "v": v, "length": n.edge_length, "time": n.edge_time, "twin": n.edge_twin >= 0})
        return frame.sort_values(["u", "v", "length"]).reset_index(drop=True)

    a = edge_table(osm, ours[osm.edge_u], ours[osm.edge_v])
    b = edge_table(net, net.edge_u, net.edge_v)
    np.testing.assert_array_equal(a[["u", "v", "twin"]].to_numpy(), b[["u", "v", "twin"]].to_numpy())
    np.testing.assert_allclose(a["length"], b["length"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(a["time"], b["time"], rtol=1e-9, atol=1e-6)
    report = network_report(net)
    assert report.speed_sources.keys() <= {"speed_column", "class"} and report.speed_sources["speed_column"] > 50
    assert report.ends_joined == 0 and report.dropped["duplicate_pieces"] == 0


def test_osm_and_shapefile_shortest_paths_agree_with_networkx(geofabrik_roads):
    osm, path = geofabrik_roads
    net = read_lines(path, oneway_column="oneway", speed_column="maxspeed", class_column="fclass")
    graph = osm.to_networkx()
    ours_of = dict(zip(osm.node_id.tolist(), node_at(net, osm.node_xy).tolist(), strict=True))
    rng = np.random.default_rng(11)
    sources = rng.choice(osm.node_id, 12, replace=False)
    compared = 0
    for cost, weight in (("length", "length"), ("time", "travel_time")):
        ours = csgraph.dijkstra(net.csr(cost=cost), indices=[ours_of[int(s)] for s in sources])
        for row, s in enumerate(sources):
            theirs = nx.single_source_dijkstra_path_length(graph, int(s), weight=weight)
            for t, i in ours_of.items():
                assert ours[row, i] == pytest.approx(theirs.get(t, np.inf), rel=1e-9, abs=1e-6)
                compared += t in theirs
    assert compared > 10_000


def test_routing_on_the_shapefile_equals_routing_on_osm(geofabrik_roads):
    osm, path = geofabrik_roads
    net = read_lines(path, oneway_column="oneway", speed_column="maxspeed", class_column="fclass")
    defenders, havens = near_roads(osm, 60, "d", seed=5), near_roads(osm, 6, "h", seed=6)
    a = hm.nearest_havens(osm, defenders, havens, k=2)
    b = hm.nearest_havens(net, defenders, havens, k=2)
    pd.testing.assert_series_equal(a["haven_id"], b["haven_id"])
    np.testing.assert_allclose(a["travel_time_s"], b["travel_time_s"], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(a["distance_m"], b["distance_m"], rtol=1e-9, atol=1e-6)


def test_osmnx_node_edge_frames_give_the_graph_network(aguascalientes_drive):
    import osmnx as ox

    graph = aguascalientes_drive.to_networkx()
    nodes, edges = ox.graph_to_gdfs(graph)
    net = hm.from_gdfs(nodes, edges)
    ref = hm.from_graph(graph)
    np.testing.assert_array_equal(net.node_id, ref.node_id)
    np.testing.assert_array_equal(net.edge_u, ref.edge_u)
    np.testing.assert_array_equal(net.edge_v, ref.edge_v)
    np.testing.assert_allclose(net.edge_length, ref.edge_length)
    np.testing.assert_allclose(net.edge_time, ref.edge_time)
    np.testing.assert_array_equal(net.edge_twin, ref.edge_twin)  # vectorised twins = from_graph's loop
    np.testing.assert_allclose(net.geom_xy, ref.geom_xy)
    # the same frames in lon/lat: projected to the same UTM zone, the same lengths
    geo = hm.from_gdfs(
        nodes.to_crs(4326).assign(x=lambda f: f.geometry.x, y=lambda f: f.geometry.y), edges.to_crs(4326)
    )
    assert geo.crs == ref.crs
    np.testing.assert_allclose(geo.node_xy, ref.node_xy, atol=1e-3)
    np.testing.assert_array_equal(geo.edge_twin, ref.edge_twin)


# ---------------------------------------------------------------------- topology rules, hand-computed
def test_t_junction_without_a_shared_vertex_joins_within_the_tolerance():
    bar = LineString([(0, 0), (200, 0)])
    stem = LineString([(100, 100), (100, 0.5)])  # stops 0.5 m short of the bar
    touching = LineString([(150, -80), (150, 0)])  # ends exactly on the bar, no vertex there
    net = planar(from_lines(layer(bar, stem, touching)))
    report = network_report(net)
    assert net.n_nodes == 6 and report.ends_joined == 2 and report.components == 1
    d = planar_distances(net, [local(net, 100, 100)])[0]
    assert d[local(net, 0, 0)] == pytest.approx(200.0)  # 100 down the stem (end moved onto the bar) + 100
    assert d[local(net, 150, -80)] == pytest.approx(100 + 50 + 80)
    apart = from_lines(layer(bar, stem, touching), snap_tolerance_m=0)
    assert network_report(apart).components == 3 and network_report(apart).ends_joined == 0


def test_gaps_join_only_within_the_tolerance():
    a = LineString([(0, 0), (100, 0)])
    b = LineString([(100.4, 0), (200, 0)])  # 0.4 m gap: joined at one of the two ends
    c = LineString([(201.5, 0), (300, 0)])  # 1.5 m gap: apart at 1 m, joined at 2 m
    net = planar(from_lines(layer(a, b, c)))
    assert network_report(net).components == 2
    d = planar_distances(net, [local(net, 0, 0)])[0]
    assert d[local(net, 200, 0)] == pytest.approx(200.0, abs=0.41)
    wide = planar(from_lines(layer(a, b, c), snap_tolerance_m=2))
    assert network_report(wide).components == 1 and network_report(wide).max_join_m == pytest.approx(1.5)
    assert planar_distances(wide, [local(wide, 0, 0)])[0][local(wide, 300, 0)] == pytest.approx(300.0, abs=2)


def test_crossings_stay_apart_unless_split():
    ew = LineString([(0, 0), (200, 0)])
    bridge = LineString([(100, -100), (100, 100)])  # crosses without a vertex: a flyover
    shared = LineString([(50, -100), (50, 0), (50, 100)])  # shares the vertex (50, 0)... of its own only
    net = from_lines(layer(ew, bridge, shared))
    report = network_report(net)
    assert report.crossings == 2 and report.components == 3 and not report.split_crossings
    split = planar(from_lines(layer(ew, bridge, shared), split_crossings=True))
    report = network_report(split)
    assert report.crossings == 2 and report.split_crossings and report.components == 1
    d = planar_distances(split, [local(split, 100, -100)])[0]
    assert d[local(split, 50, 100)] == pytest.approx(100 + 50 + 100)
    # GEOS noding of the same lines is the oracle for the split network
    drawn = layer(ew, bridge, shared).geometry.to_numpy()
    noded = gpd.GeoDataFrame(geometry=shapely.get_parts(shapely.node(shapely.union_all(drawn))), crs=UTM33)
    assert assert_matches_oracle(split, momepy_graph(noded.to_crs(split.crs)), weight="mm_len") > 30


def test_a_line_crossing_itself_joins_there_only_when_split():
    figure = LineString([(0, 0), (100, 100), (100, 0), (0, 100)])  # crosses itself at (50, 50)
    apart = planar(from_lines(layer(figure)))
    assert network_report(apart).crossings == 1 and apart.n_nodes == 2
    assert planar_distances(apart, [local(apart, 0, 0)])[0][local(apart, 0, 100)] == pytest.approx(
        2 * np.hypot(100, 100) + 100
    )
    split = planar(from_lines(layer(figure), split_crossings=True))
    middle = local(split, 50, 50)
    assert split.n_nodes == 3 and (split.edge_u == middle).sum() == 4
    assert planar_distances(split, [local(split, 0, 0)])[0][local(split, 0, 100)] == pytest.approx(np.hypot(100, 100))


def test_lines_through_a_shared_vertex_join_like_osm_nodes():
    a = LineString([(0, 0), (100, 0), (200, 0)])
    b = LineString([(100, -100), (100, 0), (100, 100)])  # both pass through (100, 0)
    net = planar(from_lines(layer(a, b)))
    assert net.n_nodes == 5 and net.n_edges == 8 and network_report(net).crossings == 0
    assert planar_distances(net, [local(net, 0, 0)])[0][local(net, 100, 100)] == pytest.approx(200)


def test_rings_loops_and_multilines():
    ring = LineString([(0, 0), (100, 0), (100, 100), (0, 100), (0, 0)])
    spur = LineString([(100, 100), (200, 200)])  # touches the ring at its vertex (100, 100)
    lonely = LineString([(500, 0), (600, 0), (550, 50), (500, 0)])  # a roundabout on its own: a loop
    multi = MultiLineString([[(-100, 0), (-50, 0)], [(-50, 0), (0, 0)]])
    net = planar(from_lines(layer(ring, spur, lonely, multi)))
    d = planar_distances(net, [local(net, 200, 200)])[0]
    assert d[local(net, 0, 0)] == pytest.approx(np.hypot(100, 100) + 200)  # either way round the ring
    assert d[local(net, -100, 0)] == pytest.approx(np.hypot(100, 100) + 300)
    loop = local(net, 500, 0)
    loops = np.flatnonzero((net.edge_u == loop) & (net.edge_v == loop))
    assert len(loops) == 2 and set(net.edge_twin[loops]) == set(loops)  # a two-way loop: twins
    assert network_report(net).components == 2


def test_duplicates_are_kept_once_with_the_directions_of_all_copies():
    street = LineString([(0, 0), (50, 10), (100, 0)])
    copies = layer(street, street, shapely.reverse(street), oneway=["F", "F", "F"])
    net = from_lines(copies, oneway_column="oneway")
    assert net.n_edges == 2 and (net.edge_twin >= 0).all()  # drawn once each way: two-way
    assert network_report(net).dropped["duplicate_pieces"] == 2
    one = from_lines(layer(street, street, oneway=["F", "yes"]), oneway_column="oneway")
    assert one.n_edges == 1 and one.edge_twin[0] == -1


def test_direction_values_of_osm_esri_and_geofabrik():
    values = ["yes", "true", "1", "F", "FT", "-1", "T", "TF", "reverse", "no", "false", "0", "B", "", None, "N"]
    along = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0], bool)
    against = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0], bool)
    geoms = [LineString([(i * 100, 0), (i * 100, 50)]) for i in range(len(values))]
    net = from_lines(layer(*geoms, oneway=values), oneway_column="oneway")
    start = np.array([local(net, i * 100, 0) if along[i] or against[i] else -1 for i in range(len(values))])
    for i in np.flatnonzero(along | against):
        top = local(net, i * 100, 50)
        assert ((net.edge_u == start[i]) & (net.edge_v == top)).any() == along[i], values[i]
        assert ((net.edge_u == top) & (net.edge_v == start[i])).any() == against[i], values[i]
    assert network_report(net).dropped["left_out_no_travel"] == 1  # N: no travel
    numeric = from_lines(layer(*geoms[:3], oneway=[1, 0, -1]), oneway_column="oneway")
    assert numeric.n_edges == 4
    walk = from_lines(layer(*geoms, oneway=values), oneway_column="oneway", network_type="walk")
    assert (walk.edge_twin >= 0).all() and (walk.edge_speed == 4.8).all()


def test_speeds_from_column_class_and_default_are_reported():
    geoms = [LineString([(i * 100, 0), (i * 100, 360)]) for i in range(7)]
    frame = layer(
        *geoms,
        maxspeed=["50", "30 mph", "0", "", None, "60", "RU:urban"],
        fclass=["primary", "residential", "primary", "track_grade3", "my_class", "footway", "residential"],
    )
    net = from_lines(frame, speed_column="maxspeed", class_column="fclass")
    speeds = {int(net.edge_attrs["row"][e]): net.edge_speed[e] for e in range(net.n_edges)}
    assert speeds == pytest.approx({1: 50, 2: 30 * 1.609344, 3: 60, 4: 10, 5: 30, 7: 50})  # row 6: footway left out
    report = network_report(net)
    assert report.speed_sources == {"speed_column": 6, "class": 4, "default": 2}
    assert report.unknown_classes == {"my_class": 1} and report.left_out_classes == {"footway": 1}
    assert report.dropped["left_out_by_class"] == 1
    np.testing.assert_allclose(net.edge_time, net.edge_length / (net.edge_speed / 3.6))
    mph = from_lines(layer(*geoms[:2], speed=[30, 40]), speed_column="speed", speed_unit="mph")
    assert sorted(set(mph.edge_speed)) == pytest.approx([30 * 1.609344, 40 * 1.609344])
    none = network_report(from_lines(layer(*geoms[:2])))
    assert none.speed_sources == {"default": 4} and any("two-way" in h for h in none.hints)


def test_class_speed_tables_override_the_defaults(tmp_path):
    geoms = [LineString([(i * 100, 0), (i * 100, 100)]) for i in range(3)]
    frame = layer(*geoms, kind=["Primary Road", "Track/Trail", "residential"])
    (tmp_path / "speeds.csv").write_text("class,speed_kph\nPrimary Road,70\nTrack/Trail,12\n")
    (tmp_path / "speeds.toml").write_text('"primary road" = 65\n"track/trail" = 0\nresidential = 25\n')
    by_csv = from_lines(frame, class_column="kind", class_speeds=tmp_path / "speeds.csv")
    assert sorted(set(by_csv.edge_speed)) == [12, 30, 70]  # residential from the built-in table
    by_toml = from_lines(frame, class_column="kind", class_speeds=str(tmp_path / "speeds.toml"))
    assert sorted(set(by_toml.edge_speed)) == [25, 65] and network_report(by_toml).left_out_classes == {
        "track/trail": 1
    }
    (tmp_path / "bad.csv").write_text("class,speed_kph\nprimary,fast\n")
    with pytest.raises(InputError, match=r"row 1, column 'speed_kph': 'fast'"):
        LineOptions(class_speeds=tmp_path / "bad.csv")


def test_walk_networks_ignore_one_ways_and_leave_out_motorways():
    geoms = [LineString([(i * 100, 0), (i * 100, 100)]) for i in range(3)]
    frame = layer(*geoms, oneway=["F", "T", "B"], highway=["motorway", "steps", "footway"])
    walk = from_lines(frame, oneway_column="oneway", class_column="highway", network_type="walk")
    assert walk.network_type == "walk" and walk.n_edges == 4 and (walk.edge_twin >= 0).all()
    assert sorted(set(walk.edge_speed)) == [2.4, 4.8]  # steps at half speed
    drive = from_lines(frame, oneway_column="oneway", class_column="highway")
    assert drive.n_edges == 1  # motorway one-way; steps and footway are not for driving


@pytest.mark.parametrize("suffix", [".shp", ".geojson", ".parquet", ".fgb", ".gpkg"])
def test_every_line_format_reads_to_the_same_network(tmp_path, suffix):
    ref = read_lines(BUBENEC, layer="streets")
    frame = gpd.read_file(BUBENEC, layer="streets")
    path = tmp_path / f"streets{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_file(path)
    net = load_network(path)
    assert net.crs == ref.crs and net.n_nodes == ref.n_nodes and net.n_edges == ref.n_edges
    np.testing.assert_allclose(np.sort(net.edge_length), np.sort(ref.edge_length), rtol=1e-9)


def test_any_crs_is_reprojected_to_local_utm():
    lines_m = layer(LineString([(0, 0), (1000, 0)]), LineString([(1000, 0), (1000, 1000)]))
    in_metres = from_lines(lines_m)
    in_degrees = from_lines(lines_m.to_crs(4326))
    in_web = from_lines(lines_m.to_crs(3857))  # web mercator: distorted metres
    in_laea = from_lines(lines_m.to_crs(3035))  # Europe's equal-area grid
    for net in (in_degrees, in_web, in_laea):
        assert net.crs == in_metres.crs
        np.testing.assert_allclose(np.sort(net.edge_length), np.sort(in_metres.edge_length), rtol=1e-7)
        key = np.round(net.node_xy, 3)
        np.testing.assert_allclose(net.node_xy[np.lexsort((key[:, 1], key[:, 0]))], in_metres.node_xy, atol=1e-6)
    assert in_metres.edge_length.sum() / 2 == pytest.approx(2000, rel=5e-3)  # great-circle ≈ planar UTM metres


# ---------------------------------------------------------------------- options
def test_options_validate_and_load_from_toml(tmp_path):
    with pytest.raises(InputError, match=r"snap_tolerance_m \(--snap-tolerance-m\) = -1"):
        LineOptions(snap_tolerance_m=-1)
    with pytest.raises(InputError, match="speed_unit"):
        LineOptions(speed_unit="knots")
    (tmp_path / "speeds.csv").write_text("class,speed_kph\nprimary,70\n")
    (tmp_path / "net.toml").write_text(
        '[network]\nlayer = "roads"\nsnap_tolerance_m = 2.5\noneway_column = "ONEWAY"\nclass_speeds = "speeds.csv"\n'
    )
    opts = LineOptions.from_file(tmp_path / "net.toml")
    assert opts.layer == "roads" and opts.snap_tolerance_m == 2.5 and opts.class_speeds == {"primary": 70.0}
    (tmp_path / "typo.toml").write_text("snap_tolerence_m = 2\n")
    with pytest.raises(InputError, match="unknown key 'snap_tolerence_m'"):
        LineOptions.from_file(tmp_path / "typo.toml")
    with pytest.raises(NetworkError, match=r"oneway_column .* applies to road line layers"):
        load_network(shared_file("aguascalientes.osm.bz2"), line_options=LineOptions(oneway_column="oneway"))


def test_scenario_network_table_builds_a_line_network(tmp_path, geofabrik_roads):
    osm, path = geofabrik_roads
    for name, n in (("havens", 4), ("defenders", 20)):
        points = near_roads(osm, n, name[0], seed=n).to_crs(4326)
        pd.DataFrame({"id": points["id"], "lat": points.geometry.y, "lon": points.geometry.x}).to_csv(
            tmp_path / f"{name}.csv", index=False
        )
    (tmp_path / "scenario.toml").write_text(
        f'name = "lines"\nhavens = "havens.csv"\ndefenders = "defenders.csv"\nminutes = [5]\n'
        f'[network]\npath = "{path.as_posix()}"\ntype = "drive"\noneway_column = "oneway"\n'
        f'speed_column = "maxspeed"\nclass_column = "fclass"\n'
    )
    scen = hm.load_scenario(tmp_path / "scenario.toml")
    assert scen.network == path and scen.network_options.oneway_column == "oneway"
    summary = hm.run_scenario(scen, tmp_path / "out")
    assert summary["network"]["report"].startswith("gis_osm_roads_free_1.shp:")
    direct = hm.nearest_havens(
        osm, hm.read_defenders(tmp_path / "defenders.csv"), hm.read_havens(tmp_path / "havens.csv")
    )
    assert summary["reachable"] == int(direct["reachable"].sum())
    (tmp_path / "bad.toml").write_text('havens = "h.csv"\ndefenders = "d.csv"\n[network]\npath = "x.shp"\nlayr = "a"\n')
    with pytest.raises(InputError, match=r"\[network\]: unknown key 'layr'"):
        hm.load_scenario(tmp_path / "bad.toml")


# ---------------------------------------------------------------------- the command line
def test_network_command_prints_the_report_and_writes_it(tmp_path):
    out = tmp_path / "report"
    proc = run("network", "--network", BUBENEC, "--layer", "streets", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "bubenec.gpkg (streets): 29 nodes, 70 edges" in proc.stdout and "hint:" in proc.stdout
    report = json.loads((out / "network_report.json").read_text())
    for key in ("nodes", "edges", "road_km", "components", "share_km_outside_largest", "dangling_ends"):
        assert key in report
    assert report["ends_joined"] == 0 and report["crossings"] == 0 and report["speed_sources"] == {"default": 70}
    assert not list(out.glob(".*.part"))


def test_commands_route_line_layers_through_the_shared_options(tmp_path, geofabrik_roads):
    osm, path = geofabrik_roads
    points = near_roads(osm, 3, "p").to_crs(4326)
    pd.DataFrame({"id": points["id"], "lat": points.geometry.y, "lon": points.geometry.x}).to_csv(
        tmp_path / "p.csv", index=False
    )
    out = tmp_path / "routes.geojson"
    args = ["--oneway-column", "oneway", "--speed-column", "maxspeed", "--class-column", "fclass"]
    proc = run(
        "nearest",
        "--network",
        str(path),
        "--defenders",
        str(tmp_path / "p.csv"),
        "--havens",
        str(tmp_path / "p.csv"),
        "--out",
        str(out),
        *args,
    )
    assert proc.returncode == 0, proc.stderr
    assert "gis_osm_roads_free_1.shp: 816 nodes" in proc.stderr  # the report's one-line summary
    assert len(gpd.read_file(out)) == 3
    from typer.testing import CliRunner

    from havenmap import cli

    for command in ("nearest", "coverage", "threat", "alerts", "patrol", "map", "network"):
        text = CliRunner().invoke(cli.app, [command, "--help"], env={"COLUMNS": "200"}, terminal_width=200).output
        for option in (
            "--layer",
            "--snap-tolerance-m",
            "--split-crossings",
            "--oneway-column",
            "--speed-column",
            "--speed-unit",
            "--class-column",
            "--class-speeds",
        ):
            assert option in text, (command, option)


def _points_file(path):
    gpd.GeoDataFrame(geometry=[Point(0, 0), Point(1, 1)], crs=4326).to_file(path)


def _polygons_file(path):
    gpd.GeoDataFrame(geometry=[Polygon([(0, 0), (1, 0), (1, 1)])], crs=4326).to_file(path)


def _empty_file(path):
    gpd.GeoDataFrame({"name": pd.Series([], dtype=str)}, geometry=gpd.GeoSeries([], crs=4326)).to_file(
        path, layer="roads"
    )


def _no_crs(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyogrio warns that the file gets no CRS: the point
        gpd.GeoDataFrame(geometry=[LineString([(0, 0), (1, 1)])]).to_file(path)


def _engineering_crs(path):
    _no_crs(path)
    path.with_suffix(".prj").write_text('LOCAL_CS["site grid",UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]')


def _metres_as_degrees(path):
    gpd.GeoDataFrame(geometry=[LineString([(500000, 5000000), (500100, 5000000)])], crs=4326).to_file(path)


def _text_speed(path):
    gpd.GeoDataFrame(
        {"maxspeed": ["50", "fast"]},
        geometry=[LineString([(0, 0), (0.01, 0)]), LineString([(0.01, 0), (0.02, 0)])],
        crs=4326,
    ).to_file(path)


def _bad_oneway(path):
    gpd.GeoDataFrame(
        {"oneway": ["B", "F", "maybe"]},
        geometry=[
            LineString([(0, 0), (0.01, 0)]),
            LineString([(0.01, 0), (0.02, 0)]),
            LineString([(0.02, 0), (0.03, 0)]),
        ],
        crs=4326,
    ).to_file(path)


def _plain_parquet(path):
    pd.DataFrame({"a": [1]}).to_parquet(path)


def _mixed(path):
    gpd.GeoDataFrame(geometry=[LineString([(0, 0), (0.01, 0)]), Point(0, 0)], crs=4326).to_file(path)


@pytest.mark.parametrize(
    ("name", "make", "extra", "message"),
    [
        ("points.geojson", _points_file, [], "holds Point geometries, not road lines"),
        ("areas.gpkg", _polygons_file, [], "holds Polygon geometries, not road lines"),
        ("empty.gpkg", _empty_file, [], "the layer is empty"),
        ("nocrs.shp", _no_crs, [], "has no CRS"),
        ("site.shp", _engineering_crs, [], "is not tied to the Earth"),
        ("wrong.geojson", _metres_as_degrees, [], "row 1 has coordinates outside the Earth"),
        ("speed.gpkg", _text_speed, ["--speed-column", "maxspeed"], "row 2, column 'maxspeed': 'fast' is not a speed"),
        ("dir.shp", _bad_oneway, ["--oneway-column", "ONEWAY"], "row 3, column 'oneway': 'maybe' is not a one-way"),
        ("cols.gpkg", _bad_oneway, ["--speed-column", "limit"], "no column 'limit' for --speed-column"),
        ("plain.parquet", _plain_parquet, [], "without GeoParquet geometry"),
        ("mixed.gpkg", _mixed, [], "row 2 is a Point, not a line"),
        (None, None, [], "has 4 layers: tessellation (Polygon), buildings (Polygon), streets (LineString)"),
        (None, None, ["--layer", "roads"], "has no layer 'roads'; its layers: tessellation"),
        (None, None, ["--layer", "streets", "--snap-tolerance-m", "-2"], "snap_tolerance_m (--snap-tolerance-m)"),
    ],
)
def test_bad_layers_get_one_line_and_exit_2(tmp_path, monkeypatch, capsys, name, make, extra, message):
    from havenmap import cli

    if name is None:
        path = BUBENEC
    else:
        path = tmp_path / name
        make(path)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["havenmap", "network", "--network", str(path), *extra, "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert exit_info.value.code == 2 and len(errors) == 1 and message in errors[0], err
    assert not out.exists()


def test_bad_layers_through_every_command_in_a_real_process(tmp_path):
    """The user's view: one line on stderr, exit status 2, no traceback, nothing written."""
    _text_speed(tmp_path / "roads.gpkg")
    out = tmp_path / "out"
    for name in ("d.csv", "h.csv"):  # readable points: the point files are checked before the network loads
        (tmp_path / name).write_text("id,latitude,longitude\np1,0.0,0.0\n")
    d = ["--defenders", str(tmp_path / "d.csv"), "--havens", str(tmp_path / "h.csv")]
    for command in (["nearest", *d, "--out", str(out / "r.geojson")], ["coverage", *d, "--out", str(out)]):
        proc = run(command[0], "--network", str(tmp_path / "roads.gpkg"), "--speed-column", "maxspeed", *command[1:])
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (
            f"havenmap: error: {tmp_path / 'roads.gpkg'}: row 2, column 'maxspeed': 'fast' is not a speed; "
            "give km/h numbers (or values such as '30 mph'); 0 or empty where unknown"
        )
        assert not out.exists()
