"""Run parameters: one validated dataclass per section of a scenario file, loadable from TOML.

As PyVRP's ``SolveParams.from_file``: the settings of each analysis are a frozen dataclass
that checks its own fields when it is created — from Python (``ThreatParams(bandwidth_m=300)``),
from a TOML table (:meth:`Params.from_dict`, :meth:`Params.from_file`) or from the command
line, whose options build the same objects (:meth:`Params.check_value` at parse time,
:meth:`Params.from_options` in the command). The rules live here only; ``cli.py`` and
``scenario.py`` compose. A bad value is one line naming where it came from:

* in a file: ``scenario.toml: [threat] bandwidth_m = -5: give a distance in metres above 0``;
* on the command line: ``--bandwidth-m -5: give a distance in metres above 0``;
* in Python: ``bandwidth_m = -5: give a distance in metres above 0``.

An unknown key names the key and its section (and where a key that moved went).

=================  =======================  ==============================================
section            class                    keys
=================  =======================  ==============================================
top level          :class:`CoverageParams`  ``k``, ``cost``, ``minutes``, ``snap_max_distance_m``,
                                            ``buffer_m``, ``alpha``, ``max_risk``
``[threat]``       :class:`ThreatParams`    ``bandwidth_m``, ``half_life_days``, ``cell_m``, ...
``[alerts]``       :class:`AlertParams`     ``distance_m``, ``recent_days``, ``baseline_days``, ``p_value``
``[patrol]``       :class:`PatrolParams`    ``units``, ``shift_minutes``, ``days``, ``seed``, ...
``[map]``          :class:`MapParams`       ``slow_minutes``, ``recent_days``
``[patrol_check]`` :class:`PatrolCheckParams` ``radius_m``, ``window_min``, ``corridor_m``
=================  =======================  ==============================================

``[privacy]`` is :class:`havenmap.privacy.DefenderPrivacy` and ``[network]``
:class:`havenmap.lines.LineOptions`, which follow the same rules.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from ._checks import rule_text
from .errors import InputError

__all__ = [
    "AlertParams",
    "CoverageParams",
    "MapParams",
    "Params",
    "PatrolCheckParams",
    "PatrolParams",
    "ThreatParams",
    "as_date",
    "shown",
]

P = TypeVar("P", bound="Params")


class _InvalidError(Exception):
    """A field check failed; the text says what to give instead."""


class ParamError(InputError):
    """A parameter value is unusable (raised by a :class:`Params` constructor).

    ``key``, ``value`` and ``problem`` let callers name the place the value came from
    (a file and section, a command-line option).
    """

    def __init__(self, key: str, value: Any, problem: str) -> None:
        super().__init__(f"{key} = {shown(value)}: {problem}")
        self.key, self.value, self.problem = key, value, problem


def shown(value: Any) -> str:
    """A value as the user wrote it: ``5``, ``0.01``, ``true``, ``'text'``, ``[5, 10]``."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return repr(value)


# ---------------------------------------------------------------------- field checks
Check = Callable[[Any], Any]


def _number(
    what: str,
    *,
    integer: bool = False,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
    finite: bool = True,
    optional: bool = False,
) -> Check:
    """A number within bounds (a whole number if ``integer``); None passes when ``optional``."""
    rule = rule_text(above, at_least, below, at_most)
    advice = f"give {what}{rule}" + (", or leave it out" if optional else "")

    def check(value: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, (bool, np.bool_, str)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise _InvalidError(f"not a number; {advice}")
        x = float(value)
        if math.isnan(x):
            raise _InvalidError(f"{advice} (nan is not a number)")
        if finite and math.isinf(x):
            raise _InvalidError(advice)
        if integer and not (math.isfinite(x) and x == int(x)):
            raise _InvalidError(f"not a whole number; {advice}")
        bad = (above is not None and not x > above) or (at_least is not None and not x >= at_least)
        bad = bad or (below is not None and not x < below) or (at_most is not None and not x <= at_most)
        if bad:
            raise _InvalidError(advice)
        return int(x) if integer else x

    return check


def _choice(*options: str) -> Check:
    words = " or ".join(repr(o) for o in options)

    def check(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in options:
            raise _InvalidError(f"use {words}")
        return value.strip().lower()

    return check


def _minutes(value: Any) -> tuple[float, ...]:
    """Time bands in minutes: ``[5, 10, 15]``, ``"5,10,15"`` or one number (:func:`havenmap.coverage.parse_minutes`)."""
    from .coverage import parse_minutes

    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value)
    ):
        value = "not a number"
    try:
        return parse_minutes(value)
    except (InputError, TypeError):
        raise _InvalidError("give time bands in minutes above 0, e.g. [5, 10, 15]") from None


