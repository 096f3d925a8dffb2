"""Issue 16, item 2: ``havenmap sweep`` — a scenario re-run over a grid of variations.

Oracles that do not share the sweep's code path: independent single runs of ``havenmap
coverage`` through the CLI (with the haven removed from the havens file, or with one closure
file per checkpoint), networkx shortest paths on the original graph for every defender, and a
real Dask cluster started with the standard ``dask scheduler`` / ``dask worker`` commands
against the serial run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from havenmap import cli
from havenmap.network import load_network

from .conftest import cli_env, shared_file

N_HAVENS = 4
MINUTES = (1, 2, 4)


def run(capsys, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.execute([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "havenmap.cli", *args], capture_output=True, text=True, timeout=300, env=cli_env()
    )


def _points(ids: list[str], lonlat: np.ndarray, path: Path) -> Path:
    pd.DataFrame({"id": ids, "latitude": lonlat[:, 1], "longitude": lonlat[:, 0]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def ags(tmp_path_factory):
    """A scenario on the real Aguascalientes drive network: havens and defenders exactly at intersections
    (so networkx needs no point arithmetic), three checkpoints, and the sweep over haven loss and checkpoints."""
    source = shared_file("aguascalientes.osm.bz2")
    net = load_network(source, "drive")
    graph = net.to_networkx()
    # intersections on the largest strongly connected part, with several streets (no dead-end stubs)
    core = max(nx.strongly_connected_components(graph), key=len)
    nodes = np.array(sorted(n for n in core if graph.out_degree(n) >= 2 and graph.in_degree(n) >= 2))
    position = {int(node_id): i for i, node_id in enumerate(net.node_id)}
    rng = np.random.default_rng(16)
    picked = rng.choice(nodes, N_HAVENS + 45 + 3, replace=False)
    at = net.node_lonlat
    folder = tmp_path_factory.mktemp("sweep_inputs")
    haven_ids = [f"H{i}" for i in range(N_HAVENS)]
    haven_nodes = picked[:N_HAVENS]
    defender_nodes = picked[N_HAVENS : N_HAVENS + 45]
    cp_nodes = picked[N_HAVENS + 45 :]
    _points(haven_ids, at[[position[n] for n in haven_nodes]], folder / "havens.csv")
    _points([f"D{i:02d}" for i in range(45)], at[[position[n] for n in defender_nodes]], folder / "defenders.csv")
    _points([f"CP{i}" for i in range(3)], at[[position[n] for n in cp_nodes]], folder / "checkpoints.csv")
    (folder / "scenario.toml").write_text(
        f"""name = "Aguascalientes sweep"
