"""The share bundle's self-check: defenders, private havens and bases looked for in every file.

:class:`LeakScanner` reads each file of a bundle the way its readers would — CSV cells and rows,
GeoJSON / JSON values and coordinate arrays, the map's embedded data (each ``HM.call`` payload
decoded, polylines included), text — and reports:

* a **secret id** (defender, private haven, base) as a whole token anywhere in text; ids made only
  of digits only as the value of an id field (``id``, ``*_id`` columns and keys: a count ``1`` is
  no id), ids of one character as a whole value (a cell, a JSON string, an id field);
* a **secret name** as whole words, accents and case folded (Unicode NFKD without combining
  marks, then casefold: "JOSE PEREZ" is "José Pérez"): the full name and, for defenders, each of
  its words of 4 letters or more (a surname alone). Names of 1-2 letters ("Li") are looked for as
  whole values and in id and name fields only (in free text they are syllables and tags). A name
  or word that is a common word of the bundle — an ACLED / UCDP event type word ("Protest"),
  havenmap's own words in the bundle (:data:`EVENT_WORDS` and ``common_words``) — is looked for
  only in id and name fields; a name equal to a public haven's name is not looked for;
* ids and names inside a public street name (a defender called Hidalgo, the street Miguel
  Hidalgo), and defenders' name words inside a public haven's name, do not count;
* a **point within the radius** of a defender, private haven or base: every number pair a file
  holds (both orders), read as latitude/longitude (decimal degrees) and as projected metres (the
  bundle's UTM zone, Web Mercator), every decoded polyline vertex and every heat-map square.
  Free text is also read after URL-decoding (``%2C``), with degrees-minutes-seconds
  (``60°10'44.7"N``), hemisphere letters (``60.17908N 24.95133E``, ``S``/``W`` negative) and decimal
  commas (``60,17908 / 24,95133``) turned into decimal degrees.
  Exempt are points that depend on no one's whereabouts: vertices of the public road network and
  public havens (matching to the precision written), points of the publication grid (cell
  corners and centres) and of the 0.01° grid the map's view box is snapped to. A number pair
  written too coarsely to pin anything within the radius (e.g. 2 decimals, ±550 m) is not counted;
* a GPX file, or a file type the bundle never holds.

Written by hand: no library checks files for the points of a given set of people.
"""

from __future__ import annotations

import csv
import html
import io
import itertools
import json
import math
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from scipy.spatial import cKDTree

from . import _maphtml as mh

M_PER_DEG = 111_320.0
_NUMBER = re.compile(r"(?<![\w.\-])-?\d+(?:\.\d+)?(?![\w.])")
_FULL_NUMBER = re.compile(r"^\s*-?\d+(?:\.\d+)?\s*$")
_WORD = "(?:lat|lon|lng|long|latitude|longitude|x|y|e|n|east|north|easting|northing)"
_SEPARATOR = re.compile(rf"^[\s,;:/|()\[\]=]*(?:{_WORD}[\s,;:/|()\[\]=]*)?$", re.I)
_CALL = re.compile(r'HM\.call\("\w+",\s*\w+,\s*(.*)\);\s*$')
_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", re.S)
TEXT_SUFFIXES = (".csv", ".geojson", ".json", ".html", ".txt")
_HEMI = "NSEWnsew"
_DMS = re.compile(
    r"(?<![\w.])(\d{1,3})\s*°\s*(?:(\d{1,2}(?:[.,]\d+)?)\s*['′’]\s*(?:(\d{1,2}(?:[.,]\d+)?)\s*(?:[\"″”]|'')\s*)?)?"
    rf"([{_HEMI}](?![A-Za-z]))?"
)
_DEGREES = re.compile(rf"(?<![\w.])(\d{{1,3}}\.\d+)\s*°?\s*([{_HEMI}])(?![A-Za-z])")
_HEMI_FIRST = re.compile(rf"(?<![A-Za-z])([{_HEMI}])\s?(\d{{1,3}}\.\d+)(?![\w.])")
_COMMA_PAIR = re.compile(r"(?<![\w.,])(-?\d{1,3}),(\d{2,})(\s*(?:[/;|]|,\s)\s*|\s+)(-?\d{1,3}),(\d{2,})(?![\w,])")
_WORDS = re.compile(r"[^\W\d_]+")

