"""Road networks from line layers: shapefiles, GeoPackages, GeoJSON, GeoParquet, FlatGeobuf.

Where OpenStreetMap is thin, the roads a protection team trusts come as line layers (OCHA /
HDX road datasets, a ministry's shapefile, Geofabrik's ``gis_osm_roads_free_1.shp``, a HOT
Export Tool GeoPackage, roads a team digitised itself). :func:`read_lines` and
:func:`from_lines` turn such a layer into the same :class:`~havenmap.network.RoadNetwork`
an OSM extract gives, so every analysis runs on it unchanged.

Topology
    Lines join where they share a vertex. A loose line end (a point no other vertex shares)
    within ``snap_tolerance_m`` (default 1 m) of a vertex joins it, else within that
    distance of another line it joins that line (a vertex is inserted: a T-junction drawn
    without a shared vertex). Lines that cross without a shared vertex stay apart (bridges,
    flyovers) unless ``split_crossings``. MultiLineStrings are split into their parts,
    repeated vertices and zero-length pieces dropped, duplicate pieces (the same vertices
    between the same nodes, either way round) kept once with the directions of all copies.
    Graph nodes are intersections and line ends; interior vertices stay as edge geometry
    (osmnx's simplified graphs). Closed lines (rings, roundabouts) become loops from their
    first vertex or pieces between the roads that touch them.
Direction
    ``oneway_column``: OSM ``yes``/``true``/``1`` (along the line), ``-1``/``reverse``
    (against), ``no``/``false``/``0``; ESRI ``FT``/``TF``/``B``/``N`` (N: no travel, left
    out); Geofabrik ``F``/``T``/``B``. Empty = two-way. Without the column every line is
    two-way. A two-way line is two directed edges (twins) sharing one geometry, as for OSM.
    ``network_type="walk"`` ignores one-ways.
Speed (km/h)
    ``speed_column`` (numbers in ``speed_unit``, or text such as ``"30 mph"``/``"50 km/h"``;
    0 or empty = unknown), else ``class_column`` through :data:`CLASS_SPEEDS_KPH` (OSM
    ``highway`` and Geofabrik ``fclass`` names) overridden by ``class_speeds``, else
    ``default_speed_kph``. A class of speed 0 is not a road for driving: its lines are left
    out of drive networks (footways, steps, ... by default). Walk networks use the walking
    speed (half on steps) and leave out motorways.
Length
    Great-circle metres along the vertices (as osmnx and the OSM reader), whatever the CRS.

Every layer is reprojected to the local UTM zone. :func:`network_report` says what the
build found: components, dangling ends, joins made, crossings left apart, speed sources.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from . import _io, _lines, _osm
from ._layers_util import find_column, one_line, show
from .errors import InputError, NetworkError
from .network import RoadNetwork, assemble_network, split_paths, utm_crs

__all__ = [
    "CLASS_SPEEDS_KPH",
    "DEFAULT_SNAP_TOLERANCE_M",
    "DEFAULT_SPEED_KPH",
    "LINE_SUFFIXES",
    "LineOptions",
    "NetworkReport",
    "from_gdfs",
    "from_lines",
    "network_report",
    "read_class_speeds",
    "read_lines",
]

#: File name endings read as road line layers.
LINE_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".parquet", ".geoparquet", ".fgb")
#: Loose line ends within this distance (metres) of a vertex or a line join it.
DEFAULT_SNAP_TOLERANCE_M = 1.0
#: Speed (km/h) of lines with neither a speed nor a known class.
DEFAULT_SPEED_KPH = _osm.DEFAULT_DRIVE_SPEED_KPH
MAX_SNAP_TOLERANCE_M = 50.0
MAX_SPEED_KPH = 300.0

_NOT_FOR_DRIVING = (
    "footway",
    "path",
    "steps",
    "pedestrian",
    "cycleway",
    "bridleway",
    "corridor",
    "platform",
    "elevator",
    "escalator",
    "construction",
    "proposed",
    "planned",
    "abandoned",
    "razed",
    "raceway",
    "bus_guideway",
)
#: Default driving speeds (km/h) by road class: OSM ``highway`` values and Geofabrik ``fclass``
#: names (the same words plus ``track_grade1`` .. ``track_grade5``), compared case-insensitively.
#: 0 = not a road for driving (left out of drive networks, like osmnx's drive filter).
CLASS_SPEEDS_KPH: dict[str, float] = {
    **_osm.DRIVE_SPEED_KPH,
    "track_grade1": 20.0,
    "track_grade2": 15.0,
    "track_grade3": 10.0,
    "track_grade4": 10.0,
    "track_grade5": 10.0,
    **dict.fromkeys(_NOT_FOR_DRIVING, 0.0),
}
#: Classes left out of walk networks (osmnx's walk filter, as exact class names).
WALK_EXCLUDED_CLASSES = frozenset(
    {"motorway", "motorway_link", "cycleway", "bus_guideway", "construction", "proposed", "planned"}
    | {"abandoned", "razed", "raceway", "platform"}
)

#: One-way values (lower case) → (along the line, against it). '' and missing: two-way.
ONEWAY_VALUES: dict[str, tuple[bool, bool]] = {
    **dict.fromkeys(("yes", "true", "1", "f", "ft"), (True, False)),
    **dict.fromkeys(("-1", "reverse", "t", "tf"), (False, True)),
    **dict.fromkeys(("no", "false", "0", "b", ""), (True, True)),
    "n": (False, False),
}
_ONEWAY_HELP = "use yes/no/-1 (OSM), FT/TF/B/N (ESRI) or F/T/B (Geofabrik)"
_SPEED_UNITS = {"kph": 1.0, "km/h": 1.0, "kmh": 1.0, "mph": 1.609344}
_NO_SPEED_WORDS = frozenset({"", "none", "signals", "variable", "unknown", "nan", "null", "na", "n/a", "-"})
_NETWORK_TYPES = ("drive", "walk", "all")
_SPEED_SOURCES = ("speed_column", "class", "default", "walk")
_LINE_TYPES = {1, 2, 5}  # LineString, LinearRing, MultiLineString
_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


# ---------------------------------------------------------------------- options
@dataclass(frozen=True)
class LineOptions:
    """How a road line layer becomes a network (validated on creation).

    Attributes
    ----------
    layer : str or None
        Layer of a multi-layer file (GeoPackage); required when it has several.
    snap_tolerance_m : float
        Loose line ends within this distance (metres) of a vertex or a line join it; 0 joins
        shared vertices only. At most 50 m.
    split_crossings : bool
        Join lines where they cross without a shared vertex (off by default: bridges).
    oneway_column, speed_column, class_column : str or None
        Attribute columns for direction, speed and road class (any case).
    speed_unit : str
        Unit of plain numbers in ``speed_column``: 'kph' (also 'km/h') or 'mph'.
    class_speeds : dict or str or path or None
        Class → km/h entries overriding :data:`CLASS_SPEEDS_KPH`; a mapping, or a CSV
        (``class,speed_kph``) / TOML (``class = speed``) file. Stored as a dict.
    default_speed_kph : float
        Speed of lines with neither a speed nor a known class.
    network_type : str
        'drive' (one-ways honoured) or 'walk' (both ways at ``walk_speed_kph``); 'all' = drive.
    walk_speed_kph : float
        Walking speed, km/h (half on steps).
    """

    layer: str | None = None
    snap_tolerance_m: float = DEFAULT_SNAP_TOLERANCE_M
    split_crossings: bool = False
    oneway_column: str | None = None
    speed_column: str | None = None
    speed_unit: str = "kph"
    class_column: str | None = None
    class_speeds: Any = None
    default_speed_kph: float = DEFAULT_SPEED_KPH
    network_type: str = "drive"
    walk_speed_kph: float = _osm.WALK_SPEED_KPH

    def __post_init__(self) -> None:
        def bad(name: str, value: Any, what: str) -> InputError:
            flag = "--" + name.replace("_", "-")
            return InputError(f"{name} ({flag}) = {value!r}: {what}")

        for name in ("layer", "oneway_column", "speed_column", "class_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise bad(name, value, "give a name (text), or leave it out")
        tol = _number(self.snap_tolerance_m)
        if tol is None or not 0 <= tol <= MAX_SNAP_TOLERANCE_M:
            raise bad(
                "snap_tolerance_m",
                self.snap_tolerance_m,
                f"give metres from 0 to {MAX_SNAP_TOLERANCE_M:g} (default {DEFAULT_SNAP_TOLERANCE_M:g})",
            )
        object.__setattr__(self, "snap_tolerance_m", tol)
        if not isinstance(self.split_crossings, (bool, np.bool_)):
            raise bad("split_crossings", self.split_crossings, "give true or false")
        unit = str(self.speed_unit).strip().lower()
        if unit not in _SPEED_UNITS:
            raise bad("speed_unit", self.speed_unit, "use 'kph' (km/h) or 'mph'")
        object.__setattr__(self, "speed_unit", "mph" if unit == "mph" else "kph")
        for name in ("default_speed_kph", "walk_speed_kph"):
            value = _number(getattr(self, name))
            if value is None or not 0 < value <= MAX_SPEED_KPH:
                raise bad(name, getattr(self, name), f"give a speed above 0 and at most {MAX_SPEED_KPH:g} km/h")
            object.__setattr__(self, name, value)
        if self.network_type not in _NETWORK_TYPES:
            raise bad("network_type", self.network_type, "use 'drive' or 'walk'")
        if self.class_speeds is not None:
            table = self.class_speeds
            if isinstance(table, (str, os.PathLike)):
                table = read_class_speeds(table)
            elif isinstance(table, Mapping):
                table = _check_class_table(table, "class_speeds")
            else:
                raise bad("class_speeds", table, "give a table of class = km/h, or a CSV/TOML file")
            object.__setattr__(self, "class_speeds", table)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, where: str = "options", base_dir: Path | None = None):
        """Options from a mapping (a TOML table): unknown keys are an error naming them.

        ``class_speeds`` may be an inline table or a file path (relative to ``base_dir``).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        values = dict(values)
        speeds = values.get("class_speeds")
        if isinstance(speeds, str) and base_dir is not None:
            values["class_speeds"] = Path(base_dir) / speeds
        try:
            return cls(**values)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LineOptions:
        """Options from a TOML file: keys at the top level or in a ``[network]`` table."""
        path = Path(path)
        raw = _read_toml(path)
        table = raw.get("network", raw)
        if not isinstance(table, dict):
            raise InputError(f"{path}: [network] must be a table of settings")
        return cls.from_dict(table, where=str(path), base_dir=path.parent)

    # ------------------------------------------------------------------ use
    @property
    def line_specific(self) -> list[str]:
        """Names of the settings changed from their defaults that only a line layer uses."""
        default = LineOptions()
        skip = {"network_type", "walk_speed_kph"}
        return [
            f.name for f in fields(self) if f.name not in skip and getattr(self, f.name) != getattr(default, f.name)
        ]

    def replace(self, **changes: Any) -> LineOptions:
        """A copy with some settings changed (validated again)."""
        return LineOptions(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({one_line(exc)})") from None


def _check_class_table(table: Mapping[Any, Any], where: str) -> dict[str, float]:
    out = {}
    for key, value in table.items():
        speed = _number(value)
        if speed is None or not 0 <= speed <= MAX_SPEED_KPH:
            raise InputError(
                f"{where}: class {str(key)!r} has speed {value!r}; give km/h from 0 (not a road) to {MAX_SPEED_KPH:g}"
            )
        out[str(key).strip().lower()] = speed
    return out


def read_class_speeds(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read a class → speed table (km/h): CSV with columns ``class`` and ``speed_kph`` (or two columns,
    class first), or TOML ``class = speed`` (top level or under ``[class_speeds]``). 0 = not a road.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: class speeds file not found; give a CSV (class,speed_kph) or TOML file")
    if path.suffix.lower() == ".toml":
        raw = _read_toml(path)
        table = raw.get("class_speeds", raw)
        if not isinstance(table, dict):
            raise InputError(f"{path}: [class_speeds] must be a table of class = km/h")
        return _check_class_table(table, str(path))
    try:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot read the class speeds as CSV ({one_line(exc)})") from None
    cls_col = find_column(frame.columns, ("class", "fclass", "highway", "road_class"))
    speed_col = find_column(frame.columns, ("speed_kph", "speed", "kph", "km/h"))
    if cls_col is None or speed_col is None:
        if frame.shape[1] != 2:
            raise InputError(f"{path}: give two columns, class and speed_kph (km/h)")
        cls_col, speed_col = frame.columns
    speeds = pd.to_numeric(frame[speed_col].str.strip(), errors="coerce")
    bad = ~(speeds.between(0, MAX_SPEED_KPH))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}: row {row + 1}, column {str(speed_col)!r}: {show(frame[speed_col].iloc[row])} is not a speed; "
            f"give km/h from 0 (not a road) to {MAX_SPEED_KPH:g}"
        )
    return dict(zip(frame[cls_col].str.strip().str.lower(), speeds.astype(float), strict=True))


