"""Team orienteering with time windows: the solver-facing core of patrol planning.

An :class:`Instance` holds integer time units (ticks, e.g. 0.1 s): a duration matrix over *locations* (bases
first, then targets), a routing-cost matrix over the same locations, each target's prize,
service time and time window, and each vehicle's base and shift. :func:`solve_pyvrp`
hands it to PyVRP as a prize-collecting VRP (optional clients with prizes, one depot per
base, one vehicle type per (base, shift)); :func:`greedy` is the simple baseline;
:func:`schedule` recomputes a route's times independently of any solver.

Time model: a vehicle leaves its base at 0, drives, waits when it arrives before a
target's window opens, starts the visit no later than the window's end, stays the service
time, and must be back at the base by the end of its shift.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

#: Duration/cost written for pairs with no road route: longer than any shift.
UNREACHABLE = 10**9
#: Bound on any penalised cost PyVRP may compute (int64 holds 9.2e18): prizes, costs and
#: time-warp penalties are sized so that no sum of them can overflow and turn an improving
#: move into a worsening one (which makes the local search cycle without end).
_SAFE_TOTAL = 10**18


@dataclass
class Instance:
    """A team orienteering problem with time windows, in integer time units ("ticks").

    Attributes
    ----------
    duration : (L, L) int64
        Travel time between locations, ticks (``UNREACHABLE`` = no route). Locations
        ``0..n_bases-1`` are bases, ``n_bases + i`` is target ``i``.
    cost : (L, L) int64
        Routing cost minimised after the prizes (travel time, or a danger-aware cost).
    n_bases : int
    service, tw_early, tw_late : (n,) int64
        Service time and the window (from shift start) in which a visit starts, ticks.
    prize : (n,) int64
        What visiting the target earns.
    vehicle_base : (V,) int64
        Base (location) index of each vehicle.
    vehicle_shift : (V,) int64
        Shift length of each vehicle, ticks.
    xy : (L, 2) float, optional
        Location coordinates (only used by the solver's neighbourhood heuristics).
    """

    duration: np.ndarray
    cost: np.ndarray
    n_bases: int
    service: np.ndarray
    tw_early: np.ndarray
    tw_late: np.ndarray
    prize: np.ndarray
    vehicle_base: np.ndarray
    vehicle_shift: np.ndarray
    xy: np.ndarray | None = None

    @property
    def n_targets(self) -> int:
        """Number of targets."""
        return len(self.prize)

    @property
    def n_vehicles(self) -> int:
        """Number of vehicles."""
        return len(self.vehicle_base)

    def loc(self, target: int) -> int:
        """Location index of target ``target``."""
        return self.n_bases + target


@dataclass
class SolveResult:
    """Routes per vehicle (lists of target indices, in visiting order) and solver facts."""

    routes: list[list[int]]
    runtime_s: float
    iterations: int = 0
    stopped_by: str = "done"
    solver: str = ""
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- scheduling
def schedule(
    inst: Instance, vehicle: int, route: list[int], duration: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Arrival, service start and departure times (s) of each visit, and the return time.

    ``duration`` overrides the instance's integer matrix (e.g. the float travel times).
    Returns ``(arrival, start, departure, back_at_base)``; feasibility is not checked here
    (see :func:`route_feasible`).
    """
    dur = inst.duration if duration is None else duration
    here = int(inst.vehicle_base[vehicle])
    t = 0.0
    arrival, start, departure = (np.zeros(len(route)) for _ in range(3))
    for k, target in enumerate(route):
        loc = inst.loc(target)
        t += float(dur[here, loc])
        arrival[k] = t
        t = max(t, float(inst.tw_early[target]))
        start[k] = t
        t += float(inst.service[target])
        departure[k] = t
        here = loc
    back = t + float(dur[here, int(inst.vehicle_base[vehicle])])
    return arrival, start, departure, back


def route_feasible(inst: Instance, vehicle: int, route: list[int], duration: np.ndarray | None = None) -> bool:
    """Whether ``route`` fits ``vehicle``'s shift and every visited target's window."""
    if len(set(route)) != len(route):
        return False
    _, start, _, back = schedule(inst, vehicle, route, duration)
    late = inst.tw_late[np.asarray(route, dtype=np.int64)] if route else np.zeros(0)
    return bool(np.all(start <= late)) and back <= inst.vehicle_shift[vehicle]


def collected(inst: Instance, routes: list[list[int]]) -> int:
    """Total prize of the distinct targets visited by ``routes``."""
    seen = {t for r in routes for t in r}
    return int(inst.prize[list(seen)].sum()) if seen else 0


def travel_cost(inst: Instance, routes: list[list[int]]) -> int:
    """Total routing cost of ``routes`` (base → targets → base)."""
    total = 0
    for v, r in enumerate(routes):
        locs = [int(inst.vehicle_base[v]), *(inst.loc(t) for t in r), int(inst.vehicle_base[v])]
        if len(locs) > 2:
            total += int(sum(inst.cost[a, b] for a, b in itertools.pairwise(locs)))
    return total


# ---------------------------------------------------------------------- PyVRP
def solve_pyvrp(
    inst: Instance, *, time_limit_s: float, seed: int = 0, max_iterations: int | None = None
) -> SolveResult:
    """Solve with PyVRP (iterated local search) as a prize-collecting VRP with time windows.

    Stops at ``max_iterations`` (reproducible: same seed → same routes on any machine)
    or when ``time_limit_s`` seconds have passed since the call, whichever comes first:
    building PyVRP's data and the warm start counts against the limit. The search starts
    from the :func:`greedy` plan, so it never returns less than the baseline. Targets with
    prize 0 are not offered.
    """
    import pyvrp
    from pyvrp.stop import MaxIterations, MultipleCriteria

    start = time.perf_counter()
    if inst.n_targets == 0 or inst.n_vehicles == 0:
        return SolveResult([[] for _ in range(inst.n_vehicles)], 0.0, solver="pyvrp")
    active = np.flatnonzero(inst.prize > 0)  # a target worth nothing today is not offered to the solver
    if len(active) == 0:
        return SolveResult([[] for _ in range(inst.n_vehicles)], time.perf_counter() - start, solver="pyvrp")
    data, type_members = _problem_data(inst, active)
    baseline = greedy(inst).routes
    warm = _initial_solution(data, inst, active, type_members, baseline)
    deadline = _Deadline(start + max(float(time_limit_s), 0.0))
    if deadline(0):  # building the instance used the whole budget: the greedy plan it is
        routes = _canonical_order(inst, baseline)
        return SolveResult(routes, time.perf_counter() - start, stopped_by="time", solver="pyvrp")
    criteria: list = [deadline]
    if max_iterations is not None:
        criteria.insert(0, MaxIterations(int(max_iterations)))
    params = pyvrp.SolveParams(penalty=pyvrp.PenaltyParams(max_penalty=_max_penalty(inst)))
    result = pyvrp.solve(
        data,
        stop=MultipleCriteria(criteria),
        seed=int(seed),
        display=False,
        collect_stats=False,
        params=params,
        initial_solution=warm,
    )
    routes: list[list[int]] = [[] for _ in range(inst.n_vehicles)]
    if result.best.is_feasible():
        used = {vt: 0 for vt in type_members}
        for route in result.best.routes():
            vt = route.vehicle_type()
            vehicle = type_members[vt][used[vt]]
            used[vt] += 1
            routes[vehicle] = [int(active[a.idx]) for a in route if a.is_client()]
    fallback = not all(route_feasible(inst, v, r) for v, r in enumerate(routes))
    if fallback:  # never expected (the search starts feasible and keeps the best feasible): stay safe
        routes = baseline
    # routes of identical vehicles come out in no fixed order: sort by first visit for stable output
    routes = _canonical_order(inst, routes)
    stopped = "iterations" if max_iterations is not None and result.num_iterations >= max_iterations else "time"
    return SolveResult(
        routes,
        time.perf_counter() - start,
        iterations=int(result.num_iterations),
        stopped_by=stopped,
        solver="pyvrp",
        info={"feasible": bool(result.best.is_feasible()), "fallback": fallback},
    )


class _Deadline:
    """PyVRP stopping criterion: stop once the clock passes an absolute time.

    PyVRP's own ``MaxRuntime`` starts counting at its first call, after PyVRP has built its
    neighbourhoods; a deadline set when :func:`solve_pyvrp` starts also covers that set-up
    and ours, so the time limit holds for the whole solve.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, best_cost: float) -> bool:
        return time.perf_counter() >= self.deadline


def _horizon(inst: Instance) -> int:
    """One tick past the longest shift: no feasible route uses a longer leg or starts a visit later."""
    return int(inst.vehicle_shift.max()) + 1


def _problem_data(inst: Instance, active: np.ndarray):
    """PyVRP data over the bases and the ``active`` targets (client k = target ``active[k]``)."""
    from pyvrp import Client, Depot, Location, ProblemData, VehicleType

    locs = np.concatenate([np.arange(inst.n_bases), inst.n_bases + active])
    horizon = _horizon(inst)  # legs and windows beyond the horizon are clipped to it: still infeasible,
    # but time warps stay small enough that penalised costs cannot overflow
    xy = inst.xy[locs] if inst.xy is not None else np.zeros((len(locs), 2))
    locations = [Location(x=float(x), y=float(y)) for x, y in xy]
    depots = [Depot(location=b) for b in range(inst.n_bases)]
    clients = [
        Client(
            location=inst.n_bases + k,
            service_duration=int(inst.service[i]),
            tw_early=int(min(inst.tw_early[i], horizon)),
            tw_late=int(min(inst.tw_late[i], horizon)),
            prize=int(inst.prize[i]),
            required=False,
        )
        for k, i in enumerate(active.tolist())
    ]
    groups: dict[tuple[int, int], list[int]] = {}
    for v in range(inst.n_vehicles):
        groups.setdefault((int(inst.vehicle_base[v]), int(inst.vehicle_shift[v])), []).append(v)
    vehicle_types, members = [], {}
    for k, ((base, shift), vehicles) in enumerate(groups.items()):
        vehicle_types.append(
            VehicleType(
                num_available=len(vehicles),
                start_depot=base,
                end_depot=base,
                tw_early=0,
                tw_late=shift,
                shift_duration=shift,
                start_late=0,
            )
        )
        members[k] = vehicles
    data = ProblemData(
        locations=locations,
        clients=clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=[np.ascontiguousarray(inst.cost[np.ix_(locs, locs)], dtype=np.int64)],
        duration_matrices=[
            np.ascontiguousarray(np.minimum(inst.duration[np.ix_(locs, locs)], horizon), dtype=np.int64)
        ],
    )
    return data, members


def _initial_solution(
    data, inst: Instance, active: np.ndarray, type_members: dict[int, list[int]], routes: list[list[int]]
):
    """A PyVRP solution from per-vehicle target routes (the greedy plan: feasible, a warm start)."""
    from pyvrp import Activity, ActivityType, Route, Solution

    client_of = {int(t): k for k, t in enumerate(active.tolist())}
    out = []
    for vt, vehicles in type_members.items():
        for v in vehicles:
            if routes[v]:
                acts = [Activity(ActivityType.CLIENT, client_of[t]) for t in routes[v]]
                out.append(Route(data, acts, vt))
    return Solution(data, out)


def _max_penalty(inst: Instance) -> float:
    """Time-warp penalty ceiling (per tick late): above any single prize where that cannot overflow.

    The best solution PyVRP returns is always feasible (infeasible ones cost infinity there),
    so the penalty only steers the search; it is capped so that a solution's largest possible
    time warp (every leg and service at the horizon) times the penalty stays below
    :data:`_SAFE_TOTAL`.
    """
    top = float(inst.prize.max()) if inst.n_targets else 1.0
    service = float(inst.service.max()) if inst.n_targets else 0.0
    worst_warp = (inst.n_targets + inst.n_vehicles) * (2.0 * _horizon(inst) + service)
    return float(max(1.0, min(max(100_000.0, 4.0 * top), _SAFE_TOTAL / 4 / max(worst_warp, 1.0))))


def _canonical_order(inst: Instance, routes: list[list[int]]) -> list[list[int]]:
    """Give interchangeable vehicles (same base and shift) their routes in a fixed order."""
    out = [list(r) for r in routes]
    groups: dict[tuple[int, int], list[int]] = {}
    for v in range(inst.n_vehicles):
        groups.setdefault((int(inst.vehicle_base[v]), int(inst.vehicle_shift[v])), []).append(v)
    for vehicles in groups.values():
        chosen = sorted((routes[v] for v in vehicles), key=lambda r: (len(r) == 0, r[:1], len(r)))
        for v, r in zip(vehicles, chosen, strict=True):
            out[v] = list(r)
    return out


# ---------------------------------------------------------------------- greedy baseline
def greedy(inst: Instance) -> SolveResult:
    """Greedy baseline: each vehicle in turn (earliest clock first) takes the reachable target
    with the best prize per second of detour (travel + wait + service), as long as it can still
    start the visit in its window and get back to base within the shift."""
    start_clock = time.perf_counter()
    routes: list[list[int]] = [[] for _ in range(inst.n_vehicles)]
    clock = np.zeros(inst.n_vehicles)
    here = inst.vehicle_base.astype(np.int64).copy()
    done = np.zeros(inst.n_vehicles, dtype=bool)
    free = inst.prize > 0
    target_loc = inst.n_bases + np.arange(inst.n_targets)
    while not done.all() and free.any():
        v = int(np.flatnonzero(~done)[np.argmin(clock[~done])])
        arrive = clock[v] + inst.duration[here[v], target_loc]
        begin = np.maximum(arrive, inst.tw_early)
        leave = begin + inst.service
        back = leave + inst.duration[target_loc, inst.vehicle_base[v]]
        ok = free & (begin <= inst.tw_late) & (back <= inst.vehicle_shift[v]) & (arrive < UNREACHABLE)
        if not ok.any():
            done[v] = True
            continue
        score = np.where(ok, inst.prize / np.maximum(leave - clock[v], 1.0), -np.inf)
        pick = int(np.argmax(score))
        routes[v].append(pick)
        free[pick] = False
        clock[v] = leave[pick]
        here[v] = target_loc[pick]
    return SolveResult(routes, time.perf_counter() - start_clock, solver="greedy")


# ---------------------------------------------------------------------- prizes
def lexicographic_prizes(weight: np.ndarray, cost_bound: float, resolution: int = 1000) -> np.ndarray:
    """Integer prizes that make any gain in ``weight`` outweigh every possible travel cost.

    ``weight`` is rounded to ``resolution`` steps of its maximum and multiplied by
    ``cost_bound + 1``, where ``cost_bound`` bounds the total routing cost of any feasible
    plan: the solver, which minimises cost − prize, then maximises the (rounded) weight
    first and only then minimises travel cost.
    """
    weight = np.asarray(weight, dtype=np.float64)
    top = float(weight.max()) if len(weight) else 0.0
    if top <= 0:
        return np.zeros(len(weight), dtype=np.int64)
    steps = np.rint(weight / top * resolution).astype(np.int64)
    return steps * (int(np.ceil(cost_bound)) + 1)


def cost_bound(inst_cost: np.ndarray, inst_duration: np.ndarray, shifts: np.ndarray) -> float:
    """Upper bound on the total routing cost of routes within their shifts.

    Every arc with a duration costs at most ``max(cost / duration)`` per tick, and the routes
    drive at most the sum of the shifts; zero-time arcs are added once each. (No floor on the
    ratio: coarsened costs, less than a tick per tick, must give a smaller bound, or the prizes
    scaled from it grow with the fleet until PyVRP's penalised costs overflow.)
    """
    finite = inst_duration < UNREACHABLE
    ratio = np.divide(
        inst_cost, np.maximum(inst_duration, 1), where=finite, out=np.zeros(inst_cost.shape, dtype=np.float64)
    )
    zero_time = finite & (inst_duration == 0)
    extra = float(inst_cost[zero_time].sum()) if zero_time.any() else 0.0  # zero-time arcs: count each once
    return float(np.sum(shifts)) * float(ratio.max()) + extra
