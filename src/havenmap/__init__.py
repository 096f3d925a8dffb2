"""havenmap: protection planning on real road networks.

Threat incidents and defender locations laid onto OpenStreetMap roads; each defender's
nearest *reachable* safe haven; offline maps for commanders.

Quick start::

    import havenmap as hm
    net = hm.load_network("city.osm.pbf", network_type="drive")   # or hm.from_graph(G)
    # or any road line layer: hm.read_lines("roads.gpkg", layer="roads", oneway_column="oneway")
    defenders = hm.read_defenders("defenders.csv")
    havens = hm.read_havens("havens.geojson")
    routes = hm.nearest_havens(net, defenders, havens, k=2)      # GeoDataFrame, EPSG:4326

The names below are imported on first use (PEP 562), so a command that needs only the
routing core does not pay for the map, report and siting libraries at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import HavenmapError, InfeasibleError, InputError, NetworkError, OffNetworkError

if TYPE_CHECKING:
    from .havens import nearest_havens
    from .layers import read_defenders, read_havens, read_incidents, read_points
    from .lines import LineOptions, NetworkReport, from_gdfs, from_lines, network_report, read_lines
    from .maps import commander_map, coverage_map, nearest_map, patrol_map, save_map, threat_map
    from .network import RoadNetwork, from_graph, from_place, load_network
    from .report import nearest_report
    from .scenario import demo_dir, load_scenario, run_scenario
    from .siting import SitingParams, SitingResult, site_havens
    from .snap import snap_points

__version__ = "0.1.0"

_LAZY = {
    "havens": ("nearest_havens",),
    "layers": ("read_defenders", "read_havens", "read_incidents", "read_points"),
    "lines": ("LineOptions", "NetworkReport", "from_gdfs", "from_lines", "network_report", "read_lines"),
    "maps": ("commander_map", "coverage_map", "nearest_map", "patrol_map", "save_map", "threat_map"),
    "network": ("RoadNetwork", "from_graph", "from_place", "load_network"),
    "report": ("nearest_report",),
    "scenario": ("demo_dir", "load_scenario", "run_scenario"),
    "siting": ("SitingParams", "SitingResult", "site_havens"),
    "snap": ("snap_points",),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "HavenmapError",
    "InfeasibleError",
    "InputError",
    "LineOptions",
    "NetworkError",
    "NetworkReport",
    "OffNetworkError",
    "RoadNetwork",
    "SitingParams",
    "SitingResult",
    "commander_map",
    "coverage_map",
    "demo_dir",
    "from_gdfs",
    "from_graph",
    "from_lines",
    "from_place",
    "load_network",
    "load_scenario",
    "nearest_havens",
    "nearest_map",
    "nearest_report",
    "network_report",
    "patrol_map",
    "read_defenders",
    "read_havens",
    "read_incidents",
    "read_lines",
    "read_points",
    "run_scenario",
    "save_map",
    "site_havens",
    "snap_points",
    "threat_map",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'havenmap' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
