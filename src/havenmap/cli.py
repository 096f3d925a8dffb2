"""The ``havenmap`` command line: thin typer commands over the Python API.

Every command checks its option values, its output paths (an output never overwrites an
input) and its input files before it loads the road network, the slow step, so a bad input
fails in a second. User errors (bad files, unknown formats, points in the wrong area) and
usage errors (an unknown, missing or out-of-range option) print one line
``havenmap: error: ...`` on stderr and exit with status 2, without a traceback. Everything
printed goes through :func:`havenmap._io.printable`, so ids and file names cannot carry
terminal escape sequences.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.text import Text

from . import _io, layers, manifest
from .errors import HavenmapError, listing, shortened
from .havens import assign_havens, nearest_havens
from .lines import DEFAULT_SNAP_TOLERANCE_M, LineOptions, network_report
from .network import RoadNetwork, check_source, load_network
from .params import AlertParams, CoverageParams, MapParams, Params, PatrolCheckParams, PatrolParams, ThreatParams
from .snap import DEFAULT_MAX_SNAP_M, check_max_snap_m

#: Commands in the order of a planner's work; ``havenmap --help`` lists them so.
WORKFLOW = (
    "demo",
    "run",
    "verify",
    "threat",
    "alerts",
    "backtest",
    "sweep",
    "coverage",
    "nearest",
    "site",
    "patrol",
    "patrol-check",
    "map",
    "share",
    "network",
    "download",
)

app = typer.Typer(
    name="havenmap",
    help="Protection planning on real road networks: threat on every road, early warning, haven coverage, "
    "nearest reachable havens, patrols and offline maps for commanders. Start with 'havenmap demo'.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
out_console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


# ---------------------------------------------------------------------- printing
def _line(*parts: str | tuple[str, str | None]) -> Text:
    """One line of output from text parts (``"text"`` or ``("text", "style")``), made printable.

    User text (ids, file names, messages) never reaches the terminal raw: control characters
    are escaped (:func:`havenmap._io.printable`) and nothing is read as rich markup.
    """
    line = Text()
    for part in parts:
        text, style = (part, None) if isinstance(part, str) else part
        line.append(_io.printable(text), style=style)
    return line


def _say(*parts: str | tuple[str, str | None], err: bool = False) -> None:
    (err_console if err else out_console).print(_line(*parts))


@contextlib.contextmanager
def _step(message: str) -> Iterator[None]:
    """Show a spinner while a step runs, then a tick with its duration (recorded for the manifest)."""
    start = time.perf_counter()
    with err_console.status(_line(message + " ...")):
        yield
    seconds = time.perf_counter() - start
    _RUN.record.steps.append({"step": message, "seconds": round(seconds, 3)})
    _say(("✓ ", "green"), message, (f" ({seconds:.1f} s)", "dim"), err=True)


@dataclass
class _Run:
    """The command line being run and its record (warnings, step timings), for the manifest."""

    argv: list[str] = field(default_factory=lambda: ["havenmap"])
    record: manifest.RunRecord = field(default_factory=manifest.RunRecord)


_RUN = _Run()


def _write_manifest(
    folder: Path,
    params: dict[str, Any],
    inputs: dict[str, Any],
    *,
    seeds: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
    outputs: list[str] | None = None,
) -> Path:
    """``folder/manifest.json`` for a command's output folder (see :mod:`havenmap.manifest`)."""
    return manifest.write_manifest(
        folder,
        outputs=outputs,
        command=_RUN.argv,
        scenario=params,
        inputs=inputs,
        seeds=seeds,
        warnings=_RUN.record.warnings,
        timings=_RUN.record.timings(**(timings or {})),
    )


_shown: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one yellow line, once per run (several steps may warn about the same points)."""
    if str(message) in _shown:
        return
    _shown.add(str(message))
    _say(("warning: ", "yellow"), str(message), err=True)


# ---------------------------------------------------------------------- option checks (at parse time)
def _param(cls: type[Params], key: str) -> Callable[[Any, Any, Any], Any]:
    """A typer callback checking an option as the parameter class's field does (None passes).

    The rule lives in :mod:`havenmap.params`; the error names the option
    (``--bandwidth-m -5: give a distance in metres above 0``).
    """

    def check(ctx: Any, param: Any, value: Any) -> Any:
        return None if value is None else cls.check_value(key, value, param.opts[0])

    return check


def _snap_check(ctx: Any, param: Any, value: float) -> float:
    return check_max_snap_m(value, param.opts[0])


# ---------------------------------------------------------------------- shared options
Cost = Literal["time", "length"]
NetworkType = Literal["drive", "walk"]

NetworkOpt = Annotated[
    Path,
    typer.Option(
        "--network",
        "-n",
        help="Road network: .osm, .osm.bz2, .osm.pbf, osmnx .graphml, or a road line layer "
        "(.shp, .gpkg, .geojson, .parquet, .fgb).",
    ),
]
NetworkTypeOpt = Annotated[
    NetworkType,
    typer.Option(
        "--network-type",
        metavar="[drive|walk]",
        help="drive (one-ways honoured) or walk (every road both ways at walking speed); a .graphml is used as given.",
    ),
]
DefendersOpt = Annotated[
    Path,
    typer.Option(
        "--defenders", "-d", help="Defenders: CSV (id, latitude, longitude), GeoJSON, GPKG or GeoParquet points."
    ),
]
HavensOpt = Annotated[Path, typer.Option("--havens", help="Safe havens: same point formats, with an id column.")]
IdOpt = Annotated[
    str | None, typer.Option("--id", metavar="<column>", help="Id column of the point files (default: 'id', any case).")
]
LatOpt = Annotated[
    str | None,
    typer.Option(
        "--lat", metavar="<column>", help="Latitude column of CSV point files (default: latitude or lat, any case)."
    ),
]
LonOpt = Annotated[
    str | None,
    typer.Option(
        "--lon", metavar="<column>", help="Longitude column of CSV point files (default: longitude, lon, lng or long)."
    ),
]
CrsOpt = Annotated[
    str | None,
    typer.Option(
        "--crs",
        metavar="<crs>",
        help="CRS of CSV point files' coordinates when not longitude/latitude in degrees (EPSG:4326), "
        "e.g. EPSG:32613 for x/y in metres.",
    ),
]
PointsLayerOpt = Annotated[
    str | None,
    typer.Option(
        "--points-layer",
        metavar="<name>",
        help="Layer to read from GeoPackage point files that hold several (the error lists them).",
    ),
]
SnapOpt = Annotated[
    float,
    typer.Option(
        "--max-snap-m",
        help="Points farther than this from any road (metres) are off the network.",
        callback=_snap_check,
    ),
]
CostOpt = Annotated[
    Cost,
    typer.Option("--cost", metavar="[time|length]", help="What routes minimise: travel time or road length (metres)."),
]
OutFolderOpt = Annotated[Path, typer.Option("--out", "-o", help="Output folder (the command owns its files).")]


# road line layers (see havenmap.lines): the same options on every command that takes --network
_LINES = "Road line layers"
LayerOpt = Annotated[
    str | None,
    typer.Option(
        "--layer", metavar="<name>", help="Layer of a road line GeoPackage with several.", rich_help_panel=_LINES
    ),
]
SnapToleranceOpt = Annotated[
    float,
    typer.Option(
        "--snap-tolerance-m",
        help="Loose line ends within this distance (metres) of a vertex or a line join it; 0: shared vertices only.",
        rich_help_panel=_LINES,
    ),
]
SplitCrossingsOpt = Annotated[
    bool,
    typer.Option(
        "--split-crossings",
        help="Join lines where they cross without a shared vertex (off: bridges and flyovers stay apart).",
        rich_help_panel=_LINES,
    ),
]
OnewayColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--oneway-column",
        metavar="<column>",
        help="Direction column: yes/no/-1 (OSM), FT/TF/B/N (ESRI), F/T/B (Geofabrik). Without it: two-way.",
        rich_help_panel=_LINES,
    ),
]
SpeedColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--speed-column",
        metavar="<column>",
        help="Speed column (km/h, or e.g. '30 mph'; 0/empty = unknown).",
        rich_help_panel=_LINES,
    ),
]
SpeedUnitOpt = Annotated[
    Literal["kph", "mph"],
    typer.Option(
        "--speed-unit",
        metavar="[kph|mph]",
        help="Unit of plain numbers in --speed-column.",
        rich_help_panel=_LINES,
    ),
]
ClassColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--class-column",
        metavar="<column>",
        help="Road class column (OSM highway, Geofabrik fclass, or your own) for default speeds.",
        rich_help_panel=_LINES,
    ),
]
ClassSpeedsOpt = Annotated[
    Path | None,
    typer.Option(
        "--class-speeds",
        help="CSV (class,speed_kph) or TOML (class = km/h) overriding the class speeds; 0 = not a road.",
        rich_help_panel=_LINES,
    ),
]


def _line_options(
    layer: str | None,
    snap_tolerance_m: float,
    split_crossings: bool,
    oneway_column: str | None,
    speed_column: str | None,
    speed_unit: str,
    class_column: str | None,
    class_speeds: Path | None,
) -> LineOptions:
    """The line-layer options of a command (checked by LineOptions, before any slow work)."""
    return LineOptions(
        layer=layer,
        snap_tolerance_m=snap_tolerance_m,
        split_crossings=split_crossings,
        oneway_column=oneway_column,
        speed_column=speed_column,
        speed_unit=speed_unit,
        class_column=class_column,
        class_speeds=class_speeds,
    )


def _load_network(network: Path, network_type: str, options: LineOptions, *, summary: bool = True) -> RoadNetwork:
    """Load any network; for a line layer also print its report's one-line summary."""
    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type, line_options=options)
    if summary and net.build_info.get("kind") == "lines":
        _say(network_report(net).summary(), err=True)
    return net


# ---------------------------------------------------------------------- demo, run, verify
ExactDefendersOpt = Annotated[
    bool, typer.Option("--exact-defenders", help="Show exact defender points on the map (sensitive!).")
]
PdfOpt = Annotated[
    bool,
    typer.Option("--pdf", help="Also print OUT/report.pdf with headless Chromium (an error when none is installed)."),
]


@app.command("demo", short_help="Run the built-in Helsinki demo: every analysis into a folder.")
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (the command owns its files).")] = Path(
        "havenmap-demo"
    ),
    exact_defenders: ExactDefendersOpt = False,
    pdf: PdfOpt = False,
) -> None:
    """Run the embedded Helsinki demo scenario (real OSM streets, synthetic people and incidents).

    The same as 'havenmap run' on the demo's scenario.toml: OUT/map.html (the commander's map),
    OUT/report.html (the situation report), OUT/report.json, OUT/nearest_havens.geojson,
    OUT/coverage/, OUT/threat/, OUT/patrol/, OUT/siting/ and OUT/manifest.json (see the README for every file).
    """
    from . import scenario

    _run_scenario(scenario.demo_dir() / "scenario.toml", out, exact_defenders, pdf, label="demo scenario")


