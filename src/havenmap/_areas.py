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
Per haven the grid is capped at :data:`MAX_CELLS` cells: a reach wider than ~16 km (at the
default 50 m buffer) gets coarser cells and a proportionally wider buffer.
"""

from __future__ import annotations

import contourpy
import numpy as np
import shapely
from scipy import ndimage

from ._arrays import ragged_index
from ._graph import Reach
from .network import RoadNetwork

__all__ = ["MAX_CELLS", "band_polygons", "haven_polygons", "reach_samples"]

#: Grid cells per haven raster before the grid coarsens (bounds memory and time per haven).
MAX_CELLS = 1_000_000


def _vertex_cum(net: RoadNetwork) -> tuple[np.ndarray, np.ndarray]:
    """The network's cumulative vertex lengths and the segment lengths (0 between edges)."""
    cum = net.vertex_cum
    return cum, np.diff(cum)


def reach_samples(
    net: RoadNetwork, reach: Reach, bands_s: np.ndarray, spacing_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points along the reached part of every piece, at most ``spacing_m`` apart, with their times.

    Each piece is sampled from where its time drops to the largest band to its end towards
    the source, vertex to vertex of the road geometry (so the samples lie on the road); the
    exact cut of every other band is a sample too, so each band's reach is represented to
    the cut. Work per sample is a few sequential array passes (per-piece and per-segment
    values are computed first and repeated).
    """
    t_max = float(bands_s.max())
    inside = reach.t1 <= t_max
    e, f0, f1 = reach.edge[inside], reach.f0[inside], reach.f1[inside]
    t0, t1 = reach.t0[inside], reach.t1[inside]
    span, dt = f1 - f0, t0 - t1
    with np.errstate(divide="ignore", invalid="ignore"):
        s_start = np.clip(1.0 - np.where(dt > 0, (t_max - t1) / dt, 1.0), 0.0, 1.0)
    a, ta = f0 + s_start * span, t0 - s_start * dt  # reached part: fraction a (time ta) .. f1 (time t1)
    cum, seg = _vertex_cum(net)
    start = net.geom_offsets[e]
    last = net.geom_offsets[e + 1] - 2  # first vertex of the edge's last segment
    length = cum[last + 1] - cum[start]
    pos_a = cum[start] + a * length
    pos_b = cum[start] + f1 * length
    j0, j1 = start.copy(), start.copy()
    bent = np.flatnonzero(last > start)
    if len(bent):
        j0[bent] = np.clip(np.searchsorted(cum, pos_a[bent], side="right") - 1, start[bent], last[bent])
        j1[bent] = np.clip(np.searchsorted(cum, pos_b[bent], side="left") - 1, j0[bent], last[bent])
    # one row per (piece, geometry segment) overlapping the reached part
    n_seg = j1 - j0 + 1
    pid = np.repeat(np.arange(len(e)), n_seg)
    j = ragged_index(j0, n_seg)
    lo = np.maximum(cum[j], pos_a[pid])
    hi = np.maximum(np.minimum(cum[j + 1], pos_b[pid]), lo)
    seg_len = seg[j]
    xy = net.geom_xy
    step = xy[j + 1] - xy[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        u_lo = np.where(seg_len > 0, (lo - cum[j]) / seg_len, 0.0)
        u_hi = np.where(seg_len > 0, (hi - cum[j]) / seg_len, 0.0)
        slope = np.where(pos_b > pos_a, (t1 - ta) / (pos_b - pos_a), 0.0)[pid]
    p_lo = xy[j] + u_lo[:, None] * step
    p_hi = xy[j] + u_hi[:, None] * step
    tm_lo = ta[pid] + slope * (lo - pos_a[pid])
    tm_hi = ta[pid] + slope * (hi - pos_a[pid])
    n_s = np.maximum(np.ceil((hi - lo) / spacing_m).astype(np.int64), 1) + 1
    ends = np.cumsum(n_s)
    w = (
        (np.arange(ends[-1]) - np.repeat(ends - n_s, n_s)) / np.repeat(n_s - 1, n_s).astype(np.float64)
        if len(n_s)
        else np.zeros(0)
    )
    pts = np.repeat(p_lo, n_s, axis=0) + w[:, None] * np.repeat(p_hi - p_lo, n_s, axis=0)
    times = np.repeat(tm_lo, n_s) + w * np.repeat(tm_hi - tm_lo, n_s)
    # exact band cuts (the widest band's cut is the first sample of each piece already)
    cut_e, cut_f, cut_t = [], [], []
    for band in bands_s[bands_s < t_max]:
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (ta - band) / (ta - t1)
        hit = np.flatnonzero((ta > band) & (t1 <= band) & np.isfinite(g))
        cut_e.append(e[hit])
        cut_f.append(a[hit] + g[hit] * (f1[hit] - a[hit]))
        cut_t.append(np.full(len(hit), band))
    if cut_e:
        ce = np.concatenate(cut_e)
        pts = np.vstack([pts, net.points_along(ce, np.concatenate(cut_f))])
        times = np.concatenate([times, *cut_t])
    return pts, times


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
    np.minimum.at(grid, (ij[:, 1], ij[:, 0]), times.astype(np.float32))
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
