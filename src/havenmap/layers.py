"""Point layers from user files: defenders, havens, patrol bases and threat incidents.

Every reader returns a :class:`geopandas.GeoDataFrame` in EPSG:4326 (longitude,
latitude in decimal degrees) with a fresh ``RangeIndex`` and Point geometry in the
column ``geometry``. Files are recognised by extension:

* ``.csv`` (also ``.csv.gz``/``.bz2``/``.zip``/``.xz``) and ``.tsv``: UTF-8 text with a
  header line; coordinates in latitude/longitude columns (decimal degrees), or
  projected x/y (metres) when ``crs=`` names the CRS. A file with an HXL hashtag row
  (``#date``, ``#geo+lat``, ``#geo+lon``, ``#event+type`` ..., found by libhxl's rule in the
  first 25 rows) is read by its hashtags: the row is skipped, and a column tagged for a field
  (:data:`havenmap._layers_util.HXL_FIELDS`) is read as that field unless another column
  already has the field's usual name. Row numbers count data rows only;
* ``.geojson``/``.json``, ``.gpkg``: point features (reprojected from the file's CRS);
* ``.parquet``/``.geoparquet``: GeoParquet, or a plain Parquet table with
  latitude/longitude columns.

Point layers (:func:`read_points`, :func:`read_defenders`, :func:`read_havens`, :func:`read_bases`)
    ``id``
        str (pandas ``string`` dtype), stripped, unique, never blank. Taken from the
        column ``id`` (any case) or ``id_column=``.
    ``name``
        str; havens always (blank or absent: the id); other layers only when the file has it.
    ``kind``
        havens only: str such as ``embassy``, ``clinic``, ``place_of_worship``; from a
        ``kind`` column, else ``amenity``, else ``"haven"``.
    ``public``
        havens only: bool, from a ``public`` column (``true``/``yes``/``1`` or
        ``false``/``no``/``0``, any case); blank or absent: ``False``. Only public havens
        appear in share bundles (``havenmap share``); private ones never leave the team.
    ``group``
        defenders only, when the file has it: str (blank: ``""``).
    every other input column
        kept as read; the latitude/longitude (or x/y) columns as float. An input column
        whose name clashes with an output column is kept as ``<name>_original``.
    ``geometry``
        Point, EPSG:4326.

Incidents (:func:`read_incidents`)
    ``incident_id``
        str: ACLED ``event_id_cnty``, UCDP ``id``, else an ``id`` column, else the
        1-based data row number.
    ``date``
        ``datetime64[ns]`` (naive; UTC offsets converted to UTC). ``NaT`` only when the
        source has no date column at all.
    ``event_type``
        str: ACLED ``event_type``; UCDP ``type_of_violence`` mapped to
        ``"state-based conflict"`` (1), ``"non-state conflict"`` (2),
        ``"one-sided violence"`` (3); a generic file's ``event_type`` column, else
        ``"incident"``. Unknown types are kept as written.
    ``sub_event_type``
        str, may be empty.
    ``fatalities``
        int64 >= 0 (deaths): ACLED ``fatalities``, UCDP ``best``. Blank cells count as 0
        (with a warning).
    ``geo_precision``
        int64 1 (exact place) .. 3 (region): ACLED ``geo_precision``; UCDP
        ``where_prec`` 1 -> 1, 2 -> 2, 3 and above -> 3; blank or absent -> 1.
    ``notes``
        str, may be empty (ACLED ``notes``, UCDP ``source_headline``).
    ``source``
        ``"acled"``, ``"ucdp"``, ``"hxl"`` (a CSV/TSV with an HXL hashtag row), ``"csv"``
        (other CSV/TSV) or ``"file"`` (anything else). :func:`havenmap.feeds.read_incident_feeds`
        replaces it with the name of the feed.
    other input columns
        kept (clashing names as ``<name>_original``, e.g. ACLED's ``source``).
    ``geometry``
        Point, EPSG:4326.

Bad input raises :class:`havenmap.errors.InputError` with a one-line message naming the
file, the 1-based data row (or GeoJSON/GPKG feature) and/or id, the column, and what to
do. Checks are vectorised; the first offending row is named, with a count of the others.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from havenmap import _layers_util as _u
from havenmap.errors import InputError

__all__ = [
    "INCIDENT_COLUMNS",
    "INCIDENT_SOURCES",
    "POINT_KINDS",
    "as_incidents",
    "as_points",
    "looks_swapped",
    "read_bases",
    "read_defenders",
    "read_havens",
    "read_incidents",
    "read_points",
]

PathLike = str | os.PathLike[str]

#: Layer kinds :func:`read_points` understands.
POINT_KINDS = ("points", "defenders", "havens", "bases")
#: Values of ``source=`` for :func:`read_incidents`.
INCIDENT_SOURCES = ("auto", "acled", "ucdp", "csv", "file")
#: Canonical incident columns, in output order (original columns follow before ``geometry``).
INCIDENT_COLUMNS = (
    "incident_id",
    "date",
    "event_type",
    "sub_event_type",
    "fatalities",
    "geo_precision",
    "notes",
    "source",
)
UCDP_VIOLENCE = {1: "state-based conflict", 2: "non-state conflict", 3: "one-sided violence"}

_ID_NAMES = ("id",)
_LAYER_OPTION = "--points-layer (layer=)"
_ID_OPTION = "--id (id_column=)"
_LAT_OPTION = "--lat (lat_column=)"
_LON_OPTION = "--lon (lon_column=)"

# Accepted column spellings per incident field, per source flavour.
_INCIDENT_SPECS: dict[str, dict[str, tuple[str, ...]]] = {
    "acled": {
        "id": ("event_id_cnty",),
        "date": ("event_date",),
        "event_type": ("event_type",),
        "sub_event_type": ("sub_event_type",),
        "fatalities": ("fatalities",),
        "geo_precision": ("geo_precision",),
        "notes": ("notes",),
    },
    "ucdp": {
        "id": ("id",),
        "date": ("date_start",),
        "violence": ("type_of_violence",),
        "fatalities": ("best",),
        "geo_precision": ("where_prec",),
        "notes": ("source_headline",),
    },
    "generic": {
        "id": ("id", "incident_id", "event_id"),
        "date": ("date", "event_date", "date_start", "datetime"),
        "event_type": ("event_type",),
        "sub_event_type": ("sub_event_type",),
        "fatalities": ("fatalities", "deaths"),
        "geo_precision": ("geo_precision",),
        "notes": ("notes", "description"),
    },
}
_REQUIRED = {"acled": ("id", "date"), "ucdp": ("id", "date", "violence")}
_FLAVOUR_NAMES = {"acled": "an ACLED export", "ucdp": "a UCDP GED file"}


# --------------------------------------------------------------------------- points


def read_points(
    path: PathLike,
    *,
    kind: str = "points",
    id_column: str | None = None,
    lat_column: str | None = None,
    lon_column: str | None = None,
    crs: Any = None,
    layer: str | None = None,
) -> gpd.GeoDataFrame:
    """Read a point layer (CSV/TSV, GeoJSON, GeoPackage, (Geo)Parquet) with checked ids and coordinates.

    Parameters
    ----------
    path
        The file; its format comes from the extension.
    kind
        One of :data:`POINT_KINDS`; ``"havens"`` and ``"defenders"`` add their
        columns (see the module docstring).
    id_column
        Column holding the ids. Default: ``id``, else any-case ``id`` (``ID``, ``Id``).
    lat_column, lon_column
        Coordinate columns (decimal degrees, or metres of ``crs``). Default, any case:
        ``latitude``/``lat`` and ``longitude``/``lon``/``lng``/``long``; with a projected
        ``crs`` also ``y``/``northing`` and ``x``/``easting``. Giving either makes a
        GeoDataFrame use these columns instead of its geometry.
    crs
        CRS of the coordinates in the file (anything :class:`pyproj.CRS` accepts). For a
        table with projected x/y (metres); for a vector file it replaces the declared CRS.
    layer
        The GeoPackage layer to read; needed when the file holds several (ignored otherwise).

    Returns
    -------
    geopandas.GeoDataFrame
        ``id`` (+ kind columns) + the other input columns + ``geometry`` (EPSG:4326).

    Raises
    ------
    havenmap.errors.InputError
        Unreadable file, no rows, missing columns, blank/repeated ids, blank, non-numeric
        or out-of-range coordinates (the message says when latitude and longitude look
        swapped), missing or non-point geometry, a GeoPackage with several layers and no
        ``layer``.
    """
    _check_kind(kind)
    frame, src = _u.load(path, text_columns=_point_text_columns(id_column), layer=layer, layer_option=_LAYER_OPTION)
    return _points(frame, src, kind, id_column, lat_column, lon_column, crs)


def read_defenders(path: PathLike, **kw: Any) -> gpd.GeoDataFrame:
    """Read defender locations: :func:`read_points` with ``kind="defenders"`` (keeps ``name``, ``group``)."""
    return read_points(path, kind="defenders", **kw)


def read_havens(path: PathLike, **kw: Any) -> gpd.GeoDataFrame:
    """Read safe havens: :func:`read_points` with ``kind="havens"`` (adds ``name``, ``kind`` and ``public``).

    ``public`` (bool) comes from a ``public`` column: ``true``/``yes``/``1`` for a haven that may be
    named to partners and the public (an embassy, a UN compound), ``false``/``no``/``0`` or blank
    for a private one (a safe house). Without the column every haven is private: share bundles
    (:mod:`havenmap.share`) carry public havens only.
    """
    return read_points(path, kind="havens", **kw)


def read_bases(path: PathLike, **kw: Any) -> gpd.GeoDataFrame:
    """Read patrol bases: :func:`read_points` with ``kind="bases"``."""
    return read_points(path, kind="bases", **kw)


def as_points(
    obj: PathLike | pd.DataFrame,
    *,
    kind: str = "points",
    id_column: str | None = None,
    lat_column: str | None = None,
    lon_column: str | None = None,
    crs: Any = None,
    label: str = "<memory>",
) -> gpd.GeoDataFrame:
    """Like :func:`read_points`, but also accepts an in-memory DataFrame or GeoDataFrame.

    A DataFrame needs latitude/longitude columns; a GeoDataFrame uses its geometry
    (reprojected to EPSG:4326; no CRS means EPSG:4326 unless ``crs`` is given). The
    input frame is not modified. ``label`` names the frame in error messages, and
    "row N" counts its rows from 1 in their current order.
    """
    _check_kind(kind)
    if isinstance(obj, pd.DataFrame):
        frame, src = _u.prepare_frame(obj, label)
    else:
        frame, src = _u.load(obj, text_columns=_point_text_columns(id_column))
    return _points(frame, src, kind, id_column, lat_column, lon_column, crs)


def _check_kind(kind: str) -> None:
    if kind not in POINT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(POINT_KINDS)}, not {kind!r}")


def _point_text_columns(id_column: str | None) -> tuple[str, ...]:
    return (*_ID_NAMES, *([id_column] if id_column else []))


def _points(
    frame: pd.DataFrame,
    src: _u.Source,
    kind: str,
    id_column: str | None,
    lat_column: str | None,
    lon_column: str | None,
    crs: Any,
) -> gpd.GeoDataFrame:
    _u.require_rows(frame, src)
    crs_obj = _u.parse_crs(src, crs)
    id_col = _u.find_column(list(frame.columns), _ID_NAMES, id_column)
    plan = _coordinate_plan(frame, crs_obj, lat_column, lon_column)
    missing = [] if id_col is not None else [_u.Wanted("id", _ID_NAMES, _ID_OPTION, id_column)]
    _raise_missing(src, frame, missing + plan.missing, crs_obj)
    ids = _u.clean_ids(src, frame[id_col], id_col)
    frame, geometry = _locate(frame, src, plan, ids, crs_obj)
    _u.check_unique(src, ids, id_col)
    extras, consumed = _kind_columns(frame, kind, ids, src)
    canonical = ("id", *extras, "geometry")
    body = _u.move_clashes(frame, canonical, [id_col, *consumed, plan.geometry_column])
    out = _assemble({"id": ids, **extras}, body, geometry)
    out.attrs["source"] = src.label  # named in later errors (e.g. every point off the network)
    return out


def _kind_columns(
    frame: pd.DataFrame, kind: str, ids: pd.Series, src: _u.Source
) -> tuple[dict[str, pd.Series], list[object]]:
    """Canonical ``name``/``kind``/``group`` columns for a layer kind, and the columns they replace."""
    columns = list(frame.columns)
    extras: dict[str, pd.Series] = {}
    consumed: list[object] = []
    name_col = _u.find_column(columns, ("name",))
    if name_col is not None or kind == "havens":
        extras["name"] = _fill_blank(_text_or_blank(frame, name_col), ids)
        consumed.append(name_col)
    if kind == "havens":
        kind_col = _u.find_column(columns, ("kind",))
        fallback = _fill_blank(_text_or_blank(frame, _u.find_column(columns, ("amenity",))), "haven")
        extras["kind"] = _fill_blank(_text_or_blank(frame, kind_col), fallback)
        consumed.append(kind_col)
        public_col = _u.find_column(columns, ("public",))
        extras["public"] = _public_flags(frame, public_col, src, ids)
        consumed.append(public_col)
    if kind == "defenders":
        group_col = _u.find_column(columns, ("group",))
        if group_col is not None:
            extras["group"] = _fill_blank(_text_or_blank(frame, group_col), "")
            consumed.append(group_col)
    return extras, consumed


_TRUE_WORDS = frozenset({"true", "yes", "y", "1", "t", "public"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0", "f", "private", ""})


def _public_flags(frame: pd.DataFrame, column: object, src: _u.Source, ids: pd.Series) -> pd.Series:
    """The havens' ``public`` column as bool: true/yes/1, false/no/0; blank or absent: false (private)."""
    if column is None:
        return pd.Series(False, index=frame.index, dtype=bool)
    values = frame[column]
    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    text = _u.as_text(values).fillna("").str.lower()
    bad = ~text.isin(_TRUE_WORDS | _FALSE_WORDS)
    hit = _u.first_rows((column, bad))
    if hit:
        row, col, more = hit
        raise InputError(
            f"{src.loc(row, col, _u.id_at(ids, row))}: {_u.show(values.loc[row])} is not true or false"
            f"{src.more(more)}; write true (the haven may be named to partners and the public) or false / blank"
        )
    return text.isin(_TRUE_WORDS).astype(bool)