#: Words of ACLED event types and sub-event types and UCDP violence types: a defender named
#: "Protest" is no leak in an incident table.
EVENT_TYPES = (
    "Battles", "Armed clash", "Government regains territory", "Non-state actor overtakes territory",
    "Explosions/Remote violence", "Chemical weapon", "Air/drone strike", "Suicide bomb",
    "Shelling/artillery/missile attack", "Remote explosive/landmine/IED", "Grenade",
    "Violence against civilians", "Sexual violence", "Attack", "Abduction/forced disappearance",
    "Protests", "Peaceful protest", "Protest with intervention", "Excessive force against protesters",
    "Riots", "Violent demonstration", "Mob violence", "Strategic developments", "Agreement", "Arrests",
    "Change to group/activity", "Disrupted weapons use", "Headquarters or base established",
    "Looting/property destruction", "Non-violent transfer of territory", "Other",
    "state-based conflict", "non-state conflict", "one-sided violence", "incident",
)  # fmt: skip


def fold(text: str) -> str:
    """``text`` for matching names: case folded, accents removed (NFKD without combining marks)."""
    decomposed = unicodedata.normalize("NFKD", str(text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The folded words (runs of letters) of ``text``."""
    return _WORDS.findall(fold(text))


#: Folded words and phrases of :data:`EVENT_TYPES`.
EVENT_WORDS = frozenset({w for t in EVENT_TYPES for w in words(t)} | {" ".join(words(t)) for t in EVENT_TYPES})


@dataclass(frozen=True)
class Leak:
    """What the self-check found: the file (relative to the bundle) and what leaked, in words."""

    file: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.what}"


@dataclass
class _Found:
    """What a file holds, as the scanner reads it."""

    text: list[str] = field(default_factory=list)  # free text (names, notes, labels)
    values: set[str] = field(default_factory=set)  # whole values: cells, JSON strings, id fields
    ids: set[str] = field(default_factory=set)  # values of id fields (id, *_id columns and keys)
    fields: list[str] = field(default_factory=list)  # values of id and name fields
    a: list[float] = field(default_factory=list)  # number pairs (a, b) and decimals written
    b: list[float] = field(default_factory=list)
    d: list[int] = field(default_factory=list)

    def pair(self, a: float, b: float, decimals: int) -> None:
        self.a.append(a)
        self.b.append(b)
        self.d.append(decimals)

    def pairs_of(self, numbers: Sequence[tuple[float, int]], consecutive: bool) -> None:
        if consecutive:
            for (x, dx), (y, dy) in itertools.pairwise(numbers):
                self.pair(x, y, min(dx, dy))
        else:
            for i, (x, dx) in enumerate(numbers):
                for y, dy in numbers[i + 1 :]:
                    self.pair(x, y, min(dx, dy))


class LeakScanner:
    """Scan files for the ids, names and positions of secret points (see the module docstring).

    Parameters
    ----------
    secrets
        Points that must not appear (EPSG:4326 or any CRS): columns ``kind`` ("defender",
        "private haven", "base"), ``id``, ``name`` (may be blank).
    public_lonlat
        ``(n, 2)`` longitude/latitude of the public points (road vertices, public havens).
    road_names
        Street names of the public road network (a secret name inside one is not counted).
    crs
        The bundle's metric CRS (local UTM): the publication grid and the radius are measured in it.
    grid_m
        Step of the publication grid's points (half the cell side: corners and centres).
    radius_m
        No point within this many metres of a secret point.
    assets
        Texts of ``<script>`` / ``<style>`` blocks that are code, not data (skipped in HTML).
    common_words
        Words of the bundle's own texts (besides :data:`EVENT_WORDS`): a name or name part equal to
        one is looked for in id and name fields only.
    public_names
        Names of public havens: a secret name equal to one is not looked for (the haven's name says
        nothing of the defender), a defender's name word inside one does not count. Ids and full
        names inside them still do (a public haven called "Safe room of D017" leaks).
    """

    def __init__(
        self,
        secrets: gpd.GeoDataFrame,
        public_lonlat: np.ndarray,
        road_names: Iterable[str],
        crs: Any,
        grid_m: float,
        radius_m: float,
        assets: Iterable[str] = (),
        common_words: Iterable[str] = (),
        public_names: Iterable[str] = (),
    ) -> None:
        self.crs = pyproj.CRS.from_user_input(crs)
        self.grid_m = float(grid_m)
        self.radius_m = float(radius_m)
        self._to_utm = pyproj.Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        self._merc_to_utm = pyproj.Transformer.from_crs("EPSG:3857", self.crs, always_xy=True)
        points = secrets.to_crs(self.crs) if len(secrets) else secrets
        self.kind = secrets["kind"].astype(str).to_numpy() if len(secrets) else np.array([], dtype=object)
        self.ids = secrets["id"].astype(str).to_numpy() if len(secrets) else np.array([], dtype=object)
        xy = shapely.get_coordinates(points.geometry.to_numpy()) if len(secrets) else np.zeros((0, 2))
        self.secret_tree = cKDTree(xy) if len(xy) else None
        public = np.asarray(public_lonlat, dtype=float).reshape(-1, 2)
        public = public[np.isfinite(public).all(axis=1)]
        self.public_deg = cKDTree(public[:, ::-1]) if len(public) else None  # (lat, lon)
        self.public_utm = (
            cKDTree(np.column_stack(self._to_utm.transform(public[:, 0], public[:, 1]))) if len(public) else None
        )
        self.assets = {a.strip() for a in assets}
        names = secrets["name"] if "name" in secrets.columns else [None] * len(secrets)
        self._id_pattern, self._short_ids = _id_patterns(self.kind, self.ids)
        common = EVENT_WORDS | {fold(w) for w in common_words}
        public = {" ".join(words(n)) for n in public_names if isinstance(n, str)} - {""}
        self._public = sorted(public, key=len, reverse=True)
        self._names, self._name_pattern, self._quiet_pattern, self._short_names = _name_patterns(
            self.kind, names, common, public
        )
        self._full_names = {" ".join(words(mh.plain(n))) for n in names}
        raw = {" ".join(r.split()) for r in road_names if isinstance(r, str) and r.strip()}
        self._raw_roads = sorted(raw, key=len, reverse=True)
        self._roads = sorted({fold(r) for r in raw}, key=len, reverse=True)
        self._roads_with: dict[str, list[str]] = {}

    # ------------------------------------------------------------ files

    def scan(self, folder: Path) -> list[Leak]:
        """Every leak in the files of ``folder`` (recursively), by file name."""
        leaks: list[Leak] = []
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            leaks += self.scan_file(path, path.relative_to(folder).as_posix())
        return leaks

    def scan_file(self, path: Path, name: str | None = None) -> list[Leak]:
        """The leaks in one file (``name``: how to call it in the message)."""
        name = name or path.name
        suffix = path.suffix.lower()
        if suffix == ".gpx":
            return [Leak(name, "a GPX file (routes and stops): GPX is never shared")]
        if suffix not in TEXT_SUFFIXES:
            return [Leak(name, f"a file type a share bundle never holds ({suffix or 'no extension'})")]
        text = path.read_text(encoding="utf-8", errors="replace")
        found = _Found()
        if suffix == ".csv":
            _read_csv(text, found)
        elif suffix in (".geojson", ".json"):
            try:
                _walk(json.loads(text), found)
            except json.JSONDecodeError:
                _read_text(text, found)
        elif suffix == ".html":
            self._read_html(text, found)  # the map's own numbers under "id" keys are its cells, not people
        else:
            _read_text(text, found)
        return [Leak(name, what) for what in self._judge(found)]

    def _read_html(self, text: str, found: _Found) -> None:
        rest = []
        last = 0
        for match in _BLOCK.finditer(text):
            rest.append(text[last : match.start()])
            last = match.end()
            body = match.group(2)
            if body.strip() in self.assets:
                continue
            for line in body.splitlines():
                call = _CALL.search(line)
                if call:
                    try:
                        _walk(json.loads(call.group(1)), found, numeric_ids=False)
                        continue
                    except json.JSONDecodeError:
                        pass
                _read_text(line, found)
        rest.append(text[last:])
        _read_text(html.unescape(re.sub(r"<[^>]*>", " ", "".join(rest))), found)

    # ------------------------------------------------------------ judging

    def _judge(self, found: _Found) -> list[str]:
        out: list[str] = []
        text = "\x00".join(t for t in found.text if not t.lstrip().startswith("<svg"))
        hit = self._first_unexplained(self._id_pattern, text)
        if hit is not None:
            out.append(f"holds the {self._kind_of_id(hit)} id {hit!r}")
        ids = {v.strip() for v in found.ids}
        values = {v.strip() for v in found.values} | ids
        short = sorted(i for i in self._short_ids if i in (ids if i.isdigit() else values))
        if short:
            out.append(f"holds the {self._kind_of_id(short[0])} id {short[0]!r}")
        folded = fold(text)
        hit = self._first_unexplained(self._name_pattern, folded)
        if hit is None:
            hit = self._first_unexplained(self._quiet_pattern, fold("\x00".join(found.fields)))
        if hit is None:
            short_names = sorted(self._short_names & {" ".join(fold(v).split()) for v in values})
            hit = short_names[0] if short_names else None
        if hit is not None:
            kind = self._names.get(" ".join(hit.split()), "secret")
            out.append(f"holds the name of a {kind} ({hit!r})")
        point = self._nearest_point(np.array(found.a), np.array(found.b), np.array(found.d, dtype=int))
        if point is not None:
            out.append(point)
        return out

    def _first_unexplained(self, pattern: re.Pattern[str] | None, text: str) -> str | None:
        """The first match of ``pattern`` in ``text`` that is not part of a public street name written there."""
        if pattern is None:
            return None
        for match in pattern.finditer(text):
            start, end = match.start(), match.end()
            if self._in_road_name(text, start, end):
                continue
            if " ".join(words(match.group(0))) in self._full_names or not self._in_public_name(text, start, end):
                return match.group(0)
        return None

    def _in_public_name(self, text: str, start: int, end: int) -> bool:
        """Whether ``text[start:end]`` (folded) lies inside a public haven's name written there."""
        word = text[start:end]
        for name in (n for n in self._public if word in n):
            lo = max(0, start - len(name))
            for found in re.finditer(re.escape(name), text[lo : end + len(name)]):
                if found.start() + lo <= start and found.end() + lo >= end:
                    return True
        return False

    def _in_road_name(self, text: str, start: int, end: int) -> bool:
        """Whether ``text[start:end]`` lies inside an occurrence of a street name of the public road network."""
        word = " ".join(text[start:end].split())
        folded = word == fold(word)  # names are matched in folded text, ids as written
        roads = self._roads_with.get(word)
        if roads is None:
            roads = [r for r in (self._roads if folded else self._raw_roads) if word.lower() in r.lower()]
            self._roads_with[word] = roads
        for road in roads:
            window = text[max(0, start - len(road)) : end + len(road)]
            offset = max(0, start - len(road))
            for found in re.finditer(re.escape(road), window, re.I):
                if found.start() + offset <= start and found.end() + offset >= end:
                    return True
        return False

    def _kind_of_id(self, ident: str) -> str:
        hit = np.flatnonzero(self.ids == ident)
        return str(self.kind[hit[0]]) if len(hit) else "secret"

    def _nearest_point(self, a: np.ndarray, b: np.ndarray, d: np.ndarray) -> str | None:
        """The first number pair (either order, degrees or metres) within the radius of a secret point."""
        if self.secret_tree is None or not len(a):
            return None
        best: tuple[float, str] | None = None
        for lat, lon in ((a, b), (b, a)):
            hit = self._degree_hits(lat, lon, d)
            if hit is not None and (best is None or hit[0] < best[0]):
                best = hit
        for x, y in ((a, b), (b, a)):
            hit = self._metre_hits(x, y, d)
            if hit is not None and (best is None or hit[0] < best[0]):
                best = hit
        return None if best is None else best[1]

    def _degree_hits(self, lat: np.ndarray, lon: np.ndarray, d: np.ndarray) -> tuple[float, str] | None:
        half = 0.5 * 10.0 ** (-d.astype(float))
        ok = (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & (half * M_PER_DEG <= self.radius_m)
        if not ok.any():
            return None
        lat, lon, half, d = lat[ok], lon[ok], half[ok], d[ok]
        x, y = self._to_utm.transform(lon, lat)
        xy = np.column_stack([x, y])
        good = np.isfinite(xy).all(axis=1)
        if not good.any():
            return None
        dist, who = self.secret_tree.query(np.where(good[:, None], xy, 0.0), distance_upper_bound=self.radius_m)
        near = np.flatnonzero(good & np.isfinite(dist))
        if not len(near):
            return None
        tol = half[near] + 1e-8
        exempt = self._on_grid(xy[near], tol * M_PER_DEG * 1.5 + 0.01)
        exempt |= _on_degree_grid(lat[near]) & _on_degree_grid(lon[near])
        if self.public_deg is not None:
            gap = self.public_deg.query(np.column_stack([lat[near], lon[near]]), p=np.inf)[0]
            exempt |= gap <= tol
        near = near[~exempt]
        if not len(near):
            return None
        i = near[np.argmin(dist[near])]
        what = f"a point (latitude, longitude to {int(d[i])} decimals) {dist[i]:.0f} m from {self._who(int(who[i]))}"
        return float(dist[i]), what

    def _metre_hits(self, x: np.ndarray, y: np.ndarray, d: np.ndarray) -> tuple[float, str] | None:
        half = 0.5 * 10.0 ** (-d.astype(float))
        ok = (np.abs(x) >= 1000) & (np.abs(y) >= 1000) & (half <= self.radius_m)
        if not ok.any():
            return None
        x, y, half, d = x[ok], y[ok], half[ok], d[ok]
        best: tuple[float, str] | None = None
        for label, xy in (
            ("projected metres of the bundle's UTM zone", np.column_stack([x, y])),
            ("Web Mercator metres", np.column_stack(self._merc_to_utm.transform(x, y))),
        ):
            good = np.isfinite(xy).all(axis=1)
            if not good.any():
                continue
            dist, who = self.secret_tree.query(np.where(good[:, None], xy, 0.0), distance_upper_bound=self.radius_m)
            near = np.flatnonzero(good & np.isfinite(dist))
            if not len(near):
                continue
            tol = half[near] * (1.0 if label.startswith("projected") else 2.0) + 0.01
            exempt = self._on_grid(xy[near], tol * 1.5)
            if self.public_utm is not None:
                exempt |= self.public_utm.query(xy[near], p=np.inf)[0] <= tol
            near = near[~exempt]
            if len(near):
                i = near[np.argmin(dist[near])]
                what = f"a point ({label}) {dist[i]:.0f} m from {self._who(int(who[i]))}"
                if best is None or dist[i] < best[0]:
                    best = (float(dist[i]), what)
        return best

    def _on_grid(self, xy: np.ndarray, tol_m: np.ndarray) -> np.ndarray:
        off = np.abs(xy - np.round(xy / self.grid_m) * self.grid_m)
        return (off <= np.asarray(tol_m)[:, None]).all(axis=1)

    def _who(self, index: int) -> str:
        return f"{self.kind[index]} {self.ids[index]!r}"


# ---------------------------------------------------------------------- reading files


def _decimals_of(text: str) -> int:
    text = text.strip()
    return len(text.split(".", 1)[1]) if "." in text else 0


def _decimals(value: float) -> int:
    text = repr(float(value))
    if "e" in text or "inf" in text or "nan" in text:
        return 17
    frac = text.split(".", 1)[1] if "." in text else ""
    return 0 if frac == "0" else len(frac)


def _read_text(text: str, found: _Found) -> None:
    """Free text: kept for ids and names; consecutive numbers with a short separator as pairs.

    Also read as coordinates in other notations (:func:`_as_decimal_degrees`).
    """
    found.text.append(text)
    _number_pairs(text, found)
    other = _as_decimal_degrees(text)
    if other != text:
        found.text.append(other)
        _number_pairs(other, found)


def _as_decimal_degrees(text: str) -> str:
    """``text`` URL-decoded, with DMS, hemisphere letters and decimal commas written as signed decimal degrees."""
    out = urllib.parse.unquote(text) if "%" in text else text
    if "°" in out:
        out = _DMS.sub(_dms, out)
    if re.search(rf"\d\s?[{_HEMI}]|[{_HEMI}]\s?\d", out):
        out = _DEGREES.sub(lambda m: f" {_signed(m.group(1), m.group(2))} ", out)
        out = _HEMI_FIRST.sub(lambda m: f" {_signed(m.group(2), m.group(1))} ", out)
    if "," in out:
        out = _COMMA_PAIR.sub(lambda m: f"{m.group(1)}.{m.group(2)}, {m.group(4)}.{m.group(5)}", out)
    return out


def _signed(number: str, hemisphere: str | None) -> str:
    return f"-{number}" if hemisphere and hemisphere.upper() in "SW" else number


def _dms(match: re.Match[str]) -> str:
    degrees, minutes, seconds, hemisphere = match.groups()
    if minutes is None and hemisphere is None:
        return match.group(0)
    value = float(degrees) + float((minutes or "0").replace(",", ".")) / 60
    value += float((seconds or "0").replace(",", ".")) / 3600
    return f" {_signed(f'{value:.6f}', hemisphere)} "


def _number_pairs(text: str, found: _Found) -> None:
    matches = list(_NUMBER.finditer(text))
    for first, second in itertools.pairwise(matches):
        sep = text[first.end() : second.start()]
        if len(sep) <= 16 and _SEPARATOR.match(sep):
            found.pair(
                float(first.group()),
                float(second.group()),
                min(_decimals_of(first.group()), _decimals_of(second.group())),
            )


def _read_csv(text: str, found: _Found) -> None:
    """Every cell; every two numeric cells of a row (in any columns) as a pair."""
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    ident = [_is_id_key(h) for h in header]
    named = [_is_id_key(h) or _is_name_key(h) for h in header]
    for row in rows:
        numbers = []
        for i, cell in enumerate(row):
            if i < len(ident) and ident[i] and cell:
                found.ids.add(cell)
            if i < len(named) and named[i] and cell:
                found.fields.append(cell)
            if _FULL_NUMBER.match(cell):
                numbers.append((float(cell), _decimals_of(cell)))
            elif cell:
                found.values.add(cell)
                _read_text(cell, found)
        found.pairs_of(numbers, consecutive=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_id_key(name: str) -> bool:
    name = name.strip().lower()
    return name == "id" or name.endswith(("_id", "_ids", " id"))


def _is_name_key(name: str) -> bool:
    name = name.strip().lower()
    return name in ("name", "names", "label", "title") or name.endswith(("_name", "_names", " name"))


def _walk(obj: Any, found: _Found, key: str = "", numeric_ids: bool = True) -> None:
    """A JSON value: strings, number pairs (consecutive in arrays, any two in objects), polylines, heat.

    ``numeric_ids`` false (the map's payloads): numbers under id keys are the map's own cell and
    layer numbers; only strings there are ids.
    """
    if isinstance(obj, dict):
        if isinstance(obj.get("enc"), str) and isinstance(obj.get("counts"), list):
            for line in mh.decode_polyline(obj["enc"], [int(c) for c in obj["counts"]]):
                for lat, lon in line:
                    found.pair(lat, lon, 5)
        if {"lat0", "lon0", "dlat", "dlon"} <= obj.keys():
            _heat(obj, found)
        numbers = [(float(v), _decimals(v)) for v in obj.values() if _is_number(v)]
        found.pairs_of(numbers, consecutive=False)
        for k, v in obj.items():
            name = str(k).lower()
            if _is_id_key(name) and (isinstance(v, str) or (numeric_ids and isinstance(v, int))):
                found.ids.add(str(v))
            if (_is_id_key(name) or _is_name_key(name)) and isinstance(v, str):
                found.fields.append(v)
            _walk(v, found, name, numeric_ids)
    elif isinstance(obj, list):
        numbers = [(float(v), _decimals(v)) for v in obj if _is_number(v)]
        if len(numbers) == len(obj):
            found.pairs_of(numbers, consecutive=True)
        else:
            for item in obj:
                _walk(item, found, key, numeric_ids)
            runs: list[tuple[float, int]] = []
            for item in [*obj, None]:
                if _is_number(item):
                    runs.append((float(item), _decimals(item)))
                else:
                    found.pairs_of(runs, consecutive=True)
                    runs = []
    elif isinstance(obj, str):
        found.values.add(obj)
        _read_text(obj, found)


def _heat(obj: dict[str, Any], found: _Found) -> None:
    """Heat-map squares (``lat0 + iy * dlat``, flat ``[ix, iy, weight, ...]`` lists) as their centres."""
    try:
        lat0, lon0, dlat, dlon = (float(obj[k]) for k in ("lat0", "lon0", "dlat", "dlon"))
    except (TypeError, ValueError):
        return
    flats = [obj.get("all", []), *list(obj.get("frames", []))]
    for flat in flats:
        if not isinstance(flat, list):
            continue
        cells = np.asarray([v for v in flat if _is_number(v)], dtype=float)
        cells = cells[: len(cells) // 3 * 3].reshape(-1, 3)
        for ix, iy, _ in cells:
            found.pair(lat0 + (iy + 0.5) * dlat, lon0 + (ix + 0.5) * dlon, 5)


def _on_degree_grid(values: np.ndarray) -> np.ndarray:
    return np.abs(values * 100.0 - np.round(values * 100.0)) < 1e-6


# ---------------------------------------------------------------------- ids and names


def _id_patterns(kinds: np.ndarray, ids: np.ndarray) -> tuple[re.Pattern[str] | None, set[str]]:
    """Distinctive ids (a letter and 2+ characters) as one whole-token pattern; the others as whole values."""
    distinctive, short = [], set()
    for ident in ids:
        text = str(ident).strip()
        if not text:
            continue
        if len(text) >= 2 and re.search(r"[^\W\d_]", text):
            distinctive.append(text)
        else:
            short.add(text)
    if not distinctive:
        return None, short
    body = "|".join(re.escape(t) for t in sorted(set(distinctive), key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_])(?:{body})(?![A-Za-z0-9_])"), short


def _name_patterns(
    kinds: np.ndarray, names: Iterable[Any], common: frozenset[str] | set[str], public: set[str]
) -> tuple[dict[str, str], re.Pattern[str] | None, re.Pattern[str] | None, set[str]]:
    """Folded names → kind, and the patterns that find them.

    Returns the kinds by folded term, the pattern for free text (full names of 3 letters or more
    and defenders' name words of 4 or more), the pattern for id and name fields (every term; only
    there are common words and names of 1-2 letters looked for) and the names of 1-2 letters
    (also as whole values).
    """
    known: dict[str, str] = {}
    loud: set[str] = set()
    quiet: set[str] = set()
    short: set[str] = set()
    for kind, name in zip(kinds, names, strict=True):
        full = " ".join(words(mh.plain(name)))
        if not full:
            continue
        parts = (w for w in full.split() if len(w) >= 4 and w != full) if kind == "defender" else ()
        terms = [full, *parts]  # a person's surname alone names them; a place's words ("Base North") do not
        for term in terms:
            if term in public:
                continue
            known.setdefault(term, str(kind))
            if len(term) < 3:  # "Li": a whole value or in a name field; in free text it is a tag or a syllable
                short.add(term)
                quiet.add(term)
            elif term in common:
                quiet.add(term)
            else:
                loud.add(term)
    return known, _words_pattern(loud), _words_pattern(quiet | loud), short


def _words_pattern(terms: set[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    body = "|".join(r"\W+".join(re.escape(w) for w in t.split()) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])")
