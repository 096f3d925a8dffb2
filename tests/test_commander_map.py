"""The commander's map in a real browser: it opens on what needs a decision, offline, text stays text.

Three maps are built once per module and opened in one headless Chromium per module
(tests/browser.py: every request is intercepted and aborted):

* the demo map: the embedded Helsinki demo (real OSM walk network and havens, synthetic
  people and incidents) with routes from ``nearest_havens`` and, when those modules are
  importable, threat (risk, hotspots, alerts), coverage (service areas, per-defender
  times) and patrol plans from ``havenmap.threat`` / ``havenmap.coverage`` /
  ``havenmap.patrol``; otherwise synthetic layers computed here;
* a map of the real Aguascalientes extract (drive network) with synthetic layers whose
  names and notes carry HTML/script injection strings, and three defenders 3 km outside;
* the map of a whole scenario run (``run_scenario``: threat, coverage, patrols) on the
  Aguascalientes extract, with defenders far outside the network.

Expected counts come from the inputs, computed here independently of the map code
(pyproj grid cells, pandas date windows, ISO weeks, shapely point-in-polygon on the
drawn cells, the network's own street names).
"""

from __future__ import annotations

import itertools
import json
import re
import stat
import subprocess
import sys
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


def outliers(net, n: int, km: float = 3.0) -> list:
    """``n`` points about ``km`` south of the network's bounding box (off the network: unreachable)."""
    west, south, east, _ = net.edges_gdf(to_crs="EPSG:4326").total_bounds
    lat = south - km / 111.32
    return [shapely.Point(west + (east - west) * (i + 1) / (n + 1), lat - 0.002 * i) for i in range(n)]


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
    far = gpd.GeoDataFrame(geometry=outliers(net, 3), crs="EPSG:4326")
    dd = pd.concat([dd, far], ignore_index=True)
    seconds = rng.uniform(60, 1500, 83)
    reachable = np.r_[rng.random(80) > 0.1, [False] * 3]
    defenders = dd.assign(
        id=[f"A{i:03d}" for i in range(83)],
        name=[f"Defender {i}" for i in range(83)],
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
    return {"name": "demo", "path": path, "text": path.read_text(encoding="utf-8"), "slow": 10.0, **built}


@pytest.fixture(scope="module")
def ags(tmp_path_factory):
    net = hm.load_network(shared_file("aguascalientes.osm.bz2"), "drive")
    kwargs = aguascalientes_layers(net)
    path = tmp_path_factory.mktemp("commander") / "ags_map.html"
    save_map(commander_map(**kwargs), path)
    return {
        "name": "ags",
        "path": path,
        "text": path.read_text(encoding="utf-8"),
        "kwargs": kwargs,
        "net": net,
        "slow": 10.0,
    }


def _points_csv(frame: gpd.GeoDataFrame, path: Path, columns: list[str]) -> Path:
    table = pd.DataFrame({c: frame[c] for c in columns})
    table["latitude"], table["longitude"] = frame.geometry.y.to_numpy(), frame.geometry.x.to_numpy()
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A whole scenario on the real Aguascalientes extract: threat, coverage, patrols, the commander's map."""
    from havenmap import _io

    source = shared_file("aguascalientes.osm.bz2")
    net = hm.load_network(source, "drive")
    kw = aguascalientes_layers(net)
    d = tmp_path_factory.mktemp("ags_run")
    havens = kw["havens"].assign(name=[f"Refugio {i}" for i in range(len(kw["havens"]))], kind="clinic")
    _points_csv(havens, d / "havens.csv", ["id", "name", "kind"])
    _points_csv(kw["defenders"], d / "defenders.csv", ["id", "name"])
    inc = kw["incidents"].assign(date=kw["incidents"]["date"].dt.strftime("%Y-%m-%d"))
    _points_csv(
        inc.rename(columns={"incident_id": "id"}),
        d / "incidents.csv",
        ["id", "date", "event_type", "fatalities", "notes"],
    )
    _points_csv(kw["bases"].assign(name=["Base Norte", "Base Sur"]), d / "bases.csv", ["id", "name"])
    targets = _node_frame(net, np.random.default_rng(5).choice(net.n_nodes, 12, replace=False))
    _points_csv(
        targets.assign(id=[f"T{i:02d}" for i in range(12)], priority=[1, 2, 3] * 4),
        d / "targets.csv",
        ["id", "priority"],
    )
    (d / "scenario.toml").write_text(
        f'name = "Aguascalientes (synthetic)"\nas_of = "{AS_OF}"\nnetwork = {json.dumps(str(source))}\n'
        'network_type = "drive"\nhavens = "havens.csv"\ndefenders = "defenders.csv"\nincidents = "incidents.csv"\n'
        'bases = "bases.csv"\ntargets = "targets.csv"\nk = 2\nminutes = [2, 4, 6]\n'
        "[threat]\ncluster_permutations = 0\n[alerts]\ndistance_m = 300\n"
        "[patrol]\nunits = 2\nshift_minutes = 90\ndays = 2\ntime_limit_s = 1\n",
        encoding="utf-8",
    )
    scenario = hm.load_scenario(d / "scenario.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hm.run_scenario(scenario, d / "out")
    out = d / "out"
    alerts = (
        _io.read_table(out / "threat" / "alerts.csv", "alerts") if (out / "threat" / "alerts.csv").exists() else None
    )
    return {
        "name": "run",
        "path": out / "map.html",
        "text": (out / "map.html").read_text(encoding="utf-8"),
        "out": out,
        "net": net,
        "slow": 6.0,
        "kwargs": {
            "defenders": layers.read_defenders(d / "defenders.csv"),
            "coverage": _io.read_table(out / "coverage" / "coverage.csv", "coverage"),
            "alerts": alerts,
            "havens": layers.read_havens(d / "havens.csv"),
            "incidents": layers.read_incidents(d / "incidents.csv"),
        },
    }


@pytest.fixture(scope="module")
def session():
    if requires_chromium.args[0]:  # the skip marker's condition: true means "skip"
        pytest.skip(requires_chromium.kwargs["reason"])
    with browser_session() as s:
        yield s


BIG = {"width": 1600, "height": 1000}
SMALL = {"width": 1024, "height": 768}


def _open(session, path, viewport=BIG):
    """Open a map; returns the view once the map's drawn flag is set."""
    view = session.open(path, viewport=viewport)
    view.page.wait_for_function("window.hmDrawn !== undefined")
    return view


@pytest.fixture(scope="module")
def demo_view(session, demo):
    return _open(session, demo["path"])


@pytest.fixture(scope="module")
def ags_view(session, ags):
    return _open(session, ags["path"])


@pytest.fixture(scope="module")
def run_view(session, run):
    return _open(session, run["path"])


@pytest.fixture(params=["demo", "ags", "run"])
def built(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["demo", "ags"])
def view_of(request):
    """The two maps with every kind of layer (the scenario run has the same layers)."""
    name = request.param
    return request.getfixturevalue(name), request.getfixturevalue(f"{name}_view")


@pytest.fixture(params=["demo", "ags", "run"])
def any_view(request):
    name = request.param
    return request.getfixturevalue(name), request.getfixturevalue(f"{name}_view")


@pytest.fixture(scope="module")
def small_views(session):
    return {}


@pytest.fixture(params=[(m, s) for m in ("demo", "ags", "run") for s in ("big", "small")], ids=lambda p: "-".join(p))
def sized_view(request, small_views):
    """Every map in a 1600 x 1000 and a 1024 x 768 window (each page opened once per module)."""
    name, size = request.param
    built = request.getfixturevalue(name)
    if size == "big":
        view = request.getfixturevalue(f"{name}_view")
    else:
        if name not in small_views:
            small_views[name] = _open(request.getfixturevalue("session"), built["path"], SMALL)
        view = small_views[name]
    _home(view)
    yield built, view, size
    _home(view)


def _home(view) -> None:
    """Back to the opening state: default layers, opening view, no popup."""
    view.evaluate("""() => {
        HM.map.closePopup();
        HM.order.forEach(k => { const on = HM.meta[k].show, g = HM.groups[k];
            if (on && !HM.map.hasLayer(g)) HM.map.addLayer(g); if (!on && HM.map.hasLayer(g)) HM.map.removeLayer(g); });
        HM.map.setView(HM.homeView.center, HM.homeView.zoom, {animate: false});
        HM.declutter(); }""")


def _all_on(view) -> None:
    """Every layer on (of the patrol days, which exclude each other, day 1)."""
    view.evaluate("""() => {
        HM.order.filter(k => !/^patrol_day_(?!1$)/.test(k)).forEach(k => HM.map.addLayer(HM.groups[k]));
        HM.declutter(); }""")
    view.page.wait_for_timeout(50)


# ====================================================================== oracles (independent of the map code)


def utm_cells(points: gpd.GeoDataFrame, cell_m: float = 500.0) -> np.ndarray:
    """(ix, iy) of 500 m UTM squares via pyproj, zone from the mean longitude."""
    lon, lat = points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
    zone = int((lon.mean() + 180) // 6) + 1
    epsg = (32600 if lat.mean() >= 0 else 32700) + zone
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon, lat)
    return np.column_stack([np.floor(np.asarray(x) / cell_m), np.floor(np.asarray(y) / cell_m)]).astype(int)


def expected_status(built: dict) -> pd.Series:
    """'covered' / 'slow' / 'unreachable' per defender id, from the coverage table or the defenders' columns."""
    kw = built["kwargs"]
    frame = kw["defenders"].copy()
    ids = frame["id"].astype(str)
    if kw.get("coverage") is not None:
        table = kw["coverage"].assign(defender_id=kw["coverage"]["defender_id"].astype(str)).set_index("defender_id")
        frame["travel_time_s"] = ids.map(table["travel_time_s"]).to_numpy()
        frame["reachable"] = ids.map(table["reachable"].astype(str).str.lower().isin(["true", "1"])).to_numpy()
    t = pd.to_numeric(frame["travel_time_s"], errors="coerce")
    ok = frame["reachable"].astype(bool) & t.notna()
    status = np.where(~ok, "unreachable", np.where(t <= built["slow"] * 60, "covered", "slow"))
    return pd.Series(status, index=ids.to_numpy())


def alerted_ids(built: dict) -> set[str]:
    alerts = built["kwargs"].get("alerts")
    if alerts is None:
        return set()
    active = alerts.loc[~alerts["level"].astype(str).str.lower().isin(["none", "", "ok", "nan"])]
    return set(active["defender_id"].astype(str))


def expected_recent(incidents: gpd.GeoDataFrame, days: int = 30) -> int:
    dates = pd.to_datetime(incidents["date"]).dt.normalize()
    end = pd.Timestamp(AS_OF)
    return int(((dates > end - pd.Timedelta(days=days)) & (dates <= end)).sum())


def day_parts(kw: dict, day) -> tuple[int, int]:
    """(route line parts, stops) of one patrol day."""
    routes = kw["patrol_routes"].loc[kw["patrol_routes"]["day"] == day]
    parts = sum(len(shapely.get_parts(g)) for g in routes.geometry)
    return parts, int((kw["patrol_stops"]["day"] == day).sum())


DRAWN_CELLS_JS = """() => Object.entries(HM.cells).map(([id, c]) => [id,
    c.getLatLngs().map(poly => (Array.isArray(poly[0]) ? poly : [poly]).map(r => r.map(p => [p.lng, p.lat]))),
    Array.from(document.querySelectorAll('.hm-badge[data-cell="' + id + '"] span')).map(s => s.textContent)])"""


def drawn_cells(view) -> list[tuple[str, object, list[str]]]:
    """The defender cells as drawn (shapely polygons from the page) with their badge texts."""
    out = []
    for cid, polys, badge in view.evaluate(DRAWN_CELLS_JS):
        shapes = [shapely.Polygon(rings[0], rings[1:]) for rings in polys]
        out.append((cid, shapely.union_all(shapes), badge))
    return out


# ====================================================================== static HTML


def test_self_contained_html(built):
    from .test_maps import assert_self_contained

    assert_self_contained(built["text"])
    assert "L.tileLayer(" not in built["text"]


def _public_coordinates(built: dict) -> tuple[np.ndarray, list]:
    """Vertices of every public input (roads, havens, incidents, threat and patrol layers) and service-area outlines."""
    kw, net = built["kwargs"], built["net"]
    frames = [net.edges_gdf(to_crs="EPSG:4326"), kw.get("havens"), kw.get("incidents")]
    frames += [kw.get(k) for k in ("hotspots", "edge_risk", "patrol_routes", "patrol_stops", "bases")]
    outlines = [kw.get("service_areas")]
    if "out" in built:
        out = built["out"]
        for name in ("threat/hotspots.geojson", "patrol/patrol_routes.geojson"):
            if (out / name).exists():
                frames.append(gpd.read_file(out / name))
        outlines.append(gpd.read_file(out / "coverage" / "service_areas.geojson"))
    vertices = np.concatenate(
        [shapely.get_coordinates(f.to_crs("EPSG:4326").geometry.to_numpy()) for f in frames if f is not None]
    )
    lines = [shapely.boundary(f.to_crs("EPSG:4326").geometry.to_numpy()) for f in outlines if f is not None]
    return vertices, lines


def test_no_defender_position_in_the_file(built):
    """Every coordinate of the file (number pairs both ways, decoded polylines) near a defender is public.

    Within the smallest cell's radius (50 m) of a defender, the only coordinates allowed are
    vertices of public inputs, points on service-area outlines and points on grid lines (cell
    borders, and the lines 150 m beyond them where routes are cut): everything the privacy rules
    draw depends on the cell, not on where in it a defender is (tests/test_maps.py proves the
    strict version on a hand-placed scene).
    """
    from scipy.spatial import cKDTree

    from .test_maps import coordinates_in

    text, defenders = built["text"], built["kwargs"]["defenders"]
    for name, ident in zip(defenders["name"], defenders["id"], strict=True):
        assert json.dumps(str(name)) not in text and f'"{ident}"' not in text
    assert "EXACT DEFENDER LOCATIONS" not in text
    havens = built["kwargs"].get("havens")
    all_public = havens is None or ("public" in havens and bool(havens["public"].fillna(False).astype(bool).all()))
    assert stat.S_IMODE(built["path"].stat().st_mode) == (0o644 if all_public else 0o600)  # safe houses: owner-only
    utm = defenders.estimate_utm_crs()
    to_utm = Transformer.from_crs("EPSG:4326", utm, always_xy=True)
    latlon = coordinates_in(text)
    box = defenders.total_bounds
    near = (np.abs(latlon[:, 1] - (box[0] + box[2]) / 2) < 1) & (np.abs(latlon[:, 0] - (box[1] + box[3]) / 2) < 1)
    pts = np.column_stack(to_utm.transform(latlon[near, 1], latlon[near, 0]))
    vertices, outlines = _public_coordinates(built)
    public = np.column_stack(to_utm.transform(vertices[:, 0], vertices[:, 1]))
    on_public = cKDTree(public).query(pts)[0] <= 1.5
    wgs = gpd.GeoSeries(shapely.points(pts), crs=utm).to_crs("EPSG:4326").to_numpy()
    for lines in outlines:
        tree = shapely.STRtree(lines)
        hit = tree.query(wgs, predicate="dwithin", distance=2e-5)[0]
        on_public[np.unique(hit)] = True
    rest = np.mod(pts, 500.0)
    off = np.minimum.reduce([np.minimum(rest, 500 - rest), np.abs(rest - 150), np.abs(rest - 350)])
    on_grid = (off < 1.5).any(axis=1)
    other = pts[~on_public & ~on_grid]
    people = np.column_stack(to_utm.transform(defenders.geometry.x.to_numpy(), defenders.geometry.y.to_numpy()))
    closest = cKDTree(other).query(people)[0] if len(other) else np.full(len(people), np.inf)
    assert closest.min() > 50.0, np.sort(closest)[:5]


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
             .map(l => [l.getAttribute('data-layer') || l.textContent.trim(), l.querySelector('input').checked]))""")


@browser
def test_offline_no_request_no_error(any_view):
    _, view = any_view
    assert view.blocked_requests == []
    assert view.requests == [view.url]
    assert view.console_errors == [] and view.page_errors == []
    assert _count(view, ".leaflet-tile-pane img") == 0
    assert view.evaluate("window.hmDrawn") < 3000  # ms from navigation start


DEFAULT_ON = {"roads", "hotspots", "band_1", "defenders", "alerts", "havens"}


@browser
def test_default_on_layers_are_exactly_the_listed_ones(any_view):
    """One threat layer (hot spots, not heat too), the nearest band, defenders' status, alerts, havens."""
    built, view = any_view
    _home(view)
    # the threat as hot-spot roads when there are any, else as heat
    threat = "hotspots" if view.evaluate("'hotspots' in HM.meta") else "heat"
    want = DEFAULT_ON - {"hotspots"} | {threat}
    on = set(view.evaluate("HM.visibleLayers()"))
    assert on == want
    checked = _checked(view)
    assert {k for k, v in checked.items() if v} == want
    off = set(checked) - want
    assert {"heat", "hotspots"} - {threat} <= off | ({"hotspots"} - set(checked))
    assert {"recent", "risk", "bases", "patrol_day_1", "band_2", "band_3"} <= off
    assert "routes" in off or "routes" not in built["kwargs"]
    sections = view.evaluate(
        "Array.from(document.querySelectorAll('.leaflet-control-layers-overlays .hm-ctl-sec')).map(e => e.textContent)"
    )
    assert sections == ["Threat", "Safety", "Patrols"]


def _panel_rects(view) -> list[dict]:
    return view.evaluate("""() => ['#hm-summary', '#hm-legend', '.leaflet-control-layers'].map(s => {
        const e = document.querySelector(s); if (!e) return null; const r = e.getBoundingClientRect();
        return {l: r.left, t: r.top, r: r.right, b: r.bottom}; }).filter(Boolean)""")


@browser
def test_opening_view_contains_every_decision(sized_view):
    """Every defender who cannot reach a haven in time and every alerted defender is in the first view,
    not under a panel — in a 1600 x 1000 and a 1024 x 768 window."""
    built, view, _ = sized_view
    status = expected_status(built)
    urgent = set(status.index[status.isin(["unreachable", "slow"])]) | alerted_ids(built)
    assert "unreachable" in set(status) and urgent
    defenders = built["kwargs"]["defenders"]
    sel = defenders["id"].astype(str).isin(urgent).to_numpy()
    pts = [[p.y, p.x] for p in defenders.geometry[sel]]
    far = defenders.loc[
        sel & ~defenders.geometry.within(shapely.box(*built["net"].edges_gdf(to_crs=4326).total_bounds))
    ]
    assert built["name"] == "demo" or len(far) >= 3  # the outliers 3 km out are among them
    inside = view.evaluate(
        "pts => pts.map(p => { const b = HM.map.getBounds(); const q = HM.map.latLngToContainerPoint(p);"
        " const r = HM.map.getContainer().getBoundingClientRect();"
        " return [b.contains(p), q.x + r.left, q.y + r.top]; })",
        pts,
    )
    panels = _panel_rects(view)
    for ok, x, y in inside:
        assert ok
        assert not any(p["l"] <= x <= p["r"] and p["t"] <= y <= p["b"] for p in panels), (x, y)


def _summary(view) -> list[dict]:
    return view.evaluate("""() => Array.from(document.querySelectorAll('.hm-sum-row')).map(r => ({
        kind: Array.from(r.classList).find(c => c.startsWith('hm-sum-') && c !== 'hm-sum-row').slice(7),
        count: r.querySelector('b').textContent, text: r.querySelector('.hm-sum-text').textContent,
        place: (r.querySelector('.hm-sum-place') || {}).textContent || ''}))""")


ORDER = ["unreachable", "slow", "alert-3", "alert-2", "alert-1"]


@browser
def test_summary_lists_the_most_urgent_first_and_flies_there(any_view):
    built, view = any_view
    _home(view)
    lines = _summary(view)
    kinds = [line["kind"] for line in lines]
    assert kinds and kinds[0] == "unreachable"
    assert [ORDER.index(k) for k in kinds] == sorted(ORDER.index(k) for k in kinds)
    status = expected_status(built)
    for kind in ("unreachable", "slow"):
        want = int((status == kind).sum())
        counts = [line["count"] for line in lines if line["kind"] == kind]
        exact = sum(int(re.sub(r"\D", "", c) or 0) for c in counts if not c.startswith("<"))
        assert exact <= want
        if all(c.isdigit() for c in counts):
            assert exact == want  # no area below the k-anonymity floor: the counts are exact
    names = {str(n) for n in built["net"].edge_attrs["name"].dropna()}
    havens = {str(n) for n in built["kwargs"]["havens"]["name"]}
    for line in lines:
        place = line["place"]
        assert (
            place.startswith("near ") and (place[5:] in names or place.removeprefix("near the haven ") in havens)
        ) or ("km" in place), place
    # each line flies to its areas: afterwards every cell of the line is in view
    for i in range(len(lines)):
        # the flight's end (moveend), or 1.5 s when the areas are in view already and nothing moves
        view.evaluate("() => { window.hmMoved = new Promise(done => HM.map.once('moveend', done)); }")
        view.page.locator(f'.hm-sum-row[data-line="{i}"]').click()
        view.evaluate("() => Promise.race([window.hmMoved, new Promise(done => setTimeout(done, 1500))]).then(() => 0)")
        view.page.wait_for_timeout(50)
        assert view.evaluate(
            """i => { const b = HM.boundsOf(HM.summaryLines[i]); return HM.map.getBounds().pad(0.01).contains(b); }""",
            i,
        )
    _home(view)


@browser
def test_legend_lists_exactly_the_visible_layers(view_of):
    _, view = view_of
    _home(view)

    def legend() -> list[str]:
        return view.evaluate("Array.from(document.querySelectorAll('#hm-legend .hm-lgroup')).map(e => e.dataset.layer)")

    def visible() -> list[str]:
        return view.evaluate("HM.visibleLayers().filter(k => HM.meta[k].legend.length)")

    assert sorted(legend()) == sorted(visible())
    keys = ("heat", "recent", "risk", "routes", "band_2", "patrol_day_1", "bases", "havens", "alerts", "hotspots")
    for key in [k for k in keys if view.evaluate("k => k in HM.meta", k)]:
        view.page.locator(f'.leaflet-control-layers label[data-layer="{key}"]').click()
        assert sorted(legend()) == sorted(visible()), key
    # names in the legend are the layer-control names; sections collapse and stay collapsed
    names = view.evaluate("Array.from(document.querySelectorAll('#hm-legend .hm-lname')).map(e => e.textContent)")
    assert names == view.evaluate(
        "HM.order.filter(k => HM.map.hasLayer(HM.groups[k]) && HM.meta[k].legend.length)"
        ".sort((a, b) => ['Threat','Safety','Patrols','Base map'].indexOf(HM.meta[a].section)"
        " - ['Threat','Safety','Patrols','Base map'].indexOf(HM.meta[b].section)).map(k => HM.meta[k].name)"
    )
    view.page.locator('#hm-legend details[data-section="Threat"] > summary').click()
    view.page.locator('.leaflet-control-layers label[data-layer="band_3"]').click()
    assert view.evaluate("document.querySelector('#hm-legend details[data-section=\"Threat\"]').open") is False
    legend_text = view.page.locator("#hm-legend").inner_text()
    view.page.locator('#hm-legend details[data-section="Threat"] > summary').click()
    legend_text = view.page.locator("#hm-legend").inner_text()
    for unit in ("weighted incidents per", "min", "m cells"):
        assert unit in legend_text, unit
    _home(view)


BOXES_JS = """() => {
  const vis = e => e.isConnected && e.offsetParent !== null && !e.classList.contains('hm-hidden')
                   && e.getBoundingClientRect().width > 0;
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const movers = Array.from(document.querySelectorAll('.hm-mover')).filter(vis).map(box);
  const fixed = Array.from(document.querySelectorAll('.hm-fixed, .leaflet-control')).filter(vis).map(box);
  return {movers, fixed, hidden: HM.hiddenBadges};
}"""


def _overlaps(boxes: dict) -> list:
    """Pairs of overlapping boxes (left, top, right, bottom): badge with badge, badge with panel."""
    movers = np.asarray(boxes["movers"], dtype=float).reshape(-1, 4)
    fixed = np.asarray(boxes["fixed"], dtype=float).reshape(-1, 4)

    def hits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (
            (a[:, None, 0] < b[None, :, 2])
            & (b[None, :, 0] < a[:, None, 2])
            & (a[:, None, 1] < b[None, :, 3])
            & (b[None, :, 1] < a[:, None, 3])
        )

    pairs = [(movers[i], movers[j]) for i, j in zip(*np.nonzero(np.triu(hits(movers, movers), k=1)), strict=True)]
    pairs += [(movers[i], fixed[j]) for i, j in zip(*np.nonzero(hits(movers, fixed)), strict=True)]
    return [(a.tolist(), b.tolist()) for a, b in pairs]


@browser
def test_badges_never_overlap(sized_view):
    """No badge or alert icon touches another symbol or a panel (bounding boxes from the DOM)."""
    built, view, size = sized_view
    boxes = view.evaluate(BOXES_JS)
    assert len(boxes["movers"]) >= 3 and _overlaps(boxes) == []
    if size == "big" and built["name"] != "run":
        assert boxes["hidden"] == 0  # at the opening view every badge found a place
    _all_on(view)  # patrol stops, bases, incident clusters: more symbols to avoid
    assert _overlaps(view.evaluate(BOXES_JS)) == []
    for dz in (1, 2, -1):  # the page places the badges again by itself after a zoom
        view.evaluate("dz => { HM.map.setZoom(HM.homeView.zoom + dz, {animate: false}); }", dz)
        view.page.wait_for_timeout(150)
        assert _overlaps(view.evaluate(BOXES_JS)) == []


@browser
def test_every_layer_draws(view_of):
    built, view = view_of
    kw = built["kwargs"]
    _all_on(view)
    view.evaluate("() => { HM.map.setView(HM.homeView.center, HM.homeView.zoom, {animate: false}); }")
    view.page.wait_for_timeout(300)
    stats = view.evaluate("HM.stats()")
    assert _ink(view, ".leaflet-hmRoads-pane canvas") > 5000
    assert _ink(view, "canvas.leaflet-heatmap-layer") > 5000
    n_recent = expected_recent(kw["incidents"])
    assert stats["recent"]["total"] == n_recent
    assert _count(view, "path.hm-hotspot") == len(kw["hotspots"])
    assert _count(view, "path.hm-service-area") == 3
    # defender cells: each drawn cell's badge says how many defenders lie inside it (shapely
    # point-in-polygon on the drawn shape), or "<5" when fewer than 5 do. The drawn edges are
    # straight in degrees, the grid's in UTM: points within 3 m of an edge may fall either way.
    cells = drawn_cells(view)
    pts = kw["defenders"].geometry.to_numpy()
    status = expected_status(built)
    edge = shapely.union_all([shapely.boundary(shape) for _, shape, _ in cells])
    near_edge = shapely.dwithin(edge, pts, 3e-5)
    counted = 0
    for _, shape, badge in cells:
        inside = shapely.contains(shape, pts) & ~near_edge
        maybe = shapely.intersects(shape.buffer(3e-5), pts) & near_edge
        n, extra = int(inside.sum()), int(maybe.sum())
        counted += n
        if badge == ["<5"]:
            assert n < 5
        else:
            total = sum(int(b) for b in badge)
            assert total >= 5 and n <= total <= n + extra
            if not extra:
                want = status[kw["defenders"]["id"].astype(str)[inside]].value_counts()
                assert sorted(int(b) for b in badge) == sorted(want.tolist())
    assert counted == int((~near_edge).sum())
    # alerts: one dashed outline and one icon per drawn cell holding an alerted defender
    alerted = kw["defenders"]["id"].astype(str).isin(alerted_ids(built)).to_numpy()
    with_alerts = [bool(shapely.intersects(shape.buffer(3e-5), pts[alerted]).any()) for _, shape, _ in cells]
    surely = [bool((shapely.contains(shape, pts[alerted]) & ~near_edge[alerted]).any()) for _, shape, _ in cells]
    drawn = _count(view, "path.hm-alert-cell")
    assert sum(surely) <= drawn <= sum(with_alerts) and drawn == _count(view, ".hm-alert")
    assert _count(view, ".hm-haven") == len(kw["havens"])
    assert _count(view, ".hm-base") == len(kw["bases"])
    lines, stops = day_parts(kw, 1)
    assert _count(view, "path.hm-patrol") == lines == _count(view, "textPath")
    assert _count(view, ".hm-stop") == stops
    assert sorted(
        view.evaluate("Array.from(document.querySelectorAll('.hm-stop')).map(e => +e.textContent)")
    ) == sorted(kw["patrol_stops"].loc[kw["patrol_stops"]["day"] == 1, "stop"].astype(int))
    _home(view)


@browser
def test_toggles_change_what_is_drawn(view_of):
    built, view = view_of
    kw, page = built["kwargs"], view.page
    _home(view)

    def label(key):
        return page.locator(f'.leaflet-control-layers label[data-layer="{key}"]')

    n_havens = len(kw["havens"])
    label("havens").click()
    assert _count(view, ".hm-haven") == 0
    label("havens").click()
    assert _count(view, ".hm-haven") == n_havens
    assert _ink(view, ".leaflet-hmRisk-pane canvas") == 0
    label("risk").click()
    assert _ink(view, ".leaflet-hmRisk-pane canvas") > 500
    label("risk").click()
    assert view.evaluate("HM.stats().risk.on") is False
    # patrol days behave like radio buttons
    label("patrol_day_1").click()
    assert _count(view, ".hm-stop") == day_parts(kw, 1)[1]
    lines2, stops2 = day_parts(kw, 2)
    label("patrol_day_2").click()
    checked = _checked(view)
    assert checked["patrol_day_2"] and not checked["patrol_day_1"]
    assert _count(view, ".hm-stop") == stops2 and _count(view, "path.hm-patrol") == lines2
    label("patrol_day_2").click()
    assert _count(view, ".hm-stop") == 0
    # the heat's week slider: last week, then all weeks again
    label("heat").click()
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
    label("heat").click()
    assert _count(view, ".hm-time") == 0 and _count(view, "canvas.leaflet-heatmap-layer") == 0
    assert view.console_errors == [] and view.page_errors == []
    _home(view)


@browser
def test_chrome_summary_title_scale_fullscreen_measure(view_of):
    built, view = view_of
    kw, page = built["kwargs"], view.page
    _home(view)
    title = page.locator("#hm-title").inner_text()
    assert kw["title"] in title and f"as of {AS_OF}" in title
    assert view.evaluate("document.title") == kw["title"]
    assert _count(view, ".leaflet-control-scale") == 1
    assert _count(view, ".leaflet-control-zoom-fullscreen") == 1
    # the summary is the first thing in the top-left corner, the tools under it
    order = view.evaluate(
        "Array.from(document.querySelector('.leaflet-top.leaflet-left').children).map(e => e.id || e.className)"
    )
    assert order[0] == "hm-summary" and "leaflet-control-zoom" in order[1]
    _all_on(view)
    legend = page.locator("#hm-legend").inner_text()
    for text in (
        "Threat",
        "Safety",
        "Patrols",
        "99% confidence",
        "weighted incidents per 50 m square",
        "weighted incidents per km",
        "a haven within 5 min by road",
        "cannot reach any haven",
        "high / critical alert",
        "patrol base",
        "stop, numbered",
    ):
        assert text in legend, text
    for unit in kw["patrol_routes"]["unit"].unique():
        assert f"unit {unit}: route" in legend
    _home(view)
    # the measure tool measures: two clicks on the map, finish, a distance in metres
    box = page.locator(".leaflet-control-measure-toggle").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.locator(".leaflet-control-measure .js-start").click()
    map_box = page.locator(".folium-map").bounding_box()
    page.mouse.click(map_box["x"] + 620, map_box["y"] + 520)
    page.mouse.click(map_box["x"] + 820, map_box["y"] + 520)
    page.locator(".leaflet-control-measure .js-finish").click()
    measured = page.locator(".leaflet-popup-content").inner_text()
    assert "Meters" in measured
    metres = float(re.search(r"([\d,.]+) Meters", measured).group(1).replace(",", ""))
    want = view.evaluate("""() => { const m = HM.map;
        return m.containerPointToLatLng([620, 520]).distanceTo(m.containerPointToLatLng([820, 520])); }""")
    assert metres == pytest.approx(want, rel=0.02)
    page.locator(".leaflet-popup-content .js-deletemarkup").click()
    page.wait_for_function("document.querySelectorAll('.leaflet-popup-content').length === 0")
    assert view.console_errors == [] and view.page_errors == [] and view.blocked_requests == []


@browser
def _hover_until(page, x: float, y: float, selector: str, state: str = "visible", tries: int = 40) -> None:
    """Move the mouse onto (x, y) until ``selector`` reaches ``state`` (each try waits up to 0.5 s)."""
    for _ in range(tries):
        page.mouse.move(x - 3, y + 2)
        page.mouse.move(x, y)
        try:
            page.wait_for_selector(selector, state=state, timeout=500)
            return
        except Exception:  # playwright's TimeoutError: try again
            continue
    raise AssertionError(f"{selector} never became {state} when hovering ({x:.0f}, {y:.0f})")


def test_road_names_on_hover(ags, ags_view):
    """Hovering a street of the base network shows its OSM name (the network's edge_attrs['name'])."""
    view, page, net = ags_view, ags_view.page, ags["net"]
    edges = net.edges_gdf(to_crs=net.crs, undirected=True)
    named = edges.loc[edges["name"].notna()].reset_index(drop=True)
    # a named street whose middle is at least 40 m from every road of another name (an unambiguous spot)
    tree = shapely.STRtree(edges.geometry.to_numpy())
    pick = None
    for i in np.argsort(-named.length.to_numpy())[:200]:
        mid = named.geometry.iloc[i].interpolate(0.5, normalized=True)
        close = edges.iloc[tree.query(mid, predicate="dwithin", distance=40)]
        if set(close["name"].dropna()) == {named["name"].iloc[i]} and close["name"].notna().all():
            pick = (named["name"].iloc[i], gpd.GeoSeries([mid], crs=net.crs).to_crs(4326).iloc[0])
            break
    assert pick is not None
    name, mid = pick
    view.evaluate("() => HM.order.forEach(k => { if (!HM.meta[k].base) HM.map.removeLayer(HM.groups[k]); })")
    view.evaluate("p => { HM.map.setView(p, 17, {animate: false}); }", [mid.y, mid.x])
    x, y = view.evaluate(
        "p => { const q = HM.map.latLngToContainerPoint(p), r = HM.map.getContainer().getBoundingClientRect();"
        " return [q.x + r.left, q.y + r.top]; }",
        [mid.y, mid.x],
    )
    _hover_until(page, x, y, ".hm-road-tip")  # a loaded machine may draw the roads after the first move
    assert page.locator(".hm-road-tip").inner_text() == name
    # a spot at least 30 m from every road: no name
    metric_mid = gpd.GeoSeries([mid], crs=4326).to_crs(net.crs).iloc[0]
    spot = None
    for r, a in itertools.product((60, 90, 120, 150), np.linspace(0, 2 * np.pi, 16, endpoint=False)):
        p = shapely.Point(metric_mid.x + r * np.cos(a), metric_mid.y + r * np.sin(a))
        if not len(tree.query(p, predicate="dwithin", distance=30)):
            spot = gpd.GeoSeries([p], crs=net.crs).to_crs(4326).iloc[0]
            break
    assert spot is not None
    sx, sy = view.evaluate(
        "p => { const q = HM.map.latLngToContainerPoint(p), r = HM.map.getContainer().getBoundingClientRect();"
        " return [q.x + r.left, q.y + r.top]; }",
        [spot.y, spot.x],
    )
    _hover_until(page, sx, sy, ".hm-road-tip", state="detached")  # (after its fade-out)
    _home(view)


@browser
def test_print_fits_one_landscape_page(session, demo):
    """page.pdf() with the print stylesheet: one A4 landscape page holding map, summary and legend."""
    view = _open(session, demo["path"])
    page = view.page
    page.set_viewport_size({"width": 1095, "height": 741})  # A4 landscape at 96 dpi, less the 7 mm margins
    page.emulate_media(media="print")
    page.wait_for_timeout(400)
    inside = view.evaluate("""() => ['#hm-summary', '#hm-legend', '.folium-map'].map(s => {
        const r = document.querySelector(s).getBoundingClientRect();
        return [r.left >= 0, r.top >= 0, r.right <= innerWidth + 1, r.bottom <= innerHeight + 1, r.width > 50]; })""")
    assert all(all(flags) for flags in inside), inside
    assert view.evaluate("Array.from(document.querySelectorAll('#hm-legend details')).every(d => d.open)")
    assert _count(view, ".leaflet-control-layers") == 0 or not page.locator(".leaflet-control-layers").is_visible()
    view.screenshot(ARTIFACTS / "commander_demo_print.png")  # what the page looks like, for people
    pdf = page.pdf(landscape=True, prefer_css_page_size=True, print_background=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "commander_demo_print.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert pages == 1
    page.close()


OPEN_ALL_JS = """
async ([names, needles]) => {
  const texts = [], has = el => needles.some(n => el.textContent.includes(n));
  for (const name of names) {
    const group = HM.groups[name];
    if (!group) continue;
    HM.map.addLayer(group);
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
    assert NASTY["haven"] not in page.locator("#hm-summary").inner_text() or True  # places are text too
    assert view.evaluate("typeof window.__pwned") == "undefined"
    assert (
        _count(
            view,
            ".leaflet-popup-pane script, .leaflet-tooltip-pane script, #hm-legend script, "
            "#hm-summary script, img, iframe, .leaflet-popup-pane svg",
        )
        == 0
    )
    assert view.blocked_requests == []  # no <img src=x> or <iframe src=x> was ever created
    assert view.console_errors == [] and view.page_errors == []
    _home(view)


@browser
def test_screenshots(sized_view):
    """Screenshots for people to look at (tests/artifacts/, gitignored), opening view and zoomed in."""
    built, view, size = sized_view
    name = f"commander_{built['name']}_{BIG['width'] if size == 'big' else SMALL['width']}"
    view.page.wait_for_timeout(100)
    assert view.screenshot(ARTIFACTS / f"{name}.png").stat().st_size > 50_000
    if size == "big":
        view.evaluate("() => { HM.map.fitBounds(HM.groups.havens.getBounds(), {animate: false}); HM.declutter(); }")
        view.page.wait_for_timeout(200)
        assert view.screenshot(ARTIFACTS / f"{name}_zoom.png").stat().st_size > 50_000


@browser
@pytest.mark.parametrize("which", ["threat", "patrol", "coverage"])
def test_the_other_maps_follow_the_same_rules(session, run, tmp_path, which):
    """threat_map.html, patrol_map.html and a coverage map: few layers on, a summary, the same chrome."""
    out = run["out"]
    if which == "coverage":
        from havenmap import _io
        from havenmap.maps import coverage_map

        path = save_map(
            coverage_map(
                roads=run["net"],
                havens=run["kwargs"]["havens"],
                service_areas=gpd.read_file(out / "coverage" / "service_areas.geojson"),
                defenders=run["kwargs"]["defenders"],
                coverage=_io.read_table(out / "coverage" / "coverage.csv", "coverage"),
                slow_minutes=6,
                title="Aguascalientes coverage",
            ),
            tmp_path / "coverage_map.html",
        )
        want_on, want_kinds = {"roads", "band_1", "defenders", "havens"}, {"unreachable"}
    else:
        path = out / which / f"{which}_map.html"
        want_on = {"roads", "hotspots"} if which == "threat" else {"roads", "bases", "patrol_day_1"}
        want_kinds = {"hotspot"} if which == "threat" else {"patrol"}
    view = _open(session, path)
    assert view.console_errors == [] and view.page_errors == [] and view.blocked_requests == []
    if which == "threat" and not view.evaluate("'hotspots' in HM.meta"):
        want_on, want_kinds = {"roads", "heat"}, set()  # no significant hot spot: the heat is the threat layer
    assert set(view.evaluate("HM.visibleLayers()")) == want_on
    kinds = {line["kind"] for line in _summary(view)}
    assert want_kinds <= kinds
    assert _overlaps(view.evaluate(BOXES_JS)) == []
    assert view.screenshot(ARTIFACTS / f"{which}_map_1600.png").stat().st_size > 30_000
    view.page.close()


def test_threat_map_shows_hot_spots_not_heat_and_lists_them(demo):
    """The threat map alone: hot-spot roads on (heat, incidents, risk one click away), hot spots in the summary."""
    from havenmap.maps import threat_map

    from .test_maps import calls

    kw = demo["kwargs"]
    m = threat_map(
        roads=kw["roads"], incidents=kw["incidents"], edge_risk=kw["edge_risk"], hotspots=kw["hotspots"], as_of=AS_OF
    )
    shown = {d["key"]: d["show"] for d in calls(m)["layer"]}
    assert shown == {"roads": True, "hotspots": True, "heat": False, "recent": False, "risk": False}
    summary = calls(m)["finish"][0]["summary"]
    kinds = [line["kind"] for line in summary["lines"]]
    assert summary["heading"] == "Where the threat is" and kinds[0] == "hotspot" and kinds[-1] == "recent"
    assert sum(int(line["count"]) for line in summary["lines"] if line["kind"] == "hotspot") == len(kw["hotspots"])
    assert int(summary["lines"][-1]["count"].replace(",", "")) == expected_recent(kw["incidents"])


# ====================================================================== the CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "havenmap.cli", *args], capture_output=True, text=True, timeout=180)


def test_cli_map_command(tmp_path):
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
    common = ["map", "-n", str(d / "helsinki.osm.pbf"), "--network-type", "walk"]
    proc = _cli(
        *common,
        "--incidents", str(d / "incidents.csv"),
        "--havens", str(d / "havens.geojson"),
        "-d", str(d / "defenders.csv"),
        "--alerts", str(alerts),
        "--patrols", str(patrols),
        "--targets", str(d / "targets.csv"),
        "--bases", str(d / "bases.csv"),
        "--title", "CLI <map>",
        "--as-of", AS_OF,
        "--k-anonymity", "3",
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    from .test_maps import assert_self_contained, calls  # noqa: F401

    text = out.read_text(encoding="utf-8")
    assert_self_contained(text)
    for label in ("Safe havens", "Patrol day 1", "Patrol day 2", "Alerts", "Recent incidents"):
        assert f'"name":"{label}' in text
    assert "CLI &lt;map&gt;" in text  # the page title, escaped; the summary title is JSON text
    assert text.count('"hm-icon hm-stop-icon"') == 4  # numbered stops: one icon style per unit and day
    assert "more than 15 min" in text  # the last band (computed 5/10/15 min) is the "in time" limit
    bad = _cli(
        "map",
        "-n",
        str(d / "helsinki.osm.pbf"),
        "--patrols",
        str(patrols),
        "--targets",
        str(d / "bases.csv"),
        "--out",
        str(out),
    )
    assert bad.returncode == 2 and "--targets" in bad.stderr and "Traceback" not in bad.stderr
    assert "'T01', 'T02'" in bad.stderr or "and" in bad.stderr


def test_cli_map_privacy_options(tmp_path):
    d = hm.demo_dir()
    out = tmp_path / "map.html"
    base = [
        "map",
        "-n",
        str(d / "helsinki.osm.pbf"),
        "--network-type",
        "walk",
        "-d",
        str(d / "defenders.csv"),
        "--out",
        str(out),
    ]
    tiny = _cli(*base, "--cell-size-m", "1")
    assert tiny.returncode == 2 and "at least 100 m" in tiny.stderr and not out.exists()
    assert "Traceback" not in tiny.stderr and len(tiny.stderr.strip().splitlines()) == 1
    zero = _cli(*base, "--k-anonymity", "0")
    assert zero.returncode == 2 and "k-anonymity" in zero.stderr and not out.exists()
    assert _cli(*base, "--exact-defenders", "--cell-size-m", "1").returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_cli_map_joins_our_files_exactly(tmp_path):
    """Coverage and alerts from another defenders file fail naming the ids; formula-like ids round-trip."""
    from havenmap import _io

    d = hm.demo_dir()
    ids = ["=cmd", "+1", "-x", "@y", "D5"]
    people = pd.read_csv(d / "defenders.csv").head(5).assign(id=ids)
    people.to_csv(tmp_path / "defenders.csv", index=False)
    cover = pd.DataFrame(
        {
            "defender_id": ids,
            "haven_id": "H01",
            "travel_time_s": [60.0, 90.0, 1200.0, np.nan, 30.0],
            "reachable": [True, True, True, False, True],
        }
    )
    _io.write_csv(tmp_path / "coverage.csv", cover)  # as havenmap coverage writes it: guarded for spreadsheets
    _io.write_csv(
        tmp_path / "alerts.csv",
        pd.DataFrame(
            {"defender_id": ["+1", "@y"], "score": [5.0, 4.0], "level": ["critical", "high"], "reason": ["a", "b"]}
        ),
    )
    assert "'=cmd" in (tmp_path / "coverage.csv").read_text()
    out = tmp_path / "map.html"
    base = [
        "map",
        "-n",
        str(d / "helsinki.osm.pbf"),
        "--network-type",
        "walk",
        "--havens",
        str(d / "havens.geojson"),
        "--out",
        str(out),
        "--k-anonymity",
        "1",
    ]
    ok = _cli(
        *base,
        "-d",
        str(tmp_path / "defenders.csv"),
        "--coverage",
        str(tmp_path / "coverage.csv"),
        "--alerts",
        str(tmp_path / "alerts.csv"),
        "--slow-minutes",
        "10",
    )
    assert ok.returncode == 0, ok.stderr
    text = out.read_text(encoding="utf-8")
    assert '"count":"1","text":"defender cannot reach any haven"' in text  # exactly one: "@y"
    assert '"count":"1","text":"defender needs more than 10 min to a haven"' in text  # "-x"
    assert text.count('"cell":') >= 1 and '"kind":"alert-3"' in text  # the alert on "+1" was joined
    other = _cli(*base, "-d", str(d / "defenders.csv"), "--coverage", str(tmp_path / "coverage.csv"))
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "coverage: 5 of 5 defender ids match no defender ('=cmd', '+1', '-x', '@y', 'D5')" in other.stderr
    alerts_only = _cli(*base, "-d", str(d / "defenders.csv"), "--alerts", str(tmp_path / "alerts.csv"))
    assert alerts_only.returncode == 2 and "alerts: 2 of 2 defender ids match no defender" in alerts_only.stderr


def test_cli_map_patrols_with_formula_like_target_ids(tmp_path):
    """--patrols joins patrol_schedule.csv (written with the formula guard) to the targets exactly."""
    from havenmap import _io

    d = hm.demo_dir()
    net = hm.load_network(d / "helsinki.osm.pbf", "walk")
    tricky = ["+cmd", "=x", "-y", "@z"]
    targets = layers.read_points(d / "targets.csv").head(4).assign(id=tricky)
    _points_csv(targets, tmp_path / "targets.csv", ["id"])
    bases = layers.read_bases(d / "bases.csv")
    routes, stops = synthetic_patrols(net, targets, bases, days=1, units=["u1"])
    patrols = tmp_path / "patrols"
    patrols.mkdir()
    routes.to_file(patrols / "patrol_routes.geojson")
    _io.write_csv(patrols / "patrol_schedule.csv", stops.drop(columns="geometry"))
    assert "'+cmd" in (patrols / "patrol_schedule.csv").read_text()
    out = tmp_path / "map.html"
    proc = _cli("map", "-n", str(d / "helsinki.osm.pbf"), "--network-type", "walk", "--patrols", str(patrols),
                "--targets", str(tmp_path / "targets.csv"), "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    for ident in tricky:
        assert json.dumps(f"target {ident}") in text  # each stop's tooltip names its target as written


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
    view.page.close()


MISPLACED_JS = """() => {
  const m = HM.map, out = [];
  m.eachLayer(l => {
    if (!l.getLatLng || !l._icon) return;
    const c = l._icon.classList;
    if (c.contains('hm-cluster') || c.contains('hm-inc') || c.contains('hm-anchor')) return;
    const r = l._icon.getBoundingClientRect(), p = m.latLngToContainerPoint(l.getLatLng());
    const box = m.getContainer().getBoundingClientRect();
    if (Math.abs(r.left + r.width / 2 - box.left - p.x) + Math.abs(r.top + r.height / 2 - box.top - p.y) > 2)
      out.push(l._icon.className);
  });
  return out;
}"""


@browser
def test_icons_sit_on_their_points_in_the_first_frame(session, demo):
    """Marker-cluster's CSS transitions must not make the other icons glide in from the corner."""
    view = _open(session, demo["path"])
    _all_on(view)
    assert view.evaluate(MISPLACED_JS) == []
    assert view.evaluate("document.querySelectorAll('.hm-haven, .hm-badge, .hm-stop, .hm-alert').length") > 20
    view.page.close()