# --------------------------------------------------------------------------- incidents


def read_incidents(
    path: PathLike,
    *,
    source: str = "auto",
    id_column: str | None = None,
    date_column: str | None = None,
    lat_column: str | None = None,
    lon_column: str | None = None,
    layer: str | None = None,
) -> gpd.GeoDataFrame:
    """Read threat incidents (ACLED export, UCDP GED, generic CSV, GeoJSON, GPKG, GeoParquet).

    Parameters
    ----------
    path
        The file; its format comes from the extension.
    source
        One of :data:`INCIDENT_SOURCES`. ``"auto"`` recognises ACLED by the columns
        ``event_id_cnty`` + ``event_date`` and UCDP GED by ``type_of_violence`` +
        ``date_start``; anything else is read generically (``id``, ``date``,
        ``event_type``, ``sub_event_type``, ``fatalities``, ``geo_precision``, ``notes``
        columns, each optional, any case). ``"csv"``/``"file"`` force generic reading.
    id_column, date_column, lat_column, lon_column
        Override the column used for that field.
    layer
        The GeoPackage layer to read; needed when the file holds several (ignored otherwise).

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`INCIDENT_COLUMNS` + the other input columns + ``geometry`` (EPSG:4326);
        see the module docstring for types and units.

    Raises
    ------
    havenmap.errors.InputError
        As :func:`read_points`, plus: a blank or unparseable date where the source
        has a date column, a non-numeric, negative or fractional fatality count, a
        non-numeric precision code, a forced ``source`` whose columns are missing.

    Warns
    -----
    UserWarning
        When fatality cells are blank (counted as 0), naming the rows.
    """
    frame, src = _u.load(path, text_columns=_incident_text_columns(id_column), layer=layer, layer_option=_LAYER_OPTION)
    return _incidents(frame, src, source, id_column, date_column, lat_column, lon_column)


