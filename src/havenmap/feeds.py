"""Incident feeds from several sources merged into one table, each incident counted once.

Protection teams pool incident reports: ACLED exports, UCDP GED, and partners' own CSVs
(often with an HXL hashtag row: ``#date``, ``#geo+lat``, ``#geo+lon``, ``#event+type``).
The same attack then arrives two or three times. :func:`read_incident_feeds` reads every
file with :func:`havenmap.layers.read_incidents` (which recognises ACLED, UCDP GED and HXL)
and merges the likely duplicates *across* feeds into one incident that lists all its
sources; threat, early warning and backtests then count it once.

Two records from different feeds are **likely duplicates** when (all of):

* their dates are at most ``days`` apart (default 1: the same day, the day before or after;
  whole days, times of day ignored); undated records are never merged;
* they lie at most ``metres`` apart (default 500 m, great-circle), times the precision factor
  of the less precise one (``geo_precision`` 1 / 2 / 3 → × 1 / 2 / 4, as the threat kernel
  widens imprecise incidents);
* their types are compatible (``types``): ``"family"`` (default) — the same family of
  :data:`TYPE_FAMILIES` (political violence: battles, explosions, violence against civilians,
  UCDP's three kinds of organised violence; demonstrations: protests, riots; strategic
  developments), or either type unknown (a partner's "incident", a blank type, a word no
  family knows); ``"exact"`` — the same type text, or either blank / "incident";
  ``"any"`` — types ignored.

Records within one feed are never merged with each other (a feed's two reports are two
events by its own account), and a merged incident holds at most one record per feed. Pairs
are merged closest first (fewest days, then fewest metres apart) and only when every record
of the two groups is a likely duplicate of every other (complete linkage), so a chain
A ~ B ~ C with A far from C does not collapse.

The merged incident keeps the most precise record (lowest ``geo_precision``, then the feed
given first): its id, date, place, type and notes; ``fatalities`` is the largest count any
source gives. ``incidents_merged.csv`` (:meth:`IncidentFeeds.write_audit`) lists every record
of every merged incident, so an analyst can check each merge.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from . import _checks, _io, layers
from .errors import InputError
from .manifest import sha256_file

__all__ = [
    "AUDIT_COLUMNS",
    "PRECISION_FACTORS",
    "TYPE_FAMILIES",
    "DedupOptions",
    "IncidentFeeds",
    "feed_names",
    "merge_incident_feeds",
    "read_incident_feeds",
    "type_family",
]

PathLike = str | os.PathLike[str]

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), metres
#: ``geo_precision`` → factor on the distance threshold (the threat kernel's bandwidth factors).
PRECISION_FACTORS: dict[int, float] = {1: 1.0, 2: 2.0, 3: 4.0}
#: Type families for ``types="family"``: lower-case event (or sub-event) types of ACLED, UCDP GED
#: (as :func:`havenmap.layers.read_incidents` names them) and common partner words.
TYPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "political violence": (
        "battles",
        "armed clash",
        "explosions/remote violence",
        "violence against civilians",
        "state-based conflict",
        "non-state conflict",
        "one-sided violence",
    ),
    "demonstrations": ("protests", "riots", "mob violence", "violent demonstration", "peaceful protest"),
    "strategic developments": ("strategic developments",),
}
# words that place a partner's own type in a family when no family lists the type itself
_FAMILY_WORDS: dict[str, tuple[str, ...]] = {
    "political violence": (
        "attack",
        "armed",
        "shoot",
        "shot",
        "gun",
        "kill",
        "murder",
        "massacre",
        "clash",
        "fight",
        "battle",
        "bomb",
        "explos",
        "grenade",
        "ied",
        "drone",
        "shell",
        "kidnap",
        "abduct",
        "disappear",
        "assault",
        "violence",
    ),
    "demonstrations": ("protest", "demonstrat", "riot", "march", "mob"),
    "strategic developments": ("arrest", "looting", "agreement"),
}
_UNKNOWN_TYPES = frozenset({"", "incident", "event", "other", "unknown", "nan"})
TYPE_RULES = ("family", "exact", "any")
#: Columns of ``incidents_merged.csv`` (:attr:`IncidentFeeds.audit`).
AUDIT_COLUMNS = (
    "merged_id",
    "kept",
    "source",
    "source_id",
    "date",
    "event_type",
    "sub_event_type",
    "fatalities",
    "geo_precision",
    "latitude",
    "longitude",
    "days_apart",
    "metres_apart",
    "merge_reason",
)


@dataclass(frozen=True)
class DedupOptions:
    """When records of different feeds count as one incident (see the module docstring).

    Parameters
    ----------
    days
        Whole days two dates may be apart (0 = the same day; default 1).
    metres
        Great-circle metres two places may be apart (times the precision factor; default 500).
    types
        ``"family"``, ``"exact"`` or ``"any"``.
    """

    days: int = 1
    metres: float = 500.0
    types: str = "family"

    def __post_init__(self) -> None:
        days = _checks.number(self.days, "--dedup-days", "a whole number of days", at_least=0, at_most=366)
        if days != int(days):
            raise InputError(f"--dedup-days {self.days!r}: give a whole number of days (0 = the same day)")
        object.__setattr__(self, "days", int(days))
        metres = _checks.number(self.metres, "--dedup-m", "a distance in metres", at_least=0, at_most=100_000)
        object.__setattr__(self, "metres", metres)
        if self.types not in TYPE_RULES:
            raise InputError(f"dedup types {self.types!r}: use one of {', '.join(TYPE_RULES)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "dedup") -> DedupOptions:
        """Build from a mapping (a TOML table); unknown keys are an :class:`InputError`."""
        _checks.check_keys(cls, values, source)
        return cls(**values)

    @classmethod
    def from_file(cls, path: PathLike, table: str = "dedup") -> DedupOptions:
        """Read the ``[dedup]`` table (or ``table``) of a TOML file; missing keys keep their defaults."""
        data = _checks.read_toml(path)
        return cls.from_dict(data.get(table, {}), source=f"{path} [{table}]")


@dataclass
class IncidentFeeds:
    """Result of :func:`read_incident_feeds` / :func:`merge_incident_feeds`.

    Attributes
    ----------
    incidents
        The merged incidents (EPSG:4326): the columns of :func:`havenmap.layers.read_incidents`
        (``source`` = the name of the feed of the kept record) plus ``sources`` (feed names of
        every record merged into it, kept record first, ``"; "``-joined), ``source_ids``
        (``feed:id`` of each, same order) and ``n_sources``. With several feeds ``incident_id``
        is ``feed:id`` of the kept record (ids of different feeds may clash); with one feed the
        file's own ids. With several feeds ``incidents.attrs['merged_feeds']`` holds their
        names, and messages about incidents name them by ``feed:id``, not by merged row.
    audit
        One row per record of every merged incident (:data:`AUDIT_COLUMNS`), merged incidents in
        order: ``merged_id`` (its ``incident_id``), ``kept``, ``source`` (feed), ``source_id``,
        the record's own ``date``, types, ``fatalities``, ``geo_precision``, ``latitude``,
        ``longitude``, and ``days_apart`` / ``metres_apart`` / ``merge_reason`` relative to the
        kept record.
    feeds
        The feed names, in the order given (file names without extension, made unique).
    records
        Records read, per feed.
    options
        The :class:`DedupOptions` used.
    """

    incidents: gpd.GeoDataFrame
    audit: pd.DataFrame
    feeds: tuple[str, ...]
    records: tuple[int, ...]
    options: DedupOptions

    @property
    def merged(self) -> int:
        """Records that were folded into another feed's record (total records − incidents)."""
        return int(sum(self.records)) - len(self.incidents)

    def summary(self) -> str:
        """One line: ``3 feeds (acled 120, ucdp 40, partner 12): 172 records → 150 incidents (22 merged)``."""
        parts = ", ".join(f"{name} {n:,}" for name, n in zip(self.feeds, self.records, strict=True))
        total = int(sum(self.records))
        return (
            f"{len(self.feeds)} feed{'s' if len(self.feeds) != 1 else ''} ({parts}): {total:,} records → "
            f"{len(self.incidents):,} incidents ({self.merged:,} duplicate{'s' if self.merged != 1 else ''} merged)"
        )

    def write_audit(self, path: PathLike, *, hxl: bool = False) -> Path:
        """Write :attr:`audit` as ``incidents_merged.csv`` (with an HXL hashtag row if ``hxl``)."""
        return _io.write_csv(path, self.audit, hxl=hxl)


