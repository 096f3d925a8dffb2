"""Output safety: atomic files and folders, file modes, path conflicts, text safe for a terminal.

* A file is either complete or absent, never half-written (:func:`atomic_path`); a command's
  output folder is written aside and moved in at the end, so a failed run leaves the old
  folder as it was and a successful one leaves no stale file of an earlier run
  (:func:`output_folder`).
* Ordinary files and folders get the modes the user's umask gives; files holding exact
  defender locations are owner-only (0600) and folders created to hold them 0700. Modes
  are never looser than the umask allows.
* :func:`check_paths` refuses, before any work, a run whose output would overwrite one of
  its inputs or another of its outputs.
* :func:`printable` makes user text safe to print on a terminal.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .errors import InputError

PathLike = str | os.PathLike[str]

#: Printed text longer than this is cut (with a note of how much was left out).
MAX_PRINTED_CHARS = 2000


# ---------------------------------------------------------------------- modes
def umask() -> int:
    """The process's umask (from ``/proc/self/status`` on Linux, else read by setting and restoring it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(private: bool = False) -> int:
    """Mode of a new output file: 0666 less the umask, or owner-only 0600 (less the umask) when ``private``."""
    return (0o600 if private else 0o666) & ~umask()


def folder_mode(private: bool = False) -> int:
    """Mode of a new output folder: 0777 less the umask, or owner-only 0700 (less the umask) when ``private``."""
    return (0o700 if private else 0o777) & ~umask()


def _make_folder(folder: Path, private: bool, option: str, target: Path) -> None:
    """Create ``folder`` (missing parents with ordinary modes; the folder itself owner-only if ``private``)."""
    if folder.is_dir():
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=folder_mode(private), exist_ok=True)
    except OSError as exc:
        raise InputError(f"{option} {target}: cannot create the folder {folder} ({exc.strerror})") from None


# ---------------------------------------------------------------------- checks before any work
def check_output(path: PathLike, *, folder: bool = False, option: str = "--out", create: bool = True) -> Path:
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
    if create:
        _make_folder(parent, False, option, target)
    return target


def check_paths(
    inputs: Mapping[str, PathLike | Sequence[PathLike] | None],
    outputs: Mapping[str, PathLike | None],
    *,
    folders: Iterable[str] = (),
) -> None:
    """Refuse, before any work, a run whose outputs would overwrite its inputs or each other.

    Parameters
    ----------
    inputs
        Option name (as the user typed it, e.g. ``"--defenders"``) → the input file, or the
        files read from a folder; ``None`` for an option not given.
    outputs
        Option name → the output file or folder; ``None`` for an output not asked for.
    folders
        The options of ``outputs`` that name a folder. A command owns its output folder, so
        the folder conflicts with every path inside it.

    Paths are compared after resolving ``..`` and symbolic links (of every existing part);
    existing files also by device and inode, so a hard link to an input is caught too. Then
    every output is checked with :func:`check_output` (nothing is created).

    Raises
    ------
    havenmap.errors.InputError
        One line naming both options and paths: an output that is an input, lies in an input
        folder or holds an input; two outputs on the same path or one inside the other.
    """
    folder_options = set(folders)
    ins = [_Claim(opt, p, None) for opt, value in inputs.items() for p in _as_list(value)]
    outs = [_Claim(opt, value, opt in folder_options) for opt, value in outputs.items() if value is not None]
    for out in outs:
        for inp in ins:
            if out.overlaps(inp):
                raise InputError(_input_conflict(out, inp))
    for i, first in enumerate(outs):
        for second in outs[i + 1 :]:
            if first.overlaps(second):
                raise InputError(_output_conflict(first, second))
    for out in outs:
        check_output(out.given, folder=out.folder, option=out.option, create=False)


