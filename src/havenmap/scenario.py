"""Scenarios: one TOML file of inputs and parameters → the whole pipeline → an output folder.

A scenario file (see ``data/demo/scenario.toml``)::

    name = "Helsinki demo (synthetic)"
    as_of = "2026-11-20"
    network = "helsinki.osm.pbf"      # paths relative to the scenario file
    network_type = "walk"
    # or a road line layer with its options (havenmap.lines.LineOptions keys):
    # [network]
    # path = "roads.gpkg"
    # layer = "roads"
    # oneway_column = "oneway"
    # class_column = "fclass"
    # class_speeds = "speeds.csv"
    havens = "havens.geojson"
    defenders = "defenders.csv"
    incidents = "incidents.csv"       # or several feeds: ["acled.csv", "ucdp.csv", "partner.csv"]
    bases = "bases.csv"                 # optional: patrol bases and targets
    targets = "targets.csv"
    k = 2
    cost = "time"
    minutes = [5, 10, 15]             # coverage time bands
    snap_max_distance_m = 250

    [threat]                          # optional sections; all keys optional
    bandwidth_m = 400
    half_life_days = 30
    alert_distance_m = 1000

    [patrol]
    units = 3
    shift_minutes = 60
    days = 3
    seed = 0

    [privacy]                         # how the maps show defenders (see havenmap.privacy)
    cell_size_m = 500                 # at least 100
    k = 5                             # each cell holds at least k defenders

    [dedup]                           # several incident feeds: when records are one incident
    days = 1                          # (see havenmap.feeds.DedupOptions)
    metres = 500
    types = "family"

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
from .feeds import DedupOptions, read_incident_feeds
from .havens import assign_havens
from .lines import LineOptions, network_report
from .network import RoadNetwork, check_source, load_network
from .privacy import DefenderPrivacy
from .snap import DEFAULT_MAX_SNAP_M

__all__ = ["Scenario", "demo_dir", "input_files", "load_scenario", "output_files", "run_scenario"]

Step = Callable[[str], contextlib.AbstractContextManager[Any]]

#: Files the coverage writer (:func:`havenmap.coverage.write_coverage_outputs`) may write, relative to its folder.


@dataclass
class Scenario:
    """Inputs and parameters of one planning run (paths already resolved)."""

    name: str
    network: Path
    havens: Path
    defenders: Path
    incidents: Path | tuple[Path, ...] | None = None
    bases: Path | None = None
    targets: Path | None = None
    network_type: str = "drive"
    as_of: str | None = None
    k: int = 1
    cost: str = "time"
    snap_max_distance_m: float = DEFAULT_MAX_SNAP_M
    minutes: tuple[float, ...] = (5.0, 10.0, 15.0)
    threat: dict[str, Any] = field(default_factory=dict)
    patrol: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] = field(default_factory=dict)
    dedup: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    network_options: LineOptions | None = None


def output_files() -> tuple[str, ...]:
    """Files :func:`run_scenario` may write, relative to its folder (glob patterns)."""
    from . import coverage as coverage_mod
    from . import patrol as patrol_mod
    from . import threat as threat_mod

    return (
        "map.html",
        "nearest_havens.geojson",
        "report.json",
        "incidents_merged.csv",
        *(f"coverage/{name}" for name in coverage_mod.OUTPUT_FILES),
        *(f"threat/{name}" for name in threat_mod.OUTPUT_FILES),
        *(f"patrol/{name}" for name in patrol_mod.OUTPUT_FILES),
    )


def input_files(scenario: Scenario) -> dict[str, Path | None]:
    """The scenario's input files by key (``network``, ``havens``, ...; None where not given)."""
    files = {key: getattr(scenario, key) for key in ("network", "havens", "defenders", "bases", "targets")}
    feeds = incident_files(scenario)
    files["incidents"] = feeds[0] if feeds else None
    files.update({f"incidents {i}": path for i, path in enumerate(feeds[1:], start=2)})
    options = scenario.network_options
    files["class speeds"] = None if options is None else options.class_speeds
    return files


