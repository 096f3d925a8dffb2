"""The ``havenmap`` command line: thin typer commands over the Python API.

User errors (bad files, unknown formats, points in the wrong area) print one line on
stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.text import Text

from . import _io, layers, report, scenario
from .errors import HavenmapError
from .havens import assign_havens, nearest_havens
from .network import load_network
from .snap import DEFAULT_MAX_SNAP_M

app = typer.Typer(
    name="havenmap",
    help="Protection planning on real road networks: nearest reachable safe havens for defenders, "
    "offline maps for commanders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out_console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

NetworkOpt = Annotated[
    Path, typer.Option("--network", "-n", help="Road network: .osm, .osm.bz2, .osm.pbf or osmnx .graphml.")
]
NetworkTypeOpt = Annotated[
    str, typer.Option("--network-type", help="For OSM files: 'drive' (one-ways honoured) or 'walk'.")
]
DefendersOpt = Annotated[
    Path,
    typer.Option(
        "--defenders", "-d", help="Defenders: CSV (id, latitude, longitude), GeoJSON, GPKG or GeoParquet points."
    ),
]
HavensOpt = Annotated[Path, typer.Option("--havens", help="Safe havens: same point formats, with an id column.")]
IdOpt = Annotated[str | None, typer.Option("--id", help="Id column of the point files (default: 'id', any case).")]
LatOpt = Annotated[
    str | None, typer.Option("--lat", help="Latitude column of CSV point files (default: latitude/lat).")
]
LonOpt = Annotated[
    str | None, typer.Option("--lon", help="Longitude column of CSV point files (default: longitude/lon/lng/long).")
]
CrsOpt = Annotated[
    str | None,
    typer.Option(
        "--crs", help="CRS of the point files' coordinates when not EPSG:4326 (e.g. EPSG:32613 for x/y in metres)."
    ),
]
SnapOpt = Annotated[
    float, typer.Option("--max-snap-m", help="Points farther than this from any road (metres) are off-network.")
]


@contextlib.contextmanager
def _step(message: str) -> Iterator[None]:
    """Show a spinner while a step runs, then a tick with its duration."""
    start = time.perf_counter()
    with err_console.status(message + " ..."):
        yield
    err_console.print(f"[green]✓[/green] {message} [dim]({time.perf_counter() - start:.1f} s)[/dim]")


_shown: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one yellow line, once per run (several steps may warn about the same points)."""
    if str(message) in _shown:
        return
    _shown.add(str(message))
    err_console.print(Text("warning: ", style="yellow") + Text(str(message)), highlight=False)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("havenmap-demo"),
    exact_defenders: Annotated[
        bool, typer.Option("--exact-defenders", help="Show exact defender points on the map (sensitive!).")
    ] = False,
) -> None:
    """Run the embedded Helsinki demo scenario (real OSM streets, synthetic people and incidents).

    Writes OUT/map.html (the commander's map), OUT/nearest_havens.geojson, OUT/report.json, and
    the folders OUT/coverage/, OUT/threat/, OUT/patrol/ and OUT/siting/ (see the README for every file).
    """
    _io.check_output(out, folder=True, create=False)
    scen = scenario.load_scenario(scenario.demo_dir() / "scenario.toml")
    summary = scenario.run_scenario(scen, out, step=_step, exact_defenders=exact_defenders)
    if "siting" in summary:
        s = summary["siting"]
        out_console.print(
            f"Where to open {s['new']} more haven(s) ({s['objective']}, {s['minutes']:g} min): "
            f"{', '.join(s['chosen'])} — see siting/.",
            highlight=False,
        )
    _print_summary(summary, out)


@app.command()
def nearest(
    network: NetworkOpt,
    defenders: DefendersOpt,
    havens: HavensOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoJSON: one route per defender and rank.")],
    k: Annotated[int, typer.Option("--k", min=1, help="How many nearest havens per defender.")] = 1,
    cost: Annotated[
        str, typer.Option("--cost", help="What 'nearest' minimises: 'time' (travel time) or 'length' (road distance).")
    ] = "time",
    map_path: Annotated[
        Path | None, typer.Option("--map", help="Also write an offline HTML map of the result.")
    ] = None,
    incidents: Annotated[
        Path | None,
        typer.Option("--incidents", help="Incidents to draw as a heatmap on --map (ACLED, UCDP GED, CSV, GeoJSON...)."),
    ] = None,
    network_type: NetworkTypeOpt = "drive",
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    exact_defenders: Annotated[
        bool, typer.Option("--exact-defenders", help="Show exact defender points on --map (sensitive!).")
    ] = False,
    id_column: IdOpt = None,
    lat_column: LatOpt = None,
    lon_column: LonOpt = None,
    crs: CrsOpt = None,
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
    _io.check_output(out, create=False)
    if map_path is not None:
        _io.check_output(map_path, option="--map", create=False)
    if cost not in ("time", "length"):
        raise HavenmapError(f"--cost {cost!r}: use 'time' or 'length'")
    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type)
    with _step("Reading the point layers"):
        columns = {"id_column": id_column, "lat_column": lat_column, "lon_column": lon_column, "crs": crs}
        d = layers.read_defenders(defenders, **_point_options(defenders, columns))
        h = layers.read_havens(havens, **_point_options(havens, columns))
        inc = layers.read_incidents(incidents) if incidents else None
    weights, risk_arr = _cost_model(net, cost, closures, risk, alpha, max_risk)  # closures / danger (coverage)
    with _step(f"Routing {len(d)} defenders to their {k} nearest of {len(h)} havens"):
        result = nearest_havens(net, d, h, k=k, cost=cost, max_snap_m=max_snap_m, edge_weights=weights, risk=risk_arr)
    with _step("Writing outputs"):
        _io.write_geojson(out, result, private=True)
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


