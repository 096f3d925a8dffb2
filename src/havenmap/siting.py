"""Where to open the next safe havens: exact haven siting on real roads, robust to losing one.

A planner with money for ``new`` more safe houses gives the defenders (optionally weighted),
the candidate sites and the havens already open; :func:`site_havens` answers with the sites
to open, in the order to open them, proven optimal (or with the optimality gap when a time
limit stops the solver).

Objectives
----------
``coverage`` (maximal covering, MCLP)
    The most defender weight within ``minutes`` of an open haven (existing ones stay open).
``time`` (p-median)
    The least weighted travel cost to the nearest open haven (seconds under the default
    ``cost="time"``; metres under ``"length"``; cost units under closures or danger).
    Defenders who can reach no open haven are reported, not averaged in: the model first
    serves every defender it can, then minimises the cost.
``backup`` (N-1)
    The most weight still within ``minutes`` after losing any one open haven, existing or
    new (the worst single loss); among such answers, the most weight covered with nothing
    lost.
``cover-all`` (set covering, LSCP)
    The fewest new havens (at most ``new``) so that every defender who can be covered
    within ``minutes`` is. If ``new`` is too few, the answer covers the most weight possible
    with the fewest havens and says so (``all_covered`` false).

How it is computed
------------------
Travel times come from one many-to-many pass on the routing core
(:func:`havenmap._graph.travel_matrix`, searching from the candidates and havens, the
smaller side), bounded by the band for the covering objectives so that only pairs within
``minutes`` are searched and kept. "Within ``minutes``" is the physical travel time along
the route the cost model chooses to that haven, as everywhere in havenmap.

The integer programmes are solved by HiGHS through :func:`scipy.optimize.milp` (relative
gap 0: "optimal" means proven optimal), on sparse constraint matrices:

* covering models keep one row per group of defenders with the same set of sites in reach
  (their weights added), and only the sites in reach;
* the p-median keeps, for each defender, only the candidates cheaper than its nearest
  existing haven (those farther can never serve it), and of those its ``K`` cheapest, plus
  a *fallback* priced at the (K+1)-th cheapest cost — a lower bound on its cost when none
  of the ``K`` is open, so the restricted model is a relaxation of the full one. When the
  optimum of the relaxation leaves no defender at a fallback below its true cost, it is
  optimal for the full problem; otherwise those defenders' lists are doubled and the model
  solved again (as spopt's ``KNearestPMedian`` does, but with the exact lower bound rather
  than "farthest kept + 1", which can cut off the optimum). When the nearest existing haven
  is cheaper than the (K+1)-th candidate, the fallback is that haven: exact;
* the backup model counts, for losing haven h, the weight of defenders near h that still
  have a second open haven in reach plus all others still covered (one row per haven, with
  the defenders near it only), so its size is proportional to the pairs in reach.

Written by hand on purpose: spopt builds the same models in PuLP, one Python object per
variable and constraint over dense matrices, which is slow at 10,000 × 1,000 (see
``benchmarks/bench_siting.py``), has no N-1 objective, and its tests are our oracle.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from . import _checks, _graph, _io, _osm
from ._arrays import ragged_index
from .coverage import DEFAULT_MINUTES, Coverage, coverage_of, parse_minutes, worst_loss
from .errors import InfeasibleError, InputError, where
from .havens import assign_havens
from .network import RoadNetwork
from .snap import DEFAULT_MAX_SNAP_M, snap_layer, snap_points

__all__ = [
    "OBJECTIVES",
    "OUTPUT_FILES",
    "SiteSolution",
    "SitingParams",
    "SitingResult",
    "candidates_from_osm",
    "check_sites",
    "defender_weights",
    "parse_osm_tags",
    "site_havens",
    "solve_sites",
    "solve_times",
    "write_siting_outputs",
]

#: The siting objectives (see the module docstring).
OBJECTIVES = ("coverage", "time", "backup", "cover-all")
#: Files :func:`write_siting_outputs` writes, relative to its folder.
OUTPUT_FILES = ("sites.csv", "siting.json", "siting.geojson", "siting_map.html")
#: Columns of :attr:`SitingResult.sites` (``sites.csv``), in order.
SITES_COLUMNS = ["site_id", "name", "order", "gain", "defenders_served", "weight_served", "newly_reached"]
#: Accepted spellings of the defenders' weight column (any case), in order of preference.
WEIGHT_COLUMNS = ("weight", "priority")
#: First size of each defender's candidate list in the p-median (doubled where too short): at least
#: _MIN_LIST, and _LIST_FACTOR times the candidates per open haven (a defender's nearest open haven is
#: typically among its nearest "candidates per haven").
_MIN_LIST = 8
_LIST_FACTOR = 2.0
_STATUS = {
    1: "time limit",
    5: "not proven: the searches stopped at the limit before every defender's nearest candidates",
    "greedy": "greedy (the solver found no answer within the time limit)",
}
_VALUE_UNITS = {
    "coverage": "defender weight within the band",
    "time": "weighted travel cost",
    "backup": "defender weight within the band after the worst single haven loss",
    "cover-all": "new havens",
}
_GAIN_UNITS = {
    "coverage": "defender weight newly within the band",
    "time": "weighted travel cost saved (defenders who already had a haven)",
    "backup": "increase of the weight still covered after the worst single loss",
    "cover-all": "defender weight newly within the band",
}


# ====================================================================== parameters
@dataclass(frozen=True)
class SitingParams:
    """Validated siting parameters, loadable from TOML (:meth:`from_file`, :meth:`from_dict`).

    Attributes
    ----------
    objective : str
        One of :data:`OBJECTIVES`.
    new : int
        New havens to open (``cover-all``: at most this many), >= 1.
    minutes : float
        The covering band, minutes of travel time (> 0); reported for ``time`` too.
    time_limit_s : float or None
        Solver time limit, seconds (> 0); None: until proven optimal.
    bands : tuple of float or None
        Bands (minutes) reported before/after in the summary; default 5, 10, 15 and ``minutes``.
    """

    objective: str = "coverage"
    new: int = 3
    minutes: float = 10.0
    time_limit_s: float | None = None
    bands: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective {self.objective!r} (--objective): use one of {', '.join(OBJECTIVES)}")
        if isinstance(self.new, bool) or not isinstance(self.new, (int, np.integer)) or self.new < 1:
            raise InputError(f"new = {self.new!r} (--new): give the number of new havens to open, at least 1")
        minutes = _positive(self.minutes, "minutes = {!r} (--minutes): give the band in minutes, above 0, e.g. 10")
        object.__setattr__(self, "minutes", minutes)
        if self.time_limit_s is not None:
            limit = _positive(self.time_limit_s, "time_limit_s = {!r} (--time-limit): give seconds above 0, or none")
            object.__setattr__(self, "time_limit_s", limit)
        if self.bands is not None:
            object.__setattr__(self, "bands", parse_minutes(self.bands))
        object.__setattr__(self, "new", int(self.new))

    @property
    def report_bands(self) -> tuple[float, ...]:
        """Bands reported before/after, minutes, ascending (always including ``minutes``)."""
        return tuple(sorted({*(self.bands or DEFAULT_MINUTES), self.minutes}))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "") -> SitingParams:
        """Parameters from a mapping (e.g. a TOML table); unknown keys are an error naming ``source``."""
        known = {f for f in cls.__dataclass_fields__}
        prefix = f"{source}: " if source else ""
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{prefix}unknown siting key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        values = dict(data)
        if "bands" in values and values["bands"] is not None:
            values["bands"] = tuple(values["bands"]) if not isinstance(values["bands"], str) else values["bands"]
        try:
            return cls(**values)
        except InputError as exc:
            raise InputError(f"{prefix}{exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SitingParams:
        """Parameters from a TOML file: its ``[siting]`` table if it has one, else its top level.

        A scenario's input keys in the table (``candidates``, ``candidates_osm``) are left to
        the scenario (:mod:`havenmap.scenario`).
        """
        raw = _checks.read_toml(path)
        table = raw.get("siting", raw)
        if not isinstance(table, dict):
            raise InputError(f"{path}: [siting] must be a table of settings")
        table = {k: v for k, v in table.items() if k not in ("candidates", "candidates_osm")}
        return cls.from_dict(table, source=f"{path}: [siting]" if "siting" in raw else str(path))


def _positive(value: Any, message: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(message.format(value)) from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise InputError(message.format(value))
    return number


# ====================================================================== inputs
def defender_weights(defenders: pd.DataFrame) -> np.ndarray:
    """Each defender's weight: the ``weight`` (or ``priority``) column, any case; 1 where there is none.

    Raises :class:`~havenmap.errors.InputError` naming the file, row, id and column of the
    first blank, non-numeric, infinite, NaN or negative weight (with a count of the others).
    """
    lower = {str(c).strip().lower(): c for c in defenders.columns}
    column = next((lower[name] for name in WEIGHT_COLUMNS if name in lower), None)
    if column is None:
        return np.ones(len(defenders))
    raw = defenders[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        ids = defenders["id"].astype(str).to_numpy() if "id" in defenders.columns else None
        others = int(bad.sum()) - 1
        more = f" ({others} more row(s) like it)" if others else ""
        loc = where(
            defenders.attrs.get("source", "defenders"),
            row=first + 1,
            id=None if ids is None else ids[first],
            column=str(column),
        )
        raise InputError(
            f"{loc}: weight {raw.iloc[first]!r} is not usable{more}; give every defender a number >= 0 "
            "(blank, NaN and negative weights are not allowed; drop the column for weight 1)"
        )
    return values


def parse_osm_tags(spec: str) -> dict[str, tuple[str, ...]]:
    """``"amenity=clinic,place_of_worship,healthcare=doctor"`` → ``{"amenity": (...), "healthcare": (...)}``.

    A ``key=value`` item starts a key; a bare item is one more value of the key before it.
    """
    tags: dict[str, list[str]] = {}
    key = None
    for item in (part.strip() for part in str(spec).split(",")):
        if not item:
            continue
        if "=" in item:
            key, value = (s.strip() for s in item.split("=", 1))
            if not key or not value:
                key = None
        elif key is None:
            value = ""
        else:
            value = item
        if key is None or not value:
            raise InputError(
                f"--candidates-osm {spec!r}: give OSM tags as key=value,value,..., e.g. amenity=clinic,place_of_worship"
            )
        tags.setdefault(key, [])
        if value not in tags[key]:
            tags[key].append(value)
    if not tags:
        raise InputError(f"--candidates-osm {spec!r}: no tag given; e.g. amenity=clinic,place_of_worship")
    return {k: tuple(v) for k, v in tags.items()}


_OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.pbf", ".pbf", ".osm.gz")


def candidates_from_osm(
    path: str | os.PathLike[str], spec: str | dict[str, tuple[str, ...]], *, exclude: pd.DataFrame | None = None
) -> gpd.GeoDataFrame:
    """Candidate sites from the OSM features of an OSM file (the network file itself).

    Parameters
    ----------
    path
        ``.osm``, ``.osm.bz2`` or ``.osm.pbf`` file.
    spec
        Tags to take, e.g. ``"amenity=clinic,place_of_worship"`` (see :func:`parse_osm_tags`).
    exclude
        Existing havens: features they already are (by ``osm_type`` and ``osm_id`` columns,
        when they have them) are left out.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326: ``id`` (``node/123``, ``way/456``, ``relation/789``), ``name`` (the OSM
        name, else ``<value> (OSM <type> <id>)``), ``kind`` (the matched tag value),
        ``osm_type``, ``osm_id``; nodes at the node, areas at a point inside them.
    """
    path = Path(path)
    if not path.name.lower().endswith(_OSM_SUFFIXES):
        raise InputError(
            f"--candidates-osm reads OSM features from the network file, but {path.name} is not an OSM file "
            "(.osm, .osm.bz2, .osm.pbf); give the candidates as a file with --candidates"
        )
    tags = parse_osm_tags(spec) if isinstance(spec, str) else spec
    found = _osm.read_features(str(path), tags)
    frame = pd.DataFrame(
        {
            "id": [f"{t}/{i}" for t, i in zip(found.osm_type, found.osm_id, strict=True)],
            "name": [
                n if n else f"{v} (OSM {t} {i})"
                for n, v, t, i in zip(found.name, found.value, found.osm_type, found.osm_id, strict=True)
            ],
            "kind": found.value,
            "osm_type": found.osm_type,
            "osm_id": np.asarray(found.osm_id, dtype=np.int64),
        }
    )
    out = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(found.lon, found.lat), crs="EPSG:4326")
    if exclude is not None and {"osm_type", "osm_id"} <= set(exclude.columns) and len(out):
        taken = set(
            zip(exclude["osm_type"].astype(str), pd.to_numeric(exclude["osm_id"], errors="coerce"), strict=True)
        )
        keep = [(t, i) not in taken for t, i in zip(out["osm_type"], out["osm_id"], strict=True)]
        out = out.loc[keep].reset_index(drop=True)
    if out.empty:
        wanted = ", ".join(f"{k}={'/'.join(v)}" for k, v in tags.items())
        raise InputError(f"{path}: no OSM feature tagged {wanted} (besides the existing havens) to use as candidates")
    out.attrs["source"] = f"{path} ({spec if isinstance(spec, str) else 'OSM features'})"
    return out


def check_sites(candidates: gpd.GeoDataFrame, existing: gpd.GeoDataFrame | None, new: int) -> None:
    """Ids present, unique and distinct from the existing havens'; ``new`` no more than the candidates."""
    source = candidates.attrs.get("source", "candidates")
    if "id" not in candidates.columns:
        raise InputError(f"{source}: no 'id' column; give every candidate site an id")
    if len(candidates) == 0:
        raise InputError(f"{source}: no candidate sites")
    ids = candidates["id"].astype(str)
    repeated = ids[ids.duplicated()]
    if len(repeated):
        row = int(np.flatnonzero(ids.duplicated().to_numpy())[0]) + 1
        raise InputError(
            f"{where(source, row=row, id=repeated.iloc[0], column='id')}: repeated id; give every site its own id"
        )
    if new > len(candidates):
        raise InputError(
            f"{source}: --new {new} is more than the {len(candidates)} candidate site(s); "
            f"give --new {len(candidates)} or fewer, or more candidates"
        )
    if existing is not None and len(existing):
        if "id" not in existing.columns:
            raise InputError(f"{existing.attrs.get('source', 'havens')}: no 'id' column; give every haven an id")
        both = sorted(set(ids) & set(existing["id"].astype(str)))
        if both:
            raise InputError(
                f"{source}: candidate id {both[0]!r} is also the id of an existing haven "
                f"({existing.attrs.get('source', 'havens')}); give candidates ids of their own"
            )


