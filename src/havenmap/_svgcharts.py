"""Small charts as inline SVG text for the situation report (matplotlib, offline, byte-stable).

matplotlib's own SVG writer, used without pyplot (no GUI backend), with

* ``svg.fonttype = "none"``: text stays ``<text>`` in a generic font family, so the page
  needs no font file and the browser draws it with a system font;
* a fixed ``svg.hashsalt`` and no ``Date`` metadata: the same data gives the same bytes
  (a run's outputs are byte-identical, see :mod:`havenmap.manifest`);
* the XML prolog and DOCTYPE dropped, so the SVG can sit inside HTML.

Charts only ever hold numbers and havenmap's own words (labels such as "#1"), never user
text: names and ids go into the HTML tables next to them, escaped there.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Colours of the maps' visual language: reach is blue, threat yellow-to-red.
REACH = ("#08519c", "#6baed6")
#: One colour per time band, darkest for the shortest (the maps' band ramp), repeated past four.
BANDS = ("#08519c", "#3182bd", "#6baed6", "#bdd7e7") * 4
THREAT = ("#fd8d3c", "#bd0026")
INK = "#333333"
_STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "havenmap",
    "font.family": "sans-serif",
    "font.size": 8.0,
    "axes.edgecolor": "#999999",
    "axes.labelcolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)


def _svg(fig: Figure, label: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = _PROLOG.sub("", buffer.getvalue(), count=1).strip()
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" class="chart" ', 1)


def bars(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    ylabel: str,
    label: str,
    percent: bool = False,
    width_in: float = 6.2,
    height_in: float = 2.2,
) -> str:
    """Grouped vertical bars: ``series`` are ``(legend text, values, colour)``; returns SVG text."""
    import matplotlib as mpl  # imported when a chart is drawn: commands without one start faster
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(width_in, height_in))
        ax = fig.add_subplot()
        n = max(len(series), 1)
        step = 0.8 / n
        for i, (name, values, colour) in enumerate(series):
            xs = [x - 0.4 + step * (i + 0.5) for x in range(len(labels))]
            drawn = ax.bar(xs, values, width=step * 0.92, color=colour, label=name)
            ax.bar_label(drawn, labels=[_value(v, percent) for v in values], fontsize=7, padding=1, color=INK)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylabel(ylabel)
        if percent:
            ax.set_ylim(0, 110)
        else:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.margins(y=0.15)
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(fig, label)


def weekly(
    weeks: Sequence[str], totals: Sequence[float], violent: Sequence[float], *, label: str, width_in: float = 6.2
) -> str:
    """Incidents per week (all and violent) as overlaid bars; ``weeks`` are tick labels; returns SVG text."""
    import matplotlib as mpl
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with mpl.rc_context(_STYLE):
        fig = Figure(figsize=(width_in, 2.2))
        ax = fig.add_subplot()
        xs = range(len(weeks))
        ax.bar(xs, totals, width=0.85, color=THREAT[0], label="all incidents")
        ax.bar(xs, violent, width=0.55, color=THREAT[1], label="violent")
        every = max(1, len(weeks) // 8)
        ax.set_xticks([x for x in xs if x % every == 0], [w for i, w in enumerate(weeks) if i % every == 0])
        ax.set_ylabel("incidents per week")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(frameon=False, fontsize=7, loc="upper left")
        ax.margins(x=0.01, y=0.1)
        return _svg(fig, label)


def _value(value: float, percent: bool) -> str:
    return f"{value:.0f} %" if percent else f"{value:g}"
