"""Tests for havenmap.maps: self-contained offline HTML, escaping, defender privacy, drawing.

Browser tests open the saved map in headless Chromium (tests/browser.py) with every
network request blocked, and look at what Leaflet actually drew.
"""

from __future__ import annotations

import html
import re
import stat
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from jinja2.utils import htmlsafe_json_dumps
from pyproj import Geod, Transformer
from shapely.geometry import LineString, MultiLineString, Point

from havenmap import _maphtml as mh
from havenmap.errors import InputError
from havenmap.maps import _with_reachability, nearest_map, save_map

from .browser import open_page, requires_chromium

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
        LineString([(LON0 - 0.01 + i * 0.004, LAT0 - 0.006), (LON0 - 0.01 + i * 0.004, LAT0 + 0.006)])
        for i in range(6)
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
        LineString([d2, (24.9444, 60.1595), (24.948, 60.1595), h2]),
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


def _encodings(value: str) -> set[str]:
    """Every form in which ``value`` could appear in the HTML: raw, HTML-escaped, and as
    folium embeds strings in scripts (JSON with <, >, &, ' as \\u escapes)."""
    forms = {value, html.escape(value), mh.safe_text(value)}
    return forms | {htmlsafe_json_dumps(f)[1:-1] for f in forms}


def _build(path: Path, **kwargs) -> str:
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


