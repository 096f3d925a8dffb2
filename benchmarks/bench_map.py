"""Benchmark: size of the commander's map and time until it is drawn in headless Chromium.

For 1k / 10k / 100k incidents × 5k / 50k road edges (a synthetic jittered street grid
around Helsinki with a highway hierarchy; incidents in a few Gaussian hotspots plus
background, two years of dates, ACLED-like types and fatalities) it builds
:func:`havenmap.maps.commander_map`, saves it and opens it in headless Chromium through
``tests/browser.py`` (every network request blocked). "Drawn" is the time from navigation
start to the page's ``window.hmDrawn`` flag, which the map sets two animation frames after
all layers were added (so the first frame with everything on it has been produced).

Also reported: the Python build + save time, and (the baseline in the same process) the
size a naive map would have — every incident as a raw ``[lat, lon, weight]`` heat point and
every road edge as a GeoJSON feature with 6-decimal coordinates — to show what the
pre-aggregation buys.

Targets (from the issue): 100k incidents + 50k edges under 15 MB and drawn in under 3 s.

Run: ``python benchmarks/bench_map.py [--repeat 2] [--only 100000x50000]``
(needs ``/usr/bin/chromium`` and the Python package ``playwright``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser import open_page

from havenmap.maps import commander_map, save_map

UTM = pyproj.CRS.from_epsg(32635)  # Helsinki's UTM zone
ORIGIN = (376_000.0, 6_665_000.0)
TYPES = [
    ("Violence against civilians", "Attack"),
    ("Protests", "Peaceful protest"),
    ("Riots", "Mob violence"),
    ("Battles", "Armed clash"),
    ("Explosions/Remote violence", "Grenade"),
]


def street_grid(edges: int, spacing_m: float = 90.0, seed: int = 0) -> gpd.GeoDataFrame:
    """About ``edges`` street pieces on a jittered grid (EPSG:4326), ``highway`` by row/column.

    Every 20th row/column is primary, every 10th secondary, every 5th tertiary, the rest
    residential, with one service road in seven; each piece bends once (3 vertices).
    """
    rng = np.random.default_rng(seed)
    side = round((edges / 2) ** 0.5) + 1
    ix, iy = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    xy = np.stack([ix, iy], axis=-1).astype(float) * spacing_m
    xy += rng.uniform(-0.15, 0.15, xy.shape) * spacing_m + np.array(ORIGIN)
    starts = np.concatenate([xy[:-1, :].reshape(-1, 2), xy[:, :-1].reshape(-1, 2)])
    ends = np.concatenate([xy[1:, :].reshape(-1, 2), xy[:, 1:].reshape(-1, 2)])
    line_index = np.concatenate([iy[:-1, :].ravel(), ix[:, :-1].ravel()])  # the street a piece lies on
    mid = (starts + ends) / 2 + rng.normal(0, 4.0, starts.shape)
    coords = np.stack([starts, mid, ends], axis=1)
    highway = np.full(len(starts), "residential", dtype=object)
    highway[rng.random(len(starts)) < 1 / 7] = "service"
    for step, cls in ((5, "tertiary"), (10, "secondary"), (20, "primary")):
        highway[line_index % step == 0] = cls
    lines = shapely.linestrings(coords)
    frame = gpd.GeoDataFrame({"highway": highway}, geometry=lines, crs=UTM)
    return frame.iloc[:edges].to_crs("EPSG:4326")


def incidents(n: int, roads: gpd.GeoDataFrame, seed: int = 1) -> gpd.GeoDataFrame:
    """``n`` incidents: 60 % in 8 Gaussian hotspots (sigma 300 m), 40 % uniform, over two years."""
    rng = np.random.default_rng(seed)
    west, south, east, north = roads.to_crs(UTM).total_bounds
    centres = rng.uniform([west, south], [east, north], size=(8, 2))
    k = int(n * 0.6)
    hot = centres[rng.integers(0, 8, k)] + rng.normal(0, 300.0, (k, 2))
    background = rng.uniform([west, south], [east, north], size=(n - k, 2))
    xy = np.concatenate([hot, background])
    as_of = pd.Timestamp("2026-11-20")
    age = rng.integers(0, 730, n)
    kinds = rng.integers(0, len(TYPES), n)
    frame = gpd.GeoDataFrame(
        {
            "incident_id": [f"SYN{i:06d}" for i in range(n)],
            "date": as_of - pd.to_timedelta(age, unit="D"),
            "event_type": [TYPES[t][0] for t in kinds],
            "sub_event_type": [TYPES[t][1] for t in kinds],
            "fatalities": rng.choice([0, 0, 0, 0, 1, 2, 5], n),
            "notes": [f"Synthetic incident {i}: a short note of a typical length for an ACLED row." for i in range(n)],
        },
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=UTM,
    )
    return frame.to_crs("EPSG:4326")


def naive_size(roads: gpd.GeoDataFrame, inc: gpd.GeoDataFrame) -> int:
    """Bytes of the data a naive map would embed: raw heat points + one GeoJSON feature per edge."""
    heat = json.dumps(np.round(np.column_stack([inc.geometry.y, inc.geometry.x, np.ones(len(inc))]), 6).tolist())
    feats = [
        {
            "type": "Feature",
            "properties": {"highway": h},
            "geometry": {"type": "LineString", "coordinates": np.round(np.asarray(g.coords), 6).tolist()},
        }
        for h, g in zip(roads["highway"], roads.geometry, strict=True)
    ]
    return len(heat) + len(json.dumps({"type": "FeatureCollection", "features": feats}))


ZOOM_PAN_JS = """
async () => {
  const map = HM.map, frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  let t = performance.now();
  map.setView(map.getCenter(), 16, {animate: false});
  await frame();
  const zoom = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < 10; i++) { map.panBy([250, 120], {animate: false}); await frame(); }
  return [zoom, (performance.now() - t) / 10];
}
"""


def drawn_ms(path: Path) -> tuple[float, float, float]:
    """(ms from navigation start to drawn, ms to zoom in to 16 and redraw, ms per 250 px pan step)."""
    with open_page(path) as view:
        view.page.wait_for_function("window.hmDrawn !== undefined", timeout=60_000)
        assert view.blocked_requests == [], view.blocked_requests
        assert view.console_errors == [] and view.page_errors == [], (view.console_errors, view.page_errors)
        drawn = float(view.evaluate("window.hmDrawn"))
        zoom, pan = view.evaluate(ZOOM_PAN_JS)
        return drawn, zoom, pan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="browser loads per case (median reported)")
    parser.add_argument("--only", default=None, help="one case, e.g. 100000x50000")
    args = parser.parse_args()
    cases = [(n, e) for e in (5_000, 50_000) for n in (1_000, 10_000, 100_000)]
    if args.only:
        cases = [tuple(int(x) for x in args.only.split("x"))]
    rows = []
    with tempfile.TemporaryDirectory(prefix="hm-bench-map-") as tmp:
        for n, e in cases:
            roads = street_grid(e)
            inc = incidents(n, roads)
            start = time.perf_counter()
            m = commander_map(roads=roads, incidents=inc, title=f"bench {n} x {e}", as_of="2026-11-20")
            path = save_map(m, Path(tmp) / f"map_{n}_{e}.html")
            build_s = time.perf_counter() - start
            size_mb = path.stat().st_size / 1e6
            naive_mb = naive_size(roads, inc) / 1e6
            times = np.array([drawn_ms(path) for _ in range(args.repeat)])
            rows.append((n, e, size_mb, naive_mb, build_s, *np.median(times, axis=0)))
            print(f"done {n:>7,} incidents x {e:>6,} edges", file=sys.stderr, flush=True)
    print()
    print(
        "| incidents | road edges | HTML (MB) | naive data (MB) | build + save (s) | drawn (ms) "
        "| zoom to 16, all roads (ms) | pan step (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, e, size, naive, build, ms, zoom, pan in rows:
        print(f"| {n:,} | {e:,} | {size:.2f} | {naive:.1f} | {build:.1f} | {ms:.0f} | {zoom:.0f} | {pan:.0f} |")
    worst = [r for r in rows if r[0] == 100_000 and r[1] == 50_000]
    if worst:
        _, _, size, _, _, ms, _, _ = worst[0]
        verdict = "PASS" if size < 15 and ms < 3000 else "FAIL"
        print(f"\ntarget 100k incidents + 50k edges: < 15 MB and < 3000 ms → {size:.2f} MB, {ms:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