def as_incidents(
    obj: PathLike | pd.DataFrame,
    *,
    source: str = "auto",
    id_column: str | None = None,
    date_column: str | None = None,
    lat_column: str | None = None,
    lon_column: str | None = None,
    label: str = "<memory>",
) -> gpd.GeoDataFrame:
    """Like :func:`read_incidents`, but also accepts an in-memory DataFrame or GeoDataFrame."""
    if isinstance(obj, pd.DataFrame):
        frame, src = _u.prepare_frame(obj, label)
    else:
        frame, src = _u.load(obj, text_columns=_incident_text_columns(id_column))
    return _incidents(frame, src, source, id_column, date_column, lat_column, lon_column)


def _incident_text_columns(id_column: str | None) -> tuple[str, ...]:
    ids = {name for spec in _INCIDENT_SPECS.values() for name in spec["id"]}
    return (*sorted(ids), *([id_column] if id_column else []))


def _incidents(
    frame: pd.DataFrame,
    src: _u.Source,
    source: str,
    id_column: str | None,
    date_column: str | None,
    lat_column: str | None,
    lon_column: str | None,
) -> gpd.GeoDataFrame:
    _u.require_rows(frame, src)
    flavour = _flavour(frame, src, source, {"id": id_column, "date": date_column})
    spec = _INCIDENT_SPECS[flavour]
    columns = list(frame.columns)
    found = {key: _u.find_column(columns, names) for key, names in spec.items()}
    found["id"] = _u.find_column(columns, spec["id"], id_column)
    found["date"] = _u.find_column(columns, spec["date"], date_column)
    plan = _coordinate_plan(frame, None, lat_column, lon_column)
    missing = list(plan.missing)
    if id_column is not None and found["id"] is None:
        missing.insert(0, _u.Wanted("id", spec["id"], _ID_OPTION, id_column))
    if date_column is not None and found["date"] is None:
        missing.insert(0, _u.Wanted("date", spec["date"], "--date (date_column=)", date_column))
    _raise_missing(src, frame, missing, None)

    id_col = found["id"]
    ids = _u.clean_ids(src, frame[id_col], id_col) if id_col is not None else _row_ids(frame)
    frame, geometry = _locate(frame, src, plan, ids if id_col is not None else None, None)
    if id_col is not None:
        _u.check_unique(src, ids, id_col)
    canonical = _incident_fields(frame, src, flavour, found, ids)
    label = flavour if flavour in ("acled", "ucdp") else (source if source in ("csv", "file") else None)
    label = label or ("hxl" if frame.attrs.get("hxl") else "csv" if src.fmt in ("csv", "tsv") else "file")
    canonical["source"] = pd.Series(label, index=frame.index, dtype="string")
    consumed = [c for c in found.values() if c in INCIDENT_COLUMNS]
    body = _u.move_clashes(frame, (*INCIDENT_COLUMNS, "geometry"), [*consumed, plan.geometry_column])
    out = _assemble(canonical, body, geometry)
    out.attrs["source"] = src.label
    return out


