"""Issue 12: a planner's own scenario run reproducibly, its manifest, the situation report, patrol follow-up.

Oracles that do not share our code: ``hashlib`` and ``os.stat`` for the manifest, pandas on
the input and output files for the report's numbers, the files' bytes for reproducibility,
an HTML parser and headless Chromium for the page, and patrol tracks simulated from the plan
with networkx shortest paths on the real Aguascalientes streets (stops dropped on purpose,
GPS noise added), written as GPX with ElementTree.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pyproj
import pytest

import havenmap
from havenmap import cli, manifest, params
from havenmap.errors import InputError
from havenmap.network import load_network
from havenmap.scenario import demo_dir, load_scenario
from havenmap.siting import SitingParams

from .browser import open_page, requires_chromium
from .conftest import REPO, shared_file

ARTIFACTS = Path(__file__).parent / "artifacts"
AS_OF = "2026-11-20"
NASTY = '<script>alert("x")</script> & Sons'


def run(capsys, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.execute([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _points(frame: pd.DataFrame, lonlat: np.ndarray, path: Path) -> Path:
    frame.assign(latitude=lonlat[:, 1], longitude=lonlat[:, 0]).to_csv(path, index=False)
    return path


def build_scenario(folder: Path) -> Path:
    """A user scenario on the real Aguascalientes extract: every layer built here, the TOML beside them."""
    source = shared_file("aguascalientes.osm.bz2")
    net = load_network(source, "drive")
    rng = np.random.default_rng(12)
    folder.mkdir(parents=True, exist_ok=True)
    at = net.node_lonlat
    hv = rng.choice(net.n_nodes, 3, replace=False)
    _points(
        pd.DataFrame({"id": [f"H{i}" for i in range(3)], "name": [NASTY, "Clínica", "Parroquia"]}),
        at[hv],
        folder / "havens.csv",
    )
    nodes = rng.choice(net.n_nodes, 60)
    lonlat = at[nodes] + rng.normal(0, 2e-4, (60, 2))
    far = np.array([[at[:, 0].min() - 0.03, at[:, 1].mean()], [at[:, 0].max() + 0.03, at[:, 1].mean()]])
    _points(pd.DataFrame({"id": [f"D{i:03d}" for i in range(62)]}), np.vstack([lonlat, far]), folder / "defenders.csv")
    n_inc = 400
    inc_nodes = rng.choice(net.n_nodes, n_inc)
    days = rng.integers(0, 120, n_inc)
    days[:40] = rng.integers(0, 6, 40)  # a recent surge around a few defenders
    inc_nodes[:40] = rng.choice(nodes[:5], 40)
    _points(
        pd.DataFrame(
            {
                "id": [f"I{i:04d}" for i in range(n_inc)],
                "date": (pd.Timestamp(AS_OF) - pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d"),
                "event_type": rng.choice(["Violence against civilians", "Protests", "Riots", "Battles"], n_inc),
                "fatalities": rng.choice([0, 0, 0, 1, 2], n_inc),
            }
        ),
        at[inc_nodes] + rng.normal(0, 1e-4, (n_inc, 2)),
        folder / "incidents.csv",
    )
    _points(
        pd.DataFrame({"id": ["B1", "B2"], "name": ["Base Norte", "Base Sur"]}),
        at[[0, net.n_nodes // 2]],
        folder / "bases.csv",
    )
    tg = rng.choice(net.n_nodes, 12, replace=False)
    targets = pd.DataFrame({"id": [f"T{i:02d}" for i in range(12)], "priority": [3, 2, 1] * 4, "service_minutes": 4})
    _points(targets, at[tg], folder / "targets.csv")
    cp = net.node_lonlat[[net.n_nodes // 3]]
    _points(pd.DataFrame({"id": ["CP1"]}), cp, folder / "closures.csv")
    toml = folder / "scenario.toml"
    toml.write_text(
        f"""name = {json.dumps("Aguascalientes " + NASTY)}
as_of = {AS_OF}
network = "{Path(os.path.relpath(source, folder)).as_posix()}"
network_type = "drive"
havens = "havens.csv"
defenders = "defenders.csv"
incidents = "incidents.csv"
bases = "bases.csv"
targets = "targets.csv"
closures = "closures.csv"
k = 2
minutes = [1, 2, 4]

[threat]
bandwidth_m = 300
cluster_permutations = 99

[alerts]
distance_m = 400

[patrol]
units = 2
shift_minutes = 40
days = 2
iterations = 300
time_limit_s = 120

[map]
recent_days = 14

