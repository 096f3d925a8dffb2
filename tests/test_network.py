"""Network loading: OSM XML vs PBF, one-ways, speeds, osmnx graphs and GraphML used as given."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pytest
from scipy.sparse import csgraph

from havenmap import _osm
from havenmap._arrays import ragged_index as _ragged_index
from havenmap.errors import NetworkError
from havenmap.network import from_graph, load_network

from .conftest import shared_file


def _edge_set(net):
    ids = net.node_id
    return set(
        zip(ids[net.edge_u].tolist(), ids[net.edge_v].tolist(), np.round(net.edge_length, 3).tolist(), strict=True)
    )


def test_xml_and_pbf_of_the_same_area_give_the_same_directed_network():
    xml = load_network(shared_file("aguascalientes.osm.bz2"), "drive")
    pbf = load_network(shared_file("aguascalientes.osm.pbf"), "drive")
    np.testing.assert_array_equal(xml.node_id, pbf.node_id)
    assert _edge_set(xml) == _edge_set(pbf)

    # one-way behaviour identical: same set of edges without a twin
    def oneway(n):
        return set(
            zip(
                n.node_id[n.edge_u[n.edge_twin < 0]].tolist(),
                n.node_id[n.edge_v[n.edge_twin < 0]].tolist(),
                strict=True,
            )
        )

    assert oneway(xml) == oneway(pbf) and len(oneway(xml)) > 100


def test_drive_distances_agree_with_osmnx_unsimplified_graph_of_the_same_ways():
    """Shortest road distances between our nodes equal those on osmnx's own graph of the same ways."""
    import osmnx as ox

    path = shared_file("aguascalientes.osm.bz2")
    net = load_network(path, "drive")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = ox.graph_from_xml(path, simplify=False, retain_all=True, bidirectional=False)
    kept = set(net.edge_attrs["osmid"].tolist())
    sub = nx.MultiDiGraph()
    sub.add_edges_from((u, v, d) for u, v, d in full.edges(data=True) if d["osmid"] in kept)
    rng = np.random.default_rng(0)
    sources = rng.choice(net.n_nodes, 15, replace=False)
    ours = csgraph.dijkstra(net.csr(cost="length"), indices=sources)
    compared = 0
    for row, s in enumerate(sources):
        theirs = nx.single_source_dijkstra_path_length(sub, int(net.node_id[s]), weight="length")
        for t in range(net.n_nodes):
            expected = theirs.get(int(net.node_id[t]), np.inf)
            assert ours[row, t] == pytest.approx(expected, rel=1e-6, abs=0.01)
            compared += np.isfinite(expected)
    assert compared > 5000


def test_oneway_way_gives_forward_edges_only():
    net = load_network(shared_file("aguascalientes.osm.bz2"), "drive")
    # Avenida Paseo de la Cruz (way 74559455) is tagged oneway=yes
    edges = np.flatnonzero(net.edge_attrs["osmid"].to_numpy() == 74559455)
    assert len(edges) >= 2
    assert (net.edge_twin[edges] == -1).all()
    walk = load_network(shared_file("aguascalientes.osm.bz2"), "walk")
    both = np.flatnonzero(walk.edge_attrs["osmid"].to_numpy() == 74559455)
    assert (walk.edge_twin[both] >= 0).all()
    assert walk.edge_length[both].sum() == pytest.approx(2 * net.edge_length[edges].sum())


def test_every_edge_has_positive_travel_time_from_speed(aguascalientes_drive):
    net = aguascalientes_drive
    assert np.all(net.edge_time > 0) and np.all(np.isfinite(net.edge_time))
    np.testing.assert_allclose(net.edge_time, net.edge_length / (net.edge_speed / 3.6))
    highway = net.edge_attrs["highway"].to_numpy()
    maxspeed = net.edge_attrs["maxspeed"].isna().to_numpy()
    residential = (highway == "residential") & maxspeed
    assert residential.any() and np.all(net.edge_speed[residential] == _osm.DRIVE_SPEED_KPH["residential"])


@pytest.mark.parametrize(
    ("value", "kph"),
    [
        ("50", 50.0),
        ("30 mph", 48.28032),
        ("50;30", 40.0),
        ("FI:urban", 50.0),
        ("RU:rural", 80.0),
        ("none", np.nan),
        (None, np.nan),
        ("signals", np.nan),
    ],
)
def test_parse_maxspeed(value, kph):
    got = _osm.parse_maxspeed(value)
    assert (np.isnan(got) and np.isnan(kph)) or got == pytest.approx(kph)


def test_walk_network_is_two_way_at_walking_speed(demo_walk):
    assert (demo_walk.edge_twin >= 0).all()
    assert set(np.unique(demo_walk.edge_speed)) <= {_osm.WALK_SPEED_KPH, _osm.WALK_SPEED_KPH / 2}