def _check_defenders(defenders: gpd.GeoDataFrame) -> None:
    source = defenders.attrs.get("source", "defenders")
    if "id" not in defenders.columns:
        raise InputError(f"{source}: no 'id' column; give every defender an id")
    ids = defenders["id"].astype(str)
    if ids.duplicated().any():
        row = int(np.flatnonzero(ids.duplicated().to_numpy())[0]) + 1
        raise InputError(f"{where(source, row=row, id=ids[ids.duplicated()].iloc[0], column='id')}: repeated id")


# ====================================================================== the matrix-level solver
@dataclass
class SiteSolution:
    """The answer of :func:`solve_sites` on one travel matrix (sites: existing havens first, then candidates).

    Attributes
    ----------
    objective : str
    open : (S,) bool
        Sites open after siting (existing ones always).
    chosen : (k,) int64
        Candidate sites chosen (column indices), in the order to open them (greatest marginal
        gain first, given the existing havens and the sites before it).
    gains : (k,) float64
        Marginal gain of each in that order (see :data:`_GAIN_UNITS`).
    newly_reached : (k,) int64
        Defenders for whom that site is the first open haven in reach (the band; any route
        for ``time``).
    value, bound : float
        Objective value of the answer (recomputed from the matrix) and the solver's proven
        bound on the best possible value; ``gap`` = ``|bound - value| / |value|``.
    optimal : bool
        Proven optimal.
    status : str
        'optimal'; 'time limit' (the best found, with its gap); 'greedy (...)' when the solver
        found no answer within the time limit; 'not proven: ...' (p-median searches bounded by
        ``limit`` too tightly).
    assigned : (D,) int64
        Each defender's site after siting: the nearest open one in the band (covering
        objectives) or of least cost (``time``); -1: none.
    assigned_value : (D,) float64
        The matrix value of that pair (``inf``: none).
    all_covered : bool
        ``cover-all``: every coverable defender is covered.
    stats : dict
        Model size and solver figures (variables, constraints, nonzeros, rounds, seconds).
    """

    objective: str
    open: np.ndarray
    chosen: np.ndarray
    gains: np.ndarray
    newly_reached: np.ndarray
    value: float
    bound: float
    optimal: bool
    status: str
    assigned: np.ndarray
    assigned_value: np.ndarray
    all_covered: bool = True
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative optimality gap of :attr:`value` (0 when proven optimal)."""
        if self.optimal:
            return 0.0
        diff = abs(self.bound - self.value)
        return float(diff / abs(self.value)) if self.value else (0.0 if diff == 0 else float("inf"))


@dataclass
class _Milp:
    """One HiGHS run: the solution (None: none found), scipy status, the bound (minimisation) and figures."""

    x: np.ndarray | None
    status: int
    bound: float
    seconds: float
    n_vars: int
    n_rows: int
    nnz: int


class _Clock:
    """What is left of a time limit across several solves, and whether HiGHS may presolve."""

    def __init__(self, limit_s: float | None, presolve: bool = True) -> None:
        self.end = None if limit_s is None else time.perf_counter() + float(limit_s)
        self.presolve = presolve

    def left(self) -> float | None:
        return None if self.end is None else max(self.end - time.perf_counter(), 0.01)


def _run(c, integrality, lb, ub, rows: list[tuple[sparse.spmatrix, np.ndarray, np.ndarray]], clock: _Clock) -> _Milp:
    a = sparse.vstack([r[0] for r in rows], format="csr")
    lo = np.concatenate([r[1] for r in rows])
    hi = np.concatenate([r[2] for r in rows])
    start = time.perf_counter()
    res = None
    attempts = [(True, 1e-7), (False, 1e-7), (True, 1e-6), (False, 1e-6)]
    for presolve, tolerance in attempts if clock.presolve else [a for a in attempts if not a[0]]:
        # HiGHS checks its final answer against the LP tolerance (1e-7): a MIP tolerance looser than
        # that (its default 1e-6) can end an optimal search in a "solve error"
        options: dict[str, Any] = {
            "mip_rel_gap": 0.0,
            "disp": False,
            "presolve": presolve,
            "mip_feasibility_tolerance": tolerance,
        }
        left = clock.left()
        if left is not None:
            options["time_limit"] = left
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
            res = milp(
                np.asarray(c, dtype=np.float64),
                integrality=np.asarray(integrality),
                bounds=Bounds(np.asarray(lb, np.float64), np.asarray(ub, np.float64)),
                constraints=LinearConstraint(a, lo, hi),
                options=options,
            )
        # HiGHS's MIP presolve has known bugs (a "solve error", or infeasibility of a feasible model:
        # ERGO-Code/HiGHS#1164, #2432): solve again without it, then with HiGHS's own tolerance
        if res.status not in (2, 4):
            break
    bound = res.mip_dual_bound if res.get("mip_dual_bound") is not None else -np.inf
    if res.status == 0 and (bound is None or not np.isfinite(bound)):
        bound = res.fun
    return _Milp(
        x=None if res.x is None else np.asarray(res.x),
        status=int(res.status),
        bound=float(bound) if bound is not None else -np.inf,
        seconds=time.perf_counter() - start,
        n_vars=len(c),
        n_rows=a.shape[0],
        nnz=int(a.nnz),
    )


def _rows(matrix, lo, hi) -> tuple[sparse.spmatrix, np.ndarray, np.ndarray]:
    n = matrix.shape[0]
    return (
        matrix,
        np.broadcast_to(np.asarray(lo, np.float64), (n,)).copy(),
        np.broadcast_to(np.asarray(hi, np.float64), (n,)).copy(),
    )


def _pick(x: np.ndarray, n_cand: int, new: int) -> np.ndarray:
    """The ``new`` candidates a (near-)integral solution opens (largest values first)."""
    y = x[:n_cand]
    return np.sort(np.argsort(-y, kind="stable")[:new])


# ---------------------------------------------------------------------- coverage data
@dataclass(eq=False)
class _Reach:
    """Which sites each defender has in the band: CSR incidence (D × S) and the times of its entries."""

    incidence: sparse.csr_matrix
    time: np.ndarray  # aligned with incidence.data / indices

    @property
    def shape(self) -> tuple[int, int]:
        return self.incidence.shape


def _reach(matrix, threshold: float) -> _Reach:
    """Pairs with a value <= threshold, as a CSR incidence (explicit zeros kept in ``time``)."""
    if sparse.issparse(matrix):
        coo = sparse.coo_matrix(matrix)
        keep = np.isfinite(coo.data) & (coo.data <= threshold)
        i, j, t = coo.row[keep], coo.col[keep], coo.data[keep]
    else:
        matrix = np.asarray(matrix, dtype=np.float64)
        i, j = np.nonzero(matrix <= threshold)
        t = matrix[i, j]
    n, s = matrix.shape
    order = np.lexsort((j, i))
    i, j, t = i[order], j[order], t[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(i, minlength=n), out=indptr[1:])
    inc = sparse.csr_matrix((np.ones(len(j)), j.astype(np.int64), indptr), shape=(n, s))
    return _Reach(inc, t.astype(np.float64))


def _group_rows(m: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Rows with identical column sets: (group of every row, one representative row per group).

    Rows are keyed by their length and two random 64-bit sums of their columns, then checked
    member by member against their group's representative (exact: a hash collision would
    only leave rows ungrouped).
    """
    n, s = m.shape
    lengths = np.diff(m.indptr)
    rng = np.random.default_rng(20261120)
    keys = [lengths.astype(np.uint64)]
    nonempty = np.flatnonzero(lengths > 0)
    for _ in range(2):
        mult = rng.integers(1, np.iinfo(np.int64).max, size=s, dtype=np.int64).astype(np.uint64)
        h = np.zeros(n, dtype=np.uint64)
        if len(nonempty):
            h[nonempty] = np.add.reduceat(mult[m.indices], m.indptr[:-1][nonempty])
        keys.append(h)
    stacked = np.column_stack(keys)
    _, first, group = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    group = group.ravel()
    rep = first[group]
    # verify: every row's columns equal its representative's
    pos_row = ragged_index(m.indptr[:-1], lengths)
    pos_rep = ragged_index(m.indptr[rep], lengths)
    same = np.ones(n, dtype=bool)
    if len(pos_row):
        differs = m.indices[pos_row] != m.indices[pos_rep]
        owner = np.repeat(np.arange(n), lengths)
        same[owner[differs]] = False
    if not same.all():  # a collision: those rows become groups of their own
        extra = np.flatnonzero(~same)
        group = group.copy()
        group[extra] = len(first) + np.arange(len(extra))
        first = np.concatenate([first, extra])
    return group, first


