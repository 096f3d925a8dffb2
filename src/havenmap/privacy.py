"""Privacy of defender locations on maps and shared outputs: k-anonymous grid cells.

Exact defender locations can get people killed, so everything havenmap publishes about
defenders (maps, and later share bundles) goes through :func:`defender_cells` unless the
user explicitly asks for exact points:

* **Minimum cell size.** Defenders are counted on a square grid of the local UTM zone whose
  side is at least :data:`MIN_CELL_M` (100 m). Cell corners are multiples of the cell side,
  so what is drawn depends only on which cell a defender is in, never on where in it.
* **k-anonymity floor.** A cell holding fewer than ``k`` defenders (default
  :data:`DEFAULT_K` = 5) is merged into its parent cell of twice the side (quadtree), minus
  the cells already published inside it, and so on up to :data:`MAX_MERGE_LEVELS` doublings.
  What still holds fewer than ``k`` defenders then is marked ``suppressed``: it may only be
  published as "fewer than k defenders", never with its counts.

:class:`DefenderPrivacy` bundles these settings (validated; loadable from TOML) and is what
:class:`havenmap.maps.MapBuilder` takes as its privacy level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import _checks
from .errors import InputError

__all__ = [
    "DEFAULT_CELL_M",
    "DEFAULT_K",
    "MAX_MERGE_LEVELS",
    "MIN_CELL_M",
    "DefenderCells",
    "DefenderPrivacy",
    "defender_cells",
]

MIN_CELL_M = 100.0  #: metres; the smallest defender cell side a map or share may use
DEFAULT_CELL_M = 500.0  #: metres; default defender cell side
DEFAULT_K = 5  #: default k-anonymity floor: defenders a published cell must hold at least
MAX_MERGE_LEVELS = 2  #: doublings of the cell side while merging cells below k (500 m → 2 km)


@dataclass(frozen=True)
class DefenderPrivacy:
    """How defenders may appear on a map (or in a shared output).

    Parameters
    ----------
    exact
        Draw exact defender points (and untrimmed routes). Only on the user's explicit
        request; files holding them are written owner-only (mode 0600).
    cell_size_m
        Side of the defender cells in metres, at least :data:`MIN_CELL_M`.
    k
        k-anonymity floor: a published cell holds at least ``k`` defenders (cells below are
        merged, then shown as "fewer than k"). ``1`` switches the floor off.
    route_trim_m
        Metres (straight line) cut from the start of every route from a defender, on top
        of the part inside the defender's cell.
    routes
        Whether routes from defenders may be drawn at all.
    """

    exact: bool = False
    cell_size_m: float = DEFAULT_CELL_M
    k: int = DEFAULT_K
    route_trim_m: float = 150.0
    routes: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.exact, (bool, np.bool_)):
            raise InputError(f"exact must be true or false, not {self.exact!r}")
        size = _number(self.cell_size_m, "cell_size_m")
        if not self.exact and size < MIN_CELL_M:
            raise InputError(
                f"cell_size_m {self.cell_size_m!r}: defender cells must be at least {MIN_CELL_M:g} m "
                "(smaller cells point at people); use a larger cell or, for your own eyes only, exact defenders"
            )
        if size <= 0:
            raise InputError(f"cell_size_m {self.cell_size_m!r}: give a positive number of metres")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise InputError(f"k {self.k!r}: the k-anonymity floor is a whole number of defenders, 1 or more (5)")
        if _number(self.route_trim_m, "route_trim_m") < 0:
            raise InputError(f"route_trim_m {self.route_trim_m!r}: give 0 or more metres")
        if not isinstance(self.routes, (bool, np.bool_)):
            raise InputError(f"routes must be true or false, not {self.routes!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "privacy") -> DefenderPrivacy:
        """Build from a mapping (e.g. a TOML table); unknown keys are an :class:`InputError`."""
        _checks.check_keys(cls, values, source)
        try:
            return cls(**values)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path, table: str = "privacy") -> DefenderPrivacy:
        """Read the ``[privacy]`` table (or ``table``) of a TOML file; missing keys keep their defaults."""
        data = _checks.read_toml(path)
        return cls.from_dict(data.get(table, {}), source=f"{path} [{table}]")


@dataclass
class DefenderCells:
    """Result of :func:`defender_cells`.

    Attributes
    ----------
    cells
        GeoDataFrame (EPSG:4326), one row per published cell: ``cell_id`` (0..n-1),
        ``level`` (0 = cells of ``cell_size_m``; L = merged at ``2**L`` times the side),
        ``size_m``, ``count`` (defenders), one count column per status category,
        ``suppressed`` (True: fewer than ``k`` defenders even after merging — publish as
        "fewer than k" only), geometry (square, or a square minus the cells published
        inside it; corners on the grid).
    cell_of
        For every input row, the ``cell_id`` it was counted in.
    crs
        The metric CRS of the grid (local UTM).
    k, cell_size_m
        The settings used.
    """

    cells: gpd.GeoDataFrame
    cell_of: np.ndarray
    crs: Any
    k: int
    cell_size_m: float


def defender_cells(
    points: gpd.GeoDataFrame | gpd.GeoSeries,
    status: Sequence[Any] | np.ndarray | None = None,
    *,
    cell_size_m: float = DEFAULT_CELL_M,
    k: int = DEFAULT_K,
    categories: Sequence[str] = (),
    max_levels: int = MAX_MERGE_LEVELS,
) -> DefenderCells:
    """Aggregate defender points to k-anonymous grid cells (the one aggregation maps and shares use).

    Points are counted on a square grid of ``cell_size_m`` metres in the local UTM zone.
    Cells with at least ``k`` defenders are published as they are. The others are merged
    bottom-up in a quadtree: every parent square (twice the side) gathers the defenders of
    its children not yet published, and becomes one cell — the parent square minus the
    cells already published inside it — once it holds ``k`` or more. After ``max_levels``
    doublings what is left is published as suppressed ("fewer than k"). Written by hand
    (no library does k-anonymous quadtree cells), vectorised over points; the loop runs
    over published cells only.

    Parameters
    ----------
    points
        Defender locations (points, or any geometry: its centroid), any CRS.
    status
        Optional category per point (e.g. ``covered`` / ``slow`` / ``unreachable``); counted
        per cell into one column per category.
    cell_size_m
        Grid side in metres, at least :data:`MIN_CELL_M`.
    k
        k-anonymity floor (1 = no floor).
    categories
        Category columns to create (in this order) even when absent; default: the sorted
        distinct values of ``status``.
    max_levels
        Doublings allowed while merging.

    Returns
    -------
    DefenderCells
    """
    DefenderPrivacy(cell_size_m=cell_size_m, k=k)  # validates both
    geo = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    if not isinstance(geo, gpd.GeoSeries) or geo.crs is None:
        raise InputError("defender_cells: give a GeoDataFrame or GeoSeries with a CRS")
    size = float(cell_size_m)
    n = len(geo)
    crs = geo.estimate_utm_crs() if n else "EPSG:3857"
    xy = shapely.get_coordinates(geo.to_crs(crs).centroid.to_numpy()) if n else np.zeros((0, 2))
    ix0 = np.floor(xy[:, 0] / size).astype(np.int64)
    iy0 = np.floor(xy[:, 1] / size).astype(np.int64)

    cell_of = np.full(n, -1, dtype=np.int64)
    levels: list[int] = []
    keys: list[tuple[int, int]] = []
    geoms: list[Any] = []
    suppressed: list[bool] = []
    for level in range(int(max_levels) + 1):
        todo = np.flatnonzero(cell_of < 0)
        if not len(todo):
            break
        key = np.column_stack([ix0[todo] >> level, iy0[todo] >> level])
        uniq, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        last = level == max_levels
        publish = counts >= k if not last else np.ones(len(uniq), dtype=bool)
        if not publish.any():
            continue
        side = size * 2**level
        inside = _published_inside(levels, keys, level)
        new_id = np.full(len(uniq), -1, dtype=np.int64)
        for j in np.flatnonzero(publish):
            kx, ky = int(uniq[j, 0]), int(uniq[j, 1])
            square = shapely.box(kx * side, ky * side, (kx + 1) * side, (ky + 1) * side)
            holes = [geoms[i] for i in inside.get((kx, ky), ())]
            new_id[j] = len(geoms)
            geoms.append(square.difference(shapely.union_all(holes)) if holes else square)
            levels.append(level)
            keys.append((kx, ky))
            suppressed.append(bool(counts[j] < k))
        cell_of[todo] = new_id[inverse.ravel()]

    n_cells = len(geoms)
    frame = pd.DataFrame(
        {
            "cell_id": np.arange(n_cells, dtype=np.int64),
            "level": np.array(levels, dtype=np.int64),
            "size_m": size * 2.0 ** np.array(levels, dtype=float),
            "count": np.bincount(cell_of, minlength=n_cells).astype(np.int64) if n else np.zeros(0, np.int64),
        }
    )
    if status is not None:
        values = np.asarray(status, dtype=object)
        if len(values) != n:
            raise InputError(f"defender_cells: {len(values)} status values for {n} points")
        names = list(categories) or sorted({str(v) for v in values})
        for name in names:
            hit = (values == name).astype(np.int64)
            frame[name] = np.bincount(cell_of, weights=hit, minlength=n_cells).astype(np.int64)
    else:
        for name in categories:
            frame[name] = 0
    frame["suppressed"] = np.array(suppressed, dtype=bool)
    cells = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=crs).to_crs("EPSG:4326").values, crs="EPSG:4326")
    return DefenderCells(cells=cells, cell_of=cell_of, crs=crs, k=int(k), cell_size_m=size)


def _published_inside(levels: list[int], keys: list[tuple[int, int]], level: int) -> dict[tuple[int, int], list[int]]:
    """Published cells grouped by the square of ``level`` they lie in."""
    out: dict[tuple[int, int], list[int]] = {}
    for i, (lvl, (kx, ky)) in enumerate(zip(levels, keys, strict=True)):
        shift = level - lvl
        out.setdefault((kx >> shift, ky >> shift), []).append(i)
    return out


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} {value!r}: give a number of metres") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise InputError(f"{name} {value!r}: give a finite number of metres")
    return number