@app.command()
def download(
    out: Annotated[Path, typer.Option("--out", "-o", help="GraphML file to write (load it later with --network).")],
    place: Annotated[
        str | None, typer.Option("--place", help="Place name to geocode, e.g. 'Kallio, Helsinki'.")
    ] = None,
    bbox: Annotated[str | None, typer.Option("--bbox", help="west,south,east,north in degrees.")] = None,
    network_type: NetworkTypeOpt = "drive",
) -> None:
    """Download a road network from OpenStreetMap (the only command that uses the internet).

    Field teams should download before deployment and carry the GraphML (or a .osm.pbf extract).
    """
    _io.check_output(out, create=False)
    from .network import from_bbox, from_place

    if (place is None) == (bbox is None):
        raise HavenmapError("give exactly one of --place or --bbox")
    with _step(f"Downloading the {network_type} network from OpenStreetMap"):
        if place is not None:
            net = from_place(place, network_type)
        else:
            try:
                west, south, east, north = (float(v) for v in bbox.split(","))
            except ValueError:
                raise HavenmapError(f"--bbox {bbox!r}: give four numbers west,south,east,north") from None
            net = from_bbox((west, south, east, north), network_type)
    import osmnx as ox

    with _io.atomic_path(out) as tmp:
        ox.save_graphml(net.to_networkx(), tmp)
    out_console.print(f"{net.n_nodes:,} nodes, {net.n_edges:,} edges written to {out}", highlight=False)


