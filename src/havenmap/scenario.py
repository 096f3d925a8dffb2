"""Scenarios: one TOML file of inputs and parameters → the whole pipeline → an output folder with a manifest.

A scenario file (see ``data/demo/scenario.toml`` and the README for every key and default)::

    name = "Helsinki demo (synthetic)"
    as_of = "2026-11-20"
    network = "helsinki.osm.pbf"      # paths relative to the scenario file
    network_type = "walk"
    # or a road line layer with its options (havenmap.lines.LineOptions keys):
    # [network]
    # path = "roads.gpkg"
    # type = "drive"
    # layer = "roads"
    havens = "havens.geojson"
    defenders = "defenders.csv"
    incidents = "incidents.csv"       # optional: threat/ and alerts; or several feeds: ["acled.csv", "partner.csv"]
    bases = "bases.csv"               # optional, with targets: patrol/
    targets = "targets.csv"
    closures = "checkpoints.geojson"  # optional: roads closed for every route
    risk = "edge_risk.geojson"        # optional: danger-aware routes (alpha, max_risk)
    k = 2                             # the top level: havenmap.params.CoverageParams
    cost = "time"
    minutes = [5, 10, 15]
    snap_max_distance_m = 250

    [threat]                          # havenmap.params.ThreatParams
    bandwidth_m = 400
    [alerts]                          # havenmap.params.AlertParams
    distance_m = 1000
    [patrol]                          # havenmap.params.PatrolParams
    units = 3
    [map]                             # havenmap.params.MapParams
    [privacy]                         # havenmap.privacy.DefenderPrivacy
    cell_size_m = 500
    [siting]                          # optional: where to open the next havens (havenmap.siting.SitingParams)
    candidates_osm = "amenity=library,community_centre"   # or candidates = "candidates.csv"
    objective = "backup"
    new = 3
    [dedup]                           # several incident feeds: when records are one incident
    days = 1                          # (havenmap.feeds.DedupOptions)
    metres = 500
    types = "family"

Every section is a validated parameter object (:mod:`havenmap.params`): the rules live
there, this module only composes. One nearest-haven answer (:func:`havenmap.havens.assign_havens`)
feeds the routes, coverage, N-1, the defenders' status, the map and the report.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import tomllib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import _io, layers, maps, report
from .errors import InputError
from .feeds import DedupOptions, read_incident_feeds
from .havens import assign_havens
from .lines import LineOptions, network_report
from .manifest import MANIFEST, RunRecord, describe_input, write_manifest
from .network import RoadNetwork, check_source, load_network
from .params import AlertParams, CoverageParams, MapParams, PatrolParams, ThreatParams, as_date, shown
from .privacy import DefenderPrivacy

__all__ = [
    "INPUT_ROLES",
    "SECTIONS",
    "Scenario",
    "demo_dir",
    "input_files",
    "load_scenario",
    "output_files",
    "run_scenario",
]

Step = Callable[[str], contextlib.AbstractContextManager[Any]]

#: Input files of a scenario, by role (the manifest's roles); the first three are required.
INPUT_ROLES = ("network", "havens", "defenders", "incidents", "bases", "targets", "closures", "risk")
_REQUIRED = ("network", "havens", "defenders")
#: Parameter sections of a scenario file and their classes.
SECTIONS: dict[str, Any] = {
    "threat": ThreatParams,
    "alerts": AlertParams,
    "patrol": PatrolParams,
    "map": MapParams,
    "privacy": DefenderPrivacy,
}
_TOP_KEYS = ("name", "as_of", "network_type", *INPUT_ROLES, *CoverageParams.field_names())
#: Keys of ``[siting]`` that name the candidate sites (the rest are SitingParams).
_SITING_INPUTS = ("candidates", "candidates_osm")


@dataclass
class Scenario:
    """Inputs (absolute paths) and validated parameters of one planning run.

    ``network_options`` holds the road line layer options of a ``[network]`` table (None for
    an OSM extract or a GraphML file); ``source`` is the scenario file read.
    """

    name: str
    network: Path
    havens: Path
    defenders: Path
    incidents: Path | tuple[Path, ...] | None = None
    bases: Path | None = None
    targets: Path | None = None
    closures: Path | None = None
    risk: Path | None = None
    class_speeds: Path | None = None
    network_type: str = "drive"
    as_of: str | None = None
    network_options: LineOptions | None = None
    coverage: CoverageParams = field(default_factory=CoverageParams)
    threat: ThreatParams = field(default_factory=ThreatParams)
    alerts: AlertParams = field(default_factory=AlertParams)
    patrol: PatrolParams = field(default_factory=PatrolParams)
    map: MapParams = field(default_factory=MapParams)
    privacy: DefenderPrivacy = field(default_factory=DefenderPrivacy)
    dedup: DedupOptions = field(default_factory=DedupOptions)
    siting: dict[str, Any] | None = None  # "params" (SitingParams), "candidates" (Path) or "candidates_osm" (tags)
    source: Path | None = None

    # the top-level parameters, by their scenario-file names
    @property
    def k(self) -> int:
        return self.coverage.k

    @property
    def cost(self) -> str:
        return self.coverage.cost

    @property
    def minutes(self) -> tuple[float, ...]:
        return self.coverage.minutes

    @property
    def snap_max_distance_m(self) -> float:
        return self.coverage.snap_max_distance_m

    @property
    def slow_minutes(self) -> float:
        """Defenders beyond this many minutes are "too slow" (``[map] slow_minutes``, else the last band)."""
        return self.map.slow_minutes if self.map.slow_minutes is not None else self.coverage.in_time_minutes

    @property
    def patrolling(self) -> bool:
        return self.bases is not None and self.targets is not None

    def inputs(self) -> dict[str, Path]:
        """The input files given, by role (``class_speeds`` for a line layer's speed table).

        Several incident feeds are ``incidents``, ``incidents_2``, ``incidents_3``, ... (as in the manifest)
        """
        files = {role: getattr(self, role) for role in INPUT_ROLES if getattr(self, role) is not None}
        if isinstance(self.incidents, tuple):
            files["incidents"] = self.incidents[0]
            files.update({f"incidents_{i}": feed for i, feed in enumerate(self.incidents[1:], start=2)})
        if self.class_speeds is not None:
            files["class_speeds"] = self.class_speeds
        if self.siting is not None and self.siting["candidates"] is not None:
            files["candidates"] = self.siting["candidates"]
        return files

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario, every default filled in (the manifest's ``scenario``)."""
        options = None
        if self.network_options is not None:
            options = {k: v for k, v in self.network_options.__dict__.items() if k != "class_speeds"}
            options["class_speeds"] = self.network_options.class_speeds
        return {
            "name": self.name,
            "file": None if self.source is None else os.path.abspath(self.source),
            "as_of": self.as_of,
            "network_type": self.network_type,
            "network_options": options,
            "inputs": {role: os.path.abspath(path) for role, path in self.inputs().items()},
            "coverage": self.coverage.to_dict(),
            "threat": self.threat.resolved().to_dict(),
            "alerts": self.alerts.to_dict(),
            "patrol": self.patrol.to_dict(),
            "map": {**self.map.to_dict(), "slow_minutes_used": self.slow_minutes},
            "privacy": {k: getattr(self.privacy, k) for k in self.privacy.__dataclass_fields__},
            "dedup": asdict(self.dedup),
            "siting": None
            if self.siting is None
            else {**asdict(self.siting["params"]), "candidates_osm": self.siting["candidates_osm"]},
        }

    def defender_privacy(self, exact: bool = False) -> DefenderPrivacy:
        """The ``[privacy]`` settings, with exact defender points when ``exact``."""
        if not exact:
            return self.privacy
        return DefenderPrivacy(
            **{**{k: getattr(self.privacy, k) for k in self.privacy.__dataclass_fields__}, "exact": True}
        )


def output_files() -> tuple[str, ...]:
    """Files :func:`run_scenario` may write, relative to its folder (glob patterns)."""
    from . import coverage as coverage_mod
    from . import patrol as patrol_mod
    from . import siting as siting_mod
    from . import threat as threat_mod

    return (
        "map.html",
        "nearest_havens.geojson",
        "report.json",
        "incidents_merged.csv",
        *report.OUTPUT_FILES,
        MANIFEST,
        *(f"coverage/{name}" for name in coverage_mod.OUTPUT_FILES),
        *(f"threat/{name}" for name in threat_mod.OUTPUT_FILES),
        *(f"patrol/{name}" for name in patrol_mod.OUTPUT_FILES),
        *(f"siting/{name}" for name in siting_mod.OUTPUT_FILES),
    )


def input_files(scenario: Scenario) -> dict[str, Path | None]:
    """The scenario's input files by role (None where not given)."""
    given = scenario.inputs()
    files = {role: given.get(role) for role in (*INPUT_ROLES, "class_speeds", "candidates")}
    return {**files, **{role: path for role, path in given.items() if role.startswith("incidents_")}}


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


# ---------------------------------------------------------------------- reading a scenario file
def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and check a scenario TOML file; paths are relative to its folder.

    Every key is checked before anything is read: an unknown key or section, a bad value
    (``FILE: [section] key = value: what to give``) or a missing input file is one line.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: scenario file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None
    base = path.parent
    network_table = raw.pop("network", None)
    _check_keys(path, raw)
    network_path, options, network_type = _network(path, network_table, raw.pop("network_type", None))
    coverage = CoverageParams.from_dict({k: raw[k] for k in CoverageParams.field_names() if k in raw}, source=path)
    sections = {name: _section(path, name, raw.get(name, {})) for name in SECTIONS}
    siting = _siting_section(path, raw.get("siting"))
    files = {
        role: _file(path, base, role, raw.get(role)) for role in INPUT_ROLES if role not in ("network", "incidents")
    }
    files["incidents"] = _feeds(path, base, raw.get("incidents"))
    files["network"] = _file(path, base, "network", network_path)
    if isinstance(network_table, dict) and isinstance(network_table.get("class_speeds"), str):
        files["class_speeds"] = _file(path, base, "class_speeds", network_table["class_speeds"])
    coverage.check_cost_model(files["risk"] is not None, str(path))
    if (files["bases"] is None) != (files["targets"] is None):
        given, other = ("bases", "targets") if files["targets"] is None else ("targets", "bases")
        raise InputError(f'{path}: {given} without {other}; patrols need both (add {other} = "FILE") or neither')
    if files["havens"] == files["defenders"]:
        raise InputError(f"{path}: havens and defenders are the same file ({files['havens']}); give each its own")
    if "patrol" in raw and files["bases"] is None:
        warnings.warn(f"{path}: [patrol] is set but no bases and targets are given: no patrol plan", stacklevel=2)
    if siting is not None and siting["candidates"] is not None:
        siting["candidates"] = _file(path, base, "[siting] candidates", siting["candidates"])
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{path}: name = {shown(name)}: give the scenario's name as text")
    return Scenario(
        name=name.strip(),
        as_of=as_date(raw.get("as_of"), f"{path}: as_of"),
        network_type=network_type,
        network_options=options,
        coverage=coverage,
        siting=siting,
        dedup=_dedup(path, raw.get("dedup", {})),
        source=path,
        **files,
        **sections,
    )


def _check_keys(path: Path, raw: dict[str, Any]) -> None:
    for key, value in raw.items():
        if isinstance(value, dict) and key not in (*SECTIONS, "siting", "dedup"):
            raise InputError(
                f"{path}: unknown section [{key}]; known sections: "
                + ", ".join(f"[{s}]" for s in ("network", *SECTIONS, "siting", "dedup"))
            )
        if not isinstance(value, dict) and key not in _TOP_KEYS:
            hint = f" (it is a key of [{s}])" if (s := _section_of(key)) else ""
            raise InputError(f"{path}: unknown key {key!r} at the top level{hint}; known keys: {', '.join(_TOP_KEYS)}")


def _section(path: Path, name: str, values: Any) -> Any:
    if name == "privacy":  # havenmap.privacy's own class: its source names the section
        return DefenderPrivacy.from_dict(values, source=f"{path}: [privacy]")
    return SECTIONS[name].from_dict(values, source=path)


def _siting_section(path: Path, section: Any) -> dict[str, Any] | None:
    """``[siting]``: the candidate sites (a file or OSM tags) and :class:`havenmap.siting.SitingParams`."""
    from .siting import SitingParams

    if section is None:
        return None
    section = dict(section)
    candidates, tags = (section.pop(key, None) for key in _SITING_INPUTS)
    if (candidates is None) == (tags is None):
        raise InputError(
            f'{path}: [siting] needs exactly one of candidates = "FILE" or candidates_osm = "amenity=clinic,..."'
        )
    return {
        "params": SitingParams.from_dict(section, source=f"{path}: [siting]"),
        "candidates": candidates,  # checked with the other input files
        "candidates_osm": None if tags is None else str(tags),
    }


def _section_of(key: str) -> str | None:
    return next((name for name, cls in SECTIONS.items() if key in cls.__dataclass_fields__), None)


def _network(path: Path, table: Any, network_type: Any) -> tuple[Any, LineOptions | None, str]:
    """The network file, the line-layer options of a ``[network]`` table and the network type."""
    where = f"{path}: [network]"
    if isinstance(table, dict):
        table = dict(table)
        file = table.pop("path", None)
        if file is None:
            raise InputError(f'{where} needs path = "FILE" (the OSM extract or road line layer)')
        if "type" in table:
            if network_type is not None:
                raise InputError(f"{path}: network_type and [network] type both given; keep one")
            network_type = table.pop("type")
        options = LineOptions.from_dict(
            {**table, "network_type": "drive" if network_type is None else network_type},
            where=where,
            base_dir=path.parent,
        )
        return file, options if table else None, options.network_type
    checked = LineOptions.from_dict(
        {"network_type": "drive" if network_type is None else network_type}, where=str(path)
    )
    return table, None, checked.network_type


def _dedup(path: Path, values: Any) -> DedupOptions:
    """``[dedup]``: :class:`havenmap.feeds.DedupOptions`, its errors naming the file and section."""
    if not isinstance(values, dict):
        raise InputError(f"{path}: [dedup] must be a table (days, metres, types)")
    try:
        return DedupOptions.from_dict(values, source=f"{path}: [dedup]")
    except InputError as exc:
        text = str(exc)
        raise InputError(text if text.startswith(str(path)) else f"{path}: [dedup] {text}") from None


def _feeds(path: Path, base: Path, value: Any) -> Path | tuple[Path, ...] | None:
    """``incidents``: one file, or a list of feeds merged by :func:`havenmap.feeds.read_incident_feeds`."""
    if isinstance(value, list):
        if not value:
            raise InputError(
                f'{path}: incidents = []: give a file or a list of files, e.g. ["acled.csv", "partner.csv"]'
            )
        feeds = tuple(_file(path, base, "incidents", v) for v in value)
        return feeds[0] if len(feeds) == 1 else feeds
    return _file(path, base, "incidents", value)


def _file(path: Path, base: Path, role: str, value: Any) -> Path | None:
    """An input path, relative to the scenario file, that must exist."""
    if value is None:
        if role in _REQUIRED:
            raise InputError(f'{path}: key {role!r} is missing; add {role} = "FILE"')
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f'{path}: {role} = {shown(value)}: give a file name, e.g. {role} = "{role}.csv"')
    found = Path(os.path.abspath(base / value))
    if not found.exists():
        raise InputError(
            f"{path}: {role} = {value!r}: file not found ({found}); paths are relative to the scenario file"
        )
    if found.is_dir() and role != "network":  # a network may be a folder (a FileGDB); the points are files
        raise InputError(f"{path}: {role} = {value!r}: {found} is a folder; give the file inside it")
    return found


