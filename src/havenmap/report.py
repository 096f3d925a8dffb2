"""Reports of a run: summary dicts for ``report.json`` and the situation report ``report.html``.

:func:`nearest_report` summarises a nearest-haven result; :func:`situation` turns the
coverage and alerts into counts per area (no defender id or position);
:func:`weekly_incidents` gives the threat trend; :func:`write_situation_report` writes the
self-contained HTML page a commander reads, prints or forwards, from a run's output files;
:func:`print_pdf` prints it with headless Chromium. The page's stylesheet is package data
(``havenmap/assets/report.css``), its template ``havenmap/assets/report.html`` (Jinja2 with
autoescape: every user string is inert).
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import jinja2
import numpy as np
import pandas as pd
import shapely
from markupsafe import Markup

from . import _io, _svgcharts
from .errors import InputError
from .privacy import DefenderPrivacy, defender_cells

__all__ = [
    "OUTPUT_FILES",
    "find_chromium",
    "nearest_report",
    "print_pdf",
    "situation",
    "weekly_incidents",
    "write_situation_report",
]


def nearest_report(
    nearest: gpd.GeoDataFrame,
    *,
    defenders: int,
    havens: int,
    incidents: int | None = None,
    cost: str = "time",
    k: int = 1,
) -> dict[str, Any]:
    """Summarise a :func:`~havenmap.havens.nearest_havens` result.

    Returns
    -------
    dict
        ``defenders``, ``havens``, ``incidents`` (counts), ``reachable`` (defenders with a
        route to at least one haven), ``unreachable`` (their ids, sorted), ``off_network``
        (ids of defenders too far from any road), ``median_travel_time_s``,
        ``p90_travel_time_s``, ``max_travel_time_s`` and ``median_distance_m`` (to the
        nearest haven, over reachable defenders; null when none), ``cost``, ``k``, and
        ``defenders_per_haven`` (haven id → defenders for whom it is the nearest).
    """
    first = nearest.loc[nearest["rank"] == 1]
    ok = first.loc[first["reachable"]]
    times = ok["travel_time_s"].to_numpy(dtype=float)
    off = first.loc[first["reason"].astype(str).str.startswith("off network"), "defender_id"]
    return {
        "defenders": int(defenders),
        "havens": int(havens),
        "incidents": None if incidents is None else int(incidents),
        "reachable": len(ok),
        "unreachable": sorted(first.loc[~first["reachable"], "defender_id"].astype(str)),
        "off_network": sorted(off.astype(str)),
        "median_travel_time_s": _stat(np.median, times),
        "p90_travel_time_s": _stat(lambda a: np.percentile(a, 90), times),
        "max_travel_time_s": _stat(np.max, times),
        "median_distance_m": _stat(np.median, ok["distance_m"].to_numpy(dtype=float)),
        "cost": cost,
        "k": int(k),
        "defenders_per_haven": {str(h): int(n) for h, n in ok["haven_id"].value_counts().sort_index().items()},
    }


def _stat(fn, values: np.ndarray) -> float | None:
    return round(float(fn(values)), 1) if len(values) else None


# ====================================================================== the situation report
#: Files :func:`write_situation_report` and :func:`print_pdf` may write into a run's folder.
OUTPUT_FILES = ("report.html", "report.pdf")
#: Alert levels in the order of urgency (early warning's words).
ALERT_ORDER = ("critical", "high", "elevated")
#: Weeks of incidents in the threat trend (the latest, up to the as-of date).
TREND_WEEKS = 52
#: Rows of the worst-haven-loss table and chart.
WORST_HAVENS = 5
#: Chromium executables tried for ``--pdf`` (``HAVENMAP_CHROMIUM`` first when set).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
)
_STATUS = ("in_time", "slow", "unreachable")


def weekly_incidents(incidents: pd.DataFrame, as_of: Any = None, weeks: int = TREND_WEEKS) -> list[dict[str, Any]]:
    """Incidents per week (Monday to Sunday) up to ``as_of``: the threat trend of the report.

    Parameters
    ----------
    incidents
        Weighted incidents (:attr:`havenmap.threat.ThreatResult.incidents`): ``date``,
        ``status`` (only ``used`` rows count), optional ``violent`` and ``fatalities``.
    as_of
        The last day counted (default: the latest incident).
    weeks
        How many weeks, the latest first cut off (every week in the span is listed, empty
        ones with 0).

    Returns
    -------
    list of dict
        Oldest first: ``week`` (the Monday, ``YYYY-MM-DD``), ``incidents``, ``violent``,
        ``fatalities``.
    """
    frame = incidents
    if "status" in frame.columns:
        frame = frame.loc[frame["status"].astype(str) == "used"]
    dates = pd.to_datetime(frame["date"], errors="coerce") if "date" in frame.columns else pd.Series(dtype="M8[ns]")
    dated = dates.notna().to_numpy()
    if not dated.any():
        return []
    dates = dates[dated].dt.tz_localize(None) if dates.dt.tz is not None else dates[dated]
    end = pd.Timestamp(as_of) if as_of is not None else dates.max()
    end = end.tz_localize(None) if end.tzinfo is not None else end
    keep = (dates <= end + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)).to_numpy()
    monday = (dates.dt.normalize() - pd.to_timedelta(dates.dt.day_of_week, unit="D"))[keep]
    last = end.normalize() - pd.Timedelta(days=end.weekday())
    first = max(monday.min() if len(monday) else last, last - pd.Timedelta(weeks=weeks - 1))
    index = pd.date_range(first, last, freq="7D")
    violent = (
        frame["violent"].to_numpy(dtype=bool)[dated][keep] if "violent" in frame.columns else np.zeros(len(monday))
    )
    deaths = (
        pd.to_numeric(frame["fatalities"], errors="coerce").fillna(0).to_numpy()[dated][keep]
        if "fatalities" in frame.columns
        else np.zeros(len(monday))
    )
    table = pd.DataFrame({"week": monday.to_numpy(), "violent": violent.astype(int), "fatalities": deaths})
    grouped = table.groupby("week").agg(
        incidents=("violent", "size"), violent=("violent", "sum"), deaths=("fatalities", "sum")
    )
    grouped = grouped.reindex(index, fill_value=0)
    return [
        {
            "week": week.date().isoformat(),
            "incidents": int(row.incidents),
            "violent": int(row.violent),
            "fatalities": int(row.deaths),
        }
        for week, row in grouped.iterrows()
    ]


def situation(
    net: Any,
    defenders: gpd.GeoDataFrame,
    coverage: pd.DataFrame,
    alerts: pd.DataFrame | None,
    *,
    havens: gpd.GeoDataFrame | None = None,
    privacy: DefenderPrivacy | None = None,
    slow_minutes: float = 15.0,
) -> dict[str, Any]:
    """Who cannot reach safety in time, and the alerts, as counts per area: no id, no position.

    Defenders are counted in the k-anonymous cells of :func:`havenmap.privacy.defender_cells`
    (the maps' cells); touching cells form an area, named like the map's summary lines by
    the nearest named street (else a haven, else a bearing). An area holding a cell with
    fewer than k defenders shows its count as ``<k`` or ``n+``, as on the map.

    Parameters
    ----------
    net
        The road network (for street names).
    defenders
        Defender points (``id``).
    coverage
        :attr:`havenmap.coverage.Coverage.defenders` (``defender_id``, ``reachable``, ``travel_time_s``).
    alerts
        Early-warning alerts (``defender_id``, ``level``, ``score``, ``reason``) or None.
    privacy
        Cell size and k (default: :class:`~havenmap.privacy.DefenderPrivacy`).
    slow_minutes
        Defenders needing longer than this are too slow.

    Returns
    -------
    dict
        ``defenders``, ``slow_minutes``, ``in_time``; ``cannot_reach`` and ``too_slow`` each
        with ``count`` and ``areas`` (``count`` text, ``place``); ``alerts`` with ``counts``
        per level and ``rows`` (``level``, ``score``, ``place``, ``reason``, most urgent
        first); ``cells`` (``cell_size_m``, ``k``).
    """
    from ._maplayers import Places

    privacy = privacy or DefenderPrivacy()
    points = defenders.to_crs("EPSG:4326").reset_index(drop=True)
    ids = points["id"].astype(str)
    table = coverage.assign(defender_id=coverage["defender_id"].astype(str)).set_index("defender_id")
    reachable = table["reachable"].reindex(ids).fillna(False).astype(bool).to_numpy()
    seconds = pd.to_numeric(table["travel_time_s"], errors="coerce").reindex(ids).to_numpy(dtype=float)
    status = np.where(~reachable, "unreachable", np.where(seconds > 60.0 * slow_minutes, "slow", "in_time"))
    agg = defender_cells(points, status, cell_size_m=privacy.cell_size_m, k=privacy.k, categories=_STATUS)
    places = Places(net.edges_gdf(undirected=True))
    if havens is not None and len(havens):
        places.add_havens(havens)
    out: dict[str, Any] = {
        "defenders": len(points),
        "slow_minutes": float(slow_minutes),
        "in_time": int((status == "in_time").sum()),
        "cannot_reach": {"count": int((status == "unreachable").sum()), "areas": _areas(agg, "unreachable", places)},
        "too_slow": {"count": int((status == "slow").sum()), "areas": _areas(agg, "slow", places)},
        "alerts": {"counts": {level: 0 for level in ALERT_ORDER}, "rows": []},
        "cells": {"cell_size_m": float(privacy.cell_size_m), "k": int(privacy.k)},
    }
    if alerts is not None and len(alerts):
        where = pd.Series(np.arange(len(ids)), index=ids)
        names: dict[int, str] = {}
        for row in alerts.itertuples():
            level = str(row.level)
            out["alerts"]["counts"][level] = out["alerts"]["counts"].get(level, 0) + 1
            cell = int(agg.cell_of[int(where.loc[str(row.defender_id)])]) if str(row.defender_id) in where.index else -1
            if cell >= 0 and cell not in names:
                names[cell] = places.near(agg.cells.geometry.iloc[cell])
            out["alerts"]["rows"].append(
                {"level": level, "score": float(row.score), "place": names.get(cell, ""), "reason": str(row.reason)}
            )
    return out


def _areas(agg: Any, kind: str, places: Any) -> list[dict[str, Any]]:
    """Touching cells holding ``kind`` defenders, most first: ``count`` (text), ``place``."""
    cells = agg.cells.loc[agg.cells[kind] > 0]
    if cells.empty:
        return []
    metric = cells.geometry.to_crs(agg.crs)
    parts = list(
        getattr(shapely.union_all(metric.buffer(0.5).to_numpy()), "geoms", None)
        or [shapely.union_all(metric.buffer(0.5).to_numpy())]
    )
    inside = np.array(
        [next(i for i, part in enumerate(parts) if part.contains(p)) for p in metric.representative_point()]
    )
    rows = []
    for i, part in enumerate(parts):
        sel = inside == i
        few = int(cells["suppressed"].to_numpy()[sel].sum())
        exact = int(cells[kind].to_numpy()[sel & ~cells["suppressed"].to_numpy()].sum())
        count = str(exact) if not few else (f"<{agg.k}" if not exact else f"{exact}+")
        area = gpd.GeoSeries([part], crs=agg.crs).to_crs("EPSG:4326").iloc[0]
        rows.append({"count": count, "place": places.near(area), "_n": exact, "_few": few})
    rows.sort(key=lambda r: (-r["_n"], -r["_few"], r["place"]))
    return [{"count": r["count"], "place": r["place"]} for r in rows]


def write_situation_report(
    out_dir: str | os.PathLike[str],
    *,
    inputs: Mapping[str, Mapping[str, Any]],
    title: str = "havenmap",
    as_of: str | None = None,
) -> Path:
    """Write ``out_dir/report.html``: the situation report of a run, from the run's own output files.

    A commander's page to read, print (A4 or Letter) or forward: who cannot reach safety
    in time (counts and areas), coverage per band and the worst haven losses (inline SVG
    charts), alerts by severity with their reasons, the threat trend per week, the patrol
    plan per unit and day, siting results when ``siting/`` holds them, and the inputs with
    their dates. Every number comes from the folder's JSON/CSV outputs (``report.json``,
    ``coverage/``, ``threat/``, ``patrol/``, ``siting/``), so the page and the files agree.
    Self-contained: no script, no request, no font file; every user string is escaped.

    Parameters
    ----------
    out_dir
        The run's output folder (``report.json`` must be there).
    inputs
        The manifest's input descriptions by role (:func:`havenmap.manifest.describe_input`).
    title, as_of
        Scenario name and date.
    """
    out = Path(out_dir)
    data = _report_data(out, inputs, title, as_of)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(_asset("report.html"))
    page = template.render(css=Markup(_asset("report.css")), **data)
    # counts and areas only, no defender's position or id; but it names the havens (safe houses): owner-only
    return _io.write_text(out / "report.html", page, private=True)


def _asset(name: str) -> str:
    return importlib.resources.files("havenmap").joinpath("assets", name).read_text(encoding="utf-8")


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _report_data(out: Path, inputs: Mapping[str, Mapping[str, Any]], title: str, as_of: str | None) -> dict[str, Any]:
    summary = _json(out / "report.json")
    if summary is None:
        raise InputError(f"{out}: no report.json; the situation report is written from a run's outputs")
    situation = summary.get("situation") or {}
    slow = situation.get("slow_minutes")
    data: dict[str, Any] = {
        "title": title,
        "as_of": as_of,
        "version": _version(),
        "summary": summary,
        "situation": situation,
        "slow": slow,
        "slow_text": "—" if slow is None else f"{slow:g}",
        "not_in_time": int(
            situation.get("cannot_reach", {}).get("count", 0) + situation.get("too_slow", {}).get("count", 0)
        ),
        "coverage": _coverage_data(out, slow),
        "alerts": _alert_data(situation),
        "threat": _threat_data(summary.get("threat")),
        "patrol": _patrol_data(out / "patrol"),
        "siting": _siting_data(out / "siting"),
        "inputs": _input_rows(inputs),
    }
    return data


def _pct(share: Any) -> str:
    return "—" if share is None else f"{100.0 * float(share):.1f} %"


def _coverage_data(out: Path, slow: float | None) -> dict[str, Any] | None:
    cov = _json(out / "coverage" / "coverage.json")
    if cov is None:
        return None
    worst = cov.get("n_minus_1", {})
    bands = [
        {
            "band": band,
            "covered": row["covered"],
            "share": row["share"],
            "share_text": _pct(row["share"]),
            "after": worst.get("covered_after", {}).get(band),
            "share_after": worst.get("share_after", {}).get(band),
            "share_after_text": _pct(worst.get("share_after", {}).get(band)),
        }
        for band, row in cov["bands"].items()
    ]
    chart = _svgcharts.bars(
        [f"{b['band']} min" for b in bands],
        [
            ("now", [100.0 * b["share"] for b in bands], _svgcharts.REACH[0]),
            ("after losing the worst haven", [100.0 * (b["share_after"] or 0.0) for b in bands], _svgcharts.REACH[1]),
        ],
        ylabel="defenders within (%)",
        label="Share of defenders reaching a haven within each band, now and after losing the worst haven",
        percent=True,
    )
    losses = _worst_havens(out / "coverage" / "n_minus_1.csv", list(cov["bands"]))
    loss_chart = None
    if losses:
        ramp = _svgcharts.BANDS[: len(cov["bands"])]
        loss_chart = _svgcharts.bars(
            [f"#{row['rank']}" for row in losses],
            [
                (f"lose cover within {band} min", [row["lost"][band] for row in losses], colour)
                for band, colour in zip(cov["bands"], ramp, strict=False)
            ],
            ylabel="defenders losing cover",
            label="Defenders losing cover within each band if one of the worst havens is lost",
        )
    return {
        "bands": bands,
        "worst": worst,
        "chart": Markup(chart),
        "losses": losses,
        "loss_chart": None if loss_chart is None else Markup(loss_chart),
        "last": list(cov["bands"])[-1] if cov["bands"] else None,
    }


def _worst_havens(path: Path, bands: list[str]) -> list[dict[str, Any]]:
    """The havens whose loss costs most: defenders left with no haven in time, then cover lost over all bands."""
    if not path.is_file() or not bands:
        return []
    n1 = _io.read_table(path, "n_minus_1")
    if n1.empty:
        return []
    lost = {band: pd.to_numeric(n1[f"lost_{band}"], errors="coerce").fillna(0).astype(int) for band in bands}
    n1 = n1.assign(lost_total=sum(lost.values()))
    top = n1.sort_values(["lose_all_cover", "lost_total", "served"], ascending=False, kind="stable").head(WORST_HAVENS)
    top = top.loc[(top["lost_total"] > 0) | (top["lose_all_cover"] > 0)]
    return [
        {
            "rank": rank,
            "haven_id": str(n1.at[i, "haven_id"]),
            "haven_name": "" if pd.isna(n1.at[i, "haven_name"]) else str(n1.at[i, "haven_name"]),
            "served": int(n1.at[i, "served"]),
            "lost": {band: int(lost[band].at[i]) for band in bands},
            "lose_all_cover": int(n1.at[i, "lose_all_cover"]),
            "cut_off": int(n1.at[i, "cut_off"]),
        }
        for rank, i in enumerate(top.index, start=1)
    ]


def _alert_data(situation: Mapping[str, Any]) -> dict[str, Any]:
    alerts = situation.get("alerts") or {"counts": {}, "rows": []}
    rank = {level: i for i, level in enumerate(ALERT_ORDER)}
    rows = sorted(alerts["rows"], key=lambda r: (rank.get(r["level"], len(rank)), -r["score"]))
    return {"counts": alerts["counts"], "rows": rows, "total": len(rows)}


def _threat_data(threat: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if threat is None:
        return None
    weeks = threat.get("weekly") or []
    chart = None
    if weeks:
        chart = _svgcharts.weekly(
            [w["week"][5:] for w in weeks],
            [w["incidents"] for w in weeks],
            [w["violent"] for w in weeks],
            label="Incidents per week, all and violent",
        )
    return {**threat, "weeks": weeks, "recent": weeks[-12:], "chart": None if chart is None else Markup(chart)}


def _patrol_data(folder: Path) -> dict[str, Any] | None:
    summary = _json(folder / "patrol_summary.json")
    if summary is None:
        return None
    routes = _json(folder / "patrol_routes.geojson") or {"features": []}
    schedule = _io.read_table(folder / "patrol_schedule.csv", "patrol_schedule")
    kinds = {}
    if (folder / "target_frequency.csv").is_file():
        freq = _io.read_table(folder / "target_frequency.csv", "target_frequency")
        kinds = dict(zip(freq["target_id"].astype(str), freq["kind"].astype(str), strict=True))
    visits = schedule.loc[schedule["target_id"].fillna("").astype(str) != ""]
    rows = []
    for feature in routes["features"]:
        p = feature["properties"]
        mine = visits.loc[(visits["unit"].astype(str) == str(p["unit"])) & (visits["day"].astype(int) == int(p["day"]))]
        stops = [
            "a defender (consented)" if kinds.get(t) == "defender" else t
            for t in mine.sort_values("stop")["target_id"].astype(str)
        ]
        rows.append(
            {
                "unit": str(p["unit"]),
                "day": int(p["day"]),
                "base": str(p["base_id"]),
                "stops": len(stops),
                "targets": stops,
                "minutes": round(float(p["duration_min"]), 1),
                "km": round(float(p["distance_m"]) / 1000.0, 2),
                "priority": p["prize"],
            }
        )
    rows.sort(key=lambda r: (r["day"], r["unit"]))
    return {"summary": summary, "rows": rows}


def _siting_data(folder: Path) -> dict[str, Any] | None:
    summary = _json(folder / "siting.json")
    if summary is None:
        return None
    sites = []
    if (folder / "sites.csv").is_file():
        table = _io.read_table(folder / "sites.csv", "sites")
        sites = table.to_dict("records")
    before = (summary.get("coverage") or {}).get("before") or {}
    after = (summary.get("coverage") or {}).get("after") or {}
    return {"summary": summary, "sites": sites, "before": before, "after": after}


def _input_rows(inputs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "role": role,
            "file": Path(str(rec["path"])).name,
            "rows": rec.get("rows"),
            "size": rec.get("size"),
            "modified": str(rec.get("modified") or "")[:10],
            "sha256": str(rec.get("sha256"))[:16],
        }
        for role, rec in inputs.items()
    ]


def _version() -> str:
    try:
        return importlib.metadata.version("havenmap")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------- PDF
def find_chromium() -> str:
    """The Chromium executable for ``--pdf`` (``HAVENMAP_CHROMIUM``, else the usual names on PATH).

    Raises
    ------
    havenmap.errors.InputError
        One line when none is found (checked before any work).
    """
    override = os.environ.get("HAVENMAP_CHROMIUM")
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise InputError(f"--pdf: HAVENMAP_CHROMIUM={override} is not an executable; point it at chromium")
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise InputError(
        "--pdf: no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + "); install it "
        "(apt-get install chromium) or set HAVENMAP_CHROMIUM, or leave out --pdf (report.html prints from any browser)"
    )


def print_pdf(html: str | os.PathLike[str], pdf: str | os.PathLike[str], *, timeout_s: float = 120.0) -> Path:
    """Print ``html`` to ``pdf`` with headless Chromium (offline flags, a throw-away profile).

    Chromium stamps the PDF with the time it was printed; the stamp is replaced by a fixed
    one of the same length, so the same report gives the same PDF bytes.
    """
    chromium = find_chromium()
    with tempfile.TemporaryDirectory(prefix="hm-pdf-") as work:
        target = Path(work) / "report.pdf"
        args = [chromium, *CHROMIUM_ARGS, f"--user-data-dir={Path(work) / 'profile'}", f"--print-to-pdf={target}"]
        try:
            proc = subprocess.run(
                [*args, Path(html).resolve().as_uri()], capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InputError(f"--pdf: Chromium could not print the report ({' '.join(str(exc).split())})") from None
        if proc.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"--pdf: Chromium could not print the report (exit {proc.returncode}: {tail[:200]})")
        data = _PDF_DATE.sub(b"D:19700101000000", target.read_bytes())
    with _io.atomic_path(pdf) as tmp:
        tmp.write_bytes(data)
    return Path(pdf)


_PDF_DATE = re.compile(rb"D:\d{14}")