def incident_files(scenario: Scenario) -> list[Path]:
    """The scenario's incident feeds (``incidents`` may be one file or a list of them)."""
    if scenario.incidents is None:
        return []
    return [scenario.incidents] if isinstance(scenario.incidents, Path) else list(scenario.incidents)


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
    network_options = None
    if isinstance(raw.get("network"), dict):  # [network] path = ..., plus road line layer options
        table = dict(raw.pop("network"))
        raw["network"] = table.pop("path", None)
        if raw["network"] is None:
            raise InputError(f'{path}: [network] needs path = "FILE" (the OSM extract or road line layer)')
        if "type" in table:
            raw.setdefault("network_type", table.pop("type"))
        network_options = LineOptions.from_dict(table, where=f"{path}: [network]", base_dir=base)

    def file(key: str, required: bool = True) -> Path | None:
        value = raw.pop(key, None)
        if value is None:
            if required:
                raise InputError(f'{path}: key {key!r} is missing; add {key} = "FILE"')
            return None
        return (base / value).resolve()

    known = {
        "name": str(raw.pop("name", path.stem)),
        "network": file("network"),
        "havens": file("havens"),
        "defenders": file("defenders"),
        "incidents": _feeds(path, raw.pop("incidents", None), base),
        "bases": file("bases", required=False),
        "targets": file("targets", required=False),
        "network_type": str(raw.pop("network_type", "drive")),
        "as_of": None if raw.get("as_of") is None else str(raw.pop("as_of")),
        "k": int(raw.pop("k", 1)),
        "cost": str(raw.pop("cost", "time")),
        "snap_max_distance_m": float(raw.pop("snap_max_distance_m", DEFAULT_MAX_SNAP_M)),
        "minutes": _minutes(path, raw.pop("minutes", [5, 10, 15])),
        "threat": _section(path, raw, "threat", _THREAT_KEYS),
        "patrol": _section(path, raw, "patrol", _PATROL_KEYS),
        "privacy": _section(path, raw, "privacy", _PRIVACY_KEYS),
        "dedup": _section(path, raw, "dedup", _DEDUP_KEYS),
    }
    DefenderPrivacy.from_dict(known["privacy"], source=f"{path} [privacy]")  # checked before any work
    DedupOptions.from_dict(known["dedup"], source=f"{path} [dedup]")
    if known["cost"] not in ("time", "length"):
        raise InputError(f'{path}: key \'cost\' is {known["cost"]!r}; use "time" or "length"')
    return Scenario(**known, extra=raw, network_options=network_options)


_THREAT_KEYS = {
    "bandwidth_m": float,
    "half_life_days": float,
    "alert_distance_m": float,
    "recent_days": float,
    "baseline_days": float,
    "cluster_permutations": int,
}
_PATROL_KEYS = {
    "units": int,
    "shift_minutes": float,
    "days": int,
    "seed": int,
    "time_limit_s": float,
    "risk_alpha": float,
}


_PRIVACY_KEYS = {"cell_size_m": float, "k": int}
_DEDUP_KEYS = {"days": int, "metres": float, "types": str}


def _feeds(path: Path, value: Any, base: Path) -> Path | tuple[Path, ...] | None:
    """``incidents``: one file, or a list of feeds merged by :func:`havenmap.feeds.read_incident_feeds`."""
    if value is None:
        return None
    if isinstance(value, str):
        return (base / value).resolve()
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple((base / v).resolve() for v in value)
    example = 'incidents = ["acled.csv", "partner.csv"]'
    raise InputError(f"{path}: key 'incidents' must be a file or a list of files, e.g. {example}")


def _minutes(path: Path, value: Any) -> tuple[float, ...]:
    try:
        bands = tuple(sorted(float(v) for v in value))
    except (TypeError, ValueError):
        raise InputError(f"{path}: key 'minutes' must be a list of numbers, e.g. minutes = [5, 10, 15]") from None
    if not bands or bands[0] <= 0:
        raise InputError(f"{path}: key 'minutes' needs positive numbers, e.g. minutes = [5, 10, 15]")
    return bands


def _section(path: Path, raw: dict[str, Any], name: str, keys: dict[str, type]) -> dict[str, Any]:
    section = raw.pop(name, {})
    if not isinstance(section, dict):
        raise InputError(f"{path}: [{name}] must be a table of settings")
    out = {}
    for key, value in section.items():
        if key not in keys:
            raise InputError(f"{path}: [{name}] has unknown key {key!r}; known keys: {', '.join(sorted(keys))}")
        try:
            out[key] = keys[key](value)
        except (TypeError, ValueError):
            raise InputError(f"{path}: [{name}] {key} = {value!r} is not a {keys[key].__name__}") from None
    return out