@app.command("run", short_help="Run your own scenario: every analysis into one folder.")
def run_command(
    scenario_file: Annotated[
        Path, typer.Argument(metavar="SCENARIO.toml", help="The scenario: inputs and parameters (see the README).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (the command owns its files).")],
    exact_defenders: ExactDefendersOpt = False,
    pdf: PdfOpt = False,
) -> None:
    """Run a scenario file: the inputs it names (paths relative to it) through every analysis they allow.

    Always OUT/nearest_havens.geojson, OUT/coverage/, OUT/map.html, OUT/report.json,
    OUT/report.html and OUT/manifest.json; with incidents OUT/threat/; with bases and
    targets OUT/patrol/; with a [siting] section OUT/siting/. Every key is checked before
    anything is read. 'havenmap verify OUT' later says whether any input or output changed since.
    """
    _run_scenario(scenario_file, out, exact_defenders, pdf)


def _run_scenario(path: Path, out: Path, exact_defenders: bool, pdf: bool, label: str = "SCENARIO.toml") -> None:
    from . import scenario

    _io.check_paths({label: path}, {"--out": out}, folders=["--out"])
    scen = scenario.load_scenario(path)
    summary = scenario.run_scenario(scen, out, step=_step, exact_defenders=exact_defenders, pdf=pdf, command=_RUN.argv)
    if "siting" in summary:
        s = summary["siting"]
        _say(
            f"Where to open {s['new']} more haven(s) ({s['objective']}, {s['minutes']:g} min): "
            f"{', '.join(s['chosen'])} — see siting/."
        )
    _print_summary(summary, out)
    _say(f"Situation report: {out / 'report.html'}" + (f" and {out / 'report.pdf'}" if pdf else ""))


@app.command("verify", short_help="Which inputs and outputs of a run changed since (manifest).")
def verify_command(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="An output folder with a manifest.json.")],
) -> int:
    """Re-hash the inputs and outputs a run's manifest lists and print one line per change.

    Exit status 0 when every file is as recorded, 1 when something changed (a file changed,
    is missing, or is new in DIR), 2 when DIR is not a folder with a readable manifest.
    """
    changes = manifest.verify(folder)
    for change in changes:
        _say((str(change), "red" if change.kind != "new" else "yellow"))
    data = manifest.read_manifest(folder)
    if changes:
        _say(f"{len(changes)} change(s) since the run of {data['timings'].get('finished', 'unknown date')}")
        return 1
    _say(
        f"{folder}: unchanged: {len(data['inputs'])} input(s) and {len(data['outputs'])} output(s) as recorded "
        f"by the run of {data['timings'].get('finished', 'unknown date')}"
    )
    return 0


# ---------------------------------------------------------------------- nearest havens
@app.command("nearest", short_help="Each defender's nearest reachable havens by road, with routes.")
def nearest(
    network: NetworkOpt,
    defenders: DefendersOpt,
    havens: HavensOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoJSON: one route per defender and rank.")],
    k: Annotated[
        int, typer.Option("--k", help="How many nearest havens per defender.", callback=_param(CoverageParams, "k"))
    ] = CoverageParams.k,
    cost: CostOpt = "time",
    map_path: Annotated[
        Path | None, typer.Option("--map", help="Also write an offline HTML map of the result.")
    ] = None,
    incidents: Annotated[
        list[Path] | None,
        typer.Option(
            "--incidents",
            help="Incidents to draw as a heatmap on --map (ACLED, UCDP GED, HXL/CSV, GeoJSON...); "
            "repeat for several feeds (duplicates merged, see incidents_merged.csv).",
        ),
    ] = None,
    dedup_days: DedupDaysOpt = 1,
    dedup_m: DedupMOpt = 500.0,
    hxl: HxlOpt = False,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    exact_defenders: Annotated[
        bool, typer.Option("--exact-defenders", help="Show exact defender points on --map (sensitive!).")
    ] = False,
    id_column: IdOpt = None,
    lat_column: LatOpt = None,
    lon_column: LonOpt = None,
    crs: CrsOpt = None,
    points_layer: PointsLayerOpt = None,
    closures: ClosuresOpt = None,
    risk: RiskOpt = None,
    alpha: AlphaOpt = 1.0,
    max_risk: MaxRiskOpt = None,
) -> None:
    """Find each defender's K nearest reachable safe havens by road, with the route to each.

    Output columns: defender_id, rank (1 = nearest), haven_id, haven_name, travel_time_s,
    distance_m, reachable, reason, snap_distance_m; geometry = the road route (EPSG:4326).
    A defender who can reach no haven is listed with reachable = false and no route.
    """
    from . import report, scenario

    CoverageParams.from_options(k=k, cost=cost, alpha=alpha, max_risk=max_risk).check_cost_model(risk is not None)
    inputs = {
        "--network": network,
        "--class-speeds": class_speeds,
        "--defenders": defenders,
        "--havens": havens,
        "--incidents": incidents,
        "--closures": closures,
        "--risk": risk,
    }
    _io.check_paths(inputs, {"--out": out, "--map": map_path, **_merged_output(incidents, out)})
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    check_source(network, network_type)
    with _step("Reading the inputs"):
        columns = {"id_column": id_column, "lat_column": lat_column, "lon_column": lon_column, "crs": crs}
        columns["layer"] = points_layer
        d = layers.read_defenders(defenders, **_point_options(defenders, columns))
        h = layers.read_havens(havens, **_point_options(havens, columns))
        feed = _read_feeds(incidents, dedup_days, dedup_m, points_layer)
        inc = None if feed is None else feed.incidents
        barriers, risk_table = _read_cost_inputs(closures, risk)
    net = _load_network(network, network_type, line_opts)
    weights, risk_arr = _cost_model(net, cost, barriers, risk_table, alpha, max_risk)
    with _step(f"Routing {len(d)} defenders to their {k} nearest of {len(h)} havens"):
        result = nearest_havens(net, d, h, k=k, cost=cost, max_snap_m=max_snap_m, edge_weights=weights, risk=risk_arr)
    with _step("Writing outputs"):
        _io.write_geojson(out, result, private=True)
        _write_merged(feed, out, hxl)
        if map_path is not None:
            scenario.write_nearest_map(
                map_path,
                net,
                result,
                havens=h,
                defenders=d,
                incidents=inc,
                title=f"Nearest havens — {network.name}",
                exact_defenders=exact_defenders,
            )
    summary = report.nearest_report(
        result, defenders=len(d), havens=len(h), incidents=None if inc is None else len(inc), cost=cost, k=k
    )
    _print_summary(summary, out)


# ---------------------------------------------------------------------- download
@app.command("download", short_help="Download a road network from OpenStreetMap (needs internet).")
def download(
    out: Annotated[Path, typer.Option("--out", "-o", help="GraphML file to write (load it later with --network).")],
    place: Annotated[
        str | None, typer.Option("--place", metavar="<place>", help="Place name to geocode, e.g. 'Kallio, Helsinki'.")
    ] = None,
    bbox: Annotated[
        str | None, typer.Option("--bbox", metavar="<w,s,e,n>", help="west,south,east,north in degrees.")
    ] = None,
    network_type: NetworkTypeOpt = "drive",
) -> None:
    """Download a road network from OpenStreetMap (the only command that uses the internet).

    Field teams should download before deployment and carry the GraphML (or a .osm.pbf extract).
    """
    from .network import from_bbox, from_place

    if (place is None) == (bbox is None):
        raise HavenmapError("give exactly one of --place or --bbox")
    box = None
    if bbox is not None:
        try:
            box = tuple(float(v) for v in bbox.split(","))
        except ValueError:
            box = ()
        if len(box) != 4 or not all(np.isfinite(box)):
            raise HavenmapError(f"--bbox {bbox!r}: give four numbers west,south,east,north")
    _io.check_paths({}, {"--out": out})
    with _step(f"Downloading the {network_type} network from OpenStreetMap"):
        net = from_place(place, network_type) if place is not None else from_bbox(box, network_type)
    import osmnx as ox

    with _io.atomic_path(out) as tmp:
        ox.save_graphml(net.to_networkx(), tmp)
    _say(f"{net.n_nodes:,} nodes, {net.n_edges:,} edges written to {out}")


# ---------------------------------------------------------------------- network report
@app.command("network", short_help="Build the road network; report what it holds (and what not).")
def network_command(
    network: NetworkOpt,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder for network_report.json.")] = None,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
) -> None:
    """Build the road network and report what it holds, and why a defender may look cut off.

    Nodes, edges, km of road, components and the share of km outside the largest, dangling
    ends; for road line layers also the ends joined within --snap-tolerance-m, crossings left
    apart (or joined with --split-crossings), pieces dropped and how each edge got its speed.
    With --out, writes OUT/network_report.json (see the README for its fields).
    """
    report_file = None if out is None else out / "network_report.json"  # with the manifest, the files written into OUT
    manifest_file = None if out is None else out / manifest.MANIFEST
    _io.check_paths(
        {"--network": network, "--class-speeds": class_speeds},
        {"--out": report_file, "--out (manifest)": manifest_file},
    )
    if out is not None:
        _io.check_output(out, folder=True, create=False)
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    check_source(network, network_type)
    net = _load_network(network, network_type, line_opts, summary=False)
    found = network_report(net)
    for line in found.describe():
        _say(line)
    if report_file is not None:
        _say(f"Report written to {found.write(report_file)}")
        _write_manifest(
            report_file.parent,
            {"command": "network", "network_type": network_type, "line_options": line_opts.__dict__},
            {"network": network, "class_speeds": class_speeds},
            outputs=[report_file.name],
        )


