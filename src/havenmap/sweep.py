"""What-if sweeps: one scenario re-run over a grid of variations, one row of headline figures per variation.

A sweep file (``sweep.toml``) lists the axes to vary; the grid is their product. Every key
is optional, but at least one must be given::

    lose_haven = "each"                  # every haven lost in turn (or a list of haven ids)
    close_each = "checkpoints.geojson"   # every feature closed in turn, on top of the scenario's closures
    alpha = [0, 0.5, 1, 2]               # danger weights (the scenario needs a risk input)
    max_risk = [1.0, 2.5, "none"]        # risk caps; "none": no cap
    minutes = [[5, 10, 15], [10, 20]]    # time bands; a plain number is a single band
    base = true                          # also the scenario as given, as the first row (default)

    [siting]                             # any key of the scenario's [siting] section, as a list
    new = [1, 2, 3]
    objective = ["coverage", "backup"]

``each``-axes expand to one variation per item (per haven, per closure feature); list axes
to one per value. Paths are relative to the sweep file. Everything is checked, with one line
naming the file and the key, before the network is loaded.

Only what a variation changes is recomputed: the network is loaded once, the defenders and
havens are snapped once, and each distinct cost model (closure × alpha × max_risk) builds its
search graph once per worker process; a variation then costs one k-nearest search (two
multi-source Dijkstra passes), plus a siting solve when siting varies. Threat, alerts,
patrols, maps and the report do not depend on any axis and are not re-run. Variations are
independent tasks on :func:`havenmap._distributed.map_tasks` (the network sent to each worker
once); the rows are identical to a serial run.
"""

from __future__ import annotations

import itertools
import math
import os
import time
import tomllib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from . import _distributed, _graph, _io, costs, coverage, layers, manifest
from .errors import InputError
from .havens import assign_snapped
from .network import RoadNetwork, check_source, load_network
from .params import CoverageParams, shown
from .scenario import Scenario
from .snap import snap_layer

__all__ = ["AXES", "OUTPUT_FILES", "SweepPlan", "SweepResult", "Variation", "load_sweep", "run_sweep"]

#: Keys of a sweep file (``[siting]`` is a table).
AXES = ("lose_haven", "close_each", "alpha", "max_risk", "minutes", "siting")
_KEYS = (*AXES, "base")
#: Files a sweep writes into its output folder (``variations/`` only with ``keep_outputs``).
OUTPUT_FILES = (
    "sweep.csv",
    "sweep.json",
    manifest.MANIFEST,
    *(f"variations/*/coverage/{name}" for name in coverage.OUTPUT_FILES),
    "variations/*/siting/sites.csv",
    "variations/*/siting/siting.json",
)


@dataclass(frozen=True)
class Variation:
    """One point of the grid: what differs from the scenario (None: as in the scenario).

    Attributes
    ----------
    id : str
        ``base`` or ``v0001``, ``v0002``, ... in grid order.
    lose_haven : str or None
        Id of the haven removed.
    close : int or None
        Row of the ``close_each`` file closed (0-based); ``close_label`` its id or ``row N``.
    alpha, max_risk : float or None
        The danger weight and risk cap (``max_risk`` ``inf`` = no cap).
    minutes : tuple of float or None
        The time bands.
    siting : dict or None
        The ``[siting]`` keys varied and their values.
    """

    id: str
    lose_haven: str | None = None
    close: int | None = None
    close_label: str | None = None
    alpha: float | None = None
    max_risk: float | None = None
    minutes: tuple[float, ...] | None = None
    siting: dict[str, Any] | None = None

    def values(self, axes: Sequence[str]) -> dict[str, Any]:
        """The varied values, by sweep key (``[siting]`` keys as ``siting_<key>``), for the varied ``axes``."""
        out: dict[str, Any] = {}
        for axis in axes:
            if axis == "close_each":
                out["close"] = self.close_label
            elif axis == "minutes":
                out["minutes"] = None if self.minutes is None else ";".join(f"{m:g}" for m in self.minutes)
            elif axis == "max_risk":
                out["max_risk"] = (
                    None if self.max_risk is None else ("none" if math.isinf(self.max_risk) else self.max_risk)
                )
            elif axis == "siting":
                continue
            else:
                out[axis] = getattr(self, axis)
        return out


