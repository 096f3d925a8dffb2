"""Summary reports of analyses, as plain dicts written to JSON (and shown by the CLI)."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np

__all__ = ["nearest_report"]


def nearest_report(
    nearest: gpd.GeoDataFrame,
    *,
    defenders: int,
    havens: int,
    incidents: int | None = None,
    cost: str = "time",
    k: int = 1,
) -> dict[str, Any]:
    """Summarise a :func:`~havenmap.havens.nearest_havens` result.

    Returns
    -------
    dict
        ``defenders``, ``havens``, ``incidents`` (counts), ``reachable`` (defenders with a
        route to at least one haven), ``unreachable`` (their ids, sorted), ``off_network``
        (ids of defenders too far from any road), ``median_travel_time_s``,
        ``p90_travel_time_s``, ``max_travel_time_s`` and ``median_distance_m`` (to the
        nearest haven, over reachable defenders; null when none), ``cost``, ``k``, and
        ``defenders_per_haven`` (haven id → defenders for whom it is the nearest).
    """
    first = nearest.loc[nearest["rank"] == 1]
    ok = first.loc[first["reachable"]]
    times = ok["travel_time_s"].to_numpy(dtype=float)
    off = first.loc[first["reason"].astype(str).str.startswith("off network"), "defender_id"]
    return {
        "defenders": int(defenders),
        "havens": int(havens),
        "incidents": None if incidents is None else int(incidents),
        "reachable": len(ok),
        "unreachable": sorted(first.loc[~first["reachable"], "defender_id"].astype(str)),
        "off_network": sorted(off.astype(str)),
        "median_travel_time_s": _stat(np.median, times),
        "p90_travel_time_s": _stat(lambda a: np.percentile(a, 90), times),
        "max_travel_time_s": _stat(np.max, times),
        "median_distance_m": _stat(np.median, ok["distance_m"].to_numpy(dtype=float)),
        "cost": cost,
        "k": int(k),
        "defenders_per_haven": {str(h): int(n) for h, n in ok["haven_id"].value_counts().sort_index().items()},
    }


def _stat(fn, values: np.ndarray) -> float | None:
    return round(float(fn(values)), 1) if len(values) else None