# ---------------------------------------------------------------------- patrols
@app.command("patrol", short_help="Patrol routes for every unit and day, collecting priority.")
def patrol_command(
    network: NetworkOpt,
    bases: Annotated[
        Path, typer.Option("--bases", "-b", help="Patrol bases: CSV (id, latitude, longitude), GeoJSON, GPKG...")
    ],
    out: OutFolderOpt,
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            "-t",
            help="Targets: id, coordinates, priority, optional service_minutes, window_start_min, window_end_min.",
        ),
    ] = None,
    units: Annotated[
        str,
        typer.Option(
            "--units",
            "-u",
            metavar="<int|file>",
            help="Number of units (spread over the bases round-robin) or a units file "
            "(unit, base_id, shift_minutes, profile).",
        ),
    ] = "1",
    shift_minutes: Annotated[
        float,
        typer.Option(
            "--shift-minutes",
            "-s",
            help="Shift length in minutes (for units without their own).",
            callback=_param(PatrolParams, "shift_minutes"),
        ),
    ] = PatrolParams.shift_minutes,
    days: Annotated[
        int,
        typer.Option(
            "--days",
            help="Days to plan (at most 366); more than 1 varies the plans day to day (mixed strategy).",
            callback=_param(PatrolParams, "days"),
        ),
    ] = PatrolParams.days,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Seed: the same seed gives the same plan.", callback=_param(PatrolParams, "seed")),
    ] = PatrolParams.seed,
    time_limit: Annotated[
        float,
        typer.Option(
            "--time-limit",
            help="Solver time cap per day, seconds (building the solver's instance included).",
            callback=_param(PatrolParams, "time_limit_s"),
        ),
    ] = PatrolParams.time_limit_s,
    iterations: Annotated[
        int,
        typer.Option(
            "--iterations",
            help="Solver iterations per day (a reproducible stop).",
            callback=_param(PatrolParams, "iterations"),
        ),
    ] = PatrolParams.iterations,
    hotspots: Annotated[
        Path | None,
        typer.Option("--hotspots", help="Hotspot roads (GeoJSON from the threat module) to patrol as targets."),
    ] = None,
    checkins: Annotated[
        Path | None, typer.Option("--checkins", help="Safe havens to check in at (each a target of priority 1, 5 min).")
    ] = None,
    defenders: Annotated[
        Path | None, typer.Option("--defenders", help="Defenders with a 'consent' column (none / drive-by / visit).")
    ] = None,
    risk: Annotated[
        Path | None, typer.Option("--risk", help="Edge risk (GeoJSON: u, v, key, risk): legs avoid risky roads.")
    ] = None,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            help="Danger weight: leg cost = time × (1 + alpha × risk) (needs --risk).",
            callback=_param(PatrolParams, "risk_alpha"),
        ),
    ] = PatrolParams.risk_alpha,
    exact: Annotated[
        bool, typer.Option("--exact", help="Place defender targets at their exact road point (outputs owner-only).")
    ] = False,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    points_layer: PointsLayerOpt = None,
    hxl: HxlOpt = False,
) -> None:
    """Plan patrol routes: every unit from its base and back within its shift, collecting target priority.

    Writes OUT/patrol_routes.geojson, OUT/gpx/<unit>_day-<d>.gpx, OUT/patrol_schedule.csv,
    OUT/target_frequency.csv, OUT/patrol_summary.json and OUT/patrol_map.html; files of an
    earlier run that this run does not write are removed. One network (drive or walk) per run.
    """
    from . import costs
    from . import patrol as pt

    units_file = None if units.strip().isdigit() else Path(units)
    if units_file is not None and not units_file.suffix:
        raise HavenmapError(f"--units {units!r}: give a number of units (e.g. 3) or a units CSV file")
    params = PatrolParams.from_options(
        units=1 if units_file is not None else int(units),
        shift_minutes=shift_minutes,
        days=days,
        seed=seed,
        time_limit_s=time_limit,
        iterations=iterations,
        risk_alpha=alpha,
    )
    params.check_risk(risk is not None)
    inputs = {
        "--network": network,
        "--class-speeds": class_speeds,
        "--bases": bases,
        "--targets": targets,
        "--units": units_file,
        "--hotspots": hotspots,
        "--checkins": checkins,
        "--defenders": defenders,
        "--risk": risk,
    }
    _io.check_paths(inputs, {"--out": out}, folders=["--out"])
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    profile = check_source(network, network_type)
    with _step("Reading bases, units and targets"):
        b = layers.read_bases(bases, layer=points_layer)
        unit_spec = int(units) if units_file is None else pt.read_units(units_file)
        pt.check_units(unit_spec, b, shift_minutes, profile)
        parts = [pt.read_targets(targets, layer=points_layer)] if targets else []
        hot = _read_geo(hotspots, "--hotspots") if hotspots else None
        if checkins:
            parts.append(pt.targets_from_havens(layers.read_havens(checkins, layer=points_layer)))
        d = layers.read_defenders(defenders, layer=points_layer) if defenders else None
        if d is not None:
            pt.check_consent(d)
        if not parts and hot is None and d is None:
            raise HavenmapError("no targets: give --targets, --hotspots, --checkins or --defenders (with consent)")
        risk_table = costs.read_risk_table(risk) if risk else None
    with _io.output_folder(out, (*pt.OUTPUT_FILES, manifest.MANIFEST)) as stage:  # checked now; filled at the end
        net = _load_network(network, network_type, line_opts)
        with _step("Placing the targets on the roads"):
            if hot is not None:
                parts.append(pt.targets_from_hotspots(net, hot))
            if d is not None:
                parts.append(pt.targets_from_defenders(net, d, exact=exact, max_snap_m=max_snap_m))
            tg = pt.combine_targets(*parts)
            risk_arr = costs.edge_risk(net, risk_table) if risk_table is not None else None
        with _step(f"Planning {days} day(s) for {len(tg)} targets"):
            plan = pt.plan_patrols(
                net, tg, b, **{**params.plan_kwargs(), "units": unit_spec}, risk=risk_arr, max_snap_m=max_snap_m
            )
        with _step("Writing outputs"):
            pt.write_patrol_outputs(plan, stage, roads=net, title=f"Patrols — {network.name}", hxl=hxl)
        if not plan.summary["reproducible"]:
            _RUN.record.warnings.append(_NOT_REPRODUCIBLE)
        _write_manifest(
            stage,
            {"command": "patrol", "network_type": network_type, "patrol": params.to_dict(), "exact": exact,
             "max_snap_m": max_snap_m, "units_file": None if units_file is None else str(units_file)},
            {"network": network, "class_speeds": class_speeds, "bases": manifest.InputFile(bases, len(b)),
             "targets": targets, "units": units_file, "hotspots": hotspots, "checkins": checkins,
             "defenders": None if defenders is None else manifest.InputFile(defenders, len(d)), "risk": risk},
            seeds={"patrol": seed},
            timings={"patrol": pt.solve_times(plan)},
        )  # fmt: skip
    s = plan.summary
    for d_ in s["per_day"]:
        _say(
            f"day {d_['day']}: {d_['targets_visited']} targets visited by {d_['units_out']} of "
            f"{s['units']} units, priority {d_['prize']:g} of {s['prize_possible_per_day']:g}"
        )
    if s["variety_jaccard"] is not None:
        _say(
            f"day-to-day variety (Jaccard distance of visited sets): {s['variety_jaccard']:.2f}; "
            f"priority–frequency correlation: {s['frequency_priority_correlation']}"
        )
    if not s["reproducible"]:
        _say(("warning: ", "yellow"), _NOT_REPRODUCIBLE, err=True)
    _say(f"Outputs in {out}")


_NOT_REPRODUCIBLE = (
    "the time limit stopped the solver before its iterations: a re-run may differ; "
    "raise --time-limit or lower --iterations for a reproducible plan"
)


# ---------------------------------------------------------------------- patrol follow-up
@app.command("patrol-check", short_help="Did the patrols happen? The plan against the GPS tracks.")
def patrol_check_command(
    plan: Annotated[
        Path, typer.Option("--plan", help="The plan's folder (written by 'havenmap patrol', or a run's patrol/).")
    ],
    tracks: Annotated[
        Path,
        typer.Option(
            "--tracks", help="Folder of GPX tracks (or one file), named <unit>_day-<d>.gpx or with that track name."
        ),
    ],
    out: OutFolderOpt,
    radius_m: Annotated[
        float,
        typer.Option(
            "--radius-m",
            help="A stop is visited when a track passes within this, metres.",
            callback=_param(PatrolCheckParams, "radius_m"),
        ),
    ] = PatrolCheckParams.radius_m,
    window_min: Annotated[
        float,
        typer.Option(
            "--window-min",
            help="... from this many minutes before the planned arrival to as many after the "
            "planned departure (inf: any time).",
            callback=_param(PatrolCheckParams, "window_min"),
        ),
    ] = PatrolCheckParams.window_min,
    corridor_m: Annotated[
        float,
        typer.Option(
            "--corridor-m",
            help="A hotspot road is driven when half of it lies within this of the track, metres.",
            callback=_param(PatrolCheckParams, "corridor_m"),
        ),
    ] = PatrolCheckParams.corridor_m,
    hotspots: Annotated[
        Path | None,
        typer.Option("--hotspots", help="Hotspot roads (threat/hotspots.geojson): planned vs achieved risk coverage."),
    ] = None,
    network: Annotated[
        Path | None, typer.Option("--network", "-n", help="Road network drawn under the map (optional).")
    ] = None,
    network_type: NetworkTypeOpt = "drive",
) -> None:
    """Compare a patrol plan with the GPS tracks the units recorded (GPX from OsmAnd, SMART, any GPS app).

    Per unit and day: which planned stops were visited (the track within --radius-m, within the
    time window) and which were missed, km driven vs planned (detours) and, with --hotspots,
    the hotspot roads and risk the plan covered vs those driven. Writes OUT/patrol_check.csv
    (per stop), OUT/patrol_check.json (per unit and day, totals), OUT/patrol_check_map.html and
    OUT/manifest.json, owner-only. A track file names its unit and day by its file name
    (<unit>_day-<d>.gpx, like the plan's GPX) or by its track name ('<unit> day <d>').
    """
    from . import patrol_check as pc

    params = PatrolCheckParams.from_options(radius_m=radius_m, window_min=window_min, corridor_m=corridor_m)
    track_files = pc.track_files(tracks, "--tracks")
    _io.check_paths(
        {"--plan": plan, "--tracks": track_files, "--hotspots": hotspots, "--network": network},
        {"--out": out},
        folders=["--out"],
    )
    if network is not None:
        check_source(network, network_type)
    with _step("Reading the plan and the tracks"):
        planned = pc.read_plan(plan)
        recorded = pc.read_tracks(track_files, planned)
        hot = _read_geo(hotspots, "--hotspots") if hotspots is not None else None
    with _io.output_folder(out, (*pc.OUTPUT_FILES, manifest.MANIFEST)) as stage:
        net = _load_network(network, network_type, LineOptions(network_type=network_type)) if network else None
        with _step(f"Checking {len(planned.stops)} planned stops against {len(track_files)} track file(s)"):
            check = pc.check_patrols(planned, recorded, params, hotspots=hot)
            pc.write_patrol_check(check, stage, roads=net, title=f"Patrol check — {plan.name}")
        _write_manifest(
            stage,
            {"command": "patrol-check", "patrol_check": params.to_dict()},
            {"plan": planned.files, "tracks": [f for t in recorded.values() for f in t.files],
             "hotspots": None if hot is None else manifest.InputFile(hotspots, len(hot)), "network": network},
        )  # fmt: skip
    for row in check.days.itertuples():
        missed = f" (missed: {listing(row.missed, 8)})" if row.missed else ""
        risk = ""
        if "hotspot_roads_planned" in check.days.columns:
            risk = f"; hotspot roads {row.hotspot_roads_driven} driven of {row.hotspot_roads_planned} planned"
        _say(
            f"{row.unit} day {row.day}: {row.stops_visited} of {row.stops_planned} stops visited{missed}; "
            f"{row.km_driven:.1f} km driven vs {row.km_planned:.1f} planned ({row.detour_km:+.1f} km){risk}"
            + ("" if row.time_checked or not row.track_files else "; no times in the track: distance only")
        )
    s = check.summary
    _say((f"{s['stops_visited']} of {s['stops_planned']} planned stops visited", "bold"), f"; outputs in {out}")