network = "{Path(os.path.relpath(source, folder)).as_posix()}"
network_type = "drive"
havens = "havens.csv"
defenders = "defenders.csv"
minutes = {list(MINUTES)}
""",
        encoding="utf-8",
    )
    (folder / "sweep.toml").write_text('lose_haven = "each"\nclose_each = "checkpoints.csv"\n', encoding="utf-8")
    return {
        "folder": folder,
        "net": net,
        "graph": graph,
        "havens": dict(zip(haven_ids, haven_nodes, strict=True)),
        "defenders": dict(zip([f"D{i:02d}" for i in range(45)], defender_nodes, strict=True)),
    }


@pytest.fixture(scope="module")
def serial_sweep(ags, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep_serial") / "out"
    f = ags["folder"]
    args = ["sweep", str(f / "scenario.toml"), "--vary", str(f / "sweep.toml"), "--out", str(out)]
    code = cli.execute([*args, "--workers", "0", "--keep-outputs"])
    assert code == 0
    return out


def _coverage_cli(
    capsys, tmp: Path, havens: Path, defenders: Path, network: Path, closures: Path | None = None, minutes=MINUTES
):
    out = tmp / "cov"
    args = ["coverage", "--network", network, "--defenders", defenders, "--havens", havens, "--out", out]
    args += ["--minutes", ",".join(map(str, minutes))]
    if closures is not None:
        args += ["--closures", closures]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    return json.loads((out / "coverage.json").read_text()), pd.read_csv(out / "n_minus_1.csv")


def _expected_row(summary: dict, n1: pd.DataFrame, minutes=MINUTES) -> dict:
    worst = summary["n_minus_1"]
    row = {
        "defenders": summary["defenders"],
        "reachable": summary["reachable"],
        "median_time_s": round(summary["median_travel_time_s"], 1),
        "no_second_haven": summary["no_second_haven"],
        "worst_haven": worst["worst_haven"],
        "worst_lose_all_cover": worst["lose_all_cover"],
        "worst_cut_off": worst["cut_off"],
    }
    for m in minutes:
        row[f"covered_{m}"] = summary["bands"][str(m)]["covered"]
        row[f"share_{m}"] = round(summary["bands"][str(m)]["share"], 4)
    assert len(n1) == summary["havens"]
    return row


def test_grid_shape_and_columns(serial_sweep):
    rows = pd.read_csv(serial_sweep / "sweep.csv", dtype={"lose_haven": str, "close": str})
    # base + 4 havens × 3 checkpoints, in grid order
    assert list(rows["variation"]) == ["base", *[f"v{i:04d}" for i in range(1, 13)]]
    assert list(rows.columns[:3]) == ["variation", "lose_haven", "close"]
    assert rows["lose_haven"].iloc[1:].tolist() == [f"H{i}" for i in range(N_HAVENS) for _ in range(3)]
    assert rows["close"].iloc[1:].tolist() == [f"CP{j}" for _ in range(N_HAVENS) for j in range(3)]
    for m in MINUTES:
        assert f"covered_{m}" in rows.columns and f"share_{m}" in rows.columns
    assert (rows["havens"].iloc[1:] == N_HAVENS - 1).all() and rows["havens"].iloc[0] == N_HAVENS
    assert (rows["closed_edges"].iloc[1:] > 0).all() and rows["closed_edges"].iloc[0] == 0
    body = json.loads((serial_sweep / "sweep.json").read_text())
    assert len(body["rows"]) == 13 and body["manifest"]["mode"] == "serial"
    assert body["sweep"]["axes"]["lose_haven"] == [f"H{i}" for i in range(N_HAVENS)]
    manifest = json.loads((serial_sweep / "manifest.json").read_text())
    assert {"sweep.csv", "sweep.json"} <= set(manifest["outputs"])
    assert "sweep" in manifest["inputs"] and "close_each" in manifest["inputs"]


def test_each_row_equals_an_independent_coverage_run(ags, serial_sweep, tmp_path, capsys):
    """The row for (lose H, close CPj) equals ``havenmap coverage`` with H taken out of the havens file and
    CPj's closure file; the base row equals plain ``havenmap coverage``."""
    f = ags["folder"]
    source = shared_file("aguascalientes.osm.bz2")
    rows = pd.read_csv(serial_sweep / "sweep.csv", dtype={"lose_haven": str, "close": str}).set_index("variation")
    havens = pd.read_csv(f / "havens.csv")
    checkpoints = pd.read_csv(f / "checkpoints.csv")
    summary, n1 = _coverage_cli(capsys, tmp_path / "base", f / "havens.csv", f / "defenders.csv", source)
    _assert_row(rows.loc["base"], _expected_row(summary, n1))
    checked = 0
    for variation, row in rows.iloc[1:].iterrows():
        if variation not in ("v0001", "v0005", "v0009", "v0012"):  # four of twelve: each haven once, each checkpoint
            continue
        tmp = tmp_path / variation
        tmp.mkdir()
        kept = havens.loc[havens["id"] != row["lose_haven"]]
        kept.to_csv(tmp / "havens.csv", index=False)
        checkpoints.loc[checkpoints["id"] == row["close"]].to_csv(tmp / "cp.csv", index=False)
        summary, n1 = _coverage_cli(capsys, tmp, tmp / "havens.csv", f / "defenders.csv", source, tmp / "cp.csv")
        _assert_row(row, _expected_row(summary, n1))
        checked += 1
    assert checked == 4


