"""Hand-built road networks (tests/data/routing/networks.toml) and their hand-computed answers (expected.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import geopandas as gpd
import networkx as nx
import shapely

from ._oracle import Place, to_gdf

DATA = Path(__file__).parent / "data" / "routing"
CRS = "EPSG:32635"


@cache
def _toml(name: str) -> dict:
    with open(DATA / name, "rb") as f:
        return tomllib.load(f)


def fixture_names() -> list[str]:
    return [k for k, v in _toml("networks.toml").items() if isinstance(v, dict)]


def build_graph(name: str) -> nx.MultiDiGraph:
    """The fixture as an osmnx-style graph: node ``x``/``y`` (m), edge ``length``, ``travel_time``, ``oneway``."""
    spec = _toml("networks.toml")
    x0, y0 = spec["origin"]
    net = spec[name]
    graph = nx.MultiDiGraph(crs=CRS)
    for nid, (x, y) in net["nodes"].items():
        graph.add_node(int(nid), x=x0 + x, y=y0 + y)
    for edge in net["edges"]:
        u, v = edge["u"], edge["v"]
        coords = [net["nodes"][str(u)], *edge.get("via", []), net["nodes"][str(v)]]
        coords = [(x0 + x, y0 + y) for x, y in coords]
        attrs = {
            "length": edge["length"],
            "travel_time": edge["time"],
            "oneway": not edge.get("both", False),
            "highway": "residential",
            "name": f"street {u}-{v}",
        }
        if "via" in edge:  # osmnx keeps a geometry only where the road is not straight
            attrs["geometry"] = shapely.LineString(coords)
        graph.add_edge(u, v, **attrs)
        if edge.get("both"):
            back = dict(attrs)
            if "geometry" in attrs:
                back["geometry"] = shapely.LineString(coords[::-1])
            graph.add_edge(v, u, **back)
    return graph


@dataclass
class Fixture:
    """One hand-built network: the graph, its havenmap network, the hand-placed points and the answers."""

    name: str
    graph: nx.MultiDiGraph
    net: object
    defenders: list[Place]
    havens: list[Place]
    expected: dict

    @property
    def places(self) -> dict[str, Place]:
        return {p.id: p for p in [*self.defenders, *self.havens]}

    def layer(self, ids_or_places) -> gpd.GeoDataFrame:
        places = [self.places[p] if isinstance(p, str) else p for p in ids_or_places]
        return to_gdf(places, CRS)


def _places(table: dict, origin) -> list[Place]:
    x0, y0 = origin
    out = []
    for pid, p in table.items():
        xy = (x0 + p["xy"][0], y0 + p["xy"][1])
        if "node" in p:
            out.append(Place(pid, xy, node=int(p["node"]), kind="node"))
        else:
            out.append(Place(pid, xy, edge=tuple(p["edge"]), fraction=float(p["fraction"]), kind="mid"))
    return out


def load_fixture(name: str, network=None) -> Fixture:
    """A fixture by name; ``network`` (e.g. loaded from a GraphML copy) replaces ``from_graph(build_graph(name))``."""
    from havenmap.network import from_graph

    spec = _toml("networks.toml")
    graph = build_graph(name)
    net = from_graph(graph) if network is None else network
    return Fixture(
        name,
        net.to_networkx() if network is not None else graph,
        net,
        _places(spec[name]["defenders"], spec["origin"]),
        _places(spec[name]["havens"], spec["origin"]),
        _toml("expected.toml")[name],
    )


def checkpoints(name: str) -> gpd.GeoDataFrame:
    """The fixture's checkpoints (expected.toml ``closures.checkpoints``) as barriers in the network CRS."""
    x0, y0 = _toml("networks.toml")["origin"]
    pts = _toml("expected.toml")[name]["closures"]["checkpoints"]
    return gpd.GeoDataFrame(
        {"id": [f"cp{i}" for i in range(len(pts))]},
        geometry=[shapely.Point(x0 + x, y0 + y) for x, y in pts],
        crs=CRS,
    )
