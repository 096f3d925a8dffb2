"""Service-area polygons traced from the road pieces a haven is reached from.

Buffering and unioning the reached road pieces with GEOS grows faster than linearly (a
145,000-piece grid takes 26 s for one polygon), far too slow for a hundred havens at country
scale. Instead, as Valhalla does for its isochrones, each haven's reached pieces are sampled
densely, the earliest arrival is rasterised on a fine grid (a third of the buffer width),
spread over the buffer radius with a minimum filter and traced with marching squares
(``contourpy``) at each band. The outline therefore follows the reached road pieces —
partial edges cut where the band ends — at about the buffer distance: every reached point of
road is inside with at least ``buffer - 1.2`` cells around it, and no point farther than
``buffer + 2.5`` cells from the reached pieces is (checked against networkx in the tests).
Per haven the grid is capped at :data:`MAX_CELLS` cells: a reach wider than ~8 km (at the
default 50 m buffer) gets coarser cells and a proportionally wider buffer.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import contourpy
import numpy as np
import shapely
from scipy import ndimage

from ._arrays import ragged_index
from ._graph import Reach
from .network import RoadNetwork

__all__ = ["MAX_CELLS", "band_polygons", "haven_polygons", "havens_polygons", "reach_samples"]

#: Grid cells per haven raster before the grid coarsens (bounds memory and time per haven).
MAX_CELLS = 262_144


def reach_samples(
    net: RoadNetwork, reach: Reach, bands_s: np.ndarray, spacing_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points along the reached roads, at most ``spacing_m`` apart, with the travel time at each.

    Each physical road is sampled once, along its geometry (the samples lie on the road), from
    where its time first drops to the largest band: the time at a point of a two-way street is
    the smaller of the two directions' (linear) times, found from the times of its end nodes;
    reached nodes are samples of their own, and the source's own road adds its partial pieces.
    The exact cut of every other band is a sample too, so each band's reach is represented to
    the cut.
    """
    t_max = float(bands_s.max())
    inside = reach.t1 <= t_max
    e, f0, f1 = reach.edge[inside], reach.f0[inside], reach.f1[inside]
    t0, t1 = reach.t0[inside], reach.t1[inside]
    span, dt = f1 - f0, t0 - t1
    with np.errstate(divide="ignore", invalid="ignore"):
        s_start = np.clip(1.0 - np.where(dt > 0, (t_max - t1) / dt, 1.0), 0.0, 1.0)
    a, ta = f0 + s_start * span, t0 - s_start * dt  # reached part: fraction a (time ta) .. f1 (time t1)
    # the reached parts as fractions x along each physical road (its canonical edge), time linear in x
    road = net.canonical_edge[e]
    flip = road != e
    lo, hi = np.where(flip, 1.0 - f1, a), np.where(flip, 1.0 - a, f1)
    t_lo, t_hi = np.where(flip, t1, ta), np.where(flip, ta, t1)
    # one row per physical road: a whole edge leading to a reached node stands for its road unless it is
    # the twin of one that does (that direction becomes the road's second function); partial pieces
    # (the source's own road) stand alone
    whole = (f0 == 0.0) & (f1 == 1.0)
    present = np.zeros(net.n_edges, dtype=bool)
    present[e[whole]] = True
    rows = np.flatnonzero(~whole | ~flip | ~present[road])
    twin = net.edge_twin[road[rows]]
    second = whole[rows] & ~flip[rows] & (twin >= 0) & present[np.maximum(twin, 0)]
    node_time = np.full(net.n_nodes, np.inf)
    node_time[reach.node] = reach.node_time
    tw = np.maximum(twin, 0)
    t_u = node_time[net.edge_u[road[rows]]]
    tt = net.edge_time[tw]
    with np.errstate(divide="ignore", invalid="ignore"):
        hi2 = np.where(second, np.clip((t_max - t_u) / tt, 0.0, 1.0), -1.0)
    # road r: slot 1 = the row's own function on [lo1, hi1]; slot 2 = t_u + x * T(twin) on [0, hi2]
    lo1, hi1, a1, b1 = lo[rows], hi[rows], t_lo[rows], t_hi[rows]
    a2 = t_u
    g_road = road[rows]
    g_lo = np.where(second, 0.0, lo1)
    g_hi = np.maximum(hi1, hi2)
    # a road's ends at reached nodes are sampled once per node, not once per road
    at_node = np.isfinite(node_time) & (node_time <= t_max)
    skip_lo = (g_lo == 0.0) & at_node[net.edge_u[g_road]]
    skip_hi = (g_hi == 1.0) & at_node[net.edge_v[g_road]]
    owner, x, where_xy = _road_samples(net, g_road, g_lo, g_hi, spacing_m, skip_lo, skip_hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope1 = np.where(hi1 > lo1, (b1 - a1) / (hi1 - lo1), 0.0)
    t = a1[owner] + slope1[owner] * (x - lo1[owner])
    t[(x < lo1[owner] - 1e-12) | (x > hi1[owner] + 1e-12)] = np.inf
    t2 = a2[owner] + tt[owner] * x
    t2[x > hi2[owner] + 1e-12] = np.inf
    times = np.minimum(t, t2)
    keep = np.flatnonzero(times <= t_max)
    nodes = reach.node_time <= t_max
    xy = np.vstack([where_xy(keep), net.node_xy[reach.node[nodes]]])
    times = np.concatenate([times[keep], reach.node_time[nodes]])
    # exact band cuts of both functions of every road
    f_road = np.concatenate([g_road, g_road[second]])
    f_lo, f_hi = np.concatenate([lo1, np.zeros(int(second.sum()))]), np.concatenate([hi1, hi2[second]])
    f_a = np.concatenate([a1, a2[second]])
    f_slope = np.concatenate([slope1, tt[second]])
    cut_road, cut_x, cut_t = [], [], []
    for band in bands_s[bands_s < t_max]:
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = f_lo + (band - f_a) / f_slope
        hit = np.flatnonzero(np.isfinite(xc) & (xc >= f_lo) & (xc <= f_hi) & (f_slope != 0))
        cut_road.append(f_road[hit])
        cut_x.append(xc[hit])
        cut_t.append(np.full(len(hit), band))
    if cut_road:
        pts = net.points_along(np.concatenate(cut_road), np.concatenate(cut_x))
        xy = np.vstack([xy, pts])
        times = np.concatenate([times, *cut_t])
    return xy, times


def _road_samples(
    net: RoadNetwork,
    road: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    spacing_m: float,
    skip_lo: np.ndarray | None = None,
    skip_hi: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Samples at most ``spacing_m`` apart along the road over fractions ``lo..hi`` of edges ``road``.

    Each geometry segment of the sampled part gets evenly spaced samples from its start (and
    the road its end point), so every point of road lies within ``spacing_m / 2`` of a sample,
    bends included. Per-segment values are computed once and repeated (sequential memory),
    so the work per sample is a few passes over small arrays.

    ``skip_lo`` / ``skip_hi`` leave out a road's first / last sample (its end is sampled
    elsewhere, e.g. as a reached node).

    Returns the owner row and fraction along the edge of every sample, and a function giving
    the (x, y) of the samples kept (positions are computed only for those).
    """
    cum = net.vertex_cum
    start = net.geom_offsets[road]
    n_seg = net.geom_offsets[road + 1] - 1 - start
    length = cum[start + n_seg] - cum[start]
    pos_lo, pos_hi = cum[start] + lo * length, cum[start] + hi * length
    pid = np.repeat(np.arange(len(road)), n_seg)
    j = ragged_index(start, n_seg)
    c0, c1 = cum[j], cum[j + 1]
    s_lo, s_hi = np.maximum(c0, pos_lo[pid]), np.minimum(c1, pos_hi[pid])
    overlap = np.flatnonzero(s_hi >= s_lo)
    pid, j, c0, c1, s_lo, s_hi = pid[overlap], j[overlap], c0[overlap], c1[overlap], s_lo[overlap], s_hi[overlap]
    n_row = np.maximum(np.ceil((s_hi - s_lo) / spacing_m).astype(np.int64), 1)
    first = np.ones(len(pid), dtype=bool)
    first[1:] = pid[1:] != pid[:-1]
    last = np.ones(len(pid), dtype=bool)
    last[:-1] = pid[1:] != pid[:-1]
    drop_first = first & (False if skip_lo is None else skip_lo[pid])
    counts = n_row + (last & ~(False if skip_hi is None else skip_hi[pid])) - drop_first
    rep = np.repeat(np.arange(len(pid)), counts)
    k = np.arange(len(rep)) - np.repeat(np.cumsum(counts) - counts, counts) + drop_first[rep]
    step = (s_hi - s_lo) / n_row
    d = s_lo[rep] + k * step[rep]
    owner = pid[rep]
    inv_len = np.divide(1.0, length, out=np.zeros(len(length)), where=length > 0)
    x = (d - cum[start][owner]) * inv_len[owner]

    def where_xy(keep: np.ndarray) -> np.ndarray:
        """(x, y) of the samples ``keep``, interpolated along their geometry segments."""
        seg = c1 - c0
        inv = np.divide(1.0, seg, out=np.zeros(len(seg)), where=seg > 0)
        r = rep[keep]
        u = (d[keep] - c0[r]) * inv[r]
        x0, y0 = net.geom_xy[j, 0], net.geom_xy[j, 1]
        dx, dy = net.geom_xy[j + 1, 0] - x0, net.geom_xy[j + 1, 1] - y0
        return np.column_stack([x0[r] + u * dx[r], y0[r] + u * dy[r]])

    return owner, x, where_xy


def haven_polygons(
    net: RoadNetwork, reach: Reach, bands_s: np.ndarray, buffer_m: float, cells_per_buffer: int = 3
) -> list[shapely.Geometry]:
    """A source's service area per band: :func:`reach_samples` then :func:`band_polygons`.

    The grid cell is ``buffer_m / cells_per_buffer``, coarsened when the reach's extent would
    need more than :data:`MAX_CELLS` cells (the buffer then widens with it); samples are
    spaced one cell apart.
    """
    inside = reach.t1 <= bands_s.max()
    if not inside.any():
        return [shapely.Polygon()] * len(bands_s)
    ends = np.concatenate([net.edge_u[reach.edge[inside]], net.edge_v[reach.edge[inside]]])
    lo, hi = _bounds(net.node_xy[ends])
    extent = hi - lo
    cell = _cell_size(extent, buffer_m / cells_per_buffer, cells_per_buffer)
    xy, t = reach_samples(net, reach, bands_s, spacing_m=cell)
    return band_polygons(xy, t, bands_s, cell * cells_per_buffer, cells_per_buffer)


def havens_polygons(
    net: RoadNetwork,
    reaches: Iterable[Reach],
    bands_s: np.ndarray,
    buffer_m: float,
    workers: int | None = None,
) -> dict[int, list[shapely.Geometry]]:
    """:func:`haven_polygons` of every reach, keyed by its source, traced on ``workers`` threads.

    The tracing is numpy, scipy's minimum filter, contourpy and GEOS, which do their work
    without the GIL, and it only reads the network's arrays, so havens are traced side by
    side while the next reaches are searched. At most two reaches per worker wait at a time,
    which bounds memory. ``workers`` defaults to the CPUs this process may use.
    """
    workers = workers or _usable_cpus()
    if workers <= 1:
        return {r.source: haven_polygons(net, r, bands_s, buffer_m) for r in reaches}
    _ = net.vertex_cum, net.canonical_edge  # cached on first use: built here, not by several threads at once
    done: dict[int, list[shapely.Geometry]] = {}
    with ThreadPoolExecutor(workers, thread_name_prefix="havenmap-areas") as pool:
        waiting = deque()
        for reach in reaches:
            waiting.append((reach.source, pool.submit(haven_polygons, net, reach, bands_s, buffer_m)))
            while len(waiting) > 2 * workers:
                source, future = waiting.popleft()
                done[source] = future.result()
        for source, future in waiting:
            done[source] = future.result()
    return done


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _bounds(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min x, min y), (max x, max y) of an (n, 2) array (column by column: axis-0 reductions are slow)."""
    x, y = xy[:, 0], xy[:, 1]
    return np.array([x.min(), y.min()]), np.array([x.max(), y.max()])


def _cell_size(extent: np.ndarray, cell: float, cells_per_buffer: int) -> float:
    pad = cells_per_buffer + 2
    cells = float(np.prod(np.asarray(extent) / cell + 2 * pad + 1))
    return cell * float(np.sqrt(cells / MAX_CELLS)) if cells > MAX_CELLS else cell


def band_polygons(
    xy: np.ndarray, times: np.ndarray, bands_s: np.ndarray, buffer_m: float, cells_per_buffer: int = 3
) -> list[shapely.Geometry]:
    """One (Multi)Polygon per band: the area within ``buffer_m`` of the samples with time <= band.

    Rasterised on a grid of ``buffer_m / cells_per_buffer`` (coarsened above :data:`MAX_CELLS`
    cells, widening the buffer to keep ``cells_per_buffer`` cells), min-filtered over a disc
    of the buffer radius and traced with marching squares at each band (outline midway
    between reached and unreached cell centres; exactly collinear vertices dropped, so the
    bands stay nested). Empty polygons for bands no sample reaches.
    """
    empty = shapely.Polygon()
    if len(times) == 0:
        return [empty] * len(bands_s)
    lo, hi = _bounds(xy)
    pad = cells_per_buffer + 2
    cell = _cell_size(hi - lo, buffer_m / cells_per_buffer, cells_per_buffer)
    origin = lo - pad * cell
    shape = (np.floor((hi - origin) / cell).astype(np.int64) + pad + 1)[::-1]  # rows (y), cols (x)
    ij = np.floor((xy - origin) / cell).astype(np.int64)
    grid = np.full(shape, np.inf, dtype=np.float32)
    np.minimum.at(grid.reshape(-1), ij[:, 1] * shape[1] + ij[:, 0], times.astype(np.float32))  # 1-D: fast path
    r = cells_per_buffer
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    grid = ndimage.minimum_filter(grid, footprint=(xx**2 + yy**2) <= r * r, mode="constant", cval=np.inf)
    row_min, col_min = grid.min(axis=1), grid.min(axis=0)
    out = []
    for band in bands_s:
        rows = np.flatnonzero(row_min <= np.float32(band))
        if not len(rows):
            out.append(empty)
            continue
        cols = np.flatnonzero(col_min <= np.float32(band))
        mask = grid <= np.float32(band)
        r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, shape[0])
        c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, shape[1])
        crop = mask[r0:r1, c0:c1].astype(np.float64)
        # index coordinates: column = x, row = y; cell (row, col) is centred at origin + (col, row) + 0.5 cells
        gen = contourpy.contour_generator(z=crop, fill_type=contourpy.FillType.OuterOffset)
        points, offsets = gen.filled(0.5, 2.0)
        out.append(_to_polygons(points, offsets, origin + (np.array([c0, r0]) + 0.5) * cell, cell))
    return out


