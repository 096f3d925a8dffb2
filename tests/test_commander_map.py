"""The commander's map in a real browser: offline, no errors, every layer drawn, text stays text.

Two maps are built once per module and opened once each in headless Chromium
(tests/browser.py: every request is intercepted and aborted):

* the demo map: the embedded Helsinki demo (real OSM walk network and havens, synthetic
  people and incidents) with routes from ``nearest_havens`` and, when those modules are
  importable, threat (risk, hotspots, alerts), coverage (service areas, per-defender
  times) and patrol plans from ``havenmap.threat`` / ``havenmap.coverage`` /
  ``havenmap.patrol``; otherwise synthetic layers computed here;
* a map of the real Aguascalientes extract (drive network) with synthetic layers whose
  names and notes carry HTML/script injection strings.

Expected counts come from the inputs, computed here independently of the map code
(pyproj grid cells, pandas date windows, ISO weeks).
"""

from __future__ import annotations

import itertools
import json
import re
import stat
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from scipy.sparse import csgraph
from shapely.geometry import LineString

import havenmap as hm
from havenmap import layers
from havenmap.maps import commander_map, save_map

from .browser import browser_session, requires_chromium
from .conftest import shared_file

ARTIFACTS = Path(__file__).parent / "artifacts"
AS_OF = "2026-11-20"
NASTY = {
    "haven": "<script>window.__pwned=1</script>Safe <b>House</b>",
    "note": "<img src=x onerror=window.__pwned=2>${window.__pwned=3} `tick` </script><script>window.__pwned=4</script>",
    "reason": "<svg onload=window.__pwned=5>surge & <i>arrests</i>",
    "unit": "<b>Alpha</b>&amp;",
    "base": 'Base "<iframe src=x>"',
    "title": "Ops <script>window.__pwned=6</script> & co",
    "kind": "<img src=y onerror=window.__pwned=7>",
}
browser = pytest.mark.browser


# ====================================================================== layer builders


def _node_frame(net, idx) -> gpd.GeoDataFrame:
    lonlat = net.node_lonlat[np.asarray(idx)]
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(lonlat[:, 0], lonlat[:, 1]), crs="EPSG:4326")


def _path_line(net, pred: np.ndarray, src: int, dst: int) -> list[int]:
    nodes = [dst]
    while nodes[-1] != src and pred[nodes[-1]] >= 0:
        nodes.append(int(pred[nodes[-1]]))
    return nodes[::-1] if nodes[-1] == src else []


def synthetic_patrols(
    net, targets: gpd.GeoDataFrame, bases: gpd.GeoDataFrame, days: int, units: list[str], seed: int = 3
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Routes base → 3-4 targets → base along shortest paths (node to node), per unit and day."""
    rng = np.random.default_rng(seed)
    tree = shapely.STRtree(shapely.points(net.node_lonlat))
    node_of = lambda pts: tree.nearest(pts.geometry.to_numpy())  # noqa: E731
    t_nodes, b_nodes = node_of(targets), node_of(bases)
    graph = net.csr(cost="length")
    routes, stops = [], []
    for day in range(1, days + 1):
        for k, unit in enumerate(units):
            base = int(b_nodes[k % len(b_nodes)])
            pick = rng.choice(len(targets), size=min(4, len(targets)), replace=False)
            seq = [base, *[int(t_nodes[p]) for p in pick], base]
            nodes: list[int] = []
            for a, b in itertools.pairwise(seq):
                _, pred = csgraph.dijkstra(graph, indices=a, return_predecessors=True)
                leg = _path_line(net, pred, a, b)
                nodes += leg if not nodes else leg[1:]
            if len(nodes) < 2:
                continue
            routes.append(
                {
                    "unit": unit,
                    "day": day,
                    "base_id": str(bases["id"].iloc[k % len(bases)]),
                    "prize": float(len(pick)),
                    "duration_min": 60.0 + 10 * k,
                    "geometry": LineString(net.node_lonlat[nodes]),
                }
            )
            for s, p in enumerate(pick, start=1):
                stops.append(
                    {
                        "unit": unit,
                        "day": day,
                        "stop": s,
                        "target_id": str(targets["id"].iloc[p]),
                        "geometry": targets.geometry.iloc[p],
                    }
                )
    return (
        gpd.GeoDataFrame(routes, geometry="geometry", crs="EPSG:4326"),
        gpd.GeoDataFrame(stops, geometry="geometry", crs="EPSG:4326"),
    )


def synthetic_service_areas(net, havens: gpd.GeoDataFrame, minutes=(5, 10, 15)) -> gpd.GeoDataFrame:
    """Network service areas: nodes within t minutes of the nearest haven's node, buffered 60 m."""
    tree = shapely.STRtree(shapely.points(net.node_lonlat))
    sources = np.unique(tree.nearest(havens.geometry.to_numpy()))
    seconds = csgraph.dijkstra(net.csr(cost="time").T.tocsr(), indices=sources, min_only=True)
    rows = []
    for t in minutes:
        inside = seconds <= t * 60
        if inside.any():
            area = shapely.union_all(shapely.buffer(shapely.points(net.node_xy[inside]), 60.0))
            rows.append({"haven_id": "all", "minutes": t, "geometry": area})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=net.crs).to_crs("EPSG:4326")