[privacy]
cell_size_m = 300
k = 3
""",
        encoding="utf-8",
    )
    return toml


@pytest.fixture(scope="module")
def ags(tmp_path_factory):
    """The user scenario run once through ``havenmap run``."""
    base = tmp_path_factory.mktemp("ags_scenario")
    toml = build_scenario(base / "inputs")
    out = base / "out"
    code = cli.execute(["run", str(toml), "--out", str(out)])
    assert code == 0
    return {"toml": toml, "inputs": toml.parent, "out": out}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ====================================================================== run + manifest + verify
def test_run_writes_a_manifest_checked_against_hashlib_and_the_files(ags):
    out, inputs = ags["out"], ags["inputs"]
    data = json.loads((out / "manifest.json").read_text())
    required = {"havenmap", "libraries", "command", "scenario", "inputs", "outputs", "seeds", "warnings", "timings"}
    assert required <= set(data)
    assert data["command"] == ["havenmap", "run", str(ags["toml"]), "--out", str(out)]
    assert set(data["inputs"]) == {"network", "havens", "defenders", "incidents", "bases", "targets", "closures"}
    for role, rec in data["inputs"].items():
        path = Path(rec["path"])
        assert path.is_absolute() and path.exists()
        assert rec["sha256"] == _sha(path) and rec["size"] == path.stat().st_size
        if role != "network":
            assert path.parent == inputs and rec["rows"] == len(pd.read_csv(path)), role
    assert data["inputs"]["network"]["rows"] is None
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(data["outputs"]) == on_disk
    assert {"report.html", "report.json", "map.html", "coverage/coverage.csv", "patrol/patrol_schedule.csv"} <= on_disk
    for rel, rec in data["outputs"].items():
        assert rec["sha256"] == _sha(out / rel) and rec["size"] == (out / rel).stat().st_size
    assert data["seeds"] == {"patrol": 0, "threat": 0}
    assert any("too far from any road" in w for w in data["warnings"])  # the two defenders placed far off
    resolved = data["scenario"]
    # the scenario's own bandwidth, the method's half-life
    assert resolved["threat"]["bandwidth_m"] == 300 and resolved["threat"]["half_life_days"] == 21
    assert resolved["alerts"]["distance_m"] == 400 and resolved["patrol"]["iterations"] == 300
    assert resolved["coverage"]["minutes"] == [1, 2, 4] and resolved["privacy"]["k"] == 3
    assert {"started", "finished", "total_s", "steps"} <= set(data["timings"])
    assert data["timings"]["patrol"]["solve_s_per_day"] and "solve_time_s" not in json.dumps(
        json.loads((out / "patrol" / "patrol_summary.json").read_text())
    )
    assert (out / "manifest.json").stat().st_mode & 0o077 == 0


def test_verify_is_clean_then_names_an_input_changed_by_one_byte(ags, capsys):
    out = ags["out"]
    assert manifest.verify(out) == []
    code, stdout, _ = run(capsys, "verify", out)
    assert code == 0 and "unchanged" in stdout
    target = ags["inputs"] / "defenders.csv"
    original, stamp = target.read_bytes(), target.stat()
    i = original.index(b"D001") + 3
    try:
        target.write_bytes(original[:i] + b"9" + original[i + 1 :])  # D001 -> D009: same size, one byte
        code, stdout, _ = run(capsys, "verify", out)
        assert code == 1
        lines = stdout.strip().splitlines()
        assert lines[0].startswith(f"input defenders {target}: changed") and len(lines) == 2, stdout
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the input as it was, its date too
    assert manifest.verify(out) == []


def test_verify_names_changed_missing_and_new_outputs_and_refuses_bad_folders(ags, capsys, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ags["out"], copy)
    (copy / "coverage" / "coverage.csv").write_bytes((copy / "coverage" / "coverage.csv").read_bytes() + b"\n")
    (copy / "threat" / "hotspots.geojson").unlink()
    (copy / "notes.txt").write_text("mine")
    code, stdout, _ = run(capsys, "verify", copy)
    assert code == 1
    assert "output coverage/coverage.csv: changed" in stdout
    assert "output threat/hotspots.geojson: missing" in stdout
    assert "file notes.txt: new" in stdout
    kinds = sorted(c.kind for c in manifest.verify(copy))
    assert kinds == ["changed", "missing", "new"]
    (copy / "manifest.json").write_text("{not json")
    for folder in (copy, tmp_path / "nowhere", copy / "notes.txt", tmp_path):
        code, stdout, err = run(capsys, "verify", folder)
        assert code == 2 and err.count("\n") == 1 and err.startswith("havenmap: error: ") and "Traceback" not in err


def _havenmap(*args: object, hash_seed: int) -> None:
    """The command line in a fresh interpreter with its own PYTHONHASHSEED (so set and dict-of-str order differ)."""
    # the havenmap this test imported (the checkout's src, or an installed copy with its own demo data)
    package_root = Path(havenmap.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed), "PYTHONPATH": str(package_root)}
    proc = subprocess.run(
        [sys.executable, "-m", "havenmap.cli", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


def test_the_same_scenario_twice_gives_byte_identical_outputs(ags):
    """Run again into the same folder, in another process with another hash seed: only the timings change."""
    out = ags["out"]
    before = _files(out)
    _havenmap("run", ags["toml"], "--out", out, hash_seed=4242)
    after = _files(out)
    assert set(before) == set(after)
    differ = sorted(name for name in before if before[name] != after[name])
    assert differ == ["manifest.json"], differ
    first, second = (json.loads(x["manifest.json"]) for x in (before, after))
    assert first.pop("timings") != second.pop("timings")
    assert first == second


def test_the_demo_twice_gives_byte_identical_outputs(demo_out, tmp_path):
    """The session's demo run, and the demo again in an interpreter with another hash seed."""
    first, second = demo_out[0], tmp_path / "b"
    _havenmap("demo", "--out", second, hash_seed=7)
    a, b = _files(first), _files(second)
    assert set(a) == set(b) and "report.html" in a and "patrol/gpx/unit-1_day-1.gpx" in a
    assert sorted(n for n in a if a[n] != b[n]) == ["manifest.json"]
    ma, mb = (json.loads(x["manifest.json"]) for x in (a, b))
    for m, out in ((ma, first), (mb, second)):
        m.pop("timings")
        m["command"] = [c.replace(str(out), "OUT") for c in m["command"]]
    assert ma == mb