def test_osmnx_graph_used_as_given(tmp_path):
    import osmnx as ox

    path = shared_file("aguascalientes.osm.bz2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = ox.graph_from_xml(path, simplify=True, retain_all=True)
    # graph_from_xml reads every way (buildings too): keep the roads, as a user would
    graph.remove_edges_from([(u, v, k) for u, v, k, d in graph.edges(keys=True, data=True) if "highway" not in d])
    graph.remove_nodes_from([n for n in list(graph) if graph.degree(n) == 0])
    graph = ox.add_edge_travel_times(ox.add_edge_speeds(graph, fallback=30.0))
    u, v, key = next(iter(graph.edges(keys=True)))
    graph.edges[u, v, key]["travel_time"] = 12345.0  # the user's own value must be respected
    edges_before = graph.number_of_edges()
    net = from_graph(graph)
    assert net.n_edges == edges_before and net.to_networkx() is graph
    i = np.flatnonzero((net.node_id[net.edge_u] == u) & (net.node_id[net.edge_v] == v) & (net.edge_key == key))
    assert net.edge_time[i[0]] == 12345.0
    # shortest travel times agree with networkx on the user's graph
    source = int(net.node_id[0])
    theirs = nx.single_source_dijkstra_path_length(graph, source, weight="travel_time")
    ours = csgraph.dijkstra(net.csr(cost="time"), indices=0)
    for node, t in theirs.items():
        assert ours[net.node_index([node])[0]] == pytest.approx(t, rel=1e-9)
    # GraphML round trip loads the same network
    ox.save_graphml(graph, tmp_path / "g.graphml")
    again = load_network(tmp_path / "g.graphml")
    np.testing.assert_allclose(np.sort(again.edge_time), np.sort(net.edge_time))


def test_to_networkx_round_trip_keeps_costs(demo_walk):
    graph = demo_walk.to_networkx()
    assert graph.number_of_edges() == demo_walk.n_edges and graph.graph["crs"] == demo_walk.crs
    back = from_graph(graph)
    np.testing.assert_allclose(np.sort(back.edge_time), np.sort(demo_walk.edge_time))


def test_unknown_format_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(NetworkError, match="not found"):
        load_network(tmp_path / "nope.osm.pbf")
    bad = tmp_path / "roads.dxf"
    bad.write_text("x")
    with pytest.raises(NetworkError, match="unknown network format"):
        load_network(bad)
    broken = tmp_path / "roads.shp"  # a line layer now, but not a readable one
    broken.write_text("x")
    with pytest.raises(NetworkError, match=r"roads\.shp: cannot be read as a vector layer"):
        load_network(broken)
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(b"not a pbf at all")
    with pytest.raises(NetworkError, match=r"garbage\.osm\.pbf"):
        load_network(garbage)
    with pytest.raises(NetworkError, match=r"cannot load a network from 'dict' data: give a file path or an osmnx"):
        load_network({"nodes": []})


def _osm_xml(path, ways: dict[int, list[int]], missing: set[int] = frozenset()) -> None:
    """An OSM XML file: nodes 1..9 on a line of longitudes (those in ``missing`` left out), residential ways."""
    nodes = "".join(
        f'<node id="{i}" version="1" lat="60.17" lon="{24.90 + 0.001 * i:.3f}"/>'
        for i in range(1, 10)
        if i not in missing
    )
    body = "".join(
        f'<way id="{w}" version="1">'
        + "".join(f'<nd ref="{r}"/>' for r in refs)
        + '<tag k="highway" v="residential"/></way>'
        for w, refs in ways.items()
    )
    path.write_text(f'<?xml version="1.0"?><osm version="0.6">{nodes}{body}</osm>')


def test_a_way_with_a_node_missing_from_the_extract_is_left_out(tmp_path):
    path = tmp_path / "clipped.osm"
    _osm_xml(path, {10: [1, 2, 3], 11: [3, 4, 5], 12: [5, 9, 6], 13: [6, 7]}, missing={9})
    ways = _osm.read_ways(str(path), "drive")
    assert ways.way_id.tolist() == [10, 11, 13]
    assert ways.refs.tolist() == [1, 2, 3, 3, 4, 5, 6, 7] and ways.offsets.tolist() == [0, 3, 6, 8]
    assert np.allclose(ways.lon, [24.901, 24.902, 24.903, 24.903, 24.904, 24.905, 24.906, 24.907])
    assert ways.tags["highway"] == ["residential"] * 3


def test_an_extract_whose_roads_all_miss_nodes_says_so(tmp_path):
    path = tmp_path / "nodes_cut.osm"
    _osm_xml(path, {10: [1, 2], 11: [2, 3]}, missing={2})
    with pytest.raises(NetworkError, match=r"every 'drive' road \(2\) refers to nodes missing from the file"):
        load_network(path, "drive")


def test_ragged_index():
    np.testing.assert_array_equal(_ragged_index(np.array([5, 0, 10]), np.array([2, 0, 3])), [5, 6, 10, 11, 12])
    np.testing.assert_array_equal(_ragged_index(np.array([3, 7]), np.array([0, 2])), [7, 8])