def synthetic_threat(net, incidents: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Edge risk = incidents whose nearest edge it is; hotspots = top edges in three classes."""
    edges = net.edges_gdf(to_crs="EPSG:4326", undirected=True).reset_index(drop=True)
    tree = shapely.STRtree(edges.geometry.to_numpy())
    nearest = tree.nearest(incidents.geometry.to_numpy())
    risk = np.bincount(nearest, minlength=len(edges)).astype(float)
    edge_risk = edges[["u", "v", "key", "geometry"]].assign(edge=np.arange(len(edges)), risk=risk)
    order = np.argsort(-risk)[:30]
    order = order[risk[order] > 0]
    sig = np.array(["hot 99%"] * 10 + ["hot 95%"] * 10 + ["hot 90%"] * 10)[: len(order)]
    hotspots = edge_risk.iloc[order].assign(
        gi_z=np.linspace(4, 1.7, len(order)), p_value=np.linspace(0.0001, 0.09, len(order)), significance=sig
    )
    return edge_risk, hotspots.reset_index(drop=True)


def synthetic_alerts(defenders: gpd.GeoDataFrame, incidents: gpd.GeoDataFrame, n: int = 6) -> pd.DataFrame:
    """Alerts for the defenders with the most incidents within 300 m."""
    utm = defenders.estimate_utm_crs()
    d = defenders.to_crs(utm)
    counts = np.array([int((incidents.to_crs(utm).distance(p) < 300).sum()) for p in d.geometry])
    top = np.argsort(-counts)[:n]
    levels = ["critical", "high", "elevated", "high", "elevated", "none"]
    return pd.DataFrame(
        {
            "defender_id": defenders["id"].astype(str).iloc[top].to_numpy(),
            "score": counts[top].astype(float),
            "level": levels[: len(top)],
            "reason": [f"{c} incidents within 300 m" for c in counts[top]],
        }
    )


def coverage_table(nearest: gpd.GeoDataFrame) -> pd.DataFrame:
    first = nearest.loc[nearest["rank"] == 1]
    return pd.DataFrame(
        {
            "defender_id": first["defender_id"].astype(str),
            "travel_time_s": first["travel_time_s"],
            "reachable": first["reachable"],
        }
    )


def demo_layers() -> dict:
    """The demo scenario's layers, using havenmap.threat / havenmap.patrol when importable."""
    d = hm.demo_dir()
    net = hm.load_network(d / "helsinki.osm.pbf", "walk")
    havens = layers.read_havens(d / "havens.geojson")
    defenders = layers.read_defenders(d / "defenders.csv")
    incidents = layers.read_incidents(d / "incidents.csv")
    # one recent incident whose note is an injection attempt (the demo's own is too old to be "recent")
    extra = incidents.iloc[[-1]].assign(incident_id="TEST-XSS", notes=NASTY["note"], fatalities=2)
    incidents = pd.concat([incidents, extra], ignore_index=True)
    bases = layers.read_bases(d / "bases.csv")
    targets = layers.read_points(d / "targets.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nearest = hm.nearest_havens(net, defenders, havens, k=2)
        sources = {}
        try:
            from havenmap import threat

            result = threat.compute_threat(net, incidents, AS_OF, clusters=False)
            edge_risk, hotspots = result.edge_risk, result.hotspots
            alerts = threat.early_warning(net, incidents, defenders, AS_OF)
            sources["threat"] = "havenmap.threat"
        except (ImportError, AttributeError):
            edge_risk, hotspots = synthetic_threat(net, incidents)
            alerts = synthetic_alerts(defenders, incidents)
            sources["threat"] = "synthetic"
        try:
            from havenmap import patrol

            plan = patrol.plan_patrols(
                net,
                patrol.read_targets(d / "targets.csv"),
                bases,
                units=2,
                shift_minutes=120,
                days=2,
                time_limit_s=1.0,
                max_iterations=300,
            )
            routes, stops = plan.routes, plan.stops
            sources["patrol"] = "havenmap.patrol"
        except (ImportError, AttributeError):
            routes, stops = synthetic_patrols(net, targets, bases, days=2, units=["unit-1", "unit-2"])
            sources["patrol"] = "synthetic"
        try:
            from havenmap import coverage

            service_areas = coverage.service_areas(net, havens, (5, 10, 15))
            cover = coverage.coverage(net, defenders, havens, (5, 10, 15)).defenders
            sources["coverage"] = "havenmap.coverage"
        except (ImportError, AttributeError):
            service_areas, cover = synthetic_service_areas(net, havens), coverage_table(nearest)
            sources["coverage"] = "synthetic"
    alerts = pd.concat(
        [
            alerts,
            pd.DataFrame(
                {
                    "defender_id": [str(defenders["id"].iloc[0])],
                    "score": [9.0],
                    "level": ["high"],
                    "reason": [NASTY["reason"]],
                }
            ),
        ],
        ignore_index=True,
    )
    return {
        "net": net,
        "sources": sources,
        "kwargs": dict(
            roads=net,
            incidents=incidents,
            edge_risk=edge_risk,
            hotspots=hotspots,
            havens=havens,
            service_areas=service_areas,
            defenders=defenders,
            coverage=cover,
            routes=nearest,
            patrol_routes=routes,
            patrol_stops=stops,
            bases=bases,
            alerts=alerts,
            title="Helsinki demo (synthetic)",
            as_of=AS_OF,
        ),
    }


def aguascalientes_layers(net) -> dict:
    """Synthetic layers on the real Aguascalientes drive network, with injection strings."""
    rng = np.random.default_rng(11)
    nodes = rng.choice(net.n_nodes, size=900)
    jitter = rng.normal(0, 0.0004, size=(900, 2))
    lonlat = net.node_lonlat[nodes] + jitter
    days = rng.integers(0, 140, size=900)
    dates = pd.Timestamp(AS_OF) - pd.to_timedelta(days, unit="D")
    incidents = gpd.GeoDataFrame(
        {
            "incident_id": [f"AGS{i:04d}" for i in range(900)],
            "date": dates,
            "event_type": rng.choice(["Violence against civilians", "Protests", "Riots"], size=900),
            "sub_event_type": "",
            "fatalities": rng.choice([0, 0, 0, 1, 3], size=900),
            "notes": [f"note {i}" for i in range(900)],
        },
        geometry=gpd.points_from_xy(lonlat[:, 0], lonlat[:, 1]),
        crs="EPSG:4326",
    )
    incidents.loc[int(np.argmin(days)), "notes"] = NASTY["note"]
    hv = _node_frame(net, rng.choice(net.n_nodes, size=6, replace=False))
    havens = hv.assign(
        id=[f"H{i}" for i in range(6)],
        name=[NASTY["haven"], "Clínica Central", "Embajada", "Parroquia", "Refugio", "Consulado"],
        kind=[NASTY["kind"], "clinic", "embassy", "place_of_worship", "shelter", "consulate"],
    )
    dd = _node_frame(net, rng.choice(net.n_nodes, size=80))
    dd = dd.set_geometry(
        gpd.points_from_xy(dd.geometry.x + rng.normal(0, 3e-4, 80), dd.geometry.y + rng.normal(0, 3e-4, 80)),
        crs="EPSG:4326",
    )
    seconds = rng.uniform(60, 1500, 80)
    reachable = rng.random(80) > 0.1
    defenders = dd.assign(
        id=[f"A{i:03d}" for i in range(80)],
        name=[f"Defender {i}" for i in range(80)],
        travel_time_s=np.where(reachable, seconds, np.nan),
        reachable=reachable,
    )
    bases = _node_frame(net, [0, net.n_nodes // 2]).assign(id=["B1", "B2"], name=[NASTY["base"], "Base Sur"])
    targets = _node_frame(net, rng.choice(net.n_nodes, size=12, replace=False)).assign(
        id=[f"T{i:02d}" for i in range(12)]
    )
    routes, stops = synthetic_patrols(net, targets, bases, days=3, units=[NASTY["unit"], "Bravo"])
    edge_risk, hotspots = synthetic_threat(net, incidents)
    alerts = synthetic_alerts(defenders, incidents)
    alerts.loc[0, "reason"] = NASTY["reason"]
    return dict(
        roads=net,
        incidents=incidents,
        edge_risk=edge_risk,
        hotspots=hotspots,
        havens=havens,
        service_areas=synthetic_service_areas(net, havens),
        defenders=defenders,
        patrol_routes=routes,
        patrol_stops=stops,
        bases=bases,
        alerts=alerts,
        title=NASTY["title"],
        as_of=AS_OF,
    )


# ====================================================================== fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    built = demo_layers()
    path = tmp_path_factory.mktemp("commander") / "demo_map.html"
    save_map(commander_map(**built["kwargs"]), path)
    return {"path": path, "text": path.read_text(encoding="utf-8"), **built}


@pytest.fixture(scope="module")
def ags(tmp_path_factory):
    net = hm.load_network(shared_file("aguascalientes.osm.bz2"), "drive")
    kwargs = aguascalientes_layers(net)
    path = tmp_path_factory.mktemp("commander") / "ags_map.html"
    save_map(commander_map(**kwargs), path)
    return {"path": path, "text": path.read_text(encoding="utf-8"), "kwargs": kwargs, "net": net}


@pytest.fixture(scope="module")
def session():
    if requires_chromium.args[0]:  # the skip marker's condition: true means "skip"
        pytest.skip(requires_chromium.kwargs["reason"])
    with browser_session() as s:
        yield s


def _open(session, path):
    """Open a map; returns the view once the map's drawn flag is set."""
    view = session.open(path)
    view.page.wait_for_function("window.hmDrawn !== undefined")
    return view


@pytest.fixture(scope="module")
def demo_view(session, demo):
    return _open(session, demo["path"])


@pytest.fixture(scope="module")
def ags_view(session, ags):
    return _open(session, ags["path"])


@pytest.fixture(params=["demo", "ags"])
def built(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["demo", "ags"])
def view_of(request):
    name = request.param
    return request.getfixturevalue(name), request.getfixturevalue(f"{name}_view")


# ====================================================================== oracles (independent of the map code)


def utm_cells(points: gpd.GeoDataFrame, cell_m: float = 500.0) -> np.ndarray:
    """(ix, iy) of 500 m UTM squares via pyproj, zone from the mean longitude."""
    lon, lat = points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
    zone = int((lon.mean() + 180) // 6) + 1
    epsg = (32600 if lat.mean() >= 0 else 32700) + zone
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    return np.column_stack([np.floor(np.asarray(x) / cell_m), np.floor(np.asarray(y) / cell_m)]).astype(int)


def expected_status(defenders: gpd.GeoDataFrame, coverage: pd.DataFrame | None, slow_s: float = 600.0) -> dict:
    frame = defenders.copy()
    if coverage is not None:
        table = coverage.set_index("defender_id")
        frame["travel_time_s"] = frame["id"].astype(str).map(table["travel_time_s"])
        frame["reachable"] = frame["id"].astype(str).map(table["reachable"]).fillna(False).astype(bool)
    t = pd.to_numeric(frame["travel_time_s"], errors="coerce")
    ok = frame["reachable"].astype(bool) & t.notna()
    return {
        "covered": int((ok & (t <= slow_s)).sum()),
        "slow": int((ok & (t > slow_s)).sum()),
        "unreachable": int((~ok).sum()),
    }


def expected_recent(incidents: gpd.GeoDataFrame, days: int = 30) -> int:
    dates = pd.to_datetime(incidents["date"]).dt.normalize()
    end = pd.Timestamp(AS_OF)
    return int(((dates > end - pd.Timedelta(days=days)) & (dates <= end)).sum())


def expected_alert_cells(kw: dict) -> int:
    alerts, defenders = kw["alerts"], kw["defenders"]
    active = alerts.loc[~alerts["level"].astype(str).str.lower().isin(["none", "", "ok"])]
    alerted = defenders.loc[defenders["id"].astype(str).isin(set(active["defender_id"].astype(str)))]
    cells = utm_cells(defenders)[defenders["id"].astype(str).isin(set(alerted["id"].astype(str))).to_numpy()]
    return len({tuple(c) for c in cells})


def day_parts(kw: dict, day) -> tuple[int, int]:
    """(route line parts, stops) of one patrol day."""
    routes = kw["patrol_routes"].loc[kw["patrol_routes"]["day"] == day]
    parts = sum(len(shapely.get_parts(g)) for g in routes.geometry)
    return parts, int((kw["patrol_stops"]["day"] == day).sum())


# ====================================================================== static HTML


def test_self_contained_html(built):
    from .test_maps import assert_self_contained

    assert_self_contained(built["text"])
    assert "L.tileLayer(" not in built["text"]


def test_defenders_never_exact_in_the_file(built):
    text, defenders = built["text"], built["kwargs"]["defenders"]
    for lon, lat, name, ident in zip(
        defenders.geometry.x, defenders.geometry.y, defenders["name"], defenders["id"], strict=True
    ):
        assert f"{round(lat, 5)},{round(lon, 5)}" not in text
        assert json.dumps(str(name)) not in text and f'"{ident}"' not in text
    assert "EXACT DEFENDER LOCATIONS" not in text
    assert stat.S_IMODE(built["path"].stat().st_mode) == 0o644


def test_demo_uses_the_real_modules_when_present(demo):
    """Which modules fed the demo map (recorded; the fallback is synthetic layers)."""
    for module, source in demo["sources"].items():
        try:
            __import__(f"havenmap.{module}")
            assert source == f"havenmap.{module}"
        except ImportError:
            assert source == "synthetic"


# ====================================================================== in the browser


def _count(view, selector: str) -> int:
    return view.evaluate("s => document.querySelectorAll(s).length", selector)


INK_JS = """
canvas => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}
"""


def _ink(view, selector: str) -> int:
    loc = view.page.locator(selector)
    return sum(loc.nth(i).evaluate(INK_JS) for i in range(loc.count()))


def _checked(view) -> dict[str, bool]:
    return view.evaluate("""() => Object.fromEntries(
        Array.from(document.querySelectorAll('.leaflet-control-layers label'))
             .map(l => [l.textContent.trim(), l.querySelector('input').checked]))""")


@browser
def test_offline_no_request_no_error(view_of):
    _, view = view_of
    assert view.blocked_requests == []
    assert view.requests == [view.url]
    assert view.console_errors == [] and view.page_errors == []
    assert _count(view, ".leaflet-tile-pane img") == 0
    assert view.evaluate("window.hmDrawn") < 3000  # ms from navigation start


@browser
def test_layer_control_defaults(view_of):
    built, view = view_of
    kw = built["kwargs"]
    days = sorted(kw["patrol_routes"]["day"].unique())
    want = {
        "Road network (offline base map)": True,
        "Incident heatmap (by week)": True,
        "Recent incidents (30 days)": True,
        "Hotspot roads": True,
        "Road risk": False,
        "Service areas (5 / 10 / 15 min)": True,
        "Defenders' status (per 500 m cell)": True,
        "Alerts: defenders' areas": True,
        "Safe havens": True,
        "Patrol bases": True,
        **{f"Patrol day {d}": d == days[0] for d in days},
    }
    if "routes" in kw:
        want["Routes to havens"] = True
    assert _checked(view) == want


@browser
def test_every_layer_draws(view_of):
    built, view = view_of
    kw = built["kwargs"]
    stats = view.evaluate("HM.stats()")
    # base map and heat: pixels on their canvases
    assert _ink(view, ".leaflet-hmRoads-pane canvas") > 5000
    assert _ink(view, "canvas.leaflet-heatmap-layer") > 5000
    # recent incidents: every one is in a visible cluster or drawn on its own
    n_recent = expected_recent(kw["incidents"])
    assert stats["recent"]["total"] == n_recent
    clustered = view.evaluate("Array.from(document.querySelectorAll('.hm-cluster')).map(e => +e.textContent)")
    assert sum(clustered) + _count(view, ".hm-inc") == n_recent and len(clustered) > 0
    # hotspots: one SVG path per hot road piece
    assert _count(view, "path.hm-hotspot") == len(kw["hotspots"])
    # service areas: one polygon per band
    assert _count(view, "path.hm-service-area") == 3
    # defenders: one cell per occupied 500 m square, counts per status add up
    cells = {tuple(c) for c in utm_cells(kw["defenders"])}
    assert _count(view, "path.hm-defender-cell") == len(cells)
    badge = view.evaluate("""() => { const out = {};
        document.querySelectorAll('.hm-badge span').forEach(s => {
          out[s.className] = (out[s.className] || 0) + Number(s.textContent); });
        return out; }""")
    want = expected_status(kw["defenders"], kw.get("coverage"))
    assert {k.removeprefix("hm-st-"): v for k, v in badge.items()} == {k: v for k, v in want.items() if v}
    # alerts: a dashed outline and a warning icon per cell with an active alert
    n_alert_cells = expected_alert_cells(kw)
    assert _count(view, "path.hm-alert-cell") == n_alert_cells == _count(view, ".hm-alert")
    # havens, bases
    assert _count(view, ".hm-haven") == len(kw["havens"])
    assert _count(view, ".hm-base") == len(kw["bases"])
    # patrols: day 1 routes (with arrow text paths) and numbered stops
    lines, stops = day_parts(kw, 1)
    assert _count(view, "path.hm-patrol") == lines == _count(view, "textPath")
    assert _count(view, ".hm-stop") == stops
    assert sorted(
        view.evaluate("Array.from(document.querySelectorAll('.hm-stop')).map(e => +e.textContent)")
    ) == sorted(kw["patrol_stops"].loc[kw["patrol_stops"]["day"] == 1, "stop"].astype(int))


@browser
def test_toggles_change_what_is_drawn(view_of):
    built, view = view_of
    kw, page = built["kwargs"], view.page

    def label(text):
        return page.locator(".leaflet-control-layers label", has_text=text).first

    n_havens = len(kw["havens"])
    label("Safe havens").click()
    assert _count(view, ".hm-haven") == 0
    label("Safe havens").click()
    assert _count(view, ".hm-haven") == n_havens
    # road risk is off by default; switching it on draws on its canvas
    assert _ink(view, ".leaflet-hmRisk-pane canvas") == 0
    label("Road risk").click()
    assert _ink(view, ".leaflet-hmRisk-pane canvas") > 500
    label("Road risk").click()
    assert view.evaluate("HM.stats().risk.on") is False
    # patrol days behave like radio buttons
    lines2, stops2 = day_parts(kw, 2)
    label("Patrol day 2").click()
    checked = _checked(view)
    assert checked["Patrol day 2"] and not checked["Patrol day 1"]
    assert _count(view, ".hm-stop") == stops2 and _count(view, "path.hm-patrol") == lines2
    label("Patrol day 1").click()
    assert not _checked(view)["Patrol day 2"]
    assert _count(view, ".hm-stop") == day_parts(kw, 1)[1]
    # the heat's week slider: last week, then all weeks again
    dates = pd.to_datetime(kw["incidents"]["date"])
    dates = dates[dates < pd.Timestamp(AS_OF) + pd.Timedelta(days=1)]
    monday = (pd.Timestamp(AS_OF) - pd.Timedelta(days=pd.Timestamp(AS_OF).weekday())).normalize()
    n_last = int((dates >= monday).sum())
    all_ink = _ink(view, "canvas.leaflet-heatmap-layer")
    page.locator(".hm-time input[type=range]").evaluate(
        "(el) => { el.value = el.max - 1; el.dispatchEvent(new Event('input')); }"
    )
    page.wait_for_timeout(100)
    text = page.locator(".hm-time .hm-label").inner_text()
    iso = pd.Timestamp(AS_OF).isocalendar()
    assert text.startswith(f"{iso.year}-W{iso.week:02d} ({monday:%d %b}): {n_last} incident")
    assert 0 < _ink(view, "canvas.leaflet-heatmap-layer") < all_ink
    page.locator(".hm-time button", has_text="all").click()
    assert page.locator(".hm-time .hm-label").inner_text().startswith(f"all weeks: {len(dates):,} incidents")
    # switching the heat layer off removes its slider
    label("Incident heatmap").click()
    assert _count(view, ".hm-time") == 0 and _count(view, "canvas.leaflet-heatmap-layer") == 0
    label("Incident heatmap").click()
    assert _count(view, ".hm-time") == 1
    assert view.console_errors == [] and view.page_errors == []


@browser
def test_chrome_legend_title_scale_fullscreen_measure(view_of):
    built, view = view_of
    kw, page = built["kwargs"], view.page
    title = page.locator("#hm-title").inner_text()
    assert kw["title"] in title and f"as of {AS_OF}" in title
    assert view.evaluate("document.title") == kw["title"]
    assert _count(view, ".leaflet-control-scale") == 1
    assert _count(view, ".leaflet-control-zoom-fullscreen") == 1
    legend = page.locator("#hm-legend").inner_text()
    for text in (
        "Base map",
        "Threat",
        "Safety",
        "Patrols",
        "main road",
        "incident density",
        "recent incident",
        "cluster",
        "hot spot road, 99% confidence",
        "hot spot road, 95% confidence",
        "hot spot road, 90% confidence",
        "road risk",
        "service area: a haven within 5 min",
        "within 10 min",
        "within 15 min",
        "unreachable",
        "alert",
        "patrol base",
    ):
        assert text in legend, text
    for unit in kw["patrol_routes"]["unit"].unique():
        assert f"unit {unit}: route" in legend
    # the measure tool measures: two clicks on the map, finish, a distance in metres
    box = page.locator(".leaflet-control-measure-toggle").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.locator(".leaflet-control-measure .js-start").click()
    map_box = page.locator(".folium-map").bounding_box()
    page.mouse.click(map_box["x"] + 420, map_box["y"] + 420)
    page.mouse.click(map_box["x"] + 620, map_box["y"] + 420)
    page.locator(".leaflet-control-measure .js-finish").click()
    measured = page.locator(".leaflet-popup-content").inner_text()
    assert "Meters" in measured
    metres = float(re.search(r"([\d,.]+) Meters", measured).group(1).replace(",", ""))
    want = view.evaluate("""() => { const m = HM.map;
        return m.containerPointToLatLng([420, 420]).distanceTo(m.containerPointToLatLng([620, 420])); }""")
    assert metres == pytest.approx(want, rel=0.02)
    page.locator(".leaflet-popup-content .js-deletemarkup").click()  # remove the measurement again
    page.wait_for_function("document.querySelectorAll('.leaflet-popup-content').length === 0")  # fades out
    assert view.console_errors == [] and view.page_errors == [] and view.blocked_requests == []


OPEN_ALL_JS = """
async ([names, needles]) => {
  const texts = [], has = el => needles.some(n => el.textContent.includes(n));
  for (const name of names) {
    const group = HM.groups[name];
    if (!group || !HM.map.hasLayer(group)) continue;
    const leaves = [];
    (function walk(l) {
      if (L.MarkerClusterGroup && l instanceof L.MarkerClusterGroup) {
        l.getLayers().forEach(m => leaves.push([m, l]));
        return;
      }
      if (l.getLayers && !(l instanceof L.Path)) { l.getLayers().forEach(walk); return; }
      leaves.push([l, null]);
    })(group);
    for (const [l, cluster] of leaves) {
      if (cluster) {  // clustered markers: open only those whose popup holds a needle
        const popup = l.getPopup();
        if (!popup || !has(popup._content(l))) continue;
        await new Promise(r => cluster.zoomToShowLayer(l, r));
      }
      for (const kind of ["Tooltip", "Popup"]) {
        if (!l["get" + kind] || !l["get" + kind]()) continue;
        l["open" + kind]();
        const el = l["get" + kind]().getElement();
        if (el) texts.push(el.innerText);
        l["close" + kind]();
      }
    }
  }
  return texts;
}
"""


@browser
def test_user_text_stays_text(ags, ags_view):
    view, page = ags_view, ags_view.page
    texts = view.evaluate(OPEN_ALL_JS, [["havens", "alerts", "bases", "patrol_day_1", "recent"], [NASTY["note"]]])
    joined = "\n".join(texts)
    for key in ("haven", "kind", "reason", "base", "note"):
        assert NASTY[key] in joined, key
    assert f"unit {NASTY['unit']}" in joined
    assert NASTY["title"] in page.locator("#hm-title").inner_text()
    assert view.evaluate("document.title") == NASTY["title"]
    assert f"unit {NASTY['unit']}: route" in page.locator("#hm-legend").inner_text()
    assert view.evaluate("typeof window.__pwned") == "undefined"
    assert (
        _count(
            view,
            ".leaflet-popup-pane script, .leaflet-tooltip-pane script, #hm-legend script, "
            "#hm-title script, img, iframe, .leaflet-popup-pane svg",
        )
        == 0
    )
    assert view.blocked_requests == []  # no <img src=x> or <iframe src=x> was ever created
    assert view.console_errors == [] and view.page_errors == []


@browser
def test_screenshots(view_of):
    built, view = view_of
    name = "commander_demo" if "sources" in built else "commander_aguascalientes"
    view.evaluate("() => { HM.map.closePopup(); HM.map.setView(HM.home.center, HM.home.zoom, {animate: false}); }")
    view.page.wait_for_timeout(300)
    shot = view.screenshot(ARTIFACTS / f"{name}.png")
    assert shot.stat().st_size > 50_000
    # and closer in (the havens), where streets, stops and arrows can be read
    view.evaluate("() => { HM.map.fitBounds(HM.groups.havens.getBounds(), {animate: false}); }")
    view.page.wait_for_timeout(300)
    assert view.screenshot(ARTIFACTS / f"{name}_zoom.png").stat().st_size > 50_000
    view.evaluate("() => { HM.map.setView(HM.home.center, HM.home.zoom, {animate: false}); }")


# ====================================================================== the CLI


def test_cli_map_command(tmp_path):
    import subprocess
    import sys

    d = hm.demo_dir()
    patrols = tmp_path / "patrols"
    patrols.mkdir()
    net = hm.load_network(d / "helsinki.osm.pbf", "walk")
    targets = layers.read_points(d / "targets.csv")
    bases = layers.read_bases(d / "bases.csv")
    routes, stops = synthetic_patrols(net, targets, bases, days=2, units=["u1", "u2"])
    routes.to_file(patrols / "patrol_routes.geojson")
    schedule = stops.drop(columns="geometry")
    schedule.to_csv(patrols / "patrol_schedule.csv", index=False)
    alerts = tmp_path / "alerts.csv"
    pd.DataFrame({"defender_id": ["D001"], "score": [3.0], "level": ["high"], "reason": ["surge"]}).to_csv(alerts)
    out = tmp_path / "map.html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "havenmap.cli",
            "map",
            "-n",
            str(d / "helsinki.osm.pbf"),
            "--network-type",
            "walk",
            "--incidents",
            str(d / "incidents.csv"),
            "--havens",
            str(d / "havens.geojson"),
            "-d",
            str(d / "defenders.csv"),
            "--alerts",
            str(alerts),
            "--patrols",
            str(patrols),
            "--targets",
            str(d / "targets.csv"),
            "--bases",
            str(d / "bases.csv"),
            "--title",
            "CLI <map>",
            "--as-of",
            AS_OF,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    from .test_maps import assert_self_contained

    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    for label in ("Safe havens", "Patrol day 1", "Patrol day 2", "Alerts: defenders", "Recent incidents"):
        assert label in text
    assert "CLI &lt;map&gt;" in text
    assert text.count('"hm-icon hm-stop-icon"') == 4  # numbered stops: one icon style per unit and day
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "havenmap.cli",
            "map",
            "-n",
            str(d / "helsinki.osm.pbf"),
            "--patrols",
            str(patrols),
            "--targets",
            str(d / "bases.csv"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--targets" in bad.stderr and "Traceback" not in bad.stderr


def test_exact_mode_shows_points_and_is_private(ags, tmp_path):
    kw = {**ags["kwargs"], "exact_defenders": True}
    path = save_map(commander_map(**kw), tmp_path / "exact.html")
    text = path.read_text(encoding="utf-8")
    defenders = kw["defenders"]
    for lon, lat in zip(defenders.geometry.x, defenders.geometry.y, strict=True):
        assert f"[{round(lat, 5)},{round(lon, 5)}," in text
    assert "EXACT DEFENDER LOCATIONS" in text and "Alerts (EXACT defender locations)" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@browser
def test_minor_roads_appear_when_zooming_in(session, tmp_path, monkeypatch):
    from havenmap import _maphtml as mh

    monkeypatch.setattr(mh, "ZOOM_TIERS_ABOVE", 0)  # generalise even this small network by zoom
    net = hm.load_network(hm.demo_dir() / "helsinki.osm.pbf", "walk")
    path = save_map(commander_map(roads=net), tmp_path / "roads.html")
    view = _open(session, path)
    zoom_to = "z => { HM.map.setZoom(z, {animate: false}); return [HM.map.getZoom(), HM.stats().roads.drawn]; }"
    assert view.evaluate(zoom_to, 13) == [13, 1]  # main roads only
    low = _ink(view, ".leaflet-hmRoads-pane canvas")
    assert view.evaluate(zoom_to, 14) == [14, 2]  # + streets
    assert view.evaluate(zoom_to, 15) == [15, 3]  # + paths and service roads
    assert view.evaluate(zoom_to, 13) == [13, 1]
    assert low > 0 and view.console_errors == [] and view.page_errors == []


MISPLACED_JS = """() => {
  const m = HM.map, out = [];
  m.eachLayer(l => {
    if (!l.getLatLng || !l._icon) return;
    if (l._icon.classList.contains('hm-cluster') || l._icon.classList.contains('hm-inc')) return;
    const el = l._icon.classList.contains('hm-badge-icon') ? l._icon.firstChild : l._icon;
    const r = el.getBoundingClientRect(), p = m.latLngToContainerPoint(l.getLatLng());
    if (Math.abs(r.left + r.width / 2 - p.x) + Math.abs(r.top + r.height / 2 - p.y) > 2) out.push(l._icon.className);
  });
  return out;
}"""


@browser
def test_icons_sit_on_their_points_in_the_first_frame(session, demo):
    """Marker-cluster's CSS transitions must not make the other icons glide in from the corner."""
    view = session.open(demo["path"])
    view.page.wait_for_function("window.hmDrawn !== undefined")
    assert view.evaluate(MISPLACED_JS) == []
    assert view.evaluate("document.querySelectorAll('.hm-haven, .hm-badge, .hm-stop, .hm-alert').length") > 20
