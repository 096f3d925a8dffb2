"""Synthetic incident histories on real streets, for backtests, tests, benchmarks and notebooks.

A history is a set of weekly Poisson processes laid on the road network:

* **persistent** hotspots: the same rate every week;
* **emerging** hotspots: nothing until an onset week, then a ramp to full rate over
  ``ramp_weeks`` and full rate after;
* **fading** hotspots: full rate until a fade week, then a decay with a half-life of
  ``ramp_weeks / 2`` weeks;
* **background**: incidents anywhere, uniformly per km of road;
* optionally a **planted wave** (:class:`PlantedWave`): a surge of violent but not severe
  events (riots, clashes) that starts ``surge_weeks`` before a wave of deadly attacks at the
  same place — the signal early warning exists to catch.

A hotspot is centred on a random intersection; its incidents fall on the roads around it
with a Gaussian profile of *network* distance (standard deviation ``spread_m`` times a
per-hotspot factor between 0.5 and 1.5): a road piece is drawn with probability proportional
to its length times ``exp(-d² / 2σ²)``, ``d`` the road distance from the centre to the
piece's midpoint (routing core, :func:`havenmap._graph.pairs_within`), then a uniform
position along it. A share ``site_share`` of a hotspot's incidents recur at one of its
``sites`` fixed places (drawn from the same profile): the checkpoint, the market, the
junction where violence repeats, and the geocoded landmark many reports share. Every
incident is reported up to 8 m off the road. The default share (0.25) was calibrated so that
the threat picture's old single-kernel estimator and naive 8-week counts per km score as they
did when measured by hand on real streets (PAI at 5 % of road km about 4.0 against 4.5):
with no repeat sites smoothing wins by far, with half the incidents at sites counts do.
Dates are uniform within each week. Types follow ACLED: a share ``severe_share`` of hotspot
events are attacks on civilians or grenade attacks (severe, some deadly), the rest riots,
armed clashes, protests with intervention and arrests.

The output has the canonical incident columns of :func:`havenmap.layers.read_incidents`, so
it feeds :func:`havenmap.threat.compute_threat` and :func:`havenmap.backtest.backtest`
unchanged, plus ``process`` (persistent / emerging / fading / background / surge / wave) and
``hotspot`` (its id, "" for background) to check what a method found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import _graph
from .errors import InputError
from .network import RoadNetwork

__all__ = ["PlantedWave", "SyntheticHistory", "random_road_points", "synthetic_defenders", "synthetic_history"]

# (event_type, sub_event_type, severe) drawn for hotspot and background events
_SEVERE_TYPES = [("Violence against civilians", "Attack"), ("Explosions/Remote violence", "Grenade")]
_OTHER_TYPES = [
    ("Riots", "Mob violence"),
    ("Battles", "Armed clash"),
    ("Protests", "Protest with intervention"),
    ("Strategic developments", "Arrests"),
]
_OTHER_P = [0.4, 0.25, 0.2, 0.15]
_SURGE_TYPES = [("Riots", "Mob violence"), ("Battles", "Armed clash")]


@dataclass(frozen=True)
class PlantedWave:
    """A surge of violent, non-severe events that starts ``surge_weeks`` before a wave of deadly attacks.

    Parameters
    ----------
    wave_week
        Week index (0-based) at which the attacks start.
    node
        Intersection (node index) at the centre; default: a random one away from the hotspots.
    surge_weeks
        Weeks of surge before the wave (riots and armed clashes, no deaths).
    surge_per_week, wave_per_week
        Poisson rates, events per week.
    wave_weeks
        Weeks the attacks last.
    spread_m
        Standard deviation of the network distance from the centre, metres.
    """

    wave_week: int
    node: int | None = None
    surge_weeks: int = 3
    surge_per_week: float = 6.0
    wave_per_week: float = 5.0
    wave_weeks: int = 2
    spread_m: float = 120.0


@dataclass
class SyntheticHistory:
    """A generated history: the incidents and the processes behind them.

    Attributes
    ----------
    incidents : geopandas.GeoDataFrame
        Canonical incident columns (EPSG:4326) plus ``process`` and ``hotspot``.
    hotspots : pandas.DataFrame
        One row per hotspot: ``hotspot``, ``kind``, ``node`` (index), ``x``, ``y`` (network CRS),
        ``rate_per_week`` (full rate), ``change_week`` (onset / fade week; -1 for persistent),
        ``spread_m``.
    start : pandas.Timestamp
        First day of week 0.
    weeks : int
    weekly_rates : dict
        Expected incidents per week, by hotspot id ("" = background), one value per week.
    sites : pandas.DataFrame
        Repeat places: ``hotspot``, ``x``, ``y`` (network CRS).
    site_share : float
    """

    incidents: gpd.GeoDataFrame
    hotspots: pd.DataFrame
    start: pd.Timestamp
    weeks: int
    weekly_rates: dict[str, np.ndarray] = field(default_factory=dict)
    sites: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["hotspot", "x", "y"]))
    site_share: float = 0.0

    @property
    def end(self) -> pd.Timestamp:
        """Last day of the last week."""
        return self.start + pd.Timedelta(days=7 * self.weeks - 1)


def random_road_points(
    net: RoadNetwork, n: int, *, seed: int | np.random.Generator = 0, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random positions on the roads, uniform per km (or per km × ``weights`` per physical piece).

    Returns
    -------
    (edge, fraction)
        Canonical directed edge of each position and the fraction along it.
    """
    rng = np.random.default_rng(seed)
    phys = net.undirected_edges
    p = net.edge_length[phys] * (1.0 if weights is None else weights)
    total = p.sum()
    if not total > 0:
        raise InputError("the network has no road length to place incidents on")
    edge = phys[rng.choice(len(phys), size=n, p=p / total)]
    return edge, rng.uniform(0.0, 1.0, n)


