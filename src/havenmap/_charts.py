"""Offline report pages with charts: matplotlib figures inlined as SVG, our CSS inlined, no CDN.

Matplotlib draws to an in-memory SVG with a fixed hash salt and no date, so the same result
gives the same page byte for byte. Every user string (titles, file names) is escaped.
"""

from __future__ import annotations

import html
import importlib.resources
import io
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .backtest import BacktestResult

__all__ = ["backtest_page", "figure_svg"]

#: Method colours: havenmap stands out, baselines recede.
COLOURS = {"havenmap": "#b5452f", "last_counts": "#3b6ea8", "planar_kde": "#6d9b4a", "uniform": "#9aa3ab"}
_LABELS = {
    "pai_1": "PAI at 1 % of road km",
    "pai_5": "PAI at 5 % of road km",
    "pai_10": "PAI at 10 % of road km",
    "hit_rate_1": "hit rate at 1 %",
    "hit_rate_5": "hit rate at 5 %",
    "hit_rate_10": "hit rate at 10 %",
    "precision": "alert precision",
    "recall": "alert recall",
    "lead_time_days": "lead time, days",
    "onset_recall": "onsets warned (share)",
}


def _css() -> str:
    return (importlib.resources.files("havenmap") / "assets" / "backtest.css").read_text(encoding="utf-8")