# ---------------------------------------------------------------------- reading
def read_lines(
    path: str | os.PathLike[str], layer: str | None = None, *, options: LineOptions | None = None, **settings: Any
) -> RoadNetwork:
    """Read a road line layer into a :class:`~havenmap.network.RoadNetwork`.

    Parameters
    ----------
    path
        ``.shp``, ``.gpkg``, ``.geojson``/``.json``, ``.parquet``/``.geoparquet``
        (GeoParquet) or ``.fgb``, in any CRS.
    layer
        Layer of a multi-layer file (required when a GeoPackage has several).
    options
        A :class:`LineOptions`; ``settings`` (its field names) change single settings.

    Returns
    -------
    RoadNetwork
        Its report: :func:`network_report`. Errors (a layer of points or polygons, an empty
        layer, no CRS, a text speed, an unknown one-way value, ...) raise
        :class:`~havenmap.errors.NetworkError` with one line naming the file, row and column.
    """
    opts = options or LineOptions()
    if layer is not None or settings:
        opts = opts.replace(**({"layer": layer} if layer is not None else {}), **settings)
    label = os.fspath(path)
    frame = _read_layer(Path(label), opts)
    return _build(frame, opts, label)


def _read_layer(path: Path, opts: LineOptions) -> gpd.GeoDataFrame:
    if not path.exists():
        raise NetworkError(f"{path}: network file not found")
    if path.is_dir():
        raise NetworkError(f"{path}: is a folder; give the road layer file inside it")
    if not path.name.lower().endswith(LINE_SUFFIXES):
        raise NetworkError(f"{path}: not a road line layer; use {', '.join(LINE_SUFFIXES)}")
    if path.suffix.lower() in (".parquet", ".geoparquet"):
        return _read_parquet(path, opts)
    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises DataSourceError and friends for damaged files
        raise NetworkError(f"{path}: cannot be read as a vector layer ({one_line(exc)})") from None
    names = [str(n) for n in layers[:, 0]] if len(layers) else []
    listing = ", ".join(f"{n} ({g or 'no geometry'})" for n, g in (layers if len(layers) else []))
    if opts.layer is None and len(names) > 1:
        raise NetworkError(f"{path}: has {len(names)} layers: {listing}; choose the road lines with --layer")
    if opts.layer is not None and opts.layer not in names:
        raise NetworkError(f"{path}: has no layer {opts.layer!r}; its layers: {listing}")
    if not names:
        raise NetworkError(f"{path}: holds no layer; give a file with road lines")
    layer = opts.layer or names[0]
    info = pyogrio.read_info(path, layer=layer)
    where = f"{path}" + (f" (layer {layer!r})" if len(names) > 1 else "")
    kind = str(info.get("geometry_type") or "")
    if kind and "line" not in kind.lower() and kind.lower() not in ("unknown", "geometry", "geometrycollection"):
        raise NetworkError(f"{where}: holds {kind} geometries, not road lines; give a LineString layer")
    if info.get("features", -1) == 0:
        raise NetworkError(f"{where}: the layer is empty (no features); give a layer with road lines")
    columns = _wanted_columns(list(info["fields"]), opts, where)
    try:
        frame = gpd.read_file(path, layer=layer, columns=columns, engine="pyogrio")
    except Exception as exc:  # damaged files
        raise NetworkError(f"{where}: cannot be read ({one_line(exc)})") from None
    frame.attrs["where"] = where
    return frame