def _date(value: Any) -> str | None:
    """A date as ``YYYY-MM-DD`` (TOML dates, ``date`` objects and ISO text); None passes."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10]).isoformat()
        except ValueError:
            pass
    raise _InvalidError("give a date as YYYY-MM-DD, e.g. 2026-11-20")


def _days(value: Any) -> int:
    from .patrol import MAX_DAYS

    try:
        return _number("a number of days", integer=True, at_least=1, at_most=MAX_DAYS)(value)
    except _InvalidError:
        advice = f"plan 1 to {MAX_DAYS} days at a time (a year); re-plan after that with fresh threat data"
        raise _InvalidError(advice) from None


def _param(default: Any, check: Check, option: str) -> Any:
    """A dataclass field with its check and its command-line option."""
    return field(default=default, metadata={"check": check, "option": option})


# ---------------------------------------------------------------------- the base class
@dataclass(frozen=True)
class Params:
    """Base of the parameter classes: checks every field on creation, reads TOML, names the source.

    Subclasses declare ``SECTION`` (their TOML table; ``None`` for the top level of a
    scenario file) and ``MOVED`` (old key → where it went, for the unknown-key message).
    """

    SECTION: ClassVar[str | None] = None
    MOVED: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            if check is None:
                continue
            value = getattr(self, f.name)
            try:
                object.__setattr__(self, f.name, check(value))
            except _InvalidError as exc:
                raise ParamError(f.name, value, str(exc)) from None
        self._check_together()

    def _check_together(self) -> None:
        """Rules between fields (raise :class:`ParamError` naming one of them)."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keys of this section, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def option(cls, key: str) -> str:
        """The command-line option of ``key`` (e.g. ``--bandwidth-m``)."""
        found = {f.name: f for f in fields(cls)}[key]
        return found.metadata.get("option") or "--" + key.replace("_", "-")

    @classmethod
    def where(cls, source: str | os.PathLike[str] | None) -> str:
        """``scenario.toml: [threat]`` (or ``scenario.toml:`` for the top level)."""
        if cls.SECTION:
            return f"{source}: [{cls.SECTION}]" if source else f"[{cls.SECTION}]"
        return f"{source}:" if source else ""

    @classmethod
    def from_dict(cls: type[P], values: Mapping[str, Any], *, source: str | os.PathLike[str] | None = None) -> P:
        """Parameters from a mapping (a TOML table); missing keys keep their defaults.

        Raises
        ------
        havenmap.errors.InputError
            An unknown key (named with its section and the known keys; a key that moved
            says where to), or a bad value (``FILE: [section] key = value: what to give``).
        """
        if not isinstance(values, Mapping):
            raise InputError(f"{cls.where(source)} must be a table of settings")
        known = cls.field_names()
        for key in values:
            if key not in known:
                moved = f" (it moved: use {cls.MOVED[key]})" if key in cls.MOVED else ""
                section = f"[{cls.SECTION}]" if cls.SECTION else "the top level"
                head = f"{source}: " if source else ""
                raise InputError(f"{head}{section} has unknown key {key!r}{moved}; known keys: {', '.join(known)}")
        try:
            return cls(**dict(values))
        except ParamError as exc:
            lead = cls.where(source)
            raise InputError(f"{lead}{' ' if lead else ''}{exc}") from None

    @classmethod
    def from_file(cls: type[P], path: str | os.PathLike[str]) -> P:
        """Parameters from a TOML file: its ``[SECTION]`` table if it has one, else its top level.

        For the top-level class (:class:`CoverageParams`) only its own keys are taken from
        the top level, so a whole scenario file can be read.
        """
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: parameter file not found") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from None
        if cls.SECTION is None:
            return cls.from_dict({k: v for k, v in raw.items() if k in cls.field_names()}, source=path)
        if cls.SECTION in raw:
            return cls.from_dict(raw[cls.SECTION], source=path)
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def check_value(cls, key: str, value: Any, option: str | None = None) -> Any:
        """Check one value as the field ``key`` does; errors name ``option`` (``--bandwidth-m -5: ...``).

        The command line calls this while it parses an option, so a bad value fails before
        any file is read.
        """
        check = {f.name: f for f in fields(cls)}[key].metadata["check"]
        try:
            return check(value)
        except _InvalidError as exc:
            raise InputError(f"{option or cls.option(key)} {shown(value)}: {exc}") from None

    @classmethod
    def from_options(cls: type[P], **values: Any) -> P:
        """Parameters from command-line options; an error names the option (``--days 0: ...``)."""
        try:
            return cls(**values)
        except ParamError as exc:
            raise InputError(f"{cls.option(exc.key)} {shown(exc.value)}: {exc.problem}") from None

    # ------------------------------------------------------------------ use
    def to_dict(self) -> dict[str, Any]:
        """Every key with its resolved value, JSON-ready (tuples as lists, paths as text)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def replace(self: P, **changes: Any) -> P:
        """A copy with some values changed (checked again)."""
        return replace(self, **changes)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


# ---------------------------------------------------------------------- the sections
@dataclass(frozen=True)
class CoverageParams(Params):
    """Nearest havens, coverage bands, N-1 and service areas (the top level of a scenario file).

    Attributes
    ----------
    k : int
        Nearest havens per defender in ``nearest_havens.geojson`` (1 or more; coverage always
        uses the two nearest, for N-1).
    cost : str
        What routes minimise: ``"time"`` or ``"length"``.
    minutes : tuple of float
        Coverage time bands, minutes (the last is "in time" on the map and in the report).
    snap_max_distance_m : float
        Points farther than this from every road are off the network, metres.
    buffer_m : float
        Half-width of service-area polygons around the reached roads, metres.
    alpha : float
        Danger weight: with a risk input, routes minimise ``time × (1 + alpha × risk)``.
    max_risk : float or None
        With a risk input, roads above this risk are closed (None: no cap).
    """

    SECTION: ClassVar[str | None] = None

    k: int = _param(1, _number("a number of havens", integer=True, at_least=1), "--k")
    cost: str = _param("time", _choice("time", "length"), "--cost")
    minutes: tuple[float, ...] = _param((5.0, 10.0, 15.0), _minutes, "--minutes")
    snap_max_distance_m: float = _param(250.0, _number("the snapping distance in metres", above=0), "--max-snap-m")
    buffer_m: float = _param(50.0, _number("a distance in metres", above=0), "--buffer-m")
    alpha: float = _param(1.0, _number("a danger weight", at_least=0), "--alpha")
    max_risk: float | None = _param(None, _number("a risk", at_least=0, optional=True), "--max-risk")

    @property
    def in_time_minutes(self) -> float:
        """The last band: defenders slower than this are "too slow"."""
        return max(self.minutes)

    def check_cost_model(self, has_risk: bool, where: str = "") -> None:
        """``alpha`` and ``max_risk`` mean something only with a per-edge risk input."""
        if not has_risk and (self.max_risk is not None or self.alpha != 1.0):
            head = f"{where}: " if where else ""
            raise InputError(f"{head}alpha and max_risk (--alpha, --max-risk) need a risk input (--risk FILE)")


@dataclass(frozen=True)
class ThreatParams(Params):
    """The threat picture (:func:`havenmap.threat.compute_threat`).

    Attributes
    ----------
    method : str
        Risk estimator: ``'mix'`` (each place's long-term rate plus the recent activity around
        it; the default since backtests) or ``'kde'`` (one kernel, one half-life).
    bandwidth_m : float or None
        Kernel bandwidth along the roads, metres (for ``'mix'``, of its recent part). None: the
        method's (:data:`havenmap.threat.METHOD_DEFAULTS`, mix 250, kde 400).
    half_life_days : float or None
        Age at which an incident counts half, days (``inf``: no decay; for ``'mix'``, of its
        recent part). None: the method's (mix 21, kde 30).
    cell_m : float
        Cell side of the planar density grid, metres.
    permutations : int
        Gi* permutations (0: analytic p-values).
    cluster_permutations : int
        Replicates of the space-time cluster scan (0: no scan).
    max_snap_m : float
        Incidents farther than this from every road are left out, metres (×2 / ×4 for
        ``geo_precision`` 2 / 3).
    seed : int
        Seed of the cluster scan's permutations.
    """

    SECTION: ClassVar[str | None] = "threat"
    MOVED: ClassVar[Mapping[str, str]] = {
        "alert_distance_m": "[alerts] distance_m",
        "recent_days": "[alerts] recent_days",
        "baseline_days": "[alerts] baseline_days",
    }

    method: str = _param("mix", _choice("mix", "kde"), "--method")
    bandwidth_m: float | None = _param(None, _number("a distance in metres", above=0, optional=True), "--bandwidth-m")
    half_life_days: float | None = _param(
        None, _number("a number of days", above=0, finite=False, optional=True), "--half-life-days"
    )
    cell_m: float = _param(100.0, _number("a cell size in metres", above=0), "--cell-m")
    permutations: int = _param(0, _number("a number of permutations", integer=True, at_least=0), "--permutations")
    cluster_permutations: int = _param(
        999, _number("a number of replicates", integer=True, at_least=0), "--cluster-permutations"
    )
    max_snap_m: float = _param(500.0, _number("the snapping distance in metres", above=0), "--max-snap-m")
    seed: int = _param(0, _number("a whole number", integer=True), "--seed")

    def compute_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`havenmap.threat.compute_threat`."""
        return {
            "method": self.method,
            "bandwidth_m": self.bandwidth_m,
            "half_life_days": self.half_life_days,
            "cell_m": self.cell_m,
            "permutations": self.permutations,
            "max_snap_m": self.max_snap_m,
            "clusters": self.cluster_permutations > 0,
            "cluster_permutations": max(self.cluster_permutations, 1),
            "seed": self.seed,
        }

    def resolved(self) -> ThreatParams:
        """A copy with the method's defaults in place of None (what a manifest records)."""
        from .threat import METHOD_DEFAULTS

        own = METHOD_DEFAULTS[self.method]
        return self.replace(
            bandwidth_m=own["bandwidth_m"] if self.bandwidth_m is None else self.bandwidth_m,
            half_life_days=own["half_life_days"] if self.half_life_days is None else self.half_life_days,
        )

    def half_life(self) -> float:
        """The half-life the incidents are weighed with, days: the given one or the method's."""
        return self.resolved().half_life_days