@app.command("patrol")
def patrol_command(
    network: NetworkOpt,
    bases: Annotated[
        Path, typer.Option("--bases", "-b", help="Patrol bases: CSV (id, latitude, longitude), GeoJSON, GPKG...")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
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
            help="Number of units (spread over the bases round-robin) or a units file "
            "(unit, base_id, shift_minutes, profile).",
        ),
    ] = "1",
    shift_minutes: Annotated[
        float | None,
        typer.Option("--shift-minutes", "-s", help="Shift length in minutes (for units without their own)."),
    ] = None,
    days: Annotated[
        int,
        typer.Option("--days", min=1, help="Days to plan; more than 1 varies the plans day to day (mixed strategy)."),
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same plan.")] = 0,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver time cap per day, seconds.")] = 30.0,
    iterations: Annotated[
        int, typer.Option("--iterations", min=1, help="Solver iterations per day (a reproducible stop).")
    ] = 3000,
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
    risk_alpha: Annotated[
        float, typer.Option("--risk-alpha", help="Danger weight: leg cost = time × (1 + alpha × risk).")
    ] = 1.0,
    exact: Annotated[
        bool, typer.Option("--exact", help="Place defender targets at their exact road point (outputs owner-only).")
    ] = False,
    network_type: NetworkTypeOpt = "drive",
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
) -> None:
    """Plan patrol routes: every unit from its base and back within its shift, collecting target priority.

    Writes OUT/patrol_routes.geojson, OUT/gpx/<unit>_day-<d>.gpx, OUT/patrol_schedule.csv,
    OUT/target_frequency.csv, OUT/patrol_summary.json and OUT/patrol_map.html. One network
    (drive or walk) per run.
    """
    if shift_minutes is not None and not (np.isfinite(shift_minutes) and 0 < shift_minutes <= 7 * 24 * 60):
        raise HavenmapError(
            f"--shift-minutes {shift_minutes}: give the shift length in minutes, above 0 and at most a week (10080)"
        )
    if not np.isfinite(time_limit) or time_limit <= 0:
        raise HavenmapError(f"--time-limit {time_limit}: give a positive number of seconds")
    if not units.strip().isdigit() and not Path(units).suffix:
        raise HavenmapError(f"--units {units!r}: give a number of units (e.g. 3) or a units CSV file")
    _io.check_output(out, folder=True, create=False)
    from . import patrol as pt
    from .costs import edge_risk

    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type)
    with _step("Reading bases, units and targets"):
        b = layers.read_bases(bases)
        unit_spec = int(units) if units.strip().isdigit() else pt.read_units(Path(units))
        parts = [pt.read_targets(targets)] if targets else []
        if hotspots:
            parts.append(pt.targets_from_hotspots(net, _read_geo(hotspots, "--hotspots")))
        if checkins:
            parts.append(pt.targets_from_havens(layers.read_havens(checkins)))
        if defenders:
            parts.append(
                pt.targets_from_defenders(net, layers.read_defenders(defenders), exact=exact, max_snap_m=max_snap_m)
            )
        tg = pt.combine_targets(*parts)
        risk_arr = edge_risk(net, risk) if risk else None
    with _step(f"Planning {days} day(s) for {len(tg)} targets"):
        plan = pt.plan_patrols(
            net,
            tg,
            b,
            units=unit_spec,
            shift_minutes=shift_minutes,
            days=days,
            seed=seed,
            time_limit_s=time_limit,
            max_iterations=iterations,
            risk=risk_arr,
            risk_alpha=risk_alpha,
            max_snap_m=max_snap_m,
        )
    with _step("Writing outputs"):
        pt.write_patrol_outputs(plan, out, roads=net, title=f"Patrols — {network.name}")
    s = plan.summary
    for d in s["per_day"]:
        out_console.print(
            f"day {d['day']}: {d['targets_visited']} targets visited by {d['units_out']} of "
            f"{s['units']} units, priority {d['prize']:g} of {s['prize_possible_per_day']:g}"
        )
    if s["variety_jaccard"] is not None:
        out_console.print(
            f"day-to-day variety (Jaccard distance of visited sets): {s['variety_jaccard']:.2f}; "
            f"priority–frequency correlation: {s['frequency_priority_correlation']}"
        )
    if not s["reproducible"]:
        err_console.print(
            "warning: the time limit stopped the solver before its iterations: a re-run may differ; "
            "raise --time-limit or lower --iterations for a reproducible plan",
            highlight=False,
        )
    out_console.print(f"Outputs in {out}", highlight=False)


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
        help="Per-edge risk (u, v, key, risk or edge, risk; CSV/GeoJSON): routes minimise "
        "time × (1 + alpha × risk) and report their exposure.",
    ),
]
AlphaOpt = Annotated[float, typer.Option("--alpha", help="Danger weight alpha in time × (1 + alpha × risk).")]
MaxRiskOpt = Annotated[float | None, typer.Option("--max-risk", help="Forbid roads whose risk exceeds this.")]


def _cost_model(
    net,
    cost: str,
    closures: Path | None,
    risk: Path | None,
    alpha: float,
    max_risk: float | None,
    *,
    with_closures: bool = True,
):
    """(per-edge weights or None, per-edge risk or None) for the CLI's cost options."""
    from . import costs

    if risk is None and (max_risk is not None or alpha != 1.0):
        raise HavenmapError("--alpha and --max-risk need --risk FILE (the per-edge risk)")
    if closures is None and risk is None:
        return None, None
    with _step("Building the cost model (closures, danger)"):
        risk_arr = costs.edge_risk(net, risk) if risk is not None else None
        weights = costs.cost_weights(
            net, cost=cost, risk=risk_arr, alpha=alpha, max_risk=max_risk, closures=closures if with_closures else None
        )
    return weights, risk_arr