def _read_parquet(path: Path, opts: LineOptions) -> gpd.GeoDataFrame:
    import pyarrow.parquet as pq

    if opts.layer is not None:
        raise NetworkError(f"{path}: GeoParquet files have no layers; leave out --layer")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError variants
        raise NetworkError(f"{path}: cannot be read as Parquet ({one_line(exc)})") from None
    if b"geo" not in (schema.metadata or {}):
        raise NetworkError(f"{path}: a Parquet file without GeoParquet geometry; write it with geopandas to_parquet")
    columns = _wanted_columns([n for n in schema.names], opts, str(path))
    try:
        frame = gpd.read_parquet(path, columns=[*columns, *_geometry_columns(schema)])
    except Exception as exc:  # damaged or unsupported files
        raise NetworkError(f"{path}: cannot be read as GeoParquet ({one_line(exc)})") from None
    frame.attrs["where"] = str(path)
    return frame


def _geometry_columns(schema) -> list[str]:
    import json

    meta = json.loads(schema.metadata[b"geo"])
    return list(meta.get("columns", {})) or ["geometry"]


def _wanted_columns(available: list[str], opts: LineOptions, where: str) -> list[str]:
    """The attribute columns to read: the ones the options name (checked) plus name and id."""
    wanted = []
    for option in ("oneway_column", "speed_column", "class_column"):
        name = getattr(opts, option)
        if name is None:
            continue
        found = find_column(available, (), explicit=name)
        if found is None:
            shown = ", ".join(map(str, available[:30])) or "none"
            raise NetworkError(f"{where}: no column {name!r} for --{option.replace('_', '-')}; its columns: {shown}")
        wanted.append(found)
    for names in (("name",), ("osm_id", "osmid", "id")):
        found = find_column(available, names)
        if found is not None:
            wanted.append(found)
    for option, (names, _) in _HINT_COLUMNS.items():
        found = find_column(available, names) if getattr(opts, option) is None else None
        if found is not None:
            wanted.append(found)
    return list(dict.fromkeys(wanted))


#: Columns that look like attributes, per option: reported as hints when the option is not given.
_HINT_COLUMNS = {
    "oneway_column": (("oneway", "one_way", "direction", "dir_travel"), "directions"),
    "speed_column": (("maxspeed", "max_speed", "speed", "speed_kph", "speedlimit"), "speeds"),
    "class_column": (("fclass", "highway", "road_class", "class", "type"), "road classes"),
}