def _assert_row(row: pd.Series, expected: dict) -> None:
    for key, value in expected.items():
        got = row[key]
        if isinstance(value, float):
            assert got == pytest.approx(value, abs=0.051), key
        elif isinstance(value, int) and not isinstance(value, bool):
            assert float(got) == value, (key, got, value)  # a column with empty cells reads as float
        else:
            assert str(got) == str(value), (key, got, value)


def test_lose_haven_times_match_networkx_on_the_original_graph(ags, serial_sweep):
    """Per defender, the kept coverage.csv of a lose-H variation against networkx multi-source Dijkstra from the
    other havens on the reversed original graph (defenders and havens sit at intersections), with the checkpoint's
    edges removed; and the row's median and coverage against those times."""
    rows = pd.read_csv(serial_sweep / "sweep.csv", dtype={"lose_haven": str, "close": str}).set_index("variation")
    graph = ags["graph"]
    net = ags["net"]
    from havenmap import costs

    checkpoints = costs.read_barriers(ags["folder"] / "checkpoints.csv")
    for variation in ("v0002", "v0010"):
        row = rows.loc[variation]
        cp = checkpoints.loc[checkpoints["barrier_id"] == row["close"]]
        closed = np.flatnonzero(costs.closure_mask(net, cp))
        assert len(closed) > 0
        g = graph.copy()
        ids = net.node_id
        g.remove_edges_from([(int(ids[net.edge_u[e]]), int(ids[net.edge_v[e]]), int(net.edge_key[e])) for e in closed])
        sources = [n for h, n in ags["havens"].items() if h != row["lose_haven"]]
        dist = nx.multi_source_dijkstra_path_length(g.reverse(copy=False), sources, weight="travel_time")
        kept = pd.read_csv(serial_sweep / "variations" / variation / "coverage" / "coverage.csv")
        expected = np.array([dist.get(n, np.inf) for n in ags["defenders"].values()])
        got = kept.set_index("defender_id").loc[list(ags["defenders"]), "travel_time_s"].to_numpy(dtype=float)
        got = np.where(np.isnan(got), np.inf, got)
        assert np.allclose(got, expected, atol=0.06, rtol=0), variation  # the CSV rounds to 0.1 s
        finite = expected[np.isfinite(expected)]
        assert row["median_time_s"] == pytest.approx(np.median(finite), abs=0.051)
        assert row["mean_time_s"] == pytest.approx(np.mean(finite), abs=0.051)
        assert row["reachable"] == len(finite)
        for m in MINUTES:
            assert row[f"covered_{m}"] == int((expected <= 60 * m).sum())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('lose_havens = "each"\n', "sweep.toml: unknown key 'lose_havens'; known keys: lose_haven, close_each"),
        ("base = true\n", "sweep.toml: nothing to vary; give at least one of lose_haven"),
        ("alpha = [0, 1]\n", "sweep.toml: alpha varies the danger-aware cost, but the scenario has no risk input"),
        ('lose_haven = ["H0", "H9"]\n', "sweep.toml: lose_haven item 'H9': no haven with this id in"),
        ("lose_haven = []\n", "sweep.toml: lose_haven = []: give a list of values to try"),
        ("minutes = [[5, -1]]\n", "sweep.toml: minutes item [5, -1]: give time bands in minutes above 0"),
        ('close_each = "nowhere.geojson"\n', "sweep.toml: close_each = 'nowhere.geojson': file not found"),
        ("[siting]\nnew = [1, 2]\n", "sweep.toml: [siting] varies the siting, but the scenario has no [siting]"),
        ('base = "yes"\nlose_haven = "each"\n', "sweep.toml: base = 'yes': give true"),
        ("lose_haven = ", "sweep.toml: not valid TOML"),
    ],
)
def test_a_bad_sweep_file_is_one_line_before_the_network_loads(ags, tmp_path, capsys, monkeypatch, text, message):
    from havenmap import sweep

    def never(*a, **kw):
        raise AssertionError("the network was loaded before the sweep file was checked")

    monkeypatch.setattr(cli, "load_network", never)
    monkeypatch.setattr(sweep, "load_network", never)
    bad = tmp_path / "sweep.toml"
    bad.write_text(text, encoding="utf-8")
    code, _, err = run(capsys, "sweep", ags["folder"] / "scenario.toml", "--vary", bad, "--out", tmp_path / "o")
    lines = [line for line in err.strip().splitlines() if line.startswith("havenmap: error")]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_siting_row_equals_havenmap_site(tmp_path, capsys):
    """Varying [siting] new on the demo: each row's chosen sites and value are those of ``havenmap run``'s
    siting with that budget (the scenario file edited), and the grid has one row per budget."""
    from havenmap.scenario import demo_dir

    demo = demo_dir()
    folder = tmp_path / "demo"
    folder.mkdir()
    for p in demo.iterdir():
        if p.is_file():
            (folder / p.name).symlink_to(p)
    (folder / "sweep.toml").write_text("base = false\n[siting]\nnew = [1, 2]\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", folder / "scenario.toml", "--vary", folder / "sweep.toml", "--out", out)
    assert code == 0, err
    rows = pd.read_csv(out / "sweep.csv")
    assert list(rows["siting_new"]) == [1, 2]
    from havenmap import layers, siting
    from havenmap.scenario import load_scenario

    scen = load_scenario(folder / "scenario.toml")
    net = load_network(scen.network, scen.network_type)
    havens = layers.read_havens(scen.havens)
    candidates = siting.candidates_from_osm(scen.network, scen.siting["candidates_osm"], exclude=havens)
    defenders = layers.read_defenders(scen.defenders)
    p = scen.siting["params"]
    for new, row in zip((1, 2), rows.itertuples(), strict=True):
        with pytest.warns(UserWarning):
            alone = siting.site_havens(
                net, defenders, candidates, existing=havens, objective=p.objective, new=new, minutes=p.minutes,
                bands=scen.minutes, max_snap_m=scen.snap_max_distance_m, off_network_candidates="drop",
            )  # fmt: skip
        assert row.siting_chosen == ";".join(alone.summary["chosen"])
        assert row.siting_value == pytest.approx(alone.summary["value"])


