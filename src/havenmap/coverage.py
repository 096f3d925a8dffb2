"""Reach at scale: service areas, coverage, losing a haven (N-1) and the impact of closures.

Everything runs on the network's arrays through the routing core (:mod:`havenmap._graph`): one multi-source
Dijkstra answers every node at once, one more pass per extra rank gives the second-best
haven, and service areas take one bounded Dijkstra per haven. A cost model — closures
and danger from :mod:`havenmap.costs`, or any per-edge array — is passed as
``edge_weights`` (``inf`` = closed road); the network itself is never changed.

Times are physical travel times in seconds along the route the cost model chooses
(with the default ``cost="time"`` that is simply the fastest route). Time bands are given
in minutes; a defender is covered in band ``m`` when its best route takes at most
``60 * m`` seconds.

Functions
---------
:func:`node_reach`
    Every network node's nearest haven(s) and travel time.
:func:`coverage`
    Per defender best and second-best haven with times; share covered per band; per haven
    the defenders it serves. Returns a :class:`Coverage`.
:func:`n_minus_1`
    For every haven, the coverage if that haven is lost, and who loses all cover: exact,
    from the two nearest havens already known, at no extra routing cost.
:func:`closures_impact`
    Defenders whose best time worsens (or who are cut off) under closures, with the haven
    they would have reached without them.
:func:`reach_edges`, :func:`service_areas`
    Per haven, the road pieces reached within a time, and the reached area per band as
    polygons following those pieces.
:func:`write_coverage_outputs`
    The files of ``havenmap coverage``: service areas, coverage CSV/JSON, N-1, closures impact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import _areas, _graph, _io
from .errors import InputError
from .havens import HavenAssignment, assign_havens
from .network import RoadNetwork
from .snap import DEFAULT_MAX_SNAP_M, snap_layer

__all__ = [
    "COVERAGE_COLUMNS",
    "DEFAULT_BUFFER_M",
    "DEFAULT_MINUTES",
    "OUTPUT_FILES",
    "Coverage",
    "NodeReach",
    "closures_impact",
    "coverage",
    "coverage_of",
    "n_minus_1",
    "node_reach",
    "parse_minutes",
    "reach_edges",
    "service_areas",
    "worst_loss",
    "write_coverage_outputs",
]

#: Default time bands, minutes.
DEFAULT_MINUTES = (5.0, 10.0, 15.0)
#: Default half-width of a service-area polygon around the reached road pieces, metres: about a
#: street's width plus the frontage on each side, so the area reads as "along these roads".
DEFAULT_BUFFER_M = 50.0
#: The files :func:`write_coverage_outputs` may write (a command owns them in its output folder).
OUTPUT_FILES = ("service_areas.geojson", "coverage.csv", "coverage.json", "n_minus_1.csv", "closures_impact.csv")
#: Columns of :attr:`Coverage.defenders`, in order.
COVERAGE_COLUMNS = [
    "defender_id",
    "haven_id",
    "travel_time_s",
    "second_haven_id",
    "second_travel_time_s",
    "reachable",
    "band_min",
    "reason",
]


# ---------------------------------------------------------------------- inputs
def parse_minutes(minutes: str | float | Sequence[float]) -> tuple[float, ...]:
    """Time bands in minutes from ``"5,10,15"``, a number or a sequence: positive, sorted, unique.

    Raises :class:`~havenmap.errors.InputError` for anything else.
    """
    if isinstance(minutes, str):
        parts = [p.strip() for p in minutes.split(",") if p.strip()]
    elif np.ndim(minutes) == 0:
        parts = [minutes]
    else:
        parts = list(minutes)
    values = []
    for p in parts:
        try:
            value = float(p)
        except (TypeError, ValueError):
            raise InputError(f"--minutes: {p!r} is not a number; give minutes like 5,10,15") from None
        if not np.isfinite(value) or value <= 0:
            raise InputError(f"--minutes: {p!r} must be a positive number of minutes; give minutes like 5,10,15")
        values.append(value)
    if not values:
        raise InputError("--minutes: no time band given; give minutes like 5,10,15")
    return tuple(sorted(set(values)))


def _label(value: float) -> str:
    """'5' for 5.0, '7.5' for 7.5: band labels for columns and JSON keys."""
    return f"{value:g}"


# ---------------------------------------------------------------------- every node
@dataclass
class NodeReach:
    """Every network node's ``k`` nearest havens.

    Attributes
    ----------
    haven_ids : (H,) object
        Haven ids, in layer order.
    haven : (n, k) int64
        Index into ``haven_ids`` of each node's nearest, second-nearest, ... haven (-1: none).
    time_s : (n, k) float64
        Travel time from the node to that haven, seconds (``inf``: none).
    cost : (n, k) float64
        The cost-model value of that route (equals ``time_s`` for the default cost).
    """

    haven_ids: np.ndarray
    haven: np.ndarray
    time_s: np.ndarray
    cost: np.ndarray


def node_reach(
    net: RoadNetwork,
    havens: gpd.GeoDataFrame,
    *,
    k: int = 1,
    cost: str = "time",
    edge_weights: np.ndarray | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> NodeReach:
    """Nearest haven(s) of every network node: one multi-source Dijkstra (plus one per extra rank).

    Parameters
    ----------
    net
        Road network.
    havens
        Point layer with an ``id`` column, any CRS.
    k
        Nearest distinct havens per node.
    cost, edge_weights
        Cost model: 'time' or 'length', or a per-edge array (``inf`` = closed) from
        :mod:`havenmap.costs`.
    max_snap_m
        Havens farther than this from any road (metres) are left out (with a warning).
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    h = snap_layer(net, havens, "haven", max_snap_m)
    search = _graph.nearest(_graph.cost_graph(net, cost, edge_weights), _graph.Places.from_snapped(net, h), k)
    n = net.n_nodes
    return NodeReach(h["id"].astype(str).to_numpy(dtype=object), search.label[:n], search.time[:n], search.cost[:n])


