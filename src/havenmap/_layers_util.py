"""Private helpers for :mod:`havenmap.layers`: reading files, finding columns, checking rows.

Every check here is vectorised (a boolean mask over the whole frame) and reports the
first offending row with a count of the others, so a 100 000-row file costs a few
array passes, not a Python loop.

Frames handled here carry the 1-based data row number as their index (the row a user
sees in a spreadsheet, header excluded), so a mask's index is already the row to report.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from havenmap.errors import InputError, listing, where

WGS84 = "EPSG:4326"

#: Accepted spellings (compared case-insensitively, surrounding spaces ignored).
LAT_NAMES = ("latitude", "lat")
LON_NAMES = ("longitude", "lon", "lng", "long")
X_NAMES = ("x", "easting", "east")
Y_NAMES = ("y", "northing", "north")

_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz")
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
}
_FORMAT_NAMES = {
    "csv": "CSV",
    "tsv": "tab-separated text",
    "geojson": "GeoJSON",
    "gpkg": "GeoPackage",
    "parquet": "Parquet",
}
ACCEPTED_FILES = (
    "CSV (.csv, .csv.gz, .tsv), GeoJSON (.geojson, .json), GeoPackage (.gpkg) or GeoParquet (.parquet, .geoparquet)"
)
_MAX_LISTED = 20


@dataclass(frozen=True)
class Source:
    """Where a frame came from, for error messages.

    Attributes
    ----------
    label
        The file as the user named it, or ``"<memory>"`` for an in-memory frame.
    fmt
        ``"csv"``, ``"tsv"``, ``"geojson"``, ``"gpkg"``, ``"parquet"`` or ``"frame"``.
    """

    label: str
    fmt: str = "frame"

    @property
    def unit(self) -> str:
        """``"feature"`` for GeoJSON / GeoPackage, ``"row"`` otherwise."""
        return "feature" if self.fmt in ("geojson", "gpkg") else "row"

    def loc(self, row: int | None = None, column: object = None, id: object = None) -> str:
        """Location prefix of a message: ``file: row 7, id 'x', column 'lat'``."""
        col = None if column is None else str(column)
        text = where(self.label, row, col, id)
        if row is not None and self.unit == "feature":
            text = f"{self.label}: feature " + text[len(f"{self.label}: row ") :]
        return text

    def more(self, n: int) -> str:
        """`` (and 3 more rows)`` or the empty string."""
        if n <= 0:
            return ""
        return f" (and {n} more {self.unit}{'s' if n > 1 else ''})"

    def fail(self, message: str) -> InputError:
        """An :class:`InputError` whose message starts with the file name."""
        return InputError(f"{self.label}: {message}")


def show(value: object, limit: int = 40) -> str:
    """Quote a user value for a one-line message (repr, shortened)."""
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "…'"


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message squeezed onto one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- reading


def file_format(path: Path, label: str) -> str:
    """The format key of ``path`` from its extension, or raise :class:`InputError`."""
    name = path.name.lower()
    for comp in _COMPRESSIONS:
        if name.endswith(comp):
            inner = Path(name[: -len(comp)]).suffix
            if inner in (".csv", ".tsv"):
                return inner[1:]
            raise InputError(
                f"{label}: unknown file type {Path(name).suffix!r} (only CSV/TSV may be compressed); "
                f"use {ACCEPTED_FILES}"
            )
    suffix = Path(name).suffix
    if suffix not in _FORMATS:
        shown = repr(suffix) if suffix else "(no extension)"
        raise InputError(f"{label}: unknown file type {shown}; save it as {ACCEPTED_FILES}")
    return _FORMATS[suffix]


def load(
    path: str | os.PathLike[str],
    text_columns: Iterable[str] = (),
    *,
    layer: str | None = None,
    layer_option: str = "layer=",
) -> tuple[pd.DataFrame, Source]:
    """Read a table or vector file; index the rows 1..n; drop fully blank CSV rows.

    Parameters
    ----------
    path
        The file. Its format comes from the extension (see :data:`ACCEPTED_FILES`).
    text_columns
        Column names (any case) that CSV reading must keep as text, such as ids,
        so ``007`` stays ``007``.
    layer
        The layer of a GeoPackage to read; required when the file holds several (the
        error lists them). Ignored for other formats.
    layer_option
        How the caller names ``layer`` in messages (``"--layer (layer=)"`` on the command line).

    Only empty CSV cells are missing values: ``NaN``, ``NA`` or ``null`` written in a cell stay
    text, so a coordinate written as ``NaN`` is reported as not a number, and an id ``NA`` is kept.
    """
    label = os.fspath(path)
    label = label if isinstance(label, str) else label.decode(errors="replace")
    p = Path(label)
    if not p.exists():
        raise InputError(f"{label}: file not found; check the path and the spelling")
    if p.is_dir():
        raise InputError(f"{label}: is a folder, not a file; give the path of the data file inside it")
    fmt = file_format(p, label)
    src = Source(label, fmt)
    try:
        layer = _gpkg_layer(p, src, layer, layer_option) if fmt == "gpkg" else None
        frame = _read(p, fmt, {str(c).strip().lower() for c in text_columns}, layer)
    except InputError:
        raise
    except PermissionError as exc:
        raise src.fail("cannot be read (permission denied); check the file's permissions") from exc
    except UnicodeDecodeError as exc:
        raise src.fail(
            f"is not UTF-8 text (bad byte at position {exc.start}); save it as 'CSV UTF-8' and try again"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise src.fail("has no rows (the file is empty); add a header line and data rows") from exc
    except pd.errors.ParserError as exc:
        raise src.fail(_parser_problem(exc, fmt, p)) from exc
    except Exception as exc:  # pyogrio / pyarrow raise many types for damaged files
        raise src.fail(
            f"cannot be read as {_FORMAT_NAMES[fmt]} ({one_line(exc)}); "
            "check that the file is complete and its extension matches its content"
        ) from exc
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    if fmt in ("csv", "tsv") and len(frame):
        frame = frame.loc[frame.notna().any(axis=1).to_numpy()]
    return frame, src


def _parser_problem(exc: Exception, fmt: str, p: Path) -> str:
    """What pandas' tokenizer error means for the user: ``row 7 has 4 fields, the header has 3``."""
    import re

    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if found:
        expected, line, saw = (int(g) for g in found.groups())
        sep = "tab" if fmt == "tsv" else repr(_sniff_separator(p))
        return (
            f"row {line - 1} has {saw} fields, the header has {expected}; put quotes around values that "
            f"contain the separator ({sep}) or remove the extra separators"
        )
    return (
        f"cannot be read as {_FORMAT_NAMES[fmt]} ({one_line(exc)}); "
        "check for unquoted separators inside values or a wrong separator"
    )