def _hotspot_profile(net: RoadNetwork, node: int, spread_m: float) -> np.ndarray:
    """Per physical piece: length × exp(-d² / 2σ²), d = road metres from ``node`` to the piece midpoint."""
    phys = net.undirected_edges
    mid = _graph.Places(np.full(len(phys), -1), phys, np.full(len(phys), 0.5))
    _, j, d = _graph.pairs_within(net, _graph.Places.at_nodes(np.array([node])), mid, 3.0 * spread_m)
    w = np.zeros(len(phys))
    w[j] = np.exp(-0.5 * (d / spread_m) ** 2)
    if not w.any():  # an isolated node: its own streets
        w[np.isin(phys, np.flatnonzero((net.edge_u == node) | (net.edge_v == node)))] = 1.0
    return w


def _place(net: RoadNetwork, rng: np.random.Generator, n: int, weights: np.ndarray | None) -> np.ndarray:
    edge, frac = random_road_points(net, n, seed=rng, weights=weights)
    xy = net.points_along(edge, frac)
    return xy + rng.uniform(-8.0, 8.0, size=xy.shape)


def _types(rng: np.random.Generator, n: int, severe_share: float) -> tuple[list[str], list[str], np.ndarray]:
    severe = rng.random(n) < severe_share
    pick_s = rng.integers(0, len(_SEVERE_TYPES), n)
    pick_o = rng.choice(len(_OTHER_TYPES), size=n, p=_OTHER_P)
    chosen = [_SEVERE_TYPES[s] if sv else _OTHER_TYPES[o] for sv, s, o in zip(severe, pick_s, pick_o, strict=True)]
    deaths = np.where(severe, rng.poisson(0.6, n), 0)
    return [c[0] for c in chosen], [c[1] for c in chosen], deaths


def _centres(net: RoadNetwork, rng: np.random.Generator, n: int, min_gap_m: float) -> np.ndarray:
    """``n`` well-connected intersections at least ``min_gap_m`` apart (straight line), when possible."""
    degree = np.bincount(net.edge_u, minlength=net.n_nodes) + np.bincount(net.edge_v, minlength=net.n_nodes)
    lo, hi = np.quantile(net.node_xy, [0.1, 0.9], axis=0)
    inner = np.all((net.node_xy >= lo) & (net.node_xy <= hi), axis=1)
    pool = np.flatnonzero((degree >= 4) & inner)
    if len(pool) < n:
        pool = np.flatnonzero(degree > 0)
    chosen: list[int] = []
    for node in rng.permutation(pool).tolist():
        if all(np.hypot(*(net.node_xy[node] - net.node_xy[c])) >= min_gap_m for c in chosen):
            chosen.append(node)
            if len(chosen) == n:
                break
    while len(chosen) < n:  # small networks: allow closer centres
        chosen.append(int(rng.choice(pool)))
    return np.array(chosen, dtype=np.int64)