def test_sweep_on_a_real_dask_cluster_equals_the_serial_run(ags, serial_sweep, tmp_path, dask_cluster):
    """`havenmap sweep --scheduler` on a cluster of two `dask worker` processes writes the serial sweep.csv byte
    for byte (and the same kept per-variation files)."""
    f = ags["folder"]
    out = tmp_path / "dask"
    proc = run_cli(
        "sweep", str(f / "scenario.toml"), "--vary", str(f / "sweep.toml"), "--out", str(out),
        "--scheduler", dask_cluster, "--keep-outputs",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (out / "sweep.csv").read_bytes() == (serial_sweep / "sweep.csv").read_bytes()
    for kept in sorted((serial_sweep / "variations").rglob("*.csv")):
        assert (out / kept.relative_to(serial_sweep)).read_bytes() == kept.read_bytes()
    ex = json.loads((out / "sweep.json").read_text())["manifest"]
    assert ex["mode"] == "cluster" and ex["workers"] == 2 and len(ex["peak_rss_bytes"]) == 2
    assert ex["sent_bytes"] < 2 * ex["shared_bytes"] + 200_000  # the network went to each worker once


def test_alpha_and_max_risk_rows_equal_coverage_with_that_danger_cost(ags, tmp_path, capsys):
    """alpha × max_risk (with "none"): each row equals ``havenmap coverage --risk --alpha [--max-risk]``."""
    f, net = ags["folder"], ags["net"]
    rng = np.random.default_rng(5)
    pd.DataFrame({"edge": np.arange(net.n_edges), "risk": rng.exponential(0.5, net.n_edges).round(4)}).to_csv(
        tmp_path / "risk.csv", index=False
    )
    text = (f / "scenario.toml").read_text().replace('havens = "havens.csv"', f'havens = "{f / "havens.csv"}"')
    text = text.replace('defenders = "defenders.csv"', f'defenders = "{f / "defenders.csv"}"')
    network = shared_file("aguascalientes.osm.bz2")
    text = text.replace(text.split("\n")[1], f'network = "{network.as_posix()}"')
    (tmp_path / "scenario.toml").write_text(text + 'risk = "risk.csv"\n', encoding="utf-8")
    (tmp_path / "sweep.toml").write_text('base = false\nalpha = [0, 2]\nmax_risk = [1.5, "none"]\n', encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", tmp_path / "scenario.toml", "--vary", tmp_path / "sweep.toml", "--out", out)
    assert code == 0, err
    rows = pd.read_csv(out / "sweep.csv", dtype={"max_risk": str})
    assert list(zip(rows["alpha"], rows["max_risk"], strict=True)) == [(0, "1.5"), (0, "none"), (2, "1.5"), (2, "none")]
    medians = set()
    for row in rows.itertuples():
        tmp = tmp_path / row.variation
        tmp.mkdir()
        cap = [] if row.max_risk == "none" else ["--max-risk", row.max_risk]
        code, _, err = run(
            capsys, "coverage", "--network", network, "--defenders", f / "defenders.csv", "--havens",
            f / "havens.csv", "--minutes", ",".join(map(str, MINUTES)), "--risk", tmp_path / "risk.csv",
            "--alpha", row.alpha, *cap, "--out", tmp / "cov",
        )  # fmt: skip
        assert code == 0, err
        summary = json.loads((tmp / "cov" / "coverage.json").read_text())
        n1 = pd.read_csv(tmp / "cov" / "n_minus_1.csv")
        _assert_row(pd.Series(row._asdict()), _expected_row(summary, n1))
        assert row.closed_edges == summary["cost_model"]["closed_edges"]
        medians.add(row.median_time_s)
    assert len(medians) > 1  # the danger cost changes the routes


def test_time_band_rows_equal_coverage_with_those_bands(ags, tmp_path, capsys):
    """minutes = [[1, 3], 2]: two rows, each equal to ``havenmap coverage --minutes`` with those bands; a band a
    variation does not have is left empty in its row."""
    f = ags["folder"]
    (tmp_path / "sweep.toml").write_text("base = false\nminutes = [[1, 3], 2]\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _, err = run(capsys, "sweep", f / "scenario.toml", "--vary", tmp_path / "sweep.toml", "--out", out)
    assert code == 0, err
    rows = pd.read_csv(out / "sweep.csv", dtype={"minutes": str})
    assert rows["minutes"].tolist() == ["1;3", "2"]
    assert [c for c in rows.columns if c.startswith("covered_")] == ["covered_1", "covered_2", "covered_3"]
    assert rows["covered_2"].isna().tolist() == [True, False] and rows["covered_3"].isna().tolist() == [False, True]
    source = shared_file("aguascalientes.osm.bz2")
    for row, minutes in zip(rows.itertuples(), ((1, 3), (2,)), strict=True):
        tmp = tmp_path / row.variation
        summary, n1 = _coverage_cli(capsys, tmp, f / "havens.csv", f / "defenders.csv", source, minutes=minutes)
        _assert_row(pd.Series(row._asdict()), _expected_row(summary, n1, minutes))