class _Claim:
    """A path a run reads or writes, resolved for comparison (``folder``: the run claims all inside it)."""

    def __init__(self, option: str, path: PathLike, folder: bool | None) -> None:
        self.option, self.given = option, Path(path)
        self.folder = self.given.is_dir() if folder is None else folder
        self.file = self.given.is_file()
        self.resolved = Path(os.path.abspath(self.given)).resolve()
        try:
            info = os.stat(self.given)
            self.inode: tuple[int, int] | None = (info.st_dev, info.st_ino)
        except OSError:
            self.inode = None

    def same(self, other: _Claim) -> bool:
        return self.resolved == other.resolved or (self.inode is not None and self.inode == other.inode)

    def overlaps(self, other: _Claim) -> bool:
        if self.same(other):
            return True
        inside = other.resolved.is_relative_to(self.resolved), self.resolved.is_relative_to(other.resolved)
        # a path "inside" an existing file is that file named as a folder: the same conflict
        return ((self.folder or self.file) and inside[0]) or ((other.folder or other.file) and inside[1])


def _as_list(value: PathLike | Sequence[PathLike] | None) -> list[PathLike]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [value]
    return [v for v in value if v is not None]


def _input_conflict(out: _Claim, inp: _Claim) -> str:
    head = f"{out.option} {out.given}"
    if out.same(inp):
        alias = "" if str(out.given) == str(inp.given) else f" {inp.given}"
        return (
            f"{head}: is the {inp.option} input{alias}; write the output to another path (inputs are never overwritten)"
        )
    if out.folder and inp.resolved.is_relative_to(out.resolved):
        return (
            f"{head}: the output folder holds the {inp.option} input {inp.given}; choose an output folder "
            "that holds none of the inputs (a run owns its output folder)"
        )
    what = "input folder" if inp.folder else "input"
    return f"{head}: lies inside the {inp.option} {what} {inp.given}; write the output elsewhere"


def _output_conflict(first: _Claim, second: _Claim) -> str:
    if first.same(second):
        return (
            f"{second.option} {second.given}: is the same path as {first.option} {first.given}; "
            "give each output its own path"
        )
    outer, inner = (first, second) if first.folder else (second, first)
    return (
        f"{inner.option} {inner.given}: lies inside the {outer.option} output folder {outer.given}; "
        "give each output its own path"
    )


# ---------------------------------------------------------------------- output folders
@contextlib.contextmanager
def output_folder(path: PathLike, owns: Iterable[str], *, option: str = "--out") -> Iterator[Path]:
    """A fresh folder to write a run's outputs into; they replace those in ``path`` only if the block succeeds.

    Parameters
    ----------
    path
        The command's output folder (created if missing).
    owns
        Glob patterns, relative to the folder with ``/`` between parts (``"coverage.csv"``,
        ``"gpx/*.gpx"``), of every file the command can write. At the end, files in ``path``
        matching them that this run did not write are removed, so an earlier run's file never
        passes for this run's. Other files in the folder are left alone.

    Yields
    ------
    pathlib.Path
        An empty owner-only folder for the writers: beside ``path``, or inside it when it exists
        (a hidden ``.<name>.*.part`` folder, so that moving the files in never crosses devices).

    Notes
    -----
    When ``path`` does not exist yet, the finished folder is renamed into place in one atomic
    step. Otherwise each written file is moved in atomically, then the stale ones are removed.
    On an exception ``path`` is left exactly as it was and nothing of the run remains. A
    folder holding an owner-only file is created owner-only (0700); an existing folder keeps
    its mode.
    """
    target = check_output(path, folder=True, option=option, create=False)
    owns = tuple(owns)
    _check_owned(target, owns, option)
    fresh = not target.exists()
    if fresh:
        _make_folder(target.parent, False, option, target)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent if fresh else target))
    try:
        yield stage
        _settle_modes(stage)
        written = {f.relative_to(stage).as_posix() for f in stage.rglob("*") if not f.is_dir()}
        if fresh:
            os.rename(stage, target)
            return
        for rel in sorted(written):
            _move_in(stage, target, rel)
        for pattern in owns:
            for old in target.glob(pattern):
                if old.relative_to(target).as_posix() not in written and (old.is_file() or old.is_symlink()):
                    old.unlink()
        _remove_emptied(target, owns)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _remove_emptied(target: Path, owns: Sequence[str]) -> None:
    """Remove the sub-folders the run writes into (``threat/``, ``patrol/gpx/``) when now empty."""
    subs = {tuple(p.split("/")[:depth]) for p in owns for depth in range(1, len(p.split("/")))}
    for parts in sorted(subs, key=len, reverse=True):  # the deepest first: patrol/gpx before patrol
        if any(ch in part for part in parts for ch in "*?["):
            continue
        sub = target.joinpath(*parts)
        if sub.is_dir() and not sub.is_symlink() and not any(sub.iterdir()):
            sub.rmdir()