@dataclass
class SweepPlan:
    """A checked sweep file and the inputs it needs, ready to run (see :func:`load_sweep`)."""

    source: Path
    scenario: Scenario
    axes: dict[str, list[Any]]
    base: bool
    havens: gpd.GeoDataFrame
    defenders: gpd.GeoDataFrame
    barriers: gpd.GeoDataFrame | None
    close_each: Path | None
    close_features: gpd.GeoDataFrame | None
    risk_table: pd.DataFrame | None
    candidates: gpd.GeoDataFrame | None
    siting_keys: tuple[str, ...] = ()

    def variations(self) -> list[Variation]:
        """Every variation, in grid order (``base`` first when asked for)."""
        out = [Variation("base")] if self.base else []
        names = [a for a in AXES if a in self.axes]
        for i, combo in enumerate(itertools.product(*(self.axes[a] for a in names)), start=1):
            values = dict(zip(names, combo, strict=True))
            close = values.pop("close_each", None)
            siting = values.pop("siting", None)
            out.append(
                Variation(
                    id=f"v{i:04d}",
                    close=None if close is None else close[0],
                    close_label=None if close is None else close[1],
                    siting=siting,
                    **values,
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """The sweep as given, JSON-ready."""
        axes: dict[str, Any] = {}
        for axis, values in self.axes.items():
            if axis == "close_each":
                axes[axis] = {"file": str(self.close_each), "features": [label for _, label in values]}
            elif axis == "max_risk":
                axes[axis] = ["none" if math.isinf(v) else v for v in values]
            elif axis == "minutes":
                axes[axis] = [list(v) for v in values]
            else:
                axes[axis] = list(values)
        return {"file": str(self.source), "axes": axes, "base": self.base}


# ---------------------------------------------------------------------- reading and checking
def load_sweep(path: str | os.PathLike[str], scenario: Scenario) -> SweepPlan:
    """Read and check a sweep file against its scenario, and read the inputs (not the network).

    Raises
    ------
    havenmap.errors.InputError
        One line naming the sweep file, the key and what to give: an unknown key, an empty or
        ill-typed list, a haven id not in the havens file, an axis the scenario cannot vary
        (``alpha`` without a risk input, ``[siting]`` without a ``[siting]`` section), or no
        axis at all.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: sweep file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None
    for key in raw:
        if key not in _KEYS:
            raise InputError(f"{path}: unknown key {key!r}; known keys: {', '.join(_KEYS)} (see the README)")
    if not any(a in raw for a in AXES):
        raise InputError(f'{path}: nothing to vary; give at least one of {", ".join(AXES)} (e.g. lose_haven = "each")')
    base = raw.get("base", True)
    if not isinstance(base, bool):
        raise InputError(f"{path}: base = {shown(base)}: give true (also run the scenario as given) or false")
    axes: dict[str, list[Any]] = {}
    if ("alpha" in raw or "max_risk" in raw) and scenario.risk is None:
        key = "alpha" if "alpha" in raw else "max_risk"
        raise InputError(
            f'{path}: {key} varies the danger-aware cost, but the scenario has no risk input; add risk = "FILE" '
            f"to {scenario.source}"
        )
    if "alpha" in raw:
        axes["alpha"] = [_value(path, "alpha", v) for v in _list(path, "alpha", raw["alpha"], "[0, 0.5, 1, 2]")]
    if "max_risk" in raw:
        values = _list(path, "max_risk", raw["max_risk"], '[1.0, 2.5, "none"]')
        axes["max_risk"] = [math.inf if _none(v) else _value(path, "max_risk", v) for v in values]
    if "minutes" in raw:
        values = _list(path, "minutes", raw["minutes"], "[[5, 10, 15], [10, 20, 30]]")
        axes["minutes"] = [_value(path, "minutes", v) for v in values]
    siting_keys: tuple[str, ...] = ()
    if "siting" in raw:
        axes["siting"], siting_keys = _siting_axis(path, raw["siting"], scenario)

    # the inputs, read and checked before the network loads
    havens = layers.read_havens(scenario.havens)
    defenders = layers.read_defenders(scenario.defenders)
    barriers = costs.read_barriers(scenario.closures) if scenario.closures else None
    risk_table = costs.read_risk_table(scenario.risk) if scenario.risk else None
    close_each = features = None
    if "lose_haven" in raw:
        axes["lose_haven"] = _lose_haven(path, raw["lose_haven"], havens)
    if "close_each" in raw:
        close_each, features = _close_each(path, raw["close_each"])
        axes["close_each"] = [(i, label) for i, label in enumerate(_labels(features))]
    candidates = None
    if scenario.siting is not None and "siting" in axes:
        candidates = _candidates(
            scenario, havens, max(s.get("new", scenario.siting["params"].new) for s in axes["siting"])
        )
    return SweepPlan(
        source=path,
        scenario=scenario,
        axes={a: axes[a] for a in AXES if a in axes},
        base=base,
        havens=havens,
        defenders=defenders,
        barriers=barriers,
        close_each=close_each,
        close_features=features,
        risk_table=risk_table,
        candidates=candidates,
        siting_keys=siting_keys,
    )


def _list(path: Path, key: str, value: Any, example: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{path}: {key} = {shown(value)}: give a list of values to try, e.g. {key} = {example}")
    return value


def _none(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "none"


def _value(path: Path, key: str, value: Any) -> Any:
    """One value of an axis, checked by the scenario parameter's own rule."""
    try:
        return CoverageParams.check_value(key, value, f"{path}: {key} item")
    except InputError as exc:
        raise InputError(str(exc)) from None


def _lose_haven(path: Path, value: Any, havens: gpd.GeoDataFrame) -> list[str]:
    ids = havens["id"].astype(str).tolist()
    if _each(value):
        if len(ids) < 2:
            raise InputError(f'{path}: lose_haven = "each" needs at least two havens; the havens file has {len(ids)}')
        return ids
    values = _list(path, "lose_haven", value, '"each" or ["H1", "H2"]')
    for v in values:
        if str(v) not in ids:
            raise InputError(
                f"{path}: lose_haven item {shown(v)}: no haven with this id in "
                f'{havens.attrs.get("source", "the havens")}; give haven ids from that file, or "each"'
            )
    return [str(v) for v in values]


def _each(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "each"


def _close_each(path: Path, value: Any) -> tuple[Path, gpd.GeoDataFrame]:
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"{path}: close_each = {shown(value)}: give a closures file (points or lines), "
            'e.g. close_each = "checkpoints.geojson"'
        )
    found = Path(os.path.abspath(path.parent / value))
    if not found.exists():
        raise InputError(
            f"{path}: close_each = {value!r}: file not found ({found}); paths are relative to the sweep file"
        )
    features = costs.read_barriers(found)
    if len(features) == 0:
        raise InputError(f"{path}: close_each = {value!r}: the file has no features to close")
    return found, features


def _labels(features: gpd.GeoDataFrame) -> list[str]:
    """Each closure feature's id (the file's ``id`` column), else ``row N`` (1-based)."""
    if "barrier_id" in features.columns:
        ids = features["barrier_id"].astype(str).tolist()
        if len(set(ids)) == len(ids):
            return ids
    return [f"row {i + 1}" for i in range(len(features))]


def _siting_axis(path: Path, table: Any, scenario: Scenario) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    from .siting import SitingParams

    if not isinstance(table, dict):
        raise InputError(f"{path}: siting must be a table: [siting] with lists, e.g. new = [1, 2, 3]")
    if scenario.siting is None:
        raise InputError(
            f"{path}: [siting] varies the siting, but the scenario has no [siting] section; add one to "
            f"{scenario.source} (candidates and objective)"
        )
    known = SitingParams.__dataclass_fields__
    for key in table:
        if key not in known:
            raise InputError(f"{path}: [siting] has unknown key {key!r}; known keys: {', '.join(known)}")
    if not table:
        raise InputError(f"{path}: [siting] is empty; give a list for a siting key, e.g. new = [1, 2, 3]")
    keys = tuple(table)
    lists = [_list(path, f"[siting] {k}", table[k], "[1, 2, 3]") for k in keys]
    combos = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]
    given = asdict(scenario.siting["params"])
    for combo in combos:
        try:
            SitingParams(**{**given, **combo})
        except InputError as exc:
            raise InputError(f"{path}: [siting] {exc}") from None
    return combos, keys


def _candidates(scenario: Scenario, havens: gpd.GeoDataFrame, most_new: int) -> gpd.GeoDataFrame:
    from . import siting

    cfg = scenario.siting
    if cfg["candidates"] is not None:
        found = layers.read_points(cfg["candidates"], kind="havens")
    else:
        found = siting.candidates_from_osm(scenario.network, cfg["candidates_osm"], exclude=havens)
    siting.check_sites(found, havens, most_new)
    return found


# ---------------------------------------------------------------------- the tasks
@dataclass
class _Shared:
    """What every variation reads (sent to each worker once), and that worker's cost graphs."""

    net: RoadNetwork
    defenders: gpd.GeoDataFrame
    havens: gpd.GeoDataFrame
    snapped_defenders: pd.DataFrame
    snapped_havens: pd.DataFrame
    closed: np.ndarray | None  # the scenario's closures, edge mask
    feature_edges: list[np.ndarray]  # edges each close_each feature closes
    risk: np.ndarray | None
    candidates: gpd.GeoDataFrame | None
    coverage: CoverageParams
    siting: dict[str, Any] | None
    keep_outputs: bool
    graphs: dict[tuple, tuple[_graph.CostGraph, np.ndarray | None]] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # what goes to the workers: the network without its caches (search graphs, trees: half its pickled
        # size), and no cost graphs; each worker builds what it uses once. A serial run is not pickled.
        return {**self.__dict__, "net": self.net.without_caches(), "graphs": {}}


def _model(v: Variation, shared: _Shared) -> tuple[int | None, float, float | None]:
    """The variation's cost model: (closure feature, alpha, max_risk), scenario values filled in."""
    p = shared.coverage
    alpha = p.alpha if v.alpha is None else v.alpha
    cap = p.max_risk if v.max_risk is None else (None if math.isinf(v.max_risk) else v.max_risk)
    return v.close, alpha, cap


def _weights(model: tuple[int | None, float, float | None], shared: _Shared) -> np.ndarray | None:
    """Per-edge weights of a cost model (None: the plain cost, nothing closed, no danger)."""
    close, alpha, cap = model
    if shared.closed is None and close is None and shared.risk is None:
        return None
    closed = np.zeros(shared.net.n_edges, dtype=bool) if shared.closed is None else shared.closed.copy()
    if close is not None:
        closed[shared.feature_edges[close]] = True
    p = shared.coverage
    return costs.cost_weights(shared.net, cost=p.cost, closures=closed, risk=shared.risk, alpha=alpha, max_risk=cap)


def _graph_of(v: Variation, shared: _Shared) -> tuple[_graph.CostGraph, np.ndarray | None]:
    """The cost graph of the variation's cost model (and its weights), built once per model in this process:
    variations that differ only in havens, bands or siting share it."""
    model = _model(v, shared)
    if model not in shared.graphs:
        weights = _weights(model, shared)
        shared.graphs[model] = (_graph.cost_graph(shared.net, shared.coverage.cost, weights), weights)
    return shared.graphs[model]


def _run_variation(v: Variation, shared: _Shared) -> dict[str, Any]:
    """Headline figures of one variation (and its coverage tables with ``keep_outputs``), and the warnings
    it raised (returned, to be shown once by the caller rather than in a worker's log)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _variation(v, shared)
    out["warnings"] = list(dict.fromkeys(str(w.message) for w in caught))
    return out


def _variation(v: Variation, shared: _Shared) -> dict[str, Any]:
    p = shared.coverage
    graph, weights = _graph_of(v, shared)
    keep = np.ones(len(shared.havens), dtype=bool)
    if v.lose_haven is not None:
        keep = shared.havens["id"].astype(str).to_numpy() != v.lose_haven
    found = assign_snapped(
        graph,
        shared.snapped_defenders,
        shared.snapped_havens.loc[keep],
        k=2,
        max_snap_m=p.snap_max_distance_m,
        routes=False,
    )
    minutes = p.minutes if v.minutes is None else v.minutes
    cov = coverage.coverage_of(found, minutes)
    n1 = coverage.n_minus_1(cov)
    worst = coverage.worst_loss(cov, n1)
    t = cov.best_time[np.isfinite(cov.best_time)]
    row: dict[str, Any] = {
        "havens": int(keep.sum()),
        "defenders": cov.n_defenders,
        "reachable": int(cov.defenders["reachable"].sum()),
        "unreachable": int((~cov.defenders["reachable"]).sum()),
    }
    for m in minutes:
        label = f"{m:g}"  # the band labels of coverage.json and n_minus_1.csv
        covered = int(cov.covered(m).sum())
        row[f"covered_{label}"] = covered
        row[f"share_{label}"] = round(covered / max(cov.n_defenders, 1), 4)
    row |= {
        "median_time_s": round(float(np.median(t)), 1) if len(t) else None,
        "mean_time_s": round(float(np.mean(t)), 1) if len(t) else None,
        "no_second_haven": int((~np.isfinite(cov.second_time)).sum()),
        "worst_haven": worst["worst_haven"],
        "worst_lose_all_cover": worst["lose_all_cover"],
        "worst_cut_off": worst["cut_off"],
        "closed_edges": int((~np.isfinite(graph.weights)).sum()),
    }
    out: dict[str, Any] = {"row": row}
    if shared.siting is not None:
        sited = _site(v, shared, keep, weights)
        s = _without_times(sited)
        out["siting"] = {"summary": s, "sites": sited.sites}
        row |= {"siting_chosen": ";".join(s["chosen"]), "siting_value": s["value"], "siting_optimal": s["optimal"]}
    if shared.keep_outputs:
        out["coverage"], out["n1"] = cov, n1
    return out


def _without_times(sited: Any) -> dict[str, Any]:
    """The siting summary without its wall-clock times (:func:`havenmap.siting.solve_times`): the same
    variation gives the same ``siting.json``, serially or on any worker."""
    from . import siting

    times = siting.solve_times(sited)
    out = {k: v for k, v in sited.summary.items() if k != "timing"}
    if isinstance(out.get("model"), dict):
        out["model"] = {k: v for k, v in out["model"].items() if k not in times}
    return out


def _site(v: Variation, shared: _Shared, keep: np.ndarray, weights: np.ndarray | None):
    from . import siting

    params = siting.SitingParams(**{**asdict(shared.siting["params"]), **(v.siting or {})})
    p = shared.coverage
    return siting.site_havens(
        shared.net,
        shared.defenders,
        shared.candidates,
        existing=shared.havens.loc[keep],
        **{**asdict(params), "bands": params.bands or (p.minutes if v.minutes is None else v.minutes)},
        cost=p.cost,
        edge_weights=weights,
        max_snap_m=p.snap_max_distance_m,
        off_network_candidates="error" if shared.siting["candidates"] is not None else "drop",
    )


# ---------------------------------------------------------------------- running
@dataclass
class SweepResult:
    """The rows of a sweep and how it ran.

    Attributes
    ----------
    rows : pandas.DataFrame
        ``sweep.csv``: one row per variation (see :func:`run_sweep`).
    plan : SweepPlan
    variations : list of Variation
    outputs : list of dict
        Per variation, the task's result (coverage tables with ``keep_outputs``, siting results).
    execution : dict
        :meth:`havenmap._distributed.TaskRun.summary` plus the setup time.
    """

    rows: pd.DataFrame
    plan: SweepPlan
    variations: list[Variation]
    outputs: list[dict[str, Any]]
    execution: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """``sweep.json``: the rows, the sweep and scenario parameters, and the run's facts."""
        rows = self.rows.astype(object).where(self.rows.notna(), None).to_dict("records")
        return {
            "rows": rows,
            "sweep": self.plan.to_dict(),
            "params": self.plan.scenario.to_dict(),
            "manifest": self.execution,
        }

    def write(self, out_dir: str | os.PathLike[str]) -> None:
        """``sweep.csv``, ``sweep.json`` and, when kept, ``variations/<id>/coverage/`` and ``siting/``."""
        out = Path(out_dir)
        _io.write_csv(out / "sweep.csv", self.rows)
        _io.write_json(out / "sweep.json", self.to_json())
        for v, res in zip(self.variations, self.outputs, strict=True):
            if "coverage" in res:
                coverage.write_coverage_outputs(out / "variations" / v.id / "coverage", res["coverage"], n1=res["n1"])
                if "siting" in res:
                    site = res["siting"]
                    _io.write_csv(out / "variations" / v.id / "siting" / "sites.csv", site["sites"])
                    _io.write_json(out / "variations" / v.id / "siting" / "siting.json", site["summary"], private=True)


def run_sweep(
    plan: SweepPlan,
    *,
    net: RoadNetwork | None = None,
    keep_outputs: bool = False,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = False,
    step: Callable[[str], Any] | None = None,
) -> SweepResult:
    """Run every variation of ``plan``; the rows of ``sweep.csv``.

    Parameters
    ----------
    plan
        From :func:`load_sweep`.
    net
        The scenario's network, if already loaded (else loaded here).
    keep_outputs
        Keep each variation's coverage tables (and siting result) for :meth:`SweepResult.write`.
    scheduler, workers, progress
        As :func:`havenmap._distributed.map_tasks`: ``workers=0`` runs serially; the default
        starts local Dask worker processes; ``scheduler`` an existing cluster. The workers
        receive the defenders' locations: use a cluster you trust.

    Returns
    -------
    SweepResult
        ``rows`` columns: ``variation`` (``base``, ``v0001``...), the varied values
        (``lose_haven``, ``close``, ``alpha``, ``max_risk``, ``minutes`` (``;``-joined), one
        ``siting_<key>`` per varied siting key), then ``havens`` (open in the variation),
        ``defenders``, ``reachable``, ``unreachable``, ``covered_<m>`` / ``share_<m>`` per band
        (defenders and share 0..1 reaching their nearest haven within m minutes),
        ``median_time_s`` / ``mean_time_s`` (to the nearest reachable haven, s),
        ``no_second_haven``, ``worst_haven`` / ``worst_lose_all_cover`` / ``worst_cut_off``
        (the single haven whose loss costs most, and what it costs, see
        :func:`havenmap.coverage.worst_loss`), ``closed_edges`` (directed edges closed by
        closures and the risk cap) and, when the scenario sites havens, ``siting_chosen``,
        ``siting_value``, ``siting_optimal``.
    """
    started = time.perf_counter()
    scen = plan.scenario
    step = step or (lambda _msg: _NullStep())
    if net is None:
        check_source(scen.network, scen.network_type)
        with step(f"Loading the {scen.network_type} network {scen.network.name}"):
            net = load_network(scen.network, scen.network_type, line_options=scen.network_options)
    with (
        step("Snapping defenders and havens; closures and risk on the roads"),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        p = scen.coverage
        shared = _Shared(
            net=net,
            defenders=plan.defenders,
            havens=plan.havens,
            snapped_defenders=snap_layer(net, plan.defenders, "defender", p.snap_max_distance_m),
            snapped_havens=snap_layer(net, plan.havens, "haven", p.snap_max_distance_m),
            closed=None if plan.barriers is None else costs.closure_mask(net, plan.barriers),
            feature_edges=[]
            if plan.close_features is None
            else [
                np.flatnonzero(costs.closure_mask(net, plan.close_features.iloc[[i]]))
                for i in range(len(plan.close_features))
            ],
            risk=None if plan.risk_table is None else costs.edge_risk(net, plan.risk_table),
            candidates=plan.candidates,
            coverage=p,
            siting=scen.siting if plan.candidates is not None else None,
            keep_outputs=keep_outputs,
        )
    snap_warnings = [str(w.message) for w in caught]
    for message in dict.fromkeys(snap_warnings):
        warnings.warn(message, UserWarning, stacklevel=2)
    variations = plan.variations()
    setup = time.perf_counter() - started
    run = _distributed.map_tasks(
        _run_variation,
        variations,
        shared,
        scheduler=scheduler,
        workers=workers,
        progress=progress,
        description="Variations",
        name="havenmap-sweep",
    )
    varied = list(plan.axes)
    shown_warnings = set(snap_warnings)
    records = []
    for v, res in zip(variations, run.results, strict=True):
        values = v.values(varied)
        for key in plan.siting_keys:
            values[f"siting_{key}"] = None if v.siting is None else v.siting[key]
        records.append({"variation": v.id, **values, **res["row"]})
        for message in res["warnings"]:
            if message not in shown_warnings:  # the snapping warnings were shown once already, above
                shown_warnings.add(message)
                warnings.warn(f"{v.id}: {message}", UserWarning, stacklevel=2)
    rows = pd.DataFrame.from_records(records)
    for column in rows.columns[1 : rows.columns.get_loc("havens")]:  # the varied values, as given
        rows[column] = pd.Series([r[column] for r in records], dtype=object)
    rows = _ordered(rows)
    execution = {**run.summary(), "setup_seconds": round(setup, 3), "variations": len(variations)}
    return SweepResult(rows, plan, variations, run.results, execution)


def _ordered(rows: pd.DataFrame) -> pd.DataFrame:
    """Columns in the documented order (bands ascending); counts as whole numbers (empty where not measured)."""
    bands = sorted({float(c.split("_", 1)[1]) for c in rows.columns if c.startswith("covered_")})
    band_cols = [f"{kind}_{m:g}" for m in bands for kind in ("covered", "share")]
    head = [c for c in rows.columns if c not in band_cols and rows.columns.get_loc(c) < rows.columns.get_loc("havens")]
    counts = ["havens", "defenders", "reachable", "unreachable"]
    rest = [c for c in rows.columns if c not in {*head, *counts, *band_cols}]
    rows = rows[[*head, *counts, *band_cols, *rest]].copy()
    for c in [*counts, *band_cols[::2], "no_second_haven", "worst_lose_all_cover", "worst_cut_off", "closed_edges"]:
        rows[c] = rows[c].astype("Int64")
    return rows


class _NullStep:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