# ---------------------------------------------------------------------- building
def from_lines(
    gdf: gpd.GeoDataFrame,
    *,
    snap_tolerance_m: float = DEFAULT_SNAP_TOLERANCE_M,
    split_crossings: bool = False,
    oneway_column: str | None = None,
    speed_column: str | None = None,
    speed_unit: str = "kph",
    class_column: str | None = None,
    class_speeds: Mapping[str, float] | str | os.PathLike[str] | None = None,
    default_speed_kph: float = DEFAULT_SPEED_KPH,
    network_type: str = "drive",
    walk_speed_kph: float = _osm.WALK_SPEED_KPH,
    source: str = "<memory>",
) -> RoadNetwork:
    """Build a :class:`~havenmap.network.RoadNetwork` from a GeoDataFrame of road lines.

    Parameters are those of :class:`LineOptions` (topology, direction, speed rules: see the
    module docstring); ``source`` names the frame in messages and in ``RoadNetwork.source``.
    The frame is not changed.

    Returns
    -------
    RoadNetwork
        In the local UTM CRS; ``edge_attrs`` columns ``row`` (1-based feature row),
        ``osmid`` (an ``osm_id``/``osmid``/``id`` column, else the row), ``highway`` (the
        class), ``name``, ``oneway``, ``maxspeed`` (the speed column's value) and
        ``speed_source`` ('speed_column', 'class', 'default' or 'walk').
    """
    opts = LineOptions(
        snap_tolerance_m=snap_tolerance_m,
        split_crossings=split_crossings,
        oneway_column=oneway_column,
        speed_column=speed_column,
        speed_unit=speed_unit,
        class_column=class_column,
        class_speeds=class_speeds,
        default_speed_kph=default_speed_kph,
        network_type=network_type,
        walk_speed_kph=walk_speed_kph,
    )
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise InputError(f"{source}: from_lines needs a GeoDataFrame of road lines, not {type(gdf).__name__}")
    frame = gdf.copy(deep=False)
    frame.attrs["where"] = source
    _wanted_columns(list(frame.columns), opts, source)  # named columns exist
    return _build(frame, opts, source)


@dataclass
class _Rows:
    """Per-feature-row attributes of a layer: directions, speeds and where they came from."""

    forward: np.ndarray
    backward: np.ndarray
    speed: np.ndarray
    keep: np.ndarray
    unknown_classes: dict[str, int]
    left_out: dict[str, int]
    attrs: pd.DataFrame
    left_out_classes: dict[str, int]


def _build(frame: gpd.GeoDataFrame, opts: LineOptions, source: str) -> RoadNetwork:
    where = frame.attrs.get("where", source)
    if len(frame) == 0:
        raise NetworkError(f"{where}: the layer is empty (no features); give a layer with road lines")
    crs = _source_crs(frame, where)
    geoms = np.asarray(frame.geometry.array)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    _check_types(geoms, empty, where)
    if empty.all():
        raise NetworkError(f"{where}: every geometry is empty; give a layer with road lines")
    rows = _row_attributes(frame, opts, where)
    use = np.flatnonzero(~empty & rows.keep)
    if len(use) == 0:
        raise NetworkError(f"{where}: no line is left for a {opts.network_type} network ({_describe(rows.left_out)})")

    paths, to_lonlat, utm = _project(geoms[use], use, crs, where)
    paths, topology = _topology(paths, opts, to_lonlat, where)
    paths, pid, seg_start, seg_end, seg_row, forward, backward, duplicates = _pieces(paths, rows)
    zero_length = topology.pop("zero_length_pieces")
    attrs = rows.attrs.iloc[seg_row].reset_index(drop=True)
    attrs["oneway"] = ~(forward & backward)
    net = assemble_network(
        pid,
        paths.lonlat,
        paths.xy,
        seg_start,
        seg_end,
        forward,
        backward,
        rows.speed[seg_row],
        attrs,
        crs=utm,
        network_type=opts.network_type,
    )
    net.node_id = np.arange(net.n_nodes, dtype=np.int64)
    net.source = source
    by_source = net.edge_attrs["speed_source"].value_counts()
    net.build_info = {
        "kind": "lines",
        "layer": opts.layer,
        "source_crs": crs.to_string(),
        "lines": len(frame),
        "snap_tolerance_m": opts.snap_tolerance_m,
        **topology,
        "dropped": {
            "empty_geometries": int(empty.sum()),
            "zero_length_pieces": zero_length,
            "duplicate_pieces": duplicates,
            **{f"left_out_{k}": v for k, v in rows.left_out.items()},
        },
        "speed_sources": {name: int(by_source[name]) for name in _SPEED_SOURCES if by_source.get(name, 0) > 0},
        "unknown_classes": rows.unknown_classes,
        "left_out_classes": rows.left_out_classes,
        "hints": _hints(frame, opts),
    }
    return net


def _topology(paths: _lines.Paths, opts: LineOptions, to_lonlat, where: str) -> tuple[_lines.Paths, dict[str, Any]]:
    """Clean the paths and join them: repeated vertices, loose ends within the tolerance, crossings."""
    paths, zero = _lines.drop_repeated(paths)
    paths, joins = _lines.join_ends(paths, opts.snap_tolerance_m, to_lonlat)
    paths, zero_after = _lines.drop_repeated(paths)
    paths, cross = _lines.crossings(paths, opts.split_crossings, to_lonlat)
    paths, _ = _lines.drop_repeated(paths)
    if paths.n_paths == 0:
        raise NetworkError(f"{where}: every line has zero length; check the layer's geometries")
    return paths, {
        "ends_joined": joins.ends_joined,
        "max_join_m": joins.max_move_m,
        "crossings": cross.places,
        "split_crossings": cross.split,
        "zero_length_pieces": zero + zero_after,
    }


def _pieces(paths: _lines.Paths, rows: _Rows):
    """Road pieces between nodes, each once (duplicates merged), with their directions and feature rows.

    Returns the paths left, their point ids, and per piece its first and last vertex
    position, feature row, directions; plus how many duplicates were merged.

    Whole lines drawn twice are merged first, so their shared vertices do not become nodes;
    then pieces (overlapping stretches between the same nodes).
    """
    pid, _ = _lines.point_ids(paths.xy)
    keep, path_fwd, path_bwd = _lines.merge_duplicates(
        pid, paths.offsets[:-1], paths.offsets[1:] - 1, rows.forward[paths.row], rows.backward[paths.row]
    )
    duplicates = int((~keep).sum())
    pid = pid[np.repeat(keep, paths.counts)]
    paths, path_fwd, path_bwd = paths.subset(keep), path_fwd[keep], path_bwd[keep]
    seg_start, seg_end, seg_path = split_paths(pid, paths.offsets)
    keep, forward, backward = _lines.merge_duplicates(pid, seg_start, seg_end, path_fwd[seg_path], path_bwd[seg_path])
    duplicates += int((~keep).sum())
    return (
        paths,
        pid,
        seg_start[keep],
        seg_end[keep],
        paths.row[seg_path[keep]],
        forward[keep],
        backward[keep],
        duplicates,
    )


