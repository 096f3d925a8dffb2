"""Scenarios: one TOML file of inputs and parameters → the whole pipeline → an output folder.

A scenario file (see ``data/demo/scenario.toml``)::

    name = "Helsinki demo (synthetic)"
    as_of = "2026-11-20"
    network = "helsinki.osm.pbf"      # paths relative to the scenario file
    network_type = "walk"
    havens = "havens.geojson"
    defenders = "defenders.csv"
    incidents = "incidents.csv"
    k = 2
    cost = "time"
    snap_max_distance_m = 250

This module only composes the domain modules; no algorithm lives here.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _io, layers, maps, report
from .errors import InputError
from .havens import nearest_havens
from .network import RoadNetwork, load_network
from .snap import DEFAULT_MAX_SNAP_M

__all__ = ["Scenario", "demo_dir", "load_scenario", "run_scenario"]

Step = Callable[[str], contextlib.AbstractContextManager[Any]]


@dataclass
class Scenario:
    """Inputs and parameters of one planning run (paths already resolved)."""

    name: str
    network: Path
    havens: Path
    defenders: Path
    incidents: Path | None = None
    network_type: str = "drive"
    as_of: str | None = None
    k: int = 1
    cost: str = "time"
    snap_max_distance_m: float = DEFAULT_MAX_SNAP_M
    extra: dict[str, Any] = field(default_factory=dict)


def demo_dir() -> Path:
    """Folder of the embedded demo scenario (installed with the package, or the repo's ``data/demo``)."""
    installed = Path(str(importlib.resources.files("havenmap"))) / "demo_data"
    if (installed / "scenario.toml").exists():
        return installed
    repo = Path(__file__).resolve().parents[2] / "data" / "demo"
    if (repo / "scenario.toml").exists():
        return repo
    raise InputError("the demo data is missing from this installation; reinstall havenmap")


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file; relative paths are resolved against its folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: scenario file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    base = path.parent

    def file(key: str, required: bool = True) -> Path | None:
        value = raw.pop(key, None)
        if value is None:
            if required:
                raise InputError(f"{path}: key {key!r} is missing; add {key} = \"FILE\"")
            return None
        return (base / value).resolve()

    known = {
        "name": str(raw.pop("name", path.stem)),
        "network": file("network"),
        "havens": file("havens"),
        "defenders": file("defenders"),
        "incidents": file("incidents", required=False),
        "network_type": str(raw.pop("network_type", "drive")),
        "as_of": None if raw.get("as_of") is None else str(raw.pop("as_of")),
        "k": int(raw.pop("k", 1)),
        "cost": str(raw.pop("cost", "time")),
        "snap_max_distance_m": float(raw.pop("snap_max_distance_m", DEFAULT_MAX_SNAP_M)),
    }
    if known["cost"] not in ("time", "length"):
        raise InputError(f"{path}: key 'cost' is {known['cost']!r}; use \"time\" or \"length\"")
    return Scenario(**known, extra=raw)


@contextlib.contextmanager
def _quiet(_: str) -> Iterator[None]:
    yield


def run_scenario(scenario: Scenario, out_dir: str | Path, *, step: Step = _quiet,
                 exact_defenders: bool = False) -> dict[str, Any]:
    """Run the nearest-haven job of ``scenario`` and write its outputs into ``out_dir``.

    Writes ``nearest_havens.geojson`` (routes; owner-readable only, as routes start at
    defenders' positions), ``map.html`` (defenders aggregated unless ``exact_defenders``)
    and ``report.json``. Returns the report dict.
    """
    out = Path(out_dir)
    with step(f"Loading the {scenario.network_type} network {scenario.network.name}"):
        net = load_network(scenario.network, scenario.network_type)
    with step("Reading havens, defenders and incidents"):
        havens = layers.read_havens(scenario.havens)
        defenders = layers.read_defenders(scenario.defenders)
        incidents = layers.read_incidents(scenario.incidents) if scenario.incidents else None
    with step(f"Routing {len(defenders)} defenders to their {scenario.k} nearest of {len(havens)} havens"):
        nearest = nearest_havens(net, defenders, havens, k=scenario.k, cost=scenario.cost,
                                 max_snap_m=scenario.snap_max_distance_m)
    summary = report.nearest_report(nearest, defenders=len(defenders), havens=len(havens),
                                    incidents=None if incidents is None else len(incidents),
                                    cost=scenario.cost, k=scenario.k)
    summary = {"scenario": scenario.name, "as_of": scenario.as_of, "network": _network_facts(net), **summary}
    with step("Writing outputs"):
        _io.write_geojson(out / "nearest_havens.geojson", nearest, private=True)
        write_nearest_map(out / "map.html", net, nearest, havens=havens, defenders=defenders,
                          incidents=incidents, title=scenario.name, as_of=scenario.as_of,
                          exact_defenders=exact_defenders)
        _io.write_json(out / "report.json", summary)
    return summary


def write_nearest_map(path: Path, net: RoadNetwork, nearest, *, havens, defenders, incidents=None,
                      title: str = "havenmap", as_of: str | None = None,
                      exact_defenders: bool = False) -> Path:
    """Draw the nearest-haven result on the offline map and save it atomically."""
    status = nearest.loc[nearest["rank"] == 1, ["defender_id", "reachable"]]
    defenders = defenders.merge(status, left_on=defenders["id"].astype(str), right_on="defender_id",
                                how="left").drop(columns=["key_0", "defender_id"], errors="ignore")
    m = maps.nearest_map(roads=net.edges_gdf(undirected=True), incidents=incidents, havens=havens, defenders=defenders,
                         routes=nearest.loc[nearest["reachable"]], title=title, as_of=as_of,
                         exact_defenders=exact_defenders)
    return maps.save_map(m, path)


def _network_facts(net: RoadNetwork) -> dict[str, Any]:
    return {"source": Path(net.source).name, "type": net.network_type, "nodes": net.n_nodes,
            "edges": net.n_edges, "crs": net.crs.to_string()}
