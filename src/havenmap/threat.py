"""Threat picture and early warning: weighted incidents → risk on every road, hotspots, alerts.

Four steps, each usable on its own:

1. **Weighting** (:func:`weigh_incidents`). Each incident's weight is the product of

   * a *type weight* from :data:`DEFAULT_TYPE_WEIGHTS` (ACLED event and sub-event types,
     UCDP GED violence types), which the user can override with a CSV table
     ``event_type,sub_event_type,weight`` (:func:`read_weights`). The defaults rank how
     directly an event type threatens a person moving through the street: attacks,
     abductions and explosions on the people of a place weigh 1.0; armed clashes 0.7;
     riots 0.5–0.6; arrests 0.4 (defenders are often the ones arrested); protests with
     intervention 0.3; peaceful protests and most strategic developments 0.05–0.1 (they
     mark tension, not danger). An event type the table does not know gets
     :data:`UNKNOWN_TYPE_WEIGHT` (0.5) with a warning naming the rows, never an error;
   * a *fatality factor* ``1 + ln(1 + fatalities)``: deadly events count more, with
     diminishing returns so one massacre does not drown a month of assaults;
   * an *age decay* ``0.5 ** (age_days / half_life_days)`` relative to ``as_of`` (default:
     the latest incident date; half-life 30 days): last week's attack matters more than
     last season's. Incidents dated after ``as_of`` are left out with a warning;
   * a *precision* factor from ACLED ``geo_precision`` (:data:`PRECISION`): 1 (the place
     itself) keeps full weight and bandwidth; 2 (somewhere near the coded place) spreads
     over twice the bandwidth at half weight; 3 (only the region is known; the coordinates
     are a regional centre) spreads over four times the bandwidth at a quarter of the
     weight. A wider kernel is the honest picture of an uncertain location; the lower
     weight keeps a regional centroid from painting a false hotspot on one street.

2. **Risk on the network** (:func:`compute_threat`). Network-constrained kernel density:
   incidents are snapped onto the roads and each spreads its weight along the network
   (not through buildings) with a quartic kernel of network distance. ``risk`` per edge is
   the mean density along the edge, in weighted incidents per km of road (one incident of
   weight 1 in the middle of a long street peaks at ``15/16 / h`` per metre: 2.34 per km
   for h = 400 m); ``node_risk`` is the density at each node. Both directions of a street
   carry the same risk. Two estimators (``method=``):

   * ``'mix'`` (default): **each place's long-term rate plus the recent activity around
     it** — the shape of a self-exciting point-process forecast (Mohler et al. 2011, 2015:
     a background rate per place and a short-lived "triggered" rate spreading from recent
     events), with its parameters fixed by backtests (``benchmarks/tune_threat.py``) rather
     than fitted per run. A *place* component with a narrow kernel (25 m) and a long memory
     (half-life 120 days) finds the corners, checkpoints and markets where violence
     recurs; a *recent* component with a wide kernel (``bandwidth_m``, 250 m) and a short
     memory (``half_life_days``, 21 days) follows what is emerging and lets what faded go.
     The recent component has 20 % of the forecast rate (each memory as a rate per day:
     ``0.8 · 2^(−a/120)/120 + 0.2 · 2^(−a/21)/21``, scaled so a fresh incident weighs 1:
     59 % of it in the recent component, 41 % in the place component). Backtested on
     synthetic years of persistent, emerging and fading hotspots on real streets, it puts
     more of next week's incidents on the top 5 % of road km than every baseline, where
     'kde' put fewer than the best of them (README, "Backtests").
   * ``'kde'``: one kernel (``bandwidth_m`` 400 m) and one half-life (30 days), the
     default before backtests existed.

   See :mod:`havenmap._kde` for the exact edge integral and the tiled bounded Dijkstra that
   makes 100,000 incidents on a 100,000-node network take seconds. A planar density grid
   (weighted incidents per km², quartic kernel of the recent bandwidth) feeds the heatmap.

3. **Hotspots**: Getis-Ord Gi* per road piece on the incident weight it holds, with
   binary weights "road pieces whose midpoints are within ``hotspot_band_m`` of network
   distance" (self included, as Gi* requires). z-scores are PySAL esda's analytic ones
   (computed here with sparse algebra, identical to ``esda.G_Local(..., transform='B',
   star=True).Zs``; see the tests); with ``permutations > 0`` the p-values come from esda's
   conditional permutation test. ``p_value`` is two-sided; with ``fdr=True`` the classes
   'hot 99%' / 'hot 95%' / 'hot 90%' use Benjamini-Hochberg q-values, so a network of
   thousands of roads does not light up by chance.

4. **Early warning** (:func:`early_warning`): for each defender, violent incidents within
   network distance ``distance_m`` in the last ``recent_days`` against the
   ``baseline_days`` before; an alert when the recent count is improbable under the
   baseline rate (one-sided Poisson test), or when a severe incident (a fatality, violence
   against civilians, an explosion) happened within half the distance in the recent
   window. Emerging space-time clusters over the whole area come from a prospective
   space-time permutation scan (:mod:`havenmap._scan`, Kulldorff 2005).

Per-edge ``risk`` (GeoJSON ``u, v, key, risk``, :func:`read_risk`, :func:`risk_array`) is
the column danger-aware routing and patrol planning consume.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse, stats
from scipy.signal import fftconvolve

from . import _graph, _io, layers
from ._kde import KERNELS, network_kde
from ._scan import space_time_scan
from .errors import InputError, listing
from .network import RoadNetwork
from .snap import DEFAULT_MAX_SNAP_M, snap_points

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_TYPE_WEIGHTS",
    "METHOD_DEFAULTS",
    "OUTPUT_FILES",
    "PRECISION",
    "THREAT_METHODS",
    "UNKNOWN_TYPE_WEIGHT",
    "DensityGrid",
    "ThreatResult",
    "alert_date",
    "check_as_of",
    "compute_threat",
    "early_warning",
    "getis_ord_star",
    "read_risk",
    "read_weights",
    "risk_array",
    "run_threat_outputs",
    "snap_incidents",
    "space_time_clusters",
    "weigh_incidents",
]

PathLike = str | os.PathLike[str]

#: Files :func:`write_threat_outputs` may write, relative to its folder.
OUTPUT_FILES = (
    "edge_risk.geojson",
    "hotspots.geojson",
    "node_risk.csv",
    "density_grid.geojson",
    "clusters.geojson",
    "threat_map.html",
    "alerts.csv",
    "alerts.json",
)
#: More than this share of the incidents without a date is an error, not a warning: the
#: analysis would rest on a small remainder and look like a quiet picture.
_MAX_UNDATED_SHARE = 0.5

# event_type, sub_event_type ("" = any), weight, violent, severe
_DEFAULT_ROWS = [
    ("Violence against civilians", "", 1.0, True, True),
    ("Violence against civilians", "Attack", 1.0, True, True),
    ("Violence against civilians", "Abduction/forced disappearance", 1.0, True, True),
    ("Violence against civilians", "Sexual violence", 1.0, True, True),
    ("Explosions/Remote violence", "", 0.9, True, True),
    ("Explosions/Remote violence", "Remote explosive/landmine/IED", 1.0, True, True),
    ("Explosions/Remote violence", "Suicide bomb", 1.0, True, True),
    ("Explosions/Remote violence", "Chemical weapon", 1.0, True, True),
    ("Explosions/Remote violence", "Grenade", 0.9, True, True),
    ("Explosions/Remote violence", "Air/drone strike", 0.8, True, True),
    ("Explosions/Remote violence", "Shelling/artillery/missile attack", 0.8, True, True),
    ("Battles", "", 0.7, True, False),
    ("Battles", "Armed clash", 0.7, True, False),
    ("Battles", "Non-state actor overtakes territory", 0.6, True, False),
    ("Battles", "Government regains territory", 0.5, True, False),
    ("Riots", "", 0.5, True, False),
    ("Riots", "Mob violence", 0.6, True, False),
    ("Riots", "Violent demonstration", 0.5, True, False),
    ("Protests", "", 0.1, False, False),
    ("Protests", "Excessive force against protesters", 0.6, True, False),
    ("Protests", "Protest with intervention", 0.3, False, False),
    ("Protests", "Peaceful protest", 0.1, False, False),
    ("Strategic developments", "", 0.1, False, False),
    ("Strategic developments", "Arrests", 0.4, False, False),
    ("Strategic developments", "Looting/property destruction", 0.3, False, False),
    ("Strategic developments", "Disrupted weapons use", 0.3, False, False),
    ("Strategic developments", "Headquarters or base established", 0.3, False, False),
    ("Strategic developments", "Change to group/activity", 0.1, False, False),
    ("Strategic developments", "Non-violent transfer of territory", 0.1, False, False),
    ("Strategic developments", "Other", 0.1, False, False),
    ("Strategic developments", "Agreement", 0.05, False, False),
    # UCDP GED type_of_violence (as read by havenmap.layers)
    ("one-sided violence", "", 1.0, True, True),
    ("state-based conflict", "", 0.7, True, False),
    ("non-state conflict", "", 0.7, True, False),
    # generic incident files without a type column
    ("incident", "", 1.0, True, False),
]
#: Default type weights: ``event_type``, ``sub_event_type`` ("" = any sub-event of the type),
#: ``weight`` (>= 0), ``violent`` (counted by early warning and the cluster scan) and
#: ``severe`` (one such event close to a defender raises an alert on its own). Matching
#: ignores case and surrounding spaces; a sub-event the table does not list takes its event
#: type's "" row.
DEFAULT_TYPE_WEIGHTS = pd.DataFrame(
    _DEFAULT_ROWS, columns=["event_type", "sub_event_type", "weight", "violent", "severe"]
)
#: Weight of an event type the table does not know (counted as violent, not severe: the safe side).
UNKNOWN_TYPE_WEIGHT = 0.5
#: ``geo_precision`` → (bandwidth factor, weight factor). See the module docstring.
PRECISION: dict[int, tuple[float, float]] = {1: (1.0, 1.0), 2: (2.0, 0.5), 3: (4.0, 0.25)}
#: Default snapping limit for incidents, metres (times the precision's bandwidth factor).
INCIDENT_MAX_SNAP_M = 500.0
_DAY = pd.Timedelta(days=1)
_MAX_GRID_CELLS = 4_000_000


#: Below this many incidents in use, no Gi* hotspot test is run (see :func:`compute_threat`).
MIN_HOTSPOT_INCIDENTS = 10

# --------------------------------------------------------------------------- type table


def _norm(values: Any) -> pd.Series:
    text = pd.Series(values, dtype="string").fillna("")
    return text.str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()


def read_weights(path: PathLike | pd.DataFrame) -> pd.DataFrame:
    """Read a user's type-weight table and merge it over :data:`DEFAULT_TYPE_WEIGHTS`.

    Parameters
    ----------
    path
        CSV with columns ``event_type``, ``weight`` and optionally ``sub_event_type`` (blank
        = every sub-event of the type), ``violent`` and ``severe`` (true/false; by default
        taken from the built-in row of the same event type, else ``violent = weight >= 0.5``
        and ``severe = false``). Or such a DataFrame.

    Returns
    -------
    pandas.DataFrame
        The merged table: user rows replace default rows with the same types, and a user row
        with a blank ``sub_event_type`` replaces every default row of that event type.

    Raises
    ------
    havenmap.errors.InputError
        Unreadable file, missing column, a weight that is not a number >= 0, a bad boolean.
    """
    label = "<memory>" if isinstance(path, pd.DataFrame) else str(path)
    if isinstance(path, pd.DataFrame):
        raw = path.astype("string")
    else:
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except FileNotFoundError:
            raise InputError(f"{label}: weights file not found") from None
        except IsADirectoryError:
            raise InputError(f"{label}: is a folder; give the weights CSV file") from None
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise InputError(f"{label}: not a readable CSV table ({str(exc).splitlines()[0]})") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    for col in ("event_type", "weight"):
        if col not in raw.columns:
            raise InputError(f"{label}: missing column {col!r}; the table needs event_type,sub_event_type,weight")
    table = pd.DataFrame(
        {
            "event_type": raw["event_type"].fillna("").astype(str).str.strip(),
            "sub_event_type": (
                raw["sub_event_type"].fillna("").astype(str).str.strip() if "sub_event_type" in raw.columns else ""
            ),
        }
    )
    weight = pd.to_numeric(raw["weight"].astype(str).str.strip(), errors="coerce")
    bad = (weight.isna() | (weight < 0) | ~np.isfinite(weight.fillna(0))).to_numpy() | (
        table["event_type"] == ""
    ).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        what = (
            "the event_type is blank"
            if table["event_type"].iloc[row] == ""
            else f"weight {str(raw['weight'].iloc[row])!r} is not a number >= 0"
        )
        raise InputError(f"{label}: row {row + 1}, column 'weight': {what}; fix the row")
    table["weight"] = weight.astype(float).to_numpy()
    defaults = DEFAULT_TYPE_WEIGHTS.assign(_e=_norm(DEFAULT_TYPE_WEIGHTS["event_type"]))
    by_event = defaults[defaults["sub_event_type"] == ""].set_index("_e")
    ev = _norm(table["event_type"])
    for flag in ("violent", "severe"):
        inherited = ev.map(by_event[flag]).astype("boolean")
        fallback = table["weight"] >= 0.5 if flag == "violent" else pd.Series(False, index=table.index)
        value = inherited.fillna(pd.Series(fallback.to_numpy(), index=table.index)).astype(bool)
        if flag in raw.columns:
            given = raw[flag].fillna("").astype(str).str.strip().str.lower()
            parsed = given.map({"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False})
            wrong = (given != "") & parsed.isna()
            if wrong.any():
                row = int(np.flatnonzero(wrong.to_numpy())[0])
                raise InputError(
                    f"{label}: row {row + 1}, column {flag!r}: {given.iloc[row]!r} is not "
                    "true or false; write true/false or leave it blank"
                )
            value = parsed.where(given != "", value).astype(bool)
        table[flag] = value.to_numpy()
    # a user row for a whole event type (blank sub-event) overrides every built-in row of that type,
    # sub-event rows included: otherwise ACLED rows, which always name a sub-event, would never see it
    whole = set(ev[table["sub_event_type"] == ""])
    kept_defaults = DEFAULT_TYPE_WEIGHTS[~_norm(DEFAULT_TYPE_WEIGHTS["event_type"]).isin(whole).to_numpy()]
    merged = pd.concat([kept_defaults, table], ignore_index=True)
    keys = _norm(merged["event_type"]) + "\x00" + _norm(merged["sub_event_type"])
    return merged[~keys.duplicated(keep="last").to_numpy()].reset_index(drop=True)


def _type_table(weights: PathLike | pd.DataFrame | None) -> pd.DataFrame:
    if weights is None:
        return DEFAULT_TYPE_WEIGHTS
    return read_weights(weights)


def _lookup_types(inc: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Per incident: weight, violent, severe; and the mask of unknown event types."""
    key_full = _norm(table["event_type"]) + "\x00" + _norm(table["sub_event_type"])
    full = table.set_index(key_full.to_numpy())[["weight", "violent", "severe"]]
    ev, sub = _norm(inc["event_type"]), _norm(inc["sub_event_type"])
    exact = full.reindex((ev + "\x00" + sub).to_numpy())
    generic = full.reindex((ev + "\x00").to_numpy())
    has = exact["weight"].notna().to_numpy()
    found = pd.DataFrame(
        {
            c: np.where(has, exact[c].to_numpy(dtype=object), generic[c].to_numpy(dtype=object))
            for c in ("weight", "violent", "severe")
        }
    )
    unknown = found["weight"].isna().to_numpy()
    out = pd.DataFrame(
        {
            "type_weight": pd.to_numeric(found["weight"]).fillna(UNKNOWN_TYPE_WEIGHT).to_numpy(dtype=float),
            "violent": found["violent"].where(~unknown, True).to_numpy(dtype=bool),
            "severe_type": found["severe"].where(~unknown, False).to_numpy(dtype=bool),
        },
        index=inc.index,
    )
    return out, unknown


