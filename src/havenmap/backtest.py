"""Backtests: does the threat picture point where violence comes next, and do alerts come before it?

For every as-of date ``t`` from ``start`` to ``end`` every ``step`` days, the threat picture
and the alerts are computed from what was known then — only incidents dated on or before
``t`` (the whole as-of day) — and scored against the incidents of the next ``horizon`` days,
``t < date <= t + horizon``. The same scores are computed, in the same run and on the same
incidents, for three baselines. Methods:

``havenmap``
    :func:`havenmap.threat.compute_threat` (its default method, or ``method=``) for the
    roads, :func:`havenmap.threat.early_warning` for the alerts.
``last_counts``
    Weighted incidents per km of each road in the last ``counts_days`` (56: eight weeks,
    the naive analyst's map).
``planar_kde``
    A planar quartic kernel density (bandwidth ``planar_bandwidth_m``, 100 m) of the
    incidents of the last ``planar_days`` (112), averaged along each road (sampled every
    25 m or less). Bandwidth and window are the best of a grid on the tuning histories
    (``benchmarks/tune_threat.py``): the baseline got the same tuning as havenmap.
``uniform``
    Every km of road equally risky.

**Road scores** (the street-length PAI of the crime-forecasting literature: Chainey et al.
2008; Rosser et al. 2017). Incidents are weighted as the threat picture weighs them, without
age decay (type × fatality factor × precision weight, :func:`havenmap.threat.weigh_incidents`).
Roads (physical pieces, both directions together) are ranked by predicted risk per km; the
top ``x`` % of road km is the flagged area. ``hit_rate_x`` is the share of the horizon's
weighted incidents (those on the network) that fall on it, ``pai_x = hit_rate_x / (x/100)``:
1 is no better than chance, 10 at x = 5 would be everything on a twentieth of the roads. The
road that straddles the ``x`` % boundary, and roads tied in risk across it, count in
proportion to the length that fits — the expected value over random tie-breaking, so a
uniform forecast scores exactly ``pai = 1``.

**Defender scores.** A defender has an *event* at ``t`` when a severe incident (a severe type
or a death) happens within ``distance_m`` metres of road of them in ``(t, t + horizon]``.
At every as-of date each (defender, date) pair is a hit (alerted, event), a false alarm
(alerted, no event) or a miss (not alerted, event); ``precision = hits / alerts``,
``recall = hits / events``. havenmap alerts with :func:`~havenmap.threat.early_warning`; each
baseline alerts *the same number* of defenders at that date — those with the most predicted
risk on the roads within ``distance_m`` (km × risk per km of the pieces whose midpoint is that
close) — so precision and recall compare ranking skill at equal alert volume, and
``uniform`` alerts where there is the most road.
An *onset* is a severe incident within ``distance_m`` of a defender after ``quiet_days``
without one (the start of a wave, not its continuation). It is *warned* when the defender
was alerted at an as-of date within the ``quiet_days`` before it (the quiet spell is where
its warning had to come); its **lead time** is the days from the first such alert to the
onset. ``lead_time_days`` is the mean over warned onsets, ``onset_recall`` the share
warned. An alert that lapses before the onset still warned it, but the dates it lapsed on
count as misses in ``recall``.

**Summaries and confidence intervals.** Every summary is pooled over the as-of dates (sums of
numerators over sums of denominators: a quiet week weighs little). Confidence intervals
(``<metric>_ci``, 95 % by default) are percentile intervals of ``bootstrap`` resamples of the
as-of dates with replacement, the same resamples for every method (so the
havenmap-to-best-baseline ratios in ``comparison`` are paired). Adjacent weeks are
correlated, so treat the intervals as a guide, not a test.

The dates are independent tasks: they run on ``dask.distributed`` (:mod:`havenmap._distributed`)
— local worker processes by default, a cluster with ``scheduler=`` — with the network, the
incidents and the defenders sent to each worker once; results are identical to a serial run
(``workers=0``).
"""

from __future__ import annotations

import datetime as _dt
import inspect
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.spatial import cKDTree

from . import _checks, _distributed, _graph, _io, layers, threat
from .errors import InputError
from .network import RoadNetwork
from .snap import DEFAULT_MAX_SNAP_M, snap_points

__all__ = [
    "METHODS",
    "OUTPUT_FILES",
    "SHARES",
    "BacktestParams",
    "BacktestResult",
    "alert_outcomes",
    "backtest",
    "check_incidents",
    "parse_date",
    "parse_days",
    "road_hits",
]

PathLike = str | os.PathLike[str]

#: Methods scored in every backtest, havenmap first.
METHODS = ("havenmap", "last_counts", "planar_kde", "uniform")
#: Shares of road km (percent) at which hit rate and PAI are reported.
SHARES = (1, 5, 10)
#: Files :meth:`BacktestResult.write` writes, relative to its folder.
OUTPUT_FILES = ("backtest.csv", "backtest.json", "backtest.html")
_EPOCH = pd.Timestamp("1970-01-01")
_SAMPLE_M = 25.0
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAYS = re.compile(r"^\s*(\d+)\s*(d|day|days|w|wk|week|weeks)?\s*$", re.IGNORECASE)


# ---------------------------------------------------------------------------- parameters


def parse_date(value: Any, option: str = "date") -> pd.Timestamp:
    """A calendar day from ``YYYY-MM-DD`` (or a date / Timestamp); InputError naming ``option`` otherwise."""
    if isinstance(value, (pd.Timestamp, _dt.date)) and not pd.isna(value):
        return pd.Timestamp(value).normalize()
    text = str(value).strip() if value is not None else ""
    if _ISO.match(text):
        try:
            return pd.Timestamp(text)
        except ValueError:
            pass
    raise InputError(f"{option} {value!r} is not a date; write it as YYYY-MM-DD (for example 2026-01-05)")