def _gpkg_layer(p: Path, src: Source, layer: str | None, option: str) -> str | None:
    """The GeoPackage layer to read: ``layer``, or the only one; several without a choice is an error."""
    import pyogrio

    names = [str(name) for name in pyogrio.list_layers(p)[:, 0]]
    if layer is not None:
        if layer not in names:
            raise src.fail(f"has no layer {layer!r}; its layers are {listing(names, quote=True)}; fix {option}")
        return layer
    if len(names) > 1:
        raise src.fail(
            f"holds {len(names)} layers ({listing(names, quote=True)}); choose one with {option} "
            "or save the layer you mean as its own file"
        )
    return None


def _sniff_separator(p: Path) -> str:
    """',' unless the header line clearly uses ';' (European spreadsheets) or tabs."""
    import gzip

    try:
        opener = gzip.open if p.name.lower().endswith(".gz") else open
        with opener(p, "rt", encoding="utf-8-sig", errors="replace") as handle:
            header = handle.readline()
    except OSError:
        return ","
    counts = {sep: header.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] > counts[","] else ","


def _read(p: Path, fmt: str, text_columns: set[str], layer: str | None = None) -> pd.DataFrame:
    if fmt in ("csv", "tsv"):
        sep = "\t" if fmt == "tsv" else _sniff_separator(p)
        # only empty cells are missing: 'NaN' or 'NA' written in a cell is text (an id, or a bad number)
        opts = {"sep": sep, "encoding": "utf-8-sig", "skip_blank_lines": False, "keep_default_na": False}
        opts["na_values"] = [""]
        hashtags = hxl_hashtag_row(p, sep)
        if hashtags is not None:  # the HXL row is not data; the header is the row above it (if any)
            row, tags = hashtags
            if row == 0:
                opts.update(header=None, skiprows=1, names=[t or f"column_{i + 1}" for i, t in enumerate(tags)])
            else:
                opts.update(header=row - 1, skiprows=[row])
        header = pd.read_csv(p, nrows=0, **opts).columns
        renames = _hxl_renames(list(header), tags) if hashtags is not None else {}
        dtype = {c: str for c in header if str(renames.get(c, c)).strip().lower() in text_columns}
        frame = pd.read_csv(p, dtype=dtype, low_memory=False, **opts)
        if hashtags is not None:
            frame.attrs["hxl"] = {str(c): t for c, t in zip(frame.columns, tags, strict=False) if t}
            frame = frame.rename(columns=renames)
        return frame
    if fmt == "parquet":
        import pyarrow.parquet as pq

        metadata = pq.read_schema(p).metadata or {}
        return gpd.read_parquet(p) if b"geo" in metadata else pd.read_parquet(p)
    return gpd.read_file(p, layer=layer) if layer is not None else gpd.read_file(p)