# ---------------------------------------------------------------------- coverage (reach at scale)
ClosuresOpt = Annotated[
    Path | None,
    typer.Option(
        "--closures",
        help="Barriers closing roads: GeoJSON/GPKG points (checkpoints), lines (blocked roads), "
        "polygons (no-go areas), or a CSV of checkpoints.",
    ),
]
RiskOpt = Annotated[
    Path | None,
    typer.Option(
        "--risk",
        help="Per-edge risk (u, v, key, risk or edge, risk; CSV/GeoJSON, e.g. edge_risk.geojson of "
        "'havenmap threat'): routes minimise time × (1 + alpha × risk).",
    ),
]
AlphaOpt = Annotated[
    float,
    typer.Option(
        "--alpha",
        help="Danger weight alpha in time × (1 + alpha × risk) (needs --risk).",
        callback=_param(CoverageParams, "alpha"),
    ),
]
MaxRiskOpt = Annotated[
    float | None,
    typer.Option(
        "--max-risk",
        help="Forbid roads whose risk exceeds this (needs --risk; default: no limit).",
        callback=_param(CoverageParams, "max_risk"),
    ),
]


def _read_cost_inputs(closures: Path | None, risk: Path | None):
    """Barriers and the risk table, read and checked before the network is loaded."""
    from . import costs

    barriers = costs.read_barriers(closures) if closures is not None else None
    risk_table = costs.read_risk_table(risk) if risk is not None else None
    return barriers, risk_table


def _cost_model(net, cost: str, barriers, risk_table, alpha: float, max_risk: float | None):
    """(per-edge weights or None, per-edge risk or None) for the CLI's cost options."""
    from . import costs

    if barriers is None and risk_table is None:
        return None, None
    with _step("Building the cost model (closures, danger)"):
        risk_arr = costs.edge_risk(net, risk_table) if risk_table is not None else None
        weights = costs.cost_weights(net, cost=cost, risk=risk_arr, alpha=alpha, max_risk=max_risk, closures=barriers)
    return weights, risk_arr


@app.command("coverage", short_help="Who reaches a haven in each time band; what losing one costs.")
def coverage_command(
    network: NetworkOpt,
    defenders: DefendersOpt,
    havens: HavensOpt,
    out: OutFolderOpt,
    minutes: Annotated[
        str,
        typer.Option(
            "--minutes",
            "-m",
            metavar="<list>",
            help="Time bands in minutes, e.g. 5,10,15.",
            callback=_param(CoverageParams, "minutes"),
        ),
    ] = ",".join(f"{m:g}" for m in CoverageParams.minutes),
    closures: ClosuresOpt = None,
    risk: RiskOpt = None,
    alpha: AlphaOpt = 1.0,
    max_risk: MaxRiskOpt = None,
    cost: CostOpt = "time",
    buffer_m: Annotated[
        float,
        typer.Option(
            "--buffer-m",
            help="Half-width of service areas around the reached roads, metres.",
            callback=_param(CoverageParams, "buffer_m"),
        ),
    ] = CoverageParams.buffer_m,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    id_column: IdOpt = None,
    lat_column: LatOpt = None,
    lon_column: LonOpt = None,
    crs: CrsOpt = None,
    points_layer: PointsLayerOpt = None,
    hxl: HxlOpt = False,
) -> None:
    """Who reaches a haven within each time band, what losing any one haven does, and what closures cut off.

    Writes to OUT: service_areas.geojson (haven_id, minutes, polygon), coverage.csv (per defender:
    defender_id, haven_id, travel_time_s, second_haven_id, second_travel_time_s, reachable,
    band_min, reason), coverage.json (per band covered and share; per haven served),
    n_minus_1.csv (per haven lost: coverage per band, defenders losing all cover) and, with
    --closures, closures_impact.csv (defenders cut off or slowed, with the haven they would
    have reached without the closures). Files are readable by the owner only; files of an
    earlier run that this run does not write are removed.
    """
    from . import coverage as cov_mod

    params = CoverageParams.from_options(
        minutes=minutes, cost=cost, alpha=alpha, max_risk=max_risk, buffer_m=buffer_m, snap_max_distance_m=max_snap_m
    )
    params.check_cost_model(risk is not None)
    bands = params.minutes
    inputs = {
        "--network": network,
        "--class-speeds": class_speeds,
        "--defenders": defenders,
        "--havens": havens,
        "--closures": closures,
    }
    _io.check_paths({**inputs, "--risk": risk}, {"--out": out}, folders=["--out"])
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    check_source(network, network_type)
    with _step("Reading the inputs"):
        columns = {"id_column": id_column, "lat_column": lat_column, "lon_column": lon_column, "crs": crs}
        columns["layer"] = points_layer
        d = layers.read_defenders(defenders, **_point_options(defenders, columns))
        h = layers.read_havens(havens, **_point_options(havens, columns))
        barriers, risk_table = _read_cost_inputs(closures, risk)
    with _io.output_folder(out, (*cov_mod.OUTPUT_FILES, manifest.MANIFEST)) as stage:  # checked now; filled at the end
        net = _load_network(network, network_type, line_opts)
        weights, _ = _cost_model(net, cost, barriers, risk_table, alpha, max_risk)
        with _step(f"Coverage of {len(d)} defenders by {len(h)} havens"):
            cov = cov_mod.coverage(net, d, h, bands, cost=cost, edge_weights=weights, max_snap_m=max_snap_m)
            n1 = cov_mod.n_minus_1(cov)
        impact = None
        if barriers is not None:
            open_weights, _ = _cost_model(net, cost, None, risk_table, alpha, max_risk)
            with _step("Coverage without the closures"):
                cov_open = cov_mod.coverage(
                    net, d, h, bands, cost=cost, edge_weights=open_weights, max_snap_m=max_snap_m
                )
                impact = cov_mod.closures_impact(cov_open, cov)
        with _step(f"Service areas of {len(h)} havens"):
            areas = cov_mod.service_areas(
                net, h, bands, cost=cost, edge_weights=weights, buffer_m=buffer_m, max_snap_m=max_snap_m
            )
        cost_model = {
            "cost": cost,
            "closures": None if closures is None else str(closures),
            "risk": None if risk is None else str(risk),
            "alpha": alpha if risk else None,
            "max_risk": max_risk,
            "closed_edges": None if weights is None else int((~np.isfinite(weights)).sum()),
        }
        with _step("Writing outputs"):
            summary = cov_mod.write_coverage_outputs(
                stage, cov, areas, n1=n1, impact=impact, extra={"cost_model": cost_model}, hxl=hxl
            )
        _write_manifest(
            stage,
            {"command": "coverage", "network_type": network_type, "coverage": params.to_dict()},
            {"network": network, "class_speeds": class_speeds, "defenders": manifest.InputFile(defenders, len(d)),
             "havens": manifest.InputFile(havens, len(h)),
             "closures": None if closures is None else manifest.InputFile(closures, len(barriers)),
             "risk": None if risk is None else manifest.InputFile(risk, len(risk_table))},
        )  # fmt: skip
    for band, row in summary["bands"].items():
        _say(
            f"within {band} min: ",
            (f"{row['covered']} of {cov.n_defenders}", "bold"),
            f" defenders ({100 * row['share']:.1f} %)",
        )
    if summary["unreachable_ids"]:
        ids = summary["unreachable_ids"]
        _say((f"Cannot reach any haven ({len(ids)}): ", "red"), listing(ids, 20))
    if summary["n_minus_1"]["lose_all_cover"]:
        _say(
            f"Losing haven {summary['n_minus_1']['worst_haven']} leaves "
            f"{summary['n_minus_1']['lose_all_cover']} defenders with no haven within {max(bands):g} min."
        )
    if impact is not None:
        _say(f"Closures cut off {summary['closures']['cut_off']} defenders and slow {summary['closures']['slowed']}.")
    _say(f"Outputs in {out}")


# ---------------------------------------------------------------------- siting (where to open the next havens)
Objective = Literal["coverage", "time", "backup", "cover-all"]


@app.command("site", short_help="Where to open the next safe havens, proven optimal.")
def site_command(
    network: NetworkOpt,
    defenders: Annotated[
        Path,
        typer.Option(
            "--defenders",
            "-d",
            help="Defenders: points with id and an optional weight (or priority) column, default 1.",
        ),
    ],
    out: OutFolderOpt,
    candidates: Annotated[
        Path | None,
        typer.Option("--candidates", "-c", help="Candidate sites: points with id, optional name (any point format)."),
    ] = None,
    candidates_osm: Annotated[
        str | None,
        typer.Option(
            "--candidates-osm",
            metavar="<tags>",
            help="Take the candidates from the OSM features of the network file, e.g. amenity=clinic,place_of_worship.",
        ),
    ] = None,
    havens: Annotated[
        Path | None, typer.Option("--havens", help="Existing safe havens (they stay open): points with id.")
    ] = None,
    new: Annotated[int, typer.Option("--new", help="New havens to open (cover-all: at most this many).")] = 3,
    minutes: Annotated[
        float, typer.Option("--minutes", "-m", help="The band: a defender is covered within this many minutes.")
    ] = 10.0,
    objective: Annotated[
        Objective,
        typer.Option(
            "--objective",
            metavar="<objective>",
            help="coverage (most weight within the band), time (least weighted travel time), backup (most weight "
            "within the band after losing any one haven) or cover-all (fewest new havens covering all who can be).",
        ),
    ] = "coverage",
    cost: CostOpt = "time",
    closures: ClosuresOpt = None,
    risk: RiskOpt = None,
    alpha: AlphaOpt = 1.0,
    max_risk: MaxRiskOpt = None,
    time_limit: Annotated[
        float | None,
        typer.Option("--time-limit", help="Solver time limit, seconds: the best answer found, with its gap."),
    ] = None,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    exact_defenders: Annotated[
        bool, typer.Option("--exact-defenders", help="Show exact defender points on the map (sensitive!).")
    ] = False,
    id_column: IdOpt = None,
    lat_column: LatOpt = None,
    lon_column: LonOpt = None,
    crs: CrsOpt = None,
    points_layer: PointsLayerOpt = None,
) -> None:
    """Where to open the next safe havens: the sites, in the order to open them, proven optimal.

    Writes to OUT: sites.csv (site_id, name, order, gain, defenders_served, weight_served,
    newly_reached), siting.json (objective, value, optimal, gap, coverage per band and the worst
    single-haven loss before and after; owner-only: it names unreached defenders), siting.geojson
    (every candidate with chosen) and siting_map.html (defenders aggregated unless
    --exact-defenders). Existing havens stay open.
    """
    from . import siting

    params = siting.SitingParams(objective=objective, new=new, minutes=minutes, time_limit_s=time_limit)
    cost_params = CoverageParams.from_options(cost=cost, alpha=alpha, max_risk=max_risk, snap_max_distance_m=max_snap_m)
    cost_params.check_cost_model(risk is not None)
    inputs = {
        "--network": network,
        "--class-speeds": class_speeds,
        "--defenders": defenders,
        "--havens": havens,
        "--candidates": candidates,
        "--closures": closures,
        "--risk": risk,
    }
    _io.check_paths(inputs, {"--out": out}, folders=["--out"])
    if (candidates is None) == (candidates_osm is None):
        raise HavenmapError("give the candidate sites with exactly one of --candidates FILE or --candidates-osm TAGS")
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    check_source(network, network_type)
    with _step("Reading defenders, havens and candidate sites"):
        columns = {"id_column": id_column, "lat_column": lat_column, "lon_column": lon_column, "crs": crs}
        columns["layer"] = points_layer
        d = layers.read_defenders(defenders, **_point_options(defenders, columns))
        siting.defender_weights(d)
        h = layers.read_havens(havens, **_point_options(havens, columns)) if havens is not None else None
        if candidates is not None:
            c = layers.read_points(candidates, kind="havens", **_point_options(candidates, columns))
        else:
            c = siting.candidates_from_osm(network, candidates_osm, exclude=h)
        siting.check_sites(c, h, params.new)
        barriers, risk_table = _read_cost_inputs(closures, risk)
    with _io.output_folder(out, (*siting.OUTPUT_FILES, manifest.MANIFEST)) as stage:  # checked now; filled at the end
        net = _load_network(network, network_type, line_opts)
        weights, _ = _cost_model(net, cost, barriers, risk_table, alpha, max_risk)
        what = f"{params.objective}, {params.minutes:g} min"
        with _step(f"Siting {params.new} new haven(s) among {len(c)} candidates ({what})"):
            result = siting.site_havens(
                net, d, c, existing=h, new=params.new, minutes=params.minutes, objective=params.objective,
                cost=cost, edge_weights=weights, time_limit_s=params.time_limit_s, max_snap_m=max_snap_m,
                off_network_candidates="drop" if candidates_osm is not None else "error",
            )  # fmt: skip
        with _step("Writing outputs and the map"):
            siting.write_siting_outputs(
                result, stage, net=net, defenders=d, title=f"Where to open the next havens — {network.name}",
                exact_defenders=exact_defenders,
            )  # fmt: skip
        _write_manifest(
            stage,
            {"command": "site", "network_type": network_type, "siting": asdict(params),
             "coverage": cost_params.to_dict(), "candidates_osm": candidates_osm},
            {"network": network, "class_speeds": class_speeds, "defenders": manifest.InputFile(defenders, len(d)),
             "havens": None if h is None else manifest.InputFile(havens, len(h)),
             "candidates": None if candidates is None else manifest.InputFile(candidates, len(c)),
             "closures": None if closures is None else manifest.InputFile(closures, len(barriers)),
             "risk": None if risk is None else manifest.InputFile(risk, len(risk_table))},
            timings={"siting": siting.solve_times(result)},
        )  # fmt: skip
    _print_siting(result, out)