# ---------------------------------------------------------------------- coverage
@dataclass
class Coverage:
    """Coverage of defenders by havens within time bands (see :func:`coverage`).

    Attributes
    ----------
    minutes : tuple of float
        The time bands, minutes, ascending.
    defenders : pandas.DataFrame
        One row per defender, in layer order: ``defender_id``, ``haven_id`` (best haven, None
        if none reachable), ``travel_time_s`` (s, NaN if none), ``second_haven_id``,
        ``second_travel_time_s`` (the next-best *other* haven: redundancy), ``reachable``
        (bool: some haven can be reached at all), ``band_min`` (the smallest band covering
        the defender, NaN if none), ``reason`` (why not reachable; empty otherwise).
    havens : pandas.DataFrame
        One row per haven: ``haven_id``, ``haven_name``, ``on_network``, ``served`` (defenders
        whose best haven it is), ``served_<m>`` (of those, reached within band m).
    """

    minutes: tuple[float, ...]
    defenders: pd.DataFrame
    havens: pd.DataFrame
    best: np.ndarray = field(repr=False)
    second: np.ndarray = field(repr=False)
    best_time: np.ndarray = field(repr=False)
    second_time: np.ndarray = field(repr=False)

    @property
    def n_defenders(self) -> int:
        """Number of defenders."""
        return len(self.defenders)

    def covered(self, minutes: float) -> np.ndarray:
        """Boolean per defender: best haven reached within ``minutes``."""
        return self.best_time <= 60.0 * minutes

    def bands(self) -> pd.DataFrame:
        """Per band: ``minutes``, ``covered`` (defenders), ``share`` (0..1), ``uncovered_ids`` (list)."""
        rows = []
        ids = self.defenders["defender_id"].to_numpy()
        for m in self.minutes:
            c = self.covered(m)
            rows.append(
                {
                    "minutes": m,
                    "covered": int(c.sum()),
                    "share": float(c.mean()) if len(c) else 0.0,
                    "uncovered_ids": list(ids[~c]),
                }
            )
        return pd.DataFrame(rows)

    def served_by(self, haven_id: str) -> pd.DataFrame:
        """The defenders whose best haven is ``haven_id`` (rows of :attr:`defenders`)."""
        return self.defenders.loc[self.defenders["haven_id"] == str(haven_id)]

    def to_json(self) -> dict[str, Any]:
        """Summary for ``coverage.json``: bands (covered, share), defenders, havens, per-haven service."""
        bands = {
            _label(m): {"covered": int(c), "share": round(float(s), 6)}
            for m, c, s in self.bands()[["minutes", "covered", "share"]].itertuples(index=False)
        }
        t = self.best_time[np.isfinite(self.best_time)]
        served = {
            row["haven_id"]: {
                "served": int(row["served"]),
                "within": {_label(m): int(row[f"served_{_label(m)}"]) for m in self.minutes},
            }
            for row in self.havens.to_dict("records")
        }
        return {
            "bands": bands,
            "defenders": self.n_defenders,
            "reachable": int(self.defenders["reachable"].sum()),
            "unreachable_ids": self.defenders.loc[~self.defenders["reachable"], "defender_id"].tolist(),
            "havens": len(self.havens),
            "median_travel_time_s": float(np.median(t)) if len(t) else None,
            "no_second_haven": int((~np.isfinite(self.second_time)).sum()),
            "served": served,
        }