def parse_days(value: Any, option: str = "duration") -> int:
    """Whole days from an int or ``'7d'`` / ``'2w'`` / ``'14'``; InputError unless > 0."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        days = int(value)
    else:
        match = _DAYS.match(str(value))
        if not match:
            raise InputError(f"{option} {value!r}: give whole days or weeks, such as 7d, 14d or 2w")
        unit = (match.group(2) or "d").lower()
        days = int(match.group(1)) * (7 if unit.startswith("w") else 1)
    if days <= 0:
        raise InputError(f"{option} {value!r}: must be at least one day (for example 7d)")
    return days


@dataclass(frozen=True)
class BacktestParams:
    """Validated parameters of a backtest (also loadable from TOML, :meth:`from_file`).

    Attributes
    ----------
    start, end : pandas.Timestamp
        First and last as-of date (``--from``, ``--to``; ``end >= start``).
    step_days, horizon_days : int
        Days between as-of dates, and days after each scored (``--step``, ``--horizon``; > 0).
    method : str
        havenmap's risk estimator (:data:`havenmap.threat.THREAT_METHODS`).
    bandwidth_m, half_life_days : float or None
        Override the estimator's defaults (None: the method's own).
    threat_options : dict
        Further keyword arguments for :func:`havenmap.threat.compute_threat`.
    distance_m, recent_days, baseline_days, alert_alpha : float, int, int, float
        Early warning (:func:`havenmap.threat.early_warning`; ``alert_alpha`` is its
        ``alpha``, the CLI's ``--p-value``); ``distance_m`` is also the radius of a
        defender's events.
    counts_days : int
        Window of the ``last_counts`` baseline, days.
    planar_bandwidth_m, planar_days : float, int
        Bandwidth (m) and window (days) of the ``planar_kde`` baseline.
    quiet_days : int
        Days without a severe incident before one counts as an onset.
    bootstrap, confidence, seed : int, float, int
        Bootstrap resamples of the as-of dates (0: no intervals), interval level, seed.
    max_snap_m, incident_max_snap_m : float
        Snapping limits for defenders and incidents, metres.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    step_days: int = 7
    horizon_days: int = 7
    method: str = field(default_factory=lambda: threat.DEFAULT_METHOD)
    bandwidth_m: float | None = None
    half_life_days: float | None = None
    threat_options: dict[str, Any] = field(default_factory=dict)
    distance_m: float = 1000.0
    recent_days: int = 7
    baseline_days: int = 90
    alert_alpha: float = 0.01
    counts_days: int = 56
    planar_bandwidth_m: float = 100.0
    planar_days: int = 112
    quiet_days: int = 28
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    max_snap_m: float = DEFAULT_MAX_SNAP_M
    incident_max_snap_m: float = threat.INCIDENT_MAX_SNAP_M

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "start", parse_date(self.start, "--from"))
        put(self, "end", parse_date(self.end, "--to"))
        if self.end < self.start:
            raise InputError(
                f"--to {self.end.date()} is before --from {self.start.date()}; give the first as-of date "
                "with --from and the last with --to"
            )
        put(self, "step_days", parse_days(self.step_days, "--step"))
        put(self, "horizon_days", parse_days(self.horizon_days, "--horizon"))
        for name, option in (
            ("recent_days", "--recent-days"),
            ("baseline_days", "--baseline-days"),
            ("counts_days", "--counts-days"),
            ("planar_days", "--planar-days"),
            ("quiet_days", "--quiet-days"),
        ):
            put(self, name, parse_days(getattr(self, name), option))
        if self.method not in threat.THREAT_METHODS:
            raise InputError(f"--method {self.method!r}: use one of {', '.join(threat.THREAT_METHODS)}")
        for name, option in (
            ("distance_m", "--distance-m"),
            ("planar_bandwidth_m", "--planar-bandwidth-m"),
            ("max_snap_m", "--max-snap-m"),
            ("incident_max_snap_m", "--incident-max-snap-m"),
        ):
            _positive(getattr(self, name), option)
        for name, option in (("bandwidth_m", "--bandwidth-m"), ("half_life_days", "--half-life-days")):
            if getattr(self, name) is not None:
                _positive(getattr(self, name), option)
        if not 0 < self.alert_alpha < 1:
            raise InputError(f"--p-value {self.alert_alpha}: use a probability between 0 and 1, e.g. 0.01")
        if not 0 < self.confidence < 1:
            raise InputError(f"confidence {self.confidence}: use a level between 0 and 1, e.g. 0.95")
        if not isinstance(self.bootstrap, (int, np.integer)) or self.bootstrap < 0:
            raise InputError(f"--bootstrap {self.bootstrap}: give a number of resamples >= 0")
        if not isinstance(self.threat_options, dict):
            raise InputError("threat_options: give a table of compute_threat keyword arguments")
        reserved = {
            "net",
            "incidents",
            "as_of",
            "grid",
            "hotspots",
            "clusters",
            "method",
            "bandwidth_m",
            "half_life_days",
            "weights",
        }
        clash = sorted(reserved & set(self.threat_options))
        if clash:
            raise InputError(f"threat_options: {', '.join(clash)} cannot be set there; use the backtest's own options")
        known = set(inspect.signature(threat.compute_threat).parameters)
        unknown = sorted(set(self.threat_options) - known)
        if unknown:
            raise InputError(f"threat_options: {unknown[0]!r} is not a parameter of havenmap.threat.compute_threat")
        if len(self.as_of_dates) > 100_000:
            raise InputError(f"--step {self.step_days}d makes {len(self.as_of_dates):,} as-of dates; use a longer step")

    @property
    def as_of_dates(self) -> pd.DatetimeIndex:
        """Every as-of date, ``start`` to ``end`` every ``step_days``."""
        return pd.date_range(self.start, self.end, freq=f"{self.step_days}D")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (dates as ISO strings)."""
        out = asdict(self)
        out["start"], out["end"] = self.start.date().isoformat(), self.end.date().isoformat()
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], label: str = "parameters") -> BacktestParams:
        """Build from a mapping of field names (``step``/``horizon``/``from``/``to`` accepted as aliases)."""
        aliases = {"from": "start", "to": "end", "step": "step_days", "horizon": "horizon_days"}
        known = {f.name for f in fields(cls)}
        values = {aliases.get(k, k): v for k, v in values.items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{label}: unknown backtest parameter {unknown[0]!r}; known: {', '.join(sorted(known))}")
        missing = [k for k in ("start", "end") if k not in values]
        if missing:
            raise InputError(
                f"{label}: missing {missing[0]!r} (the {'first' if missing[0] == 'start' else 'last'} "
                "as-of date, YYYY-MM-DD)"
            )
        return cls(**values)

    @classmethod
    def from_file(cls, path: PathLike) -> BacktestParams:
        """Read a TOML file: a ``[backtest]`` table (or top-level keys) of field names."""
        data = _checks.read_toml(path)
        return cls.from_dict(data.get("backtest", data), label=str(path))


def _positive(value: Any, option: str) -> None:
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{option} {value!r}: give a positive number")


def check_incidents(incidents: Any) -> gpd.GeoDataFrame:
    """Canonical incidents (:func:`havenmap.layers.as_incidents`) every one of which has a date.

    Raises
    ------
    havenmap.errors.InputError
        No date column, or rows without a date (the first named, with a count of the others).
    """
    if isinstance(incidents, gpd.GeoDataFrame) and set(layers.INCIDENT_COLUMNS) <= set(incidents.columns):
        inc = incidents
    else:
        inc = layers.as_incidents(incidents, label=str(incidents) if isinstance(incidents, (str, Path)) else "<memory>")
    label = inc.attrs.get("source", "incidents")
    dates = pd.to_datetime(inc["date"], errors="coerce")
    missing = dates.isna().to_numpy()
    if len(inc) and missing.all():
        raise InputError(
            f"{label}: the incidents have no dates; a backtest needs an event date per incident "
            "(a date or event_date column, YYYY-MM-DD)"
        )
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        more = int(missing.sum()) - 1
        raise InputError(
            f"{label}: row {row + 1} (id {str(inc['incident_id'].iloc[row])!r}), column 'date': no date"
            + (f" (and {more} more)" if more else "")
            + "; a backtest needs a date for every incident: add it or remove the row"
        )
    return inc


# ---------------------------------------------------------------------------- scores


def road_hits(risk: np.ndarray, length: np.ndarray, target: np.ndarray, shares: tuple[float, ...] = SHARES):
    """Target weight captured by the top ``x`` % of road length, ranked by ``risk`` (per km).

    Roads are taken in decreasing order of ``risk`` until ``x`` % of the total length is
    filled; the road straddling the boundary, and a group of roads *tied* in risk across it,
    count in proportion to the length that fits (the expected value over random
    tie-breaking). Roads of zero length take no part.

    Parameters
    ----------
    risk, length, target
        Per road: predicted risk per km, length (any unit), target weight on it.
    shares
        Percentages of the total length.

    Returns
    -------
    numpy.ndarray
        Captured target weight per share.
    """
    risk = np.nan_to_num(np.asarray(risk, dtype=np.float64), nan=0.0)
    length = np.asarray(length, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    keep = length > 0
    risk, length, target = risk[keep], length[keep], target[keep]
    out = np.zeros(len(shares))
    if len(risk) == 0:
        return out
    order = np.argsort(-risk, kind="stable")
    r = risk[order]
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    g_len = np.add.reduceat(length[order], starts)
    g_w = np.add.reduceat(target[order], starts)
    cum_len, cum_w = np.cumsum(g_len), np.cumsum(g_w)
    total = cum_len[-1]
    for i, share in enumerate(shares):
        budget = min(share / 100.0, 1.0) * total
        g = min(int(np.searchsorted(cum_len, budget, side="left")), len(g_len) - 1)
        before_len = cum_len[g - 1] if g > 0 else 0.0
        before_w = cum_w[g - 1] if g > 0 else 0.0
        out[i] = before_w + g_w[g] * min((budget - before_len) / g_len[g], 1.0)
    return out


def alert_outcomes(alerted: np.ndarray, event: np.ndarray) -> tuple[int, int, int]:
    """``(hits, false_alarms, misses)`` of boolean alert and event arrays over the same defenders."""
    alerted, event = np.asarray(alerted, dtype=bool), np.asarray(event, dtype=bool)
    return int((alerted & event).sum()), int((alerted & ~event).sum()), int((~alerted & event).sum())


def _onsets(day: np.ndarray, who: np.ndarray, quiet_days: int, first_day: int) -> np.ndarray:
    """Mask of (defender, severe-incident day) pairs that start a wave: no earlier one within ``quiet_days``."""
    order = np.lexsort((day, who))
    d, w = day[order], who[order]
    prev_same = np.r_[False, w[1:] == w[:-1]]
    gap = np.r_[np.inf, np.diff(d).astype(float)]
    onset_sorted = (~prev_same | (gap > quiet_days)) & (d - quiet_days >= first_day)
    onset_sorted &= ~(prev_same & (gap == 0))
    out = np.zeros(len(day), dtype=bool)
    out[order] = onset_sorted
    return out


def _first_alert(
    alerted: np.ndarray, days: np.ndarray, k: np.ndarray, who: np.ndarray, tau: np.ndarray, window: int
) -> np.ndarray:
    """Per onset: index of the earliest as-of date ``<= k`` within ``window`` days before ``tau`` on which
    ``who`` was alerted (``alerted``: dates × defenders), or -1."""
    first = np.full(len(k), -1, dtype=np.int64)
    for back in range(len(days)):
        j = k - back
        inside = (j >= 0) & (tau - days[np.maximum(j, 0)] <= window)
        if not inside.any():
            break
        hit = inside & alerted[np.maximum(j, 0), who]
        first[hit] = j[hit]
    return first


# ---------------------------------------------------------------------------- the shared inputs and one date


@dataclass
class _Shared:
    """What every as-of task reads (sent once to each worker)."""

    net: RoadNetwork
    incidents: gpd.GeoDataFrame  # sorted by date, static weights, snapped
    day: np.ndarray  # days since 1970-01-01, sorted
    weight: np.ndarray  # static weight (0 off the network)
    piece: np.ndarray  # physical piece index, -1 off the network
    xy: np.ndarray  # projected incident positions (as reported)
    length: np.ndarray  # piece lengths, m
    defenders: gpd.GeoDataFrame | None  # on-network defenders: id, geometry
    near: sparse.csr_matrix | None  # defenders × pieces: km of the piece when its midpoint is within distance_m
    params: BacktestParams
    weights: pd.DataFrame | None

    def __getstate__(self) -> dict[str, Any]:
        # what goes to the workers: the network without its caches (search graphs, trees), which each
        # worker rebuilds once; a serial run keeps using the caller's network and its caches
        state = dict(self.__dict__)
        state["net"] = _bare(self.net)
        return state


@dataclass
class _DateScores:
    known: int
    target: int
    target_weight: float
    captured: np.ndarray  # (methods, shares) weight
    alerted: np.ndarray  # (methods, defenders) bool


def _bare(net: RoadNetwork) -> RoadNetwork:
    """The network without its caches (search graphs, trees): workers rebuild what they use."""
    return net.without_caches()


def _road_samples(net: RoadNetwork) -> tuple[np.ndarray, np.ndarray, cKDTree]:
    """Sample points along every physical piece (at most ``_SAMPLE_M`` apart): piece index, count per piece, tree."""

    def build():
        phys = net.undirected_edges
        k = np.clip(np.ceil(net.edge_length[phys] / _SAMPLE_M), 1, 200).astype(np.int64)
        piece = np.repeat(np.arange(len(phys)), k)
        within = np.arange(len(piece)) - np.repeat(np.cumsum(k) - k, k)
        xy = net.points_along(phys[piece], (within + 0.5) / k[piece])
        return piece, k, cKDTree(xy)

    return net.cached(("backtest_road_samples", _SAMPLE_M), build)


def _planar_kde(shared: _Shared, known: np.ndarray, t: int) -> np.ndarray:
    p = shared.params
    sel = known & (shared.day > t - p.planar_days) & (shared.weight > 0)
    piece, k, tree = _road_samples(shared.net)
    out = np.zeros(len(shared.length))
    if not sel.any():
        return out
    h = p.planar_bandwidth_m
    pairs = tree.sparse_distance_matrix(cKDTree(shared.xy[sel]), h, output_type="ndarray")
    u = pairs["v"] / h
    dens = shared.weight[sel][pairs["j"]] * 3.0 / (math.pi * h * h) * (1.0 - u * u) ** 2 * 1e6  # per km²
    return np.bincount(piece[pairs["i"]], weights=dens, minlength=len(out)) / k


def _method_risks(shared: _Shared, known: np.ndarray, t: int) -> np.ndarray:
    """(methods, pieces) risk per km at as-of day ``t``."""
    p, net = shared.params, shared.net
    phys = net.undirected_edges
    km = shared.length / 1000.0
    risks = np.zeros((len(METHODS), len(phys)))
    n_known = int(known.sum())
    if n_known:
        kw = dict(p.threat_options)
        if p.bandwidth_m is not None:
            kw["bandwidth_m"] = p.bandwidth_m
        if p.half_life_days is not None:
            kw["half_life_days"] = p.half_life_days
        as_of = _EPOCH + pd.Timedelta(days=t)
        result = threat.compute_threat(
            net,
            shared.incidents.iloc[:n_known],
            as_of,
            method=p.method,
            weights=shared.weights,
            grid=False,
            hotspots=False,
            clusters=False,
            **kw,
        )
        risks[0] = result.risk[phys]
    recent = known & (shared.day > t - p.counts_days) & (shared.piece >= 0)
    counts = np.bincount(shared.piece[recent], weights=shared.weight[recent], minlength=len(phys))
    risks[1] = np.divide(counts, km, out=np.zeros(len(phys)), where=km > 0)
    risks[2] = _planar_kde(shared, known, t)
    risks[3] = 1.0
    return risks


def _havenmap_alerts(shared: _Shared, known: np.ndarray, t: int) -> np.ndarray:
    d = shared.defenders
    out = np.zeros(len(d), dtype=bool)
    n_known = int(known.sum())
    if n_known == 0 or len(d) == 0:
        return out
    p = shared.params
    alerts = threat.early_warning(
        shared.net,
        shared.incidents.iloc[:n_known],
        d,
        _EPOCH + pd.Timedelta(days=t),
        distance_m=p.distance_m,
        recent_days=p.recent_days,
        baseline_days=p.baseline_days,
        alpha=p.alert_alpha,
        max_snap_m=p.max_snap_m,
    )
    out[np.isin(d["id"].astype(str).to_numpy(), alerts["defender_id"].astype(str).to_numpy())] = True
    return out


def _score_date(t: int, shared: _Shared) -> _DateScores:
    """Forecast from the incidents up to day ``t`` (inclusive), score against ``(t, t + horizon]``."""
    p = shared.params
    known_n = int(np.searchsorted(shared.day, t, side="right"))
    target_end = int(np.searchsorted(shared.day, t + p.horizon_days, side="right"))
    known = np.zeros(len(shared.day), dtype=bool)
    known[:known_n] = True
    target = np.zeros(len(shared.day), dtype=bool)
    target[known_n:target_end] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # weighting and snapping were reported once, before the tasks
        risks = _method_risks(shared, known, t)
        on = target & (shared.piece >= 0)
        truth = np.bincount(shared.piece[on], weights=shared.weight[on], minlength=risks.shape[1])
        captured = np.vstack([road_hits(r, shared.length, truth) for r in risks])
        n_def = 0 if shared.defenders is None else len(shared.defenders)
        alerted = np.zeros((len(METHODS), n_def), dtype=bool)
        if n_def:
            alerted[0] = _havenmap_alerts(shared, known, t)
            budget = int(alerted[0].sum())
            if budget:
                for m in range(1, len(METHODS)):
                    score = shared.near @ risks[m]
                    top = np.lexsort((np.arange(n_def), -score))[:budget]
                    alerted[m, top] = True
    return _DateScores(known_n, int(on.sum()), float(truth.sum()), captured, alerted)


# ---------------------------------------------------------------------------- the backtest


@dataclass
class BacktestResult:
    """Scores of a backtest.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per as-of date × method: ``as_of``, ``horizon_end``, ``method``,
        ``known_incidents``, ``target_incidents``, ``target_weight``, ``hit_rate_1/5/10``,
        ``pai_1/5/10``, ``defenders``, ``events``, ``alerts``, ``hits``, ``false_alarms``,
        ``misses``, ``precision``, ``recall``, ``onsets``, ``onsets_warned``, ``lead_time_days``.
    summary : dict
        Per method the pooled metrics with ``<metric>_ci`` intervals (see the module docstring).
    comparison : dict
        havenmap against the best baseline (by ``pai_5``): ratios and differences with paired
        bootstrap intervals.
    params : BacktestParams
    manifest : dict
        Inputs and execution: network, incidents, defenders, ``threat`` (havenmap's estimator
        with its defaults filled in), as-of dates, ``execution`` (mode, workers, seconds,
        bytes sent, peak memory per worker).
    onsets : pandas.DataFrame
        One row per onset × method: ``defender_id``, ``incident_id``, ``onset_date``,
        ``as_of`` (the last as-of date before it), ``method``, ``warned``, ``lead_time_days``
        (NaN when not warned). Kept in memory only (not written by :meth:`write`).
    """

    scores: pd.DataFrame
    summary: dict[str, dict[str, Any]]
    comparison: dict[str, Any]
    params: BacktestParams
    manifest: dict[str, Any]
    onsets: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_ONSET_COLUMNS))

    def to_json(self) -> dict[str, Any]:
        """The ``backtest.json`` document."""
        return {
            "summary": self.summary,
            "comparison": self.comparison,
            "params": self.params.as_dict(),
            "manifest": self.manifest,
        }

    def table(
        self,
        metrics: tuple[str, ...] = ("pai_1", "pai_5", "pai_10", "hit_rate_5", "precision", "recall", "lead_time_days"),
    ) -> pd.DataFrame:
        """Summary as a methods × metrics DataFrame (point estimates)."""
        return pd.DataFrame({m: {k: self.summary[m].get(k) for k in metrics} for m in self.summary}).T

    def write(self, out_dir: PathLike, *, title: str = "Backtest") -> dict[str, str]:
        """Write ``backtest.csv``, ``backtest.json`` and ``backtest.html`` (atomically) into ``out_dir``."""
        from . import _charts

        out = Path(out_dir)
        files = {
            "csv": str(_io.write_csv(out / "backtest.csv", self.scores)),
            "json": str(_io.write_json(out / "backtest.json", self.to_json())),
        }
        files["html"] = str(_io.write_text(out / "backtest.html", _charts.backtest_page(self, title=title)))
        return files


def backtest(
    net: RoadNetwork,
    incidents: Any,
    defenders: Any = None,
    start: Any = None,
    end: Any = None,
    step: Any = "7d",
    horizon: Any = "7d",
    *,
    params: BacktestParams | None = None,
    weights: PathLike | pd.DataFrame | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = False,
    **options: Any,
) -> BacktestResult:
    """Score the threat picture and early warning, and the baselines, over a span of as-of dates.

    Parameters
    ----------
    net
        The road network.
    incidents
        Incidents with a date each (:func:`havenmap.layers.read_incidents` output, a path,
        a DataFrame).
    defenders
        Defender points with an ``id`` (or None: road scores only). Their exact locations go
        to the Dask workers: use a cluster you trust.
    start, end
        First and last as-of date (YYYY-MM-DD or dates).
    step, horizon
        Days between as-of dates and days scored after each (int, or '7d' / '2w').
    params
        All parameters at once (then ``start`` ... ``horizon`` and ``options`` are not used).
    weights
        Type-weight table (:func:`havenmap.threat.read_weights`).
    scheduler, workers
        Where the dates run: see :func:`havenmap._distributed.map_tasks` (``workers=0``:
        serially in this process).
    progress
        Show a progress bar on stderr.
    **options
        Other :class:`BacktestParams` fields (``method``, ``distance_m``, ``bootstrap`` ...).

    Returns
    -------
    BacktestResult
    """
    if params is None:
        params = BacktestParams(start=start, end=end, step_days=step, horizon_days=horizon, **options)
    _distributed.check_scheduler(scheduler if isinstance(scheduler, str) else None, workers)
    inc = check_incidents(incidents)
    table = threat.read_weights(weights) if weights is not None else None
    shared, pairs, info = _prepare(net, inc, defenders, params, table)
    dates = params.as_of_dates
    days = ((dates - _EPOCH) / pd.Timedelta(days=1)).to_numpy().astype(np.int64)
    run = _distributed.map_tasks(
        _score_date,
        days.tolist(),
        shared,
        scheduler=scheduler,
        workers=workers,
        progress=progress,
        description=f"Backtesting {len(days)} as-of dates",
        name="havenmap-backtest",
    )
    scores, per_date = _assemble(run.results, shared, days, pairs)
    summary, comparison = _summaries(per_date, params)
    info["threat"] = _estimator(params)
    info["execution"] = run.summary()
    info["as_of_dates"] = [d.date().isoformat() for d in dates]
    return BacktestResult(scores, summary, comparison, params, info, per_date["onset_table"])


def _estimator(params: BacktestParams) -> dict[str, Any]:
    """havenmap's estimator as used: the method and its parameters with the defaults filled in."""
    used = dict(threat.METHOD_DEFAULTS[params.method])
    given = {"bandwidth_m": params.bandwidth_m, "half_life_days": params.half_life_days, **params.threat_options}
    used.update({k: v for k, v in given.items() if v is not None})
    return {"method": params.method, **used}