def feed_names(paths: Sequence[PathLike]) -> tuple[str, ...]:
    """A short unique name per feed: the file name without its extensions (``acled_2024`` …, ``-2`` on repeats)."""
    names: list[str] = []
    for p in paths:
        stem = Path(os.fspath(p)).name
        stem = re.sub(r"(\.(csv|tsv|geojson|json|gpkg|parquet|geoparquet))?(\.(gz|bz2|zip|xz))?$", "", stem, flags=re.I)
        name, n = stem or "feed", 2
        while name in names:
            name, n = f"{stem}-{n}", n + 1
        names.append(name)
    return tuple(names)


def read_incident_feeds(
    paths: PathLike | Sequence[PathLike],
    options: DedupOptions | None = None,
    *,
    layer: str | None = None,
    names: Sequence[str] | None = None,
) -> IncidentFeeds:
    """Read incident files (ACLED, UCDP GED, HXL or generic CSV, GeoJSON...) and merge duplicates across them.

    The one function the CLI and scenario files use for ``--incidents`` / ``incidents``.

    Parameters
    ----------
    paths
        One file or several; each is read with :func:`havenmap.layers.read_incidents`.
    options
        When records are duplicates (:class:`DedupOptions`; default: 1 day, 500 m, type families).
    layer
        GeoPackage layer (for GeoPackage feeds holding several).
    names
        Feed names (default: :func:`feed_names`).

    Returns
    -------
    IncidentFeeds

    Raises
    ------
    havenmap.errors.InputError
        As :func:`havenmap.layers.read_incidents`, naming the file; no file given.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise InputError("--incidents: give at least one incident file")
    _check_distinct_feeds(paths)
    frames = [layers.read_incidents(p, layer=layer) for p in paths]
    return merge_incident_feeds(frames, names if names is not None else feed_names(paths), options)


def _check_distinct_feeds(paths: Sequence[PathLike]) -> None:
    """Refuse one feed given twice: its records would merge with themselves and count as confirmed twice.

    Files of equal size are compared by SHA-256, so a copy under another name is caught too.
    """
    by_size: dict[int, list[Path]] = {}
    for p in paths:
        path = Path(os.fspath(p))
        if path.is_file():  # a missing file is reported by read_incidents
            by_size.setdefault(path.stat().st_size, []).append(path)
    for group in by_size.values():
        first: dict[str, Path] = {}
        for path in group if len(group) > 1 else ():
            digest = sha256_file(path)
            if digest in first:
                earlier = first[digest]
                same = "is given twice" if earlier.resolve() == path.resolve() else f"holds the same bytes as {earlier}"
                raise InputError(
                    f"--incidents {path} {same}: the same feed twice would merge each incident with itself and "
                    "count it as confirmed by two sources; give each feed once"
                )
            first[digest] = path


def merge_incident_feeds(
    frames: Sequence[gpd.GeoDataFrame], names: Sequence[str], options: DedupOptions | None = None
) -> IncidentFeeds:
    """Merge already-read incident tables (canonical columns), one per feed; see :func:`read_incident_feeds`."""
    options = options if options is not None else DedupOptions()
    names = tuple(str(n) for n in names)
    if len(names) != len(frames) or len(set(names)) != len(names):
        raise InputError("merge_incident_feeds: give one unique name per feed")
    parts = []
    for k, (frame, name) in enumerate(zip(frames, names, strict=True)):
        part = frame.reset_index(drop=True).copy()
        part["_feed"] = k
        part["_id"] = part["incident_id"].astype(str)
        part["source"] = pd.Series(name, index=part.index, dtype="string")
        parts.append(part)
    table = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    table = gpd.GeoDataFrame(table, geometry=table.geometry.name, crs="EPSG:4326")
    group = _groups(table, options)
    return _assemble(table, group, names, tuple(len(f) for f in frames), options)


# ---------------------------------------------------------------------- matching


def type_family(event_type: object, sub_event_type: object = "") -> str:
    """The family of a type (:data:`TYPE_FAMILIES`, then keywords), or ``""`` when unknown."""
    for text in (event_type, sub_event_type):
        key = _type_key(text)
        for family, members in TYPE_FAMILIES.items():
            if key in members:
                return family
    words = f"{_type_key(event_type)} {_type_key(sub_event_type)}"
    for family, stems in _FAMILY_WORDS.items():
        if any(re.search(rf"\b{re.escape(stem)}", words) for stem in stems):
            return family
    return ""


def _type_key(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    return " ".join(str(value).strip().lower().split())


def _unit_xyz(table: gpd.GeoDataFrame) -> np.ndarray:
    """Points on a sphere of the Earth's radius (metres): chords give great-circle distances anywhere."""
    xy = shapely.get_coordinates(table.geometry.to_numpy())
    lon, lat = np.radians(xy[:, 0]), np.radians(xy[:, 1])
    return EARTH_RADIUS_M * np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _arc_m(chord: np.ndarray) -> np.ndarray:
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.clip(chord / (2.0 * EARTH_RADIUS_M), 0.0, 1.0))