def _check_owned(target: Path, owns: Sequence[str], option: str) -> None:
    """Refuse a folder where a file the run writes, or a folder it writes into, is in the way."""
    for pattern in owns:
        parts = pattern.split("/")
        for depth in range(1, len(parts)):
            sub = target.joinpath(*parts[:depth])
            if sub.exists() and not sub.is_dir():
                raise InputError(
                    f"{option} {target}: {sub} is a file, not a folder; move it away (the run writes {pattern})"
                )
        if not any(ch in pattern for ch in "*?[") and (target / pattern).is_dir():
            raise InputError(
                f"{option} {target}: {target / pattern} is a folder; move it away (the run writes a file there)"
            )


def _settle_modes(stage: Path) -> None:
    """Give every staged folder its final mode: owner-only when it holds an owner-only file."""
    folders = [stage, *(d for d in stage.rglob("*") if d.is_dir())]
    for folder in folders:
        modes = [stat.S_IMODE(f.stat().st_mode) for f in folder.rglob("*") if f.is_file()]
        os.chmod(folder, folder_mode(any(not mode & 0o077 for mode in modes)))


def _move_in(stage: Path, target: Path, rel: str) -> None:
    """Move the staged file ``rel`` into ``target``; new sub-folders take their staged folder's mode."""
    dest = target / rel
    missing = [p for p in dest.relative_to(target).parents if p != Path(".") and not (target / p).exists()]
    for part in reversed(missing):
        (target / part).mkdir()
        os.chmod(target / part, stat.S_IMODE((stage / part).stat().st_mode))
    os.replace(stage / rel, dest)