# --------------------------------------------------------------------------- HXL hashtag rows

#: Fields our readers know, the HXL hashtags (libhxl tag patterns, ``!`` = no other attributes)
#: that name them in a partner's file, and the header spellings that already do. A column with
#: such a hashtag is read as that field unless another column already has one of the spellings.
HXL_FIELDS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("id", ("#event+id!", "#event+code!", "#meta+id!"), ("id", "incident_id", "event_id", "event_id_cnty")),
    ("date", ("#date+occurred!", "#date+start!", "#date!"), ("date", "event_date", "date_start", "datetime")),
    ("latitude", ("#geo+lat!",), (*LAT_NAMES, *Y_NAMES)),
    ("longitude", ("#geo+lon!",), (*LON_NAMES, *X_NAMES)),
    ("event_type", ("#event+type!",), ("event_type", "type_of_violence")),
    ("sub_event_type", ("#event+type+sub!", "#event+subtype!", "#event+sub_type!"), ("sub_event_type",)),
    ("fatalities", ("#affected+killed!", "#affected+dead!"), ("fatalities", "deaths", "best")),
    ("geo_precision", ("#geo+precision!",), ("geo_precision", "where_prec")),
    ("notes", ("#description!", "#meta+notes!"), ("notes", "description", "source_headline")),
    ("name", ("#loc+name!", "#org+name!"), ("name",)),
    ("public", ("#status+public!",), ("public",)),
)
_HXL_SCAN_ROWS = 25  # libhxl looks for the hashtag row in the first 25 rows too


def hxl_hashtag_row(path: Path, sep: str) -> tuple[int, list[str]] | None:
    """The HXL hashtag row of a CSV/TSV file: ``(0-based row, hashtag per column)``, or ``None``.

    A row is the hashtag row when at least half of its non-empty cells are valid HXL
    hashtags with attributes, the rule of libhxl's reader (``hxl.model.Column.parse``,
    ``FUZZY_HASHTAG_PERCENTAGE``); malformed cells leave their column untagged. Only the
    first 25 rows are looked at, and libhxl is imported only when one of them holds a ``#``.
    """
    rows = _head_rows(path, sep, _HXL_SCAN_ROWS)
    if not any(cell.strip().startswith("#") for row in rows for cell in row):
        return None
    import hxl.model

    for index, row in enumerate(rows):
        cells = [cell.strip() for cell in row]
        filled = [c for c in cells if c]
        if not filled or not any(c.startswith("#") for c in filled):
            continue
        parsed = [hxl.model.Column.parse(c) if c else None for c in cells]
        found = [c for c in parsed if c]
        if len(found) / len(filled) >= hxl.model.FUZZY_HASHTAG_PERCENTAGE:
            return index, [c.display_tag if c else "" for c in parsed]
    return None