@contextlib.contextmanager
def _quiet(_: str) -> Iterator[None]:
    yield


def run_scenario(
    scenario: Scenario, out_dir: str | Path, *, step: Step = _quiet, exact_defenders: bool = False
) -> dict[str, Any]:
    """Run every analysis the scenario has inputs for and write the outputs into ``out_dir``.

    Always: ``nearest_havens.geojson`` (routes; owner-readable only, as routes start at
    defenders' positions), ``coverage/`` (service areas, coverage, N-1), ``map.html`` (the
    commander's map: defenders aggregated unless ``exact_defenders``) and ``report.json``.
    With incidents: ``threat/`` (edge risk, hotspots, threat map, alerts). With bases and
    targets: ``patrol/`` (routes, GPX, schedule, patrol map). Returns the report dict.
    """
    from . import coverage as coverage_mod
    from . import patrol as patrol_mod
    from . import threat as threat_mod

    out = Path(out_dir)
    for sub in ("threat", "coverage", "patrol"):  # fail before any work, not half-way through
        _io.check_output(out / sub, folder=True, create=False)
    check_source(scenario.network, scenario.network_type)
    patrolling = scenario.bases is not None and scenario.targets is not None
    with step("Reading havens, defenders and incidents"):  # every input checked before the network loads
        havens = layers.read_havens(scenario.havens)
        defenders = layers.read_defenders(scenario.defenders)
        feeds = incident_files(scenario)  # one or several; duplicates across feeds merged
        feed = read_incident_feeds(feeds, DedupOptions.from_dict(scenario.dedup)) if feeds else None
        incidents = feed.incidents if feed is not None else None
        targets = patrol_mod.read_targets(scenario.targets) if patrolling else None
        bases = layers.read_bases(scenario.bases) if patrolling else None
        if incidents is not None:
            threat_mod.weigh_incidents(incidents, scenario.as_of)
    with step(f"Loading the {scenario.network_type} network {scenario.network.name}"):
        net = load_network(scenario.network, scenario.network_type, line_options=scenario.network_options)

    threat = alerts = None
    if incidents is not None:
        cfg = scenario.threat
        threat_kw = {k: cfg[k] for k in ("bandwidth_m", "half_life_days", "cluster_permutations") if k in cfg}
        alert_kw = {k: cfg[k] for k in ("recent_days", "baseline_days") if k in cfg}
        if "alert_distance_m" in cfg:
            alert_kw["distance_m"] = cfg["alert_distance_m"]
        with step(f"Threat picture from {len(incidents)} incidents"):
            threat = threat_mod.compute_threat(net, incidents, scenario.as_of, **threat_kw)
        with step(f"Early warning for {len(defenders)} defenders"):
            alerts = threat_mod.early_warning(net, threat.incidents, defenders, threat.as_of, **alert_kw)
        threat_mod.write_threat_outputs(threat, out / "threat", alerts, title=f"{scenario.name}: threat")

    bands = ", ".join(f"{m:g}" for m in scenario.minutes)
    with step(f"Routing {len(defenders)} defenders to their {scenario.k} nearest of {len(havens)} havens"):
        # one answer for routes, coverage, N-1, status and the map
        found = assign_havens(
            net,
            defenders,
            havens,
            k=max(scenario.k, 2),
            cost=scenario.cost,
            max_snap_m=scenario.snap_max_distance_m,
        )
        nearest = found.table(scenario.k, risk=None if threat is None else threat.risk)
    with step(f"Coverage, service areas and haven loss for {bands} min"):
        cov = coverage_mod.coverage_of(found, scenario.minutes)
        areas = coverage_mod.service_areas(
            net, havens, scenario.minutes, cost=scenario.cost, max_snap_m=scenario.snap_max_distance_m
        )
        coverage_summary = coverage_mod.write_coverage_outputs(out / "coverage", cov, areas)

    plan = None
    if patrolling:
        cfg = {"units": 2, "shift_minutes": 60.0, "days": 3, "seed": 0, **scenario.patrol}
        with step(
            f"Patrol plans: {cfg['units']} unit(s), {cfg['shift_minutes']:g}-minute shifts, {cfg['days']} day(s)"
        ):
            plan = patrol_mod.plan_patrols(net, targets, bases, **cfg)
            patrol_mod.write_patrol_outputs(plan, out / "patrol", roads=net, title=f"{scenario.name}: patrols")

    summary = report.nearest_report(
        nearest,
        defenders=len(defenders),
        havens=len(havens),
        incidents=None if incidents is None else len(incidents),
        cost=scenario.cost,
        k=scenario.k,
    )
    summary = {
        "scenario": scenario.name,
        "as_of": scenario.as_of,
        "network": _network_facts(net),
        **summary,
        "coverage": {k: coverage_summary[k] for k in ("bands", "n_minus_1") if k in coverage_summary},
    }
    if threat is not None:
        summary["threat"] = threat_mod.threat_summary(threat, alerts, {})
        summary["threat"].pop("files", None)
    if plan is not None:
        summary["patrol"] = {k: v for k, v in plan.summary.items() if not isinstance(v, (list, dict))}
    with step("Drawing the commander's map and writing the report"):
        _io.write_geojson(out / "nearest_havens.geojson", nearest, private=True)
        write_commander_map(
            out / "map.html",
            net,
            scenario,
            havens=havens,
            defenders=defenders,
            incidents=incidents,
            nearest=nearest,
            coverage=cov,
            service_areas=areas,
            threat=threat,
            alerts=alerts,
            plan=plan,
            exact_defenders=exact_defenders,
        )
        _io.write_json(out / "report.json", summary)
        if feed is not None and len(feed.feeds) > 1:
            feed.write_audit(out / "incidents_merged.csv")
    return summary