@pytest.fixture(scope="module")
def default_map(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("maps") / "map.html"
    return path, _build(path)


@pytest.fixture(scope="module")
def exact_map(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("maps") / "exact.html"
    return path, _build(path, exact_defenders=True)


# ---------------------------------------------------------------- HTML text checks

# Absolute URLs that remain in the inlined libraries: the XML namespace, Leaflet's
# attribution hyperlink (a link, not a fetch) and URLs inside licence/source comments.
ALLOWED_URLS = {
    "http://www.w3.org/2000/svg",
    "https://leafletjs.com",
    "https://bugzilla.mozilla.org/show_bug.cgi?id=888319",
    "https://github.com/Leaflet/Leaflet.heat",
    "https://github.com/Leaflet/Leaflet.heat/pull/78",
    "https://github.com/mourner/simpleheat",
    "https://leaflet.github.io/Leaflet.heat/dist/leaflet-heat.js",
}
ASSET_PATTERNS = [
    r"""src\s*=\s*["']?(https?:)?//""",
    r"""<link[^>]*href\s*=\s*["']?(https?:)?//""",
    r"""url\(\s*["']?(https?:)?//""",
    r"@import",
    r"L\.tileLayer\(",
]


def test_html_references_no_remote_assets(default_map):
    _, text = default_map
    for pattern in ASSET_PATTERNS:
        assert not re.search(pattern, text), pattern
    urls = set(re.findall(r"""https?://[^\s"'<>()\\]+""", text))
    assert urls <= ALLOWED_URLS, urls - ALLOWED_URLS
    assert len(text) < 400_000  # leaflet + heat plugin + data; no bootstrap/jquery/font-awesome


def test_asset_check_catches_a_cdn_map(tmp_path):
    """Negative control: plain folium defaults (tiles, CDN-era CSS) fail the same checks."""
    import offlinefolium as folium

    text = folium.Map(location=[LAT0, LON0]).get_root().render()
    found = [p for p in ASSET_PATTERNS if re.search(p, text)]
    assert found  # tile layer and the glyphicon font CSS still point at the network


def test_defenders_aggregated_by_default(default_map):
    _, text = default_map
    for lon, lat in DEFENDERS_XY:
        assert f"{lon:.5f}" not in text
        assert f"{lat:.5f}" not in text
    for value in DEFENDER_NAMES + DEFENDER_IDS:
        for form in _encodings(value):
            assert form not in text
    assert "EXACT DEFENDER LOCATIONS" not in text
    assert "Defenders (aggregated)" in text


def test_exact_defenders_opt_in(exact_map):
    path, text = exact_map
    for lon, lat in DEFENDERS_XY:
        assert f"{lon:.5f}" in text
        assert f"{lat:.5f}" in text
    for name in DEFENDER_NAMES:
        assert htmlsafe_json_dumps(mh.safe_text(name))[1:-1] in text  # escaped, inside JSON
    assert DEFENDER_NAMES[1] not in text and DEFENDER_NAMES[2] not in text  # never raw
    assert "EXACT DEFENDER LOCATIONS" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # exact locations: owner only


def test_default_map_file_is_not_private(default_map):
    path, _ = default_map
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


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


def test_trim_start_hand_worked():
    line = LineString([(0, 0), (100, 0), (100, 200)])  # 300 m long
    cut = mh.trim_start(line, 150)
    assert cut.coords[0] == (100.0, 50.0)
    assert cut.length == pytest.approx(150.0)
    assert mh.trim_start(line, 300) is None
    assert mh.trim_start(line, 0) is line
    multi = MultiLineString([[(0, 0), (100, 0)], [(500, 0), (500, 100)]])  # disjoint parts, 200 m
    cut = mh.trim_start(multi, 120)
    assert cut.coords[0] == (500.0, 20.0)
    assert cut.length == pytest.approx(80.0)


def test_grid_counts_hand_worked():
    # UTM 35N (Helsinki's zone); with 500 m cells, ix = floor(x / 500), iy = floor(y / 500).
    xy = [(385010, 6670010), (385020, 6670490), (385510, 6670010), (385499, 6670499)]
    pts = gpd.GeoDataFrame(
        {"status": ["ok", "unreachable", "ok", "OK"]}, geometry=[Point(p) for p in xy], crs="EPSG:32635"
    )
    cells = mh.grid_counts(pts, 500.0).to_crs("EPSG:32635")
    got = {
        (round(g.bounds[0]), round(g.bounds[1])): (c, u)
        for g, c, u in zip(cells.geometry, cells["count"], cells["unreachable"], strict=True)
    }
    assert got == {(385000, 6670000): (3, 1), (385500, 6670000): (1, 0)}
    no_status = mh.grid_counts(pts.drop(columns="status"), 500.0)
    assert list(no_status["unreachable"]) == [-1, -1]
    assert mh.cell_colour(3, 1) == mh.SHARE_CLASSES[1][0]
    assert mh.cell_colour(2, 1) == mh.SHARE_CLASSES[2][0]
    assert mh.cell_colour(5, 0) == mh.SHARE_CLASSES[0][0]
    assert mh.cell_colour(5, -1) == mh.COUNT_CLASSES[2][1]


def test_heat_weights_and_binning():
    small = mh.heat_points(_incidents(), bin_above=5000, bin_m=50.0)
    weights = [w for _, _, w in small]
    raw = np.array([1, 4, 2, 1, 1], dtype=float)  # fatalities + 1, NaN counted as 0
    assert weights == pytest.approx(np.clip(raw / np.quantile(raw, 0.95), 0, 1), abs=1e-3)
    assert small[1][:2] == pytest.approx([LAT0 + 0.0005, LON0 + 0.001], abs=1e-6)
    # 6,000 incidents within a 30 m square fall into at most 4 squares of 50 m.
    rng = np.random.default_rng(7)
    x = 385_020 + rng.uniform(0, 30, 6000)
    y = 6_670_020 + rng.uniform(0, 30, 6000)
    many = gpd.GeoDataFrame(
        {"fatalities": np.zeros(6000)}, geometry=gpd.points_from_xy(x, y), crs="EPSG:32635"
    )
    binned = mh.heat_points(many, bin_above=5000, bin_m=50.0)
    assert len(binned) == 1  # (385020..385050, 6670020..6670050) lies in one 50 m square
    centre = gpd.GeoSeries([Point(385_025, 6_670_025)], crs="EPSG:32635").to_crs(4326).iloc[0]
    assert binned[0][:2] == pytest.approx([centre.y, centre.x], abs=1e-6)


def test_defender_reachability_taken_from_routes():
    defenders = _defenders().drop(columns="reachable")
    routes = _routes()
    routes = routes.assign(defender_id=[DEFENDER_IDS[0], DEFENDER_IDS[1], DEFENDER_IDS[2]])
    routes.loc[1, "reachable"] = False  # defender 1's only route is unreachable
    got = _with_reachability(defenders, routes)
    assert list(got["reachable"]) == [True, False, True]
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
@requires_chromium
def test_browser_fetches_nothing_and_logs_no_errors(default_map):
    path, _ = default_map
    with open_page(path) as view:
        assert view.blocked_requests == []
        assert view.requests == [view.url]
        assert view.console_errors == []
        assert view.page_errors == []
        assert _count(view, ".leaflet-tile-pane img") == 0


@browser
@requires_chromium
def test_browser_helper_blocks_and_records(tmp_path):
    """Negative control for the helper: remote and foreign file:// requests are blocked."""
    page = tmp_path / "leaky.html"
    page.write_text(
        '<img src="https://example.invalid/a.png"><img src="other.png"><script>nope();</script>',
        encoding="utf-8",
    )
    with open_page(page) as view:
        assert "https://example.invalid/a.png" in view.blocked_requests
        assert (tmp_path / "other.png").as_uri() in view.blocked_requests
        assert any("nope" in e for e in view.page_errors)


def _expected_cells(cell_m: float) -> int:
    """Independent oracle: distinct 500 m squares of the defenders in UTM zone 35N via pyproj."""
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32635", always_xy=True)
    return len(
        {(int(x // cell_m), int(y // cell_m)) for x, y in (to_utm.transform(*xy) for xy in DEFENDERS_XY)}
    )


SCREEN_POINTS_JS = """
cls => {
  const map = window[document.querySelector('.folium-map').id];
  const box = map.getContainer().getBoundingClientRect();
  const out = [];
  map.eachLayer(l => {
    if (!l.options || l.options.className !== cls || l.options.dashArray) return;
    if (!l.getLatLng && !l.getLatLngs) return;  // the GeoJSON group itself
    let ll;
    if (l.getLatLng) { ll = l.getLatLng(); }
    else {
      const p = l.getLatLngs().flat(Infinity);
      ll = L.latLng((p[0].lat + p[1].lat) / 2, (p[0].lng + p[1].lng) / 2);
    }
    const pt = map.latLngToContainerPoint(ll);
    out.push([pt.x + box.left, pt.y + box.top]);
  });
  return out;
}
"""


@browser
@requires_chromium
def test_layers_draw_and_toggle(default_map):
    path, _ = default_map
    with open_page(path) as view:
        labels = view.evaluate(
            "Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label'))"
            ".map(l => l.textContent.trim())"
        )
        assert labels == [
            "Roads",
            "Incident heatmap",
            "Defenders (aggregated)",
            "Routes to havens",
            "Safe havens",
        ]
        assert _count(view, "path.hm-haven") == 2
        assert _count(view, "path.hm-route") == 3
        dashed = view.evaluate(
            "Array.from(document.querySelectorAll('path.hm-route'))"
            ".map(p => p.getAttribute('stroke-dasharray'))"
        )
        assert sorted(dashed, key=str) == ["6 5", None, None]
        assert _count(view, "path.hm-defender-cell") == _expected_cells(500.0)
        heat = view.page.locator("canvas.leaflet-heatmap-layer")
        roads = view.page.locator(".leaflet-overlay-pane canvas:not(.leaflet-heatmap-layer)")
        assert heat.count() == 1 and roads.count() == 1
        assert heat.evaluate(INK_JS) > 500
        assert roads.evaluate(INK_JS) > 500

        toggle = view.page.locator(".leaflet-control-layers-overlays label", has_text="Safe havens")
        toggle.click()
        assert _count(view, "path.hm-haven") == 0
        assert _count(view, "path.hm-route") == 3  # other layers untouched
        toggle.click()
        assert _count(view, "path.hm-haven") == 2
        assert view.console_errors == [] and view.page_errors == []


@browser
@requires_chromium
def test_injected_markup_is_shown_not_run(default_map):
    path, _ = default_map
    with open_page(path) as view:
        page = view.page
        texts, shown = [], []
        for cls in ("hm-haven", "hm-route"):  # hover each haven and each solid route
            points = view.evaluate(SCREEN_POINTS_JS, cls)
            assert len(points) == 2
            for x, y in points:
                page.mouse.move(x, y)
                texts += page.locator(".leaflet-tooltip").all_inner_texts()
        for x, y in view.evaluate(SCREEN_POINTS_JS, "hm-haven"):  # click each haven: popup
            page.mouse.click(x, y)
            texts += page.locator(".leaflet-popup-content").all_inner_texts()
            shown.append(view.evaluate("document.body.innerText"))  # rendered text only
        joined = "\n".join(texts)
        assert joined.count(NASTY_HAVEN) >= 3  # tooltip, popup, route tooltip
        assert "5.0 min, 1.00 km" in joined and "4.2 min, 0.80 km" in joined
        assert NASTY_HAVEN in joined
        assert TEMPLATE_HAVEN in joined
        assert IMG_KIND in joined
        assert view.evaluate("typeof window.__pwned") == "undefined"
        assert _count(view, ".leaflet-popup-content script, .leaflet-tooltip script, img") == 0
        assert view.evaluate("document.title") == "Ops <b>map</b>"
        assert "Ops <b>map</b>" in page.locator("#hm-title").inner_text()
        assert any(NASTY_HAVEN in text for text in shown)  # visible on the page as text
        assert view.blocked_requests == []  # the <img src=x> never became an element
        assert view.console_errors == [] and view.page_errors == []


@browser
@requires_chromium
def test_routes_do_not_start_at_the_defender(default_map):
    path, _ = default_map
    with open_page(path) as view:
        starts = view.evaluate("""
            () => {
              const map = window[document.querySelector('.folium-map').id];
              const out = [];
              map.eachLayer(l => {
                if (l.options && l.options.className === 'hm-route' && l.getLatLngs) {
                  const ll = l.getLatLngs().flat(Infinity)[0];
                  out.push([ll.lng, ll.lat]);
                }
              });
              return out;
            }""")
    assert len(starts) == 3
    origins = [DEFENDERS_XY[0], DEFENDERS_XY[2]]
    for lon, lat in starts:
        nearest = min(GEOD.inv(lon, lat, ox, oy)[2] for ox, oy in origins)
        # at least 100 m away in a straight line, at most the 150 m cut along the route
        assert 100.0 <= nearest <= 150.5


@browser
@requires_chromium
def test_exact_map_draws_points_and_warning(exact_map):
    path, _ = exact_map
    with open_page(path) as view:
        assert _count(view, "path.hm-defender") == 3
        assert _count(view, "path.hm-defender-cell") == 0
        assert "EXACT DEFENDER LOCATIONS" in view.page.locator("#hm-title").inner_text()
        assert view.evaluate("typeof window.__pwned") == "undefined"
        assert view.blocked_requests == [] and view.console_errors == []


@browser
@requires_chromium
def test_screenshot_is_not_blank(default_map):
    path, _ = default_map
    with open_page(path) as view:
        shot = view.screenshot(ARTIFACTS / "maps_default.png")
    assert shot.stat().st_size > 10_000
