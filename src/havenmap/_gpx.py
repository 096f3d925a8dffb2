"""A minimal GPX 1.1 writer: one track and a list of waypoints, for handheld GPS units.

Hand-written XML rather than a dependency: the format needed here is a dozen elements,
and every user string (names, descriptions) goes through :func:`xml.sax.saxutils.escape`
/ ``quoteattr``, so ``<``, ``&`` and quotes in an id cannot break the file. Coordinates
are WGS 84 degrees with 7 decimals (about 1 cm).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

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