# --------------------------------------------------------------------------- incidents


def _label(frame: pd.DataFrame, default: str = "incidents") -> str:
    return str(frame.attrs.get("source", default))


def _rows_text(frame: pd.DataFrame, mask: np.ndarray, extra: np.ndarray | None = None, limit: int = 5) -> str:
    """``row 3 (id 'X'), row 9 (id 'Y') and 4 more`` for the rows in ``mask`` (1-based rows).

    For incidents merged from several feeds the row of the merged table is in no file, so
    each is named by its record instead: ``incident 'partner:R7'`` (feed and its id).
    """
    rows = np.flatnonzero(mask)
    ids = frame["incident_id"].to_numpy() if "incident_id" in frame.columns else None
    merged = ids is not None and len(frame.attrs.get("merged_feeds", ())) > 1
    parts = []
    for r in rows[:limit].tolist():
        if merged:
            text = f"incident {str(ids[r])!r}"
        else:
            text = f"row {r + 1}" + (f" (id {str(ids[r])!r})" if ids is not None else "")
        if extra is not None:
            text += f" {extra[r]}"
        parts.append(text)
    more = len(rows) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def _as_incidents(incidents: Any) -> gpd.GeoDataFrame:
    if isinstance(incidents, gpd.GeoDataFrame) and set(layers.INCIDENT_COLUMNS) <= set(incidents.columns):
        out = incidents.reset_index(drop=True)
        out.attrs = dict(incidents.attrs)
        return out
    return layers.as_incidents(incidents)


