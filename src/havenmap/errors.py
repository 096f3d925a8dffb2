"""The havenmap error hierarchy.

Every error a user can cause derives from :class:`HavenmapError`; the CLI turns
these into a one-line message on stderr and exit status 2, without a traceback.
A message names the file, the row or id, the column and what to do.
"""

from __future__ import annotations


class HavenmapError(Exception):
    """Base class of every error havenmap raises on purpose."""

    exit_code = 2


class InputError(HavenmapError):
    """A user-supplied file or value is unusable (missing column, bad row, ...)."""


class NetworkError(HavenmapError):
    """A road network cannot be read or built (unknown format, no roads, ...)."""


class OffNetworkError(InputError):
    """Every point of a layer lies too far from the road network (wrong area or CRS?)."""


class InfeasibleError(HavenmapError):
    """A planning request cannot be satisfied (e.g. a shift shorter than any round trip)."""


def shortened(items: object, limit: int = 5) -> str:
    """Up to ``limit`` items as ``'a', 'b', 'c' and 1,234 more`` (for messages about many ids)."""
    values = [str(v) for v in items]  # type: ignore[attr-defined]
    head = ", ".join(repr(v) for v in values[:limit])
    rest = len(values) - limit
    return head + (f" and {rest:,} more" if rest > 0 else "")


def where(path: object, row: int | None = None, column: str | None = None, id: object = None) -> str:
    """Format the location part of an error message: ``file: row 7, id 'x', column 'lat'``.

    ``row`` is the 1-based data row as a user sees it in a spreadsheet (header excluded).
    """
    parts = [str(path)]
    loc = []
    if row is not None:
        loc.append(f"row {row}")
    if id is not None:
        loc.append(f"id {id!r}")
    if column is not None:
        loc.append(f"column {column!r}")
    if loc:
        parts.append(", ".join(loc))
    return ": ".join(parts)
