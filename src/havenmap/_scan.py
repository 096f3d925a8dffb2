"""Prospective space-time permutation scan statistic (Kulldorff et al. 2005) on a square grid.

Cases are counted per grid cell and day. A candidate cluster is a cylinder: a circle of
cells (a centre cell holding a recent case, with its nearest cells up to ``max_radius_m``,
at most 64 cells) times a time window
that *ends on the last day* (prospective surveillance: only clusters still going on).
Expected counts come from the space and time margins alone,
``mu = C(zone) · C(window) / C``, so a place that is always busy, or a period that is busy
everywhere, is not a cluster; only an interaction of place and time is. The log likelihood
ratio ``c·ln(c/mu) + (C−c)·ln((C−c)/(C−mu))`` (for ``c > mu``) ranks cylinders; its
maximum is compared with the maxima over Monte Carlo replicates in which the days are
shuffled among the cases (locations and both margins stay fixed): ``p = (1 + #{replicate
max >= llr}) / (1 + R)``. Secondary clusters are the next best cylinders sharing no cell
with a better one, judged against the same replicate maxima (conservative, as SaTScan).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class ScanCluster:
    """One cylinder: cells, time window and its statistics."""

    cells: np.ndarray  # (k, 2) integer cell coordinates (ix, iy)
    centre_cell: tuple[int, int]
    days: int  # window length, days, ending on the last day
    observed: int
    expected: float
    relative_risk: float
    llr: float
    p_value: float
    radius_m: float


def _llr(c: np.ndarray, mu: np.ndarray, total: float) -> np.ndarray:
    """Poisson generalised log likelihood ratio, 0 where ``c <= mu``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = total - c
        val = c * np.log(c / mu) + np.where(rest > 0, rest * np.log(rest / (total - mu)), 0.0)
    return np.where((c > mu) & (mu > 0), val, 0.0)


def space_time_scan(
    x: np.ndarray,
    y: np.ndarray,
    day: np.ndarray,
    n_days: int,
    *,
    cell_m: float = 250.0,
    max_radius_m: float = 1000.0,
    max_window_days: int = 14,
    min_cases: int = 3,
    permutations: int = 999,
    seed: int = 0,
    max_clusters: int = 5,
) -> list[ScanCluster]:
    """Scan cases for space-time clusters ending on the last day.

    Parameters
    ----------
    x, y
        Case coordinates, metres (projected).
    day
        Case day, 0 .. ``n_days - 1``; ``n_days - 1`` is the last (the "as of") day.
    cell_m
        Grid cell side, metres.
    max_radius_m
        Largest circle radius (cell centre to cell centre), metres. Zones never hold more than
        half the cases either.
    max_window_days
        Longest time window, days (at most half the study period).
    min_cases
        Smallest number of cases a reported cluster holds.
    permutations
        Monte Carlo replicates (999 gives p-values down to 0.001).
    seed
        Random seed, for reproducible p-values.
    max_clusters
        At most this many non-overlapping clusters, best first.

    Returns
    -------
    list of ScanCluster, by decreasing log likelihood ratio (p-values not filtered).
    """
    day = np.asarray(day, dtype=np.int64)
    total = len(day)
    n_windows = int(min(max_window_days, max(n_days // 2, 1)))
    if total < max(min_cases, 2) or n_days < 2:
        return []
    ij = np.floor(np.column_stack([x, y]) / cell_m).astype(np.int64)
    cells, cell_of = np.unique(ij, axis=0, return_inverse=True)
    cell_of = cell_of.ravel()
    n_cells = len(cells)
    xy = (cells + 0.5) * cell_m
    # centres: cells with a case in the longest window (a cylinder ending today needs recent cases;
    # one centred on a cell without any is nearly always matched by one centred on a neighbour)
    centre = np.unique(cell_of[day >= n_days - n_windows])
    if len(centre) == 0:
        return []
    k_max = min(n_cells, 64)
    dist, nn = cKDTree(xy).query(xy[centre], k=k_max, distance_upper_bound=max_radius_m + 1e-6)
    dist, nn = dist.reshape(len(centre), k_max), nn.reshape(len(centre), k_max)
    valid = np.isfinite(dist)
    nn = np.where(valid, nn, n_cells)  # n_cells = an always-empty padding cell

    cell_total = np.append(np.bincount(cell_of, minlength=n_cells), 0)
    zone_total = np.cumsum(cell_total[nn], axis=1)  # (centre, k)
    zone_ok = (valid & (zone_total <= total / 2.0))[:, :, None]
    window_total = _window_counts(np.zeros(len(day), np.int64), day, n_days, n_windows, 1)[0]
    mu = zone_total[:, :, None] * window_total[None, None, :] / total
    pad = np.zeros((1, n_windows))

    def zone_counts(days: np.ndarray) -> np.ndarray:
        counts = np.vstack([_window_counts(cell_of, days, n_days, n_windows, n_cells), pad])
        return np.cumsum(counts[nn], axis=1)  # (centre, k, window)

    observed = zone_counts(day)
    llr = np.where(zone_ok, _llr(observed, mu, total), 0.0)
    rng = np.random.default_rng(seed)
    maxima = np.zeros(permutations)
    for r in range(permutations):
        c = zone_counts(rng.permutation(day))
        hit = zone_ok & (c > mu)
        if hit.any():
            maxima[r] = _llr(c[hit], mu[hit], total).max()
    maxima.sort()

    order = np.argsort(llr, axis=None)[::-1]
    used = np.zeros(n_cells + 1, dtype=bool)
    found: list[ScanCluster] = []
    for flat in order[:50000].tolist():
        value = float(llr.flat[flat])
        if value <= 0.0 or len(found) >= max_clusters:
            break
        c, k, w = np.unravel_index(flat, llr.shape)
        members = nn[c, : k + 1]
        if used[members].any() or observed[c, k, w] < min_cases:
            continue
        used[members] = True
        obs, exp = float(observed[c, k, w]), float(mu[c, k, w])
        rr = (obs / exp) / ((total - obs) / (total - exp)) if total > obs else np.inf
        beaten = permutations - int(np.searchsorted(maxima, value, side="left"))
        found.append(
            ScanCluster(
                cells=cells[members],
                centre_cell=(int(cells[centre[c], 0]), int(cells[centre[c], 1])),
                days=int(w + 1),
                observed=int(obs),
                expected=exp,
                relative_risk=float(rr),
                llr=value,
                p_value=(1 + beaten) / (1 + permutations),
                radius_m=float(dist[c, k]),
            )
        )
    return found


def _window_counts(cell: np.ndarray, day: np.ndarray, n_days: int, n_windows: int, n_cells: int) -> np.ndarray:
    """(cell, w) counts of cases in the last ``w + 1`` days."""
    back = n_days - 1 - day  # 0 = last day
    inside = back < n_windows
    per_day = np.bincount(cell[inside] * n_windows + back[inside], minlength=n_cells * n_windows)
    return np.cumsum(per_day.reshape(n_cells, n_windows), axis=1).astype(np.float64)