def _to_polygons(
    points: list[np.ndarray], offsets: list[np.ndarray], origin: np.ndarray, scale: float
) -> shapely.Geometry:
    """contourpy OuterOffset output in index space (shell then holes per polygon) to one (Multi)Polygon.

    Vertices exactly collinear with their neighbours (runs along grid rows, columns and
    diagonals; exact in index space, where every vertex is a multiple of 0.5) are dropped.
    """
    coords = np.vstack(points)
    sizes = np.concatenate([np.diff(o.astype(np.int64)) for o in offsets])
    ring_poly = np.concatenate([np.full(len(o) - 1, p) for p, o in enumerate(offsets)])
    ring = np.repeat(np.arange(len(sizes)), sizes)
    ends = np.cumsum(sizes)
    first = np.zeros(len(coords), dtype=bool)
    first[ends - sizes] = True
    last = np.zeros(len(coords), dtype=bool)
    last[ends - 1] = True
    d_in = coords - np.roll(coords, 1, axis=0)
    d_out = np.roll(coords, -1, axis=0) - coords
    straight = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] == 0
    keep = first | last | ~straight
    ring_geoms = shapely.linearrings(origin + coords[keep] * scale, indices=ring[keep])
    polys = shapely.polygons(ring_geoms, indices=ring_poly)
    return polys[0] if len(polys) == 1 else shapely.multipolygons(polys)