def _prepare(
    net: RoadNetwork, inc: gpd.GeoDataFrame, defenders: Any, params: BacktestParams, table: pd.DataFrame | None
) -> tuple[_Shared, tuple[np.ndarray, np.ndarray] | None, dict[str, Any]]:
    """The shared task inputs, the (defender, severe incident) pairs within the alert distance, the manifest."""
    dates = pd.to_datetime(inc["date"]).dt.normalize()
    first, last = dates.min(), dates.max()
    if params.start > last:
        raise InputError(
            f"--from {params.start.date()} is after the last incident ({last.date()}): nothing to forecast from; "
            "choose as-of dates within the incidents' span"
        )
    last_needed = params.as_of_dates[-1] + pd.Timedelta(days=params.horizon_days)
    if last_needed > last:
        warnings.warn(
            f"the last horizons end after the latest incident ({last.date()}): dates up to "
            f"{last_needed.date()} are scored on the incidents known so far",
            UserWarning,
            stacklevel=3,
        )
    if params.start < first:
        warnings.warn(
            f"--from {params.start.date()} is before the first incident ({first.date()}): the first "
            "as-of dates forecast from nothing",
            UserWarning,
            stacklevel=3,
        )
    order = np.argsort(dates.to_numpy(), kind="stable")
    inc = inc.iloc[order].reset_index(drop=True)
    inc.attrs = dict(inc.attrs)
    weighted = threat.weigh_incidents(inc, max(last, last_needed), half_life_days=math.inf, weights=table)
    snapped = threat.snap_incidents(net, weighted, params.incident_max_snap_m)
    keep = [*layers.INCIDENT_COLUMNS]
    keep += [c for c in snapped.columns if c not in keep and c in _KEPT_COLUMNS]
    snapped = gpd.GeoDataFrame(snapped[[*keep, "geometry"]], geometry="geometry", crs=snapped.crs)
    snapped.attrs = dict(weighted.attrs)
    on = snapped["on_network"].to_numpy(dtype=bool)
    phys = net.undirected_edges
    graph_piece = np.full(len(snapped), -1, dtype=np.int64)
    edge = snapped["edge"].to_numpy()
    graph_piece[on] = np.searchsorted(phys, net.canonical_edge[edge[on]])
    day = ((pd.to_datetime(snapped["date"]).dt.normalize() - _EPOCH) / pd.Timedelta(days=1)).to_numpy()
    xy = shapely.get_coordinates(snapped.geometry.to_crs(net.crs).to_numpy())
    d, near, pairs = _prepare_defenders(net, defenders, snapped, params)
    shared = _Shared(
        net=net,
        incidents=snapped,
        day=day.astype(np.int64),
        weight=np.where(on, snapped["weight"].to_numpy(dtype=float), 0.0),
        piece=graph_piece,
        xy=xy,
        length=net.edge_length[phys].copy(),
        defenders=d,
        near=near,
        params=params,
        weights=table,
    )
    info = {
        "havenmap_version": _version(),
        "network": {
            "source": Path(str(net.source)).name,
            "type": net.network_type,
            "nodes": int(net.n_nodes),
            "edges": int(net.n_edges),
            "road_km": round(float(net.edge_length[phys].sum()) / 1000.0, 3),
        },
        "incidents": {
            "source": Path(str(inc.attrs.get("source", "<memory>"))).name,
            "count": len(snapped),
            "on_network": int(on.sum()),
            "first_date": first.date().isoformat(),
            "last_date": last.date().isoformat(),
        },
        "defenders": None if d is None else {"count": len(d), "assessed": len(d)},
    }
    return shared, pairs, info