@app.command("coverage")
def coverage_command(
    network: NetworkOpt,
    defenders: DefendersOpt,
    havens: HavensOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    minutes: Annotated[str, typer.Option("--minutes", "-m", help="Time bands in minutes, e.g. 5,10,15.")] = "5,10,15",
    closures: ClosuresOpt = None,
    risk: RiskOpt = None,
    alpha: AlphaOpt = 1.0,
    max_risk: MaxRiskOpt = None,
    cost: Annotated[str, typer.Option("--cost", help="What routes minimise: 'time' or 'length'.")] = "time",
    buffer_m: Annotated[
        float, typer.Option("--buffer-m", help="Half-width of service areas around the reached roads, metres.")
    ] = 50.0,
    network_type: NetworkTypeOpt = "drive",
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    id_column: IdOpt = None,
    lat_column: LatOpt = None,
    lon_column: LonOpt = None,
    crs: CrsOpt = None,
) -> None:
    """Who reaches a haven within each time band, what losing any one haven does, and what closures cut off.

    Writes to OUT: service_areas.geojson (haven_id, minutes, polygon), coverage.csv (per defender:
    defender_id, haven_id, travel_time_s, second_haven_id, second_travel_time_s, reachable,
    band_min, reason), coverage.json (per band covered and share; per haven served),
    n_minus_1.csv (per haven lost: coverage per band, defenders losing all cover) and, with
    --closures, closures_impact.csv (defenders cut off or slowed, with the haven they would
    have reached without the closures). Files are readable by the owner only.
    """
    _io.check_output(out, folder=True, create=False)
    from . import coverage as cov_mod

    if cost not in ("time", "length"):
        raise HavenmapError(f"--cost {cost!r}: use 'time' or 'length'")
    bands = cov_mod.parse_minutes(minutes)
    if not np.isfinite(buffer_m) or buffer_m <= 0:
        raise HavenmapError(f"--buffer-m {buffer_m}: must be a positive number of metres (default 50)")
    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type)
    with _step("Reading the point layers"):
        columns = {"id_column": id_column, "lat_column": lat_column, "lon_column": lon_column, "crs": crs}
        d = layers.read_defenders(defenders, **_point_options(defenders, columns))
        h = layers.read_havens(havens, **_point_options(havens, columns))
    weights, _ = _cost_model(net, cost, closures, risk, alpha, max_risk)
    with _step(f"Coverage of {len(d)} defenders by {len(h)} havens"):
        cov = cov_mod.coverage(net, d, h, bands, cost=cost, edge_weights=weights, max_snap_m=max_snap_m)
        n1 = cov_mod.n_minus_1(cov)
    impact = None
    if closures is not None:
        open_weights, _ = _cost_model(net, cost, None, risk, alpha, max_risk)
        with _step("Coverage without the closures"):
            cov_open = cov_mod.coverage(net, d, h, bands, cost=cost, edge_weights=open_weights, max_snap_m=max_snap_m)
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
            out, cov, areas, n1=n1, impact=impact, extra={"cost_model": cost_model}
        )
    for band, row in summary["bands"].items():
        out_console.print(
            f"within {band} min: [bold]{row['covered']} of {cov.n_defenders}[/bold] defenders "
            f"({100 * row['share']:.1f} %)"
        )
    if summary["unreachable_ids"]:
        out_console.print(
            Text(f"Cannot reach any haven ({len(summary['unreachable_ids'])}): ", style="red")
            + Text(", ".join(summary["unreachable_ids"][:20]))
        )
    if summary["n_minus_1"]["lose_all_cover"]:
        out_console.print(
            f"Losing haven {summary['n_minus_1']['worst_haven']} leaves "
            f"{summary['n_minus_1']['lose_all_cover']} defenders with no haven within "
            f"{max(bands):g} min."
        )
    if impact is not None:
        out_console.print(
            f"Closures cut off {summary['closures']['cut_off']} defenders and slow {summary['closures']['slowed']}."
        )
    out_console.print(f"Outputs in {out}", highlight=False)