# ---------------------------------------------------------------------- running it
@contextlib.contextmanager
def _quiet(_: str) -> Iterator[None]:
    yield


def run_scenario(
    scenario: Scenario,
    out_dir: str | os.PathLike[str],
    *,
    step: Step = _quiet,
    exact_defenders: bool = False,
    pdf: bool = False,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run every analysis the scenario has inputs for; write the outputs and the manifest into ``out_dir``.

    Always: ``nearest_havens.geojson`` (routes; owner-readable only), ``coverage/``,
    ``map.html`` (the commander's map: defenders aggregated unless ``exact_defenders``),
    ``report.json``, ``report.html`` (the situation report; ``report.pdf`` too with ``pdf``)
    and ``manifest.json`` (:mod:`havenmap.manifest`). With incidents: ``threat/``. With
    bases and targets: ``patrol/``. The folder is written aside and moved in at the end
    (:func:`havenmap._io.output_folder`): a failed run leaves it as it was, a re-run
    removes files of an earlier run that it does not write.

    Parameters
    ----------
    command
        The command line recorded in the manifest (default: this call).

    Returns
    -------
    dict
        The contents of ``report.json``.
    """
    out = Path(out_dir)
    record = RunRecord()
    step = record.timed(step)
    inputs = scenario.inputs()
    claimed = {f"scenario {role}": p for role, p in inputs.items()}
    _io.check_paths({**claimed, "scenario file": scenario.source}, {"--out": out}, folders=["--out"])
    for sub in ("threat", "coverage", "patrol", "siting"):  # fail before any work, not half-way through
        _io.check_output(out / sub, folder=True, create=False)
    if pdf:
        report.find_chromium()
    check_source(scenario.network, scenario.network_type)
    with record.capture(), _io.output_folder(out, output_files()) as stage:
        described = {role: describe_input(p) for role, p in inputs.items()}  # hashed before they are used
        summary, extra = _run(scenario, stage, step, exact_defenders, described)
        with step("Writing the situation report"):
            report.write_situation_report(stage, inputs=described, title=scenario.name, as_of=scenario.as_of)
            if pdf:
                report.print_pdf(stage / "report.html", stage / "report.pdf")
        write_manifest(
            stage,
            command=list(command) if command is not None else ["havenmap.run_scenario", str(scenario.source or "")],
            scenario=scenario.to_dict(),
            inputs=described,
            seeds={"patrol": scenario.patrol.seed if scenario.patrolling else None, "threat": scenario.threat.seed},
            warnings=record.warnings,
            timings=record.timings(**extra),
        )
    return summary


def _run(
    scenario: Scenario, out: Path, step: Step, exact_defenders: bool, described: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The analyses; returns report.json's contents and the extra (non-deterministic) timings."""
    from . import costs
    from . import coverage as coverage_mod
    from . import patrol as patrol_mod
    from . import siting as siting_mod
    from . import threat as threat_mod

    cov_params, timings = scenario.coverage, {}
    with step("Reading havens, defenders and incidents"):  # every input checked before the network loads
        havens = layers.read_havens(scenario.havens)
        defenders = layers.read_defenders(scenario.defenders)
        feeds = incident_files(scenario)  # one or several; duplicates across feeds merged
        feed = read_incident_feeds(feeds, scenario.dedup) if feeds else None
        incidents = feed.incidents if feed is not None else None
        targets = patrol_mod.read_targets(scenario.targets) if scenario.patrolling else None
        bases = layers.read_bases(scenario.bases) if scenario.patrolling else None
        barriers = costs.read_barriers(scenario.closures) if scenario.closures else None
        risk_table = costs.read_risk_table(scenario.risk) if scenario.risk else None
        if incidents is not None:
            threat_mod.weigh_incidents(incidents, scenario.as_of, half_life_days=scenario.threat.half_life())
        candidates = _siting_candidates(scenario, havens) if scenario.siting is not None else None
        for role, frame in (
            ("havens", havens),
            ("defenders", defenders),
            ("incidents", incidents),
            ("targets", targets),
            ("bases", bases),
            ("closures", barriers),
            ("risk", risk_table),
            ("candidates", candidates),
        ):
            if frame is not None and role in described:
                described[role]["rows"] = len(frame)
        if feed is not None and len(feed.feeds) > 1:  # each feed's own records, not the merged table
            for i, records in enumerate(feed.records):
                described[f"incidents_{i + 1}" if i else "incidents"]["rows"] = records
    with step(f"Loading the {scenario.network_type} network {scenario.network.name}"):
        net = load_network(scenario.network, scenario.network_type, line_options=scenario.network_options)

    risk = costs.edge_risk(net, risk_table) if risk_table is not None else None
    weights = None
    if barriers is not None or risk is not None:
        with step("Building the cost model (closures, danger)"):
            weights = costs.cost_weights(
                net,
                cost=cov_params.cost,
                closures=barriers,
                risk=risk,
                alpha=cov_params.alpha,
                max_risk=cov_params.max_risk,
            )

    threat = alerts = None
    if incidents is not None:
        with step(f"Threat picture from {len(incidents)} incidents"):
            threat = threat_mod.compute_threat(net, incidents, scenario.as_of, **scenario.threat.compute_kwargs())
        with step(f"Early warning for {len(defenders)} defenders"):
            alerts = threat_mod.early_warning(
                net,
                threat.incidents,
                defenders,
                threat.as_of,
                max_snap_m=cov_params.snap_max_distance_m,
                **scenario.alerts.warning_kwargs(),
            )
        threat_mod.write_threat_outputs(threat, out / "threat", alerts, title=f"{scenario.name}: threat")

    bands = ", ".join(f"{m:g}" for m in cov_params.minutes)
    route_kw = {"cost": cov_params.cost, "edge_weights": weights, "max_snap_m": cov_params.snap_max_distance_m}
    with step(f"Routing {len(defenders)} defenders to their {cov_params.k} nearest of {len(havens)} havens"):
        # one answer for routes, coverage, N-1, status, the map and the report
        found = assign_havens(net, defenders, havens, k=max(cov_params.k, 2), **route_kw)
        nearest = found.table(cov_params.k, risk=risk if risk is not None else None if threat is None else threat.risk)
    with step(f"Coverage, service areas and haven loss for {bands} min"):
        cov = coverage_mod.coverage_of(found, cov_params.minutes)
        areas = coverage_mod.service_areas(net, havens, cov_params.minutes, buffer_m=cov_params.buffer_m, **route_kw)
        coverage_summary = coverage_mod.write_coverage_outputs(out / "coverage", cov, areas)

    sited = None
    if scenario.siting is not None:
        sp = scenario.siting["params"]
        with step(f"Where to open {sp.new} new haven(s): {sp.objective}, {sp.minutes:g} min"):
            sited = siting_mod.site_havens(
                net, defenders, candidates, existing=havens, **{**asdict(sp), "bands": sp.bands or cov_params.minutes},
                **route_kw, off_network_candidates="error" if scenario.siting["candidates"] is not None else "drop",
            )  # fmt: skip
            siting_mod.write_siting_outputs(
                sited, out / "siting", net=net, defenders=defenders, privacy=scenario.defender_privacy(exact_defenders),
                title=f"{scenario.name}: where to open the next havens", buffer_m=cov_params.buffer_m,
            )  # fmt: skip
        timings["siting"] = siting_mod.solve_times(sited)

    plan = None
    if scenario.patrolling:
        p = scenario.patrol
        with step(f"Patrol plans: {p.units} unit(s), {p.shift_minutes:g}-minute shifts, {p.days} day(s)"):
            patrol_weights = None
            if barriers is not None or risk is not None:
                patrol_weights = costs.cost_weights(net, closures=barriers, risk=risk, alpha=p.risk_alpha)
            plan = patrol_mod.plan_patrols(
                net, targets, bases, **p.plan_kwargs(), edge_weights=patrol_weights, max_snap_m=route_kw["max_snap_m"]
            )
            patrol_mod.write_patrol_outputs(plan, out / "patrol", roads=net, title=f"{scenario.name}: patrols")
        timings["patrol"] = patrol_mod.solve_times(plan)
        if not plan.summary["reproducible"]:
            warnings.warn(
                "the patrol solver's time limit ([patrol] time_limit_s) stopped it before its iterations: a re-run "
                "may differ; raise time_limit_s or lower iterations for a reproducible plan",
                UserWarning,
                stacklevel=2,
            )

    summary = report.nearest_report(
        nearest,
        defenders=len(defenders),
        havens=len(havens),
        incidents=None if incidents is None else len(incidents),
        cost=cov_params.cost,
        k=cov_params.k,
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
        summary["threat"]["weekly"] = report.weekly_incidents(threat.incidents, threat.as_of)
    if sited is not None:
        summary["siting"] = {k: sited.summary[k] for k in ("objective", "new", "minutes", "value", "optimal", "chosen")}
    if plan is not None:
        summary["patrol"] = {
            k: v for k, v in plan.summary.items() if not isinstance(v, (list, dict)) and k not in patrol_mod.TIMING_KEYS
        }
    with step("Drawing the commander's map"):
        summary["situation"] = report.situation(
            net,
            defenders,
            cov.defenders,
            alerts,
            havens=havens,
            privacy=scenario.privacy,
            slow_minutes=scenario.slow_minutes,
        )
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
        _io.write_json(out / "report.json", summary, private=True)  # names unreachable defenders
        if feed is not None and len(feed.feeds) > 1:
            feed.write_audit(out / "incidents_merged.csv")
    return summary, timings


def _siting_candidates(scenario: Scenario, havens):
    """The candidate sites of ``[siting]``, read and checked before the network loads."""
    from . import siting as siting_mod

    cfg = scenario.siting
    if cfg["candidates"] is not None:
        candidates = layers.read_points(cfg["candidates"], kind="havens")
    else:
        candidates = siting_mod.candidates_from_osm(scenario.network, cfg["candidates_osm"], exclude=havens)
    siting_mod.check_sites(candidates, havens, cfg["params"].new)
    return candidates


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
    privacy = scenario.defender_privacy(exact_defenders)
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
        privacy=privacy,
        recent_days=scenario.map.recent_days,
        slow_minutes=scenario.slow_minutes,
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