def _head_rows(path: Path, sep: str, n: int) -> list[list[str]]:
    """The first ``n`` rows of a (possibly compressed) CSV file, as text cells."""
    import bz2
    import csv
    import gzip
    import io
    import itertools
    import lzma
    import zipfile

    name = path.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                first = archive.namelist()[0]
                text = io.TextIOWrapper(archive.open(first), encoding="utf-8-sig", errors="replace")
                return [list(r) for r in itertools.islice(csv.reader(text, delimiter=sep), n)]
        opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(Path(name).suffix, open)
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
            return [list(r) for r in itertools.islice(csv.reader(handle, delimiter=sep), n)]
    except (OSError, csv.Error, zipfile.BadZipFile, EOFError, lzma.LZMAError, IndexError):
        return []  # pandas reports the damage with the file's name


def _hxl_renames(header: list[object], tags: list[str]) -> dict[object, str]:
    """Columns to read as one of :data:`HXL_FIELDS`, by their hashtag (see there)."""
    import hxl.model

    present = {str(c).strip().lower() for c in header}
    columns = [hxl.model.Column.parse(t) if t else None for t in tags]
    renames: dict[object, str] = {}
    for field, patterns, spellings in HXL_FIELDS:
        if present & {s.lower() for s in spellings}:
            continue
        for pattern in (hxl.model.TagPattern.parse(p) for p in patterns):
            hit = next(
                (h for h, c in zip(header, columns, strict=False) if c and h not in renames and pattern.match(c)),
                None,
            )
            if hit is not None:
                renames[hit] = field
                present.add(field)
                break
    return renames


def prepare_frame(obj: pd.DataFrame, label: str = "<memory>") -> tuple[pd.DataFrame, Source]:
    """Copy an in-memory frame and index its rows 1..n (the user's frame is not changed)."""
    frame = obj.copy()
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return frame, Source(label, "frame")


def require_rows(frame: pd.DataFrame, src: Source) -> None:
    """Raise if ``frame`` holds no data rows."""
    if len(frame) == 0:
        raise src.fail(f"has no rows; the file needs a header line and at least one data {src.unit}")


# --------------------------------------------------------------------------- columns


def find_column(columns: Sequence[object], accepted: Sequence[str], explicit: str | None = None) -> object:
    """The column to use for one field, or ``None`` when absent.

    An ``explicit`` name wins (exact, else case-insensitive). Otherwise the first of
    ``accepted`` found, exact spelling before any-case.
    """
    names = list(accepted) if explicit is None else [explicit]
    for name in names:
        if name in columns:
            return name
    keyed: dict[str, object] = {}
    for col in columns:
        keyed.setdefault(str(col).strip().lower(), col)
    for name in names:
        if name.strip().lower() in keyed:
            return keyed[name.strip().lower()]
    return None


@dataclass(frozen=True)
class Wanted:
    """A field a reader looks for: its description, accepted spellings and option name."""

    what: str
    accepted: Sequence[str]
    option: str
    explicit: str | None = None

    def describe(self) -> str:
        if self.explicit is not None:
            return f"column {self.explicit!r} given for the {self.what} is not in the file"
        spellings = ", ".join(repr(a) for a in self.accepted)
        return f"no {self.what} column (accepted, any case: {spellings}; or pass {self.option})"


def missing_columns(src: Source, columns: Sequence[object], missing: Sequence[Wanted], hint: str = "") -> InputError:
    """One-line error for absent columns, listing what the file has."""
    found = ", ".join(repr(str(c)) for c in list(columns)[:_MAX_LISTED])
    if len(columns) > _MAX_LISTED:
        found += f", … ({len(columns)} in all)"
    parts = "; ".join(w.describe() for w in missing)
    tail = f"; {hint}" if hint else ""
    return src.fail(f"{parts}; columns found: {found or '(none)'}{tail}")


