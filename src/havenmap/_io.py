"""Atomic output writing: a file is either complete or absent, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .errors import InputError


def check_output(
    path: str | os.PathLike[str], *, folder: bool = False, option: str = "--out", create: bool = True
) -> Path:
    """Fail early, with one line, when ``path`` cannot become an output file (or folder).

    Called before any work starts, so a bad output path never leaves other outputs behind.
    Creates the missing folders (the only side effect) unless ``create=False``.
    """
    target = Path(path)
    what = "folder" if folder else "file"
    if folder and target.exists() and not target.is_dir():
        raise InputError(f"{option} {target}: is a file, not a folder; give a folder for the outputs")
    if not folder and target.is_dir():
        raise InputError(f"{option} {target}: is a folder; give a file name such as {target / 'out'}")
    parent = target if folder else target.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise InputError(f"{option} {target}: {existing} is a file, so the {what} cannot be created there")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{option} {target}: {existing} is not writable; choose another place")
    try:
        if create:
            parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option} {target}: cannot create the folder {parent} ({exc.strerror})") from None
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    Parameters
    ----------
    path
        Final destination. Its parent folder is created if needed.
    private
        Create the file readable by the owner only (mode 0600): for files that hold
        exact defender locations.
    """
    final = check_output(path, option="output")
    # a private (0700) folder beside the target: the half-written file is never readable by
    # others, whatever mode the writer (pyogrio, pandas, ...) creates it with
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    tmp_path = work / final.name
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o600 if private else 0o644)
        os.replace(tmp_path, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_text(path: str | os.PathLike[str], text: str, private: bool = False) -> Path:
    """Write ``text`` (UTF-8) atomically and return the final path."""
    with atomic_path(path, private=private) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any, private: bool = False) -> Path:
    """Write ``data`` as indented JSON atomically (numpy scalars are converted)."""
    return write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n", private=private)


def write_csv(path: str | os.PathLike[str], frame: pd.DataFrame, private: bool = False) -> Path:
    """Write a DataFrame (geometry column dropped) as CSV atomically.

    Text cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or
    carriage return, and not a number) are prefixed with ``'`` (OWASP's CSV-injection advice):
    ids, names and reasons come from users' files. Text that already starts with ``'``
    before such a character gets one more, so :func:`read_table` gives every value back
    exactly.
    """
    if isinstance(frame, gpd.GeoDataFrame):
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    frame = _defuse_formulas(frame)
    with atomic_path(path, private=private) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


_GUARDED = r"^'*[=+\-@\t\r]"  # what write_csv prefixes with "'" (when not a number)
_UNGUARD = r"^'+[=+\-@\t\r]"  # what read_table strips one "'" from
#: Columns of our own tables that hold ids or names: always read as text ("007", "+1").
ID_COLUMNS = ("id", "defender_id", "haven_id", "second_haven_id", "target_id", "base_id", "incident_id", "unit")


def _defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        text = values.astype("string")
        risky = text.str.match(_GUARDED, na=False) & pd.to_numeric(text, errors="coerce").isna()
        if risky.any():
            if out is frame:
                out = frame.copy()
            out[column] = values.where(~risky.to_numpy(), "'" + text)
    return out


def write_geojson(
    path: str | os.PathLike[str], frame: gpd.GeoDataFrame, private: bool = False, decimals: int = 7
) -> Path:
    """Write a GeoDataFrame as GeoJSON in EPSG:4326, atomically.

    Coordinates are rounded to ``decimals`` places (7 ≈ 1 cm), which keeps files compact.
    """
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs("EPSG:4326")
    frame = frame.set_geometry(
        shapely.transform(frame.geometry.to_numpy(), lambda xy: np.round(xy, decimals)), crs=frame.crs
    )
    with atomic_path(path, private=private) as tmp:
        tmp.write_text(frame.to_json(drop_id=True, to_wgs84=False), encoding="utf-8")
    return Path(path)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_table(path: str | os.PathLike[str], option: str = "table") -> pd.DataFrame:
    """Read a table havenmap wrote (CSV, or JSON as from :func:`write_json`), ids exactly as written.

    The reader for joins between our own files (``coverage.csv``, ``alerts.csv`` /
    ``alerts.json``, ``patrol_schedule.csv`` ...): id columns (:data:`ID_COLUMNS`, and any
    column ending in ``_id``) stay text, and the spreadsheet formula guard of
    :func:`write_csv` is undone, so an id such as ``=cmd``, ``+1``, ``-x`` or ``@y`` comes
    back as it went in.

    Raises
    ------
    InputError
        One line naming ``option`` and the file when it is missing or unreadable.
    """
    from ._layers_util import load

    target = Path(path)
    if not target.exists():
        raise InputError(f"{option} {target}: file not found; check the path")
    if target.suffix.lower() == ".json":
        return _read_json_table(target, option)
    try:  # the header only, to find the id columns (load then reads the file properly)
        header = [str(c) for c in pd.read_csv(target, nrows=0, sep=None, engine="python").columns]
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError):
        header = []
    text = [*ID_COLUMNS, *(c for c in header if c.strip().lower().endswith("_id"))]
    try:
        frame, _ = load(target, text_columns=text)
    except InputError as exc:
        raise InputError(f"{option} {exc}") from None
    frame = frame.reset_index(drop=True)
    if isinstance(frame, gpd.GeoDataFrame):
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    return undo_formula_guard(frame)


def undo_formula_guard(frame: pd.DataFrame) -> pd.DataFrame:
    """Strip the ``'`` that :func:`write_csv` put before text starting with ``= + - @`` (tab, CR)."""
    out = frame
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        text = values.astype("string")
        guarded = text.str.match(_UNGUARD, na=False).to_numpy()
        if guarded.any():
            if out is frame:
                out = frame.copy()
            out[column] = values.where(~guarded, text.str.slice(1))
    return out


def _read_json_table(path: Path, option: str) -> pd.DataFrame:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{option} {path}: cannot read it as JSON ({exc})") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise InputError(f"{option} {path}: expected a list of rows (or an object holding one list of rows)")
        data = lists[0]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(f"{option} {path}: expected a list of rows (objects with the same keys)")
    frame = pd.DataFrame.from_records(data)
    for column in frame.columns:
        if str(column).lower() in ID_COLUMNS or str(column).lower().endswith("_id"):
            frame[column] = frame[column].map(lambda v: v if v is None else str(v))
    return frame