def check_as_of(as_of: Any) -> pd.Timestamp | None:
    """The reference date as a Timestamp (None when not given), checked: only ISO dates (YYYY-MM-DD) are read."""
    return None if as_of is None else _parse_as_of(as_of, pd.Series([], dtype="datetime64[ns]"))


def _parse_as_of(as_of: Any, dates: pd.Series) -> pd.Timestamp | None:
    if as_of is None:
        if dates.notna().any():
            return pd.Timestamp(dates.max()).normalize()
        return None
    value = pd.NaT
    # only ISO dates: '2026' or '05/06/2026' would be read silently as a different day
    iso = r"\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?"
    if not isinstance(as_of, str) or re.fullmatch(iso, as_of.strip()):
        try:
            value = pd.Timestamp(as_of.strip() if isinstance(as_of, str) else as_of)
        except (ValueError, TypeError):
            value = pd.NaT
    if pd.isna(value):
        raise InputError(f"--as-of {str(as_of)!r} is not a date; write it as YYYY-MM-DD (for example 2026-11-20)")
    if value.tzinfo is not None:
        value = value.tz_convert("UTC").tz_localize(None)
    return value


def _age_days(dates: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    """Age in days (0 on the as-of day for day-precision dates); negative = after ``as_of``."""
    end = as_of + _DAY - pd.Timedelta(1) if as_of == as_of.normalize() else as_of
    age = ((as_of - dates) / _DAY).to_numpy(dtype=float)
    future = (dates > end).to_numpy()
    return np.where(future, -1.0, np.maximum(age, 0.0))


def weigh_incidents(
    incidents: Any,
    as_of: Any = None,
    *,
    half_life_days: float = 30.0,
    weights: PathLike | pd.DataFrame | None = None,
    precision: dict[int, tuple[float, float]] | None = None,
) -> gpd.GeoDataFrame:
    """Weight each incident by type, fatalities, age and location precision.

    Parameters
    ----------
    incidents
        Canonical incidents (:func:`havenmap.layers.read_incidents`), or anything
        :func:`havenmap.layers.as_incidents` reads (a path, a DataFrame).
    as_of
        Reference date (str, date or Timestamp). Default: the latest incident date.
    half_life_days
        Age at which the weight halves, days (``inf``: no decay).
    weights
        A type-weight table (CSV path or DataFrame, see :func:`read_weights`); default
        :data:`DEFAULT_TYPE_WEIGHTS`.
    precision
        ``geo_precision`` → (bandwidth factor, weight factor); default :data:`PRECISION`.

    Returns
    -------
    geopandas.GeoDataFrame
        The incidents (EPSG:4326) with added columns ``type_weight``, ``violent``,
        ``severe`` (severe type or fatalities >= 1), ``fatality_factor``, ``age_days``
        (days before ``as_of``), ``decay``, ``precision_weight``, ``bandwidth_factor``,
        ``weight`` (the product; 0 when left out) and ``status`` ('used', 'future', 'no date').
        ``attrs['as_of']`` holds the reference date (None when there are no dates).

    Warns
    -----
    UserWarning
        Unknown event types (default weight), incidents after ``as_of`` (left out),
        rows without a date or fatality count, all naming the rows.
    """
    if not half_life_days > 0:
        raise InputError(f"--half-life-days {half_life_days}: use a number of days > 0")
    inc = _as_incidents(incidents)
    label = _label(inc)
    out = inc.copy()
    out.attrs = dict(inc.attrs)
    prec = PRECISION if precision is None else precision
    table = _type_table(weights)

    types, unknown = _lookup_types(out, table)
    if unknown.any():
        shown = sorted({str(t) or "(blank)" for t in out.loc[unknown, "event_type"]})[:5]
        warnings.warn(
            f"{label}: unknown event type {', '.join(repr(s) for s in shown)} in {_rows_text(out, unknown)}; "
            f"weighted {UNKNOWN_TYPE_WEIGHT} (default); add the type to a --weights table "
            "(event_type,sub_event_type,weight) to set its weight",
            UserWarning,
            stacklevel=2,
        )
    fat = pd.to_numeric(out["fatalities"], errors="coerce").to_numpy(dtype=float)
    nan_fat = ~np.isfinite(fat)
    if nan_fat.any():
        warnings.warn(
            f"{label}: fatalities missing in {_rows_text(out, nan_fat)}; counted as 0", UserWarning, stacklevel=2
        )
    fat = np.where(nan_fat, 0.0, np.maximum(fat, 0.0))

    dates = pd.to_datetime(out["date"], errors="coerce")
    ref = _parse_as_of(as_of, dates)
    status = np.full(len(out), "used", dtype=object)
    if ref is None:
        warnings.warn(
            f"{label}: the incidents have no dates; no age decay applied (and no early warning "
            "or cluster scan is possible)",
            UserWarning,
            stacklevel=2,
        )
        age = np.zeros(len(out))
    else:
        no_date = dates.isna().to_numpy()
        _check_dated(label, out, no_date, ref)
        if no_date.any():
            warnings.warn(
                f"{label}: no date in {_rows_text(out, no_date)}; left out (add the date)", UserWarning, stacklevel=2
            )
        age = _age_days(dates, ref)
        future = (age < 0) & ~no_date
        if future.any() and future.sum() + no_date.sum() == len(out):
            first = pd.Timestamp(dates[future].min()).date()
            raise InputError(
                f"{label}: every incident is dated after the as-of date {ref.date()} (the earliest is {first}), "
                "so none could be used; check --as-of (as_of=)"
            )
        if future.any():
            warnings.warn(
                f"{label}: {int(future.sum())} incident(s) dated after the as-of date "
                f"{ref.date()} are left out: {_rows_text(out, future)}",
                UserWarning,
                stacklevel=2,
            )
        status[future] = "future"
        status[no_date] = "no date"
        age = np.where(no_date | future, np.nan, age)

    codes = pd.to_numeric(out["geo_precision"], errors="coerce").fillna(1).to_numpy()
    codes = np.clip(np.ceil(codes), min(prec), max(prec)).astype(int)
    bw_factor = np.array([prec[c][0] for c in codes]) if len(codes) else np.zeros(0)
    pw = np.array([prec[c][1] for c in codes]) if len(codes) else np.zeros(0)
    decay = 0.5 ** (np.nan_to_num(age, nan=0.0) / half_life_days)
    weight = types["type_weight"].to_numpy() * (1.0 + np.log1p(fat)) * decay * pw
    weight = np.where(status == "used", weight, 0.0)

    out["type_weight"] = types["type_weight"].to_numpy()
    out["violent"] = types["violent"].to_numpy()
    out["severe"] = types["severe_type"].to_numpy() | (fat >= 1)
    out["fatality_factor"] = 1.0 + np.log1p(fat)
    out["age_days"] = age
    out["decay"] = decay
    out["precision_weight"] = pw
    out["bandwidth_factor"] = bw_factor
    out["weight"] = weight
    out["status"] = pd.array(status, dtype="string")
    out.attrs["as_of"] = ref
    return _geometry_last(out)


def _check_dated(label: str, frame: pd.DataFrame, no_date: np.ndarray, ref: pd.Timestamp) -> None:
    """Refuse incidents that are mostly undated: leaving them out would look like a quiet picture."""
    if not no_date.any() or no_date.mean() <= _MAX_UNDATED_SHARE:
        return
    if no_date.all():
        raise InputError(
            f"{label}: no incident has a date (no date column: ACLED's event_date, UCDP GED's date_start, or a "
            f"date column), so every one would be left out as of {ref.date()}; add the dates or name the "
            "column with date_column="
        )
    raise InputError(
        f"{label}: {int(no_date.sum()):,} of {len(frame):,} incidents have no date ({_rows_text(frame, no_date)}); "
        "fill in the dates: leaving most incidents out would understate the threat"
    )


def _geometry_last(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    name = frame.geometry.name
    cols = [c for c in frame.columns if c != name] + [name]
    out = frame[cols]
    out.attrs = dict(frame.attrs)
    return out


def snap_incidents(
    net: RoadNetwork, incidents: gpd.GeoDataFrame, max_snap_m: float = INCIDENT_MAX_SNAP_M
) -> gpd.GeoDataFrame:
    """Snap weighted incidents (:func:`weigh_incidents`) onto ``net`` once, for repeated analyses.

    Incidents farther than ``max_snap_m`` times their precision's bandwidth factor from every
    road are off the network (one warning naming them). The result has the snapping columns
    of :func:`havenmap.snap_points` (``edge``, ``edge_fraction``, ``on_network`` ...);
    :func:`compute_threat` and :func:`early_warning` use them as they are instead of snapping
    again (a backtest scores many dates on the same incidents).
    """
    return _snap_incidents(net, incidents, max_snap_m)


def _is_snapped(frame: pd.DataFrame) -> bool:
    return {"edge", "edge_fraction", "on_network"} <= set(frame.columns)


def _snap_incidents(net: RoadNetwork, inc: gpd.GeoDataFrame, max_snap_m: float) -> gpd.GeoDataFrame:
    """Snap incidents; those farther than ``max_snap_m × bandwidth factor`` are off-network (warned)."""
    factor = inc["bandwidth_factor"].to_numpy(dtype=float) if "bandwidth_factor" in inc else np.ones(len(inc))
    limit = max_snap_m * np.maximum(factor, 1.0)
    snapped = snap_points(net, inc, max_distance_m=float(limit.max()) if len(inc) else max_snap_m)
    on = snapped["snap_distance_m"].to_numpy() <= limit
    off = ~on
    if off.any():
        dist = np.array([f"{d:,.0f} m" for d in snapped["snap_distance_m"].to_numpy()], dtype=object)
        warnings.warn(
            f"{_label(inc)}: {int(off.sum())} incident(s) lie farther than {max_snap_m:.0f} m from the road "
            f"network and are left out: {_rows_text(inc, off, dist)}; check their coordinates "
            "(or raise --max-snap-m)",
            UserWarning,
            stacklevel=3,
        )
    snapped["on_network"] = on
    snapped["edge"] = np.where(on, snapped["edge"].to_numpy(), -1)
    return snapped


# --------------------------------------------------------------------------- risk


@dataclass
class DensityGrid:
    """A planar density grid in the network CRS.

    ``values[row, col]`` is the density (weighted incidents per km²) of the cell whose
    lower-left corner is ``(x0 + col·cell_m, y0 + row·cell_m)``.
    """

    x0: float
    y0: float
    cell_m: float
    values: np.ndarray
    crs: Any

    def to_gdf(self, min_value: float = 0.0) -> gpd.GeoDataFrame:
        """Cell centres with ``density > min_value`` as points (EPSG:4326), column ``density``."""
        rows, cols = np.nonzero(self.values > min_value)
        x = self.x0 + (cols + 0.5) * self.cell_m
        y = self.y0 + (rows + 0.5) * self.cell_m
        frame = gpd.GeoDataFrame({"density": self.values[rows, cols]}, geometry=shapely.points(x, y), crs=self.crs)
        return frame.to_crs("EPSG:4326")


def _planar_grid(xy: np.ndarray, weight: np.ndarray, bw: np.ndarray, bounds: np.ndarray, cell_m: float) -> DensityGrid:
    """Quartic planar KDE on a grid: per bandwidth class, bin the weights then convolve."""
    pad = float(bw.max()) if len(bw) else 0.0
    lo, hi = bounds[0] - pad, bounds[1] + pad
    span = hi - lo
    cell = float(cell_m)
    cells = np.prod(np.ceil(span / cell) + 1)
    if cells > _MAX_GRID_CELLS:
        cell = float(np.sqrt(span[0] * span[1] / _MAX_GRID_CELLS)) * 1.01
        warnings.warn(
            f"density grid: {cell_m:.0f} m cells would make {cells:,.0f} cells; using {cell:.0f} m",
            UserWarning,
            stacklevel=3,
        )
    nx, ny = (np.ceil(span / cell).astype(int) + 1).tolist()
    values = np.zeros((ny, nx))
    for h in np.unique(bw):
        sel = bw == h
        hist, _, _ = np.histogram2d(
            xy[sel, 1],
            xy[sel, 0],
            bins=(ny, nx),
            range=((lo[1], lo[1] + ny * cell), (lo[0], lo[0] + nx * cell)),
            weights=weight[sel],
        )
        r = max(int(np.ceil(h / cell)), 1)
        off = np.arange(-r, r + 1) * cell
        d2 = (off[None, :] ** 2 + off[:, None] ** 2) / (h * h)
        stencil = np.where(d2 < 1.0, (1.0 - d2) ** 2, 0.0)
        if stencil.sum() == 0:
            stencil[r, r] = 1.0
        stencil /= stencil.sum() * (cell / 1000.0) ** 2  # each incident's mass 1, per km²
        values += fftconvolve(hist, stencil, mode="same")
    return DensityGrid(float(lo[0]), float(lo[1]), cell, np.maximum(values, 0.0), None)


def _edge_risk_from_incidents(
    net: RoadNetwork, snapped: gpd.GeoDataFrame, bandwidth_m: float, kernel: str, bin_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per directed edge risk and per node density (weighted incidents per km)."""
    w = snapped["weight"].to_numpy(dtype=float)
    edge = snapped["edge"].to_numpy()
    use = (edge >= 0) & (w > 0)
    if not use.any():
        return np.zeros(net.n_edges), np.zeros(net.n_nodes)
    graph = _graph.undirected_graph(net)
    canon = net.canonical_edge
    places = _graph.Places(
        np.full(int(use.sum()), -1), edge[use].astype(np.int64), snapped["edge_fraction"].to_numpy(dtype=float)[use]
    )
    _, road, pos = _graph.road_positions(net, places)
    w = w[use]
    piece = graph.piece_of(road)
    offset = np.clip(pos, 0.0, 1.0) * net.edge_length[road]
    cell = np.floor(offset / bin_m).astype(np.int64)  # merge incidents within one bin of each other
    factor = snapped["bandwidth_factor"].to_numpy(dtype=float)[use]
    node_density = np.zeros(net.n_nodes)
    piece_mass = np.zeros(len(graph.a))
    for f in np.unique(factor).tolist():
        sel = factor == f
        keys, pos = np.unique(np.column_stack([piece[sel], cell[sel]]), axis=0, return_inverse=True)
        pos = pos.ravel()
        wc = np.bincount(pos, weights=w[sel], minlength=len(keys))
        oc = np.bincount(pos, weights=w[sel] * offset[sel], minlength=len(keys)) / wc  # weighted mean offset
        nd, pm = network_kde(graph, keys[:, 0], oc, wc, bandwidth_m * f, kernel)
        node_density += nd
        piece_mass += pm
    mass = np.zeros(net.n_edges)
    mass[graph.parent] = piece_mass
    length = net.edge_length
    mean = np.divide(mass, length, out=np.zeros(net.n_edges), where=length > 0)
    node_risk = node_density * 1000.0
    mean = np.where(length > 0, mean * 1000.0, node_risk[net.edge_u])
    return np.maximum(mean[canon], 0.0), node_risk


# --------------------------------------------------------------------------- estimators

#: Risk estimators of :func:`compute_threat` (``method=``); the first is the default. See the
#: module docstring: 'mix' adds each place's long-term rate to the recent activity around it,
#: 'kde' is one network kernel density with one half-life (the default before backtests).
THREAT_METHODS = ("mix", "kde")
DEFAULT_METHOD = THREAT_METHODS[0]
#: Default parameters per method (chosen by ``benchmarks/tune_threat.py`` for 'mix').
METHOD_DEFAULTS: dict[str, dict[str, float]] = {
    "mix": {
        "bandwidth_m": 250.0,
        "half_life_days": 21.0,
        "place_bandwidth_m": 25.0,
        "place_half_life_days": 120.0,
        "recent_share": 0.2,
    },
    "kde": {"bandwidth_m": 400.0, "half_life_days": 30.0},
}
_MIX_ONLY = ("place_bandwidth_m", "place_half_life_days", "recent_share")


def _method_spec(method: str | None, given: dict[str, float | None]) -> tuple[str, dict[str, float]]:
    """The method's parameters: its defaults, overridden by the values given (None = default)."""
    method = DEFAULT_METHOD if method is None else method
    if method not in THREAT_METHODS:
        raise InputError(f"--method {method!r}: use one of {', '.join(THREAT_METHODS)}")
    spec = dict(METHOD_DEFAULTS[method])
    for name, value in given.items():
        if value is None:
            continue
        if name not in spec:
            raise InputError(f"{name} applies to --method mix only, not {method!r}")
        spec[name] = float(value)
    for name in ("bandwidth_m", "half_life_days", "place_bandwidth_m", "place_half_life_days"):
        if name in spec and not spec[name] > 0:
            raise InputError(f"--{name.replace('_', '-')} {spec[name]:g}: use a number > 0")
    if "recent_share" in spec and not 0.0 <= spec["recent_share"] <= 1.0:
        raise InputError(f"recent_share {spec['recent_share']:g}: use a share between 0 and 1")
    return method, spec


def _estimate(
    net: RoadNetwork, snapped: gpd.GeoDataFrame, method: str, spec: dict[str, float], kernel: str, bin_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-edge risk and node risk (weighted incidents per km) by ``method``.

    For 'mix' the incidents' ``decay`` and ``weight`` columns are rewritten with the two
    memories combined (what the Gi* hotspots and the density grid then use).
    """
    if method == "kde":
        return _edge_risk_from_incidents(net, snapped, spec["bandwidth_m"], kernel, bin_m)
    used = (snapped["status"] == "used").to_numpy()
    static = np.where(
        used,
        snapped["type_weight"].to_numpy(dtype=float)
        * snapped["fatality_factor"].to_numpy(dtype=float)
        * snapped["precision_weight"].to_numpy(dtype=float),
        0.0,
    )
    age = np.nan_to_num(snapped["age_days"].to_numpy(dtype=float), nan=0.0)
    t_place, t_recent, share = spec["place_half_life_days"], spec["half_life_days"], spec["recent_share"]
    # rates per day of the two memories, scaled so that a fresh incident weighs 1 in all
    place = (1.0 - share) * 0.5 ** (age / t_place) / t_place
    recent = share * 0.5 ** (age / t_recent) / t_recent
    norm = (1.0 - share) / t_place + share / t_recent
    snapped["decay"] = (place + recent) / norm
    snapped["weight"] = static * snapped["decay"].to_numpy()
    risk, node_risk = np.zeros(net.n_edges), np.zeros(net.n_nodes)
    for part_weight, bandwidth in ((place, spec["place_bandwidth_m"]), (recent, spec["bandwidth_m"])):
        part = snapped[["edge", "edge_fraction", "bandwidth_factor"]].copy()
        part["weight"] = static * part_weight / norm
        r, n = _edge_risk_from_incidents(net, part, bandwidth, kernel, bin_m)
        risk += r
        node_risk += n
    return risk, node_risk


# --------------------------------------------------------------------------- Gi*


def getis_ord_star(
    y: np.ndarray, w: sparse.spmatrix, *, permutations: int = 0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Getis-Ord Gi* z-scores and two-sided p-values with binary weights.

    Parameters
    ----------
    y
        Values per observation.
    w
        Binary (0/1) n × n weights *including the diagonal* (Gi* counts each observation in
        its own neighbourhood).
    permutations
        0: analytic (normal) p-values. > 0: esda's conditional permutation p-values
        (``esda.G_Local(..., transform='B', star=True, permutations=..., seed=...)``).

    Returns
    -------
    (z, p)
        ``z`` equals esda's ``Zs``; ``p`` is two-sided: ``2 · p_norm`` (analytic) or
        ``min(1, 2 · p_sim)`` (permutations). Undefined cases (no variation) give z 0, p 1.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    w = sparse.csr_matrix(w, dtype=np.float64)
    total = y.sum()
    if n < 3 or total == 0:
        return np.zeros(n), np.ones(n)
    mean = total / n
    var = (y * y).sum() / n - mean * mean
    card = np.asarray(w.sum(axis=1)).ravel()
    g = (w @ y) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        vg = card * (n - card) / (n - 1) / n**2 * var / mean**2
        z = (g - card / n) / np.sqrt(vg)
    z = np.where(np.isfinite(z), z, 0.0)
    if permutations <= 0:
        return z, np.minimum(1.0, 2.0 * stats.norm.sf(np.abs(z)))
    import esda
    from libpysal.weights import WSP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = esda.G_Local(
            y,
            WSP(w).to_W(silence_warnings=True),
            transform="B",
            star=True,
            permutations=permutations,
            seed=seed,
            keep_simulations=False,
            n_jobs=1,
        )
    return z, np.minimum(1.0, 2.0 * np.asarray(local.p_sim, dtype=float))


def _significance(z: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.full(len(z), "not significant", dtype=object)
    for level, name in ((0.10, "90%"), (0.05, "95%"), (0.01, "99%")):
        out[(p < level) & (z > 0)] = f"hot {name}"
        out[(p < level) & (z < 0)] = f"cold {name}"
    return out


def _band_weights(net: RoadNetwork, band_m: float) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Physical road pieces and the binary weights "midpoints within ``band_m`` of each other" (cached)."""

    def build() -> tuple[np.ndarray, sparse.csr_matrix]:
        phys = net.undirected_edges
        midpoints = _graph.Places(np.full(len(phys), -1), phys, np.full(len(phys), 0.5))
        s, t, _ = _graph.pairs_within(net, midpoints, midpoints, band_m)
        w = sparse.csr_matrix((np.ones(len(s)), (s, t)), shape=(len(phys), len(phys)))
        w.data[:] = 1.0  # duplicates (none expected) stay binary
        w = w.maximum(sparse.identity(len(phys), format="csr")).tocsr()
        return phys, w

    return net.cached(("gi_band", float(band_m)), build)


# --------------------------------------------------------------------------- clusters


def space_time_clusters(
    net: RoadNetwork,
    incidents: Any,
    as_of: Any = None,
    *,
    weights: PathLike | pd.DataFrame | None = None,
    cell_m: float = 250.0,
    max_radius_m: float = 1000.0,
    max_window_days: int = 14,
    history_days: int = 365,
    permutations: int = 999,
    alpha: float = 0.05,
    seed: int = 0,
    min_cases: int = 3,
) -> gpd.GeoDataFrame:
    """Emerging space-time clusters of violent incidents (prospective space-time permutation scan).

    Parameters
    ----------
    net
        The road network (its CRS is the grid's; incidents off the network are left out).
    incidents
        Incidents, raw or already weighted (:func:`weigh_incidents`).
    as_of
        The last day of the study period; clusters must still be going on then.
    cell_m
        Grid cell side, metres.
    max_radius_m
        Largest cluster radius, metres.
    max_window_days
        Longest cluster duration, days (ending on ``as_of``).
    history_days
        Study period, days before ``as_of``.
    permutations, seed
        Monte Carlo replicates and their seed.
    alpha
        Only clusters with ``p_value <= alpha`` are returned.

    Returns
    -------
    geopandas.GeoDataFrame
        ``cluster_id``, ``start_date``, ``end_date`` (ISO dates), ``days``, ``observed``,
        ``expected``, ``relative_risk``, ``llr``, ``p_value``, ``radius_m``, ``cells``;
        geometry = the union of the cluster's grid cells (EPSG:4326). Empty when none.
    """
    inc = (
        incidents
        if "violent" in getattr(incidents, "columns", [])
        else weigh_incidents(incidents, as_of, weights=weights)
    )
    ref = (
        _parse_as_of(as_of, pd.to_datetime(inc["date"], errors="coerce"))
        if as_of is not None
        else inc.attrs.get("as_of")
    )
    columns = [
        "cluster_id",
        "start_date",
        "end_date",
        "days",
        "observed",
        "expected",
        "relative_risk",
        "llr",
        "p_value",
        "radius_m",
        "cells",
    ]
    empty = gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs="EPSG:4326")
    if ref is None:
        return empty
    age = _age_days(pd.to_datetime(inc["date"], errors="coerce"), ref)
    keep = np.isfinite(age) & (age >= 0) & (age < history_days) & inc["violent"].to_numpy(dtype=bool)
    if "on_network" in inc.columns:
        keep &= inc["on_network"].to_numpy(dtype=bool)
    if keep.sum() < min_cases:
        return empty
    xy = np.column_stack(shapely.get_coordinates(inc.geometry[keep].to_crs(net.crs).to_numpy()).T)
    day_back = np.floor(age[keep]).astype(np.int64)
    n_days = int(min(history_days, day_back.max() + 1))
    found = space_time_scan(
        xy[:, 0],
        xy[:, 1],
        n_days - 1 - day_back,
        n_days,
        cell_m=cell_m,
        max_radius_m=max_radius_m,
        max_window_days=max_window_days,
        permutations=permutations,
        seed=seed,
        min_cases=min_cases,
    )
    found = [c for c in found if c.p_value <= alpha]
    if not found:
        return empty
    rows, geoms = [], []
    for i, c in enumerate(found):
        boxes = shapely.box(
            c.cells[:, 0] * cell_m, c.cells[:, 1] * cell_m, (c.cells[:, 0] + 1) * cell_m, (c.cells[:, 1] + 1) * cell_m
        )
        geoms.append(shapely.union_all(boxes))
        start = ref.normalize() - pd.Timedelta(days=c.days - 1)
        rows.append(
            {
                "cluster_id": i + 1,
                "start_date": start.date().isoformat(),
                "end_date": ref.date().isoformat(),
                "days": c.days,
                "observed": c.observed,
                "expected": round(c.expected, 3),
                "relative_risk": round(c.relative_risk, 3),
                "llr": round(c.llr, 3),
                "p_value": c.p_value,
                "radius_m": round(c.radius_m, 1),
                "cells": len(c.cells),
            }
        )
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=net.crs).to_crs("EPSG:4326")


# --------------------------------------------------------------------------- result


@dataclass(eq=False)
class ThreatResult:
    """The threat picture of one network at one date.

    Attributes
    ----------
    net : RoadNetwork
    as_of : pandas.Timestamp or None
    risk : (m,) float
        Per directed edge (aligned with edge indices): mean kernel density along the edge,
        weighted incidents per km of road, >= 0. Twins carry the same value.
    node_risk : (n,) float
        Density at each node, weighted incidents per km.
    incidents : geopandas.GeoDataFrame
        The incidents with their weights (:func:`weigh_incidents`) and snapping columns
        (``edge``, ``edge_fraction``, ``snap_distance_m``, ``on_network``).
    grid : DensityGrid or None
        Planar density (weighted incidents per km²).
    gi : pandas.DataFrame or None
        Gi* for every physical road piece: ``edge``, ``value`` (incident weight on it),
        ``gi_z``, ``p_value``, ``q_value`` (FDR), ``significance``.
    clusters : geopandas.GeoDataFrame or None
        Emerging space-time clusters (:func:`space_time_clusters`).
    params : dict
        The parameters used.
    """

    net: RoadNetwork
    as_of: pd.Timestamp | None
    risk: np.ndarray
    node_risk: np.ndarray
    incidents: gpd.GeoDataFrame
    grid: DensityGrid | None = None
    gi: pd.DataFrame | None = None
    clusters: gpd.GeoDataFrame | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def _edges4326(self) -> gpd.GeoDataFrame:
        net = self.net
        frame = gpd.GeoDataFrame(
            {
                "u": net.node_id[net.edge_u],
                "v": net.node_id[net.edge_v],
                "key": net.edge_key,
                "edge": np.arange(net.n_edges),
                "name": net.edge_attrs["name"].to_numpy() if "name" in net.edge_attrs else None,
                "highway": net.edge_attrs["highway"].to_numpy() if "highway" in net.edge_attrs else None,
            },
            geometry=net.edge_geometries(),
            crs=net.crs,
        )
        return frame.to_crs("EPSG:4326")

    @property
    def edge_risk(self) -> gpd.GeoDataFrame:
        """Every directed edge: ``u, v, key`` (node ids, osmnx key), ``edge``, ``risk``, ``name``,
        ``highway``, geometry LineString (EPSG:4326)."""
        frame = self._edges4326.copy()
        frame.insert(4, "risk", self.risk)
        return frame

    @property
    def hotspots(self) -> gpd.GeoDataFrame:
        """Significant hot road pieces (one row per physical road, its lower-index direction):
        ``u, v, key, edge, risk, gi_z, p_value, q_value, significance``, geometry (EPSG:4326)."""
        cols = ["u", "v", "key", "edge", "risk", "gi_z", "p_value", "q_value", "significance", "name"]
        if self.gi is None:
            return gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs="EPSG:4326")
        hot = self.gi[self.gi["significance"].str.startswith("hot")]
        frame = self.edge_risk.iloc[hot["edge"].to_numpy()].reset_index(drop=True)
        for c in ("gi_z", "p_value", "q_value", "significance"):
            frame[c] = hot[c].to_numpy()
        return frame[[*cols, "geometry"]].sort_values("gi_z", ascending=False).reset_index(drop=True)


def compute_threat(
    net: RoadNetwork,
    incidents: Any,
    as_of: Any = None,
    *,
    bandwidth_m: float | None = None,
    half_life_days: float | None = None,
    weights: PathLike | pd.DataFrame | None = None,
    precision: dict[int, tuple[float, float]] | None = None,
    kernel: str = "quartic",
    max_snap_m: float = INCIDENT_MAX_SNAP_M,
    bin_m: float | None = None,
    cell_m: float = 100.0,
    grid: bool = True,
    hotspots: bool = True,
    hotspot_band_m: float | None = None,
    permutations: int = 0,
    fdr: bool = True,
    clusters: bool = True,
    cluster_permutations: int = 999,
    seed: int = 0,
    min_hotspot_incidents: int = MIN_HOTSPOT_INCIDENTS,
    method: str | None = None,
    place_bandwidth_m: float | None = None,
    place_half_life_days: float | None = None,
    recent_share: float | None = None,
) -> ThreatResult:
    """Weighted incidents → per-edge risk, node risk, density grid, Gi* hotspots, clusters.

    Parameters
    ----------
    net
        The road network.
    incidents
        Incidents (:func:`havenmap.layers.read_incidents` output, a path, or a DataFrame).
    as_of
        Reference date; default the latest incident date.
    bandwidth_m
        Kernel bandwidth, metres of network distance (times the precision factor); for
        'mix', of the recent component. Default: the method's (:data:`METHOD_DEFAULTS`:
        'mix' 250 m, 'kde' 400 m).
    half_life_days
        Age decay half-life, days; for 'mix', of the recent component. Default: the
        method's ('mix' 21 days, 'kde' 30 days).
    weights
        Type-weight table (CSV path or DataFrame; :func:`read_weights`).
    precision
        ``geo_precision`` → (bandwidth factor, weight factor); default :data:`PRECISION`.
    kernel
        'quartic' (default), 'epanechnikov', 'triangular' or 'uniform'.
    max_snap_m
        Incidents farther from every road (metres, times the precision's bandwidth factor)
        are left out with a warning.
    bin_m
        Incidents on the same edge within one bin of each other (metres along the edge,
        default 1 m) are merged at their weighted mean position before the density.
    cell_m
        Planar grid cell side, metres.
    grid, hotspots, clusters
        Compute the density grid, the Gi* hotspots, the space-time clusters.
    min_hotspot_incidents
        Fewer incidents in use than this: no hotspot test (Gi* on a handful of events on
        mostly empty roads flags whole neighbourhoods as significant).
    hotspot_band_m
        Gi* neighbourhood: road pieces within this network distance (midpoint to midpoint);
        default ``bandwidth_m / 2``.
    permutations
        Gi* permutations (0 = analytic p-values, fast; > 0 uses esda, slow on big networks).
    fdr
        Classify hotspots on Benjamini-Hochberg q-values (default) instead of raw p-values.
    cluster_permutations, seed
        Monte Carlo replicates of the space-time scan, and the seed of all randomness.
    method
        Risk estimator: 'mix' (default) or 'kde' (see the module docstring).
    place_bandwidth_m, place_half_life_days, recent_share
        'mix' only: bandwidth (default 25 m) and half-life (120 days) of the place component,
        and the recent component's share of the forecast rate (0.2).

    Returns
    -------
    ThreatResult
        ``risk`` in weighted incidents per km of road (each incident's weight times its age
        decay: for 'mix' the two memories combined, 1 for a fresh incident).
    """
    if kernel not in KERNELS:
        raise InputError(f"unknown kernel {kernel!r}; use one of {', '.join(KERNELS)}")
    method, spec = _method_spec(
        method,
        {
            "bandwidth_m": bandwidth_m,
            "half_life_days": half_life_days,
            "place_bandwidth_m": place_bandwidth_m,
            "place_half_life_days": place_half_life_days,
            "recent_share": recent_share,
        },
    )
    bandwidth_m, half_life_days = spec["bandwidth_m"], spec["half_life_days"]
    if not bandwidth_m > 0:
        raise InputError(f"--bandwidth-m {bandwidth_m}: use a distance in metres > 0")
    if not cell_m > 0:
        raise InputError(f"--cell-m {cell_m}: use a cell size in metres > 0")
    weighted = weigh_incidents(incidents, as_of, half_life_days=half_life_days, weights=weights, precision=precision)
    ref = weighted.attrs.get("as_of")
    snapped = weighted if _is_snapped(weighted) else _snap_incidents(net, weighted, max_snap_m)
    snapped.loc[~snapped["on_network"].to_numpy(), "weight"] = 0.0
    snapped.loc[~snapped["on_network"].to_numpy() & (snapped["status"] == "used").to_numpy(), "status"] = "off network"
    snapped.attrs = dict(weighted.attrs)
    bin_m = 1.0 if bin_m is None else float(bin_m)
    risk, node_risk = _estimate(net, snapped, method, spec, kernel, bin_m)
    result = ThreatResult(
        net=net,
        as_of=ref,
        risk=risk,
        node_risk=node_risk,
        incidents=snapped,
        params={
            "method": method,
            **spec,
            "kernel": kernel,
            "max_snap_m": max_snap_m,
            "bin_m": bin_m,
            "cell_m": cell_m,
            "permutations": permutations,
            "fdr": fdr,
            "seed": seed,
        },
    )
    used = snapped["weight"].to_numpy() > 0
    if grid:
        xy = shapely.get_coordinates(snapped.geometry[used].to_crs(net.crs).to_numpy())
        bounds = np.vstack([net.node_xy.min(axis=0), net.node_xy.max(axis=0)])
        result.grid = _planar_grid(
            xy,
            snapped["weight"].to_numpy()[used],
            bandwidth_m * snapped["bandwidth_factor"].to_numpy()[used],
            bounds,
            cell_m,
        )
        result.grid.crs = net.crs
    if hotspots and used.sum() < min_hotspot_incidents:
        warnings.warn(
            f"only {int(used.sum())} incident(s) in use: too few for a hotspot test (need at least "
            f"{min_hotspot_incidents}); no hotspots reported",
            UserWarning,
            stacklevel=2,
        )
        hotspots = False
    if hotspots:
        band = bandwidth_m / 2.0 if hotspot_band_m is None else float(hotspot_band_m)
        result.params["hotspot_band_m"] = band
        phys, w = _band_weights(net, band)
        canon = net.canonical_edge
        value = np.bincount(
            canon[snapped["edge"].to_numpy()[used]], weights=snapped["weight"].to_numpy()[used], minlength=net.n_edges
        )[phys]
        z, p = getis_ord_star(value, w, permutations=permutations, seed=seed)
        q = stats.false_discovery_control(p) if fdr and len(p) else p
        result.gi = pd.DataFrame(
            {
                "edge": phys,
                "value": value,
                "gi_z": z,
                "p_value": p,
                "q_value": q,
                "significance": _significance(z, q if fdr else p),
            }
        )
    if clusters and ref is not None:
        result.clusters = space_time_clusters(net, snapped, ref, permutations=cluster_permutations, seed=seed)
    return result


# --------------------------------------------------------------------------- early warning

_ALERT_COLUMNS = [
    "defender_id",
    "score",
    "level",
    "reason",
    "recent_count",
    "baseline_count",
    "baseline_rate_per_week",
    "expected_recent",
    "p_value",
    "severe_count",
    "nearest_m",
    "nearest_street",
    "distance_m",
    "recent_days",
    "baseline_days",
    "as_of",
]


def alert_date(weighted: pd.DataFrame, as_of: Any = None) -> pd.Timestamp:
    """The date early warning looks back from: ``as_of``, else the weighted incidents' reference date.

    Raises
    ------
    havenmap.errors.InputError
        The incidents have no dates (early warning counts events per day window).
    """
    dates = pd.to_datetime(weighted["date"], errors="coerce")
    ref = _parse_as_of(as_of, dates) if as_of is not None else weighted.attrs.get("as_of")
    if ref is None:
        raise InputError(
            f"{_label(weighted)}: the incidents have no dates; early warning needs an event date "
            "per incident (ACLED's event_date, UCDP GED's date_start, or a date column)"
        )
    return ref


def early_warning(
    net: RoadNetwork,
    incidents: Any,
    defenders: Any,
    as_of: Any = None,
    *,
    distance_m: float = 1000.0,
    recent_days: int = 7,
    baseline_days: int = 90,
    alpha: float = 0.01,
    weights: PathLike | pd.DataFrame | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    incident_max_snap_m: float = INCIDENT_MAX_SNAP_M,
) -> pd.DataFrame:
    """Ranked alerts for defenders facing a surge of violence or a severe incident nearby.

    For each defender (snapped to the road), the violent incidents (``violent`` in the type
    table) within network distance ``distance_m`` are counted in the recent window (the last
    ``recent_days`` days up to ``as_of``) and in the baseline window (the ``baseline_days``
    before it). The baseline rate, with half an event added so that a quiet baseline is not
    a rate of exactly zero, gives the expected recent count
    ``lambda = (baseline + 0.5) · recent_days / baseline_days``; the surge p-value is
    ``P(X >= recent)`` for ``X ~ Poisson(lambda)`` (``scipy.stats.poisson.sf``).

    A defender is alerted when ``p < alpha`` or when a *severe* incident (fatalities >= 1, or
    a severe type: violence against civilians, explosions, one-sided violence) happened
    within ``distance_m / 2`` in the recent window.

    Score (higher = more urgent) = ``-log10(p)`` (capped at 15) + 2 × the sum over close
    severe incidents of ``1 + ln(1 + fatalities)``. Level: 'critical' when both a surge and a
    close severe incident; 'high' when a surge or a close deadly incident; else 'elevated'
    (a close severe incident without deaths).

    Returns
    -------
    pandas.DataFrame
        One row per alerted defender, most urgent first: ``defender_id``, ``score``,
        ``level``, ``reason`` (in words), ``recent_count``, ``baseline_count``,
        ``baseline_rate_per_week``, ``expected_recent``, ``p_value``, ``severe_count``,
        ``nearest_m`` (network distance to the nearest recent violent incident),
        ``nearest_street``, ``distance_m``, ``recent_days``, ``baseline_days``, ``as_of``.
        No coordinates: defender locations never leave this function.

    Warns
    -----
    UserWarning
        Defenders farther than ``max_snap_m`` from any road (not assessed), by id.
    """
    if not distance_m > 0 or recent_days < 1 or baseline_days < 1:
        raise InputError("early warning needs --distance-m > 0, --recent-days >= 1 and --baseline-days >= 1")
    weighted = (
        incidents
        if "violent" in getattr(incidents, "columns", [])
        else weigh_incidents(incidents, as_of, weights=weights)
    )
    dates = pd.to_datetime(weighted["date"], errors="coerce")
    ref = alert_date(weighted, as_of)
    d = (
        defenders
        if isinstance(defenders, gpd.GeoDataFrame) and "id" in defenders.columns
        else layers.as_points(defenders, kind="defenders")
    )
    age = _age_days(dates, ref)
    window = recent_days + baseline_days
    relevant = np.isfinite(age) & (age >= 0) & (age < window) & weighted["violent"].to_numpy(dtype=bool)
    inc = weighted[relevant].reset_index(drop=True)
    inc.attrs = dict(weighted.attrs)
    age = age[relevant]
    if "on_network" not in inc.columns:
        inc = _snap_incidents(net, inc, incident_max_snap_m) if len(inc) else inc

    snapped_d = snap_points(net, d, max_distance_m=max_snap_m, require_any=False)
    off = ~snapped_d["on_network"].to_numpy(dtype=bool)
    if off.any():
        ids = snapped_d.loc[off, "id"].astype(str).tolist()
        warnings.warn(
            f"defenders {listing(ids)} are farther than {max_snap_m:.0f} m from any road: no early warning for them",
            UserWarning,
            stacklevel=2,
        )
    empty = pd.DataFrame({c: [] for c in _ALERT_COLUMNS})
    if len(inc) == 0 or not (~off).any():
        return empty
    on_inc = inc["on_network"].to_numpy(dtype=bool) & (inc["edge"].to_numpy() >= 0)
    inc_edge = np.where(on_inc, inc["edge"].to_numpy(), -1)
    inc_places = _graph.Places.locate(net, inc_edge, np.nan_to_num(inc["edge_fraction"].to_numpy(dtype=float)))
    s, t, dist = _graph.pairs_within(net, _graph.Places.from_snapped(net, snapped_d), inc_places, distance_m)
    pairs = pd.DataFrame({"defender": s, "incident": t, "dist": dist})
    pairs["age"] = age[pairs["incident"].to_numpy()]
    pairs["recent"] = pairs["age"] < recent_days
    fat = pd.to_numeric(inc["fatalities"], errors="coerce").fillna(0).to_numpy()
    pairs["severe"] = (
        inc["severe"].to_numpy(dtype=bool)[pairs["incident"].to_numpy()]
        & pairs["recent"]
        & (pairs["dist"] <= distance_m / 2.0)
    )
    pairs["fat"] = fat[pairs["incident"].to_numpy()]
    names = _street_names(net, inc_edge)

    rows = []
    ids = d["id"].astype(str).to_numpy()
    for who, grp in pairs.groupby("defender", sort=True):
        recent = grp[grp["recent"]]
        r, b = len(recent), int((~grp["recent"]).sum())
        lam = (b + 0.5) * recent_days / baseline_days
        p = float(stats.poisson.sf(r - 1, lam)) if r > 0 else 1.0
        sev = grp[grp["severe"]]
        surge = p < alpha
        if not surge and sev.empty:
            continue
        score = min(-math.log10(max(p, 1e-300)), 15.0) + 2.0 * float((1.0 + np.log1p(sev["fat"])).sum())
        deadly = bool((sev["fat"] >= 1).any())
        level = "critical" if surge and not sev.empty else "high" if surge or deadly else "elevated"
        nearest = recent.loc[recent["dist"].idxmin()] if r else None
        street = names[int(nearest["incident"])] if nearest is not None else ""
        rows.append(
            {
                "defender_id": ids[who],
                "score": round(score, 2),
                "level": level,
                "reason": _reason(r, b, recent_days, baseline_days, distance_m, nearest, street, sev),
                "recent_count": r,
                "baseline_count": b,
                "baseline_rate_per_week": round(b / baseline_days * 7.0, 3),
                "expected_recent": round(lam, 3),
                "p_value": p,
                "severe_count": len(sev),
                "nearest_m": None if nearest is None else round(float(nearest["dist"]), 1),
                "nearest_street": street,
                "distance_m": distance_m,
                "recent_days": recent_days,
                "baseline_days": baseline_days,
                "as_of": ref.date().isoformat(),
            }
        )
    if not rows:
        return empty
    out = pd.DataFrame(rows, columns=_ALERT_COLUMNS)
    return out.sort_values(["score", "defender_id"], ascending=[False, True]).reset_index(drop=True)


def _street_names(net: RoadNetwork, edge: np.ndarray) -> list[str]:
    name = net.edge_attrs["name"] if "name" in net.edge_attrs else pd.Series([None] * net.n_edges)
    highway = net.edge_attrs["highway"] if "highway" in net.edge_attrs else pd.Series([None] * net.n_edges)
    out = []
    for e in np.asarray(edge).tolist():
        if e < 0:
            out.append("")
            continue
        n, h = name.iloc[e], highway.iloc[e]
        out.append(str(n) if isinstance(n, str) and n else (f"an unnamed {h}" if isinstance(h, str) and h else ""))
    return out


def _reason(
    r: int,
    b: int,
    recent_days: int,
    baseline_days: int,
    distance_m: float,
    nearest: Any,
    street: str,
    severe: pd.DataFrame,
) -> str:
    per = "week" if recent_days == 7 else f"{recent_days} days"
    rate = b / baseline_days * recent_days
    before = f"none in the {baseline_days} days before" if b == 0 else f"{rate:.1f}/{per} before"
    noun = "violent event" if r == 1 else "violent events"
    span = "the last 7 days" if recent_days == 7 else f"the last {recent_days} days"
    text = f"{r} {noun} within {distance_m:,.0f} m in {span} vs. {before}"
    if nearest is not None:
        text += f"; nearest {float(nearest['dist']):,.0f} m" + (f" on {street}" if street else "")
    if len(severe):
        killed = int(severe["fat"].sum())
        text += f"; {len(severe)} severe within {distance_m / 2:,.0f} m" + (f" ({killed} killed)" if killed else "")
    return text


# --------------------------------------------------------------------------- risk I/O


def read_risk(path: PathLike, net: RoadNetwork) -> np.ndarray:
    """Per-edge risk from an ``edge_risk.geojson`` (``u, v, key, risk``), aligned with ``net``'s edges.

    A thin wrapper of :func:`havenmap.costs.edge_risk`, which does the matching and checks
    (InputError for unreadable files, missing columns, negative or non-numeric risk, rows
    matching no edge of this network).
    """
    from . import costs

    return costs.edge_risk(net, path)


def risk_array(obj: Any, net: RoadNetwork) -> np.ndarray:
    """Per-edge risk aligned with ``net``'s edges from a :class:`ThreatResult`, an array,
    a DataFrame with ``u, v, key, risk``, or a path to ``edge_risk.geojson``."""
    from . import costs

    if isinstance(obj, ThreatResult):
        if obj.net is net or (len(obj.risk) == net.n_edges and np.array_equal(obj.net.edge_u, net.edge_u)):
            return obj.risk
        return costs.edge_risk(net, obj.edge_risk, label="<ThreatResult>")
    return costs.edge_risk(net, obj)


# --------------------------------------------------------------------------- outputs

Step = Callable[[str], Any]


def run_threat_outputs(
    net: RoadNetwork,
    incidents: Any,
    defenders: Any,
    out_dir: PathLike,
    as_of: Any = None,
    step: Step | None = None,
    *,
    title: str = "Threat picture",
    threat_kw: dict[str, Any] | None = None,
    alert_kw: dict[str, Any] | None = None,
    hxl: bool = False,
) -> dict[str, Any]:
    """Compute the threat picture and alerts and write them to ``out_dir``.

    Writes ``edge_risk.geojson``, ``hotspots.geojson``, ``clusters.geojson`` (when clusters
    were found), ``threat_map.html`` (when :func:`havenmap.maps.threat_map` exists) and,
    when ``defenders`` is given, ``alerts.csv`` and ``alerts.json`` (owner-only files).

    Parameters
    ----------
    step
        Optional progress context manager factory (``step("message")``), as the CLI's.
    threat_kw, alert_kw
        Extra keyword arguments for :func:`compute_threat` and :func:`early_warning`.
    hxl
        Give the CSV files an HXL hashtag row (:func:`havenmap._io.hxl_hashtags`).

    Returns
    -------
    dict
        Summary: ``as_of``, ``incidents``, ``incidents_used``, ``edges``, ``max_risk``,
        ``hotspot_edges``, ``clusters``, ``alerts``, ``files`` (written paths).
    """
    import contextlib

    step = step or (lambda _message: contextlib.nullcontext())
    with step("Weighting incidents and spreading risk along the roads"):
        result = compute_threat(net, incidents, as_of, **(threat_kw or {}))
    alerts = None
    if defenders is not None:
        with step("Early warning for every defender"):
            alerts = early_warning(net, result.incidents, defenders, result.as_of, **(alert_kw or {}))
    with step("Writing the threat outputs"):
        files = write_threat_outputs(result, out_dir, alerts, title=title, hxl=hxl)
    return threat_summary(result, alerts, files)


def write_threat_outputs(
    result: ThreatResult,
    out_dir: PathLike,
    alerts: pd.DataFrame | None = None,
    *,
    title: str = "Threat picture",
    threat_map: bool = True,
    hxl: bool = False,
) -> dict[str, str]:
    """Write ``edge_risk.geojson``, ``hotspots.geojson``, ``node_risk.csv`` (``osmid, lon, lat,
    risk``), ``density_grid.geojson`` (cell centres, ``density`` in weighted incidents per km²),
    ``clusters.geojson`` (if any), ``threat_map.html`` (unless ``threat_map=False``) and, with
    ``alerts``, ``alerts.csv``/``.json``. With ``hxl`` the CSV files carry an HXL hashtag row.

    Returns the written paths by name.
    """
    out = Path(out_dir)
    files: dict[str, str] = {}
    files["edge_risk"] = str(_io.write_geojson(out / "edge_risk.geojson", result.edge_risk))
    files["hotspots"] = str(_io.write_geojson(out / "hotspots.geojson", result.hotspots))
    net = result.net
    nodes = pd.DataFrame(
        {
            "osmid": net.node_id,
            "lon": net.node_lonlat[:, 0].round(7),
            "lat": net.node_lonlat[:, 1].round(7),
            "risk": result.node_risk,
        }
    )
    files["node_risk"] = str(_io.write_csv(out / "node_risk.csv", nodes, hxl=hxl))
    if result.grid is not None:
        files["density_grid"] = str(_io.write_geojson(out / "density_grid.geojson", result.grid.to_gdf()))
    if result.clusters is not None and len(result.clusters):
        files["clusters"] = str(_io.write_geojson(out / "clusters.geojson", result.clusters))
    if threat_map:
        map_path = write_threat_map(out / "threat_map.html", result, title=title)
        if map_path is not None:
            files["threat_map"] = str(map_path)
    if alerts is not None:
        csv_path, json_path = write_alerts(out / "alerts.csv", alerts, result.as_of, hxl=hxl)
        files["alerts_csv"], files["alerts_json"] = str(csv_path), str(json_path)
    return files


def threat_summary(result: ThreatResult, alerts: pd.DataFrame | None, files: dict[str, str]) -> dict[str, Any]:
    """A JSON-ready summary of a threat run."""
    status = result.incidents["status"].astype(str)
    return {
        "as_of": None if result.as_of is None else result.as_of.date().isoformat(),
        "incidents": len(result.incidents),
        "incidents_used": int((status == "used").sum()),
        "incidents_left_out": {k: int(v) for k, v in status[status != "used"].value_counts().items()},
        "edges": int(result.net.n_edges),
        "max_risk": float(result.risk.max()) if len(result.risk) else 0.0,
        "hotspot_edges": 0 if result.gi is None else int(result.gi["significance"].str.startswith("hot").sum()),
        "clusters": 0 if result.clusters is None else len(result.clusters),
        "alerts": None if alerts is None else len(alerts),
        "files": files,
    }


def write_threat_map(path: PathLike, result: ThreatResult, *, title: str = "Threat picture") -> Path | None:
    """Write ``threat_map.html`` with :func:`havenmap.maps.threat_map` (None, with a warning, if absent)."""
    from . import maps

    if not hasattr(maps, "threat_map"):
        warnings.warn(
            "this havenmap has no maps.threat_map yet: threat_map.html not written", UserWarning, stacklevel=2
        )
        return None
    used = result.incidents[result.incidents["status"].astype(str) == "used"]
    m = maps.threat_map(
        roads=result.net,
        incidents=used,
        edge_risk=result.edge_risk,
        hotspots=result.hotspots,
        title=title,
        as_of=None if result.as_of is None else result.as_of.date().isoformat(),
    )
    if isinstance(m, (str, os.PathLike)):
        return Path(m)
    return maps.save_map(m, path)


def write_alerts(path: PathLike, alerts: pd.DataFrame, as_of: Any = None, *, hxl: bool = False) -> tuple[Path, Path]:
    """Write ``alerts.csv`` (with an HXL hashtag row if ``hxl``) and ``alerts.json`` (same stem), owner-only."""
    path = Path(path)
    json_path = path.with_suffix(".json")
    csv_path = _io.write_csv(path, alerts, private=True, hxl=hxl)
    stamp = None if as_of is None else pd.Timestamp(as_of).date().isoformat()
    records = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in rec.items()}
        for rec in alerts.to_dict("records")
    ]
    _io.write_json(json_path, {"as_of": stamp, "alerts": records}, private=True)
    return csv_path, json_path