def _print_siting(result, out: Path) -> None:
    s = result.summary
    band = f"{s['minutes']:g}"
    for row in result.sites.itertuples():
        _say(
            f"{row.order}. open ",
            (str(row.name), "bold"),
            f" ({row.site_id}): gain {row.gain:g}, serves {row.defenders_served} defender(s)",
        )
    if result.sites.empty:
        _say("No new haven needed: every defender who can be covered already is.")
    before, after = s["coverage"]["before"][band], s["coverage"]["after"][band]
    _say(
        f"Within {band} min: ",
        (f"{after['covered']} of {s['defenders']}", "bold"),
        f" defenders (weight {after['covered_weight']:g} of {s['weight_total']:g}), was {before['covered']}.",
    )
    loss_b, loss_a = s["worst_loss"]["before"], s["worst_loss"]["after"]
    if loss_a.get("haven") is not None:
        was = f", was {loss_b['weight_after_loss']:g}" if loss_b.get("haven") is not None else ""
        _say(
            f"Losing the worst single haven ({loss_a['haven']}) leaves weight {loss_a['weight_after_loss']:g} "
            f"within {band} min{was}."
        )
    if s["unreached"]["defenders"]:
        _say(f"{s['unreached']['defenders']} defender(s) can reach no haven by road (listed in siting.json).")
    if s.get("all_covered") is False:
        _say(
            ("warning: ", "yellow"),
            f"{s['new']} new haven(s) cannot cover every defender who can be covered; this answer covers the most "
            "weight possible with the fewest havens (raise --new to cover all)",
            err=True,
        )
    if s["optimal"]:
        _say(f"{s['objective']}: value {s['value']:g} ({s['value_unit']}), proven optimal.")
    else:
        _say(f"{s['objective']}: value {s['value']:g}, the best found ({s['status']}); gap {100 * s['gap']:.2f} %.")
    _say(f"Outputs in {out}")


# ---------------------------------------------------------------------- map (the commander's map)
@app.command("map", short_help="The commander's offline map: threat, havens, alerts, patrols.")
def map_command(
    network: NetworkOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output HTML file (one self-contained offline page).")],
    incidents: Annotated[
        list[Path] | None,
        typer.Option(
            "--incidents",
            help="Incidents (ACLED, UCDP GED, HXL/CSV, GeoJSON...): heatmap by week, recent markers; repeat for "
            "several feeds (duplicates merged, see incidents_merged.csv).",
        ),
    ] = None,
    dedup_days: DedupDaysOpt = 1,
    dedup_m: DedupMOpt = 500.0,
    hxl: HxlOpt = False,
    havens: Annotated[Path | None, typer.Option("--havens", help="Safe havens (points with id, name, kind).")] = None,
    defenders: Annotated[
        Path | None,
        typer.Option(
            "--defenders", "-d", help="Defenders (points with id); drawn per grid cell unless --exact-defenders."
        ),
    ] = None,
    coverage: Annotated[
        Path | None,
        typer.Option(
            "--coverage",
            help="Per-defender coverage CSV (defender_id, travel_time_s, reachable), e.g. coverage.csv "
            "of 'havenmap coverage'.",
        ),
    ] = None,
    service_areas: Annotated[
        Path | None, typer.Option("--service-areas", help="Service areas GeoJSON (haven_id, minutes, polygons).")
    ] = None,
    risk: Annotated[
        Path | None, typer.Option("--risk", help="Edge risk GeoJSON (u, v, key, risk; lines) from the threat module.")
    ] = None,
    hotspots: Annotated[
        Path | None,
        typer.Option("--hotspots", help="Hotspot roads GeoJSON (significance 'hot 99%' / 'hot 95%' / 'hot 90%')."),
    ] = None,
    alerts: Annotated[
        Path | None, typer.Option("--alerts", help="Early-warning alerts CSV/JSON (defender_id, score, level, reason).")
    ] = None,
    patrols: Annotated[
        Path | None,
        typer.Option("--patrols", help="Patrol output folder: patrol_routes.geojson and patrol_schedule.csv."),
    ] = None,
    targets: Annotated[
        Path | None,
        typer.Option("--targets", help="Patrol targets (id + point), to place the numbered stops of --patrols."),
    ] = None,
    bases: Annotated[Path | None, typer.Option("--bases", help="Patrol bases (points with id, name).")] = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--title", metavar="<text>", help="Scenario name shown in the title box (default: havenmap — NETWORK FILE)."
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", metavar="<date>", help="Date of the picture, YYYY-MM-DD (default: the latest incident)."
        ),
    ] = None,
    recent_days: Annotated[
        float,
        typer.Option(
            "--recent-days",
            help="Incidents of the last N days are markers.",
            callback=_param(MapParams, "recent_days"),
        ),
    ] = MapParams.recent_days,
    slow_minutes: Annotated[
        float | None,
        typer.Option(
            "--slow-minutes",
            help="Defenders reaching a haven within this many minutes are in time, beyond it listed as too slow "
            "(default: the last service-area band, 15 when computed here).",
            callback=_param(MapParams, "slow_minutes"),
        ),
    ] = MapParams.slow_minutes,
    cell_size_m: Annotated[
        float, typer.Option("--cell-size-m", help="Side of the defender grid cells, metres (at least 100).")
    ] = 500.0,
    k_anonymity: Annotated[
        int,
        typer.Option(
            "--k-anonymity",
            help="Each defender cell holds at least this many defenders: smaller ones are merged, then shown "
            "as 'fewer than k' (1 = no floor).",
        ),
    ] = 5,
    exact_defenders: Annotated[
        bool, typer.Option("--exact-defenders", help="Show exact defender points (sensitive! the file is owner-only).")
    ] = False,
    tiles: Annotated[
        Literal["osm"] | None,
        typer.Option(
            "--tiles",
            metavar="[osm]",
            help="osm: add an online tile layer that can be switched on (fetches tiles!; default: none, offline).",
        ),
    ] = None,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
    points_layer: PointsLayerOpt = None,
) -> None:
    """Draw the commander's map: threat, havens and their reach, defenders' status, alerts and patrols.

    One self-contained HTML file that works offline (nothing is fetched unless --tiles). Every
    layer is optional except the road network, which is the base map. With --havens and
    --defenders, defenders' status, routes to the nearest haven and 5/10/15-minute service areas
    are computed here unless --coverage / --service-areas are given.
    """
    from . import maps
    from .threat import check_as_of

    check_as_of(as_of)
    patrol_files = None
    if patrols is not None:
        patrol_files = [
            patrols / name for name in ("patrol_routes.geojson", "patrol_stops.geojson", "patrol_schedule.csv")
        ]
    inputs = {
        "--network": network,
        "--class-speeds": class_speeds,
        "--incidents": incidents,
        "--havens": havens,
        "--defenders": defenders,
        "--coverage": coverage,
        "--service-areas": service_areas,
        "--risk": risk,
        "--hotspots": hotspots,
        "--alerts": alerts,
        "--patrols": patrol_files,
        "--targets": targets,
        "--bases": bases,
    }
    _io.check_paths(inputs, {"--out": out, **_merged_output(incidents, out)})
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    from .privacy import DefenderPrivacy

    privacy = DefenderPrivacy(exact=exact_defenders, cell_size_m=cell_size_m, k=k_anonymity)  # checked before work
    check_source(network, network_type)
    with _step("Reading the layers"):
        kw = {
            "incidents": None,
            "havens": layers.read_havens(havens, layer=points_layer) if havens else None,
            "defenders": layers.read_defenders(defenders, layer=points_layer) if defenders else None,
            "bases": layers.read_bases(bases, layer=points_layer) if bases else None,
            "coverage": _read_table(coverage, "--coverage") if coverage else None,
            "alerts": _read_table(alerts, "--alerts") if alerts else None,
            "service_areas": _read_geo(service_areas, "--service-areas") if service_areas else None,
            "edge_risk": _read_geo(risk, "--risk") if risk else None,
            "hotspots": _read_geo(hotspots, "--hotspots") if hotspots else None,
        }
        if patrols is not None:
            kw["patrol_routes"], kw["patrol_stops"] = _read_patrols(patrols, targets, points_layer)
        feed = _read_feeds(incidents, dedup_days, dedup_m, points_layer)
        kw["incidents"] = None if feed is None else feed.incidents
    net = _load_network(network, network_type, line_opts)
    if kw["havens"] is not None and kw["defenders"] is not None:
        # the network is here: compute what the commander needs rather than draw "status unknown"
        from . import coverage as cov_mod

        with _step("Routing defenders to their nearest haven"):
            if kw["service_areas"] is None:
                kw["service_areas"] = cov_mod.service_areas(net, kw["havens"], (5, 10, 15))
            if slow_minutes is None:
                slow_minutes = _last_band(kw["service_areas"])
            found = assign_havens(net, kw["defenders"], kw["havens"], k=2)  # one answer: status and routes
            if kw["coverage"] is None:
                kw["coverage"] = cov_mod.coverage_of(found, (slow_minutes,)).defenders
            routes = found.table(1)
            kw["routes"] = routes.loc[routes["reachable"]]
    if slow_minutes is None:
        slow_minutes = _last_band(kw["service_areas"]) if kw["service_areas"] is not None else 15.0
    with _step("Drawing the map"):
        m = maps.commander_map(
            roads=net,
            title=title or f"havenmap — {network.name}",
            as_of=as_of,
            privacy=privacy,
            tiles=tiles,
            recent_days=recent_days,
            slow_minutes=slow_minutes,
            **kw,
        )
        maps.save_map(m, out)
        _write_merged(feed, out, hxl)
    _say(f"Map written to {out}" + (" (owner-only: exact defender locations)" if exact_defenders else ""))


