"""Tests for havenmap.maps helpers and the nearest-haven map: offline HTML, escaping, privacy, drawing.

The helpers (polyline encoding, weekly heat bins, recent-incident window, defender status,
grids, road tiers, alerts) are checked against hand-worked values and independent oracles.
Browser tests open the saved map in headless Chromium (tests/browser.py) with every
network request blocked, and look at what Leaflet actually drew. The full commander map
is tested in tests/test_commander_map.py.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from jinja2.utils import htmlsafe_json_dumps
from pyproj import Geod, Transformer
from shapely.geometry import LineString, MultiLineString, Point, Polygon

from havenmap import _maphtml as mh
from havenmap._maplayers import with_reachability as _with_reachability
from havenmap.errors import InputError
from havenmap.maps import _Call, commander_map, nearest_map, save_map

from .browser import browser_session, requires_chromium

ARTIFACTS = Path(__file__).parent / "artifacts"
GEOD = Geod(ellps="WGS84")

LAT0, LON0 = 60.165, 24.94  # central Helsinki
NASTY_HAVEN = "<script>window.__pwned=1</script><b>x</b>"
TEMPLATE_HAVEN = "${window.__pwned=2}`);window.__pwned=3;(`"
IMG_KIND = "<img src=x onerror=window.__pwned=4>"
# Defender coordinates chosen so that 5-decimal formatting truncates (no rounding ambiguity)
# and no road or haven shares any of these digits.
DEFENDERS_XY = [(24.936123, 60.162341), (24.947654, 60.167891), (24.944412, 60.160523)]
DEFENDER_NAMES = ["Zafira Quenneville", 'Dé <i>Ojukwu</i> & "Sons"', "${window.__pwned=5}"]
DEFENDER_IDS = ["dfd-7781", "dfd-9902", "dfd-3345"]


def _roads() -> gpd.GeoDataFrame:
    north_south = [
        LineString([(LON0 - 0.01 + i * 0.004, LAT0 - 0.006), (LON0 - 0.01 + i * 0.004, LAT0 + 0.006)]) for i in range(6)
    ]
    east_west = [
        LineString([(LON0 - 0.012, LAT0 - 0.005 + j * 0.0025), (LON0 + 0.012, LAT0 - 0.005 + j * 0.0025)])
        for j in range(5)
    ]
    # Any CRS must work: hand the roads over in Web Mercator.
    return gpd.GeoDataFrame(
        {"highway": ["residential"] * 11}, geometry=north_south + east_west, crs="EPSG:4326"
    ).to_crs("EPSG:3857")


def _incidents() -> gpd.GeoDataFrame:
    pts = [Point(LON0 + 0.001 * k, LAT0 + 0.0005 * k) for k in range(5)]
    return gpd.GeoDataFrame({"fatalities": [0, 3, 1, 0, np.nan]}, geometry=pts, crs="EPSG:4326")


def _havens() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"haven_id": ["h1", "h2"], "name": [NASTY_HAVEN, TEMPLATE_HAVEN], "kind": ["embassy", IMG_KIND]},
        geometry=[Point(LON0 - 0.008, LAT0 + 0.004), Point(LON0 + 0.008, LAT0 - 0.003)],
        crs="EPSG:4326",
    )


def _defenders() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"defender_id": DEFENDER_IDS, "name": DEFENDER_NAMES, "reachable": [True, False, True]},
        geometry=[Point(xy) for xy in DEFENDERS_XY],
        crs="EPSG:4326",
    )


def _routes() -> gpd.GeoDataFrame:
    """Two routes from defender 0 (rank 1 to h1, rank 2 to h2) and one from defender 2 to h2."""
    d0, d2 = DEFENDERS_XY[0], DEFENDERS_XY[2]
    h1 = (LON0 - 0.008, LAT0 + 0.004)
    h2 = (LON0 + 0.008, LAT0 - 0.003)
    geoms = [
        LineString([d0, (24.938, d0[1] + 0.0004), (24.938, 60.169), h1]),
        LineString([d0, (24.9365, 60.1615), (24.948, 60.1615), h2]),
        LineString([d2, (24.9444, 60.1595), (24.958, 60.1595), (24.958, 60.162), h2]),
    ]
    return gpd.GeoDataFrame(
        {
            "defender_id": [DEFENDER_IDS[0], DEFENDER_IDS[0], DEFENDER_IDS[2]],
            "rank": [1, 2, 1],
            "haven_id": ["h1", "h2", "h2"],
            "travel_time_s": [300.0, 420.0, 250.0],
            "distance_m": [1000.0, 1500.0, 800.0],
            "reachable": [True, True, True],
        },
        geometry=geoms,
        crs="EPSG:4326",
    )


def _build(path: Path, **kwargs) -> str:
    kwargs.setdefault("k_anonymity", 1)  # three defenders: with k = 1 every cell and route stays visible
    m = nearest_map(
        roads=_roads(),
        incidents=_incidents(),
        havens=_havens(),
        defenders=_defenders(),
        routes=_routes(),
        title="Ops <b>map</b>",
        as_of="2024-05-01",
        **kwargs,
    )
    save_map(m, path)
    return path.read_text(encoding="utf-8")


def calls(m) -> dict[str, list[dict]]:
    """The JSON data handed to the page, per HM function (walks the map's element tree)."""
    out: dict[str, list[dict]] = {}

    def walk(element) -> None:
        for child in element._children.values():
            if isinstance(child, _Call):
                out.setdefault(child.fn, []).append(json.loads(child.data))
            walk(child)

    walk(m)
    return out


@pytest.fixture(scope="module")
def default_map(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("maps") / "map.html"
    return path, _build(path)


@pytest.fixture(scope="module")
def exact_map(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("maps") / "exact.html"
    return path, _build(path, exact_defenders=True)


@pytest.fixture(scope="module")
def k5_map(tmp_path_factory) -> tuple[Path, str]:
    """The same map at the default privacy level (k = 5): three defenders, all in one merged area."""
    path = tmp_path_factory.mktemp("maps") / "k5.html"
    return path, _build(path, k_anonymity=5)


@pytest.fixture(scope="module")
def session():
    if requires_chromium.args[0]:  # the skip marker's condition: true means "skip"
        pytest.skip(requires_chromium.kwargs["reason"])
    with browser_session() as s:
        yield s


def _open(session, path):
    view = session.open(path, viewport={"width": 1600, "height": 1000})  # the layer control expanded
    view.page.wait_for_function("window.hmDrawn !== undefined")
    return view


# ---------------------------------------------------------------- HTML text checks

# Absolute URLs that remain in the inlined libraries: XML namespaces and URLs inside
# licence/source comments (links in text, never fetched).
ALLOWED_URLS = {
    "http://www.w3.org/2000/svg",
    "http://www.w3.org/1999/xlink",
    "https://leafletjs.com",
    "https://bugzilla.mozilla.org/show_bug.cgi?id=888319",
    "https://github.com/Leaflet/Leaflet.heat",
    "https://github.com/Leaflet/Leaflet.heat/pull/78",
    "https://github.com/mourner/simpleheat",
    "https://leaflet.github.io/Leaflet.heat/dist/leaflet-heat.js",
    "https://github.com/Leaflet/Leaflet.markercluster",
    "http://www.sitepoint.com/html5-full-screen-api/",
}
ASSET_PATTERNS = [
    r"""src\s*=\s*["']?(https?:)?//""",
    r"""<link[^>]*href\s*=\s*["']?(https?:)?//""",
    r"""url\(\s*["']?(https?:)?//""",
    r"@import",
    r"L\.tileLayer\(",
    r"(?i)\b(cdn\.|jsdelivr|unpkg|cloudflare|bootstrapcdn|netdna|googleapis|fontawesome)",
    r"sourceMappingURL",
]


def assert_self_contained(text: str) -> None:
    """No script, style, font, image or tile is referenced from the network; only comment links."""
    for pattern in ASSET_PATTERNS:
        assert not re.search(pattern, text), pattern
    urls = set(re.findall(r"""https?://[^\s"'<>()\\]+""", text))
    assert urls <= ALLOWED_URLS, urls - ALLOWED_URLS


def test_html_references_no_remote_assets(default_map):
    _, text = default_map
    assert_self_contained(text)
    assert len(text) < 450_000  # leaflet + plugins + data; no bootstrap/jquery/font-awesome


def test_asset_check_catches_a_cdn_map(tmp_path):
    """Negative control: plain folium defaults (tiles, CDN-era CSS) fail the same checks."""
    import offlinefolium as folium

    text = folium.Map(location=[LAT0, LON0]).get_root().render()
    with pytest.raises(AssertionError):
        assert_self_contained(text)


def test_online_tiles_only_when_asked():
    text = commander_map(roads=_roads(), tiles="osm").get_root().render()
    assert "tile.openstreetmap.org" in text and "L.tileLayer(" in text
    assert "OpenStreetMap tiles (online)" in text
    with pytest.raises(InputError, match="tiles"):
        commander_map(roads=_roads(), tiles="satellite please")


@pytest.mark.parametrize("which", ["default_map", "k5_map"])
def test_defenders_aggregated_by_default(which, request):
    _, text = request.getfixturevalue(which)
    for lon, lat in DEFENDERS_XY:
        assert f"{lon:.5f}" not in text
        assert f"{lat:.5f}" not in text
    for value in DEFENDER_NAMES + DEFENDER_IDS:
        for form in (value, htmlsafe_json_dumps(value)[1:-1], mh.safe_text(value)):
            assert form not in text
    assert "EXACT DEFENDER LOCATIONS" not in text
    assert htmlsafe_json_dumps("Defenders' status (500 m cells)") in text  # the layer-control name


def test_exact_defenders_opt_in(exact_map):
    path, text = exact_map
    for lon, lat in DEFENDERS_XY:
        assert f"{lon:.5f}" in text
        assert f"{lat:.5f}" in text
    for name in DEFENDER_NAMES:
        assert htmlsafe_json_dumps(name)[1:-1] in text  # as text data, inside script-safe JSON
    assert DEFENDER_NAMES[1] not in text  # never as raw markup
    assert "EXACT DEFENDER LOCATIONS" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # exact locations: owner only


def test_a_map_with_safe_houses_is_owner_only_and_with_public_havens_only_it_is_not(default_map, k5_map, tmp_path):
    for path, _ in (default_map, k5_map):  # havens without a 'public' flag are safe houses
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = save_map(commander_map(roads=_roads(), havens=_havens().assign(public=True)), tmp_path / "p.html")
    assert stat.S_IMODE(public.stat().st_mode) == 0o666 & ~_umask()
    one_private = _havens().assign(public=[True, False])
    private = save_map(commander_map(roads=_roads(), havens=one_private), tmp_path / "q.html")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_template_syntax_in_user_text_is_not_evaluated():
    """folium/branca re-parse rendered scripts as jinja2 templates; our data must never be."""
    havens = _havens().assign(name=["{{ 7*7 }}", "{% for x in range(3) %}Q{% endfor %}"])
    inc = _incidents().assign(date=pd.Timestamp("2024-05-01"), notes="{{ this.__class__.__name__ }}{#c#}")
    text = commander_map(roads=_roads(), incidents=inc, havens=havens, title="T {{ 6*7 }}").get_root().render()
    assert '"{{ 7*7 }}"' in text and '"49"' not in text
    assert "{% for x in range(3) %}Q{% endfor %}" in text and "QQQ" not in text
    assert "{{ this.__class__.__name__ }}{#c#}" in text
    assert "T &#123;&#123; 6*7 &#125;&#125;" in text and "T 42" not in text


def test_layer_without_crs_is_an_input_error():
    roads = _roads().set_crs(None, allow_override=True)
    with pytest.raises(InputError, match=r"roads.*no CRS"):
        nearest_map(roads=roads)


def test_empty_inputs_give_a_map():
    m = nearest_map()
    assert "havenmap" in m.get_root().render()


# ---------------------------------------------------------------- helpers, hand-worked values


def test_safe_text_neutralises_html_and_js_template_syntax():
    assert mh.safe_text("<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert mh.safe_text("${x}`\\") == "&#36;&#123;x&#125;&#96;&#92;"
    assert mh.safe_text("\"q'") == "&quot;q&#x27;"
    assert mh.safe_text(None) == "" and mh.safe_text(float("nan")) == ""


def test_polyline_encoding_matches_googles_documented_example():
    # developers.google.com/maps/documentation/utilities/polylinealgorithm
    line = LineString([(-120.2, 38.5), (-120.95, 40.7), (-126.453, 43.252)])
    enc = mh.encode_lines([line])
    assert enc == {"enc": "_p~iF~ps|U_ulLnnqC_mqNvxq`@", "counts": [3]}


def test_encode_lines_round_trip():
    rng = np.random.default_rng(5)
    lines = [LineString(np.column_stack([24.9 + rng.random(k) * 0.1, 60.1 + rng.random(k) * 0.1])) for k in (2, 5, 3)]
    multi = MultiLineString([[(24.0, 60.0), (24.001, 60.001)], [(24.01, 60.0), (24.011, 60.002)]])
    enc = mh.encode_lines([*lines, multi, Point(0, 0)])  # the point is skipped
    assert enc["counts"] == [2, 5, 3, 2, 2]
    got = mh.decode_polyline(enc["enc"], enc["counts"])
    want = [np.asarray(g.coords)[:, ::-1] for g in [*lines, *multi.geoms]]
    for g, w in zip(got, want, strict=True):
        assert np.allclose(g, w, atol=0.5e-5 + 1e-12)


def test_trim_start_hand_worked():
    line = LineString([(0, 0), (100, 0), (100, 200)])  # 300 m long
    cut = mh.trim_start(line, 150)  # straight-line 150 m from (0, 0): y = sqrt(150² - 100²) = 111.8
    assert cut.coords[0][0] == pytest.approx(100.0) and cut.coords[0][1] == pytest.approx(111.8, abs=0.3)
    assert cut.length == pytest.approx(88.2, abs=0.3)
    assert min(np.hypot(*np.asarray(cut.coords).T)) >= 150.0
    assert mh.trim_start(line, 300) is None  # the whole route lies within 224 m of its start
    assert mh.trim_start(line, 0) is line
    multi = MultiLineString([[(0, 0), (100, 0)], [(500, 0), (500, 100)]])  # disjoint parts, 200 m
    cut = mh.trim_start(multi, 120)
    assert cut.coords[0] == (500.0, 0.0)
    assert cut.length == pytest.approx(100.0)
    # a road that doubles back near the start is cut there too, not only its first stretch
    hairpin = LineString([(0, 0), (200, 0), (200, 10), (0, 10)])
    cut = mh.trim_start(hairpin, 150)
    assert min(np.hypot(*np.asarray([c for g in getattr(cut, "geoms", [cut]) for c in g.coords]).T)) >= 150.0


def test_defender_status_hand_worked():
    frame = pd.DataFrame(
        {"travel_time_s": [60.0, 600.0, 601.0, np.nan, 100.0], "reachable": [True, True, True, True, False]}
    )
    assert list(mh.defender_status(frame, 10)) == ["covered", "covered", "slow", "unreachable", "unreachable"]
    assert list(mh.defender_status(frame.drop(columns="reachable"), 5)) == [
        "covered",
        "slow",
        "slow",
        "unreachable",
        "covered",
    ]
    words = pd.DataFrame({"status": ["Covered", "slow", "ok", "off network", None]})
    assert list(mh.defender_status(words, 10)) == ["covered", "slow", "reachable", "unreachable", "unreachable"]
    assert list(mh.defender_status(pd.DataFrame({"reachable": [True, "no"]}), 10)) == ["reachable", "unreachable"]
    assert mh.defender_status(pd.DataFrame({"x": [1]}), 10) is None
    assert mh.worst_status({"covered": 3, "slow": 1}) == "slow"
    assert mh.worst_status({"covered": 3, "unreachable": 1, "slow": 2}) == "unreachable"


def test_heat_frames_by_iso_week_hand_worked():
    # 2026-11-20 is a Friday (ISO week 47). Week 45 starts Monday 2 Nov.
    dates = ["2026-11-02", "2026-11-08 23:00", "2026-11-09", "2026-11-20 18:00", "2026-11-21", None]
    lon = [24.94, 24.94005, 24.95, 24.96, 24.97, 24.98]  # the first two ~3 m apart: one 50 m bin
    inc = gpd.GeoDataFrame(
        {"date": dates, "fatalities": [1, 0, 0, 2, 0, 5]}, geometry=[Point(x, 60.17) for x in lon], crs="EPSG:4326"
    )
    heat = mh.heat_frames(inc, pd.Timestamp("2026-11-20"), bin_m=50.0)
    assert heat["total"] == 5  # the incident after as_of is left out; the undated one stays
    assert heat["weeks"] == ["2026-W45 (02 Nov)", "2026-W46 (09 Nov)", "2026-W47 (16 Nov)"]
    assert heat["starts"] == ["2026-11-02", "2026-11-09", "2026-11-16"]
    assert heat["n"] == [2, 1, 1] and heat["deaths"] == [1, 0, 2]
    week45 = np.array(heat["frames"][0]).reshape(-1, 3)
    assert week45.tolist() == [[0, 0, 3]]  # one bin, weight (1+1) + (0+1)
    all_cells = np.array(heat["all"]).reshape(-1, 3)
    assert all_cells[:, 2].sum() == 2 + 1 + 1 + 3 + 6
    # bin centres decode back near the points: cell (ix, iy) → lon0 + (ix + 0.5) dlon
    ix = int(np.array(heat["frames"][2]).reshape(-1, 3)[0, 0])
    assert heat["lon0"] + (ix + 0.5) * heat["dlon"] == pytest.approx(24.96, abs=heat["dlon"])
    # the grid coarsens until at most max_cells squares are left
    coarse = mh.heat_frames(inc, None, bin_m=50.0, max_cells=2)
    assert coarse["bin_m"] > 50.0 and len(coarse["all"]) // 3 <= 2
    assert coarse["total"] == 6 and coarse["weeks"][-1] == "2026-W47 (16 Nov)"  # no as_of: nothing cut


def test_recent_incidents_window_and_cap():
    dates = pd.to_datetime(
        ["2026-10-21 23:59", "2026-10-22 00:00", "2026-11-20 23:00", "2026-11-21", "2026-11-01"], format="ISO8601"
    )
    inc = gpd.GeoDataFrame(
        {
            "date": dates,
            "event_type": ["A", "B", "C", "D", "E"],
            "sub_event_type": ["", "b", "", "", ""],
            "fatalities": [0, 1, 2, 0, 0],
            "notes": ["n0", "<b>n1</b>", "n2", "n3", "n4"],
            "incident_id": list("vwxyz"),
        },
        geometry=[Point(24.9 + i / 100, 60.1) for i in range(5)],
        crs="EPSG:4326",
    )
    got = mh.recent_incidents(inc, pd.Timestamp("2026-11-20"), 30, cap=10)
    assert (got["start"], got["end"]) == ("2026-10-22", "2026-11-20") and got["total"] == 3
    assert [r[6] for r in got["rows"]] == ["x", "z", "w"]  # most recent first; 10-21 and 11-21 out
    row = got["rows"][2]
    assert got["types"][row[2]] == "B / b" and row[3] == "2026-10-22" and row[4] == 1
    assert row[5] == "<b>n1</b>"  # plain text: the page sets it with textContent
    capped = mh.recent_incidents(inc, pd.Timestamp("2026-11-20"), 30, cap=1)
    assert capped["total"] == 3 and [r[6] for r in capped["rows"]] == ["x"]
    assert mh.recent_incidents(inc.drop(columns="date"), None, 30, 10) is None


def test_road_layers_tiers_zoom_and_duplicates(monkeypatch):
    base = [(24.94, 60.17), (24.95, 60.17)]
    roads = gpd.GeoDataFrame(
        {
            "highway": ["primary", "primary", "residential", "footway", "['secondary', 'tertiary']", None],
            "geometry": [
                LineString(base),
                LineString(base[::-1]),  # both directions of one road
                LineString([(24.94, 60.171), (24.95, 60.171)]),
                LineString([(24.94, 60.172), (24.95, 60.172)]),
                LineString([(24.94, 60.173), (24.95, 60.173)]),
                LineString([(24.94, 60.174), (24.95, 60.174)]),
            ],
        },
        crs="EPSG:4326",
    )
    layers, names = mh.road_layers(roads)
    assert names == [] and all(set(t["names"]) == {-1} for t in layers)
    assert [t["tier"] for t in layers] == [0, 1, 2]
    assert [t["minZoom"] for t in layers] == [0, 0, 0]  # a small network is drawn whole
    assert len(layers[0]["counts"]) == 3  # the primary once (not twice), the secondary list, the unknown
    monkeypatch.setattr(mh, "ZOOM_TIERS_ABOVE", 0)
    assert [t["minZoom"] for t in mh.road_layers(roads)[0]] == [0, 14, 15]
    no_main, _ = mh.road_layers(roads.iloc[2:4])
    assert [(t["tier"], t["minZoom"]) for t in no_main] == [(1, 0), (2, 15)]  # lowest tier always drawn
    # 5 m simplification: a 1 m kink disappears, a 20 m one stays
    kinked = gpd.GeoDataFrame(
        {"highway": ["primary"] * 2},
        geometry=[
            LineString([(385000, 6670000), (385100, 6670001), (385200, 6670000)]),
            LineString([(385000, 6671000), (385100, 6671020), (385200, 6671000)]),
        ],
        crs="EPSG:32635",
    )
    assert mh.road_layers(kinked)[0][0]["counts"] == [2, 3]


def test_active_alerts_levels():
    alerts = pd.DataFrame(
        {
            "defender_id": ["a", "b", "c", "d", "e"],
            "level": ["critical", "elevated", "none", "", "mystery"],
            "reason": ["r"] * 5,
        }
    )
    got = mh.active_alerts(alerts)
    assert got["defender_id"].tolist() == ["a", "b", "e"] and got["rank"].tolist() == [3, 2, 2]
    by_score = mh.active_alerts(pd.DataFrame({"defender_id": ["a", "b"], "score": [0.0, 2.5]}))
    assert by_score["defender_id"].tolist() == ["b"]
    with pytest.raises(InputError, match="defender_id"):
        mh.active_alerts(pd.DataFrame({"id": ["a"]}))


def test_service_areas_merged_per_band():
    sq = lambda x0, s: Polygon([(x0, 6670000), (x0 + s, 6670000), (x0 + s, 6670000 + s), (x0, 6670000 + s)])  # noqa: E731
    areas = gpd.GeoDataFrame(
        {"haven_id": ["a", "b", "a", "b"], "minutes": [5, 5, 10, 10]},
        geometry=[sq(385000, 300), sq(385200, 300), sq(384800, 800), sq(385700, 300)],
        crs="EPSG:32635",
    )
    data = calls(commander_map(service_areas=areas))["areas"]
    assert [d["layer"] for d in data] == ["band_1", "band_2"]  # one layer per band, smallest first
    five, ten = (d["items"][0] for d in data)
    assert five["parts"] == [1] and ten["parts"] == [1, 1]  # the two 5-min squares overlap: one polygon
    ring = np.array(mh.decode_polyline(five["enc"], five["counts"])[0])
    merged = Polygon(ring[:, ::-1])
    want = gpd.GeoSeries([sq(385000, 300).union(sq(385200, 300))], crs="EPSG:32635").to_crs(4326).iloc[0]
    assert merged.symmetric_difference(want).area / want.area < 0.01
    shown = {d["key"]: d["show"] for d in calls(commander_map(service_areas=areas))["layer"]}
    assert shown == {"band_1": True, "band_2": False}  # the nearest band on, the others one click away


def test_defender_reachability_taken_from_routes():
    defenders = _defenders().drop(columns="reachable")
    routes = _routes()
    routes = routes.assign(defender_id=[DEFENDER_IDS[0], DEFENDER_IDS[1], DEFENDER_IDS[2]])
    routes.loc[1, "reachable"] = False  # defender 1's only route is unreachable
    got = _with_reachability(defenders, routes)
    assert list(got["reachable"]) == [True, False, True]
    assert got["travel_time_s"].tolist()[0] == 300.0 and np.isnan(got["travel_time_s"].tolist()[1])
    # a defender missing from routes: unknown, so no reachability is invented
    assert "reachable" not in _with_reachability(defenders, routes.iloc[[0, 2]]).columns
    # the defenders' own column wins
    assert list(_with_reachability(_defenders(), routes)["reachable"]) == [True, False, True]
    assert _with_reachability(_defenders().assign(reachable=False), routes)["reachable"].sum() == 0


# ---------------------------------------------------------------- in the browser

browser = pytest.mark.browser


def _count(view, selector: str) -> int:
    return view.evaluate("s => document.querySelectorAll(s).length", selector)


INK_JS = """
canvas => {
  const ctx = canvas.getContext('2d');
  const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}
"""


@browser
def test_browser_fetches_nothing_and_logs_no_errors(session, default_map, k5_map, exact_map):
    for path, _ in (default_map, k5_map, exact_map):
        view = _open(session, path)
        assert view.blocked_requests == []
        assert view.requests == [view.url]
        assert view.console_errors == []
        assert view.page_errors == []
        assert _count(view, ".leaflet-tile-pane img") == 0


@browser
def test_browser_helper_blocks_and_records(session, tmp_path):
    """Negative control for the helper: remote and foreign file:// requests are blocked."""
    page = tmp_path / "leaky.html"
    page.write_text(
        '<img src="https://example.invalid/a.png"><img src="other.png"><script>nope();</script>',
        encoding="utf-8",
    )
    view = session.open(page)
    view.page.wait_for_timeout(200)
    assert "https://example.invalid/a.png" in view.blocked_requests
    assert (tmp_path / "other.png").as_uri() in view.blocked_requests
    assert any("nope" in e for e in view.page_errors)


def _expected_cells(cell_m: float) -> int:
    """Independent oracle: distinct 500 m squares of the defenders in UTM zone 35N via pyproj."""
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32635", always_xy=True)
    return len({(int(x // cell_m), int(y // cell_m)) for x, y in (to_utm.transform(*xy) for xy in DEFENDERS_XY)})


@pytest.fixture(scope="module")
def default_view(session, default_map):
    return _open(session, default_map[0])


@browser
def test_layers_draw_and_toggle(default_view):
    view = default_view
    labels = view.evaluate(
        "Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label')).map(l => l.textContent.trim())"
    )
    assert labels == ["Incident heat (by week)", "Defenders' status (500 m cells)", "Safe havens", "Routes to havens"]
    sections = view.evaluate(
        "Array.from(document.querySelectorAll('.leaflet-control-layers-overlays .hm-ctl-sec')).map(e => e.textContent)"
    )
    assert sections == ["Threat", "Safety"]
    base = view.evaluate(
        "Array.from(document.querySelectorAll('.leaflet-control-layers-base label')).map(l => l.textContent.trim())"
    )
    assert base == ["Road network (offline)"]
    assert _count(view, ".hm-haven") == 2
    assert _count(view, "path.hm-route") == 3
    dashed = view.evaluate(
        "Array.from(document.querySelectorAll('path.hm-route')).map(p => p.getAttribute('stroke-dasharray'))"
    )
    assert sorted(dashed, key=str) == ["6 5", None, None]
    assert _count(view, "path.hm-defender-cell") == _expected_cells(500.0)
    heat = view.page.locator("canvas.leaflet-heatmap-layer")
    roads = view.page.locator(".leaflet-hmRoads-pane canvas")
    assert heat.count() == 1 and roads.count() == 1
    assert heat.evaluate(INK_JS) > 500
    assert roads.evaluate(INK_JS) > 500

    toggle = view.page.locator(".leaflet-control-layers-overlays label", has_text="Safe havens")
    toggle.click()
    assert _count(view, ".hm-haven") == 0
    assert _count(view, "path.hm-route") == 3  # other layers untouched
    toggle.click()
    assert _count(view, ".hm-haven") == 2
    assert view.console_errors == [] and view.page_errors == []


@browser
def test_injected_markup_is_shown_not_run(default_view):
    view = default_view
    page = view.page
    view.evaluate("() => HM.fitHome(false)")
    texts = []
    for marker in page.locator(".hm-haven").all():  # hover, then click each haven
        marker.hover()
        texts += page.locator(".leaflet-tooltip").all_inner_texts()
        marker.click()
        texts += page.locator(".leaflet-popup-content").all_inner_texts()
    view.evaluate("() => { HM.map.closePopup(); }")
    for x, y in view.evaluate(ROUTE_POINTS_JS):  # hover each solid route
        page.mouse.move(x, y)
        texts += page.locator(".leaflet-tooltip").all_inner_texts()
    joined = "\n".join(texts)
    assert joined.count(NASTY_HAVEN) >= 3  # tooltip, popup, route tooltip
    assert joined.count(TEMPLATE_HAVEN) >= 3
    assert IMG_KIND in joined
    assert "5.0 min, 1.00 km" in joined and "4.2 min, 0.80 km" in joined
    assert view.evaluate("typeof window.__pwned") == "undefined"
    assert _count(view, ".leaflet-popup-content script, .leaflet-tooltip script, img") == 0
    assert view.evaluate("document.title") == "Ops <b>map</b>"
    assert "Ops <b>map</b>" in page.locator("#hm-title").inner_text()
    assert view.blocked_requests == []  # the <img src=x> never became an element
    assert view.console_errors == [] and view.page_errors == []


ROUTE_POINTS_JS = """
() => {
  const map = HM.map, box = map.getContainer().getBoundingClientRect(), out = [];
  map.eachLayer(l => {
    if (!l.options || l.options.className !== 'hm-route' || l.options.dashArray || !l.getLatLngs) return;
    const p = l.getLatLngs();
    const pt = map.latLngToContainerPoint(L.latLng((p[0].lat + p[1].lat) / 2, (p[0].lng + p[1].lng) / 2));
    out.push([pt.x + box.left, pt.y + box.top]);
  });
  return out;
}
"""


@browser
def test_routes_start_150_m_beyond_the_defenders_cell(default_view):
    starts = default_view.evaluate("""
        () => {
          const out = [];
          HM.map.eachLayer(l => {
            if (l.options && l.options.className === 'hm-route' && l.getLatLngs) {
              const ll = l.getLatLngs().flat(Infinity)[0];
              out.push([ll.lng, ll.lat]);
            }
          });
          return out;
        }""")
    assert len(starts) == 3
    routes = _routes().to_crs("EPSG:32635")
    owner = dict(zip(DEFENDER_IDS, DEFENDERS_XY, strict=True))
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32635", always_xy=True)
    for lon, lat in starts:
        x, y = to_utm.transform(lon, lat)
        i = int(np.argmin(routes.distance(Point(x, y))))  # the input route this drawn line belongs to
        assert routes.geometry.iloc[i].distance(Point(x, y)) < 2.0
        ox, oy = owner[routes["defender_id"].iloc[i]]
        assert GEOD.inv(lon, lat, ox, oy)[2] >= 149.0  # the straight-line trim (1 m of encoding)
        dx, dy = to_utm.transform(ox, oy)
        cx, cy = dx // 500 * 500, dy // 500 * 500  # the defender's own 500 m cell
        outside = Point(x, y).distance(Polygon([(cx, cy), (cx + 500, cy), (cx + 500, cy + 500), (cx, cy + 500)]))
        assert outside >= 148.0  # the route starts 150 m beyond the cell (2 m of encoding)


@browser
def test_exact_map_draws_points_and_warning(session, exact_map):
    view = _open(session, exact_map[0])
    assert _count(view, "path.hm-defender") == 3
    assert _count(view, "path.hm-defender-cell") == 0
    assert "EXACT DEFENDER LOCATIONS" in view.page.locator("#hm-title").inner_text()
    assert view.evaluate("typeof window.__pwned") == "undefined"
    assert view.blocked_requests == [] and view.console_errors == []


@browser
def test_k_anonymous_map_merges_and_hides_counts(session, k5_map):
    view = _open(session, k5_map[0])
    badges = view.evaluate("Array.from(document.querySelectorAll('.hm-badge')).map(b => b.textContent)")
    assert badges and set(badges) == {"<5"}  # three defenders: fewer than k, counts hidden
    # routes leave out the whole merged area of their defender: every drawn vertex is outside it
    cells = view.evaluate("Object.values(HM.cells).map(c => c.getLatLngs().flat(2).map(p => [p.lng, p.lat]))")
    areas = gpd.GeoSeries([Polygon(ring) for ring in cells], crs="EPSG:4326").to_crs("EPSG:32635")
    drawn = view.evaluate(
        "() => { const out = []; HM.map.eachLayer(l => { if (l.options && l.options.className === 'hm-route')"
        " out.push(l.getLatLngs().flat(Infinity).map(p => [p.lng, p.lat])); }); return out; }"
    )
    routes = _routes().to_crs("EPSG:32635")
    owner = dict(zip(DEFENDER_IDS, DEFENDERS_XY, strict=True))
    for line in drawn:
        pts = gpd.GeoSeries([Point(p) for p in line], crs="EPSG:4326").to_crs("EPSG:32635")
        i = int(np.argmin(routes.distance(pts.iloc[0])))
        home = gpd.GeoSeries([Point(owner[routes["defender_id"].iloc[i]])], crs="EPSG:4326").to_crs("EPSG:32635")
        area = areas.loc[areas.contains(home.iloc[0])].iloc[0]
        assert all(area.exterior.distance(p) < 2.0 or not area.contains(p) for p in pts)
    tip = view.evaluate("HM.cells[0].getTooltip()._content().textContent")
    assert "fewer than 5 defenders" in tip and "counts hidden" in tip


@browser
def test_screenshot_is_not_blank(default_view):
    shot = default_view.screenshot(ARTIFACTS / "maps_default.png")
    assert shot.stat().st_size > 10_000


def test_road_risk_classes_and_two_way_roads_drawn_once():
    lines = [LineString([(24.94 + i / 1000, 60.17), (24.94 + i / 1000, 60.171)]) for i in range(10)]
    twins = [LineString(g.coords[::-1]) for g in lines]
    risk = np.arange(10, dtype=float)  # 0 (not drawn) .. 9
    frame = gpd.GeoDataFrame({"risk": np.concatenate([risk, risk])}, geometry=lines + twins, crs="EPSG:4326")
    data = calls(commander_map(edge_risk=frame))["lines"][0]
    assert data["layer"] == "risk" and data["canvas"] is True
    assert sum(len(g["counts"]) for g in data["groups"]) == 9  # risk > 0, one line per physical road
    assert len(data["groups"]) == 5  # quintile classes
    decoded = [mh.decode_polyline(g["enc"], g["counts"]) for g in data["groups"]]
    lons = [round(line[0][1], 3) for group in decoded for line in group]
    assert lons == [round(24.94 + i / 1000, 3) for i in range(1, 10)]  # low risk classes first


def test_heat_weighs_threat_severity_when_incidents_are_weighted():
    from havenmap import _maphtml

    plain = pd.DataFrame({"fatalities": [0, 3, None]})
    np.testing.assert_array_equal(_maphtml.incident_weights(plain), [1, 4, 1])
    weighted = plain.assign(
        type_weight=[1.0, 0.1, 0.6], fatality_factor=[1.0, 2.0, 1.0], precision_weight=[1.0, 1.0, 0.25]
    )
    # type × fatalities × precision, in tenths, at least 1 (a protest no longer weighs like an attack)
    np.testing.assert_array_equal(_maphtml.incident_weights(weighted), [10, 2, 2])
    np.testing.assert_array_equal(_maphtml.incident_deaths(weighted), [0, 3, 0])


def test_haven_icons_by_kind_match_whole_words():
    kinds = {
        "embassy": 0,
        "UN office": 0,
        "community_centre": 3,
        "Fundación": 3,
        "unknown": 3,
        "Iglesia San José": 2,
        "place_of_worship": 2,
        "doctors": 1,
    }
    assert {k: mh.haven_kind(k) for k in kinds} == kinds


# ---------------------------------------------------------------- one visual language, colour-blind safe

CVD = [None] + [
    {"name": "sRGB1+CVD", "cvd_type": t, "severity": 100} for t in ("deuteranomaly", "protanomaly", "tritanomaly")
]


def _ucs(colour: str, cvd) -> np.ndarray:
    from colorspacious import cspace_convert

    rgb = np.array([int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)])
    if cvd is not None:
        rgb = np.clip(cspace_convert(rgb, cvd, "sRGB1"), 0, 1)
    return cspace_convert(rgb, "sRGB1", "CAM02-UCS")


def test_palettes_are_colour_blind_safe():
    """Simulated with colorspacious (Machado et al. 2009, full severity): categories stay apart
    (ΔE in CAM02-UCS), sequential ramps stay ordered in lightness, threat never looks like reach."""
    pytest.importorskip("colorspacious")
    categorical = {
        "defender status": [mh.STATUS[s][0] for s in ("covered", "slow", "unreachable")],
        "haven kinds": [c for _, c, _, _ in mh.HAVEN_KINDS],
        "alert levels": [c for _, c, _, _ in mh.ALERT_LEVELS],
        "first patrol units": list(mh.UNIT_COLOURS[:3]),
    }
    sequential = {
        "threat": list(mh.THREAT_RAMP),
        "heat": list(mh.HEAT_GRADIENT.values()),
        "hot spots": [c for _, c, _ in mh.HOTSPOT_CLASSES][::-1],
        "reach": list(mh.REACH_RAMP)[::-1],
    }
    for cvd in CVD:
        for name, colours in categorical.items():
            pts = [_ucs(c, cvd) for c in colours]
            gap = min(np.linalg.norm(a - b) for i, a in enumerate(pts) for b in pts[i + 1 :])
            assert gap >= 15, (name, cvd and cvd["cvd_type"], gap)
        for name, colours in sequential.items():
            lightness = [_ucs(c, cvd)[0] for c in colours]
            assert all(b - a >= 8 for a, b in zip(lightness[1:], lightness, strict=False)), (name, cvd, lightness)
        threat = [_ucs(c, cvd) for c in mh.THREAT_RAMP]
        reach = [_ucs(c, cvd) for c in [*mh.REACH_RAMP, *(mh.STATUS[s][0] for s in ("covered", "slow", "unreachable"))]]
        assert min(np.linalg.norm(a - b) for a in threat for b in reach) >= 15


def test_page_assets_are_package_files():
    """Our JavaScript and CSS live in havenmap/assets (package data), not in Python strings."""
    import importlib.resources

    assets = importlib.resources.files("havenmap") / "assets"
    js, css = (assets / "hm.js").read_text(encoding="utf-8"), (assets / "hm.css").read_text(encoding="utf-8")
    assert mh.page_js() == js and mh.page_css().endswith(css)
    text = commander_map(roads=_roads()).get_root().render()
    assert js in text and css in text
    for module in ("maps.py", "_maphtml.py", "_maplayers.py"):
        source = (Path(mh.__file__).parent / module).read_text(encoding="utf-8")
        assert "function (" not in source and "@media" not in source, module


# ---------------------------------------------------------------- privacy: no defender position in the file

NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
PAIR = re.compile(rf"(?<![\w.])({NUMBER})\s*,\s*({NUMBER})(?![\w.])")
ENCODED = re.compile(r'"enc":"((?:[^"\\]|\\.)*)","counts":\[([\d,]*)\]')


def _polyline(text: str, counts: list[int]) -> list[tuple[float, float]]:
    """Google's polyline algorithm, written again here (not the map code's decoder)."""
    values, shift, result = [], 0, 0
    for byte in text.encode():
        chunk = byte - 63
        result |= (chunk & 0x1F) << shift
        shift += 5
        if chunk < 0x20:
            values.append(-(result >> 1) - 1 if result & 1 else result >> 1)
            shift, result = 0, 0
    out, lat, lon = [], 0, 0
    for dlat, dlon in zip(values[0::2], values[1::2], strict=True):
        lat, lon = lat + dlat, lon + dlon
        out.append((lat / 1e5, lon / 1e5))
    assert len(out) == sum(counts)
    return out


def coordinates_in(text: str) -> np.ndarray:
    """Every (lat, lon) the file could hold: each number pair in both orders, and every decoded polyline."""
    pairs = [(float(a), float(b)) for a, b in PAIR.findall(text)]
    found = [*pairs, *((b, a) for a, b in pairs)]
    for enc, counts in ENCODED.findall(text):
        found += _polyline(json.loads(f'"{enc}"'), [int(c) for c in counts.split(",") if c])
    arr = np.array(found, dtype=float).reshape(-1, 2)
    return arr[(np.abs(arr[:, 0]) <= 90) & (np.abs(arr[:, 1]) <= 180)]


def closest_to_defenders(text: str, defenders: gpd.GeoDataFrame) -> np.ndarray:
    """Metres from each defender to the nearest coordinate found in the file."""
    pts = coordinates_in(text)
    lat0 = np.radians(defenders.geometry.y.to_numpy())[:, None]
    dy = (pts[None, :, 0] - defenders.geometry.y.to_numpy()[:, None]) * 111_320.0
    dx = (pts[None, :, 1] - defenders.geometry.x.to_numpy()[:, None]) * 111_320.0 * np.cos(lat0)
    return np.sqrt(dx * dx + dy * dy).min(axis=1)


X_PRIV, Y_PRIV = 384_000.0, 6_670_000.0  # multiples of 2 km: the quadtree squares of 500 m cells start here


def _utm(xy) -> gpd.GeoSeries:
    return gpd.GeoSeries([Point(x + X_PRIV, y + Y_PRIV) for x, y in xy], crs="EPSG:32635")


def privacy_layers() -> dict:
    """A hand-placed scene where nothing public lies within 100 m of a defender.

    Defenders sit 150-350 m inside their 500 m cells, so cell corners and borders are far from
    them: cluster A (6, a published cell), B (2, merged into the 2 km square and still fewer than
    5), C (5, published). Routes from every defender to a haven, alerts on A and C, roads, havens,
    service areas, incidents and hot spots all stay away from them.
    """
    rng = np.random.default_rng(4)
    spots = [(150, 150), (250, 250), (350, 150), (150, 350), (350, 350), (250, 150)]
    a = [(x, y) for x, y in spots]
    b = [(1150, 250), (1350, 350)]
    c = [(4000 + x, 4000 + y) for x, y in spots[:5]]
    xy = np.array([*a, *b, *c], dtype=float) + rng.uniform(-5, 5, (13, 2))
    status = ["covered"] * 4 + ["slow", "unreachable"] + ["unreachable"] * 2 + ["covered"] * 5
    ids = [f"P{i:02d}" for i in range(13)]
    defenders = gpd.GeoDataFrame(
        {"id": ids, "name": [f"Person {i}" for i in ids], "status": status}, geometry=_utm(xy), crs="EPSG:32635"
    )
    havens = gpd.GeoDataFrame(
        {"id": ["H1", "H2"], "name": ["Clinic", "Embassy"], "kind": ["clinic", "embassy"]},
        geometry=_utm([(1250, 1250), (4500, 3000)]),
        crs="EPSG:32635",
    )
    hx, hy = 1250 + X_PRIV, 1250 + Y_PRIV
    routes = gpd.GeoDataFrame(
        {
            "defender_id": ids,
            "rank": 1,
            "haven_id": "H1",
            "travel_time_s": 300.0,
            "distance_m": 900.0,
            "reachable": True,
        },
        geometry=[LineString([(x + X_PRIV, y + Y_PRIV), (x + X_PRIV, hy), (hx, hy)]) for x, y in xy],
        crs="EPSG:32635",
    )
    roads = gpd.GeoDataFrame(
        {"highway": ["primary", "secondary"], "name": ["Main Street", "Cross Road"]},
        geometry=[
            LineString([(X_PRIV - 1000, Y_PRIV + 1000), (X_PRIV + 6000, Y_PRIV + 1000)]),
            LineString([(X_PRIV + 3000, Y_PRIV - 1000), (X_PRIV + 3000, Y_PRIV + 6000)]),
        ],
        crs="EPSG:32635",
    )
    areas = gpd.GeoDataFrame(
        {"haven_id": ["H1", "H2"], "minutes": [5, 5]}, geometry=havens.geometry.buffer(300), crs="EPSG:32635"
    )
    incidents = gpd.GeoDataFrame(
        {"date": pd.Timestamp("2026-11-18"), "event_type": "Riots", "fatalities": [0, 1, 2]},
        geometry=_utm([(3000, 2000), (3100, 2050), (2900, 1900)]),
        crs="EPSG:32635",
    )
    hotspots = gpd.GeoDataFrame(
        {"risk": [3.0], "gi_z": [3.1], "p_value": [0.001], "significance": ["hot 99%"]},
        geometry=[LineString([(X_PRIV + 2500, Y_PRIV + 3000), (X_PRIV + 3500, Y_PRIV + 3000)])],
        crs="EPSG:32635",
    )
    alerts = pd.DataFrame({"defender_id": ["P01", "P09"], "level": ["critical", "medium"], "reason": ["surge", "near"]})
    return dict(
        roads=roads,
        havens=havens,
        defenders=defenders,
        routes=routes,
        service_areas=areas,
        incidents=incidents,
        hotspots=hotspots,
        alerts=alerts,
        as_of="2026-11-20",
        slow_minutes=10,
    )


def test_no_defender_position_in_the_file_as_coordinates():
    """Scan every number pair (both orders) and every decoded polyline: none within the radius of the
    smallest cell (50 m) of any defender — while the negative controls find every defender."""
    from havenmap.privacy import MIN_CELL_M

    kw = privacy_layers()
    defenders = kw["defenders"].to_crs("EPSG:4326")
    radius = MIN_CELL_M / 2
    text = commander_map(**kw).get_root().render()
    assert "Person" not in text and "P01" not in text  # names and ids stay out too
    closest = closest_to_defenders(text, defenders)
    assert closest.min() > radius, closest.round(1)
    assert closest.min() > 100  # nothing public was placed closer, so nothing is there at all
    # the scan itself works: the exact map and (below the documented minimum) 1 m cells give them away
    exact = commander_map(**kw, exact_defenders=True).get_root().render()
    assert closest_to_defenders(exact, defenders).max() < 2.0


def test_scan_catches_tiny_cells(monkeypatch):
    from havenmap import privacy

    monkeypatch.setattr(privacy, "MIN_CELL_M", 1.0)  # what issue 15 found: 1 m cells, world-readable
    kw = privacy_layers()
    text = commander_map(**kw, cell_size_m=1, k_anonymity=1).get_root().render()
    assert closest_to_defenders(text, kw["defenders"].to_crs("EPSG:4326")).max() < 3.0


def test_small_cells_and_no_floor_are_refused_or_documented():
    kw = privacy_layers()
    with pytest.raises(InputError, match=r"at least 100 m"):
        commander_map(**kw, cell_size_m=1)
    with pytest.raises(InputError, match="k-anonymity"):
        commander_map(**kw, k_anonymity=0)


# ---------------------------------------------------------------- joins between our own files


def test_joins_match_every_row_or_fail_naming_the_ids():
    kw = privacy_layers()
    defenders = kw["defenders"].drop(columns="status")
    other = pd.DataFrame(
        {"defender_id": [f"X{i}" for i in range(12)] + ["P00"], "travel_time_s": 60.0, "reachable": True}
    )
    with pytest.raises(InputError, match=r"coverage: 12 of 13 defender ids match no defender \('X0', .* and 7 more\)"):
        commander_map(defenders=defenders, coverage=other)
    partial = pd.DataFrame({"defender_id": ["P00", "P01"], "travel_time_s": 60.0, "reachable": True})
    with pytest.raises(InputError, match=r"coverage: 11 of 13 defenders have no row \('P02'"):
        commander_map(defenders=defenders, coverage=partial)
    with pytest.raises(InputError, match=r"alerts: 1 of 2 defender ids match no defender \('Q7'\)"):
        commander_map(defenders=kw["defenders"], alerts=pd.DataFrame({"defender_id": ["P01", "Q7"], "level": "high"}))
    with pytest.raises(InputError, match="give the defenders too"):
        commander_map(alerts=kw["alerts"])


def test_formula_like_ids_join_through_our_csv(tmp_path):
    """Ids such as =cmd, +1, -x, @y written by write_csv (guarded) and read back with read_table."""
    from havenmap import _io
    from havenmap._maplayers import with_coverage

    tricky = ["=cmd", "+1", "-x", "@y"]
    defenders = gpd.GeoDataFrame({"id": tricky}, geometry=[Point(DEFENDERS_XY[0])] * 4, crs="EPSG:4326")
    table = pd.DataFrame(
        {"defender_id": tricky, "travel_time_s": [60.0, 60.0, 900.0, np.nan], "reachable": [True, True, True, False]}
    )
    back = _io.read_table(_io.write_csv(tmp_path / "coverage.csv", table), "--coverage")
    joined = with_coverage(defenders, back)
    assert list(mh.defender_status(joined, 10)) == ["covered", "covered", "slow", "unreachable"]
    alerts = _io.read_table(_io.write_csv(tmp_path / "alerts.csv", table.assign(level="high")), "--alerts")
    m = commander_map(defenders=defenders, coverage=back, alerts=alerts, k_anonymity=1)
    cells = calls(m)["defenderCells"][0]["items"]
    assert [[b[0] for b in c["badge"]] for c in cells] == [["2", "1", "1"]]
    assert len(calls(m)["cellAlerts"][0]["items"]) == 1


def test_routes_lose_the_vertices_of_points_attached_to_their_edges():
    """A route passing another defender's road position has a vertex there; it must not be drawn."""
    from havenmap._maplayers import _without_attached_points

    line = LineString([(0, 0), (40, 0.2), (60, 0), (100, 0), (100, 30.3), (100.4, 60), (100, 100)])
    got = _without_attached_points(np.array([line, MultiLineString([[(0, 0), (5, 5)], [(5, 5), (9, 9.1), (10, 10)]])]))
    assert shapely.get_coordinates(got[0]).tolist() == [[0, 0], [100, 0], [100, 100]]  # the bend stays
    assert shapely.get_coordinates(got[1]).tolist() == [[0, 0], [10, 10]]  # parts merged first


def test_map_builder_composes_other_layers_at_a_privacy_level():
    """The way siting and share-bundle maps add their own layers: sections, defaults, legend, summary, view."""
    from havenmap.maps import MapBuilder
    from havenmap.privacy import DefenderPrivacy

    sites = gpd.GeoDataFrame(
        {"name": ["<b>site</b> A", "B"]}, geometry=[Point(24.93, 60.16), Point(24.95, 60.17)], crs="EPSG:4326"
    )
    builder = MapBuilder(title="Siting", roads=_roads(), privacy=DefenderPrivacy(cell_size_m=250, k=3))
    builder.add_points(
        "candidates",
        "Candidate havens",
        "Safety",
        sites,
        icon_svg=mh.base_icon_svg(),
        legend_text="candidate site",
        context=True,
    )
    builder.add_lines("corridor", "Corridor", "Patrols", _routes().iloc[:1], colour="#444444", show=False)
    builder.add_summary_line("site", "2", "candidate sites", place="near Main Street", bounds=sites.total_bounds)
    builder.add_safety(defenders=_defenders())
    with pytest.raises(ValueError, match="layer key"):
        builder.layer("candidates", "again", "Safety")
    with pytest.raises(ValueError, match="section"):
        builder.layer("other", "x", "Elsewhere")
    m = builder.build()
    with pytest.raises(RuntimeError):
        builder.build()
    data = calls(m)
    meta = {d["key"]: d for d in data["layer"]}
    assert meta["candidates"]["section"] == "Safety" and meta["candidates"]["show"] is True
    assert meta["corridor"]["show"] is False and meta["corridor"]["legend"][0][1] == "Corridor"
    assert meta["defenders"]["name"] == "Defenders' status (250 m cells)"
    points = next(d for d in data["points"] if d["layer"] == "candidates")
    assert [r[3][0] for r in points["rows"]] == ["<b>site</b> A", "B"]  # plain text for textContent
    finish = data["finish"][0]
    assert finish["summary"]["lines"][0]["kind"] == "site"
    assert finish["home"]["bounds"] == [[60.16, 24.93], [60.17, 24.95]]  # candidates and the line: in view
    with pytest.raises(InputError, match=r"coverage: .*give the defenders too"):
        MapBuilder().add_safety(coverage=pd.DataFrame({"defender_id": ["a"]}))
