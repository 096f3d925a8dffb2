"""The command line as a user meets it: the demo end to end, and every bad-input case.

Each command runs in a subprocess through the real entry point, so exit codes, stderr and
(no) tracebacks are what a user sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest

from havenmap.scenario import demo_dir

DEMO = demo_dir()
NETWORK = DEMO / "helsinki.osm.pbf"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "havenmap.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_demo_writes_the_promised_outputs(demo_out):
    out, proc = demo_out
    report = json.loads((out / "report.json").read_text())
    for key in ("defenders", "havens", "incidents", "reachable", "unreachable", "median_travel_time_s"):
        assert key in report
    assert report["defenders"] == 50 and report["havens"] == 14 and report["incidents"] == 530
    assert report["reachable"] + len(report["unreachable"]) == report["defenders"]
    assert {"D049", "D050"} <= set(report["unreachable"])  # the two offshore defenders
    assert f"{report['reachable']} of 50" in proc.stdout
    assert "Routing" in proc.stderr  # progress shown

    routes = gpd.read_file(out / "nearest_havens.geojson")
    assert routes.crs.to_epsg() == 4326
    for column in ("defender_id", "rank", "haven_id", "travel_time_s", "distance_m", "reachable"):
        assert column in routes.columns
    assert len(routes) == 50 * 2  # k = 2 in the demo scenario: every defender, every rank
    reachable = routes[routes["reachable"] & (routes["rank"] == 1)]
    assert len(reachable) == report["reachable"]
    assert (reachable.geometry.geom_type == "LineString").all()
    assert (out / "nearest_havens.geojson").stat().st_mode & 0o077 == 0  # routes start at defenders: private

    html = (out / "map.html").read_text()
    assert "Safe havens" in html and "Incident heat" in html
    assert "<script>alert" not in html and "onerror=alert" not in html  # injected notes/names stay text


def test_demo_sites_new_havens(demo_out):
    out, proc = demo_out
    report = json.loads((out / "report.json").read_text())
    assert report["siting"]["objective"] == "backup" and report["siting"]["optimal"]
    assert len(report["siting"]["chosen"]) == 3
    assert {p.name for p in (out / "siting").iterdir()} == {
        "sites.csv",
        "siting.json",
        "siting.geojson",
        "siting_map.html",
    }
    summary = json.loads((out / "siting" / "siting.json").read_text())
    assert summary["chosen"] == report["siting"]["chosen"]
    assert summary["worst_loss"]["after"]["weight_after_loss"] >= summary["worst_loss"]["before"]["weight_after_loss"]
    assert "Where to open 3 more haven(s)" in proc.stdout
    html = (out / "siting" / "siting_map.html").read_text()
    assert "onerror=alert" not in html and "<script>alert" not in html


def test_nearest_on_user_files_with_map(tmp_path):
    out = tmp_path / "routes.geojson"
    proc = run(
        "nearest",
        "--network",
        str(NETWORK),
        "--network-type",
        "walk",
        "--defenders",
        str(DEMO / "defenders.csv"),
        "--havens",
        str(DEMO / "havens.geojson"),
        "--k",
        "3",
        "--cost",
        "length",
        "--out",
        str(out),
        "--map",
        str(tmp_path / "m.html"),
    )
    assert proc.returncode == 0, proc.stderr
    routes = gpd.read_file(out)
    assert set(routes["rank"]) == {1, 2, 3}
    assert (tmp_path / "m.html").exists()
    assert "D049" in proc.stderr and "too far" in proc.stderr  # off-network defenders are named


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_DEFENDERS = {
    "missing_columns": ("id,name\nd1,A\n", ["latitude"]),
    "non_numeric": ("id,latitude,longitude\nd1,60.17,24.94\nd2,sixty,24.94\n", ["row 2", "latitude", "sixty"]),
    "out_of_range": ("id,latitude,longitude\nd1,60.17,24.94\nd2,160.17,24.94\n", ["row 2", "latitude"]),
    "swapped": ("id,latitude,longitude\nd1,24.94,60.17\nd2,24.95,60.16\n", ["swapped"]),
    "empty": ("id,latitude,longitude\n", ["no rows"]),
    "duplicate_ids": ("id,latitude,longitude\nd1,60.17,24.94\nd1,60.16,24.95\n", ["'d1'", "row"]),
    "all_far_away": ("id,latitude,longitude\nd1,48.85,2.35\nd2,48.86,2.34\n", ["all 2 points", "farther"]),
}


@pytest.mark.parametrize("case", sorted(BAD_DEFENDERS))
def test_bad_defender_files_get_one_line_and_exit_2(tmp_path, case):
    text, expected = BAD_DEFENDERS[case]
    defenders = _csv(tmp_path / f"{case}.csv", text)
    out = tmp_path / "out" / "routes.geojson"
    proc = run(
        "nearest",
        "--network",
        str(NETWORK),
        "--network-type",
        "walk",
        "--defenders",
        str(defenders),
        "--havens",
        str(DEMO / "havens.geojson"),
        "--out",
        str(out),
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    assert f"{case}.csv" in errors[0]
    for word in expected:
        assert word in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no partial output either


def _nearest(network, out, *extra: str) -> subprocess.CompletedProcess:
    """`havenmap nearest` on the demo defenders and havens, with extra options."""
    return run(
        "nearest",
        "--network",
        str(network),
        "--defenders",
        str(DEMO / "defenders.csv"),
        "--havens",
        str(DEMO / "havens.geojson"),
        *extra,
        "--out",
        str(out),
    )


def test_bad_network_and_options_exit_2(tmp_path):
    out = tmp_path / "o.geojson"
    proc = _nearest(tmp_path / "missing.osm.pbf", out)
    assert proc.returncode == 2 and "missing.osm.pbf" in proc.stderr and "Traceback" not in proc.stderr
    proc = _nearest(NETWORK, out, "--cost", "money")
    assert proc.returncode == 2 and "money" in proc.stderr and "Traceback" not in proc.stderr
    proc = _nearest(NETWORK, out, "--k", "0")
    assert proc.returncode == 2 and "--k" in proc.stderr and "Traceback" not in proc.stderr


def test_help_is_readable():
    proc = run("nearest", "--help")
    assert proc.returncode == 0
    for option in ("--network", "--defenders", "--havens", "--k", "--cost", "--out", "--map"):
        assert option in proc.stdout


@pytest.mark.browser
def test_demo_map_renders_offline_in_chromium(demo_out):
    from .browser import open_page, requires_chromium

    if requires_chromium.args[0]:
        pytest.skip(requires_chromium.kwargs["reason"])
    out, _ = demo_out
    with open_page(out / "map.html") as view:
        counts = view.evaluate("""() => ({
            interactive: document.querySelectorAll('.leaflet-interactive').length,
            canvases: document.querySelectorAll('canvas').length,
            layers: [...document.querySelectorAll('.leaflet-control-layers-overlays label')]
                      .map(l => l.textContent.trim()),
        })""")
        artifacts = Path(__file__).parent / "artifacts"
        artifacts.mkdir(exist_ok=True)
        shot = view.screenshot(artifacts / "demo_map.png")
        assert view.blocked_requests == [] and view.console_errors == [] and view.page_errors == []
    assert counts["canvases"] >= 1 and counts["interactive"] > 14  # havens + routes + cells
    assert "Safe havens" in counts["layers"] and any("Defenders" in name for name in counts["layers"])
    assert shot.stat().st_size > 10_000


def test_demo_siting_map_renders_offline_in_chromium(demo_out):
    from .browser import open_page, requires_chromium

    if requires_chromium.args[0]:
        pytest.skip(requires_chromium.kwargs["reason"])
    out, _ = demo_out
    with open_page(out / "siting" / "siting_map.html") as view:
        counts = view.evaluate("""() => ({
            chosen: [...document.querySelectorAll('.hm-chosen')].map(e => e.textContent.trim()),
            rejected: document.querySelectorAll('.hm-candidate').length,
            layers: [...document.querySelectorAll('.leaflet-control-layers-overlays label')]
                      .map(l => l.textContent.trim()),
        })""")
        assert view.blocked_requests == [] and view.console_errors == [] and view.page_errors == []
    assert sorted(counts["chosen"]) == ["1", "2", "3"]  # the three sites, numbered in opening order
    assert counts["rejected"] > 5
    for name in ("Within 5 min before siting", "Within 5 min of a haven", "Safe havens", "Candidate sites"):
        assert any(label.startswith(name) for label in counts["layers"]), counts["layers"]


def test_bad_output_paths_fail_first_and_leave_nothing(tmp_path):
    (tmp_path / "a_folder").mkdir()
    out = tmp_path / "routes.geojson"
    proc = run(
        "nearest",
        "--network",
        str(NETWORK),
        "--network-type",
        "walk",
        "--defenders",
        str(DEMO / "defenders.csv"),
        "--havens",
        str(DEMO / "havens.geojson"),
        "--out",
        str(out),
        "--map",
        str(tmp_path / "a_folder"),
    )
    assert proc.returncode == 2 and "is a folder" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and "Loading" not in proc.stderr  # failed before any work
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "patrol").write_text("in the way")
    proc = run("demo", "--out", str(tmp_path / "d"))
    assert proc.returncode == 2 and "is a file, not a folder" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["patrol"]
