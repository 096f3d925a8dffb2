"""Array helpers for road line layers: vertex paths, joins within a tolerance, crossings, duplicates, twins.

Everything works on flat arrays — vertex coordinates back to back, ``offsets`` marking where
each path (one part of one line feature) starts — so a country layer of a million lines is
never a million Python objects. Spatial searches use scipy's ``cKDTree`` (points) and GEOS
through shapely's ``STRtree`` (lines); both answer all queries of a step in one call.

Why by hand: momepy's ``gdf_to_nx`` and spaghetti build their graphs one feature at a time in
Python and join only bit-identical coordinates; osmnx's ``graph_from_gdfs`` needs nodes that
already exist. None of them joins end points within a tolerance, splits T-junctions drawn
without a shared vertex or keeps crossings apart on request, which real road layers need.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from ._arrays import ragged_index

#: Two points closer than this (metres) are the same point when placing new vertices.
SAME_POINT_M = 1e-6
_NEIGHBOURS = 16  # vertices examined around each loose end (own-line vertices are skipped)
_HASH_BASES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


@dataclass(frozen=True)
class Paths:
    """Vertex paths: path ``i`` owns positions ``offsets[i]:offsets[i+1]``.

    ``xy`` are projected metres, ``lonlat`` degrees (kept in step with ``xy``), ``row`` the
    0-based feature row of every path.
    """

    xy: np.ndarray
    lonlat: np.ndarray
    offsets: np.ndarray
    row: np.ndarray

    @property
    def n_paths(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def path_of_position(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_paths), self.counts)

    def subset(self, keep: np.ndarray) -> Paths:
        """The paths where ``keep`` (one bool per path)."""
        if keep.all():
            return self
        counts = self.counts[keep]
        at = np.repeat(keep, self.counts)
        return Paths(self.xy[at], self.lonlat[at], np.concatenate([[0], np.cumsum(counts)]), self.row[keep])


def point_ids(xy: np.ndarray) -> tuple[np.ndarray, int]:
    """Identity of every vertex: equal coordinates get equal ids (0..n-1, in x-then-y order)."""
    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64), 0
    # x + iy as one complex key: numpy sorts complex numbers by real, then imaginary part
    order = np.argsort(np.ascontiguousarray(xy, dtype=np.float64).view(np.complex128).ravel(), kind="stable")
    ordered = xy[order]
    new = np.ones(len(xy), dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    ids = np.empty(len(xy), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids, int(new.sum())


def drop_repeated(paths: Paths) -> tuple[Paths, int]:
    """Remove repeated consecutive vertices; drop paths left with one point (zero length).

    Returns the cleaned paths and how many paths were dropped.
    """
    path = paths.path_of_position()
    keep = np.ones(len(paths.xy), dtype=bool)
    keep[1:] = ~((paths.xy[1:] == paths.xy[:-1]).all(axis=1) & (path[1:] == path[:-1]))
    counts = np.bincount(path[keep], minlength=paths.n_paths)
    long_enough = counts >= 2
    keep &= long_enough[path]
    dropped = int((~long_enough).sum())
    if keep.all():
        return paths, 0
    offsets = np.concatenate([[0], np.cumsum(counts[long_enough])])
    return Paths(paths.xy[keep], paths.lonlat[keep], offsets, paths.row[long_enough]), dropped


def unique_ints(values: np.ndarray) -> np.ndarray:
    """Sorted distinct integers (numpy's hash-based ``np.unique`` is far slower on millions of ids)."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _has(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Whether each query is in ``sorted_keys`` (binary search)."""
    pos = np.searchsorted(sorted_keys, queries).clip(0, max(len(sorted_keys) - 1, 0))
    return (sorted_keys[pos] == queries) if len(sorted_keys) else np.zeros(len(queries), dtype=bool)


def _paths_near(paths: Paths, points: np.ndarray, distance: float) -> np.ndarray:
    """Paths whose bounding box comes within ``distance`` of any of ``points`` (a superset, cheaply)."""
    lo = np.minimum.reduceat(paths.xy, paths.offsets[:-1], axis=0)
    hi = np.maximum.reduceat(paths.xy, paths.offsets[:-1], axis=0)
    centre, radius = (lo + hi) / 2, np.hypot(*((hi - lo) / 2).T) + distance
    hits = cKDTree(points).query_ball_point(centre, radius, return_length=True)
    return np.flatnonzero(hits > 0)


def _along(paths: Paths) -> np.ndarray:
    """Planar metres from each path's start to each of its vertices."""
    step = np.hypot(*np.diff(paths.xy, axis=0).T)
    step[paths.offsets[1:-1] - 1] = 0.0  # no step between consecutive paths
    cum = np.concatenate([[0.0], np.cumsum(step)])
    return cum - np.repeat(cum[paths.offsets[:-1]], paths.counts)


def insert_positions(paths: Paths, path: np.ndarray, along: np.ndarray) -> np.ndarray:
    """Position before which a new vertex ``along`` metres into ``path`` goes (strictly inside the path)."""
    dist = _along(paths)
    # distances grow within a path; add a per-path step so one sorted array covers all paths
    lift = np.repeat(np.arange(paths.n_paths, dtype=np.float64), paths.counts) * (dist.max() + 1.0)
    key = dist + lift
    pos = np.searchsorted(key, along + lift[paths.offsets[path]], side="right")
    return np.clip(pos, paths.offsets[path] + 1, paths.offsets[path + 1] - 1)


def insert_vertices(
    paths: Paths, path: np.ndarray, along: np.ndarray, xy: np.ndarray, lonlat: np.ndarray, pos: np.ndarray | None = None
) -> Paths:
    """Insert vertices ``xy``/``lonlat`` into ``path`` at ``along`` metres from its start (vectorised).

    ``pos`` (from :func:`insert_positions` on the paths before other edits) overrides the
    positions found from ``along``.
    """
    if len(path) == 0:
        return paths
    if pos is None:
        pos = insert_positions(paths, path, along)
    order = np.lexsort((along, pos))
    pos, path, xy, lonlat = pos[order], path[order], xy[order], lonlat[order]
    added = np.bincount(path, minlength=paths.n_paths)
    offsets = paths.offsets + np.concatenate([[0], np.cumsum(added)])
    return Paths(np.insert(paths.xy, pos, xy, axis=0), np.insert(paths.lonlat, pos, lonlat, axis=0), offsets, paths.row)


@dataclass(frozen=True)
class EndJoins:
    """What :func:`join_ends` did: loose ends joined and the largest distance one moved (m)."""

    ends_joined: int
    max_move_m: float


def join_ends(paths: Paths, tolerance_m: float, to_lonlat) -> tuple[Paths, EndJoins]:
    """Join loose line ends to a vertex or a line within ``tolerance_m`` metres.

    A loose end is a path end whose point no other vertex shares. It moves to the nearest
    vertex within the tolerance (of another path, or the far end of its own path, which
    closes a ring), else to the nearest point of another path's line, where a vertex is
    inserted (a T-junction). Loose ends close to each other meet at one of them. Vertices
    that are not loose ends never move. ``to_lonlat(xy)`` converts new projected points.
    """
    none = EndJoins(0, 0.0)
    if tolerance_m <= 0 or paths.n_paths == 0:
        return paths, none
    pid, n_points = point_ids(paths.xy)
    count = np.bincount(pid, minlength=n_points)
    first, last = paths.offsets[:-1], paths.offsets[1:] - 1
    ends = np.concatenate([first, last])
    cand = unique_ints(ends[count[pid[ends]] == 1])
    if len(cand) == 0:
        return paths, none
    path_of = paths.path_of_position()
    point_xy = np.empty((n_points, 2))
    point_xy[pid] = paths.xy
    point_lonlat = np.empty((n_points, 2))
    point_lonlat[pid] = paths.lonlat
    sole_path = np.full(n_points, -1, dtype=np.int64)
    single = count[pid] == 1
    sole_path[pid[single]] = path_of[single]

    cand_point, cand_path = pid[cand], path_of[cand]
    far_end = np.where(cand == first[cand_path], last[cand_path], first[cand_path])
    ring_ok = (paths.counts[cand_path] >= 3)[:, None]

    # 1. the nearest vertex within the tolerance
    k = min(_NEIGHBOURS, n_points)
    dist, near = cKDTree(point_xy).query(paths.xy[cand], k=k, distance_upper_bound=tolerance_m)
    dist, near = dist.reshape(len(cand), k), near.reshape(len(cand), k)
    found = near < n_points
    near_safe = np.where(found, near, 0)
    own_only = sole_path[near_safe] == cand_path[:, None]
    closes_ring = (near_safe == pid[far_end][:, None]) & ring_ok
    usable = found & (near_safe != cand_point[:, None]) & (~own_only | closes_ring)
    has_vertex = usable.any(axis=1)
    pick = np.argmax(usable, axis=1)
    vertex_target = np.where(has_vertex, near_safe[np.arange(len(cand)), pick], -1)

    # 2. otherwise the nearest point on another line: a T-junction drawn without a shared vertex
    seg_cand = np.zeros(0, dtype=np.int64)
    seg_path = np.zeros(0, dtype=np.int64)
    seg_along = np.zeros(0)
    seg_xy = np.zeros((0, 2))
    rest = np.flatnonzero(~has_vertex)
    if len(rest):
        near_paths = _paths_near(paths, paths.xy[cand[rest]], tolerance_m)
        lines = shapely.linestrings(
            paths.xy[ragged_index(paths.offsets[near_paths], paths.counts[near_paths])],
            indices=np.repeat(np.arange(len(near_paths)), paths.counts[near_paths]),
        )
        points = shapely.points(paths.xy[cand[rest]])
        which, local = shapely.STRtree(lines).query(points, predicate="dwithin", distance=tolerance_m)
        line = near_paths[local]
        other = line != cand_path[rest][which]
        which, line, local = which[other], line[other], local[other]
        lines = lines[local]
        line_index = np.arange(len(line))
        along = shapely.line_locate_point(lines[line_index], points[which])
        foot = shapely.get_coordinates(shapely.line_interpolate_point(lines[line_index], along))
        gap = np.hypot(*(foot - paths.xy[cand[rest]][which]).T)
        order = np.lexsort((gap, which))
        firsts = order[np.r_[True, which[order][1:] != which[order][:-1]]] if len(order) else order
        seg_cand = rest[which[firsts]]
        seg_path, seg_along, seg_xy = line[firsts], along[firsts], foot[firsts]
        # a foot on an existing vertex of that line is that vertex
        pos = insert_positions(paths, seg_path, seg_along)
        before, after = pos - 1, pos
        d_before = np.hypot(*(paths.xy[before] - seg_xy).T)
        d_after = np.hypot(*(paths.xy[after] - seg_xy).T)
        on_vertex = np.minimum(d_before, d_after) <= SAME_POINT_M
        at = np.where(d_before <= d_after, before, after)
        vertex_target[seg_cand[on_vertex]] = pid[at[on_vertex]]
        keep = ~on_vertex
        seg_cand, seg_path, seg_along, seg_xy = seg_cand[keep], seg_path[keep], seg_along[keep], seg_xy[keep]

    # 3. ends linked to vertices form groups that meet at one point (union of the links)
    linked = np.flatnonzero(vertex_target >= 0)
    graph = sparse.coo_matrix(
        (np.ones(len(linked)), (cand_point[linked], vertex_target[linked])), shape=(n_points, n_points)
    )
    _, label = csgraph.connected_components(graph, directed=True, connection="weak")
    involved = unique_ints(np.concatenate([cand_point[linked], vertex_target[linked], cand_point[seg_cand]]))
    if len(involved) == 0:
        return paths, none
    is_cand = np.zeros(n_points, dtype=bool)
    is_cand[cand_point] = True
    seg_of_point = np.full(n_points, -1, dtype=np.int64)
    seg_of_point[cand_point[seg_cand]] = np.arange(len(seg_cand))
    # anchor: a vertex that is not a loose end, else an end joined to a line, else the lowest id
    rank = np.where(~is_cand[involved], 0, np.where(seg_of_point[involved] >= 0, 1, 2))
    order = np.lexsort((involved, rank, label[involved]))
    grouped = involved[order]
    head = np.r_[True, label[grouped][1:] != label[grouped][:-1]]
    anchor = np.full(label.max() + 1, -1, dtype=np.int64)
    anchor[label[grouped[head]]] = grouped[head]

    anchors = anchor[label[involved]]
    line_of = seg_of_point[anchors]
    on_line = line_of >= 0
    foot_lonlat = to_lonlat(seg_xy) if len(seg_xy) else np.zeros((0, 2))
    target_xy, target_lonlat = point_xy[anchors], point_lonlat[anchors]
    target_xy[on_line], target_lonlat[on_line] = seg_xy[line_of[on_line]], foot_lonlat[line_of[on_line]]
    moves = (involved != anchors) | on_line
    move = np.hypot(*(target_xy[moves] - point_xy[involved[moves]]).T)

    # positions first (on the paths as they are), then move the ends, then insert the feet
    pos = insert_positions(paths, seg_path, seg_along)
    new_xy = np.full((n_points, 2), np.nan)
    new_xy[involved] = target_xy
    new_lonlat = np.full((n_points, 2), np.nan)
    new_lonlat[involved] = target_lonlat
    at = np.flatnonzero(is_cand[pid] & ~np.isnan(new_xy[pid, 0]))
    xy, lonlat = paths.xy.copy(), paths.lonlat.copy()
    xy[at], lonlat[at] = new_xy[pid[at]], new_lonlat[pid[at]]
    moved = insert_vertices(replace(paths, xy=xy, lonlat=lonlat), seg_path, seg_along, seg_xy, foot_lonlat, pos)
    return moved, EndJoins(int(moves.sum()), float(move.max()) if len(move) else 0.0)


@dataclass(frozen=True)
class Crossings:
    """Lines crossing without a shared vertex: how many places, and whether they were split."""

    places: int
    split: bool


def crossings(paths: Paths, split: bool, to_lonlat, chunk: int = 200_000) -> tuple[Paths, Crossings]:
    """Find (and with ``split``, join) places where lines cross without a shared vertex.

    A crossing is two segments crossing properly (each one's ends strictly on either side of
    the other), tested in numpy on the segment pairs whose boxes overlap (GEOS ``STRtree``).
    Bridges and tunnels look like this. A line end a hair beyond another line (reprojection
    noise) is not counted; with ``split`` it is joined like any crossing: a vertex goes into
    each line through the place, so the lines meet there. Overlapping stretches are not joined.
    """
    path_of = paths.path_of_position()
    start = np.flatnonzero(np.r_[path_of[1:] == path_of[:-1], False])
    if len(start) < 2:
        return paths, Crossings(0, split)
    p0, p1 = paths.xy[start], paths.xy[start + 1]
    segments = shapely.linestrings(
        np.stack([p0, p1], axis=1).reshape(-1, 2), indices=np.repeat(np.arange(len(start)), 2)
    )
    tree = shapely.STRtree(segments)
    found_i, found_t = [], []
    for lo in range(0, len(start), chunk):
        i, j = tree.query(segments[lo : lo + chunk])
        i += lo
        keep = (i < j) & ~((start[j] == start[i] + 1) & (path_of[start[j]] == path_of[start[i]]))
        i, j = i[keep], j[keep]
        d = p1[i] - p0[i]
        e = p1[j] - p0[j]
        # orientations relative to each segment's own start keep the numbers small (metres)
        o1 = _cross(d, p0[j] - p0[i])
        o2 = _cross(d, p1[j] - p0[i])
        o3 = _cross(e, p0[i] - p0[j])
        o4 = _cross(e, p1[i] - p0[j])
        proper = (np.sign(o1) * np.sign(o2) < 0) & (np.sign(o3) * np.sign(o4) < 0)
        i, j = i[proper], j[proper]
        t = _cross(p0[j] - p0[i], e[proper]) / _cross(d[proper], e[proper])
        found_i.append(np.column_stack([i, j]))
        found_t.append(t)
    pairs = np.concatenate(found_i) if found_i else np.zeros((0, 2), dtype=np.int64)
    t = np.concatenate(found_t) if found_t else np.zeros(0)
    if len(t) == 0:
        return paths, Crossings(0, split)
    i, j = pairs[:, 0], pairs[:, 1]
    xy = p0[i] + t[:, None] * (p1[i] - p0[i])
    a, b = path_of[start[i]], path_of[start[j]]
    first, last = paths.offsets[:-1], paths.offsets[1:] - 1
    gap = np.min([np.hypot(*(xy - paths.xy[end[line]]).T) for end in (first, last) for line in (a, b)], axis=0)
    if not split:
        crossing = gap > SAME_POINT_M
        i, j, a, b, xy = i[crossing], j[crossing], a[crossing], b[crossing], xy[crossing]
        if len(xy) == 0:
            return paths, Crossings(0, split)

    # one coordinate per place: an existing vertex there, else the first crossing point found
    pid, n_points = point_ids(paths.xy)
    point_xy = np.empty((n_points, 2))
    point_xy[pid] = paths.xy
    _, near = cKDTree(point_xy).query(xy, distance_upper_bound=SAME_POINT_M)
    existing = near < n_points
    xy[existing] = point_xy[near[existing]]
    close = cKDTree(xy).query_pairs(SAME_POINT_M, output_type="ndarray")
    _, place = csgraph.connected_components(
        sparse.coo_matrix((np.ones(len(close)), (close[:, 0], close[:, 1])), shape=(len(xy), len(xy))),
        directed=False,
    )
    order = np.lexsort((np.arange(len(xy)), ~existing, place))
    head = order[np.r_[True, place[order][1:] != place[order][:-1]]]
    rep = np.empty(place.max() + 1, dtype=np.int64)
    rep[place[head]] = head
    xy, existing, near = xy[rep[place]], existing[rep[place]], near[rep[place]]

    # a place is joined where its vertex already lies on both lines
    member = unique_ints(pid * paths.n_paths + path_of)
    in_a = existing & _has(member, near * paths.n_paths + a)
    in_b = existing & _has(member, near * paths.n_paths + b)
    open_place = ~(in_a & in_b)
    places = len(unique_ints(place[open_place]))
    if not split or places == 0:
        return paths, Crossings(places, split)
    dist = _along(paths)
    need_a, need_b = open_place & ~in_a, open_place & ~in_b
    seg = np.concatenate([i[need_a], j[need_b]])
    which = np.concatenate([np.flatnonzero(need_a), np.flatnonzero(need_b)])
    line = path_of[start[seg]]
    _, unique = np.unique(place[which] * len(start) + seg, return_index=True)  # once per place and segment
    seg, which, line = seg[unique], which[unique], line[unique]
    along = dist[start[seg]] + np.hypot(*(xy[which] - p0[seg]).T)
    moved = insert_vertices(paths, line, along, xy[which], to_lonlat(xy[which]), pos=start[seg] + 1)
    return moved, Crossings(places, split)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def sequence_hash(point_id: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orientation-free fingerprint of the point sequence ``start..end`` of every piece.

    Returns ``(key, flipped)``: ``key`` (s, 5) int64 rows equal for pieces over the same
    points in the same or reverse order, and whether the piece runs against the canonical
    order (from the lower end id; loops by their second point).
    """
    u, v = point_id[start], point_id[end]
    second, before_last = point_id[start + 1], point_id[end - 1]
    flipped = (u > v) | ((u == v) & (second > before_last))
    counts = end - start + 1
    offsets = np.concatenate([[0], np.cumsum(counts)])
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], counts)
    pos = np.repeat(start, counts) + np.where(
        np.repeat(flipped, counts), np.repeat(counts, counts) - 1 - within, within
    )
    values = point_id[pos].astype(np.uint64) + np.uint64(1)
    hashes = []
    with np.errstate(over="ignore"):
        for base in _HASH_BASES:
            powers = np.cumprod(np.full(int(counts.max()), base, dtype=np.uint64))
            hashes.append(np.add.reduceat(values * powers[within], offsets[:-1]).view(np.int64))
    low, high = np.minimum(u, v), np.maximum(u, v)
    return np.column_stack([low, high, counts, *hashes]), flipped


def merge_duplicates(
    point_id: np.ndarray, start: np.ndarray, end: np.ndarray, forward: np.ndarray, backward: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the first of pieces over the same points (either way round), open in every direction any copy is.

    Returns ``(keep, forward, backward)``: which pieces stay and their directions.
    """
    key, flipped = sequence_hash(point_id, start, end)
    first = duplicate_groups(key)
    keep = first == np.arange(len(first))
    # directions in the canonical order, pooled over the copies (one copy drawn per direction)
    along = np.bincount(first, weights=np.where(flipped, backward, forward), minlength=len(first)) > 0
    against = np.bincount(first, weights=np.where(flipped, forward, backward), minlength=len(first)) > 0
    return keep, np.where(flipped, against, along), np.where(flipped, along, against)


def duplicate_groups(key: np.ndarray) -> np.ndarray:
    """For rows of ``key``, the index of the first row with the same key (itself when unique).

    Rows are first told apart by their first two columns (one sort); only rows sharing
    those are compared on the whole key.
    """
    out = np.arange(len(key), dtype=np.int64)
    if len(key) < 2:
        return out
    pair = key[:, :2]
    order = np.lexsort(pair.T[::-1])
    same = (pair[order][1:] == pair[order][:-1]).all(axis=1)
    shared = np.zeros(len(key), dtype=bool)
    shared[order[1:][same]] = shared[order[:-1][same]] = True
    rows = np.flatnonzero(shared)
    if len(rows) == 0:
        return out
    sub = key[rows]
    order = np.lexsort(sub.T[::-1])
    ordered = sub[order]
    new = np.ones(len(sub), dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group = np.cumsum(new) - 1
    first = np.full(int(group[-1]) + 1, len(key), dtype=np.int64)
    np.minimum.at(first, group, rows[order])
    out[rows[order]] = first[group]
    return out


def find_twins(u: np.ndarray, v: np.ndarray, geom_xy: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Pair each directed edge with a reverse edge along the same vertices (else -1), vectorised.

    Vertices are compared on a 1 µm grid. Self-loops get no twin.
    """
    twin = np.full(len(u), -1, dtype=np.int64)
    if len(u) == 0:
        return twin
    pid, _ = point_ids(np.round(geom_xy, 6))
    key, flipped = sequence_hash(pid, offsets[:-1], offsets[1:] - 1)
    candidates = np.flatnonzero(u != v)
    group = duplicate_groups(key[candidates])
    side = flipped[candidates]
    # the k-th edge one way pairs with the k-th edge the other way within each group
    order = np.lexsort((candidates, side, group))
    g, s = group[order], side[order]
    start = np.r_[True, (g[1:] != g[:-1]) | (s[1:] != s[:-1])]
    run_start = np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - run_start
    code = g * (len(order) + 1) + rank
    fwd, bwd = order[~s], order[s]
    _, i, j = np.intersect1d(code[~s], code[s], assume_unique=True, return_indices=True)
    a, b = candidates[fwd[i]], candidates[bwd[j]]
    twin[a], twin[b] = b, a
    return twin