def free_name(name: str, taken: Iterable[object]) -> str:
    """``name`` + ``_original`` (with a counter if needed) not already in ``taken``."""
    taken = {str(t) for t in taken}
    candidate, n = f"{name}_original", 2
    while candidate in taken:
        candidate, n = f"{name}_original{n}", n + 1
    return candidate


def move_clashes(frame: pd.DataFrame, canonical: Iterable[str], consumed: Iterable[object]) -> pd.DataFrame:
    """Drop ``consumed`` source columns; rename other columns that carry a canonical name.

    A kept input column named like an output column (``source`` in ACLED, a text
    ``geometry`` column in a CSV) becomes ``<name>_original`` so nothing is lost.
    """
    frame = frame.drop(columns=[c for c in dict.fromkeys(consumed) if c is not None and c in frame.columns])
    renames = {}
    for name in canonical:
        if name in frame.columns:
            renames[name] = free_name(name, list(frame.columns) + list(renames.values()))
    return frame.rename(columns=renames)


# --------------------------------------------------------------------------- values


def as_text(series: pd.Series) -> pd.Series:
    """Values as stripped strings (pandas ``string`` dtype); missing stays missing."""
    if pd.api.types.is_float_dtype(series):
        finite = series.dropna()
        if len(finite) and bool((finite == np.floor(finite)).all()) and bool(np.isfinite(finite).all()):
            series = series.astype("Int64")
    return series.astype("string").str.strip()