def _source_crs(frame: gpd.GeoDataFrame, where: str) -> pyproj.CRS:
    if frame.crs is None:
        raise NetworkError(
            f"{where}: has no CRS (coordinate reference system), so its roads cannot be placed; "
            "add one (a .prj beside a shapefile, or set it in QGIS) and try again"
        )
    try:
        crs = pyproj.CRS.from_user_input(frame.crs)
    except pyproj.exceptions.CRSError as exc:
        raise NetworkError(f"{where}: its CRS cannot be read ({one_line(exc)}); reproject the layer") from None
    if crs.is_engineering or not (crs.is_geographic or crs.is_projected):
        raise NetworkError(
            f"{where}: its CRS ({crs.name}) is not tied to the Earth, so its roads cannot be placed; "
            "reproject the layer to a known CRS such as EPSG:4326"
        )
    try:
        pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    except pyproj.exceptions.ProjError as exc:
        raise NetworkError(f"{where}: its CRS ({crs.name}) cannot be converted to longitude/latitude ({exc})") from None
    return crs


def _check_types(geoms: np.ndarray, empty: np.ndarray, where: str) -> None:
    kind = shapely.get_type_id(geoms)
    bad = ~empty & ~np.isin(kind, list(_LINE_TYPES))
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    name = _TYPE_NAMES.get(int(kind[first]), "unknown geometry")
    if bad.sum() == (~empty).sum():
        raise NetworkError(f"{where}: holds {name} geometries, not road lines; give a LineString layer")
    more = int(bad.sum()) - 1
    raise NetworkError(
        f"{where}: row {first + 1} is a {name}, not a line"
        + (f" (and {more} more rows)" if more else "")
        + "; give a layer of road lines only"
    )


def _project(geoms: np.ndarray, rows: np.ndarray, crs: pyproj.CRS, where: str):
    """Explode lines into vertex paths in lon/lat and local UTM metres."""
    if (shapely.get_type_id(geoms) == 5).any():  # MultiLineStrings: one path per part
        parts, part_of = shapely.get_parts(geoms, return_index=True)
    else:
        parts, part_of = geoms, np.arange(len(geoms))
    coords, coord_of = shapely.get_coordinates(parts, return_index=True)
    counts = np.bincount(coord_of, minlength=len(parts))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if crs.equals("EPSG:4326") or crs.to_epsg() == 4326:
        lonlat = coords
    else:
        to_geo = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lonlat = np.column_stack(to_geo.transform(coords[:, 0], coords[:, 1]))
    outside = ~(np.isfinite(lonlat).all(axis=1) & (np.abs(lonlat[:, 0]) <= 180) & (np.abs(lonlat[:, 1]) <= 90))
    if outside.any():
        row = int(rows[part_of[coord_of[np.flatnonzero(outside)[0]]]]) + 1
        raise NetworkError(
            f"{where}: row {row} has coordinates outside the Earth in its CRS ({crs.name}); "
            "is the CRS right? (metres read as degrees, or x/y swapped)"
        )
    ends = np.concatenate([offsets[:-1], offsets[1:] - 1])
    centre = lonlat[ends].mean(axis=0)
    utm = utm_crs(float(centre[0]), float(centre[1]))
    forward = pyproj.Transformer.from_crs("EPSG:4326", utm, always_xy=True)
    back = pyproj.Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    xy = np.column_stack(forward.transform(lonlat[:, 0], lonlat[:, 1]))

    def to_lonlat(points: np.ndarray) -> np.ndarray:
        return np.column_stack(back.transform(points[:, 0], points[:, 1]))

    paths = _lines.Paths(xy, np.ascontiguousarray(lonlat, dtype=np.float64), offsets, rows[part_of])
    return paths, to_lonlat, utm


# ---------------------------------------------------------------------- attributes
def _row_attributes(frame: gpd.GeoDataFrame, opts: LineOptions, where: str) -> _Rows:
    """Directions, speeds and the kept rows of every feature, checked before any geometry work."""
    n = len(frame)
    columns = list(frame.columns)
    walk = opts.network_type == "walk"
    forward = np.ones(n, dtype=bool)
    backward = np.ones(n, dtype=bool)
    no_travel = np.zeros(n, dtype=bool)
    if opts.oneway_column is not None:
        col = find_column(columns, (), explicit=opts.oneway_column)
        along, against = _parse_oneway(frame[col], col, where)
        no_travel = ~along & ~against
        if not walk:
            forward, backward = along, against

    classes = None
    if opts.class_column is not None:
        col = find_column(columns, (), explicit=opts.class_column)
        classes = frame[col].astype("string").str.strip().str.lower().fillna("").to_numpy(dtype=object)

    speed = np.full(n, np.nan)
    source = np.full(n, _SPEED_SOURCES.index("default"), dtype=np.int8)
    by_class_out = np.zeros(n, dtype=bool)
    unknown: dict[str, int] = {}
    if opts.speed_column is not None:  # checked even where walking ignores it
        col = find_column(columns, (), explicit=opts.speed_column)
        speed = _parse_speeds(frame[col], col, opts.speed_unit, where)
        source[np.isfinite(speed)] = _SPEED_SOURCES.index("speed_column")
    if walk:
        speed[:] = opts.walk_speed_kph
        source[:] = _SPEED_SOURCES.index("walk")
        if classes is not None:
            speed[classes == "steps"] = opts.walk_speed_kph / 2
            by_class_out = pd.Series(classes).isin(WALK_EXCLUDED_CLASSES).to_numpy()
    else:
        if classes is not None:
            table = {**CLASS_SPEEDS_KPH, **(opts.class_speeds or {})}
            codes, uniques = pd.factorize(classes)
            by_value = np.array([table.get(u, np.nan) for u in uniques], dtype=np.float64)
            class_speed = by_value[codes] if len(uniques) else np.full(n, np.nan)
            by_class_out = class_speed == 0
            fill = ~np.isfinite(speed) & (class_speed > 0)
            speed[fill] = class_speed[fill]
            source[fill] = _SPEED_SOURCES.index("class")
            missing = ~np.isfinite(class_speed) & (classes != "")
            unknown = _top_counts(classes[missing])
        rest = ~np.isfinite(speed)
        speed[rest] = opts.default_speed_kph
    left_out_classes = _top_counts(classes[by_class_out & ~no_travel]) if classes is not None else {}

    attrs = pd.DataFrame({"row": np.arange(1, n + 1, dtype=np.int64)})
    id_col = find_column(columns, ("osm_id", "osmid", "id"))
    attrs["osmid"] = frame[id_col].to_numpy() if id_col is not None else attrs["row"].to_numpy()
    attrs["highway"] = pd.array(classes, dtype="string") if classes is not None else pd.array([None] * n, "string")
    name_col = find_column(columns, ("name",))
    attrs["name"] = (
        frame[name_col].astype("string").to_numpy() if name_col is not None else pd.array([None] * n, dtype="string")
    )
    if opts.speed_column is not None:
        attrs["maxspeed"] = frame[find_column(columns, (), explicit=opts.speed_column)].astype("string").to_numpy()
    attrs["speed_source"] = pd.Categorical.from_codes(source, categories=list(_SPEED_SOURCES))
    return _Rows(
        forward=forward,
        backward=backward,
        speed=speed,
        keep=~no_travel & ~by_class_out,
        unknown_classes=unknown,
        left_out={"no_travel": int(no_travel.sum()), "by_class": int((by_class_out & ~no_travel).sum())},
        attrs=attrs,
        left_out_classes=left_out_classes,
    )