def coverage(
    net: RoadNetwork,
    defenders: gpd.GeoDataFrame,
    havens: gpd.GeoDataFrame,
    minutes: str | Sequence[float] = DEFAULT_MINUTES,
    *,
    cost: str = "time",
    edge_weights: np.ndarray | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> Coverage:
    """Which defenders reach a haven within each time band, with their best and second-best havens.

    One multi-source Dijkstra from all havens, plus one pass for the second-nearest distinct
    haven, answers every defender at once (see :func:`havenmap.havens.assign_havens`).

    Parameters
    ----------
    net
        Road network.
    defenders, havens
        Point layers with an ``id`` column (havens may have ``name``), any CRS.
    minutes
        Time bands, minutes (e.g. ``(5, 10, 15)`` or ``"5,10,15"``).
    cost, edge_weights
        Cost model choosing the routes: 'time' or 'length', or a per-edge array from
        :mod:`havenmap.costs` (``inf`` = closed). Reported times are physical seconds.
    max_snap_m
        Points farther than this from any road (metres) are off-network: such defenders are
        uncovered, such havens serve no one.

    Returns
    -------
    Coverage
    """
    found = assign_havens(
        net, defenders, havens, k=2, cost=cost, edge_weights=edge_weights, max_snap_m=max_snap_m, routes=False
    )
    return coverage_of(found, minutes)


def coverage_of(found: HavenAssignment, minutes: str | Sequence[float] = DEFAULT_MINUTES) -> Coverage:
    """Coverage from havens already assigned to defenders (with ``k >= 2`` for the second-best haven and N-1).

    A scenario assigns havens once (:func:`havenmap.havens.assign_havens`) and takes routes,
    coverage, N-1, status and maps from that one answer.
    """
    bands = parse_minutes(minutes)
    best = found.haven[:, 0]
    second = found.haven[:, 1] if found.k > 1 else np.full(found.n_defenders, -1)
    t1 = found.time_s[:, 0]
    t2 = found.time_s[:, 1] if found.k > 1 else np.full(found.n_defenders, np.inf)
    ids = np.append(found.haven_ids, None)  # index -1 (no haven) gives None
    reachable = best >= 0
    band_min = np.full(len(best), np.nan)
    for m in sorted(bands, reverse=True):
        band_min[reachable & (t1 <= 60.0 * m)] = m
    frame = pd.DataFrame(
        {
            "defender_id": found.defender_ids,
            "haven_id": pd.array(ids[best], dtype="string"),
            "travel_time_s": np.where(reachable, t1, np.nan),
            "second_haven_id": pd.array(ids[second], dtype="string"),
            "second_travel_time_s": np.where(second >= 0, t2, np.nan),
            "reachable": reachable,
            "band_min": band_min,
            "reason": found.reasons(0),
        },
        columns=COVERAGE_COLUMNS,
    )
    n_h = len(found.haven_ids)
    per_haven = pd.DataFrame(
        {
            "haven_id": found.haven_ids,
            "haven_name": found.haven_names,
            "on_network": found.haven_on,
            "served": np.bincount(best[reachable], minlength=n_h),
        }
    )
    for m in bands:
        within = reachable & (t1 <= 60.0 * m)
        per_haven[f"served_{_label(m)}"] = np.bincount(best[within], minlength=n_h)
    t1 = np.where(reachable, t1, np.inf)
    t2 = np.where(second >= 0, t2, np.inf)
    return Coverage(bands, frame, per_haven, best, second, t1, t2)


# ---------------------------------------------------------------------- N-1
def n_minus_1(cov: Coverage) -> pd.DataFrame:
    """For every haven, the coverage if that haven alone is lost (compromised, raided, closed).

    Exact and free: losing haven h changes only the defenders whose best haven is h, and their
    new best is their second-best haven, already known from :func:`coverage`. (Proved against
    recomputing coverage without each haven in the tests.)

    Returns
    -------
    pandas.DataFrame
        One row per haven: ``haven_id``, ``haven_name``, ``served`` (defenders whose best
        haven it is), per band m ``covered_<m>`` and ``share_<m>`` (coverage after the loss)
        and ``lost_<m>`` (defenders no longer covered in band m), ``cut_off`` (defenders left
        with no reachable haven at all), ``lose_all_cover`` (defenders covered in the widest
        band before the loss and in none after) and ``lose_all_cover_ids`` (their ids, ';'-joined).
    """
    n_h = len(cov.havens)
    best, t1, t2 = cov.best, cov.best_time, cov.second_time
    mine = best >= 0
    n_d = max(cov.n_defenders, 1)
    out = pd.DataFrame(
        {
            "haven_id": cov.havens["haven_id"].to_numpy(),
            "haven_name": cov.havens["haven_name"].to_numpy(),
            "served": np.bincount(best[mine], minlength=n_h),
        }
    )
    for m in cov.minutes:
        limit = 60.0 * m
        lost = np.bincount(best[mine & (t1 <= limit) & (t2 > limit)], minlength=n_h)
        # under a danger or length cost the second-best haven can be physically nearer: a gain
        gained = np.bincount(best[mine & (t1 > limit) & (t2 <= limit)], minlength=n_h)
        covered = int((t1 <= limit).sum()) - lost + gained
        out[f"covered_{_label(m)}"] = covered
        out[f"share_{_label(m)}"] = covered / n_d if cov.n_defenders else 0.0
        out[f"lost_{_label(m)}"] = lost
    out["cut_off"] = np.bincount(best[mine & ~np.isfinite(t2)], minlength=n_h)
    widest = 60.0 * max(cov.minutes)
    losing = np.flatnonzero(mine & (t1 <= widest) & (t2 > widest))
    out["lose_all_cover"] = np.bincount(best[losing], minlength=n_h)
    ids = cov.defenders["defender_id"].to_numpy()
    groups = pd.Series(ids[losing]).groupby(best[losing]).agg(";".join) if len(losing) else pd.Series(dtype=object)
    out["lose_all_cover_ids"] = [groups.get(i, "") for i in range(n_h)]
    return out


# ---------------------------------------------------------------------- closures
def closures_impact(without: Coverage, with_closures: Coverage) -> pd.DataFrame:
    """Defenders whose best time worsens under closures, with the haven they would have reached without them.

    Both coverages must be of the same defenders and havens (e.g. :func:`coverage` with the
    cost model without and with the closures).

    Returns
    -------
    pandas.DataFrame
        One row per affected defender, cut-off ones first, then by delay: ``defender_id``,
        ``haven_without_closures``, ``time_without`` (s), ``haven_with_closures`` (<NA> if cut
        off), ``time_with`` (s, NaN if cut off), ``cut_off`` (bool: no haven reachable with the
        closures, one was without), ``delay_s``, ``band_without``, ``band_with`` (smallest
        covering band, minutes, NaN if none).
    """
    a, b = without.defenders, with_closures.defenders
    if len(a) != len(b) or not np.array_equal(a["defender_id"].to_numpy(), b["defender_id"].to_numpy()):
        raise ValueError("closures_impact needs two coverages of the same defenders")
    t0, t1 = without.best_time, with_closures.best_time
    cut = np.isfinite(t0) & ~np.isfinite(t1)
    slower = np.isfinite(t0) & np.isfinite(t1) & (t1 > t0 * (1 + 1e-9) + 1e-6)
    rows = np.flatnonzero(cut | slower)
    out = pd.DataFrame(
        {
            "defender_id": a["defender_id"].to_numpy()[rows],
            "haven_without_closures": a["haven_id"].to_numpy()[rows],
            "time_without": t0[rows],
            "haven_with_closures": b["haven_id"].to_numpy()[rows],
            "time_with": np.where(cut[rows], np.nan, t1[rows]),
            "cut_off": cut[rows],
            "delay_s": np.where(cut[rows], np.inf, t1[rows] - t0[rows]),
            "band_without": a["band_min"].to_numpy()[rows],
            "band_with": b["band_min"].to_numpy()[rows],
        }
    )
    out = out.sort_values(["cut_off", "delay_s"], ascending=[False, False], kind="stable").reset_index(drop=True)
    out["delay_s"] = out["delay_s"].where(~out["cut_off"], np.nan)
    return out


# ---------------------------------------------------------------------- outputs
def worst_loss(cov: Coverage, n1: pd.DataFrame | None = None) -> dict[str, Any]:
    """What losing the worst single haven costs: the haven, and coverage per band before and after.

    The worst haven is the one whose loss leaves most defenders with no haven within the widest
    band (ties: the one serving most defenders).

    Returns
    -------
    dict
        ``worst_haven`` (id, None without havens), ``lose_all_cover``, ``cut_off`` (defenders),
        ``covered_before`` and ``covered_after`` (per band label: defenders covered), and
        ``share_before`` / ``share_after`` (0..1).
    """
    n1 = n_minus_1(cov) if n1 is None else n1
    worst = n1.sort_values(["lose_all_cover", "served"], ascending=False, kind="stable").head(1)
    before = {_label(m): int(cov.covered(m).sum()) for m in cov.minutes}
    after = dict(before) if worst.empty else {_label(m): int(worst[f"covered_{_label(m)}"].iat[0]) for m in cov.minutes}
    n = max(cov.n_defenders, 1)
    return {
        "worst_haven": None if worst.empty else str(worst["haven_id"].iat[0]),
        "lose_all_cover": 0 if worst.empty else int(worst["lose_all_cover"].iat[0]),
        "cut_off": 0 if worst.empty else int(worst["cut_off"].iat[0]),
        "covered_before": before,
        "covered_after": after,
        "share_before": {b: round(c / n, 4) for b, c in before.items()},
        "share_after": {b: round(c / n, 4) for b, c in after.items()},
    }


def _rounded_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Times (columns ending in ``_s`` or named ``time_*``) to 0.1 s for the CSVs people read."""
    columns = [c for c in frame.columns if c.endswith("_s") or c.startswith("time_")]
    return frame.round({c: 1 for c in columns if pd.api.types.is_float_dtype(frame[c])})


def write_coverage_outputs(
    out_dir: str | os.PathLike[str],
    cov: Coverage,
    areas: gpd.GeoDataFrame | None = None,
    *,
    n1: pd.DataFrame | None = None,
    impact: pd.DataFrame | None = None,
    extra: dict[str, Any] | None = None,
    hxl: bool = False,
) -> dict[str, Any]:
    """Write the coverage outputs into ``out_dir`` (owner-readable only) and return the summary.

    Files: ``coverage.csv`` (:attr:`Coverage.defenders`), ``coverage.json`` (the returned
    summary: :meth:`Coverage.to_json` plus ``minutes``, ``n_minus_1`` (the haven whose loss
    leaves most defenders without cover) and, with ``impact``, ``closures``),
    ``n_minus_1.csv`` (:func:`n_minus_1`, computed unless given), and when given
    ``service_areas.geojson`` and ``closures_impact.csv`` (:func:`closures_impact`).
    ``extra`` entries are added to the summary (e.g. the cost model). With ``hxl`` the CSV
    files carry an HXL hashtag row.
    """
    out = Path(out_dir)
    n1 = n_minus_1(cov) if n1 is None else n1
    summary = cov.to_json()
    summary["minutes"] = list(cov.minutes)
    summary["n_minus_1"] = worst_loss(cov, n1)
    if impact is not None:
        summary["closures"] = {"cut_off": int(impact["cut_off"].sum()), "slowed": int((~impact["cut_off"]).sum())}
    summary.update(extra or {})
    if areas is not None:
        _io.write_geojson(out / "service_areas.geojson", areas, private=True)
    _io.write_csv(out / "coverage.csv", _rounded_times(cov.defenders), private=True, hxl=hxl)
    _io.write_csv(out / "n_minus_1.csv", n1, private=True, hxl=hxl)
    if impact is not None:
        _io.write_csv(out / "closures_impact.csv", _rounded_times(impact), private=True, hxl=hxl)
    _io.write_json(out / "coverage.json", summary, private=True)
    return summary


# ---------------------------------------------------------------------- service areas
def _haven_reaches(
    net: RoadNetwork,
    havens: gpd.GeoDataFrame,
    max_s: float,
    cost: str,
    edge_weights: np.ndarray | None,
    max_snap_m: float,
):
    h = snap_layer(net, havens, "haven", max_snap_m)
    graph = _graph.cost_graph(net, cost, edge_weights)
    return h["id"].astype(str).to_numpy(dtype=object), _graph.bounded_reach(
        graph, _graph.Places.from_snapped(net, h), max_s
    )


def reach_edges(
    net: RoadNetwork,
    havens: gpd.GeoDataFrame,
    max_minutes: float,
    *,
    cost: str = "time",
    edge_weights: np.ndarray | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> pd.DataFrame:
    """Per haven, the road pieces from which it is reached within ``max_minutes``, exactly.

    Each haven is searched on its own (its reach does not depend on other havens).

    Returns
    -------
    pandas.DataFrame
        One row per haven and directed road piece: ``haven_id``, ``edge`` (network edge
        index), ``fraction_from``/``fraction_to`` (the piece, as fractions of the edge from
        its start node u, travelled from ``fraction_from`` towards ``fraction_to``),
        ``time_from_s``/``time_to_s`` (travel time to the haven at either end, seconds,
        linear in between). The part of a piece within T seconds is where that time is at
        most T; pieces are listed when ``time_to_s`` is within ``max_minutes``. A stretch of
        road can be listed more than once (both directions of a street; the haven's own
        road): its time is the smallest.
    """
    max_s = 60.0 * float(max_minutes)
    ids, reaches = _haven_reaches(net, havens, max_s, cost, edge_weights, max_snap_m)
    parts = []
    for r in reaches:
        keep = r.t1 <= max_s
        parts.append(
            pd.DataFrame(
                {
                    "haven_id": ids[r.source],
                    "edge": r.edge[keep],
                    "fraction_from": r.f0[keep],
                    "fraction_to": r.f1[keep],
                    "time_from_s": r.t0[keep],
                    "time_to_s": r.t1[keep],
                }
            )
        )
    columns = ["haven_id", "edge", "fraction_from", "fraction_to", "time_from_s", "time_to_s"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def service_areas(
    net: RoadNetwork,
    havens: gpd.GeoDataFrame,
    minutes: str | Sequence[float] = DEFAULT_MINUTES,
    *,
    cost: str = "time",
    edge_weights: np.ndarray | None = None,
    buffer_m: float = DEFAULT_BUFFER_M,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> gpd.GeoDataFrame:
    """For each haven, the area from which it is reached within each time band, as polygons along the roads.

    Each haven's reach is its own (independent of the other havens): one Dijkstra per haven,
    bounded by the widest band. The polygon of band m covers every stretch of road from which
    the haven is reached within m minutes — partial edges cut exactly where the band ends —
    widened by ``buffer_m`` on each side, so it follows the reached road pieces, not a circle.
    It is traced on a grid of ``buffer_m / 3`` (see :mod:`havenmap._areas`): every reached
    point is inside with at least ``0.6 * buffer_m`` around it, and nothing farther than
    ``1.85 * buffer_m`` from the reached pieces is inside. Bands nest. (A reach wider than
    about 8 km across gets coarser cells, and with them a proportionally wider buffer.) Havens are
    traced side by side on the CPUs this process may use; the result does not depend on how many.

    Parameters
    ----------
    net
        Road network.
    havens
        Point layer with an ``id`` column, any CRS.
    minutes
        Time bands, minutes.
    cost, edge_weights
        Cost model choosing the routes (see :func:`coverage`); bands apply to physical time.
    buffer_m
        Half-width of the area around the reached roads, metres (default 50).
    max_snap_m
        Havens farther than this from any road (metres) get empty areas (with a warning).

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, one row per haven and band (havens in layer order, bands ascending):
        ``haven_id``, ``minutes``, ``geometry`` (Polygon or MultiPolygon; empty when the
        haven is off the network).
    """
    bands = np.asarray(parse_minutes(minutes))
    if not np.isfinite(buffer_m) or buffer_m <= 0:
        raise InputError(f"--buffer-m {buffer_m}: must be a positive number of metres (default 50)")
    bands_s = 60.0 * bands
    ids, reaches = _haven_reaches(net, havens, float(bands_s.max()), cost, edge_weights, max_snap_m)
    geoms = _areas.havens_polygons(net, reaches, bands_s, buffer_m)
    empty = [shapely.Polygon()] * len(bands)
    rows_id, rows_m, rows_g = [], [], []
    for i, hid in enumerate(ids):
        rows_id.extend([hid] * len(bands))
        rows_m.extend(bands.tolist())
        rows_g.extend(geoms.get(i, empty))
    frame = gpd.GeoDataFrame({"haven_id": rows_id, "minutes": rows_m}, geometry=rows_g, crs=net.crs)
    return frame.to_crs("EPSG:4326")
