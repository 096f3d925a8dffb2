"""The havenmap error hierarchy.

Every error a user can cause derives from :class:`HavenmapError` and, as osmnx does, from the
matching builtin (``ValueError``), so ``except ValueError`` in a notebook catches it; the CLI turns
these into a one-line message on stderr and exit status 2, without a traceback.
A message names the file, the row or id, the column and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable


class HavenmapError(Exception):
    """Base class of every error havenmap raises on purpose."""

    exit_code = 2


class InputError(HavenmapError, ValueError):
    """A user-supplied file or value is unusable (missing column, bad row, ...)."""


class NetworkError(HavenmapError, ValueError):
    """A road network cannot be read or built (unknown format, no roads, ...)."""


class OffNetworkError(InputError):
    """Every point of a layer lies too far from the road network (wrong area or CRS?)."""


class InfeasibleError(HavenmapError, ValueError):
    """A planning request cannot be satisfied (e.g. a shift shorter than any round trip)."""


def shortened(items: object, limit: int = 5) -> str:
    """Up to ``limit`` ids, quoted: ``'a', 'b', 'c' and 1,234 more`` (:func:`listing` with quotes)."""
    return listing(items, limit, quote=True)  # type: ignore[arg-type]


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


def listing(items: Iterable[object], limit: int = 10, *, quote: bool = False) -> str:
    """Items for a one-line message, shortened: ``a, b, c and 50,279 more`` (or all of them: ``a, b``).

    ``quote`` shows each item with ``repr`` (for ids that may hold spaces or commas).
    """
    shown = []
    total = 0
    for item in items:
        if total < limit:
            shown.append(repr(str(item)) if quote else str(item))
        total += 1
    return ", ".join(shown) + (f" and {total - limit:,} more" if total > limit else "")