@dataclass(frozen=True)
class AlertParams(Params):
    """Early warning (:func:`havenmap.threat.early_warning`).

    Attributes
    ----------
    distance_m : float
        Network distance around each defender, metres.
    recent_days : int
        The recent window, days up to the as-of date.
    baseline_days : int
        The baseline window before it, days.
    p_value : float
        Alert when the surge's Poisson p-value is below this (0..1).
    """

    SECTION: ClassVar[str | None] = "alerts"

    distance_m: float = _param(1000.0, _number("a distance in metres", above=0), "--distance-m")
    recent_days: int = _param(7, _number("a number of days", integer=True, at_least=1), "--recent-days")
    baseline_days: int = _param(90, _number("a number of days", integer=True, at_least=1), "--baseline-days")
    p_value: float = _param(0.01, _number("a probability", above=0, below=1), "--p-value")

    def warning_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`havenmap.threat.early_warning`."""
        return {
            "distance_m": self.distance_m,
            "recent_days": self.recent_days,
            "baseline_days": self.baseline_days,
            "alpha": self.p_value,
        }


@dataclass(frozen=True)
class PatrolParams(Params):
    """Patrol plans (:func:`havenmap.patrol.plan_patrols`).

    Attributes
    ----------
    units : int
        Number of units, spread over the bases round-robin.
    shift_minutes : float
        Shift length, minutes (at most a week).
    days : int
        Days to plan, 1 to 366.
    seed : int
        Seed of every random choice: the same seed gives the same plan.
    time_limit_s : float
        Solver time cap per day, seconds. A plan stopped by it may differ between runs.
    iterations : int
        Solver iterations per day (the reproducible stop).
    risk_alpha : float
        Danger weight of the legs with a risk input: ``time × (1 + risk_alpha × risk)``.
    """

    SECTION: ClassVar[str | None] = "patrol"
    MOVED: ClassVar[Mapping[str, str]] = {"max_iterations": "[patrol] iterations", "alpha": "[patrol] risk_alpha"}

    units: int = _param(1, _number("a number of units", integer=True, at_least=1), "--units")
    shift_minutes: float = _param(
        480.0, _number("the shift length in minutes", above=0, at_most=7 * 24 * 60), "--shift-minutes"
    )
    days: int = _param(1, _days, "--days")
    seed: int = _param(0, _number("a whole number", integer=True), "--seed")
    time_limit_s: float = _param(30.0, _number("a number of seconds", above=0), "--time-limit")
    iterations: int = _param(3000, _number("a number of iterations", integer=True, at_least=1), "--iterations")
    risk_alpha: float = _param(1.0, _number("a danger weight", at_least=0), "--alpha")

    def check_risk(self, has_risk: bool, where: str = "") -> None:
        """``risk_alpha`` means something only with a per-edge risk input."""
        if not has_risk and self.risk_alpha != 1.0:
            head = f"{where}: " if where else ""
            raise InputError(f"{head}risk_alpha (--alpha) needs a risk input (--risk FILE)")

    def plan_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`havenmap.patrol.plan_patrols` (units as a number)."""
        return {
            "units": self.units,
            "shift_minutes": self.shift_minutes,
            "days": self.days,
            "seed": self.seed,
            "time_limit_s": self.time_limit_s,
            "max_iterations": self.iterations,
            "risk_alpha": self.risk_alpha,
        }