# ====================================================================== parameters
def _scenario(tmp_path: Path, text: str) -> Path:
    for name in ("h.csv", "d.csv"):
        (tmp_path / name).write_text("id,latitude,longitude\nx,21.87,-102.29\n")
    shutil.copy(demo_dir() / "helsinki.osm.pbf", tmp_path / "n.osm.pbf")
    path = tmp_path / "s.toml"
    path.write_text('network = "n.osm.pbf"\nhavens = "h.csv"\ndefenders = "d.csv"\n' + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kk = 2\n", r"s.toml: unknown key 'kk' at the top level; known keys: name, as_of"),
        ("bandwidth_m = 3\n", r"unknown key 'bandwidth_m' at the top level \(it is a key of \[threat\]\)"),
        ("[thread]\nx = 1\n", r"s.toml: unknown section \[thread\]; known sections: \[network\], \[threat\]"),
        (
            "[threat]\nalert_distance_m = 3\n",
            r"\[threat\] has unknown key 'alert_distance_m' \(it moved: use \[alerts\]",
        ),
        ("[patrol]\ndays = 0\n", r"s.toml: \[patrol\] days = 0: plan 1 to 366 days"),
        ("[patrol]\nunits = 2.5\n", r"s.toml: \[patrol\] units = 2.5: not a whole number; give a number of units"),
        ("[alerts]\np_value = 2\n", r"s.toml: \[alerts\] p_value = 2: give a probability above 0 and below 1"),
        ('[threat]\nbandwidth_m = "wide"\n', r"\[threat\] bandwidth_m = 'wide': not a number"),
        ("minutes = [5, -1]\n", r"s.toml: minutes = \[5, -1\]: give time bands in minutes above 0"),
        ('cost = "fast"\n', r"s.toml: cost = 'fast': use 'time' or 'length'"),
        ('as_of = "Nov 20"\n', r"s.toml: as_of = 'Nov 20': give a date as YYYY-MM-DD"),
        ("alpha = 2\n", r"alpha and max_risk \(--alpha, --max-risk\) need a risk input"),
        ('bases = "h.csv"\n', r"bases without targets; patrols need both"),
        (
            'incidents = "missing.csv"\n',
            r"incidents = 'missing.csv': file not found \(.*missing.csv\); paths are relative",
        ),
        (
            "[privacy]\ncell_size_m = 50\n",
            r"s.toml: \[privacy\]: cell_size_m 50: defender cells must be at least 100 m",
        ),
        ('network_type = "boat"\n', r"network_type .* = 'boat': use 'drive' or 'walk'"),
        ('incidents = "."\n', r"s.toml: incidents = '.': .* is a folder; give the file inside it"),
        ('[dedup]\ntypes = "fuzzy"\n', r"s.toml: \[dedup\] dedup types 'fuzzy': use one of"),
    ],
)
def test_scenario_files_are_checked_key_by_key(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        load_scenario(_scenario(tmp_path, text))


def test_havens_and_defenders_from_one_file_are_refused_and_a_lone_patrol_section_warned(tmp_path):
    path = _scenario(tmp_path, "")
    path.write_text(path.read_text().replace('defenders = "d.csv"', 'defenders = "h.csv"'))
    with pytest.raises(InputError, match="havens and defenders are the same file"):
        load_scenario(path)
    with pytest.warns(UserWarning, match=r"\[patrol\] is set but no bases and targets are given"):
        load_scenario(_scenario(tmp_path, "[patrol]\nunits = 2\n"))


def test_a_bad_scenario_fails_through_the_cli_before_any_work(tmp_path, capsys):
    path = _scenario(tmp_path, "[patrol]\nseed = 1.5\n")
    code, _, err = run(capsys, "run", path, "--out", tmp_path / "out")
    assert (
        code == 2
        and err.strip() == f"havenmap: error: {path}: [patrol] seed = 1.5: not a whole number; give a whole number"
    )
    assert not (tmp_path / "out").exists()


def test_cli_options_and_scenario_keys_share_one_rule(tmp_path, capsys):
    """The same value fails with the same advice from Python, a scenario file and the command line."""
    with pytest.raises(InputError) as python:
        params.ThreatParams(bandwidth_m=-5)
    with pytest.raises(InputError) as toml:
        load_scenario(_scenario(tmp_path, "[threat]\nbandwidth_m = -5\n"))
    code, _, err = run(capsys, "threat", "-n", tmp_path / "n.osm.pbf", "-i", tmp_path / "x.csv", "-o", tmp_path / "o",
                       "--bandwidth-m", "-5")  # fmt: skip
    advice = "bandwidth_m = -5: give a distance in metres above 0, or leave it out"
    assert str(python.value) == advice and str(toml.value).endswith(f"[threat] {advice}")
    assert code == 2 and err.strip() == f"havenmap: error: --bandwidth-m -5: {advice.split(': ', 1)[1]}"
    for cls, option in ((params.PatrolParams, "--days"), (params.AlertParams, "--recent-days")):
        key = next(k for k in cls.field_names() if cls.option(k) == option)
        with pytest.raises(InputError, match=f"^{option} 0: "):
            cls.check_value(key, 0)


def test_every_scenario_key_is_documented_with_its_default():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([\w\[\]. ]+)` \| `([^`]*)` \|", readme, flags=re.M))
    sections = [(None, params.CoverageParams), ("threat", params.ThreatParams), ("alerts", params.AlertParams),
                ("patrol", params.PatrolParams), ("map", params.MapParams)]  # fmt: skip
    defaults = {section: cls().to_dict() for section, cls in sections}
    defaults["siting"] = asdict(SitingParams())
    for section, values in defaults.items():
        for key, default in values.items():
            name = key if section is None else f"[{section}] {key}"
            shown = (
                "none"
                if default is None
                else json.dumps(default)
                if isinstance(default, str)
                else params.shown(default)
            )
            assert rows.get(name) == shown, (name, rows.get(name), shown)
    for key in ("name", "as_of", "network", "network_type", "havens", "defenders", "incidents", "bases", "targets",
                "closures", "risk", "[privacy] cell_size_m", "[privacy] k", "[siting] candidates",
                "[siting] candidates_osm"):  # fmt: skip
        assert key in rows, key


# ====================================================================== the situation report
class _Numbers(HTMLParser):
    """Every ``data-k``/``data-v`` pair of the page, with the row attributes around it, and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[tuple[dict[str, str], str, str]] = []
        self.row: dict[str, str] = {}
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "tr":
            self.row = {k: v for k, v in a.items() if k.startswith("data-")}
        if "data-k" in a:
            self.values.append((dict(self.row), a["data-k"], a.get("data-v", "")))

    def handle_data(self, data):
        self.text.append(data)

    def get(self, key: str, **row: str) -> list[str]:
        want = {f"data-{k}": str(v) for k, v in row.items()}
        return [v for r, k, v in self.values if k == key and all(r.get(a) == b for a, b in want.items())]


def test_report_numbers_equal_the_json_and_csv_outputs(ags):
    out = ags["out"]
    html = (out / "report.html").read_text(encoding="utf-8")
    page = _Numbers()
    page.feed(html)
    report = json.loads((out / "report.json").read_text())
    assert page.get("defenders") == [str(report["defenders"])] and page.get("havens") == [str(report["havens"])]
    coverage = json.loads((out / "coverage" / "coverage.json").read_text())
    for band, row in coverage["bands"].items():
        assert page.get(f"covered_{band}") == [str(row["covered"])]
        assert float(page.get(f"share_{band}")[0]) == row["share"]
        assert page.get(f"covered_after_{band}") == [str(coverage["n_minus_1"]["covered_after"][band])]
    # the headline from coverage.csv directly: no haven at all, and slower than the last band
    cov = pd.read_csv(out / "coverage" / "coverage.csv")
    cannot = int((~cov["reachable"]).sum())
    slow = int((cov["reachable"] & (cov["travel_time_s"] > 4 * 60)).sum())
    assert page.get("cannot_reach") == [str(cannot)] and cannot >= 2
    assert page.get("too_slow") == [str(slow)] and page.get("not_in_time") == [str(cannot + slow)]
    n1 = pd.read_csv(out / "coverage" / "n_minus_1.csv", dtype={"haven_id": str}).set_index("haven_id")
    for haven in {r["data-haven"] for r, k, _ in page.values if "data-haven" in r}:
        assert page.get("lost_4", haven=haven) == [str(n1.loc[haven, "lost_4"])]
        assert page.get("lose_all_cover", haven=haven) == [str(n1.loc[haven, "lose_all_cover"])]
    alerts = pd.read_csv(out / "threat" / "alerts.csv")
    for level in ("critical", "high", "elevated"):
        assert page.get(f"alerts_{level}") == [str(int((alerts["level"] == level).sum()))]
    assert len(page.get("level")) == len(alerts) and len(alerts) > 0
    assert sorted(map(float, page.get("score"))) == sorted(alerts["score"].tolist())
    # the weekly trend, counted from the incidents file with pandas (all incidents lie on the roads here)
    inc = pd.read_csv(ags["inputs"] / "incidents.csv", parse_dates=["date"])
    monday = (inc["date"] - pd.to_timedelta(inc["date"].dt.day_of_week, unit="D")).dt.strftime("%Y-%m-%d")
    counts = monday.value_counts()
    violent = monday[inc["event_type"].isin(["Violence against civilians", "Battles", "Riots"])].value_counts()
    weeks = [k for _, k, _ in page.values if k.startswith("week_") and k.endswith("_incidents")]
    assert len(weeks) == 12
    for key in weeks:
        week = key[5:15]
        assert page.get(key) == [str(counts.get(week, 0))], week
        assert page.get(f"week_{week}_violent") == [str(violent.get(week, 0))], week
    routes = json.loads((out / "patrol" / "patrol_routes.geojson").read_text())["features"]
    assert routes
    for f in routes:
        p = f["properties"]
        assert page.get("stops", unit=p["unit"], day=p["day"]) == [str(p["n_targets"])]
        assert float(page.get("km", unit=p["unit"], day=p["day"])[0]) == round(p["distance_m"] / 1000, 2)
    man = json.loads((out / "manifest.json").read_text())
    for role, rec in man["inputs"].items():
        assert page.get("size", role=role) == [str(rec["size"])]
    # privacy: no defender id, no defender coordinate (charts hold counts only); user text inert; nothing linked
    text = " ".join(page.text)
    defenders = pd.read_csv(ags["inputs"] / "defenders.csv")
    assert not [d for d in defenders["id"] if re.search(rf"\b{d}\b", html)]
    tables = re.sub(r"<svg.*?</svg>", "", html, flags=re.S)
    for lat, lon in zip(defenders["latitude"], defenders["longitude"], strict=True):
        assert f"{lat:.4f}" not in tables and f"{lon:.4f}" not in tables
    assert "<script" not in html.lower() and "&lt;script&gt;" in html and NASTY in text
    assert re.findall(r'(?:src|href)\s*=\s*"(?!#)', html) == [] and "url(http" not in html


def test_report_shows_siting_results_when_the_folder_has_them(ags, tmp_path):
    from havenmap import report

    out = tmp_path / "out"
    shutil.copytree(ags["out"], out)
    (out / "siting").mkdir()
    (out / "siting" / "siting.json").write_text(json.dumps({"objective": "backup", "new": 2, "minutes": 5}))
    pd.DataFrame({"site_id": ["S1", "S2"], "name": ["<b>Escuela</b>", "Biblioteca"], "order": [1, 2]}).to_csv(
        out / "siting" / "sites.csv", index=False
    )
    inputs = json.loads((out / "manifest.json").read_text())["inputs"]
    html = report.write_situation_report(out, inputs=inputs, title="t").read_text(encoding="utf-8")
    section = html[html.index('<section id="siting">') : html.index('<section id="inputs">')]
    assert "backup" in section and "&lt;b&gt;Escuela&lt;/b&gt;" in section and "Biblioteca" in section
    assert '<section id="siting">' not in (ags["out"] / "report.html").read_text(encoding="utf-8")


@pytest.mark.browser
@requires_chromium
def test_report_opens_offline_in_chromium_and_prints_on_a4_and_letter(ags):
    with open_page(ags["out"] / "report.html", viewport={"width": 1000, "height": 1400}) as view:
        assert view.blocked_requests == [] and view.console_errors == [] and view.page_errors == []
        assert [u for u in view.requests if not u.startswith(("file:", "data:"))] == []
        charts = view.evaluate("[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().width)")
        assert len(charts) == 3 and min(charts) > 300
        assert view.evaluate("document.fonts.size") == 0  # no font file, system fonts only
        ARTIFACTS.mkdir(exist_ok=True)
        view.page.screenshot(path=str(ARTIFACTS / "report_ags.png"), full_page=True)
        assert view.evaluate("document.documentElement.scrollWidth") <= 1000  # nothing sticks out sideways
        view.page.emulate_media(media="print")
        for paper in ("A4", "Letter"):
            pdf = view.page.pdf(format=paper, print_background=True)
            pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
            assert pdf.startswith(b"%PDF") and 2 <= pages <= 8, (paper, pages)


@pytest.mark.browser
@requires_chromium
def test_pdf_printing_is_reproducible_and_a_missing_chromium_is_one_line(ags, tmp_path, capsys, monkeypatch):
    from havenmap import report

    a, b = report.print_pdf(ags["out"] / "report.html", tmp_path / "a.pdf"), tmp_path / "b.pdf"
    report.print_pdf(ags["out"] / "report.html", b)
    assert a.read_bytes().startswith(b"%PDF") and a.read_bytes() == b.read_bytes()
    monkeypatch.setenv("HAVENMAP_CHROMIUM", str(tmp_path / "no-chromium"))
    code, _, err = run(capsys, "run", ags["toml"], "--out", tmp_path / "out", "--pdf")
    assert code == 2 and err.count("\n") == 1 and "--pdf: HAVENMAP_CHROMIUM=" in err
    assert not (tmp_path / "out").exists()


# ====================================================================== patrol follow-up
def _track_xml(name: str | None, lonlat: np.ndarray, times: list[pd.Timestamp] | None, segments=None) -> bytes:
    """A GPX 1.1 track as a GPS app writes it (namespaced, one trkseg per segment), by ElementTree."""
    ns = "http://www.topografix.com/GPX/1/1"
    ET.register_namespace("", ns)
    root = ET.Element(f"{{{ns}}}gpx", {"version": "1.1", "creator": "OsmAnd~ 4.7"})
    trk = ET.SubElement(root, f"{{{ns}}}trk")
    if name:
        ET.SubElement(trk, f"{{{ns}}}name").text = name
    segments = [np.arange(len(lonlat))] if segments is None else segments
    for idx in segments:
        seg = ET.SubElement(trk, f"{{{ns}}}trkseg")
        for i in idx:
            pt = ET.SubElement(seg, f"{{{ns}}}trkpt", {"lat": f"{lonlat[i, 1]:.7f}", "lon": f"{lonlat[i, 0]:.7f}"})
            ET.SubElement(pt, f"{{{ns}}}ele").text = "1880.0"
            if times is not None:
                ET.SubElement(pt, f"{{{ns}}}time").text = times[i].strftime("%Y-%m-%dT%H:%M:%SZ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


def _haversine_km(lonlat: np.ndarray) -> float:
    lon, lat = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    a = np.sin(np.diff(lat) / 2) ** 2 + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(np.diff(lon) / 2) ** 2
    return float((2 * 6_371_008.8 * np.arcsin(np.sqrt(a))).sum() / 1000)


class _Simulator:
    """Drive a unit's day on the real streets: networkx shortest paths between the stops it keeps."""

    def __init__(self, net) -> None:
        g = nx.Graph()
        for u, v, length in zip(net.edge_u, net.edge_v, net.edge_length, strict=True):
            if not g.has_edge(u, v) or g[u][v]["length"] > length:
                g.add_edge(int(u), int(v), length=float(length))
        self.g, self.lonlat = g, net.node_lonlat
        self.crs = pyproj.CRS.from_epsg(32613)
        self.fwd = pyproj.Transformer.from_crs(4326, self.crs, always_xy=True)
        self.back = pyproj.Transformer.from_crs(self.crs, 4326, always_xy=True)
        self.xy = np.column_stack(self.fwd.transform(*net.node_lonlat.T))

    def nearest(self, lonlat) -> int:
        x, y = self.fwd.transform(*lonlat)
        return int(np.argmin(np.hypot(self.xy[:, 0] - x, self.xy[:, 1] - y)))

    def drive(self, points: list[tuple[float, float]]) -> np.ndarray:
        """Metric vertices base → points → base along shortest paths (each point itself visited)."""
        out = []
        for a, b in itertools.pairwise(points):
            path = nx.shortest_path(self.g, self.nearest(a), self.nearest(b), weight="length")
            out += [self.fwd.transform(*a), *map(tuple, self.xy[path]), self.fwd.transform(*b)]
        return np.asarray(out, dtype=float)

    def densify(self, xy: np.ndarray, step_m: float = 8.0) -> np.ndarray:
        parts = [xy[:1]]
        for p, q in itertools.pairwise(xy):
            n = max(1, int(np.ceil(np.hypot(*(q - p)) / step_m)))
            parts.append(p + (q - p) * (np.arange(1, n + 1)[:, None] / n))
        return np.vstack(parts)


@pytest.fixture(scope="module")
def tracks(ags, tmp_path_factory):
    """Tracks simulated from the run's plan: some stops dropped (and never passed near), GPS noise added."""
    plan = ags["out"] / "patrol"
    schedule = pd.read_csv(plan / "patrol_schedule.csv", dtype={"target_id": str, "unit": str})
    folder = tmp_path_factory.mktemp("tracks")
    net = load_network(shared_file("aguascalientes.osm.bz2"), "drive")
    sim = _Simulator(net)
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2026-11-21T14:00:00Z")
    dropped, driven_km, faithful, raw = set(), {}, None, {}
    for i, path in enumerate(sorted((plan / "gpx").glob("*.gpx"))):
        root = ET.parse(path).getroot()
        ns = {"g": "http://www.topografix.com/GPX/1/1"}
        unit, _, day = root.find("g:trk/g:name", ns).text.rpartition(" day ")
        wpts = [
            (float(w.get("lon")), float(w.get("lat")), w.find("g:name", ns).text) for w in root.findall("g:wpt", ns)
        ]
        base, stops = wpts[0], wpts[1:]
        rows = schedule.loc[(schedule["unit"] == unit) & (schedule["day"] == int(day)) & schedule["target_id"].notna()]
        arrive = dict(zip(rows["target_id"], rows["arrival_min"], strict=True))
        leave = dict(zip(rows["target_id"], rows["departure_min"], strict=True))
        if faithful is None:  # one day driven exactly as planned, along the plan's own route
            faithful = (unit, int(day))
            trkpts = root.findall("g:trk/g:trkseg/g:trkpt", ns)
            xy = sim.densify(np.column_stack(sim.fwd.transform(
                [float(p.get("lon")) for p in trkpts], [float(p.get("lat")) for p in trkpts])))  # fmt: skip
            keep = stops
        else:
            # drop stops (never two in a row) where the rerouted day never comes within 90 m of them
            keep = list(stops)
            for j in range(1, len(stops) - 1):
                if (unit, int(day), stops[j - 1][2]) in dropped:
                    continue
                trial = [s for s in keep if s != stops[j]]
                xy_try = sim.densify(sim.drive([base[:2], *[s[:2] for s in trial], base[:2]]))
                stop_xy = np.array(sim.fwd.transform(*stops[j][:2]))
                if np.hypot(*(xy_try - stop_xy).T).min() > 90:
                    keep = trial
                    dropped.add((unit, int(day), stops[j][2]))
            xy = sim.densify(sim.drive([base[:2], *[s[:2] for s in keep], base[:2]]))
            xy = xy + rng.normal(0, 4.0, xy.shape)  # GPS noise
        # times: constant speed between stops, arriving at each kept stop at its planned time
        stop_at = [int(np.argmin(np.hypot(*(xy - np.array(sim.fwd.transform(*s[:2]))).T))) for s in keep]
        minutes = np.zeros(len(xy))
        prev_i, prev_t = 0, 0.0
        for s, idx in zip(keep, stop_at, strict=True):
            if idx > prev_i:
                minutes[prev_i : idx + 1] = np.linspace(prev_t, arrive[s[2]], idx - prev_i + 1)
            prev_i, prev_t = idx, leave[s[2]]
        minutes[prev_i:] = np.linspace(prev_t, prev_t + 20, len(xy) - prev_i)
        lonlat = np.column_stack(sim.back.transform(*xy.T))
        times = [start + pd.Timedelta(minutes=float(m)) for m in minutes]
        driven_km[(unit, int(day))] = _haversine_km(lonlat)
        if i == 0:  # the track name names the unit and day; the file name does not
            (folder / "Track 2026-11-21 0800.gpx").write_bytes(_track_xml(f"{unit} day {day}", lonlat, times))
        elif i == 1:  # recording restarted: two files for one day, joined
            half = len(lonlat) // 2
            (folder / f"{unit}_day-{day}.gpx").write_bytes(_track_xml(None, lonlat[:half], times[:half]))
            (folder / f"{unit}_day-{day}_2.gpx").write_bytes(_track_xml(None, lonlat[half:], times[half:]))
            driven_km[(unit, int(day))] = _haversine_km(lonlat[:half]) + _haversine_km(lonlat[half:])
        else:
            (folder / f"{unit}_day-{day}.gpx").write_bytes(_track_xml(None, lonlat, times))
        raw[(unit, int(day))] = (lonlat, minutes)
    assert len(dropped) >= 2, "the plan should give stops to drop"
    return {"folder": folder, "dropped": dropped, "km": driven_km, "faithful": faithful, "plan": plan, "raw": raw}


def test_patrol_check_finds_exactly_the_dropped_stops(ags, tracks, tmp_path, capsys):
    out = tmp_path / "check"
    hot = ags["out"] / "threat" / "hotspots.geojson"
    code, _stdout, err = run(capsys, "patrol-check", "--plan", tracks["plan"], "--tracks", tracks["folder"],
                            "--hotspots", hot, "--out", out)  # fmt: skip
    assert code == 0, err
    stops = pd.read_csv(out / "patrol_check.csv", dtype={"target_id": str, "unit": str})
    missed = {(r.unit, r.day, r.target_id) for r in stops.itertuples() if not r.visited}
    assert missed == tracks["dropped"]
    assert stops.loc[~stops["visited"], "reason"].str.startswith("closest pass").all()
    schedule = pd.read_csv(tracks["plan"] / "patrol_schedule.csv", dtype={"target_id": str})
    assert len(stops) == schedule["target_id"].notna().sum()
    result = json.loads((out / "patrol_check.json").read_text())
    routes = {
        (f["properties"]["unit"], f["properties"]["day"]): f["properties"]["distance_m"] / 1000
        for f in json.loads((tracks["plan"] / "patrol_routes.geojson").read_text())["features"]
    }
    for day in result["days"]:
        key = (day["unit"], day["day"])
        assert day["km_planned"] == pytest.approx(routes[key], abs=1e-3)
        assert day["km_driven"] == pytest.approx(tracks["km"][key], rel=0.01)
        assert day["detour_km"] == pytest.approx(day["km_driven"] - day["km_planned"], abs=2e-3)
        assert day["time_checked"] is True
        if key == tracks["faithful"]:
            assert day["missed"] == [] and day["hotspot_roads_driven"] >= day["hotspot_roads_planned"] > 0
            assert day["risk_share"] >= 0.99
    assert result["stops_missed"] == len(tracks["dropped"])
    assert len(next(d for d in result["days"] if len(d["track_files"]) == 2)["track_files"]) == 2
    data = json.loads((out / "manifest.json").read_text())
    assert "tracks" in data["inputs"] and "plan" in data["inputs"] and "hotspots" in data["inputs"]
    assert manifest.verify(out) == []
    assert all(p.stat().st_mode & 0o077 == 0 for p in out.iterdir())
    html = (out / "patrol_check_map.html").read_text(encoding="utf-8")
    assert "Missed stops" in html and "Driven, day 1" in html


def test_patrol_check_time_window(tracks, tmp_path, capsys):
    """The same drives at a third of the speed: every kept stop is passed, most outside their windows."""
    slow = tmp_path / "slow"
    slow.mkdir()
    start = pd.Timestamp("2026-11-21T14:00:00Z")
    for (unit, day), (lonlat, minutes) in tracks["raw"].items():
        times = [start + pd.Timedelta(minutes=3 * float(m)) for m in minutes]
        (slow / f"{unit}_day-{day}.gpx").write_bytes(_track_xml(None, lonlat, times))
    results = {}
    for window in ("10", "inf"):
        code, _, err = run(capsys, "patrol-check", "--plan", tracks["plan"], "--tracks", slow, "--out",
                           tmp_path / window, "--window-min", window)  # fmt: skip
        assert code == 0, err
        results[window] = pd.read_csv(tmp_path / window / "patrol_check.csv", dtype={"target_id": str})
    anytime, strict = results["inf"], results["10"]
    assert int((~anytime["visited"]).sum()) == len(tracks["dropped"])
    late = strict.loc[~strict["visited"] & anytime["visited"]]
    assert len(late) > len(strict) // 3 and late["reason"].str.contains("outside the window").all()
    # a stop planned at +a min is passed at about +3a: outside a 10-minute window exactly when 2a > a slack
    assert (late["planned_arrival_min"] > 5).all()


GOOD = _track_xml("unit-1 day 1", np.array([[-102.29, 21.87], [-102.289, 21.871]]), None)
_KML = b'<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document/></kml>'
_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<gpx><trk><name>&b;</name></trk></gpx>"
)
_WAYPOINTS = b'<gpx version="1.1"><wpt lat="21.87" lon="-102.29"><name>x</name></wpt></gpx>'
_ROUTE = b'<gpx version="1.1"><rte><rtept lat="21.87" lon="-102.29"/></rte></gpx>'
_TWO = np.array([[-102.29, 21.87], [-102.289, 21.871]])
_TIMED = _track_xml("unit-1 day 1", _TWO, [pd.Timestamp("2026-11-21")] * 2)
BAD_GPX = {
    "empty": (b"", "empty file"),
    "not_xml": (b"lat,lon\n21.8,-102.2\n", "not a GPX file (not XML"),
    "kml": (_KML, "its root element is <kml>"),
    "entities": (_BOMB, "XML entities or a DTD, refused"),
    "waypoints_only": (_WAYPOINTS, "holds no track points (only waypoints)"),
    "route_only": (_ROUTE, "a planned route, not a recorded track"),
    "bad_lat": (GOOD.replace(b'lat="21.8700000"', b'lat="121.87"'), "track point 1: lat '121.87' is not a latitude"),
    "bad_time": (_TIMED.replace(b"2026-11-21T00:00:00Z", b"yesterday", 1), "time 'yesterday' is not an ISO 8601 time"),
    "some_times": (
        _TIMED.replace(b"<time>2026-11-21T00:00:00Z</time>", b"", 1),
        "track point 1 has no <time> while others have one",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_GPX))
def test_bad_gpx_files_get_one_line_and_exit_2(ags, tmp_path, capsys, case):
    data, message = BAD_GPX[case]
    folder = tmp_path / "tracks"
    folder.mkdir()
    bad = folder / "unit-1_day-1.gpx"
    bad.write_bytes(data)
    code, _out, err = run(
        capsys, "patrol-check", "--plan", ags["out"] / "patrol", "--tracks", folder, "--out", tmp_path / "o"
    )
    assert code == 2, (case, err)
    assert err.count("\n") == 1 and err.startswith(f"havenmap: error: {bad}: ") and message in err, err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_track_names_that_say_nothing_or_name_no_planned_day(ags, tmp_path, capsys):
    folder = tmp_path / "tracks"
    folder.mkdir()
    (folder / "Track 001.gpx").write_bytes(GOOD.replace(b"unit-1 day 1", b"morning ride"))
    code, _, err = run(
        capsys, "patrol-check", "--plan", ags["out"] / "patrol", "--tracks", folder, "--out", tmp_path / "o"
    )
    assert code == 2 and "cannot tell the unit and day; name the file <unit>_day-<d>.gpx" in err
    (folder / "Track 001.gpx").unlink()
    (folder / "unit-9_day-1.gpx").write_bytes(GOOD)
    code, _, err = run(
        capsys, "patrol-check", "--plan", ags["out"] / "patrol", "--tracks", folder, "--out", tmp_path / "o"
    )
    assert code == 2 and "unit-9 day 1 has no planned route (planned: unit-1 day 1" in err
    (folder / "unit-9_day-1.gpx").unlink()
    code, _, err = run(
        capsys, "patrol-check", "--plan", ags["out"] / "patrol", "--tracks", folder, "--out", tmp_path / "o"
    )
    assert code == 2 and "no .gpx files" in err
    (folder / "unit-1_day-1.gpx").write_bytes(GOOD)
    code, _, err = run(capsys, "patrol-check", "--plan", ags["out"], "--tracks", folder, "--out", tmp_path / "o")
    assert code == 2 and "no patrol_schedule.csv" in err


# ====================================================================== other commands' manifests
def test_every_command_writing_a_folder_writes_a_manifest(ags, tmp_path, capsys):
    inputs = ags["inputs"]
    network = shared_file("aguascalientes.osm.bz2")
    code, _, err = run(capsys, "coverage", "-n", network, "-d", inputs / "defenders.csv", "--havens",
                       inputs / "havens.csv", "--minutes", "2,4", "-o", tmp_path / "cov")  # fmt: skip
    assert code == 0, err
    data = manifest.read_manifest(tmp_path / "cov")
    assert data["scenario"]["coverage"]["minutes"] == [2, 4] and data["inputs"]["defenders"]["rows"] == 62
    assert manifest.verify(tmp_path / "cov") == []
    code, _, err = run(capsys, "network", "-n", network, "-o", tmp_path / "net")
    assert code == 0, err
    (tmp_path / "net" / "other.txt").write_text("not ours")
    assert list(manifest.read_manifest(tmp_path / "net")["outputs"]) == ["network_report.json"]
    assert [str(c) for c in manifest.verify(tmp_path / "net")] == ["file other.txt: new (not in the manifest)"]