def parse_numbers(series: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse a column as float.

    Returns
    -------
    values, blank, bad
        Float values (NaN where blank or bad); mask of empty cells; mask of cells that
        hold text which is not a finite number.
    """
    if pd.api.types.is_bool_dtype(series):
        series = series.astype(object)
    if pd.api.types.is_numeric_dtype(series):
        values = series.astype("float64")
        blank = values.isna()
        bad = ~blank & ~np.isfinite(values.fillna(0.0))
        return values.where(~bad), blank, bad
    text = series.astype("string").str.strip()
    blank = (text.isna() | (text == "")).astype(bool)
    values = pd.to_numeric(text.where(~blank), errors="coerce").astype("float64")
    bad = ~blank & ~np.isfinite(values.fillna(np.inf))
    return values.where(~bad), blank, bad


def first_rows(*flagged: tuple[object, pd.Series]) -> tuple[int, object, int] | None:
    """First row flagged by any ``(column, mask)`` pair, its column, and how many other rows are flagged."""
    if not flagged:
        return None
    combined = flagged[0][1]
    for _, mask in flagged[1:]:
        combined = combined | mask
    if not bool(combined.any()):
        return None
    rows = combined.index[combined.to_numpy()]
    first = rows[0]
    column = next(col for col, mask in flagged if bool(mask.loc[first]))
    return int(first), column, len(rows) - 1


def id_at(ids: pd.Series | None, row: int) -> object:
    """The id of ``row`` for a message, or ``None``."""
    if ids is None:
        return None
    value = ids.loc[row]
    return None if pd.isna(value) else value


def clean_ids(src: Source, series: pd.Series, column: object) -> pd.Series:
    """Ids as stripped strings; raise on a missing or blank id."""
    ids = as_text(series)
    blank = (ids.isna() | (ids == "")).astype(bool)
    hit = first_rows((column, blank))
    if hit:
        row, col, more = hit
        raise InputError(f"{src.loc(row, col)}: the id is blank{src.more(more)}; give every {src.unit} a unique id")
    return ids


def check_unique(src: Source, ids: pd.Series, column: object) -> None:
    """Raise if an id repeats, naming the id and the rows it appears in."""
    repeated = ids.duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    first_id = ids[repeated].iloc[0]
    rows = [int(r) for r in ids.index[(ids == first_id).to_numpy()]]
    shown = ", ".join(str(r) for r in rows[:10]) + (", …" if len(rows) > 10 else "")
    others = int(ids[repeated].nunique()) - 1
    extra = f" (and {others} more repeated id{'s' if others > 1 else ''})" if others else ""
    raise InputError(
        f"{where(src.label, None, str(column), first_id)}: the id appears in {src.unit}s {shown}{extra}; "
        "ids must be unique: rename or remove the repeats"
    )


def parse_count(src: Source, series: pd.Series, column: object, ids: pd.Series | None, what: str) -> pd.Series:
    """Whole numbers >= 0 (int64); a blank cell becomes 0 with a warning naming the rows."""
    values, blank, bad = parse_numbers(series)
    bad = bad | (~blank & ((values < 0) | (values != np.floor(values))))
    hit = first_rows((column, bad))
    if hit:
        row, col, more = hit
        raise InputError(
            f"{src.loc(row, col, id_at(ids, row))}: {show(series.loc[row])} is not a whole number of {what} "
            f"(0 or more){src.more(more)}; fix the value"
        )
    if bool(blank.any()):
        rows = [int(r) for r in blank.index[blank.to_numpy()]]
        shown = ", ".join(str(r) for r in rows[:10])
        tail = f" (and {len(rows) - 10} more)" if len(rows) > 10 else ""
        warnings.warn(
            f"{src.label}: column {str(column)!r} is blank in {src.unit}{'s' if len(rows) > 1 else ''} "
            f"{shown}{tail}; counted as 0 {what}",
            UserWarning,
            stacklevel=5,  # parse_count < _incident_fields < _incidents < read_incidents < caller
        )
    return values.fillna(0).astype("int64")


_DATE_FALLBACKS = ("%d %B %Y", "%d %b %Y", "%d-%B-%Y", "%d-%b-%Y")


def parse_dates(src: Source, series: pd.Series, column: object, ids: pd.Series | None) -> pd.Series:
    """Dates as ``datetime64[ns]`` (UTC offsets converted to UTC and dropped).

    Accepts ISO 8601 (``2024-03-15``, ``2024-03-15 10:30``) and ACLED's ``15 March 2024``.
    A blank or unreadable cell raises :class:`InputError`.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        parsed = series.dt.tz_convert("UTC").dt.tz_localize(None)
        text, blank = series.astype("string"), parsed.isna()
    elif pd.api.types.is_datetime64_dtype(series):
        parsed = series
        text, blank = series.astype("string"), series.isna()
    else:
        text = as_text(series)
        blank = (text.isna() | (text == "")).astype(bool)
        parsed = pd.to_datetime(text.where(~blank), format="ISO8601", errors="coerce", utc=True)
        for fmt in _DATE_FALLBACKS:
            todo = (parsed.isna() & ~blank).to_numpy()
            if not todo.any():
                break
            parsed.loc[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce", utc=True)
        parsed = parsed.dt.tz_localize(None)
    hit = first_rows((column, blank))
    if hit:
        row, col, more = hit
        raise InputError(
            f"{src.loc(row, col, id_at(ids, row))}: the date is blank{src.more(more)}; "
            "fill it in as YYYY-MM-DD or remove the row"
        )
    hit = first_rows((column, (parsed.isna() & ~blank).astype(bool)))
    if hit:
        row, col, more = hit
        raise InputError(
            f"{src.loc(row, col, id_at(ids, row))}: {show(text.loc[row])} is not a date{src.more(more)}; "
            "write dates as YYYY-MM-DD (for example 2024-03-15)"
        )
    return parsed.astype("datetime64[ns]")


# --------------------------------------------------------------------------- coordinates


def parse_crs(src: Source, crs: object) -> pyproj.CRS | None:
    """``crs`` as a :class:`pyproj.CRS`, or raise a one-line :class:`InputError`."""
    if crs is None:
        return None
    try:
        return pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise src.fail(f"the CRS {show(crs)} is not known ({one_line(exc, 80)}); pass one such as EPSG:32613") from exc


def _is_wgs84(crs: pyproj.CRS | None) -> bool:
    return crs is None or crs.equals(pyproj.CRS.from_epsg(4326))


def points_from_columns(
    src: Source,
    frame: pd.DataFrame,
    x_col: object,
    y_col: object,
    ids: pd.Series | None,
    crs: pyproj.CRS | None,
) -> tuple[gpd.GeoSeries, pd.Series, pd.Series]:
    """Points in EPSG:4326 from coordinate columns, after checking every row.

    ``x_col``/``y_col`` hold longitude/latitude in decimal degrees, or easting/northing
    in metres of ``crs``. Returns the geometry and the parsed x and y columns (float).
    """
    projected = crs is not None and not crs.is_geographic
    x, x_blank, x_bad = parse_numbers(frame[x_col])
    y, y_blank, y_bad = parse_numbers(frame[y_col])
    hit = first_rows((y_col, y_blank | y_bad), (x_col, x_blank | x_bad))
    if hit:
        row, col, more = hit
        raw = frame.loc[row, col]
        what = _axis_name(col == y_col, projected)
        if bool((y_blank if col == y_col else x_blank).loc[row]):
            problem, fix = f"the {what} is blank", "fill in the coordinates or remove the row"
        else:
            unit = "metres, such as 512345.6" if projected else "decimal degrees, such as -12.0464"
            problem = f"{show(raw)} is not a number"
            fix = f"write the {what} in {unit} (a point as the decimal separator)"
        raise InputError(f"{src.loc(row, col, id_at(ids, row))}: {problem}{src.more(more)}; {fix}")
    if not projected:
        check_lonlat(src, x, y, x_col, y_col, ids, metres_hint=None if crs is not None else _METRES_HINT)
    if _is_wgs84(crs):
        lon, lat = x, y
    else:
        transformer = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)
        lon_v, lat_v = transformer.transform(x.to_numpy(), y.to_numpy())
        lon, lat = pd.Series(lon_v, index=x.index), pd.Series(lat_v, index=y.index)
        _check_transformed(src, lon, lat, x_col, ids, crs)
        check_lonlat(src, lon, lat, x_col, y_col, ids, metres_hint=None)
    geometry = gpd.GeoSeries(gpd.points_from_xy(lon.to_numpy(), lat.to_numpy()), index=frame.index, crs=WGS84)
    return geometry, x, y


_METRES_HINT = (
    "the values look like metres in a projected CRS, not degrees; "
    "pass the file's CRS with --crs (crs=), for example EPSG:32613"
)


def _axis_name(is_y: bool, projected: bool) -> str:
    if projected:
        return "northing (y)" if is_y else "easting (x)"
    return "latitude" if is_y else "longitude"


def _check_transformed(
    src: Source, lon: pd.Series, lat: pd.Series, column: object, ids: pd.Series | None, crs: pyproj.CRS
) -> None:
    bad = ~(np.isfinite(lon) & np.isfinite(lat))
    hit = first_rows((column, bad))
    if hit:
        row, col, more = hit
        raise InputError(
            f"{src.loc(row, col, id_at(ids, row))}: the point cannot be converted from {crs.to_string()} "
            f"to longitude/latitude{src.more(more)}; check the CRS (--crs) and the coordinates"
        )


def check_lonlat(
    src: Source,
    lon: pd.Series,
    lat: pd.Series,
    lon_col: object,
    lat_col: object,
    ids: pd.Series | None,
    *,
    metres_hint: str | None,
    geometry: bool = False,
) -> None:
    """Raise if a latitude is outside ±90 or a longitude outside ±180.

    The message says when the pattern suggests swapped latitude/longitude (for the
    whole file, or for the offending row); when values beyond 1000 suggest projected
    metres read as degrees, it ends with ``metres_hint`` (if given).
    """
    lat_out = (lat.abs() > 90).astype(bool)
    lon_out = (lon.abs() > 180).astype(bool)
    hit = first_rows((lat_col, lat_out), (lon_col, lon_out))
    if not hit:
        return
    row, col, more = hit
    is_lat = bool(lat_out.loc[row])
    value = float(lat.loc[row] if is_lat else lon.loc[row])
    what = "latitude" if is_lat else "longitude"
    what += (" (y)" if is_lat else " (x)") if geometry else ""
    limit = "-90..90" if is_lat else "-180..180"
    head = f"{src.loc(row, col, id_at(ids, row))}: {what} {value:.10g} is outside {limit}{src.more(more)}"
    file_swapped = bool(lat_out.any()) and bool((lon.abs() <= 90).all()) and bool((lat.abs() <= 180).all())
    row_swapped = abs(float(lat.loc[row])) <= 180 and abs(float(lon.loc[row])) <= 90
    biggest = float(max(lat.abs().max(), lon.abs().max()))
    if geometry and (file_swapped or row_swapped):
        hint = (
            "latitude and longitude look swapped (x holds latitudes); "
            "coordinates must be longitude first, then latitude: re-export the file with them in that order"
        )
    elif file_swapped:
        hint = (
            f"latitude and longitude look swapped ({str(lat_col)!r} has values beyond ±90 such as "
            f"{float(lat[lat_out].iloc[0]):.10g} while every {str(lon_col)!r} value is within ±90); "
            "swap the columns or pass --lat/--lon (lat_column=/lon_column=)"
        )
    elif row_swapped:
        hint = "latitude and longitude look swapped in this row; swap the two values"
    elif metres_hint and biggest > 1000:
        hint = metres_hint
    else:
        hint = "fix the coordinates of this row"
    raise InputError(f"{head}; {hint}")


_TYPE_NAMES = {
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def points_from_geometry(
    src: Source, frame: gpd.GeoDataFrame, ids: pd.Series | None, crs: pyproj.CRS | None
) -> gpd.GeoSeries:
    """Point geometry in EPSG:4326 from a GeoDataFrame's active geometry, after checks.

    A single-part MultiPoint is accepted as its point; Z values are dropped. ``crs``
    (if given) replaces the frame's CRS; a frame without CRS is taken as EPSG:4326.
    """
    col = frame.geometry.name
    values = np.asarray(frame.geometry.array, dtype=object)
    missing = pd.Series(shapely.is_missing(values) | shapely.is_empty(values), index=frame.index)
    hit = first_rows((col, missing))
    if hit:
        row, _, more = hit
        raise InputError(
            f"{src.loc(row, col, id_at(ids, row))}: the {src.unit} has no geometry (null or empty)"
            f"{src.more(more)}; give it a point or remove it"
        )
    types = shapely.get_type_id(values)
    single = (types == 4) & (shapely.get_num_geometries(values) == 1)
    if single.any():
        values = values.copy()
        values[single] = shapely.get_geometry(values[single], 0)
        types = shapely.get_type_id(values)
    hit = first_rows((col, pd.Series(types != 0, index=frame.index)))
    if hit:
        row, _, more = hit
        kind = _TYPE_NAMES.get(int(types[frame.index.get_loc(row)]), "non-point geometry")
        raise InputError(
            f"{src.loc(row, col, id_at(ids, row))}: the geometry is a {kind}, not a point{src.more(more)}; "
            "convert the layer to points first (for example QGIS 'Centroids' or 'Point on surface')"
        )
    declared = crs if crs is not None else frame.crs if frame.crs is not None else pyproj.CRS.from_epsg(4326)
    geometry = gpd.GeoSeries(shapely.force_2d(values), index=frame.index, crs=declared)
    if not _is_wgs84(declared):
        geometry = geometry.to_crs(WGS84)
    lon = pd.Series(shapely.get_x(geometry.array), index=frame.index)
    lat = pd.Series(shapely.get_y(geometry.array), index=frame.index)
    if not _is_wgs84(declared):
        _check_transformed(src, lon, lat, col, ids, declared)
    hint = None
    if declared.is_geographic:
        hint = (
            f"the coordinates look like metres but the file declares {declared.to_string()} (or no CRS); "
            "pass the right CRS with --crs (crs=)"
        )
    check_lonlat(src, lon, lat, col, col, ids, metres_hint=hint, geometry=True)
    return geometry.set_crs(WGS84, allow_override=True)