# ---------------------------------------------------------------------- siting (where to open the next havens)
@app.command("site")
def site_command(
    network: NetworkOpt,
    defenders: Annotated[
        Path,
        typer.Option(
            "--defenders", "-d", help="Defenders: points with id and optional weight (or priority), default 1."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    candidates: Annotated[
        Path | None,
        typer.Option("--candidates", "-c", help="Candidate sites: points with id, optional name (any point format)."),
    ] = None,
    candidates_osm: Annotated[
        str | None,
        typer.Option(
            "--candidates-osm",
            help="Take the candidates from the OSM features of the network file, e.g. amenity=clinic,place_of_worship.",
        ),
    ] = None,
    havens: Annotated[
        Path | None, typer.Option("--havens", help="Existing safe havens (they stay open): points with id.")
    ] = None,
    new: Annotated[int, typer.Option("--new", help="New havens to open (cover-all: at most this many).")] = 3,
    minutes: Annotated[
        float, typer.Option("--minutes", "-m", help="The band: covered within this many minutes.")
    ] = 10.0,
    objective: Annotated[
        str, typer.Option("--objective", help="coverage | time | backup | cover-all (see the README).")
    ] = "coverage",
    cost: Annotated[str, typer.Option("--cost", help="What routes minimise: 'time' or 'length'.")] = "time",
    closures: ClosuresOpt = None,
    risk: RiskOpt = None,
    alpha: AlphaOpt = 1.0,
    max_risk: MaxRiskOpt = None,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", help="Solver time limit, seconds: the best found, with its gap.")
    ] = None,
    network_type: NetworkTypeOpt = "drive",
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    exact_defenders: Annotated[
        bool, typer.Option("--exact-defenders", help="Show exact defender points on the map (sensitive!).")
    ] = False,
    id_column: IdOpt = None,
    lat_column: LatOpt = None,
    lon_column: LonOpt = None,
    crs: CrsOpt = None,
) -> None:
    """Where to open the next safe havens: the sites, in the order to open them, proven optimal.

    Writes to OUT: sites.csv (site_id, name, order, gain, defenders_served, weight_served,
    newly_reached), siting.json (objective, value, optimal, gap, coverage per band and the worst
    single-haven loss before and after; owner-only), siting.geojson (every candidate with
    chosen) and siting_map.html.
    """
    from . import siting

    _io.check_output(out, folder=True, create=False)
    params = siting.SitingParams(objective=objective, new=new, minutes=minutes, time_limit_s=time_limit)
    if cost not in ("time", "length"):
        raise HavenmapError(f"--cost {cost!r}: use 'time' or 'length'")
    if (candidates is None) == (candidates_osm is None):
        raise HavenmapError("give the candidate sites with exactly one of --candidates FILE or --candidates-osm TAGS")
    if risk is None and (max_risk is not None or alpha != 1.0):
        raise HavenmapError("--alpha and --max-risk need --risk FILE (the per-edge risk)")
    with _step("Reading defenders, havens and candidate sites"):
        columns = {"id_column": id_column, "lat_column": lat_column, "lon_column": lon_column, "crs": crs}
        d = layers.read_defenders(defenders, **_point_options(defenders, columns))
        siting.defender_weights(d)
        h = layers.read_havens(havens, **_point_options(havens, columns)) if havens is not None else None
        if candidates is not None:
            c = layers.read_points(candidates, kind="havens", **_point_options(candidates, columns))
        else:
            c = siting.candidates_from_osm(network, candidates_osm, exclude=h)
        siting.check_sites(c, h, params.new)
    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type)
    weights, _ = _cost_model(net, cost, closures, risk, alpha, max_risk)
    with _step(
        f"Siting {params.new} new haven(s) among {len(c)} candidates ({params.objective}, {params.minutes:g} min)"
    ):
        result = siting.site_havens(
            net, d, c, existing=h, new=params.new, minutes=params.minutes, objective=params.objective, cost=cost,
            edge_weights=weights, time_limit_s=params.time_limit_s, max_snap_m=max_snap_m,
            off_network_candidates="drop" if candidates_osm is not None else "error",
        )  # fmt: skip
    with _step("Writing outputs and the map"):
        siting.write_siting_outputs(
            result, out, net=net, defenders=d, title=f"Where to open the next havens — {network.name}",
            exact_defenders=exact_defenders,
        )  # fmt: skip
    _print_siting(result, out)


def _print_siting(result, out: Path) -> None:
    s = result.summary
    band = f"{s['minutes']:g}"
    for row in result.sites.itertuples():
        out_console.print(
            f"{row.order}. open [bold]{row.name}[/bold] ({row.site_id}): gain {row.gain:g}, "
            f"serves {row.defenders_served} defender(s)",
            highlight=False,
        )
    if result.sites.empty:
        out_console.print("No new haven needed: every defender who can be covered already is.")
    before, after = s["coverage"]["before"][band], s["coverage"]["after"][band]
    out_console.print(
        f"Within {band} min: [bold]{after['covered']} of {s['defenders']}[/bold] defenders "
        f"(weight {after['covered_weight']:g} of {s['weight_total']:g}), was {before['covered']}.",
        highlight=False,
    )
    loss_b, loss_a = s["worst_loss"]["before"], s["worst_loss"]["after"]
    if loss_a.get("haven") is not None:
        was = f", was {loss_b['weight_after_loss']:g}" if loss_b.get("haven") is not None else ""
        out_console.print(
            f"Losing the worst single haven ({loss_a['haven']}) leaves weight {loss_a['weight_after_loss']:g} "
            f"within {band} min{was}.",
            highlight=False,
        )
    if s["unreached"]["defenders"]:
        out_console.print(
            f"{s['unreached']['defenders']} defender(s) can reach no haven by road (listed in siting.json)."
        )
    if s.get("all_covered") is False:
        err_console.print(
            f"warning: {s['new']} new haven(s) cannot cover every defender who can be covered; this answer covers "
            "the most weight possible with the fewest havens (raise --new to cover all)",
            highlight=False,
        )
    if s["optimal"]:
        out_console.print(f"{s['objective']}: value {s['value']:g} ({s['value_unit']}), proven optimal.")
    else:
        out_console.print(
            f"{s['objective']}: value {s['value']:g}, best found ({s['status']}); gap {100 * s['gap']:.2f} %."
        )
    out_console.print(f"Outputs in {out}", highlight=False)