def write_commander_map(
    path: Path,
    net: RoadNetwork,
    scenario: Scenario,
    *,
    havens,
    defenders,
    incidents=None,
    nearest=None,
    coverage=None,
    service_areas=None,
    threat=None,
    alerts=None,
    plan=None,
    exact_defenders: bool = False,
) -> Path:
    """The whole picture on one offline map (see :func:`havenmap.maps.commander_map`)."""
    used = None
    if threat is not None:
        used = threat.incidents[threat.incidents["status"].astype(str) == "used"]
    m = maps.commander_map(
        roads=net,
        incidents=used if used is not None else incidents,
        edge_risk=None if threat is None else threat.edge_risk,
        hotspots=None if threat is None else threat.hotspots,
        havens=havens,
        service_areas=service_areas,
        defenders=defenders,
        coverage=None if coverage is None else coverage.defenders,
        routes=None if nearest is None else nearest.loc[nearest["reachable"]],
        patrol_routes=None if plan is None else plan.routes,
        patrol_stops=None if plan is None else plan.stops,
        bases=None if plan is None else plan.bases,
        alerts=alerts,
        title=scenario.name,
        as_of=scenario.as_of,
        privacy=DefenderPrivacy.from_dict({**scenario.privacy, "exact": bool(exact_defenders)}),
        slow_minutes=max(scenario.minutes),
    )
    return maps.save_map(m, path)


def write_nearest_map(
    path: Path,
    net: RoadNetwork,
    nearest,
    *,
    havens,
    defenders,
    incidents=None,
    title: str = "havenmap",
    as_of: str | None = None,
    exact_defenders: bool = False,
) -> Path:
    """Draw the nearest-haven result on the offline map and save it atomically."""
    status = nearest.loc[nearest["rank"] == 1, ["defender_id", "reachable"]]
    defenders = defenders.merge(status, left_on=defenders["id"].astype(str), right_on="defender_id", how="left").drop(
        columns=["key_0", "defender_id"], errors="ignore"
    )
    m = maps.nearest_map(
        roads=net.edges_gdf(undirected=True),
        incidents=incidents,
        havens=havens,
        defenders=defenders,
        routes=nearest.loc[nearest["reachable"]],
        title=title,
        as_of=as_of,
        exact_defenders=exact_defenders,
    )
    return maps.save_map(m, path)


def _network_facts(net: RoadNetwork) -> dict[str, Any]:
    facts = {
        "source": Path(net.source).name,
        "type": net.network_type,
        "nodes": net.n_nodes,
        "edges": net.n_edges,
        "crs": net.crs.to_string(),
    }
    if net.build_info.get("kind") == "lines":
        facts["report"] = network_report(net).summary()
    return facts