def _read_table(path: Path, option: str):
    """One of our own CSV/JSON tables, every id exactly as written (see ``_io.read_table``)."""
    return _io.read_table(path, option)


def _last_band(service_areas) -> float:
    """The largest ``minutes`` band of a service-area layer (15 when it has none)."""
    minutes = pd.to_numeric(service_areas.get("minutes", pd.Series(dtype=float)), errors="coerce").dropna()
    return float(minutes.max()) if len(minutes) else 15.0


def _read_geo(path: Path, option: str):
    import geopandas as gpd

    if not path.exists():
        raise HavenmapError(f"{option} {path}: file not found")
    try:
        return gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise HavenmapError(f"{option} {path}: cannot read it as GeoJSON/GPKG ({exc})") from None


def _read_patrols(folder: Path, targets: Path | None, layer: str | None = None):
    """Routes of a patrol output folder, and its stops placed at the targets (if given)."""
    import geopandas as gpd

    routes = _read_geo(folder / "patrol_routes.geojson", "--patrols")
    stops_file = folder / "patrol_stops.geojson"
    if stops_file.exists():
        return routes, _read_geo(stops_file, "--patrols")
    if targets is None:
        return routes, None
    schedule = _read_table(folder / "patrol_schedule.csv", "--patrols")
    points = layers.read_points(targets, layer=layer)
    visits = schedule.loc[schedule["target_id"].fillna("").astype(str) != ""].copy()
    visits["target_id"] = visits["target_id"].astype(str)
    where = points.set_index(points["id"].astype(str)).geometry
    missing = sorted(set(visits["target_id"]) - set(where.index))
    if missing:
        raise HavenmapError(
            f"--targets {targets}: {len(missing):,} target id(s) of the patrol schedule match no target "
            f"({shortened(missing)}); pass the targets file the plan was made with"
        )
    geometry = where.loc[visits["target_id"]].to_numpy()
    stops = gpd.GeoDataFrame(visits[["unit", "day", "stop", "target_id"]], geometry=geometry, crs=points.crs)
    return routes, stops


# ---------------------------------------------------------------------- threat picture and early warning
IncidentsOpt = Annotated[
    list[Path],
    typer.Option(
        "--incidents",
        "-i",
        help="Incidents: ACLED export, UCDP GED, CSV (id, date, event_type, latitude, longitude...; an HXL "
        "hashtag row is read), GeoJSON, GPKG. Repeat for several feeds: likely duplicates across them count "
        "once (see --dedup-days, --dedup-m; each merge is listed in incidents_merged.csv).",
    ),
]


def _dedup_m_check(ctx: Any, param: Any, value: float) -> float:
    """``--dedup-m`` checked by :class:`havenmap.feeds.DedupOptions`, whose rule it is."""
    from .feeds import DedupOptions

    return DedupOptions(metres=value).metres


DedupDaysOpt = Annotated[
    int,
    typer.Option(
        "--dedup-days",
        min=0,
        max=366,
        help="Records of different incident feeds at most this many days apart (0: the same day) may be one incident.",
    ),
]
DedupMOpt = Annotated[
    float,
    typer.Option(
        "--dedup-m",
        help="... and at most this many metres apart (× 2 / × 4 for geo_precision 2 / 3).",
        callback=_dedup_m_check,
    ),
]
HxlOpt = Annotated[
    bool,
    typer.Option("--hxl", help="Give the CSV outputs an HXL hashtag row (#date, #geo+lat, ...) for partners' tools."),
]


def _read_feeds(paths: Sequence[Path] | None, dedup_days: int, dedup_m: float, layer: str | None):
    """The incident feeds merged into one table (:func:`havenmap.feeds.read_incident_feeds`), or None."""
    if not paths:
        return None
    from . import feeds

    merged = feeds.read_incident_feeds(paths, feeds.DedupOptions(days=dedup_days, metres=dedup_m), layer=layer)
    if len(merged.feeds) > 1:
        _say(merged.summary(), err=True)
    return merged


def _merged_output(paths: Sequence[Path] | None, beside: Path, folder: bool = False) -> dict[str, Path]:
    """``incidents_merged.csv`` beside an output (or in an output folder) when several feeds are merged."""
    if not paths or len(paths) < 2:
        return {}
    return {"(incidents_merged.csv)": (beside if folder else beside.parent) / "incidents_merged.csv"}


def _write_merged(feed, beside: Path, hxl: bool, folder: bool = False) -> None:
    """Write ``incidents_merged.csv`` (each merge of several feeds) beside an output or into a folder."""
    if feed is not None and len(feed.feeds) > 1:
        feed.write_audit((beside if folder else beside.parent) / "incidents_merged.csv", hxl=hxl)


AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", metavar="<date>", help="Reference date YYYY-MM-DD (default: the latest incident)."),
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Type weights CSV: event_type,sub_event_type,weight (overrides the built-in table).",
    ),
]

Method = Literal["mix", "kde"]
MethodOpt = Annotated[
    Method,
    typer.Option(
        "--method",
        help="Risk estimator: 'mix' (each place's long-term rate plus the recent activity around it) or 'kde' "
        "(one kernel, one half-life: the default before backtests).",
    ),
]
BandwidthOpt = Annotated[
    float | None,
    typer.Option(
        "--bandwidth-m",
        help="Kernel bandwidth along the roads, metres (default: the method's, mix 250, kde 400).",
        callback=_param(ThreatParams, "bandwidth_m"),
    ),
]
HalfLifeOpt = Annotated[
    float | None,
    typer.Option(
        "--half-life-days",
        help="Age at which a recent incident counts half, days (default: the method's, mix 21, kde 30).",
        callback=_param(ThreatParams, "half_life_days"),
    ),
]


def _threat_inputs(
    incidents: Sequence[Path],
    as_of: str | None,
    weights: Path | None,
    layer: str | None,
    half_life_days=30.0,
    dedup: tuple[int, float] = (1, 500.0),
):
    """Incident feeds (merged), type table and the weighted incidents, checked before the network is loaded."""
    from . import threat

    threat.check_as_of(as_of)
    table = threat.read_weights(weights) if weights is not None else None
    feed = _read_feeds(incidents, *dedup, layer)
    weighted = threat.weigh_incidents(feed.incidents, as_of, half_life_days=half_life_days, weights=table)
    return feed, table, weighted


@app.command("threat", short_help="Risk on every road from incident reports; hotspots, clusters.")
def threat_command(
    network: NetworkOpt,
    incidents: IncidentsOpt,
    out: OutFolderOpt,
    as_of: AsOfOpt = None,
    method: MethodOpt = "mix",
    bandwidth_m: BandwidthOpt = None,
    half_life_days: HalfLifeOpt = None,
    weights: WeightsOpt = None,
    cell_m: Annotated[
        float,
        typer.Option(
            "--cell-m",
            help="Cell size of the planar density grid, metres.",
            callback=_param(ThreatParams, "cell_m"),
        ),
    ] = ThreatParams.cell_m,
    permutations: Annotated[
        int,
        typer.Option(
            "--permutations",
            help="Gi* permutations (0: analytic p-values).",
            callback=_param(ThreatParams, "permutations"),
        ),
    ] = ThreatParams.permutations,
    cluster_permutations: Annotated[
        int,
        typer.Option(
            "--cluster-permutations",
            help="Replicates of the space-time cluster scan (0: no scan).",
            callback=_param(ThreatParams, "cluster_permutations"),
        ),
    ] = ThreatParams.cluster_permutations,
    defenders: Annotated[
        Path | None,
        typer.Option("--defenders", "-d", help="Also write OUT/alerts.csv and alerts.json for these defenders."),
    ] = None,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
    max_snap_m: Annotated[
        float,
        typer.Option(
            "--max-snap-m",
            help="Incidents farther than this from any road (metres; ×2 / ×4 for geo_precision 2 / 3) are left out.",
            callback=_param(ThreatParams, "max_snap_m"),
        ),
    ] = ThreatParams.max_snap_m,
    points_layer: PointsLayerOpt = None,
    dedup_days: DedupDaysOpt = 1,
    dedup_m: DedupMOpt = 500.0,
    hxl: HxlOpt = False,
) -> None:
    """Risk on every road from incident reports: network kernel density, Gi* hotspots, emerging clusters.

    Writes OUT/edge_risk.geojson (a LineString per directed edge: u, v, key, edge, risk >= 0, in
    weighted incidents per km of road), OUT/hotspots.geojson (significant hot roads: gi_z, p_value,
    q_value, significance), OUT/node_risk.csv (osmid, lon, lat, risk), OUT/density_grid.geojson
    (planar density per km², cell centres), OUT/clusters.geojson (emerging space-time clusters,
    when any), OUT/threat_map.html and, with --defenders, OUT/alerts.csv / alerts.json; with
    several --incidents feeds OUT/incidents_merged.csv (each merge of duplicates across feeds).
    Files of an earlier run that this run does not write are removed.
    """
    from . import threat

    params = ThreatParams.from_options(
        method=method,
        bandwidth_m=bandwidth_m,
        half_life_days=half_life_days,
        cell_m=cell_m,
        permutations=permutations,
        cluster_permutations=cluster_permutations,
        max_snap_m=max_snap_m,
    )
    inputs = {
        "--network": network,
        "--class-speeds": class_speeds,
        "--incidents": incidents,
        "--weights": weights,
        "--defenders": defenders,
    }
    _io.check_paths(inputs, {"--out": out}, folders=["--out"])
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    check_source(network, network_type)
    with _step("Reading incidents" + (" and defenders" if defenders is not None else "")):
        feed, table, _ = _threat_inputs(
            incidents, as_of, weights, points_layer, params.half_life(), (dedup_days, dedup_m)
        )
        inc = feed.incidents
        d = layers.read_defenders(defenders, layer=points_layer) if defenders is not None else None
    with _io.output_folder(out, (*threat.OUTPUT_FILES, "incidents_merged.csv", manifest.MANIFEST)) as stage:
        _write_merged(feed, stage, hxl, folder=True)
        net = _load_network(network, network_type, line_opts)
        summary = threat.run_threat_outputs(
            net,
            inc,
            d,
            stage,
            as_of,
            _step,
            title=f"Threat picture — {network.name}",
            threat_kw={**params.compute_kwargs(), "weights": table},
            alert_kw={"weights": table},
            hxl=hxl,
        )
        _write_manifest(
            stage,
            {"command": "threat", "network_type": network_type, "as_of": summary["as_of"],
             "threat": params.resolved().to_dict(), "alerts": None if d is None else AlertParams().to_dict()},
            {"network": network, "class_speeds": class_speeds,
             "incidents": [manifest.InputFile(f, n) for f, n in zip(incidents, feed.records, strict=True)],
             "weights": weights, "defenders": None if d is None else manifest.InputFile(defenders, len(d))},
            seeds={"threat": params.seed},
        )  # fmt: skip
    _say(
        f"Risk on {summary['edges']:,} edges as of {summary['as_of']} from {summary['incidents_used']} of "
        f"{summary['incidents']} incidents (max {summary['max_risk']:.2f} per km); "
        f"{summary['hotspot_edges']} hot road pieces; {summary['clusters']} emerging cluster(s)"
        + ("" if summary["alerts"] is None else f"; {summary['alerts']} alert(s)")
        + "."
    )
    _say(f"Outputs in {out}")