# ---------------------------------------------------------------------- map (the commander's map)
@app.command("map")
def map_command(
    network: NetworkOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output HTML file (one self-contained offline page).")],
    incidents: Annotated[
        Path | None,
        typer.Option(
            "--incidents", help="Incidents (ACLED, UCDP GED, CSV, GeoJSON...): heatmap by week, recent markers."
        ),
    ] = None,
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
    title: Annotated[str | None, typer.Option("--title", help="Scenario name shown in the title box.")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Date of the picture (YYYY-MM-DD); default the latest incident.")
    ] = None,
    recent_days: Annotated[float, typer.Option("--recent-days", help="Incidents of the last N days are markers.")] = 30,
    slow_minutes: Annotated[
        float,
        typer.Option("--slow-minutes", help="Defenders reaching a haven within this are 'covered', beyond it 'slow'."),
    ] = 10.0,
    cell_size_m: Annotated[
        float, typer.Option("--cell-size-m", help="Side of the defender grid cells, metres.")
    ] = 500.0,
    exact_defenders: Annotated[
        bool, typer.Option("--exact-defenders", help="Show exact defender points (sensitive! the file is owner-only).")
    ] = False,
    tiles: Annotated[
        str | None,
        typer.Option("--tiles", help="'osm': add an online tile layer that can be switched on (fetches tiles!)."),
    ] = None,
    network_type: NetworkTypeOpt = "drive",
) -> None:
    """Draw the commander's map: threat, havens and their reach, defenders' status, alerts and patrols.

    One self-contained HTML file that works offline (nothing is fetched unless --tiles). Every
    layer is optional except the road network, which is the base map. With --havens and
    --defenders, defenders' status, routes to the nearest haven and 5/10/15-minute service areas
    are computed here unless --coverage / --service-areas are given.
    """
    if as_of is not None:
        from .threat import _parse_as_of

        _parse_as_of(as_of, pd.Series([], dtype="datetime64[ns]"))
    _io.check_output(out, create=False)
    from . import maps

    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type)
    with _step("Reading the layers"):
        kw = {
            "incidents": layers.read_incidents(incidents) if incidents else None,
            "havens": layers.read_havens(havens) if havens else None,
            "defenders": layers.read_defenders(defenders) if defenders else None,
            "bases": layers.read_bases(bases) if bases else None,
            "coverage": _read_table(coverage, "--coverage") if coverage else None,
            "alerts": _read_table(alerts, "--alerts") if alerts else None,
            "service_areas": _read_geo(service_areas, "--service-areas") if service_areas else None,
            "edge_risk": _read_geo(risk, "--risk") if risk else None,
            "hotspots": _read_geo(hotspots, "--hotspots") if hotspots else None,
        }
        if patrols is not None:
            kw["patrol_routes"], kw["patrol_stops"] = _read_patrols(patrols, targets)
    if kw["havens"] is not None and kw["defenders"] is not None:
        # the network is here: compute what the commander needs rather than draw "status unknown"
        from . import coverage as cov_mod

        with _step("Routing defenders to their nearest haven"):
            found = assign_havens(net, kw["defenders"], kw["havens"], k=2)  # one answer: status and routes
            if kw["coverage"] is None:
                kw["coverage"] = cov_mod.coverage_of(found, (slow_minutes,)).defenders
            if kw["service_areas"] is None:
                kw["service_areas"] = cov_mod.service_areas(net, kw["havens"], (5, 10, 15))
            routes = found.table(1)
            kw["routes"] = routes.loc[routes["reachable"]]
    with _step("Drawing the map"):
        m = maps.commander_map(
            roads=net,
            title=title or f"havenmap — {network.name}",
            as_of=as_of,
            exact_defenders=exact_defenders,
            cell_size_m=cell_size_m,
            tiles=tiles,
            recent_days=recent_days,
            slow_minutes=slow_minutes,
            **kw,
        )
        maps.save_map(m, out)
    out_console.print(
        f"Map written to {out}" + (" (owner-only: exact defender locations)" if exact_defenders else ""),
        highlight=False,
    )


def _read_table(path: Path, option: str):
    """A CSV or JSON table with ids kept as text."""
    import pandas as pd

    if not path.exists():
        raise HavenmapError(f"{option} {path}: file not found")
    try:
        if path.suffix.lower() == ".json":
            return pd.read_json(path, dtype={"defender_id": str})
        return pd.read_csv(path, dtype={"defender_id": str, "haven_id": str})
    except (ValueError, OSError) as exc:
        raise HavenmapError(f"{option} {path}: cannot read the table ({exc})") from None


def _read_geo(path: Path, option: str):
    import geopandas as gpd

    if not path.exists():
        raise HavenmapError(f"{option} {path}: file not found")
    try:
        return gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise HavenmapError(f"{option} {path}: cannot read it as GeoJSON/GPKG ({exc})") from None