def figure_svg(fig: Any) -> str:
    """A matplotlib figure as inline ``<svg>`` markup (deterministic: fixed hash salt, no date)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "havenmap", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buf.getvalue()
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.DOTALL)


def _figure(width: float = 8.0, height: float = 3.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96)
    return fig, fig.subplots()


def _style(ax: Any, ylabel: str) -> None:
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e3e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _over_time(scores: pd.DataFrame, column: str, ylabel: str, reference: float | None = None) -> str:
    fig, ax = _figure()
    for method, rows in scores.groupby("method", sort=False):
        dates = pd.to_datetime(rows["as_of"])
        ax.plot(
            dates,
            rows[column],
            marker="o",
            markersize=3,
            linewidth=1.6 if method == "havenmap" else 1.0,
            color=COLOURS.get(str(method), "#333"),
            label=str(method),
        )
    if reference is not None:
        ax.axhline(reference, color="#56606b", linewidth=0.8, linestyle="--")
    _style(ax, ylabel)
    ax.legend(frameon=False, ncol=4, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0))
    fig.autofmt_xdate()
    return figure_svg(fig)


def _bars(summary: dict[str, dict[str, Any]], metrics: tuple[str, ...], ylabel: str) -> str:
    fig, ax = _figure()
    methods = list(summary)
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(metrics))
    for i, method in enumerate(methods):
        values = np.array([np.nan if summary[method].get(m) is None else summary[method][m] for m in metrics])
        lo = np.array([(summary[method].get(f"{m}_ci") or [np.nan, np.nan])[0] or np.nan for m in metrics])
        hi = np.array([(summary[method].get(f"{m}_ci") or [np.nan, np.nan])[1] or np.nan for m in metrics])
        err = np.vstack([np.clip(values - lo, 0, None), np.clip(hi - values, 0, None)])
        ax.bar(
            x + (i - (len(methods) - 1) / 2) * width,
            values,
            width * 0.92,
            label=method,
            color=COLOURS.get(method, "#333"),
            yerr=np.nan_to_num(err),
            capsize=2,
            ecolor="#1d2329",
        )
    ax.set_xticks(x, [_LABELS.get(m, m) for m in metrics], fontsize=8)
    _style(ax, ylabel)
    ax.legend(frameon=False, ncol=4, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0))
    return figure_svg(fig)


def _cell(entry: dict[str, Any], metric: str) -> str:
    value = entry.get(metric)
    if value is None:
        return "<td>–</td>"
    digits = 1 if metric == "lead_time_days" else 3 if metric.startswith(("hit_rate", "precision", "recall")) else 2
    ci = entry.get(f"{metric}_ci")
    extra = f' <span class="ci">({ci[0]:.{digits}f}–{ci[1]:.{digits}f})</span>' if ci and None not in ci else ""
    return f"<td>{value:.{digits}f}{extra}</td>"


def _summary_table(summary: dict[str, dict[str, Any]]) -> str:
    metrics = ("pai_1", "pai_5", "pai_10", "hit_rate_5", "precision", "recall", "lead_time_days", "onset_recall")
    head = "".join(f"<th>{html.escape(m)}</th>" for m in summary)
    body = "".join(
        f"<tr><td>{html.escape(_LABELS[k])}</td>{''.join(_cell(summary[m], k) for m in summary)}</tr>" for k in metrics
    )
    return f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(comparison: dict[str, Any]) -> str:
    if not comparison or comparison["pai_5"].get("ratio") is None:
        return ""
    best, item = comparison["best_baseline"], comparison["pai_5"]
    ci = item.get("ratio_ci")
    ci_text = f" (95 % interval {ci[0]:.2f}–{ci[1]:.2f})" if ci and None not in ci else ""
    worse = " worse" if item["ratio"] < 1 else ""
    return (
        f'<p class="verdict{worse}">havenmap captures {item["ratio"]:.2f}× the weighted incidents of the best '
        f"baseline, <b>{html.escape(best)}</b>, on the top 5 % of road km{ci_text}.</p>"
    )


_DEFINITIONS = """
<dl>
<dt>PAI at x % (street-length predictive accuracy index)</dt>
<dd>Roads ranked by predicted risk per km; the share of the next horizon's weighted incidents on the top x % of road km,
divided by x. 1 = chance; a road straddling the boundary (or roads tied in risk) counts by the length that fits.</dd>
<dt>hit rate at x %</dt><dd>That share itself (PAI × x / 100).</dd>
<dt>alerts: precision and recall</dt>
<dd>Per defender and as-of date: an event is a severe incident within the alert distance (by road) in the horizon.
Precision = hits / alerts, recall = hits / events. Baselines alert as many defenders as havenmap does at each date,
those with the most predicted risk on the roads within the alert distance.</dd>
<dt>onsets and lead time</dt>
<dd>An onset is a severe incident near a defender after a quiet spell. It is warned when the defender was alerted at
an as-of date during that quiet spell; the lead time is the days from the first such alert to the onset.</dd>
<dt>intervals</dt>
<dd>Percentile bootstrap over as-of dates (the same resamples for every method). Weeks are correlated: a guide, not
a test.</dd>
</dl>
"""


def backtest_page(result: BacktestResult, *, title: str = "Backtest") -> str:
    """The self-contained ``backtest.html`` of a :class:`havenmap.backtest.BacktestResult`."""
    scores, summary, p, info = result.scores, result.summary, result.params, result.manifest
    network = info.get("network", {})
    meta = (
        f"{len(p.as_of_dates)} as-of dates from {p.start.date()} to {p.end.date()}, every {p.step_days} days; "
        f"horizon {p.horizon_days} days; havenmap method <b>{html.escape(p.method)}</b>; "
        f"network {html.escape(str(network.get('source', '')))} ({network.get('road_km', 0):,.1f} km of road); "
        f"{info.get('incidents', {}).get('count', 0):,} incidents"
        + (f"; {info['defenders']['count']:,} defenders" if info.get("defenders") else "")
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_css()}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{meta}</p>',
        _verdict(result.comparison),
        "<h2>Summary</h2>",
        _summary_table(summary),
        f"<figure>{_bars(summary, ('pai_1', 'pai_5', 'pai_10'), 'PAI')}"
        "<figcaption>PAI pooled over all as-of dates, with bootstrap intervals.</figcaption></figure>",
        "<h2>Over time</h2>",
        f"<figure>{_over_time(scores, 'pai_5', 'PAI at 5 %', reference=1.0)}"
        "<figcaption>PAI at 5 % of road km for each as-of date (dashed: chance).</figcaption></figure>",
    ]
    if info.get("defenders"):
        parts += [
            f"<figure>{_over_time(scores, 'recall', 'alert recall')}"
            "<figcaption>Share of defenders with a severe incident nearby in the horizon who were alerted."
            "</figcaption></figure>",
            f"<figure>{_over_time(scores, 'precision', 'alert precision')}"
            "<figcaption>Share of alerts followed by a severe incident nearby in the horizon.</figcaption></figure>",
        ]
    parts += ["<h2>Definitions</h2>", _DEFINITIONS, "</body></html>"]
    page = "\n".join(part for part in parts if part)
    return re.sub(r"<!--.*?-->", "", page, flags=re.DOTALL)