@app.command("alerts", short_help="Early warning: defenders facing a surge of violence close by.")
def alerts_command(
    network: NetworkOpt,
    incidents: IncidentsOpt,
    defenders: Annotated[
        Path, typer.Option("--defenders", "-d", help="Defenders: CSV (id, latitude, longitude), GeoJSON, GPKG...")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output CSV (alerts.json is written beside it).")],
    as_of: AsOfOpt = None,
    distance_m: Annotated[
        float,
        typer.Option(
            "--distance-m",
            help="Network distance around each defender, metres.",
            callback=_param(AlertParams, "distance_m"),
        ),
    ] = AlertParams.distance_m,
    recent_days: Annotated[
        int,
        typer.Option(
            "--recent-days", help="Recent window, days up to --as-of.", callback=_param(AlertParams, "recent_days")
        ),
    ] = AlertParams.recent_days,
    baseline_days: Annotated[
        int,
        typer.Option(
            "--baseline-days",
            help="Baseline window before the recent one, days.",
            callback=_param(AlertParams, "baseline_days"),
        ),
    ] = AlertParams.baseline_days,
    p_value: Annotated[
        float,
        typer.Option(
            "--p-value",
            help="Alert when the surge's p-value (Poisson test) is below this.",
            callback=_param(AlertParams, "p_value"),
        ),
    ] = AlertParams.p_value,
    weights: WeightsOpt = None,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    points_layer: PointsLayerOpt = None,
    dedup_days: DedupDaysOpt = 1,
    dedup_m: DedupMOpt = 500.0,
    hxl: HxlOpt = False,
) -> None:
    """Early warning: defenders facing a surge of violence, or a severe incident, close by on the roads.

    Writes OUT (CSV) and the same stem .json, owner-only: one row per alert, most urgent first:
    defender_id, score, level, reason, recent_count, baseline_count, p_value, severe_count, nearest_m...
    Defenders without an alert are not listed; no output holds a defender's location. With several
    --incidents feeds, incidents_merged.csv beside OUT lists each merge of duplicates across feeds.
    """
    from . import threat

    params = AlertParams.from_options(
        distance_m=distance_m, recent_days=recent_days, baseline_days=baseline_days, p_value=p_value
    )
    if out.suffix.lower() == ".json":
        raise HavenmapError(f"--out {out}: name the CSV file (e.g. alerts.csv); the JSON is written beside it")
    inputs = {
        "--network": network,
        "--class-speeds": class_speeds,
        "--incidents": incidents,
        "--defenders": defenders,
        "--weights": weights,
    }
    outputs = {"--out": out, "--out (its .json)": out.with_suffix(".json"), **_merged_output(incidents, out)}
    _io.check_paths(inputs, outputs)
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    check_source(network, network_type)
    with _step("Reading incidents and defenders"):
        feed, _, weighted = _threat_inputs(incidents, as_of, weights, points_layer, dedup=(dedup_days, dedup_m))
        threat.alert_date(weighted, as_of)
        d = layers.read_defenders(defenders, layer=points_layer)
    net = _load_network(network, network_type, line_opts)
    with _step(f"Early warning for {len(d)} defenders"):
        alerts = threat.early_warning(
            net,
            weighted,
            d,
            as_of,
            **params.warning_kwargs(),
            max_snap_m=max_snap_m,
        )
        csv_path, json_path = threat.write_alerts(out, alerts, weighted.attrs.get("as_of"), hxl=hxl)
        _write_merged(feed, out, hxl)
    levels = alerts["level"].value_counts().to_dict() if len(alerts) else {}
    detail = ", ".join(f"{levels[k]} {k}" for k in ("critical", "high", "elevated") if k in levels)
    _say(
        f"{len(alerts)} alert(s) among {len(d)} defenders"
        + (f" ({detail})" if detail else "")
        + f"; written to {csv_path} and {json_path}"
    )


# ---------------------------------------------------------------------- share bundles
def _share_cell_check(ctx: Any, param: Any, value: float) -> float:
    """``--cell-m`` checked before any work: finite, 100 m to 100 km (:func:`havenmap.share.check_cell_m`)."""
    from .share import check_cell_m

    return check_cell_m(value)


@app.command("share", short_help="A redacted, leak-checked bundle of a run for partners.")
def share_command(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="The run's output folder (havenmap demo / run).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder: new, empty, or an earlier bundle.")],
    level: Annotated[
        Literal["public", "partner"],
        typer.Option(
            "--level",
            metavar="[public|partner]",
            help="public (the least): generalised incidents, threat per road, public havens, coverage per cell. "
            "partner: also defenders per k-anonymous cell, alerts by area, patrol areas.",
        ),
    ] = "public",
    k: Annotated[
        int, typer.Option("--k", help="Each published defender cell holds at least this many defenders (2 or more).")
    ] = 5,
    cell_m: Annotated[
        float,
        typer.Option(
            "--cell-m",
            help="Grid cell side, metres (100 to 100000); nothing within half of it of a defender, base or private "
            "haven.",
            callback=_share_cell_check,
        ),
    ] = 500.0,
    defenders: Annotated[
        Path | None, typer.Option("--defenders", "-d", help="The run's defenders (default: from DIR/manifest.json).")
    ] = None,
    havens: Annotated[
        Path | None,
        typer.Option("--havens", help="The run's havens, with a 'public' column (default: from DIR/manifest.json)."),
    ] = None,
    bases: Annotated[
        Path | None, typer.Option("--bases", "-b", help="The run's patrol bases (default: from DIR/manifest.json).")
    ] = None,
    incidents: Annotated[
        list[Path] | None,
        typer.Option(
            "--incidents",
            "-i",
            help="The run's incident feeds, generalised into incidents.csv (default: from DIR/manifest.json).",
        ),
    ] = None,
    network: Annotated[
        Path | None,
        typer.Option("--network", "-n", help="Road network for the map, when DIR has no threat/edge_risk.geojson."),
    ] = None,
    dedup_days: DedupDaysOpt = 1,
    dedup_m: DedupMOpt = 500.0,
) -> None:
    """Turn a run's output folder into a bundle for a partner or the public, checked for leaks before it is written.

    Writes OUT/map.html (the commander's map at that level), incidents.csv, threat_roads.geojson,
    havens.geojson (public havens only), coverage_cells.csv/.geojson and, for partners,
    defenders_by_cell.csv/.geojson, alerts_by_area.csv, patrol_areas.csv/.geojson; plus
    WITHHELD.json, README.txt and manifest.json (SHA-256 of every file). CSV files carry an HXL
    row. Every file is read back first: a defender, private haven or base found (an id, a name,
    a point within cell-m/2) stops it with exit status 2, and nothing is written.
    """
    from . import share
    from .feeds import DedupOptions

    options = share.ShareOptions(level=level, k=k, cell_m=cell_m)
    dedup = DedupOptions(days=dedup_days, metres=dedup_m)
    given = {"DIR": run_dir, "--defenders": defenders, "--havens": havens, "--bases": bases}
    _io.check_paths({**given, "--incidents": incidents, "--network": network}, {"--out": out}, folders=["--out"])
    inputs = share.share_inputs(
        run_dir, defenders=defenders, havens=havens, bases=bases, incidents=incidents, network=network
    )
    bundle = share.share_run(run_dir, out, options, inputs, dedup=dedup, step=_step)
    s = bundle.summary
    what = f"{s['incidents']:,} incidents in {s['incident_cells']:,} cells" if s["incidents"] else "no incidents"
    _say(
        (f"{level.capitalize()} bundle", "bold"),
        f" written to {out}: {s['files']} files; {what}, {s['public_havens']} public havens"
        + (f", {s['defenders']} defenders in k-anonymous cells (k = {k})" if level == "partner" else "")
        + f"; {s['private_havens']} private havens withheld.",
    )
    _say(
        f"Self-check passed: no defender, private haven or base (id, name, or a point within {options.radius_m:g} m) "
        "in any file."
    )