def _top_counts(values: np.ndarray, limit: int = 10) -> dict[str, int]:
    if len(values) == 0:
        return {}
    counts = pd.Series(values).value_counts()
    return {str(k): int(v) for k, v in counts.head(limit).items()}


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def _parse_oneway(series: pd.Series, column: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(along the line, against it) for every row; an unknown value raises with its row."""
    if pd.api.types.is_bool_dtype(series):
        flag = series.fillna(False).to_numpy(dtype=bool)
        return np.ones(len(series), dtype=bool), ~flag
    if pd.api.types.is_numeric_dtype(series):
        numbers = series.to_numpy(dtype=np.float64)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        text = np.where(whole, np.nan_to_num(numbers).astype(np.int64).astype(str), "")
        text = np.where(np.isfinite(numbers) & ~whole, series.astype(str).to_numpy(), text)
        text = pd.Series(text)
    else:
        text = series.astype("string").str.strip().str.lower().fillna("")
    codes, uniques = pd.factorize(text)
    known = np.array([u in ONEWAY_VALUES for u in uniques], dtype=bool)
    if not known.all():
        row = _first_row(~known[codes])
        raise NetworkError(
            f"{where}: row {row}, column {str(column)!r}: {show(series.iloc[row - 1])} is not a one-way value; "
            + _ONEWAY_HELP
        )
    pairs = np.array([ONEWAY_VALUES[u] for u in uniques], dtype=bool).reshape(-1, 2)
    return pairs[codes, 0], pairs[codes, 1]


def _parse_speeds(series: pd.Series, column: object, unit: str, where: str) -> np.ndarray:
    """km/h for every row (NaN where unknown: empty, 0); text that is no speed raises with its row."""
    factor = _SPEED_UNITS[unit]
    hint = "give km/h numbers (or values such as '30 mph'); 0 or empty where unknown"
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64) * factor
        bad = (values < 0) | (values > MAX_SPEED_KPH)
        if bad.any():
            row = _first_row(bad)
            raise NetworkError(
                f"{where}: row {row}, column {str(column)!r}: {series.iloc[row - 1]!r} is not a road speed; {hint}"
            )
        values[values == 0] = np.nan
        return values
    text = series.astype("string").str.strip().str.lower().fillna("")
    codes, uniques = pd.factorize(text)
    parsed = np.array([_speed_value(u, factor) for u in uniques], dtype=np.float64)  # distinct values only
    bad = np.isinf(parsed)
    if bad.any():
        row = _first_row(bad[codes])
        raise NetworkError(
            f"{where}: row {row}, column {str(column)!r}: {show(series.iloc[row - 1])} is not a speed; {hint}"
        )
    return parsed[codes] if len(uniques) else np.full(len(series), np.nan)


def _speed_value(text: str, factor: float) -> float:
    """km/h of one speed text; NaN = unknown, inf = not a speed."""
    if text in _NO_SPEED_WORDS:
        return np.nan
    try:
        value = float(text) * factor
    except ValueError:
        value = _osm.parse_maxspeed(text)
        if not np.isfinite(value):
            return np.inf
    if value < 0 or value > MAX_SPEED_KPH:
        return np.inf
    return np.nan if value == 0 else value


def _hints(frame: gpd.GeoDataFrame, opts: LineOptions) -> list[str]:
    """Columns that look like the attributes the user did not name, and what leaving them out means."""
    columns = list(frame.columns)
    hints = []
    for option, (names, what) in _HINT_COLUMNS.items():
        if getattr(opts, option) is not None:
            continue
        found = find_column(columns, names)
        if found is not None:
            hints.append(f"column {str(found)!r} looks like {what}: use --{option.replace('_', '-')} {found}")
    if opts.oneway_column is None:
        hints.append("no --oneway-column: every line is two-way")
    return hints


def _describe(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in counts.items() if v) or "nothing usable"


# ---------------------------------------------------------------------- osmnx-style node/edge frames
def from_gdfs(nodes: gpd.GeoDataFrame, edges: gpd.GeoDataFrame) -> RoadNetwork:
    """Build a :class:`~havenmap.network.RoadNetwork` from an osmnx-style pair of GeoDataFrames.

    The pair ``ox.graph_to_gdfs(G)`` returns (the input of ``ox.graph_from_gdfs``): ``nodes``
    indexed by node id with ``x``, ``y`` (else the point geometry); ``edges`` indexed (or with
    columns) ``u``, ``v``, ``key``, with ``geometry`` (straight from u to v where missing) and
    optionally ``length`` (m), ``speed_kph``, ``travel_time`` (s), ``maxspeed``, ``highway``,
    ``name``, ``osmid``, ``oneway``. Edges are directed as given, as :func:`~havenmap.network.from_graph`
    does; a geographic CRS is projected to local UTM, a projected one kept. Vectorised.
    """
    for what, frame in (("nodes", nodes), ("edges", edges)):
        if not isinstance(frame, gpd.GeoDataFrame) or len(frame) == 0:
            raise NetworkError(f"from_gdfs: {what} must be a non-empty GeoDataFrame (osmnx graph_to_gdfs)")
    frame_crs = edges.crs or nodes.crs
    if frame_crs is None:
        raise NetworkError("from_gdfs: the frames have no CRS; set one (osmnx frames carry it)")
    graph_crs = pyproj.CRS.from_user_input(frame_crs)
    try:
        node_id = np.asarray(nodes.index, dtype=np.int64)
    except (TypeError, ValueError):
        raise NetworkError("from_gdfs: node ids (the nodes index) must be integers, as osmnx's osmid") from None
    if {"x", "y"} <= set(nodes.columns):
        raw = nodes[["x", "y"]].to_numpy(dtype=np.float64)
    else:
        raw = shapely.get_coordinates(nodes.geometry.to_numpy())
    table = edges.reset_index() if {"u", "v"} - set(edges.columns) else edges
    for column in ("u", "v"):
        if column not in table.columns:
            raise NetworkError(f"from_gdfs: edges need '{column}' (index level or column), as osmnx's edges frame")
    order = np.argsort(node_id)

    def locate(ids: pd.Series, column: str) -> np.ndarray:
        values = ids.to_numpy(dtype=np.int64)
        pos = np.clip(np.searchsorted(node_id, values, sorter=order), 0, len(order) - 1)
        found = node_id[order[pos]] == values
        if not found.all():
            raise NetworkError(f"from_gdfs: edge {column} {values[~found][0]} is not in the nodes frame")
        return order[pos]

    edge_u, edge_v = locate(table["u"], "u"), locate(table["v"], "v")
    keys = table["key"].to_numpy(dtype=np.int64) if "key" in table.columns else np.zeros(len(table), np.int64)

    if graph_crs.is_geographic:
        lonlat = raw
        crs = utm_crs(*lonlat.mean(axis=0))
        to_xy = pyproj.Transformer.from_crs(graph_crs, crs, always_xy=True)
        xy = np.column_stack(to_xy.transform(raw[:, 0], raw[:, 1]))
    else:
        crs, xy, to_xy = graph_crs, raw, None
        back = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lonlat = np.column_stack(back.transform(raw[:, 0], raw[:, 1]))

    geoms = table.geometry.to_numpy() if "geometry" in table.columns else np.full(len(table), None)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    straight = shapely.linestrings(
        np.stack([raw[edge_u], raw[edge_v]], axis=1).reshape(-1, 2), indices=np.repeat(np.arange(len(table)), 2)
    )
    geoms = np.where(missing, straight, geoms)
    coords, of = shapely.get_coordinates(geoms, return_index=True)
    if to_xy is not None:
        coords = np.column_stack(to_xy.transform(coords[:, 0], coords[:, 1]))
    counts = np.bincount(of, minlength=len(table))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # geometries run from u to v (osmnx); turn round those drawn the other way
    first, last = coords[offsets[:-1]], coords[offsets[1:] - 1]
    flip = np.hypot(*(first - xy[edge_v]).T) + np.hypot(*(last - xy[edge_u]).T) < np.hypot(
        *(first - xy[edge_u]).T
    ) + np.hypot(*(last - xy[edge_v]).T)
    within = np.arange(len(coords)) - np.repeat(offsets[:-1], counts)
    pos = np.repeat(offsets[:-1], counts) + np.where(
        np.repeat(flip, counts), np.repeat(counts, counts) - 1 - within, within
    )
    geom_xy = coords[pos]

    step = np.hypot(*np.diff(geom_xy, axis=0).T)
    step[offsets[1:-1] - 1] = 0.0  # no step between consecutive edges
    cum = np.concatenate([[0.0], np.cumsum(step)])
    planar = cum[offsets[1:] - 1] - cum[offsets[:-1]]
    length = _column_numbers(table, "length", planar)
    speed = _column_numbers(table, "speed_kph", np.full(len(table), np.nan))
    no_speed = ~np.isfinite(speed) | (speed <= 0)
    if no_speed.any():
        speed[no_speed] = _frame_speeds(table)[no_speed]
    time = _column_numbers(table, "travel_time", length / (speed / 3.6))

    attrs = pd.DataFrame(
        {
            "osmid": _first_values(table, "osmid"),
            "highway": pd.array(_first_values(table, "highway"), dtype="string"),
            "name": pd.array(_first_values(table, "name"), dtype="string"),
            "oneway": pd.Series(_first_values(table, "oneway")).fillna(False).astype(bool).to_numpy(),
        }
    )
    return RoadNetwork(
        crs=crs,
        network_type="graph",
        node_id=node_id,
        node_xy=xy,
        node_lonlat=lonlat,
        edge_u=edge_u,
        edge_v=edge_v,
        edge_key=keys,
        edge_length=length,
        edge_time=time,
        edge_speed=speed,
        edge_twin=_lines.find_twins(edge_u, edge_v, geom_xy, offsets),
        geom_offsets=offsets,
        geom_xy=geom_xy,
        edge_attrs=attrs,
        source="<gdfs>",
    )


def _column_numbers(table: pd.DataFrame, column: str, fallback: np.ndarray) -> np.ndarray:
    if column not in table.columns:
        return np.asarray(fallback, dtype=np.float64).copy()
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    return np.where(np.isfinite(values), values, fallback)


def _first_values(table: pd.DataFrame, column: str) -> np.ndarray:
    """A column's values with lists (osmnx's merged edges) reduced to their first element."""
    if column not in table.columns:
        return np.full(len(table), None, dtype=object)
    values = table[column].reset_index(drop=True)
    if values.dtype != object:
        return values.to_numpy()
    flat = values.explode()  # lists become one row each, under their row's index
    return flat[~flat.index.duplicated()].to_numpy(dtype=object)


def _frame_speeds(table: pd.DataFrame) -> np.ndarray:
    """Speeds (km/h) from ``maxspeed`` (the mean of several), else the road type, else the default (as from_graph)."""
    n = len(table)
    speed = np.full(n, np.nan)
    if "maxspeed" in table.columns:
        flat = table["maxspeed"].reset_index(drop=True).explode()
        codes, uniques = pd.factorize(flat.astype("string").fillna(""))
        parsed = np.array([_osm.parse_maxspeed(u) for u in uniques], dtype=np.float64)  # distinct values only
        if len(uniques):
            speed = pd.Series(parsed[codes], index=flat.index).groupby(level=0).mean().to_numpy()
    highway = pd.Series(_first_values(table, "highway")).astype("string").fillna("")
    codes, uniques = pd.factorize(highway)
    by_type = np.array([_osm.DRIVE_SPEED_KPH.get(u, _osm.DEFAULT_DRIVE_SPEED_KPH) for u in uniques])
    fallback = by_type[codes] if len(uniques) else np.full(n, _osm.DEFAULT_DRIVE_SPEED_KPH)
    bad = ~np.isfinite(speed) | (speed <= 0)
    speed[bad] = fallback[bad]
    return speed


# ---------------------------------------------------------------------- the network report
@dataclass(frozen=True)
class NetworkReport:
    """What a network holds and what building it did — why a defender may look cut off.

    Attributes
    ----------
    source, layer, network_type, crs, source_crs
        The file (and layer), 'drive'/'walk', the projected CRS used and the layer's own CRS.
    nodes, edges : int
        Graph nodes (intersections and line ends) and directed edges.
    road_km : float
        Length of road, km (each two-way piece counted once).
    one_way_edges : int
        Directed edges without a reverse twin.
    components : int
        Weakly connected components (road pieces linked in any direction).
    largest_component_km, share_km_outside_largest : float
        km of road in the largest component (by km) and the share of all km outside it (0..1).
    share_km_outside_largest_strong : float
        Share of km outside the largest *strongly* connected part (where one can drive both
        to and from everywhere): one-way traps show here.
    dangling_ends : int
        Nodes with a single road piece (dead ends, or lines that fail to meet).
    lines : int or None
        Features in the layer (line layers only; ``None`` for OSM files and graphs).
    snap_tolerance_m, ends_joined, max_join_m
        Tolerance used, loose line ends joined to a vertex or a line within it, largest move (m).
    crossings : int or None
        Places where lines cross without a shared vertex: left apart (bridges, flyovers), or
        joined when ``split_crossings``.
    split_crossings : bool or None
    dropped : dict
        ``empty_geometries``, ``zero_length_pieces``, ``duplicate_pieces``, ``left_out_no_travel``
        (one-way value N), ``left_out_by_class`` (class speed 0, or not walkable).
    left_out_classes : dict
        Road classes left out, with their counts of lines.
    speed_sources : dict
        Directed edges per speed source: ``speed_column``, ``class``, ``default``, ``walk``.
    unknown_classes : dict
        Class values not in the class table (given the default speed), with counts.
    hints : list of str
        Columns that look like attributes not used, and what that means.
    """

    source: str
    network_type: str
    crs: str
    nodes: int
    edges: int
    road_km: float
    one_way_edges: int
    components: int
    largest_component_km: float
    share_km_outside_largest: float
    share_km_outside_largest_strong: float
    dangling_ends: int
    layer: str | None = None
    source_crs: str | None = None
    lines: int | None = None
    snap_tolerance_m: float | None = None
    ends_joined: int | None = None
    max_join_m: float | None = None
    crossings: int | None = None
    split_crossings: bool | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    left_out_classes: dict[str, int] = field(default_factory=dict)
    speed_sources: dict[str, int] = field(default_factory=dict)
    unknown_classes: dict[str, int] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return asdict(self)

    def summary(self) -> str:
        """One line: size, connectivity and, for line layers, joins, crossings and speed sources."""
        name = Path(self.source).name + (f" ({self.layer})" if self.layer else "")
        text = (
            f"{name}: {self.nodes:,} nodes, {self.edges:,} edges, {self.road_km:,.1f} km of road"
            f" ({self.one_way_edges:,} one-way edges); {self.components:,} component"
            f"{'s' if self.components != 1 else ''}, {100 * self.share_km_outside_largest:.1f} % of km outside "
            f"the largest; {self.dangling_ends:,} dangling ends"
        )
        if self.lines is not None:
            verb = "joined" if self.split_crossings else "left apart"
            text += (
                f"; {self.ends_joined:,} ends joined within {self.snap_tolerance_m:g} m; "
                f"{self.crossings:,} crossings {verb}"
            )
            if self.speed_sources:
                total = sum(self.speed_sources.values()) or 1
                text += "; speeds: " + ", ".join(
                    f"{100 * n / total:.0f} % {_SOURCE_WORDS[k]}" for k, n in self.speed_sources.items()
                )
        return text + "."

    def describe(self) -> list[str]:
        """The whole report as lines of text (``havenmap network``)."""
        out = [self.summary(), f"CRS used: {self.crs}" + (f" (layer in {self.source_crs})" if self.source_crs else "")]
        out.append(
            f"outside the largest strongly connected part (reachable both ways): "
            f"{100 * self.share_km_outside_largest_strong:.1f} % of km"
        )
        if self.lines is not None:
            out.append(f"features read: {self.lines:,}; largest join move: {self.max_join_m or 0:.2f} m")
            if any(self.dropped.values()):
                out.append("dropped: " + _describe(self.dropped))
            if self.left_out_classes:
                out.append("classes left out: " + _describe(self.left_out_classes))
            if self.speed_sources:
                out.append("edges by speed source: " + _describe(self.speed_sources))
            if self.unknown_classes:
                out.append("classes not in the speed table (default speed): " + _describe(self.unknown_classes))
        out.extend(f"hint: {h}" for h in self.hints)
        return out

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON atomically (``path``, e.g. ``OUT/network_report.json``)."""
        return _io.write_json(path, self.to_dict())