def _flavour(frame: pd.DataFrame, src: _u.Source, source: str, explicit: dict[str, str | None]) -> str:
    """``"acled"``, ``"ucdp"`` or ``"generic"``: detected (``source="auto"``) or forced and checked."""
    if source not in INCIDENT_SOURCES:
        raise src.fail(f"unknown incident source {source!r}; use one of {', '.join(INCIDENT_SOURCES)}")
    keys = {str(c).strip().lower() for c in frame.columns}
    if source == "auto":
        if {"event_id_cnty", "event_date"} <= keys:
            return "acled"
        if {"type_of_violence", "date_start"} <= keys:
            return "ucdp"
        return "generic"
    if source in ("csv", "file"):
        return "generic"
    spec = _INCIDENT_SPECS[source]
    absent = [spec[f][0] for f in _REQUIRED[source] if explicit.get(f) is None and spec[f][0] not in keys]
    if absent:
        listed = ", ".join(repr(str(c)) for c in list(frame.columns)[:20])
        raise src.fail(
            f"is not {_FLAVOUR_NAMES[source]}: missing column(s) {', '.join(repr(a) for a in absent)}; "
            f"columns found: {listed}; pass --source auto or name the columns"
        )
    return source


def _incident_fields(
    frame: pd.DataFrame, src: _u.Source, flavour: str, found: dict[str, Any], ids: pd.Series
) -> dict[str, pd.Series]:
    """The canonical incident columns except ``source``, in output order."""
    index = frame.index
    id_hint = ids if found["id"] is not None else None
    fields: dict[str, pd.Series] = {"incident_id": ids}
    if found["date"] is not None:
        fields["date"] = _u.parse_dates(src, frame[found["date"]], found["date"], id_hint)
    else:
        fields["date"] = pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
    if flavour == "ucdp":
        fields["event_type"] = _violence_labels(frame[found["violence"]])
    elif found.get("event_type") is not None:
        fields["event_type"] = _fill_blank(_text_or_blank(frame, found["event_type"]), "")
    else:
        fields["event_type"] = pd.Series("incident", index=index, dtype="string")
    fields["sub_event_type"] = _fill_blank(_text_or_blank(frame, found.get("sub_event_type")), "")
    if found["fatalities"] is not None:
        col = found["fatalities"]
        fields["fatalities"] = _u.parse_count(src, frame[col], col, id_hint, "fatalities")
    else:
        fields["fatalities"] = pd.Series(0, index=index, dtype="int64")
    fields["geo_precision"] = _precision(src, frame, found["geo_precision"], id_hint)
    fields["notes"] = _fill_blank(_text_or_blank(frame, found["notes"]), "")
    return fields