def synthetic_history(
    net: RoadNetwork,
    *,
    start: str | pd.Timestamp = "2025-01-06",
    weeks: int = 52,
    seed: int = 0,
    persistent: int = 4,
    emerging: int = 3,
    fading: int = 3,
    rate_per_week: float = 4.0,
    background_per_week: float = 20.0,
    spread_m: float = 150.0,
    sites: int = 3,
    site_share: float = 0.25,
    ramp_weeks: int = 4,
    severe_share: float = 0.3,
    precision_2_share: float = 0.1,
    wave: PlantedWave | None = None,
) -> SyntheticHistory:
    """Generate a weekly incident history on ``net`` (see the module docstring).

    Parameters
    ----------
    start
        First day of week 0.
    weeks
        Length of the history, weeks.
    seed
        Random seed: the same seed gives the same history.
    persistent, emerging, fading
        Number of hotspots of each kind.
    rate_per_week
        Mean full rate of a hotspot, incidents per week (each hotspot draws its own rate,
        uniformly between half and 1.5 times this).
    background_per_week
        Incidents per week spread uniformly per km over the whole network.
    spread_m
        Standard deviation of a hotspot's network-distance profile, metres (times a factor
        between 0.5 and 1.5 drawn per hotspot).
    sites, site_share
        Repeat places per hotspot, and the share of its incidents that happen at one of them.
    ramp_weeks
        Emerging hotspots reach full rate over this many weeks; fading ones halve every
        ``ramp_weeks / 2`` weeks.
    severe_share
        Share of hotspot and background events that are severe (attacks, grenades).
    precision_2_share
        Share of events with ``geo_precision`` 2 (location known only roughly).
    wave
        Optional planted surge-then-wave signal.
    """
    if weeks < 1 or min(persistent, emerging, fading, sites) < 0 or spread_m <= 0 or not 0 <= site_share <= 1:
        raise InputError(
            "synthetic history: weeks >= 1, hotspot and site counts >= 0, spread_m > 0 and 0 <= site_share <= 1 needed"
        )
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(start).normalize()
    week = np.arange(weeks)
    kinds = ["persistent"] * persistent + ["emerging"] * emerging + ["fading"] * fading
    centres = _centres(net, rng, len(kinds) + (wave is not None and wave.node is None), 6.0 * spread_m)
    rows, rates, site_rows, site_xy = [], {}, [], {}
    xy_parts, week_parts, proc_parts, spot_parts, severe_parts = [], [], [], [], []

    def emit(name: str, kind: str, weekly: np.ndarray, profile: np.ndarray | None, share: float, types=None):
        counts = rng.poisson(weekly)
        total = int(counts.sum())
        xy = _place(net, rng, total, profile)
        if profile is not None and sites > 0 and site_share > 0:
            if name not in site_xy:  # the planted surge and its wave share their places
                site_xy[name] = _place(net, rng, sites, profile)
                site_rows.extend((name, x, y) for x, y in site_xy[name].tolist())
            places = site_xy[name]
            repeat = rng.random(total) < site_share
            n_repeat = int(repeat.sum())
            xy[repeat] = places[rng.integers(0, sites, n_repeat)] + rng.uniform(-5.0, 5.0, (n_repeat, 2))
        xy_parts.append(xy)
        week_parts.append(np.repeat(week, counts))
        proc_parts.append(np.full(total, kind, dtype=object))
        spot_parts.append(np.full(total, name, dtype=object))
        severe_parts.append((share, types, total))
        rates[name] = rates.get(name, 0) + weekly

    for i, kind in enumerate(kinds):
        name = f"H{i + 1}"
        rate = rate_per_week * rng.uniform(0.5, 1.5)
        change = int(rng.integers(weeks // 4, max(3 * weeks // 4, weeks // 4 + 1)))
        if kind == "persistent":
            weekly, change = np.full(weeks, rate), -1
        elif kind == "emerging":
            weekly = rate * np.clip((week - change + 1) / max(ramp_weeks, 1), 0.0, 1.0)
        else:
            weekly = rate * np.where(week < change, 1.0, 0.5 ** ((week - change + 1) / max(ramp_weeks / 2, 0.5)))
        node = int(centres[i])
        spread = spread_m * rng.uniform(0.5, 1.5)
        emit(name, kind, weekly, _hotspot_profile(net, node, spread), severe_share)
        rows.append((name, kind, node, *net.node_xy[node], rate, change, spread))
    emit("", "background", np.full(weeks, background_per_week), None, severe_share)
    if wave is not None:
        node = int(centres[-1] if wave.node is None else wave.node)
        profile = _hotspot_profile(net, node, wave.spread_m)
        w0 = wave.wave_week
        surge = np.where((week >= w0 - wave.surge_weeks) & (week < w0), wave.surge_per_week, 0.0)
        attack = np.where((week >= w0) & (week < w0 + wave.wave_weeks), wave.wave_per_week, 0.0)
        emit("W", "surge", surge, profile, 0.0, _SURGE_TYPES)
        emit("W", "wave", attack, profile, 1.0, [_SEVERE_TYPES[0]])
        rows.append(("W", "wave", node, *net.node_xy[node], wave.wave_per_week, w0, wave.spread_m))

    xy = np.vstack(xy_parts)
    n = len(xy)
    event, sub, deaths = [], [], []
    for share, types, total in severe_parts:
        if types is None:
            e, s, d = _types(rng, total, share)
        else:
            pick = rng.integers(0, len(types), total)
            e, s = [types[p][0] for p in pick], [types[p][1] for p in pick]
            d = rng.poisson(1.0, total) + 1 if share >= 1.0 else np.zeros(total, dtype=np.int64)
        event += e
        sub += s
        deaths.append(np.asarray(d, dtype=np.int64))
    weeks_of = np.concatenate(week_parts)
    dates = start + pd.to_timedelta(weeks_of * 7 + rng.integers(0, 7, n), unit="D")
    order = np.lexsort((np.arange(n), dates.to_numpy()))
    frame = gpd.GeoDataFrame(
        {
            "incident_id": pd.array([f"S{i + 1}" for i in range(n)], dtype="string"),  # ids in date order
            "date": dates.to_numpy()[order],
            "event_type": pd.array(np.array(event, dtype=object)[order], dtype="string"),
            "sub_event_type": pd.array(np.array(sub, dtype=object)[order], dtype="string"),
            "fatalities": np.concatenate(deaths)[order],
            "geo_precision": np.where(rng.random(n) < precision_2_share, 2, 1).astype(np.int64)[order],
            "notes": pd.array([""] * n, dtype="string"),
            "source": pd.array(["csv"] * n, dtype="string"),
            "process": pd.array(np.concatenate(proc_parts)[order], dtype="string"),
            "hotspot": pd.array(np.concatenate(spot_parts)[order], dtype="string"),
        },
        geometry=shapely.points(xy[order]),
        crs=net.crs,
    ).to_crs("EPSG:4326")
    frame.attrs["source"] = f"synthetic history (seed {seed})"
    columns = ["hotspot", "kind", "node", "x", "y", "rate_per_week", "change_week", "spread_m"]
    hotspots = pd.DataFrame(rows, columns=columns)
    site_table = pd.DataFrame(site_rows, columns=["hotspot", "x", "y"])
    return SyntheticHistory(frame, hotspots, start, weeks, rates, site_table, site_share)


def synthetic_defenders(
    net: RoadNetwork, n: int, *, seed: int = 0, near: np.ndarray | None = None, near_share: float = 0.3
) -> gpd.GeoDataFrame:
    """``n`` defenders near the roads (ids ``D1..``, EPSG:4326): a share ``near_share`` around the
    ``near`` nodes (within about 300 m of road), the rest uniformly per km of road."""
    rng = np.random.default_rng(seed)
    k = round(n * near_share) if near is not None and len(near) else 0
    parts = [_place(net, rng, n - k, None)]
    if k:
        profile = sum(_hotspot_profile(net, int(node), 150.0) for node in np.asarray(near))
        parts.append(_place(net, rng, k, profile))
    xy = np.vstack(parts)
    frame = gpd.GeoDataFrame(
        {"id": pd.array([f"D{i + 1}" for i in range(n)], dtype="string")}, geometry=shapely.points(xy), crs=net.crs
    )
    return frame.to_crs("EPSG:4326")
