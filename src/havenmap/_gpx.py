"""GPX 1.1 for handheld GPS units: a minimal writer (one track, waypoints) and a safe reader of tracks.

The writer is hand-written XML rather than a dependency: the format needed here is a dozen
elements, and every user string (names, descriptions) goes through
:func:`xml.sax.saxutils.escape` / ``quoteattr``, so ``<``, ``&`` and quotes in an id cannot
break the file. Coordinates are WGS 84 degrees with 7 decimals (about 1 cm).

The reader (:func:`read_gpx`) takes what GPS apps record (OsmAnd, SMART, Garmin, GPSLogger...):
GPX 1.1 or 1.0, any namespace prefix, tracks of segments of points with optional times,
plus waypoints. It parses with ``defusedxml`` (XML from the field is untrusted: entity
expansion and external entities are refused) and answers a bad file with one line naming
the file, what is wrong and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np
import pandas as pd

from .errors import InputError

GPX_NS = "http://www.topografix.com/GPX/1/1"
_SCHEMA = "http://www.topografix.com/GPX/1/1 http://www.topografix.com/GPX/1/1/gpx.xsd"

# XML 1.0 forbids most control characters even when escaped
_CONTROL = {c: None for c in range(32) if c not in (9, 10, 13)}


@dataclass(frozen=True)
class Waypoint:
    """A named point: longitude, latitude (degrees), name and an optional description."""

    lon: float
    lat: float
    name: str
    desc: str = ""
    sym: str = ""


def _text(value: object) -> str:
    return escape(str(value).translate(_CONTROL))


def _coord(lon: float, lat: float) -> str:
    return f'lat="{float(lat):.7f}" lon="{float(lon):.7f}"'


def gpx_document(
    name: str,
    track: Sequence[np.ndarray] | np.ndarray,
    waypoints: Iterable[Waypoint] = (),
    *,
    description: str = "",
    creator: str = "havenmap",
) -> str:
    """A GPX 1.1 document (UTF-8 text) with waypoints and one track.

    Parameters
    ----------
    name
        Track (and file metadata) name.
    track
        Track coordinates: an (k, 2) array of (lon, lat), or a list of such arrays (one
        track segment each).
    waypoints
        Points to mark (stops, bases).
    description
        Free text for the metadata and the track.
    """
    segments = (
        [np.asarray(track, dtype=float)]
        if isinstance(track, np.ndarray)
        else [np.asarray(s, dtype=float) for s in track]
    )
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<gpx version="1.1" creator="{_text(creator)}" xmlns="{GPX_NS}" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="{_SCHEMA}">',
        "  <metadata>",
        f"    <name>{_text(name)}</name>",
    ]
    if description:
        out.append(f"    <desc>{_text(description)}</desc>")
    out.append("  </metadata>")
    for wp in waypoints:  # GPX 1.1 order: wpt*, rte*, trk*
        out.append(f"  <wpt {_coord(wp.lon, wp.lat)}>")
        out.append(f"    <name>{_text(wp.name)}</name>")
        if wp.desc:
            out.append(f"    <desc>{_text(wp.desc)}</desc>")
        if wp.sym:
            out.append(f"    <sym>{_text(wp.sym)}</sym>")
        out.append("  </wpt>")
    out.append("  <trk>")
    out.append(f"    <name>{_text(name)}</name>")
    if description:
        out.append(f"    <desc>{_text(description)}</desc>")
    for seg in segments:
        if len(seg) == 0:
            continue
        out.append("    <trkseg>")
        out.extend(f"      <trkpt {_coord(lon, lat)}/>" for lon, lat in seg[:, :2])
        out.append("    </trkseg>")
    out.append("  </trk>")
    out.append("</gpx>")
    return "\n".join(out) + "\n"


# ====================================================================== reading
_EXPORT = "export the unit's recorded track as GPX (GPX 1.1) from the GPS app"


@dataclass
class GpxFile:
    """What a GPX file holds.

    Attributes
    ----------
    path : pathlib.Path
    name : str
        The first track's ``<name>``, else the metadata ``<name>`` ('' if none).
    lon, lat : numpy.ndarray
        Track points in file order, degrees (all tracks and segments).
    time : numpy.ndarray
        ``datetime64[ns]`` UTC per point; all NaT when the file has no times.
    segment : numpy.ndarray
        Segment number of each point (0, 1, ...): the gap between two segments was not driven.
    waypoints : list of Waypoint
        ``<wpt>`` elements in file order (name, description, symbol).
    """

    path: Path
    name: str = ""
    lon: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lat: np.ndarray = field(default_factory=lambda: np.zeros(0))
    time: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="datetime64[ns]"))
    segment: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    waypoints: list[Waypoint] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        """Whether the track points carry times."""
        return bool(len(self.time)) and not bool(np.isnat(self.time).any())


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1].lower()


def _child_text(element, name: str) -> str:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return ""


def read_gpx(path: str | os.PathLike[str], *, need_track: bool = True) -> GpxFile:
    """Read a GPX file's tracks and waypoints, checked.

    Raises
    ------
    havenmap.errors.InputError
        One line naming the file: empty, not XML (with the parser's line), XML entities or
        a DTD (refused), not GPX, no track points (with ``need_track``), a point without
        a valid latitude/longitude, a time that is not ISO 8601, times on only some points.
    """
    source = Path(path)
    try:
        size = source.stat().st_size
    except OSError as exc:
        raise InputError(f"{source}: cannot read the file ({exc.strerror}); check the path") from None
    if size == 0:
        raise InputError(f"{source}: empty file; {_EXPORT}")
    try:
        root = SafeET.parse(source).getroot()
    except ParseError as exc:
        raise InputError(f"{source}: not a GPX file (not XML: {' '.join(str(exc).split())}); {_EXPORT}") from None
    except defusedxml.DefusedXmlException:
        raise InputError(
            f"{source}: the file declares XML entities or a DTD, refused for safety; {_EXPORT} (plain GPX has none)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot read the file ({' '.join(str(exc).split())}); {_EXPORT}") from None
    if _local(root.tag) != "gpx":
        raise InputError(f"{source}: not a GPX file (its root element is <{_local(root.tag)}>, not <gpx>); {_EXPORT}")
    found = GpxFile(path=source)
    metadata = next((c for c in root if _local(c.tag) == "metadata"), None)
    found.name = _child_text(metadata, "name") if metadata is not None else ""
    lon, lat, times, segments = [], [], [], []
    number = 0
    track_name = ""
    for element in root:
        kind = _local(element.tag)
        if kind == "wpt":
            x, y = _coords(source, element, "waypoint", len(found.waypoints) + 1)
            found.waypoints.append(
                Waypoint(x, y, _child_text(element, "name"), _child_text(element, "desc"), _child_text(element, "sym"))
            )
        elif kind == "trk":
            track_name = track_name or _child_text(element, "name")
            for seg in (c for c in element if _local(c.tag) == "trkseg"):
                points = [p for p in seg if _local(p.tag) == "trkpt"]
                for point in points:
                    x, y = _coords(source, point, "track point", len(lon) + 1)
                    lon.append(x)
                    lat.append(y)
                    times.append(_child_text(point, "time"))
                    segments.append(number)
                number += bool(points)
    found.name = track_name or found.name
    if need_track and not lon:
        other = "only waypoints" if found.waypoints else "no track"
        routes = sum(1 for c in root if _local(c.tag) == "rte")
        what = "a planned route, not a recorded track" if routes else other
        raise InputError(f"{source}: holds no track points ({what}); {_EXPORT}")
    found.lon, found.lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    found.segment = np.asarray(segments, dtype=np.int64)
    found.time = _times(source, times)
    return found


def _coords(source: Path, element, what: str, index: int) -> tuple[float, float]:
    values = []
    for key, low, high in (("lon", -180.0, 180.0), ("lat", -90.0, 90.0)):
        raw = element.get(key)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = float("nan")
        if not (np.isfinite(value) and low <= value <= high):
            shown = "missing" if raw is None else repr(raw)
            raise InputError(
                f"{source}: {what} {index}: {key} {shown} is not a {'longitude' if key == 'lon' else 'latitude'} "
                f"in degrees ({low:g} to {high:g}); fix or remove the point, or {_EXPORT} again"
            )
        values.append(value)
    return values[0], values[1]


def _times(source: Path, texts: list[str]) -> np.ndarray:
    given = np.array([bool(t) for t in texts], dtype=bool)
    if not given.any():
        return np.full(len(texts), np.datetime64("NaT"), dtype="datetime64[ns]")
    if not given.all():
        i = int(np.flatnonzero(~given)[0])
        raise InputError(
            f"{source}: track point {i + 1} has no <time> while others have one; {_EXPORT} with times on every point"
        )
    stamps = pd.to_datetime(pd.Series(texts), errors="coerce", utc=True, format="ISO8601")
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{source}: track point {i + 1}: time {texts[i]!r} is not an ISO 8601 time (e.g. 2026-11-20T08:15:00Z); "
            f"{_EXPORT} again"
        )
    return stamps.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