def _candidates(table: gpd.GeoDataFrame, options: DedupOptions) -> pd.DataFrame:
    """Every pair of records of different feeds that are likely duplicates: ``i, j, days, metres``.

    One KD-tree over (x, y, z, day) with days scaled to metres, queried once
    (``cKDTree.query_pairs``), then the exact rules on the pairs found, vectorised.
    """
    day = pd.to_datetime(table["date"], errors="coerce").dt.normalize()
    dated = np.flatnonzero(day.notna().to_numpy())
    empty = pd.DataFrame({"i": [], "j": [], "days": [], "metres": []})
    feeds = table["_feed"].to_numpy()
    if len(dated) < 2 or len(np.unique(feeds[dated])) < 2:
        return empty
    factor = (
        pd.to_numeric(table["geo_precision"], errors="coerce")
        .fillna(1)
        .clip(1, 3)
        .map(lambda c: PRECISION_FACTORS.get(int(np.ceil(c)), 4.0))
        .to_numpy(dtype=float)
    )
    reach = options.metres * factor[dated].max()
    day_number = ((day.iloc[dated] - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy(dtype=float)
    scale = max(reach, 1.0) / max(options.days, 0.5)  # metres per day: both limits become one ball
    xyz = _unit_xyz(table.iloc[dated])
    tree = cKDTree(np.column_stack([xyz, day_number * scale]))
    pairs = tree.query_pairs(r=np.sqrt(2.0) * max(reach, 1.0) * (1 + 1e-9), output_type="ndarray")
    if not len(pairs):
        return empty
    i, j = dated[pairs[:, 0]], dated[pairs[:, 1]]
    days = np.abs(day_number[pairs[:, 0]] - day_number[pairs[:, 1]])
    metres = _arc_m(np.linalg.norm(xyz[pairs[:, 0]] - xyz[pairs[:, 1]], axis=1))
    limit = options.metres * np.maximum(factor[i], factor[j])
    ok = (feeds[i] != feeds[j]) & (days <= options.days) & (metres <= limit + 1e-6)
    i, j, days, metres = i[ok], j[ok], days[ok], metres[ok]
    ok = _compatible(table, i, j, options.types)
    out = pd.DataFrame({"i": i[ok], "j": j[ok], "days": days[ok], "metres": metres[ok]})
    return out.sort_values(["days", "metres", "i", "j"], kind="stable").reset_index(drop=True)


def _compatible(table: pd.DataFrame, i: np.ndarray, j: np.ndarray, rule: str) -> np.ndarray:
    if rule == "any" or not len(i):
        return np.ones(len(i), dtype=bool)
    types = table["event_type"].map(_type_key).to_numpy(dtype=object)
    unknown = np.isin(types, list(_UNKNOWN_TYPES))
    if rule == "exact":
        return unknown[i] | unknown[j] | (types[i] == types[j])
    family = np.array(
        [type_family(t, s) for t, s in zip(table["event_type"], table["sub_event_type"], strict=True)], dtype=object
    )
    unknown = family == ""
    return unknown[i] | unknown[j] | (family[i] == family[j])


def _groups(table: gpd.GeoDataFrame, options: DedupOptions) -> np.ndarray:
    """Group label per record: greedy complete-linkage merging of the candidate pairs, closest first.

    Written by hand (a loop over candidate pairs only): clustering libraries have no
    "at most one record per feed" constraint.
    """
    n = len(table)
    label = np.arange(n)
    pairs = _candidates(table, options)
    if pairs.empty:
        return label
    feeds = table["_feed"].to_numpy()
    linked = set(zip(pairs["i"].tolist(), pairs["j"].tolist(), strict=True))
    members: dict[int, list[int]] = {}
    for a, b in zip(pairs["i"].tolist(), pairs["j"].tolist(), strict=True):
        ga, gb = label[a], label[b]
        if ga == gb:
            continue
        ma, mb = members.get(ga, [ga]), members.get(gb, [gb])
        if {feeds[x] for x in ma} & {feeds[x] for x in mb}:
            continue
        if not all((min(x, y), max(x, y)) in linked for x in ma for y in mb):
            continue
        keep, drop = (ga, gb) if ga < gb else (gb, ga)
        members[keep] = ma + mb
        members.pop(drop, None)
        label[members[keep]] = keep
    return label


# ---------------------------------------------------------------------- the merged table


def _assemble(
    table: gpd.GeoDataFrame, group: np.ndarray, names: tuple[str, ...], records: tuple[int, ...], opts: DedupOptions
) -> IncidentFeeds:
    several = len(names) > 1
    precision = pd.to_numeric(table["geo_precision"], errors="coerce").fillna(3).to_numpy()
    order = np.lexsort((np.arange(len(table)), table["_feed"].to_numpy(), precision, group))
    kept_of_group = pd.Series(order).groupby(group[order]).first()  # the most precise record per group
    kept = kept_of_group.to_numpy()
    kept_of = kept_of_group.reindex(group).to_numpy()
    ident = table["source"].astype(str) + ":" + table["_id"]
    # sources of every group, the kept record first, then in feed order
    rank = np.where(np.arange(len(table)) == kept_of, -1, table["_feed"].to_numpy())
    listed = pd.DataFrame({"g": group, "rank": rank, "source": table["source"].astype(str), "ident": ident})
    listed = listed.sort_values(["g", "rank"], kind="stable")
    sources = listed.groupby("g", sort=True)["source"].agg("; ".join)
    source_ids = listed.groupby("g", sort=True)["ident"].agg("; ".join)
    counts = listed.groupby("g", sort=True).size()
    fatalities = pd.Series(table["fatalities"].to_numpy()).groupby(group).max()

    out = table.iloc[kept].copy()
    keys = group[kept]
    out["fatalities"] = fatalities.loc[keys].to_numpy().astype("int64")
    out["sources"] = pd.array(sources.loc[keys].to_numpy(), dtype="string")
    out["source_ids"] = pd.array(source_ids.loc[keys].to_numpy(), dtype="string")
    out["n_sources"] = counts.loc[keys].to_numpy().astype("int64")
    if several:
        out["incident_id"] = pd.array(ident.iloc[kept].to_numpy(), dtype="string")
    out = out.iloc[np.argsort(kept, kind="stable")]  # file order (one feed: exactly read_incidents' rows)
    geometry = out.geometry.name
    cols = [c for c in out.columns if c not in ("_feed", "_id", geometry)]
    out = gpd.GeoDataFrame(out[[*cols, geometry]].reset_index(drop=True), geometry=geometry, crs="EPSG:4326")
    out.attrs["source"] = ", ".join(names)
    if several:  # rows of the merged table are no rows of any file: messages name the feed's record instead
        out.attrs["merged_feeds"] = names
    merged_id = pd.Series(
        (ident if several else table["_id"]).iloc[kept].to_numpy(), index=keys
    )  # the merged incident's id, per group
    audit = _audit(table, group, kept_of, merged_id, opts)
    return IncidentFeeds(incidents=out, audit=audit, feeds=names, records=records, options=opts)


def _audit(
    table: gpd.GeoDataFrame, group: np.ndarray, kept_of: np.ndarray, merged_id: pd.Series, opts: DedupOptions
) -> pd.DataFrame:
    size = np.bincount(group, minlength=len(table))[group]
    rows = np.flatnonzero(size > 1)
    if not len(rows):
        return pd.DataFrame({c: [] for c in AUDIT_COLUMNS})
    xy = shapely.get_coordinates(table.geometry.to_numpy())
    xyz = _unit_xyz(table)
    ref = kept_of[rows]
    day = pd.to_datetime(table["date"], errors="coerce").dt.normalize()
    days = (day.iloc[rows].to_numpy() - day.iloc[ref].to_numpy()) / np.timedelta64(1, "D")
    metres = _arc_m(np.linalg.norm(xyz[rows] - xyz[ref], axis=1))
    is_kept = rows == ref
    reasons = [
        "kept: the most precise record" if k else _reason(table, r, f, d, m, opts)
        for r, f, k, d, m in zip(rows, ref, is_kept, days, metres, strict=True)
    ]
    audit = pd.DataFrame(
        {
            "merged_id": merged_id.loc[group[rows]].to_numpy(),
            "kept": is_kept,
            "source": table["source"].astype(str).to_numpy()[rows],
            "source_id": table["_id"].to_numpy()[rows],
            "date": day.iloc[rows].dt.date.astype(str).to_numpy(),
            "event_type": table["event_type"].to_numpy()[rows],
            "sub_event_type": table["sub_event_type"].to_numpy()[rows],
            "fatalities": table["fatalities"].to_numpy()[rows],
            "geo_precision": table["geo_precision"].to_numpy()[rows],
            "latitude": np.round(xy[rows, 1], 6),
            "longitude": np.round(xy[rows, 0], 6),
            "days_apart": np.abs(days).astype(int),
            "metres_apart": np.round(metres, 1),
            "merge_reason": reasons,
        }
    )
    audit["_g"] = group[rows]
    audit = audit.sort_values(["_g", "kept", "source"], ascending=[True, False, True], kind="stable")
    return audit.drop(columns="_g").reset_index(drop=True)


def _reason(table: pd.DataFrame, row: int, ref: int, days: float, metres: float, opts: DedupOptions) -> str:
    when = "same day" if days == 0 else f"{abs(int(days))} day{'s' if abs(days) != 1 else ''} apart"
    a, b = str(table["event_type"].iloc[row]), str(table["event_type"].iloc[ref])
    if opts.types == "any":
        kinds = "types not compared"
    elif _type_key(a) == _type_key(b):
        kinds = f"same type ({a or 'blank'})"
    else:
        fa, fb = type_family(a, table["sub_event_type"].iloc[row]), type_family(b, table["sub_event_type"].iloc[ref])
        family = fa or fb
        kinds = (
            f"types {a or 'blank'} ~ {b or 'blank'} ({family})" if fa and fb else f"type {a or b or 'blank'} unknown"
        )
    return f"{when}, {metres:,.0f} m apart, {kinds}"