# ---------------------------------------------------------------------- atomic files
@contextlib.contextmanager
def atomic_path(path: PathLike, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    Parameters
    ----------
    path
        Final destination. Its parent folder is created if needed (owner-only when ``private``).
    private
        Create the file readable by the owner only (mode 0600): for files that hold exact
        defender locations. Otherwise the file gets 0666 less the umask.
    """
    final = check_output(path, option="output", create=False)
    _make_folder(final.parent, private, "output", final)
    # a private (0700) folder beside the target: the half-written file is never readable by
    # others, whatever mode the writer (pyogrio, pandas, ...) creates it with
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    tmp_path = work / final.name
    try:
        yield tmp_path
        os.chmod(tmp_path, file_mode(private))
        os.replace(tmp_path, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write_text(path: PathLike, text: str, private: bool = False) -> Path:
    """Write ``text`` (UTF-8) atomically and return the final path."""
    with atomic_path(path, private=private) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: PathLike, data: Any, private: bool = False) -> Path:
    """Write ``data`` as indented JSON atomically (numpy scalars are converted)."""
    return write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n", private=private)


def write_csv(path: PathLike, frame: pd.DataFrame, private: bool = False, *, hxl: bool = False) -> Path:
    """Write a DataFrame (geometry column dropped) as CSV atomically.

    Text cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or
    carriage return, and not a number) are prefixed with ``'`` (OWASP's CSV-injection advice):
    ids, names and reasons come from users' files. Text that already starts with ``'``
    before such a character gets one more, so :func:`read_table` gives every value back
    exactly.

    With ``hxl`` the header line is followed by an HXL hashtag row (:func:`hxl_hashtags`), so
    HXL tools (libhxl, HDX, HXL Proxy) read the columns by meaning; havenmap's own readers
    skip it.
    """
    if isinstance(frame, gpd.GeoDataFrame):
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    frame = _defuse_formulas(frame)
    with atomic_path(path, private=private) as tmp:
        if hxl:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                rows = csv.writer(handle, lineterminator="\n")
                rows.writerow([str(c) for c in frame.columns])
                rows.writerow(hxl_hashtags(frame.columns))
                frame.to_csv(handle, index=False, header=False, lineterminator="\n")
        else:
            frame.to_csv(tmp, index=False)
    return Path(path)


# ---------------------------------------------------------------------- HXL hashtags
#: Our documented output columns and the HXL hashtag each carries in a hashtag row (the README
#: has this table). Columns named ``<stem>_<minutes>`` (``covered_15``, ``share_within_5``) take
#: the stem's hashtag plus ``+m<minutes>``; other columns are left untagged (HXL ignores them).
HXL_HASHTAGS: dict[str, str] = {
    # incidents (read_incidents, read_incident_feeds, share bundles)
    "incident_id": "#event+id",
    "date": "#date+occurred",
    "week": "#date+occurred+week_start",
    "event_type": "#event+type",
    "sub_event_type": "#event+type+sub",
    "fatalities": "#affected+killed",
    "geo_precision": "#geo+precision",
    "notes": "#description",
    "source": "#meta+source",
    "sources": "#meta+source+list",
    "source_kinds": "#meta+source+kind+list",
    "n_sources": "#meta+source+num",
    "source_id": "#meta+id+source",
    "merged_id": "#event+id+merged",
    "kept": "#status+kept",
    "days_apart": "#indicator+days_apart+num",
    "metres_apart": "#indicator+metres_apart+num",
    "merge_reason": "#description+merge",
    "latitude": "#geo+lat",
    "longitude": "#geo+lon",
    "lat": "#geo+lat",
    "lon": "#geo+lon",
    # grid cells of share bundles
    "cell_id": "#loc+id+cell",
    "cell_lat": "#geo+lat+cell_centre",
    "cell_lon": "#geo+lon+cell_centre",
    "cell_size_m": "#indicator+cell_size_m+num",
    "incidents": "#event+num",
    "band_min": "#indicator+band_min+num",
    "share_within": "#indicator+share+within",
    # defenders per k-anonymous cell, coverage
    "defenders": "#beneficiary+num",
    "covered": "#beneficiary+covered+num",
    "slow": "#beneficiary+slow+num",
    "unreachable": "#beneficiary+unreachable+num",
    "suppressed": "#status+suppressed",
    "defender_id": "#beneficiary+id",
    "haven_id": "#loc+id+haven",
    "haven_name": "#loc+name+haven",
    "second_haven_id": "#loc+id+haven+second",
    "travel_time_s": "#indicator+travel_time_s+num",
    "second_travel_time_s": "#indicator+travel_time_s+second+num",
    "reachable": "#status+reachable",
    "reason": "#description+reason",
    "served": "#beneficiary+served+num",
    "share": "#indicator+share+covered",
    "lost": "#beneficiary+lost+num",
    "cut_off": "#beneficiary+cut_off+num",
    "lose_all_cover": "#beneficiary+lose_all_cover+num",
    "lose_all_cover_ids": "#beneficiary+id+lose_all_cover+list",
    "haven_without_closures": "#loc+id+haven+without_closures",
    "haven_with_closures": "#loc+id+haven+with_closures",
    "time_without": "#indicator+travel_time_s+without_closures+num",
    "time_with": "#indicator+travel_time_s+with_closures+num",
    "delay_s": "#indicator+delay_s+num",
    "band_without": "#indicator+band_min+without_closures+num",
    "band_with": "#indicator+band_min+with_closures+num",
    # alerts (per defender; per area in share bundles)
    "level": "#severity",
    "score": "#severity+score+num",
    "defenders_alerted": "#beneficiary+alerted+num",
    "critical": "#beneficiary+alerted+critical+num",
    "high": "#beneficiary+alerted+high+num",
    "elevated": "#beneficiary+alerted+elevated+num",
    "recent_count": "#event+recent+num",
    "baseline_count": "#event+baseline+num",
    "baseline_rate_per_week": "#indicator+baseline_rate_per_week+num",
    "expected_recent": "#indicator+expected_recent+num",
    "p_value": "#indicator+p_value+num",
    "severe_count": "#event+severe+num",
    "nearest_m": "#indicator+nearest_m+num",
    "nearest_street": "#loc+name+street",
    "distance_m": "#indicator+distance_m+num",
    "recent_days": "#indicator+recent_days+num",
    "baseline_days": "#indicator+baseline_days+num",
    "as_of": "#date+as_of",
    # threat per road and node
    "osmid": "#geo+node+id",
    "risk": "#severity+risk+num",
    # patrols (schedules, frequencies, areas)
    "unit": "#org+unit",
    "day": "#date+day+num",
    "days": "#date+day+num+count",
    "stop": "#indicator+stop+num",
    "target_id": "#loc+id+target",
    "arrival_min": "#indicator+arrival_min+num",
    "departure_min": "#indicator+departure_min+num",
    "kind": "#meta+kind",
    "priority": "#indicator+priority+num",
    "target_frequency": "#frequency+target",
    "planned_visits": "#indicator+planned_visits+num",
    "planned_frequency": "#frequency+planned",
    "presence_frequency": "#frequency+presence",
    "cells": "#loc+cell+num",
    "area_km2": "#indicator+area_km2+num",
    # points
    "id": "#meta+id",
    "name": "#loc+name",
    "public": "#status+public",
}
_NUMBERED = re.compile(r"^(?P<stem>[a-z_]+?)_(?P<minutes>\d+(?:\.\d+)?)$")


def hxl_hashtags(columns: Iterable[object]) -> list[str]:
    """The HXL hashtag of each column (see :data:`HXL_HASHTAGS`); ``""`` for columns without one.

    ``covered_15`` / ``share_within_5`` / ``lost_10`` (a stem and a number of minutes) take the
    stem's hashtag plus ``+m15`` (``+m7_5`` for 7.5 minutes). A hashtag is used once per table:
    a second column with the same hashtag gets an ``+n2`` attribute so HXL tools tell them apart.
    """
    tags: list[str] = []
    seen: dict[str, int] = {}
    for column in columns:
        name = str(column)
        tag = HXL_HASHTAGS.get(name, "")
        numbered = _NUMBERED.match(name)
        if not tag and numbered and numbered["stem"] in HXL_HASHTAGS:
            tag = f"{HXL_HASHTAGS[numbered['stem']]}+m{numbered['minutes'].replace('.', '_')}"
        if tag:
            seen[tag] = seen.get(tag, 0) + 1
            if seen[tag] > 1:
                tag = f"{tag}+n{seen[tag]}"
        tags.append(tag)
    return tags


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


def write_geojson(path: PathLike, frame: gpd.GeoDataFrame, private: bool = False, decimals: int = 7) -> Path:
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


# ---------------------------------------------------------------------- terminal text
# C0 and C1 control characters (ESC starts the sequences that retitle or clear a terminal), DEL,
# lone surrogates (undecodable bytes in file names) and the marks that reorder text on screen
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object, limit: int | None = MAX_PRINTED_CHARS) -> str:
    """``text`` safe to print on a terminal, on one line.

    Control characters (escape sequences, carriage returns, newlines, tabs), lone surrogates
    and bidirectional overrides are shown as escapes such as ``\\x1b`` and ``\\u202e``; text
    longer than ``limit`` characters is cut, with a note of how many were left out.
    """
    out = _UNPRINTABLE.sub(_escape, str(text))
    if limit is not None and len(out) > limit:
        out = f"{out[:limit]}… ({len(out) - limit:,} more characters)"
    return out


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