def _read_patrols(folder: Path, targets: Path | None):
    """Routes of a patrol output folder, and its stops placed at the targets (if given)."""
    import geopandas as gpd

    routes = _read_geo(folder / "patrol_routes.geojson", "--patrols")
    stops_file = folder / "patrol_stops.geojson"
    if stops_file.exists():
        return routes, _read_geo(stops_file, "--patrols")
    if targets is None:
        return routes, None
    schedule = _read_table(folder / "patrol_schedule.csv", "--patrols")
    points = layers.read_points(targets)
    visits = schedule.loc[schedule["target_id"].fillna("").astype(str) != ""].copy()
    visits["target_id"] = visits["target_id"].astype(str)
    where = points.set_index(points["id"].astype(str)).geometry
    missing = sorted(set(visits["target_id"]) - set(where.index))
    if missing:
        raise HavenmapError(
            f"--targets {targets}: no target with id {missing[0]!r} of the patrol schedule "
            f"({len(missing)} missing); pass the targets file the plan was made with"
        )
    geometry = where.loc[visits["target_id"]].to_numpy()
    stops = gpd.GeoDataFrame(visits[["unit", "day", "stop", "target_id"]], geometry=geometry, crs=points.crs)
    return routes, stops


# ---------------------------------------------------------------------- threat picture and early warning
IncidentsOpt = Annotated[
    Path,
    typer.Option(
        "--incidents",
        "-i",
        help="Incidents: ACLED export, UCDP GED, CSV (id, date, event_type, latitude, longitude...), GeoJSON, GPKG.",
    ),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Reference date YYYY-MM-DD (default: the latest incident).")
]
WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights", help="Type weights CSV: event_type,sub_event_type,weight (overrides the built-in table)."
    ),
]


def _threat_inputs(incidents: Path, as_of: str | None, weights: Path | None):
    """Checked incidents, as-of date and type table (before the network is loaded: fail fast)."""
    import pandas as pd

    from . import threat

    threat._parse_as_of(as_of, pd.Series([], dtype="datetime64[ns]"))
    table = threat.read_weights(weights) if weights is not None else None
    inc = layers.read_incidents(incidents)
    return inc, table


@app.command("threat")
def threat_command(
    network: NetworkOpt,
    incidents: IncidentsOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    as_of: AsOfOpt = None,
    bandwidth_m: Annotated[
        float, typer.Option("--bandwidth-m", help="Kernel bandwidth along the roads, metres.")
    ] = 400.0,
    half_life_days: Annotated[
        float, typer.Option("--half-life-days", help="Age at which an incident counts half, days.")
    ] = 30.0,
    weights: WeightsOpt = None,
    cell_m: Annotated[float, typer.Option("--cell-m", help="Cell size of the planar density grid, metres.")] = 100.0,
    permutations: Annotated[
        int, typer.Option("--permutations", min=0, help="Gi* permutations (0: analytic p-values).")
    ] = 0,
    cluster_permutations: Annotated[
        int,
        typer.Option("--cluster-permutations", min=0, help="Replicates of the space-time cluster scan (0: no scan)."),
    ] = 999,
    defenders: Annotated[
        Path | None,
        typer.Option("--defenders", "-d", help="Also write OUT/alerts.csv and alerts.json for these defenders."),
    ] = None,
    network_type: NetworkTypeOpt = "drive",
    max_snap_m: Annotated[
        float,
        typer.Option(
            "--max-snap-m",
            help="Incidents farther than this from any road (metres; ×2 / ×4 for geo_precision 2 / 3) are left out.",
        ),
    ] = 500.0,
) -> None:
    """Risk on every road from incident reports: network kernel density, Gi* hotspots, emerging clusters.

    Writes OUT/edge_risk.geojson (a LineString per directed edge: u, v, key, edge, risk >= 0, in
    weighted incidents per km of road), OUT/hotspots.geojson (significant hot roads: gi_z, p_value,
    q_value, significance), OUT/node_risk.csv (osmid, lon, lat, risk), OUT/density_grid.geojson
    (planar density per km², cell centres), OUT/clusters.geojson (emerging space-time clusters,
    when any), OUT/threat_map.html and, with --defenders, OUT/alerts.csv / alerts.json.
    """
    _io.check_output(out, folder=True, create=False)
    from . import threat

    with _step("Reading incidents"):
        inc, table = _threat_inputs(incidents, as_of, weights)
        d = layers.read_defenders(defenders) if defenders is not None else None
    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type)
    summary = threat.run_threat_outputs(
        net,
        inc,
        d,
        out,
        as_of,
        _step,
        title=f"Threat picture — {network.name}",
        threat_kw={
            "bandwidth_m": bandwidth_m,
            "half_life_days": half_life_days,
            "weights": table,
            "cell_m": cell_m,
            "permutations": permutations,
            "max_snap_m": max_snap_m,
            "clusters": cluster_permutations > 0,
            "cluster_permutations": max(cluster_permutations, 1),
        },
        alert_kw={"weights": table},
    )
    out_console.print(
        f"Risk on {summary['edges']:,} edges as of {summary['as_of']} from {summary['incidents_used']} of "
        f"{summary['incidents']} incidents (max {summary['max_risk']:.2f} per km); "
        f"{summary['hotspot_edges']} hot road pieces; {summary['clusters']} emerging cluster(s)"
        + ("" if summary["alerts"] is None else f"; {summary['alerts']} alert(s)")
        + ".",
        highlight=False,
    )
    out_console.print(f"Outputs in {out}", highlight=False)