_KEPT_COLUMNS = {
    "type_weight",
    "violent",
    "severe",
    "fatality_factor",
    "age_days",
    "decay",
    "precision_weight",
    "bandwidth_factor",
    "weight",
    "status",
    "edge",
    "edge_fraction",
    "edge_offset_m",
    "node",
    "snap_distance_m",
    "on_network",
    "snap_x",
    "snap_y",
}


def _version() -> str:
    from . import __version__

    return __version__


def _prepare_defenders(net: RoadNetwork, defenders: Any, snapped: gpd.GeoDataFrame, params: BacktestParams):
    """On-network defenders, their near-road matrix and their (defender, severe incident, metres) pairs."""
    if defenders is None:
        return None, None, None
    d = (
        defenders
        if isinstance(defenders, gpd.GeoDataFrame) and "id" in defenders.columns
        else layers.as_points(defenders, kind="defenders")
    )
    found = snap_points(net, d, max_distance_m=params.max_snap_m, require_any=False)
    on = found["on_network"].to_numpy(dtype=bool)
    if (~on).any():
        ids = found.loc[~on, "id"].astype(str).tolist()
        warnings.warn(
            f"defenders {', '.join(ids[:10])}{' and more' if len(ids) > 10 else ''} are farther than "
            f"{params.max_snap_m:.0f} m from any road: not scored",
            UserWarning,
            stacklevel=4,
        )
    d = gpd.GeoDataFrame({"id": d["id"].astype(str).to_numpy()[on]}, geometry=d.geometry.to_numpy()[on], crs=d.crs)
    places = _graph.Places.from_snapped(net, found.iloc[np.flatnonzero(on)])
    phys = net.undirected_edges
    mid = _graph.Places(np.full(len(phys), -1), phys, np.full(len(phys), 0.5))
    i, j, _ = _graph.pairs_within(net, places, mid, params.distance_m)
    near = sparse.csr_matrix((net.edge_length[phys][j] / 1000.0, (i, j)), shape=(len(d), len(phys)))
    severe = np.flatnonzero(snapped["severe"].to_numpy(dtype=bool) & snapped["on_network"].to_numpy(dtype=bool))
    inc_places = _graph.Places.locate(
        net, snapped["edge"].to_numpy()[severe], snapped["edge_fraction"].to_numpy(dtype=float)[severe]
    )
    a, b, _ = _graph.pairs_within(net, places, inc_places, params.distance_m)
    return d, near, (a, severe[b])