# ---------------------------------------------------------------------- backtests
@app.command("backtest", short_help="Threat and alerts scored on what happened next.")
def backtest_command(
    network: NetworkOpt,
    incidents: IncidentsOpt,
    start: Annotated[str, typer.Option("--from", metavar="<date>", help="First as-of date, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--to", metavar="<date>", help="Last as-of date, YYYY-MM-DD.")],
    out: OutFolderOpt,
    defenders: Annotated[
        Path | None,
        typer.Option("--defenders", "-d", help="Defenders to score alerts for (without: road scores only)."),
    ] = None,
    step: Annotated[
        str, typer.Option("--step", metavar="<days>", help="Days between as-of dates: 7d, 14d, 2w ...")
    ] = "7d",
    horizon: Annotated[
        str, typer.Option("--horizon", metavar="<days>", help="Days after each as-of date that are scored.")
    ] = "7d",
    method: MethodOpt = "mix",
    bandwidth_m: BandwidthOpt = None,
    half_life_days: HalfLifeOpt = None,
    weights: WeightsOpt = None,
    distance_m: Annotated[
        float,
        typer.Option(
            "--distance-m",
            help="Alert distance by road, metres: also the radius of an event.",
        ),
    ] = 1000.0,
    recent_days: Annotated[int, typer.Option("--recent-days", min=1, help="Early warning's recent window, days.")] = 7,
    baseline_days: Annotated[int, typer.Option("--baseline-days", min=1, help="Early warning's baseline, days.")] = 90,
    p_value: Annotated[
        float,
        typer.Option(
            "--p-value",
            help="Early warning alerts when the surge's p-value (Poisson test) is below this.",
        ),
    ] = 0.01,
    counts_days: Annotated[
        int, typer.Option("--counts-days", min=1, help="Window of the last_counts baseline, days.")
    ] = 56,
    planar_bandwidth_m: Annotated[
        float,
        typer.Option(
            "--planar-bandwidth-m",
            help="Bandwidth of the planar_kde baseline, metres.",
        ),
    ] = 100.0,
    planar_days: Annotated[
        int, typer.Option("--planar-days", min=1, help="Window of the planar_kde baseline, days.")
    ] = 112,
    quiet_days: Annotated[
        int,
        typer.Option("--quiet-days", min=1, help="Days without a severe incident before one counts as an onset."),
    ] = 28,
    bootstrap: Annotated[
        int,
        typer.Option("--bootstrap", min=0, help="Bootstrap resamples of the as-of dates for the intervals (0: none)."),
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", metavar="<address>", help="Dask scheduler of a running cluster, e.g. tcp://10.0.0.5:8786."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=0, help="Local Dask worker processes (default: one per CPU; 0: serially in this process)."
        ),
    ] = None,
    network_type: NetworkTypeOpt = "drive",
    layer: LayerOpt = None,
    snap_tolerance_m: SnapToleranceOpt = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: SplitCrossingsOpt = False,
    oneway_column: OnewayColumnOpt = None,
    speed_column: SpeedColumnOpt = None,
    speed_unit: SpeedUnitOpt = "kph",
    class_column: ClassColumnOpt = None,
    class_speeds: ClassSpeedsOpt = None,
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    points_layer: PointsLayerOpt = None,
    dedup_days: DedupDaysOpt = 1,
    dedup_m: DedupMOpt = 500.0,
) -> None:
    """Backtest the threat picture and early warning against what happened next, and against baselines.

    For every as-of date from --from to --to (every --step), the threat picture and alerts are made
    from the incidents known then and scored on the next --horizon: per road hit rate and PAI at
    1/5/10 % of road km, per defender hits, misses, false alarms, precision, recall and lead time;
    the same for the baselines last_counts, planar_kde and uniform. Writes OUT/backtest.csv (one row
    per as-of date and method), OUT/backtest.json (summary with bootstrap intervals, parameters,
    manifest) and OUT/backtest.html (charts, offline). The dates run on Dask worker processes (or a
    cluster: --scheduler), which receive the defenders' locations.
    """
    from . import _distributed, threat
    from . import backtest as bt

    params = bt.BacktestParams(
        start=start,
        end=end,
        step_days=step,
        horizon_days=horizon,
        method=method,
        bandwidth_m=bandwidth_m,
        half_life_days=half_life_days,
        distance_m=distance_m,
        recent_days=recent_days,
        baseline_days=baseline_days,
        alert_alpha=p_value,
        counts_days=counts_days,
        planar_bandwidth_m=planar_bandwidth_m,
        planar_days=planar_days,
        quiet_days=quiet_days,
        bootstrap=bootstrap,
        seed=seed,
        max_snap_m=max_snap_m,
    )
    _distributed.check_scheduler(scheduler, workers)
    inputs = {
        "--network": network,
        "--class-speeds": class_speeds,
        "--incidents": incidents,
        "--weights": weights,
        "--defenders": defenders,
    }
    _io.check_paths(inputs, {"--out": out}, folders=["--out"])
    line_opts = _line_options(
        layer, snap_tolerance_m, split_crossings, oneway_column, speed_column, speed_unit, class_column, class_speeds
    )
    check_source(network, network_type)
    with _step("Reading incidents" + (" and defenders" if defenders is not None else "")):
        table = threat.read_weights(weights) if weights is not None else None
        feed = _read_feeds(incidents, dedup_days, dedup_m, points_layer)
        inc = bt.check_incidents(feed.incidents)
        d = layers.read_defenders(defenders, layer=points_layer) if defenders is not None else None
    with _io.output_folder(out, (*bt.OUTPUT_FILES, manifest.MANIFEST)) as stage:  # checked now; filled at the end
        net = _load_network(network, network_type, line_opts)
        result = bt.backtest(
            net, inc, d, params=params, weights=table, scheduler=scheduler, workers=workers, progress=True
        )
        with _step("Writing the backtest outputs"):
            result.write(stage, title=f"Backtest — {network.name}")
        _write_manifest(
            stage,
            {"command": "backtest", "network_type": network_type, "backtest": params.as_dict()},
            {"network": network, "class_speeds": class_speeds, "weights": weights,
             "incidents": [manifest.InputFile(f, n) for f, n in zip(incidents, feed.records, strict=True)],
             "defenders": None if d is None else manifest.InputFile(defenders, len(d))},
            seeds={"bootstrap": params.seed},
        )  # fmt: skip
    _print_backtest(result, out)


def _print_backtest(result, out: Path) -> None:
    from rich.table import Table

    table = Table(title=None, box=None, header_style="bold")
    metrics = ("pai_1", "pai_5", "pai_10", "hit_rate_5", "precision", "recall", "lead_time_days")
    table.add_column("method")
    for m in metrics:
        table.add_column(m, justify="right")
    for method, entry in result.summary.items():
        table.add_row(method, *("–" if entry.get(m) is None else f"{entry[m]:.3g}" for m in metrics))
    out_console.print(table)
    cmp = result.comparison
    if cmp and cmp["pai_5"].get("ratio") is not None:
        ci = cmp["pai_5"].get("ratio_ci") or [None, None]
        interval = f" (95 % interval {ci[0]}–{ci[1]})" if None not in ci else ""
        _say(f"havenmap / {cmp['best_baseline']} on PAI at 5 %: {cmp['pai_5']['ratio']}{interval}")
    _say(f"Outputs in {out}")


# ---------------------------------------------------------------------- what-if sweeps
@app.command("sweep", short_help="What-if: the scenario over a grid of variations, one row each.")
def sweep_command(
    scenario_file: Annotated[
        Path, typer.Argument(metavar="SCENARIO.toml", help="The scenario: inputs and parameters (see the README).")
    ],
    vary: Annotated[
        Path,
        typer.Option("--vary", metavar="<path>", help="The sweep file (sweep.toml): what to vary (see the README)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (the command owns its files).")],
    keep_outputs: Annotated[
        bool,
        typer.Option("--keep-outputs", help="Also write each variation's coverage and siting files (OUT/variations/)."),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", metavar="<address>", help="Dask scheduler of a running cluster, e.g. tcp://10.0.0.5:8786."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=0, help="Local Dask worker processes (default: one per CPU; 0: serially in this process)."
        ),
    ] = None,
) -> None:
    """Re-run the scenario's haven analysis over every variation of --vary: lose each haven, close each
    checkpoint, alpha and max_risk values, siting budgets, time bands (the grid is their product).

    Writes OUT/sweep.csv (one row per variation: the varied values, defenders reachable, covered
    per band, median and mean time to the nearest haven, the worst single loss, siting chosen and
    its value), OUT/sweep.json (the same, the parameters and how it ran), OUT/manifest.json and,
    with --keep-outputs, OUT/variations/<id>/coverage/ (and siting/). Threat, patrols and maps do
    not depend on these variations and are not re-run. The variations run on Dask worker
    processes (or a cluster: --scheduler), which receive the defenders' locations.
    """
    from . import _distributed, scenario
    from . import sweep as sweep_mod

    _distributed.check_scheduler(scheduler, workers)
    _io.check_paths({"SCENARIO.toml": scenario_file, "--vary": vary}, {"--out": out}, folders=["--out"])
    with _step("Reading the scenario, the sweep and the inputs"):
        scen = scenario.load_scenario(scenario_file)
        plan = sweep_mod.load_sweep(vary, scen)
    claimed = {f"scenario {role}": p for role, p in scen.inputs().items()}
    if plan.close_each is not None:
        claimed["close_each"] = plan.close_each
    _io.check_paths(claimed, {"--out": out}, folders=["--out"])
    check_source(scen.network, scen.network_type)
    n = len(plan.variations())
    with _io.output_folder(out, sweep_mod.OUTPUT_FILES) as stage:
        net = _load_network(scen.network, scen.network_type, scen.network_options)
        result = sweep_mod.run_sweep(
            plan, net=net, keep_outputs=keep_outputs, scheduler=scheduler, workers=workers, progress=True, step=_step
        )
        with _step(f"Writing {n} variation(s)"):
            result.write(stage)
        inputs: dict[str, Any] = {role: p for role, p in scen.inputs().items()}
        inputs["sweep"] = vary
        if plan.close_each is not None:
            inputs["close_each"] = plan.close_each
        _write_manifest(
            stage,
            {"command": "sweep", "scenario": scen.to_dict(), "sweep": plan.to_dict()},
            inputs,
            timings={"execution": result.execution},
        )
    ex = result.execution
    where = "serially" if ex["mode"] == "serial" else f"on {ex['workers']} Dask worker(s)"
    _say(f"{n} variation(s) {where} in {ex['seconds']:.1f} s; one row each in {out / 'sweep.csv'}")
    _say(f"Outputs in {out}")


def _point_options(path: Path, columns: dict) -> dict:
    """--lat/--lon/--crs describe CSV coordinates; vector files carry their own geometry and CRS."""
    if path.name.lower().endswith((".csv", ".tsv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")):
        return columns
    return {"id_column": columns["id_column"], "layer": columns.get("layer")}


def _print_summary(summary: dict, out: Path) -> None:
    median = summary["median_travel_time_s"]
    median_text = "n/a" if median is None else f"{median / 60:.1f} min"
    _say(
        (f"{summary['reachable']} of {summary['defenders']}", "bold"),
        f" defenders can reach a haven ({summary['havens']} havens); median time to the nearest: {median_text}.",
    )
    if summary["unreachable"]:
        ids = summary["unreachable"]
        _say((f"Unreachable ({len(ids)}): ", "red"), listing(ids, 20))
    _say(f"Outputs in {out}")


# commands in workflow order (``havenmap --help`` lists them as registered)
app.registered_commands.sort(key=lambda info: WORKFLOW.index(info.name))


# ---------------------------------------------------------------------- entry point
def execute(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Usage errors (an unknown, missing or out-of-range option) and havenmap's own errors print
    one line ``havenmap: error: ...`` on stderr and return 2; nothing else is printed for them.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    _shown.clear()
    _RUN.argv, _RUN.record = ["havenmap", *args], manifest.RunRecord()
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)  # repeats are dropped by _show_warning, once per run
        warnings.showwarning = _show_warning
        try:
            with _RUN.record.capture():  # warnings also go to the manifest of a command's output folder
                result = command.main(args or ["--help"], prog_name="havenmap", standalone_mode=False)
        except HavenmapError as exc:
            _say(f"havenmap: error: {exc}", err=True)
            return exc.exit_code
        except typer.TyperException as exc:  # click's usage errors (typer's own copy of click)
            _say(f"havenmap: error: {_usage_message(exc)}", err=True)
            return int(getattr(exc, "exit_code", 2))
        except typer.Abort:
            _say("havenmap: aborted", err=True)
            return 1
    return result if isinstance(result, int) else 0


def _usage_message(exc: Exception) -> str:
    """A usage error as the rest of our one-line errors: what is wrong, then where to read more."""
    text = " ".join(str(exc.format_message()).split()).replace("Value error, ", "").rstrip(".")
    text = text[:1].lower() + text[1:]
    ctx = getattr(exc, "ctx", None)
    return text + (f"; see '{ctx.command_path} --help'" if ctx is not None else "; see 'havenmap --help'")


def main() -> None:
    """Console entry point: :func:`execute` on the process arguments, then exit with its status."""
    sys.exit(execute())


if __name__ == "__main__":
    main()