@app.command("alerts")
def alerts_command(
    network: NetworkOpt,
    incidents: IncidentsOpt,
    defenders: Annotated[
        Path, typer.Option("--defenders", "-d", help="Defenders: CSV (id, latitude, longitude), GeoJSON, GPKG...")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output CSV (alerts.json is written beside it).")],
    as_of: AsOfOpt = None,
    distance_m: Annotated[
        float, typer.Option("--distance-m", help="Network distance around each defender, metres.")
    ] = 1000.0,
    recent_days: Annotated[int, typer.Option("--recent-days", min=1, help="Recent window, days up to --as-of.")] = 7,
    baseline_days: Annotated[
        int, typer.Option("--baseline-days", min=1, help="Baseline window before the recent one, days.")
    ] = 90,
    alpha: Annotated[float, typer.Option("--alpha", help="Alert when the surge p-value is below this.")] = 0.01,
    weights: WeightsOpt = None,
    network_type: NetworkTypeOpt = "drive",
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
) -> None:
    """Early warning: defenders facing a surge of violence, or a severe incident, close by on the roads.

    Writes OUT (CSV) and the same stem .json, owner-only: one row per alert, most urgent first:
    defender_id, score, level, reason, recent_count, baseline_count, p_value, severe_count, nearest_m...
    Defenders without an alert are not listed; no output holds a defender's location.
    """
    _io.check_output(out, create=False)
    from . import threat

    if out.suffix.lower() == ".json":
        raise HavenmapError(f"--out {out}: name the CSV file (e.g. alerts.csv); the JSON is written beside it")
    if not 0 < alpha < 1:
        raise HavenmapError(f"--alpha {alpha}: use a probability between 0 and 1, e.g. 0.01")
    with _step("Reading incidents and defenders"):
        inc, table = _threat_inputs(incidents, as_of, weights)
        d = layers.read_defenders(defenders)
    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type)
    with _step(f"Early warning for {len(d)} defenders"):
        weighted = threat.weigh_incidents(inc, as_of, weights=table)
        alerts = threat.early_warning(
            net,
            weighted,
            d,
            as_of,
            distance_m=distance_m,
            recent_days=recent_days,
            baseline_days=baseline_days,
            alpha=alpha,
            max_snap_m=max_snap_m,
        )
        csv_path, json_path = threat.write_alerts(out, alerts, weighted.attrs.get("as_of"))
    levels = alerts["level"].value_counts().to_dict() if len(alerts) else {}
    detail = ", ".join(f"{levels[k]} {k}" for k in ("critical", "high", "elevated") if k in levels)
    out_console.print(
        f"{len(alerts)} alert(s) among {len(d)} defenders"
        + (f" ({detail})" if detail else "")
        + f"; written to {csv_path} and {json_path}",
        highlight=False,
    )


def _point_options(path: Path, columns: dict) -> dict:
    """--lat/--lon/--crs describe CSV coordinates; vector files carry their own geometry and CRS."""
    if path.name.lower().endswith((".csv", ".tsv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")):
        return columns
    return {"id_column": columns["id_column"]}


def _print_summary(summary: dict, out: Path) -> None:
    median = summary["median_travel_time_s"]
    median_text = "n/a" if median is None else f"{median / 60:.1f} min"
    out_console.print(
        f"[bold]{summary['reachable']} of {summary['defenders']}[/bold] defenders can reach a haven "
        f"({summary['havens']} havens); median time to the nearest: {median_text}."
    )
    if summary["unreachable"]:
        line = Text(f"Unreachable ({len(summary['unreachable'])}): ", style="red")
        line.append(", ".join(summary["unreachable"]), style="default")
        out_console.print(line)
    out_console.print(f"Outputs in {out}", highlight=False)


def main() -> None:
    """Entry point: run the app, turning havenmap errors into one line and exit status 2.

    typer's standalone mode already reports usage errors (exit 2) and exits; only our own
    errors need catching here.
    """
    warnings.showwarning = _show_warning
    try:
        app()
    except HavenmapError as exc:
        err_console.print(f"havenmap: error: {exc}", highlight=False, markup=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