# ---------------------------------------------------------------------------- assembling and summarising

_ONSET_COLUMNS = ["defender_id", "incident_id", "onset_date", "as_of", "method", "warned", "lead_time_days"]
_SCORE_COLUMNS = [
    "as_of",
    "horizon_end",
    "method",
    "known_incidents",
    "target_incidents",
    "target_weight",
    *[f"hit_rate_{s}" for s in SHARES],
    *[f"pai_{s}" for s in SHARES],
    "defenders",
    "events",
    "alerts",
    "hits",
    "false_alarms",
    "misses",
    "precision",
    "recall",
    "onsets",
    "onsets_warned",
    "lead_time_days",
]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


def _assemble(
    results: list[_DateScores], shared: _Shared, days: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-date scores (the CSV) and the per-date sums the summaries pool."""
    p = shared.params
    n_m, n_k = len(METHODS), len(days)
    n_def = 0 if shared.defenders is None else len(shared.defenders)
    total = np.array([r.target_weight for r in results])
    captured = np.stack([r.captured for r in results], axis=1)  # (M, K, S)
    alerted = np.stack([r.alerted for r in results], axis=1) if n_k else np.zeros((n_m, 0, n_def), bool)
    event = np.zeros((n_k, n_def), dtype=bool)
    onsets = np.zeros(n_k)
    warned = np.zeros((n_m, n_k))
    lead_sum = np.zeros((n_m, n_k))
    records: list[pd.DataFrame] = []
    if pairs is not None and len(pairs[0]):
        who, inc = pairs
        day = shared.day[inc]
        # an event at date k: a severe incident within the distance in (t_k, t_k + horizon]
        lo = np.searchsorted(days, day - p.horizon_days, side="left")
        hi = np.searchsorted(days, day - 1, side="right")
        count = np.maximum(hi - lo, 0)
        ks = np.repeat(lo, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
        event[ks, np.repeat(who, count)] = True
        start = _onsets(day, who, p.quiet_days, int(shared.day.min()))
        tau, o_who, o_inc = day[start], who[start], inc[start]
        k = np.searchsorted(days, tau, side="left") - 1
        ok = (k >= 0) & (tau - days[np.maximum(k, 0)] <= p.horizon_days)
        tau, o_who, o_inc, k = tau[ok], o_who[ok], o_inc[ok], k[ok]
        onsets = np.bincount(k, minlength=n_k).astype(float)
        for m, method in enumerate(METHODS):
            first = _first_alert(alerted[m], days, k, o_who, tau, p.quiet_days)
            hit = first >= 0
            warned[m] = np.bincount(k[hit], minlength=n_k)
            lead = np.where(hit, tau - days[np.maximum(first, 0)], np.nan)
            lead_sum[m] = np.bincount(k[hit], weights=lead[hit], minlength=n_k)
            records.append(
                pd.DataFrame(
                    {
                        "defender_id": shared.defenders["id"].to_numpy()[o_who],
                        "incident_id": shared.incidents["incident_id"].astype(str).to_numpy()[o_inc],
                        "onset_date": _EPOCH + pd.to_timedelta(tau, unit="D"),
                        "as_of": _EPOCH + pd.to_timedelta(days[k], unit="D"),
                        "method": method,
                        "warned": hit,
                        "lead_time_days": lead,
                    }
                )
            )
    onset_table = pd.concat(records, ignore_index=True) if records else pd.DataFrame(columns=_ONSET_COLUMNS)
    hits = (alerted & event[None]).sum(axis=2).astype(float)
    false_alarms = (alerted & ~event[None]).sum(axis=2).astype(float)
    misses = (~alerted & event[None]).sum(axis=2).astype(float)
    per_date = {
        "total": total,
        "captured": captured,
        "hits": hits,
        "false_alarms": false_alarms,
        "misses": misses,
        "onsets": onsets,
        "warned": warned,
        "lead_sum": lead_sum,
        "onset_table": onset_table,
    }
    rows = []
    for k in range(n_k):
        as_of = _EPOCH + pd.Timedelta(days=int(days[k]))
        for m, method in enumerate(METHODS):
            hit_rate = _ratio(captured[m, k], total[k])
            rows.append(
                {
                    "as_of": as_of.date().isoformat(),
                    "horizon_end": (as_of + pd.Timedelta(days=p.horizon_days)).date().isoformat(),
                    "method": method,
                    "known_incidents": results[k].known,
                    "target_incidents": results[k].target,
                    "target_weight": round(float(total[k]), 6),
                    **{f"hit_rate_{s}": hit_rate[i] for i, s in enumerate(SHARES)},
                    **{f"pai_{s}": hit_rate[i] * 100.0 / s for i, s in enumerate(SHARES)},
                    "defenders": n_def,
                    "events": int(event[k].sum()),
                    "alerts": int(hits[m, k] + false_alarms[m, k]),
                    "hits": int(hits[m, k]),
                    "false_alarms": int(false_alarms[m, k]),
                    "misses": int(misses[m, k]),
                    "precision": float(_ratio(hits[m, k], hits[m, k] + false_alarms[m, k])),
                    "recall": float(_ratio(hits[m, k], hits[m, k] + misses[m, k])),
                    "onsets": int(onsets[k]),
                    "onsets_warned": int(warned[m, k]),
                    "lead_time_days": float(_ratio(lead_sum[m, k], warned[m, k])),
                }
            )
    scores = pd.DataFrame(rows, columns=_SCORE_COLUMNS)
    for col in scores.columns:
        if scores[col].dtype == float:
            scores[col] = scores[col].round(6)
    return scores, per_date


def _metric_parts(per_date: dict[str, np.ndarray], m: int) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """metric -> (numerator per date, denominator per date, scale)."""
    d = per_date
    parts: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for i, s in enumerate(SHARES):
        parts[f"pai_{s}"] = (d["captured"][m, :, i], d["total"], 100.0 / s)
    for i, s in enumerate(SHARES):
        parts[f"hit_rate_{s}"] = (d["captured"][m, :, i], d["total"], 1.0)
    alerts = d["hits"][m] + d["false_alarms"][m]
    parts["precision"] = (d["hits"][m], alerts, 1.0)
    parts["recall"] = (d["hits"][m], d["hits"][m] + d["misses"][m], 1.0)
    parts["lead_time_days"] = (d["lead_sum"][m], d["warned"][m], 1.0)
    parts["onset_recall"] = (d["warned"][m], d["onsets"], 1.0)
    return parts


def _rounded(value: Any, digits: int = 4) -> Any:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _summaries(per_date: dict[str, np.ndarray], params: BacktestParams) -> tuple[dict[str, Any], dict[str, Any]]:
    n_k = len(per_date["total"])
    weights = np.ones((1, n_k))
    boot = None
    if params.bootstrap and n_k:
        rng = np.random.default_rng(params.seed)
        pick = rng.integers(0, n_k, size=(params.bootstrap, n_k))
        boot = np.zeros((params.bootstrap, n_k))
        np.add.at(boot, (np.repeat(np.arange(params.bootstrap), n_k), pick.ravel()), 1.0)
    lo_q, hi_q = 50.0 * (1.0 - params.confidence), 50.0 * (1.0 + params.confidence)
    point: dict[str, dict[str, float]] = {}
    reps: dict[str, dict[str, np.ndarray]] = {}
    summary: dict[str, Any] = {}
    for m, method in enumerate(METHODS):
        parts = _metric_parts(per_date, m)
        point[method], reps[method] = {}, {}
        entry: dict[str, Any] = {}
        for name, (num, den, scale) in parts.items():
            value = float(_ratio(weights @ num, weights @ den)[0] * scale)
            point[method][name] = value
            entry[name] = _rounded(value)
            if boot is not None:
                rep = _ratio(boot @ num, boot @ den) * scale
                reps[method][name] = rep
                entry[f"{name}_ci"] = _interval(rep, lo_q, hi_q)
        entry.update(
            {
                "dates": n_k,
                "alerts": int((per_date["hits"][m] + per_date["false_alarms"][m]).sum()),
                "hits": int(per_date["hits"][m].sum()),
                "false_alarms": int(per_date["false_alarms"][m].sum()),
                "misses": int(per_date["misses"][m].sum()),
                "onsets": int(per_date["onsets"].sum()),
                "onsets_warned": int(per_date["warned"][m].sum()),
            }
        )
        summary[method] = entry
    return summary, _comparison(point, reps, lo_q, hi_q)


def _interval(rep: np.ndarray, lo_q: float, hi_q: float) -> list[float | None] | None:
    finite = rep[np.isfinite(rep)]
    if len(finite) == 0:
        return None
    return [_rounded(np.percentile(finite, lo_q)), _rounded(np.percentile(finite, hi_q))]


def _comparison(point, reps, lo_q: float, hi_q: float) -> dict[str, Any]:
    """havenmap against the baseline with the best pooled pai_5 (ratios with paired bootstrap intervals)."""
    baselines = [m for m in METHODS[1:] if math.isfinite(point[m]["pai_5"])]
    if not baselines:
        return {}
    best = max(baselines, key=lambda m: point[m]["pai_5"])
    out: dict[str, Any] = {"best_baseline": best, "by": "pai_5"}
    for name in ("pai_1", "pai_5", "pai_10", "hit_rate_5", "precision", "recall", "lead_time_days"):
        ours, theirs = point["havenmap"][name], point[best][name]
        item: dict[str, Any] = {"havenmap": _rounded(ours), best: _rounded(theirs)}
        item["ratio"] = _rounded(ours / theirs) if theirs and math.isfinite(theirs) and math.isfinite(ours) else None
        if reps["havenmap"]:
            item["ratio_ci"] = _interval(_ratio(reps["havenmap"][name], reps[best][name]), lo_q, hi_q)
        out[name] = item
    return out