_SOURCE_WORDS = {"speed_column": "speed column", "class": "by class", "default": "default", "walk": "walking"}


def network_report(net: RoadNetwork) -> NetworkReport:
    """The :class:`NetworkReport` of any network (computed once per network)."""
    return net.cached("network_report", lambda: _report(net))


def _report(net: RoadNetwork) -> NetworkReport:
    und = net.undirected_edges
    length = net.edge_length[und]
    total = float(length.sum())
    n = net.n_nodes
    adjacency = sparse.csr_matrix((np.ones(net.n_edges), (net.edge_u, net.edge_v)), shape=(n, n))
    n_weak, weak = csgraph.connected_components(adjacency, directed=True, connection="weak")
    km_weak = np.bincount(weak[net.edge_u[und]], weights=length, minlength=n_weak)
    _, strong = csgraph.connected_components(adjacency, directed=True, connection="strong")
    inside = strong[net.edge_u[und]] == strong[net.edge_v[und]]
    km_strong = np.bincount(strong[net.edge_u[und]][inside], weights=length[inside], minlength=strong.max() + 1)
    degree = np.bincount(net.edge_u[und], minlength=n) + np.bincount(net.edge_v[und], minlength=n)
    info = net.build_info
    base = {
        "source": str(net.source),
        "network_type": net.network_type,
        "crs": net.crs.to_string(),
        "nodes": n,
        "edges": net.n_edges,
        "road_km": total / 1000,
        "one_way_edges": int((net.edge_twin < 0).sum()),
        "components": int(n_weak),
        "largest_component_km": float(km_weak.max()) / 1000 if len(km_weak) else 0.0,
        "share_km_outside_largest": max(0.0, 1 - float(km_weak.max()) / total) if total > 0 else 0.0,
        "share_km_outside_largest_strong": max(0.0, 1 - float(km_strong.max()) / total) if total > 0 else 0.0,
        "dangling_ends": int((degree == 1).sum()),
    }
    if info.get("kind") != "lines":
        return NetworkReport(**base)
    return NetworkReport(
        **base,
        **{k: info[k] for k in ("layer", "source_crs", "lines", "snap_tolerance_m", "split_crossings")},
        ends_joined=info["ends_joined"],
        max_join_m=info["max_join_m"],
        crossings=info["crossings"],
        dropped=info["dropped"],
        left_out_classes=info["left_out_classes"],
        speed_sources=info["speed_sources"],
        unknown_classes=info["unknown_classes"],
        hints=info["hints"],
    )