def _violence_labels(series: pd.Series) -> pd.Series:
    """UCDP ``type_of_violence`` codes as words; other values kept as written."""
    codes, _, _ = _u.parse_numbers(series)
    words = codes.map({float(k): v for k, v in UCDP_VIOLENCE.items()}).astype("string")
    return words.fillna(_u.as_text(series).fillna(""))


def _precision(src: _u.Source, frame: pd.DataFrame, column: object, ids: pd.Series | None) -> pd.Series:
    """Precision codes clipped to 1 (exact) .. 3 (region); blank or absent means 1."""
    if column is None:
        return pd.Series(1, index=frame.index, dtype="int64")
    values, _, bad = _u.parse_numbers(frame[column])
    hit = _u.first_rows((column, bad))
    if hit:
        row, col, more = hit
        raise InputError(
            f"{src.loc(row, col, _u.id_at(ids, row))}: {_u.show(frame.loc[row, col])} is not a precision code"
            f"{src.more(more)}; use 1 (exact place), 2 (nearby) or 3 (region), or leave it blank"
        )
    return pd.Series(np.clip(np.ceil(values.fillna(1.0)), 1, 3), index=frame.index).astype("int64")


def _row_ids(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(frame.index.astype(str), index=frame.index, dtype="string")


# --------------------------------------------------------------------------- shared


@dataclass
class _Plan:
    """How a frame's points are located: its geometry, or two coordinate columns."""

    geometry_column: object = None
    x_col: object = None
    y_col: object = None
    missing: list[_u.Wanted] = field(default_factory=list)


def _coordinate_plan(
    frame: pd.DataFrame, crs: pyproj.CRS | None, lat_column: str | None, lon_column: str | None
) -> _Plan:
    columns = list(frame.columns)
    if crs is not None and not crs.is_geographic:
        x_names, y_names = (*_u.X_NAMES, *_u.LON_NAMES), (*_u.Y_NAMES, *_u.LAT_NAMES)
    elif crs is not None:
        x_names, y_names = (*_u.LON_NAMES, *_u.X_NAMES), (*_u.LAT_NAMES, *_u.Y_NAMES)
    else:
        x_names, y_names = _u.LON_NAMES, _u.LAT_NAMES
    y_col = _u.find_column(columns, y_names, lat_column)
    x_col = _u.find_column(columns, x_names, lon_column)
    geom_name = frame.active_geometry_name if isinstance(frame, gpd.GeoDataFrame) else None
    if geom_name is not None and lat_column is None and lon_column is None:
        values = np.asarray(frame.geometry.array, dtype=object)
        all_missing = bool((shapely.is_missing(values) | shapely.is_empty(values)).all())
        if not (all_missing and x_col is not None and y_col is not None):
            return _Plan(geometry_column=geom_name)
    missing = []
    if y_col is None:
        missing.append(_u.Wanted("latitude", y_names, _LAT_OPTION, lat_column))
    if x_col is None:
        missing.append(_u.Wanted("longitude", x_names, _LON_OPTION, lon_column))
    return _Plan(geometry_column=geom_name, x_col=x_col, y_col=y_col, missing=missing)


def _raise_missing(src: _u.Source, frame: pd.DataFrame, missing: list[_u.Wanted], crs: pyproj.CRS | None) -> None:
    if not missing:
        return
    coords = any(w.what in ("latitude", "longitude") for w in missing)
    hint = "for projected x/y in metres pass the CRS with --crs (crs=)" if coords and crs is None else ""
    raise _u.missing_columns(src, list(frame.columns), missing, hint)


def _locate(
    frame: pd.DataFrame, src: _u.Source, plan: _Plan, ids: pd.Series | None, crs: pyproj.CRS | None
) -> tuple[pd.DataFrame, gpd.GeoSeries]:
    """The checked EPSG:4326 points, and the frame with its coordinate columns as floats."""
    if plan.x_col is None:
        return frame, _u.points_from_geometry(src, frame, ids, crs)
    geometry, x, y = _u.points_from_columns(src, frame, plan.x_col, plan.y_col, ids, crs)
    frame = frame.copy(deep=False)
    frame[plan.x_col] = x
    frame[plan.y_col] = y
    return frame, geometry


def _assemble(canonical: dict[str, pd.Series], body: pd.DataFrame, geometry: gpd.GeoSeries) -> gpd.GeoDataFrame:
    """Canonical columns, then the kept input columns, then ``geometry``; index 0..n-1."""
    table = pd.concat([pd.DataFrame(canonical), pd.DataFrame(body)], axis=1)
    points = gpd.GeoSeries(geometry.array, index=table.index, crs=_u.WGS84)
    out = gpd.GeoDataFrame(table, geometry=points, crs=_u.WGS84)
    return out.reset_index(drop=True)


def _text_or_blank(frame: pd.DataFrame, column: object) -> pd.Series:
    if column is None:
        return pd.Series(pd.NA, index=frame.index, dtype="string")
    return _u.as_text(frame[column])


def _fill_blank(text: pd.Series, fill: pd.Series | str) -> pd.Series:
    """``text`` with missing or empty cells replaced by ``fill`` (string dtype)."""
    blank = (text.isna() | (text == "")).astype(bool)
    return text.mask(blank, fill).astype("string")


# --------------------------------------------------------------------------- swap test


def looks_swapped(points: gpd.GeoDataFrame | gpd.GeoSeries, bbox: Sequence[float]) -> bool:
    """Whether the points seem to have latitude and longitude swapped, judged against an area.

    Parameters
    ----------
    points
        Point layer (any CRS; compared in EPSG:4326, a missing CRS means EPSG:4326).
    bbox
        ``(minx, miny, maxx, maxy)`` = (west, south, east, north) in decimal degrees,
        e.g. the road network's extent.

    Returns
    -------
    bool
        True when most points fall outside ``bbox`` but most of them fall inside once
        their x and y are exchanged. False for an empty layer.
    """
    geom = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if geom.crs is not None and not geom.crs.equals(pyproj.CRS.from_epsg(4326)):
        geom = geom.to_crs(_u.WGS84)
    values = np.asarray(geom.array, dtype=object)
    x, y = shapely.get_x(values), shapely.get_y(values)
    valid = np.isfinite(x) & np.isfinite(y)
    n = int(valid.sum())
    if n == 0:
        return False
    minx, miny, maxx, maxy = (float(v) for v in bbox)
    x, y = x[valid], y[valid]
    inside = int(((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)).sum())
    swapped = int(((y >= minx) & (y <= maxx) & (x >= miny) & (x <= maxy)).sum())
    return 2 * swapped > n and 2 * inside < n