@dataclass(frozen=True)
class MapParams(Params):
    """The commander's map and the situation report.

    Attributes
    ----------
    slow_minutes : float or None
        Defenders reaching a haven within this are in time (None: the last coverage band).
    recent_days : float
        Incidents of the last N days are markers on the map.
    """

    SECTION: ClassVar[str | None] = "map"

    slow_minutes: float | None = _param(None, _number("a number of minutes", above=0, optional=True), "--slow-minutes")
    recent_days: float = _param(30.0, _number("a number of days", above=0), "--recent-days")


@dataclass(frozen=True)
class PatrolCheckParams(Params):
    """Patrol follow-up (:func:`havenmap.patrol_check.check_patrols`).

    Attributes
    ----------
    radius_m : float
        A planned stop is visited when a track passes within this distance of it, metres.
    window_min : float
        ... between ``window_min`` minutes before its planned arrival and ``window_min``
        minutes after its planned departure, counted from the start of the shift
        (``inf``: at any time).
    corridor_m : float
        A hotspot road counts as driven when at least half of it lies within this distance
        of the track (the plan's routes are measured the same way), metres.
    """

    SECTION: ClassVar[str | None] = "patrol_check"

    radius_m: float = _param(50.0, _number("a distance in metres", above=0, at_most=1000), "--radius-m")
    window_min: float = _param(60.0, _number("a number of minutes", at_least=0, finite=False), "--window-min")
    corridor_m: float = _param(20.0, _number("a distance in metres", above=0, at_most=500), "--corridor-m")


def as_date(value: Any, label: str) -> str | None:
    """``value`` as ``YYYY-MM-DD`` (None passes), or an :class:`InputError` ``label = value: ...``."""
    try:
        return _date(value)
    except _InvalidError as exc:
        raise InputError(f"{label} = {shown(value)}: {exc}") from None
