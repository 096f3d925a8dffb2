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

import typer
from rich.console import Console
from rich.text import Text

from . import _io, layers, report, scenario
from .errors import HavenmapError
from .havens import nearest_havens
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

NetworkOpt = Annotated[Path, typer.Option("--network", "-n", help="Road network: .osm, .osm.bz2, .osm.pbf or osmnx .graphml.")]
NetworkTypeOpt = Annotated[str, typer.Option("--network-type", help="For OSM files: 'drive' (one-ways honoured) or 'walk'.")]
IdOpt = Annotated[str | None, typer.Option("--id", help="Id column of the point files (default: 'id', any case).")]
LatOpt = Annotated[str | None, typer.Option("--lat", help="Latitude column of CSV point files (default: latitude/lat).")]
LonOpt = Annotated[str | None, typer.Option("--lon", help="Longitude column of CSV point files (default: longitude/lon/lng/long).")]
CrsOpt = Annotated[str | None, typer.Option("--crs", help="CRS of the point files' coordinates when not EPSG:4326 (e.g. EPSG:32613 for x/y in metres).")]
SnapOpt = Annotated[float, typer.Option("--max-snap-m", help="Points farther than this from any road (metres) are off-network.")]


@contextlib.contextmanager
def _step(message: str) -> Iterator[None]:
    """Show a spinner while a step runs, then a tick with its duration."""
    start = time.perf_counter()
    with err_console.status(message + " ..."):
        yield
    err_console.print(f"[green]✓[/green] {message} [dim]({time.perf_counter() - start:.1f} s)[/dim]")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    err_console.print(Text("warning: ", style="yellow") + Text(str(message)), highlight=False)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("havenmap-demo"),
    exact_defenders: Annotated[bool, typer.Option("--exact-defenders", help="Show exact defender points on the map (sensitive!).")] = False,
) -> None:
    """Run the embedded Helsinki demo scenario (real OSM streets, synthetic people and incidents).

    Writes OUT/nearest_havens.geojson, OUT/map.html and OUT/report.json.
    """
    scen = scenario.load_scenario(scenario.demo_dir() / "scenario.toml")
    summary = scenario.run_scenario(scen, out, step=_step, exact_defenders=exact_defenders)
    _print_summary(summary, out)


@app.command()
def nearest(
    network: NetworkOpt,
    defenders: Annotated[Path, typer.Option("--defenders", "-d", help="Defenders: CSV (id, latitude, longitude), GeoJSON, GPKG or GeoParquet points.")],
    havens: Annotated[Path, typer.Option("--havens", help="Safe havens: same point formats, with an id column.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoJSON: one route per defender and rank.")],
    k: Annotated[int, typer.Option("--k", min=1, help="How many nearest havens per defender.")] = 1,
    cost: Annotated[str, typer.Option("--cost", help="What 'nearest' minimises: 'time' (travel time) or 'length' (road distance).")] = "time",
    map_path: Annotated[Path | None, typer.Option("--map", help="Also write an offline HTML map of the result.")] = None,
    incidents: Annotated[Path | None, typer.Option("--incidents", help="Incidents to draw as a heatmap on --map (ACLED, UCDP GED, CSV, GeoJSON...).")] = None,
    network_type: NetworkTypeOpt = "drive",
    max_snap_m: SnapOpt = DEFAULT_MAX_SNAP_M,
    exact_defenders: Annotated[bool, typer.Option("--exact-defenders", help="Show exact defender points on --map (sensitive!).")] = False,
    id_column: IdOpt = None,
    lat_column: LatOpt = None,
    lon_column: LonOpt = None,
    crs: CrsOpt = None,
) -> None:
    """Find each defender's K nearest reachable safe havens by road, with the route to each.

    Output columns: defender_id, rank (1 = nearest), haven_id, haven_name, travel_time_s,
    distance_m, reachable, reason, snap_distance_m; geometry = the road route (EPSG:4326).
    A defender who can reach no haven is listed with reachable = false and no route.
    """
    if cost not in ("time", "length"):
        raise HavenmapError(f"--cost {cost!r}: use 'time' or 'length'")
    with _step(f"Loading the {network_type} network {network.name}"):
        net = load_network(network, network_type)
    with _step("Reading the point layers"):
        columns = {"id_column": id_column, "lat_column": lat_column, "lon_column": lon_column, "crs": crs}
        d = layers.read_defenders(defenders, **columns)
        h = layers.read_havens(havens, **columns)
        inc = layers.read_incidents(incidents) if incidents else None
    with _step(f"Routing {len(d)} defenders to their {k} nearest of {len(h)} havens"):
        result = nearest_havens(net, d, h, k=k, cost=cost, max_snap_m=max_snap_m)
    with _step("Writing outputs"):
        _io.write_geojson(out, result, private=True)
        if map_path is not None:
            scenario.write_nearest_map(map_path, net, result, havens=h, defenders=d, incidents=inc,
                                       title=f"Nearest havens — {network.name}", exact_defenders=exact_defenders)
    summary = report.nearest_report(result, defenders=len(d), havens=len(h),
                                    incidents=None if inc is None else len(inc), cost=cost, k=k)
    _print_summary(summary, out)


@app.command()
def download(
    out: Annotated[Path, typer.Option("--out", "-o", help="GraphML file to write (load it later with --network).")],
    place: Annotated[str | None, typer.Option("--place", help="Place name to geocode, e.g. 'Kallio, Helsinki'.")] = None,
    bbox: Annotated[str | None, typer.Option("--bbox", help="west,south,east,north in degrees.")] = None,
    network_type: NetworkTypeOpt = "drive",
) -> None:
    """Download a road network from OpenStreetMap (the only command that uses the internet).

    Field teams should download before deployment and carry the GraphML (or a .osm.pbf extract).
    """
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