def _covered_weight(reach: _Reach, w: np.ndarray, open_: np.ndarray) -> tuple[float, np.ndarray]:
    """Weight within the band of an open site, and the number of open sites in the band of each defender."""
    count = reach.incidence @ open_.astype(np.float64)
    return float(w[count > 0].sum()), count


def _backup_value(reach: _Reach, w: np.ndarray, open_: np.ndarray) -> tuple[float, int, float]:
    """(weight still covered after the worst single loss, the site lost (-1: none open), weight covered)."""
    covered, count = _covered_weight(reach, w, open_)
    single = w * (count == 1)
    loss = reach.incidence.T @ single  # per site: weight that has it as its only open site in the band
    loss = np.where(open_, loss, -np.inf)
    if not open_.any():
        return 0.0, -1, covered
    worst = int(np.argmax(loss))
    return covered - float(loss[worst]), worst, covered


def _nearest_open(reach: _Reach, open_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each defender's nearest open site within the band (ties: the lowest column) and its time."""
    inc = reach.incidence
    n = inc.shape[0]
    rows = np.repeat(np.arange(n), np.diff(inc.indptr))
    ok = open_[inc.indices]
    r, c, t = rows[ok], inc.indices[ok], reach.time[ok]
    order = np.lexsort((c, t, r))
    r, c, t = r[order], c[order], t[order]
    first = np.ones(len(r), dtype=bool)
    first[1:] = r[1:] != r[:-1]
    site = np.full(n, -1, dtype=np.int64)
    value = np.full(n, np.inf)
    site[r[first]] = c[first]
    value[r[first]] = t[first]
    return site, value


# ---------------------------------------------------------------------- maximal covering and set covering
def _uncovered_groups(reach: _Reach, w: np.ndarray, n_existing: int):
    """Defenders not covered by an existing haven but in the band of some candidate, grouped by their
    candidate sets: (candidate incidence per group (G × C), group weights, base weight covered by existing)."""
    inc = reach.incidence
    by_existing = (
        np.asarray(inc[:, :n_existing].sum(axis=1)).ravel() > 0 if n_existing else np.zeros(inc.shape[0], bool)
    )
    base = float(w[by_existing].sum())
    cand = inc[:, n_existing:].tocsr()
    rows = np.flatnonzero(~by_existing & (np.diff(cand.indptr) > 0) & (w > 0))
    sub = cand[rows]
    sub.sort_indices()
    group, rep = _group_rows(sub)
    wg = np.bincount(group, weights=w[rows], minlength=len(rep))
    return sub[rep], wg, base


def _mclp(a: sparse.csr_matrix, wg: np.ndarray, new: int, clock: _Clock, min_weight: float | None = None):
    """Maximal covering on groups: max sum wg z, z_g <= sum_{j in N_g} y_j, sum y = new (or, with
    ``min_weight``, min sum y subject to sum wg z >= min_weight and sum y <= new)."""
    g, c = a.shape
    cover = sparse.hstack([-a, sparse.identity(g, format="csr")], format="csr")
    card = sparse.csr_matrix(np.concatenate([np.ones(c), np.zeros(g)])[None, :])
    lb, ub = np.zeros(c + g), np.ones(c + g)
    integrality = np.concatenate([np.ones(c), np.zeros(g)])
    if min_weight is None:
        obj = np.concatenate([np.zeros(c), -wg])
        rows = [_rows(cover, -np.inf, 0.0), _rows(card, new, new)]
    else:
        obj = np.concatenate([np.ones(c), np.zeros(g)])
        weight_row = sparse.csr_matrix(np.concatenate([np.zeros(c), wg])[None, :])
        tol = 1e-9 * max(1.0, min_weight)
        rows = [_rows(cover, -np.inf, 0.0), _rows(card, 0, new), _rows(weight_row, min_weight - tol, np.inf)]
    return _run(obj, integrality, lb, ub, rows, clock)


def _lscp(a: sparse.csr_matrix, new: int, clock: _Clock):
    """Set covering on groups: min sum y, sum_{j in N_g} y_j >= 1, sum y <= new."""
    c = a.shape[1]
    card = sparse.csr_matrix(np.ones((1, c)))
    return _run(np.ones(c), np.ones(c), np.zeros(c), np.ones(c), [_rows(a, 1.0, np.inf), _rows(card, 0, new)], clock)


def _solve_covering(reach: _Reach, w: np.ndarray, n_existing: int, new: int, clock: _Clock, stats: dict):
    """MCLP: (open mask, bound on the covered weight, solver status)."""
    s = reach.shape[1]
    a, wg, base = _uncovered_groups(reach, w, n_existing)
    n_cand = s - n_existing
    stats.update(groups=int(a.shape[0]))
    if a.shape[0] == 0:  # nothing left to gain: any sites do
        return _open(s, n_existing, np.arange(new)), base + 0.0, 0
    res = _mclp(a, wg, new, clock)
    _note(stats, res)
    if res.x is None:
        return None, base - res.bound, res.status
    chosen = _pick(res.x, n_cand, new)
    return _open(s, n_existing, chosen), base - res.bound, res.status


def _solve_cover_all(reach: _Reach, w: np.ndarray, n_existing: int, new: int, clock: _Clock, stats: dict):
    """LSCP with ``new`` as a cap: (open mask, bound on the number of new sites, status, all covered)."""
    s = reach.shape[1]
    a, wg, _ = _uncovered_groups(reach, w, n_existing)
    stats.update(groups=int(a.shape[0]))
    if a.shape[0] == 0:
        return _open(s, n_existing, np.zeros(0, np.int64)), 0.0, 0, True
    n_cand = s - n_existing
    res = _lscp(a, new, clock)
    _note(stats, res)
    if res.status == 2:  # infeasible: too few new havens to cover everyone who can be covered
        best = _mclp(a, wg, new, clock)
        _note(stats, best)
        if best.x is None:
            return None, np.nan, best.status, False
        y = _pick(best.x, n_cand, new)
        covered = float(wg[np.asarray(a[:, y].sum(axis=1)).ravel() > 0].sum())
        fewest = _mclp(a, wg, new, clock, min_weight=covered)
        _note(stats, fewest)
        if fewest.x is not None:
            k = round(fewest.x[:n_cand].sum())
            y = _pick(fewest.x, n_cand, k)
        status = 0 if best.status == 0 and fewest.status == 0 else 1
        return _open(s, n_existing, y), fewest.bound if fewest.x is not None else np.nan, status, False
    if res.x is None:
        return None, res.bound, res.status, True
    k = round(res.x[:n_cand].sum())
    return _open(s, n_existing, _pick(res.x, n_cand, k)), res.bound, res.status, True


def _open(s: int, n_existing: int, chosen: np.ndarray) -> np.ndarray:
    out = np.zeros(s, dtype=bool)
    out[:n_existing] = True
    out[n_existing + np.asarray(chosen, dtype=np.int64)] = True
    return out


def _note(stats: dict, res: _Milp) -> None:
    stats["variables"] = max(stats.get("variables", 0), res.n_vars)
    stats["constraints"] = max(stats.get("constraints", 0), res.n_rows)
    stats["nonzeros"] = max(stats.get("nonzeros", 0), res.nnz)
    stats["solves"] = stats.get("solves", 0) + 1
    stats["solver_s"] = round(stats.get("solver_s", 0.0) + res.seconds, 3)


# ---------------------------------------------------------------------- backup (N-1)
def _solve_backup(reach: _Reach, w: np.ndarray, n_existing: int, new: int, clock: _Clock, stats: dict):
    """Max weight covered after the worst single loss, then the most weight covered: (open, bound, status).

    Variables: y (candidates, binary), a_g (covered, binary: with a continuous a_g HiGHS sometimes ends
    an optimal search in a tolerance "solve error"), b_g (covered twice, binary), A (weight covered),
    theta (weight covered after the worst loss). For every site h with
    defenders in its band (S_h): theta <= sum_{g not in S_h} w_g a_g + sum_{g in S_h} w_g b_g
    (+ M_h (1 - y_h) for a candidate, M_h = w(S_h)), i.e. theta - A + sum_{S_h} w_g (a_g - b_g)
    + M_h y_h <= M_h; a_g + b_g <= open sites in the band of g; b_g <= a_g.
    """
    s = reach.shape[1]
    n_cand = s - n_existing
    inc = reach.incidence
    rows = np.flatnonzero((np.diff(inc.indptr) > 0) & (w > 0))
    sub = inc[rows]
    sub.sort_indices()
    group, rep = _group_rows(sub)
    a_all = sub[rep].tocsr()  # groups × sites
    wg = np.bincount(group, weights=w[rows], minlength=len(rep))
    g = a_all.shape[0]
    stats.update(groups=int(g))
    if g == 0:
        return _open(s, n_existing, np.arange(new)), 0.0, 0
    total = float(wg.sum())
    # columns: y (n_cand) | a (g) | b (g) | A | theta
    i_big, i_theta = n_cand + 2 * g, n_cand + 2 * g + 1
    n_var = n_cand + 2 * g + 2
    eye = sparse.identity(g, format="csr")
    a_cand = a_all[:, n_existing:]
    fixed = np.asarray(a_all[:, :n_existing].sum(axis=1)).ravel() if n_existing else np.zeros(g)

    def block(*parts):
        return sparse.hstack(parts, format="csr")

    zeros = sparse.csr_matrix
    count_rows = block(-a_cand, eye, eye, zeros((g, 2)))
    order_rows = block(zeros((g, n_cand)), -eye, eye, zeros((g, 2)))
    weight_row = block(
        zeros((1, n_cand)), sparse.csr_matrix(-wg[None, :]), zeros((1, g)), sparse.csr_matrix([[1.0, 0.0]])
    )
    # loss rows: one per site with a nonempty S_h
    at = a_all.T.tocsr()  # sites × groups
    sites = np.flatnonzero(np.diff(at.indptr) > 0)
    at = at[sites]
    wat = at.multiply(wg[None, :]).tocsr()
    m_h = np.asarray(wat.sum(axis=1)).ravel()
    is_cand = sites >= n_existing
    y_part = sparse.csr_matrix(
        (m_h[is_cand], (np.flatnonzero(is_cand), sites[is_cand] - n_existing)), shape=(len(sites), n_cand)
    )
    loss_rows = block(y_part, wat, -wat, sparse.csr_matrix(np.tile([-1.0, 1.0], (len(sites), 1))))
    loss_hi = np.where(is_cand, m_h, 0.0)
    theta_row = sparse.csr_matrix(([1.0, -1.0], ([0, 0], [i_theta, i_big])), shape=(1, n_var))
    card = sparse.csr_matrix((np.ones(n_cand), (np.zeros(n_cand, np.int64), np.arange(n_cand))), shape=(1, n_var))
    rows_all = [
        _rows(count_rows, -np.inf, fixed),
        _rows(order_rows, -np.inf, 0.0),
        _rows(weight_row, 0.0, 0.0),
        (loss_rows, np.full(len(sites), -np.inf), loss_hi),
        _rows(theta_row, -np.inf, 0.0),
        _rows(card, new, new),
    ]
    integrality = np.concatenate([np.ones(n_cand), np.ones(g), np.ones(g), [0, 0]])
    # defenders an existing haven covers are covered (a = 1), twice by two (b = 1): fixed, not searched
    lb = np.concatenate([np.zeros(n_cand), fixed >= 1, fixed >= 2, [0.0, 0.0]]).astype(np.float64)
    no_cand = np.diff(a_cand.tocsr().indptr) == 0
    ub = np.concatenate([np.ones(n_cand), np.ones(g), np.where(no_cand, fixed >= 2, 1.0), [total, total]])
    obj = np.zeros(n_var)
    obj[i_theta] = -1.0
    integral = bool(np.all(wg == np.round(wg))) and total < 2**40
    if integral:
        # integer weights: theta moves in steps of at least 1 and A / (W + 1) < 1, so one solve of
        # theta + A / (W + 1) is exactly "theta first, then A"
        obj[i_big] = -1.0 / (total + 1.0)
    first = _run(obj, integrality, lb, ub, rows_all, clock)
    _note(stats, first)
    if integral:  # theta is a whole number below the combined bound
        bound = math.floor(-first.bound + 1e-6) if np.isfinite(first.bound) else np.inf
        answer = None if first.x is None else _open(s, n_existing, _pick(first.x, n_cand, new))
        return answer, float(bound), first.status
    if first.x is None:
        return None, -first.bound, first.status
    theta = float(first.x[i_theta])
    bound = -first.bound
    # among the answers keeping theta, the most weight covered
    lb2 = lb.copy()
    lb2[i_theta] = max(theta - 1e-9 * max(1.0, theta), 0.0)
    obj2 = np.zeros(n_var)
    obj2[i_big] = -1.0
    second = _run(obj2, integrality, lb2, ub, rows_all, clock)
    _note(stats, second)
    answer = _open(s, n_existing, _pick(first.x, n_cand, new))
    if second.x is not None:
        better = _open(s, n_existing, _pick(second.x, n_cand, new))
        if _backup_value(reach, w, better)[0] >= _backup_value(reach, w, answer)[0] - 1e-9 * max(1.0, theta):
            answer = better
    return answer, bound, first.status


# ---------------------------------------------------------------------- p-median
def _solve_median(cost: np.ndarray, w: np.ndarray, n_existing: int, new: int, limit: float, clock: _Clock, stats: dict):
    """p-median with the existing sites open: (open mask or None, lower bound, status).

    ``cost`` is dense (D × S), ``inf`` = no route or beyond ``limit`` (then at least ``limit``).
    Status 5: the relaxation could not be tightened because the searches stopped at ``limit``.
    """
    d, s = cost.shape
    n_cand = s - n_existing
    cand = cost[:, n_existing:]
    e = cost[:, :n_existing].min(axis=1) if n_existing else np.full(d, np.inf)
    finite = np.isfinite(cand)
    order = np.argsort(cand, axis=1, kind="stable")  # inf last
    sorted_cost = np.take_along_axis(cand, order, axis=1)
    n_less = (sorted_cost < e[:, None]).sum(axis=1)  # candidates cheaper than the nearest existing haven
    live = np.flatnonzero((np.isfinite(e) | finite.any(axis=1)) & (w > 0))
    # defenders who could be left with no haven at all: no existing one in reach, few candidates
    n_reach = finite[live].sum(axis=1)
    risky = live[~np.isfinite(e[live]) & ~np.isfinite(limit) & (n_reach <= n_cand - new)]
    max_unserved = _max_unserved(finite[risky], w[risky], new, clock, stats) if len(risky) else 0.0
    k = np.minimum(n_less[live], max(_MIN_LIST, math.ceil(_LIST_FACTOR * n_cand / max(new + n_existing, 1))))
    rounds = 0
    while True:
        rounds += 1
        stats["rounds"] = rounds
        stats["listed_pairs"] = int(k.sum())
        res, fallback, exact = _median_model(
            cost, sorted_cost, order, e, w, live, k, n_less, risky, max_unserved, n_existing, new, limit, clock
        )
        _note(stats, res)
        if res.x is None:
            return None, res.bound, res.status
        open_ = _open(s, n_existing, _pick(res.x, n_cand, new))
        true_cost = np.where(open_[None, :], cost, np.inf).min(axis=1)[live]
        listed = _listed_best(sorted_cost[live], order[live], k, open_[n_existing:])
        at_fallback = ~exact & (listed > fallback)
        short = at_fallback & (true_cost > fallback * (1 + 1e-12) + 1e-9)
        if not short.any() or res.status != 0:
            return open_, res.bound, res.status
        grow = np.flatnonzero(short & (k < n_less[live]))
        if len(grow) == 0:
            return open_, res.bound, 5
        k[grow] = np.minimum(np.maximum(2 * k[grow], 1), n_less[live][grow])


def _max_unserved(reachable: np.ndarray, w: np.ndarray, new: int, clock: _Clock, stats: dict) -> float:
    """The least weight that must stay unserved: defenders reaching only a few candidates (and no existing
    haven) may all miss out, and serving the most of them first is a maximal covering by reachability."""
    inc = sparse.csr_matrix(reachable.astype(np.float64))
    inc.eliminate_zeros()
    inc.sort_indices()
    group, rep = _group_rows(inc)
    wg = np.bincount(group, weights=w, minlength=len(rep))
    a = inc[rep].tocsr()
    res = _mclp(a, wg, new, clock)
    _note(stats, res)
    if res.x is None:
        raise InfeasibleError("the time limit ran out before any siting was found; raise --time-limit")
    y = _pick(res.x, a.shape[1], new)
    served = float(wg[np.asarray(a[:, y].sum(axis=1)).ravel() > 0].sum())
    return max(float(w.sum()) - served, 0.0)


def _listed_best(sorted_cost, order, k, open_cand) -> np.ndarray:
    """Per defender, the cheapest open candidate among its first k listed (inf: none)."""
    d, c = sorted_cost.shape
    pos = np.arange(c)[None, :] < k[:, None]
    is_open = open_cand[order]
    vals = np.where(pos & is_open, sorted_cost, np.inf)
    return vals.min(axis=1) if c else np.full(d, np.inf)


def _median_model(cost, sorted_cost, order, e, w, live, k, n_less, risky, max_unserved, n_existing, new, limit, clock):
    """One restricted p-median (see the module docstring); returns (result, fallback value, fallback exact)."""
    s = cost.shape[1]
    n_cand = s - n_existing
    nl = len(live)
    kk = k
    # listed pairs: live defender r, its first k[r] candidates
    r_idx = np.repeat(np.arange(nl), kk)
    pos = ragged_index(np.zeros(nl, np.int64), kk)
    cand_col = order[live[r_idx], pos]
    pair_cost = sorted_cost[live[r_idx], pos]
    # fallback: the nearest existing haven when the list holds every cheaper candidate; else the next candidate
    # (a lower bound); a defender with neither may stay unserved (risky) or sits at the search limit
    complete = kk >= n_less[live]
    e_live = e[live]
    nxt = sorted_cost[live, np.minimum(kk, n_cand - 1)] if n_cand else np.full(nl, np.inf)
    fallback_value = np.where(complete, np.where(np.isfinite(e_live), e_live, limit), nxt)
    exact = complete & np.isfinite(e_live)
    has_fallback = np.isfinite(fallback_value)
    is_risky = np.isin(live, risky)
    can_skip = is_risky & complete & ~np.isfinite(e_live)
    n_pairs = len(r_idx)
    f_rows = np.flatnonzero(has_fallback)
    u_rows = np.flatnonzero(can_skip)
    # columns: y (n_cand) | x (pairs) | f | u
    ix, i_f, i_u = n_cand, n_cand + n_pairs, n_cand + n_pairs + len(f_rows)
    n_var = i_u + len(u_rows)
    wl = w[live]
    obj = np.zeros(n_var)
    obj[ix:i_f] = wl[r_idx] * pair_cost
    obj[i_f:i_u] = wl[f_rows] * fallback_value[f_rows]
    # assignment: sum_j x_rj + f_r + u_r = 1
    assign = sparse.csr_matrix(
        (
            np.ones(n_pairs + len(f_rows) + len(u_rows)),
            (
                np.concatenate([r_idx, f_rows, u_rows]),
                np.concatenate([ix + np.arange(n_pairs), i_f + np.arange(len(f_rows)), i_u + np.arange(len(u_rows))]),
            ),
        ),
        shape=(nl, n_var),
    )
    # opening: x_rj - y_j <= 0
    opening = sparse.csr_matrix(
        (
            np.concatenate([np.ones(n_pairs), -np.ones(n_pairs)]),
            (np.tile(np.arange(n_pairs), 2), np.concatenate([ix + np.arange(n_pairs), cand_col])),
        ),
        shape=(n_pairs, n_var),
    )
    card = sparse.csr_matrix((np.ones(n_cand), (np.zeros(n_cand, np.int64), np.arange(n_cand))), shape=(1, n_var))
    rows = [_rows(assign, 1.0, 1.0), _rows(opening, -np.inf, 0.0), _rows(card, new, new)]
    if len(u_rows):
        unserved = sparse.csr_matrix(
            (wl[u_rows], (np.zeros(len(u_rows), np.int64), i_u + np.arange(len(u_rows)))), shape=(1, n_var)
        )
        rows.append(_rows(unserved, -np.inf, max_unserved + 1e-9 * max(1.0, max_unserved)))
    # an unlisted, unfallbacked, non-skippable defender cannot happen: its list holds all its candidates
    integrality = np.concatenate([np.ones(n_cand), np.zeros(n_var - n_cand)])
    res = _run(obj, integrality, np.zeros(n_var), np.ones(n_var), rows, clock)
    return res, fallback_value, exact


# ---------------------------------------------------------------------- order of opening
def _order(
    objective: str, reach: _Reach | None, cost: np.ndarray | None, w: np.ndarray, open_: np.ndarray, n_existing: int
):
    """The chosen sites in the order to open them: greedy by marginal gain within the chosen set.

    Returns (sites, gain of each, defenders newly reached by each); see :class:`SiteSolution`.
    """
    pool = list(np.flatnonzero(open_[n_existing:]) + n_existing)
    current = np.zeros(len(open_), dtype=bool)
    current[:n_existing] = True
    picked, gains, newly = [], [], []
    if objective == "time":
        best = np.where(current[None, :], cost, np.inf).min(axis=1) if n_existing else np.full(len(w), np.inf)
    while pool:
        rem = np.asarray(pool, dtype=np.int64)
        if objective == "time":
            c = cost[:, rem]
            had = np.isfinite(best)
            first = ~had[:, None] & np.isfinite(c)
            reached_w = w @ first
            with np.errstate(invalid="ignore"):
                saved = w @ np.where(had[:, None], best[:, None] - np.minimum(best[:, None], c), 0.0)
            first_cost = w @ np.where(first, c, 0.0)
            k = int(np.lexsort((np.arange(len(rem)), first_cost, -saved, -reached_w))[0])
            gain, reached = float(saved[k]), int(first[:, k].sum())
            best = np.minimum(best, c[:, k])
        else:
            _, count = _covered_weight(reach, w, current)
            uncovered = count == 0
            cols = reach.incidence[:, rem]
            cover_gain = cols.T @ (w * uncovered)
            reached_all = cols.T @ uncovered.astype(np.float64)
            if objective == "backup":
                before = _backup_value(reach, w, current)[0]
                theta = np.array([_backup_value(reach, w, _with(current, j))[0] for j in rem])
                k = int(np.lexsort((np.arange(len(rem)), -cover_gain, -theta))[0])
                gain = float(theta[k] - before)
            else:
                k = int(np.lexsort((np.arange(len(rem)), -cover_gain))[0])
                gain = float(cover_gain[k])
            reached = round(reached_all[k])
        current[rem[k]] = True
        picked.append(int(rem[k]))
        gains.append(gain)
        newly.append(reached)
        pool.pop(k)
    return np.asarray(picked, dtype=np.int64), np.asarray(gains, dtype=np.float64), np.asarray(newly, dtype=np.int64)


def _with(open_: np.ndarray, j: int) -> np.ndarray:
    out = open_.copy()
    out[j] = True
    return out


# ---------------------------------------------------------------------- public matrix-level entry
def solve_sites(
    matrix: np.ndarray | sparse.spmatrix,
    weights: np.ndarray | None = None,
    *,
    new: int,
    objective: str = "coverage",
    threshold: float | None = None,
    n_existing: int = 0,
    limit: float = np.inf,
    time_limit_s: float | None = None,
) -> SiteSolution:
    """Site ``new`` havens on a given travel matrix, exactly (HiGHS).

    Parameters
    ----------
    matrix
        (D, S) travel values from every defender to every site: existing havens in the first
        ``n_existing`` columns, then the candidates. Dense (``inf`` = no route) or sparse
        (stored entries are the routes). Seconds for the covering objectives; any cost for
        ``time``.
    weights
        (D,) defender weights >= 0 (default 1).
    new
        Candidates to open (``cover-all``: at most).
    objective
        One of :data:`OBJECTIVES`.
    threshold
        Covering band in matrix units (``coverage``, ``backup``, ``cover-all``).
    n_existing
        Existing havens (always open).
    limit
        ``time`` only: values beyond it were not searched (``inf`` in ``matrix`` there means
        "at least ``limit``").
    time_limit_s
        Stop the solver after this long and return the best answer found, with its gap.

    Returns
    -------
    SiteSolution
    """
    if objective not in OBJECTIVES:
        raise InputError(f"objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    d, s = matrix.shape
    n_cand = s - n_existing
    if not 1 <= new <= n_cand:
        raise InputError(f"new = {new}: give between 1 and the {n_cand} candidates")
    w = np.ones(d) if weights is None else np.asarray(weights, dtype=np.float64)
    start = time.perf_counter()
    answer = _solve(matrix, w, new, objective, threshold, n_existing, limit, _Clock(time_limit_s))
    if answer.optimal and not _agrees(answer.value, answer.stats["claimed"]):
        # the solver's optimum and the answer recomputed from the matrix disagree: a presolve error
        answer = _solve(matrix, w, new, objective, threshold, n_existing, limit, _Clock(time_limit_s, presolve=False))
        answer.stats["presolve"] = False
    answer.stats["seconds"] = round(time.perf_counter() - start, 3)
    answer.stats.pop("claimed")
    return answer


def _agrees(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _solve(matrix, w, new, objective, threshold, n_existing, limit, clock: _Clock) -> SiteSolution:
    stats: dict[str, Any] = {}
    all_covered = True
    reach = cost = None
    if objective == "time":
        if sparse.issparse(matrix):  # stored entries are the routes; implicit zeros are none
            coo = sparse.coo_matrix(matrix)
            cost = np.full(matrix.shape, np.inf)
            cost[coo.row, coo.col] = coo.data
        else:
            cost = np.asarray(matrix, dtype=np.float64)
        open_, bound, status = _solve_median(cost, w, n_existing, new, float(limit), clock, stats)
    else:
        if threshold is None:
            raise InputError(f"objective {objective!r} needs the covering threshold")
        reach = _reach(matrix, float(threshold))
        if objective == "coverage":
            open_, bound, status = _solve_covering(reach, w, n_existing, new, clock, stats)
        elif objective == "backup":
            open_, bound, status = _solve_backup(reach, w, n_existing, new, clock, stats)
        else:
            open_, bound, status, all_covered = _solve_cover_all(reach, w, n_existing, new, clock, stats)
    greedy = open_ is None
    if greedy:  # the time limit ran out before the solver found an answer: the greedy one, with the bound
        open_ = _greedy_open(objective, reach, cost, w, n_existing, new)
    value, assigned, assigned_value = _evaluate(objective, reach, cost, w, open_, n_existing)
    chosen, gains, newly = _order(objective, reach, cost, w, open_, n_existing)
    optimal = status == 0 and not greedy
    stats["claimed"] = float(bound)
    return SiteSolution(
        objective=objective,
        open=open_,
        chosen=chosen,
        gains=gains,
        newly_reached=newly,
        value=value,
        bound=value if optimal else float(bound),
        optimal=optimal,
        status="optimal" if optimal else _STATUS.get(status, "time limit") if not greedy else _STATUS["greedy"],
        assigned=assigned,
        assigned_value=assigned_value,
        all_covered=all_covered,
        stats=stats,
    )


def _evaluate(objective, reach, cost, w, open_, n_existing) -> tuple[float, np.ndarray, np.ndarray]:
    """The objective value of an answer, recomputed from the matrix, and every defender's site."""
    if objective == "time":
        masked = np.where(open_[None, :], cost, np.inf)
        site = np.argmin(masked, axis=1)
        value = masked[np.arange(len(w)), site]
        site = np.where(np.isfinite(value), site, -1)
        return float((w * np.where(np.isfinite(value), value, 0.0)).sum()), site, value
    site, value = _nearest_open(reach, open_)
    if objective == "coverage":
        total = _covered_weight(reach, w, open_)[0]
    elif objective == "backup":
        total = _backup_value(reach, w, open_)[0]
    else:
        total = float(open_[n_existing:].sum())
    return total, site, value


def _greedy_open(objective, reach, cost, w, n_existing, new) -> np.ndarray:
    """A greedy answer, only when the solver found none within the time limit (backup: by coverage)."""
    s = (cost if cost is not None else reach.incidence).shape[1]
    everything = np.ones(s, dtype=bool)
    chosen, _, _ = _order("time" if objective == "time" else "coverage", reach, cost, w, everything, n_existing)
    return _open(s, n_existing, chosen[:new] - n_existing)


# ====================================================================== on a road network
@dataclass(eq=False)
class SitingResult:
    """Where to open the next havens (see :func:`site_havens`).

    Attributes
    ----------
    params : SitingParams
    sites : pandas.DataFrame
        ``sites.csv``: one row per chosen candidate, in the order to open them: ``site_id``,
        ``name``, ``order`` (1 = first), ``gain`` (marginal gain when opened in that order:
        defender weight newly within the band for ``coverage``/``cover-all``; the increase of
        the weight still covered after the worst single loss for ``backup``; weighted travel
        cost saved for defenders who already had a haven for ``time``), ``defenders_served``
        and ``weight_served`` (defenders, and their weight, whose nearest open haven it is —
        within the band for the covering objectives), ``newly_reached`` (defenders for whom
        it is the first open haven in reach: within the band, or by any road for ``time``).
    candidates : geopandas.GeoDataFrame
        ``siting.geojson`` (EPSG:4326, every candidate on the network): ``site_id``, ``name``,
        ``kind``, ``chosen`` (bool), ``order`` (nullable int), ``gain``, ``defenders_served``,
        ``weight_within`` (defender weight within the band of this site alone),
        ``snap_distance_m``; the candidate's point.
    summary : dict
        ``siting.json`` (see :func:`site_havens`).
    havens : geopandas.GeoDataFrame
        The havens after siting (EPSG:4326): the existing ones, then the chosen candidates:
        ``id``, ``name``, ``kind``, ``status`` ('existing' / 'new'), ``order``.
    coverage_before, coverage_after : havenmap.coverage.Coverage or None
        Coverage per band with the existing havens only (None without any) and after siting.
    solution : SiteSolution
        The solver's answer on the travel matrix.
    """

    params: SitingParams
    sites: pd.DataFrame
    candidates: gpd.GeoDataFrame
    summary: dict[str, Any]
    havens: gpd.GeoDataFrame
    coverage_before: Coverage | None
    coverage_after: Coverage
    solution: SiteSolution
    existing: gpd.GeoDataFrame | None = field(default=None, repr=False)
    cost: str = field(default="time", repr=False)
    edge_weights: np.ndarray | None = field(default=None, repr=False)
    max_snap_m: float = field(default=DEFAULT_MAX_SNAP_M, repr=False)


def site_havens(
    net: RoadNetwork,
    defenders: gpd.GeoDataFrame,
    candidates: gpd.GeoDataFrame,
    *,
    existing: gpd.GeoDataFrame | None = None,
    new: int = 3,
    minutes: float = 10.0,
    objective: str = "coverage",
    cost: str = "time",
    edge_weights: np.ndarray | None = None,
    time_limit_s: float | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    bands: tuple[float, ...] | None = None,
    off_network_candidates: str = "error",
) -> SitingResult:
    """Choose where to open ``new`` safe havens, exactly, on real roads.

    Parameters
    ----------
    net
        Road network.
    defenders
        Point layer with ``id`` and optionally ``weight`` (or ``priority``), >= 0, default 1.
    candidates
        Possible sites: points with ``id``, optionally ``name`` and ``kind``.
    existing
        Havens already open (they stay open): points with ``id``, optionally ``name``, ``kind``.
    new
        How many to open (``cover-all``: at most this many).
    minutes
        The band: a defender is covered within this many minutes of travel time.
    objective
        'coverage', 'time', 'backup' or 'cover-all' (see :mod:`havenmap.siting`).
    cost, edge_weights
        Cost model choosing the routes ('time' or 'length', or per-edge weights with ``inf``
        = closed, from :mod:`havenmap.costs`); the band is physical travel time.
    time_limit_s
        Solver time limit, seconds: the best answer found, with its gap (default: none).
    max_snap_m
        Points farther than this from any road (metres) are off the network.
    bands
        Bands (minutes) reported before/after (default 5, 10, 15 and ``minutes``).
    off_network_candidates
        'error' (default): a candidate off the network is an error; 'drop': left out with a
        warning (candidates taken from OSM features).

    Returns
    -------
    SitingResult
        Its ``summary`` (``siting.json``): ``objective``, ``value`` (see ``value_unit``),
        ``optimal``, ``gap``, ``bound``, ``status``, ``chosen`` (ids in opening order),
        ``minutes``, ``new``, ``cost``, defender counts and weights, ``coverable_weight``
        (within the band of some site), ``all_covered`` (``cover-all``), ``unreached``
        (defenders with no open haven by road after siting: count, weight, ids — not in any
        average), ``mean_time_s`` (weighted mean travel time of the others to their
        nearest open haven), ``coverage`` (``before``/``after``: per band ``covered``,
        ``covered_weight``, ``share``, ``weight_share``), ``worst_loss`` (``before``/``after``:
        :func:`havenmap.coverage.worst_loss` plus the haven whose loss costs most weight within
        the band and the weight still covered then), ``timing`` (seconds) and ``model`` (size
        and solver figures).

    Raises
    ------
    havenmap.errors.InputError
        Bad weights, repeated or clashing ids, ``new`` above the number of candidates,
        candidates off the network, no candidate within reach of any defender.
    """
    params = SitingParams(objective=objective, new=new, minutes=minutes, time_limit_s=time_limit_s, bands=bands)
    if cost not in ("time", "length"):
        raise InputError(f"cost {cost!r} (--cost): use 'time' or 'length'")
    if off_network_candidates not in ("error", "drop"):
        raise ValueError("off_network_candidates must be 'error' or 'drop'")
    _check_defenders(defenders)
    weights = defender_weights(defenders)
    if existing is not None and len(existing) == 0:
        existing = None
    check_sites(candidates, existing, params.new)
    started = time.perf_counter()
    d = snap_layer(net, defenders, "defender", max_snap_m)
    c = _snap_candidates(net, candidates, max_snap_m, off_network_candidates)
    if len(c) < params.new:
        raise InputError(
            f"{candidates.attrs.get('source', 'candidates')}: only {len(c)} candidate(s) are on the road network, "
            f"fewer than --new {params.new}; give --new {len(c)} or fewer"
        )
    if "capacity" in candidates.columns:
        warnings.warn(
            f"{candidates.attrs.get('source', 'candidates')}: column 'capacity' is copied to the outputs but not "
            "modelled: siting assumes a haven takes in every defender who reaches it",
            stacklevel=2,
        )
    e = snap_layer(net, existing, "haven", max_snap_m) if existing is not None else None
    n_existing = 0 if e is None else len(e)
    graph = _graph.cost_graph(net, cost, edge_weights)
    d_places = _graph.Places.from_snapped(net, d)
    c_places = _graph.Places.from_snapped(net, c)
    sites = c_places if e is None else _graph.Places.concat(_graph.Places.from_snapped(net, e), c_places)
    band_s = 60.0 * params.minutes
    if params.objective == "time":
        limit = _median_limit(graph, d_places, None if e is None else _graph.Places.from_snapped(net, e))
    else:  # every route within the band costs at most this much
        limit = band_s * graph.max_cost_per_second() * (1 + 1e-9) + 1e-9
    t0 = time.perf_counter()
    matrix = _graph.travel_matrix(graph, d_places, sites, limit=limit)
    matrix_s = time.perf_counter() - t0
    values = matrix.cost if params.objective == "time" else matrix.time_s
    _check_reach(values[:, n_existing:], band_s, params, candidates)
    t0 = time.perf_counter()
    sol = solve_sites(
        values, weights, new=params.new, objective=params.objective, threshold=band_s, n_existing=n_existing,
        limit=limit if params.objective == "time" else np.inf, time_limit_s=params.time_limit_s,
    )  # fmt: skip
    solve_s = time.perf_counter() - t0
    return _result(
        net, defenders, d_places.on, weights, c, existing, e, params, sol, matrix, cost, edge_weights, max_snap_m,
        {"matrix_s": round(matrix_s, 3), "solve_s": round(solve_s, 3)}, started,
    )  # fmt: skip


def _median_limit(graph: _graph.CostGraph, defenders: _graph.Places, existing: _graph.Places | None) -> float:
    """Search bound for the p-median: no candidate costlier than a defender's nearest existing haven can
    serve it, so when every defender on the network reaches an existing haven the farthest such cost bounds
    every search (else: unbounded)."""
    if existing is None or not existing.on.any():
        return np.inf
    best = _graph.nearest(graph, existing, 1).at(defenders).cost[:, 0]
    on = defenders.on
    if not on.any() or not np.isfinite(best[on]).all():
        return np.inf
    return float(best[on].max()) * (1 + 1e-9) + 1e-9


def _snap_candidates(net: RoadNetwork, candidates: gpd.GeoDataFrame, max_snap_m: float, off_network: str):
    snapped = snap_points(net, candidates, max_snap_m)
    off = ~snapped["on_network"].to_numpy(dtype=bool)
    if not off.any():
        return snapped
    source = candidates.attrs.get("source", "candidates")
    ids = snapped["id"].astype(str).to_numpy()[off]
    dist = snapped["snap_distance_m"].to_numpy()[off]
    if off_network == "error":
        more = f" ({len(ids) - 1} more like it)" if len(ids) > 1 else ""
        raise InputError(
            f"{source}: candidate {ids[0]!r} is {dist[0]:,.0f} m from the nearest road (limit {max_snap_m:,.0f} m)"
            f"{more}; move it onto the network, drop it, or raise --max-snap-m"
        )
    listed = ", ".join(f"{i} ({m:,.0f} m)" for i, m in zip(ids[:10], dist[:10], strict=True))
    more = f" and {len(ids) - 10:,} more" if len(ids) > 10 else ""
    warnings.warn(f"{len(ids)} candidate(s) too far from any road, left out: {listed}{more}", stacklevel=3)
    return snapped.loc[~off].reset_index(drop=True)


def _check_reach(candidate_values: np.ndarray, band_s: float, params: SitingParams, candidates) -> None:
    source = candidates.attrs.get("source", "candidates")
    if params.objective == "time":
        if not np.isfinite(candidate_values).any():
            raise InputError(
                f"{source}: no candidate site can be reached by road from any defender (or sooner than an existing "
                "haven); check the candidates are in the defenders' area and connected to their roads"
            )
    elif not (candidate_values <= band_s).any():
        raise InputError(
            f"{source}: no candidate site is within {params.minutes:g} min of any defender by road; "
            "add candidates nearer the defenders, or raise --minutes"
        )


def _result(
    net, defenders, d_on, weights, c, existing, e, params, sol, matrix, cost, edge_weights, max_snap_m, timing, started
):
    n_existing = 0 if e is None else len(e)
    cand_ids = c["id"].astype(str).to_numpy(dtype=object)
    names = (c["name"] if "name" in c.columns else c["id"]).astype(str).to_numpy(dtype=object)
    kinds = (c["kind"] if "kind" in c.columns else pd.Series(["candidate"] * len(c))).astype(str).to_numpy(dtype=object)
    chosen = sol.chosen - n_existing
    assigned = sol.assigned
    served = np.bincount(np.maximum(assigned, 0), weights=(assigned >= 0).astype(float), minlength=len(sol.open))
    served_w = np.bincount(
        np.maximum(assigned, 0), weights=np.where(assigned >= 0, weights, 0.0), minlength=len(sol.open)
    )
    sites = pd.DataFrame(
        {
            "site_id": cand_ids[chosen],
            "name": names[chosen],
            "order": np.arange(1, len(chosen) + 1),
            "gain": np.round(sol.gains, 6),
            "defenders_served": served[sol.chosen].astype(np.int64),
            "weight_served": np.round(served_w[sol.chosen], 6),
            "newly_reached": sol.newly_reached,
        },
        columns=SITES_COLUMNS,
    )
    if "capacity" in c.columns:  # carried, not modelled (see site_havens)
        sites["capacity"] = c["capacity"].to_numpy()[chosen]
    band_s = 60.0 * params.minutes
    within = np.where(np.isfinite(matrix.time_s[:, n_existing:]) & (matrix.time_s[:, n_existing:] <= band_s), 1.0, 0.0)
    order = pd.array([pd.NA] * len(c), dtype="Int64")
    gain = np.full(len(c), np.nan)
    order[chosen] = np.arange(1, len(chosen) + 1)
    gain[chosen] = sol.gains
    table = gpd.GeoDataFrame(
        {
            "site_id": cand_ids,
            "name": names,
            "kind": kinds,
            "chosen": np.isin(np.arange(len(c)), chosen),
            "order": order,
            "gain": gain,
            "defenders_served": served[n_existing:].astype(np.int64),
            "weight_within": weights @ within,
            "snap_distance_m": c["snap_distance_m"].to_numpy(dtype=np.float64).round(1),
            **({"capacity": c["capacity"].to_numpy()} if "capacity" in c.columns else {}),
        },
        geometry=c.geometry.to_numpy(),
        crs=c.crs,
    ).to_crs("EPSG:4326")
    havens = _havens_after(existing, table.iloc[chosen].copy(), np.arange(1, len(chosen) + 1))
    with warnings.catch_warnings():  # the defenders' off-network warning was given once already
        warnings.filterwarnings("ignore", ".*too far from any road")
        bands = params.report_bands
        before = None
        if existing is not None:
            before = coverage_of(
                assign_havens(net, defenders, existing, k=2, cost=cost, edge_weights=edge_weights,
                              max_snap_m=max_snap_m, routes=False),
                bands,
            )  # fmt: skip
        after = coverage_of(
            assign_havens(net, defenders, havens, k=2, cost=cost, edge_weights=edge_weights, max_snap_m=max_snap_m,
                          routes=False),
            bands,
        )  # fmt: skip
    summary = _summary(
        params, sol, defenders, d_on, weights, matrix, n_existing, cand_ids, before, after, cost, edge_weights
    )
    summary["timing"] = {**timing, "total_s": round(time.perf_counter() - started, 3)}
    return SitingResult(
        params=params, sites=sites, candidates=table, summary=summary, havens=havens, coverage_before=before,
        coverage_after=after, solution=sol, existing=existing, cost=cost, edge_weights=edge_weights,
        max_snap_m=float(max_snap_m),
    )  # fmt: skip


def _havens_after(existing: gpd.GeoDataFrame | None, chosen: gpd.GeoDataFrame, order: np.ndarray) -> gpd.GeoDataFrame:
    """Existing havens (status 'existing') then the chosen candidates (status 'new', with their order)."""
    parts = []
    if existing is not None:
        ex = existing.to_crs("EPSG:4326")
        parts.append(
            gpd.GeoDataFrame(
                {
                    "id": ex["id"].astype(str).to_numpy(),
                    "name": (ex["name"] if "name" in ex.columns else ex["id"]).astype(str).to_numpy(),
                    "kind": (ex["kind"] if "kind" in ex.columns else pd.Series(["haven"] * len(ex)))
                    .astype(str)
                    .to_numpy(),
                    "status": "existing",
                    "order": pd.array([pd.NA] * len(ex), dtype="Int64"),
                },
                geometry=ex.geometry.to_numpy(),
                crs="EPSG:4326",
            )
        )
    parts.append(
        gpd.GeoDataFrame(
            {
                "id": chosen["site_id"].to_numpy(),
                "name": chosen["name"].to_numpy(),
                "kind": chosen["kind"].to_numpy(),
                "status": "new",
                "order": pd.array(order, dtype="Int64"),
            },
            geometry=chosen.geometry.to_numpy(),
            crs="EPSG:4326",
        )
    )
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs="EPSG:4326")


def _band_rows(cov: Coverage | None, weights: np.ndarray, bands: tuple[float, ...]) -> dict[str, dict[str, float]]:
    total_w = float(weights.sum())
    n = len(weights)
    out = {}
    for m in bands:
        covered = np.zeros(n, dtype=bool) if cov is None else cov.covered(m)
        cw = float(weights[covered].sum())
        out[f"{m:g}"] = {
            "covered": int(covered.sum()),
            "covered_weight": round(cw, 6),
            "share": round(float(covered.sum()) / max(n, 1), 4),
            "weight_share": round(cw / total_w, 4) if total_w > 0 else 0.0,
        }
    return out


def _weighted_loss(cov: Coverage | None, weights: np.ndarray, minutes: float) -> dict[str, Any]:
    """The haven whose loss leaves least defender weight within ``minutes``, from the routing core's two nearest
    havens of every defender (as :func:`havenmap.coverage.n_minus_1`, weighted)."""
    if cov is None or len(cov.havens) == 0:
        return {"haven": None, "weight_before_loss": 0.0, "weight_after_loss": 0.0}
    limit = 60.0 * minutes
    best, t1, t2 = cov.best, cov.best_time, cov.second_time
    mine = best >= 0
    n_h = len(cov.havens)
    covered = float(weights[t1 <= limit].sum())
    lost = np.bincount(
        best[mine & (t1 <= limit) & (t2 > limit)], weights=weights[mine & (t1 <= limit) & (t2 > limit)], minlength=n_h
    )
    gained = np.bincount(
        best[mine & (t1 > limit) & (t2 <= limit)], weights=weights[mine & (t1 > limit) & (t2 <= limit)], minlength=n_h
    )
    after = covered - lost + gained
    worst = int(np.argmin(after))
    return {
        "haven": str(cov.havens["haven_id"].iat[worst]),
        "weight_before_loss": round(covered, 6),
        "weight_after_loss": round(float(after[worst]), 6),
    }


def _summary(
    params, sol, defenders, on_network, weights, matrix, n_existing, cand_ids, before, after, cost, edge_weights
):
    ids = defenders["id"].astype(str).to_numpy()
    band_s = 60.0 * params.minutes
    reach_any = (np.where(np.isfinite(matrix.time_s), matrix.time_s, np.inf) <= band_s).any(axis=1)
    if params.objective == "time":  # the time of the route to the haven of least cost
        pick = np.maximum(sol.assigned, 0)
        t = np.where(sol.assigned >= 0, matrix.time_s[np.arange(len(ids)), pick], np.inf)
    else:
        t = after.best_time
    reached = np.isfinite(t)
    if params.objective != "time":
        reached = after.best >= 0
    unreached = ~reached
    mean_time = float(np.average(t[reached], weights=weights[reached])) if weights[reached].sum() > 0 else None
    summary: dict[str, Any] = {
        "objective": params.objective,
        "value": round(float(sol.value), 6),
        "value_unit": _VALUE_UNITS[params.objective]
        + (f" ({_cost_unit(cost, edge_weights)})" if params.objective == "time" else ""),
        "optimal": bool(sol.optimal),
        "gap": round(float(sol.gap), 9),
        "bound": round(float(sol.bound), 6),
        "status": sol.status,
        "chosen": [str(cand_ids[j - n_existing]) for j in sol.chosen],
        "gain_unit": _GAIN_UNITS[params.objective],
        "new": params.new,
        "minutes": params.minutes,
        "cost": "custom" if edge_weights is not None else cost,
        "time_limit_s": params.time_limit_s,
        "defenders": len(ids),
        "defenders_on_network": int(on_network.sum()),
        "weight_total": round(float(weights.sum()), 6),
        "coverable_weight": round(float(weights[reach_any].sum()), 6),
        "existing_havens": n_existing,
        "candidates": len(cand_ids),
        "unreached": {
            "defenders": int(unreached.sum()),
            "weight": round(float(weights[unreached].sum()), 6),
            "ids": ids[unreached].tolist(),
        },
        "mean_time_s": None if mean_time is None else round(mean_time, 1),
        "coverage": {
            "before": _band_rows(before, weights, params.report_bands),
            "after": _band_rows(after, weights, params.report_bands),
        },
        "worst_loss": {
            "before": {
                **(worst_loss(before) if before is not None else {}),
                **_weighted_loss(before, weights, params.minutes),
            },
            "after": {**worst_loss(after), **_weighted_loss(after, weights, params.minutes)},
        },
        "model": sol.stats,
    }
    if params.objective == "cover-all":
        summary["all_covered"] = bool(sol.all_covered)
    return summary


def _cost_unit(cost: str, edge_weights) -> str:
    if edge_weights is not None:
        return "cost units × weight"
    return "seconds × weight" if cost == "time" else "metres × weight"


#: wall-clock entries of the model statistics: kept out of ``siting.json``, given to the manifest
_MODEL_TIMES = ("seconds", "solver_s")


def solve_times(result: SitingResult) -> dict[str, Any]:
    """The wall-clock times of a siting run (``timing`` and the solver's seconds): for a run's manifest."""
    model = result.summary.get("model", {})
    return {**result.summary.get("timing", {}), **{k: model[k] for k in _MODEL_TIMES if k in model}}


def _without_timings(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without wall-clock times, so the same siting gives the same ``siting.json``."""
    out = {k: v for k, v in summary.items() if k != "timing"}
    if isinstance(out.get("model"), dict):
        out["model"] = {k: v for k, v in out["model"].items() if k not in _MODEL_TIMES}
    return out


def write_siting_outputs(
    result: SitingResult,
    out_dir: str | os.PathLike[str],
    *,
    net: RoadNetwork,
    defenders: gpd.GeoDataFrame,
    title: str = "havenmap — where to open the next havens",
    exact_defenders: bool = False,
    privacy: Any = None,
    buffer_m: float = 50.0,
) -> dict[str, Path]:
    """Write ``sites.csv``, ``siting.json`` (owner-only: it names unreached defenders), ``siting.geojson`` and
    ``siting_map.html`` (existing, chosen and rejected candidates, service areas before/after within the band,
    defenders' status after siting in k-anonymous cells unless ``exact_defenders``; ``privacy``: a
    :class:`havenmap.privacy.DefenderPrivacy` instead) into ``out_dir``."""
    from . import maps
    from .coverage import service_areas

    out = Path(out_dir)
    band = (result.params.minutes,)
    kw = {
        "cost": result.cost,
        "edge_weights": result.edge_weights,
        "max_snap_m": result.max_snap_m,
        "buffer_m": buffer_m,
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*too far from any road")
        areas_before = service_areas(net, result.existing, band, **kw) if result.existing is not None else None
        new_havens = result.havens.loc[result.havens["status"] == "new"]
        areas_new = service_areas(net, new_havens, band, **kw) if len(new_havens) else None
    parts = [a for a in (areas_before, areas_new) if a is not None]
    areas_after = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs="EPSG:4326") if parts else None
    m = maps.siting_map(
        roads=net,
        havens=result.havens,
        candidates=result.candidates,
        service_areas_before=areas_before,
        service_areas_after=areas_after,
        defenders=defenders,
        coverage=result.coverage_after.defenders,
        minutes=result.params.minutes,
        title=title,
        exact_defenders=exact_defenders,
        privacy=privacy,
    )
    paths = {
        "sites": _io.write_csv(out / "sites.csv", result.sites),
        "summary": _io.write_json(out / "siting.json", _without_timings(result.summary), private=True),
        "candidates": _io.write_geojson(out / "siting.geojson", result.candidates),
        "map": maps.save_map(m, out / "siting_map.html"),
    }
    return paths
