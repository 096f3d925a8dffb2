"""Backtests: scores against hand-computed values, no peeking, a planted early-warning signal on real streets,
a null (shuffled dates) that must score PAI ≈ 1, bad input before the network loads, and a real Dask cluster
(``dask scheduler`` + two ``dask worker`` processes) giving the serial result."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from havenmap import backtest as bt
from havenmap import cli, threat
from havenmap.errors import InputError
from havenmap.network import from_graph
from havenmap.scenario import demo_dir
from havenmap.synthetic import PlantedWave, random_road_points, synthetic_defenders, synthetic_history

from .conftest import cli_env

REPO = Path(__file__).resolve().parents[1]
DEMO = demo_dir()
CRS = "EPSG:32635"
X0, Y0 = 500_000.0, 6_650_000.0
T0 = pd.Timestamp("2026-03-01")


# --------------------------------------------------------------------------- helpers


def straight_road(n_nodes: int = 21, spacing: float = 100.0):
    """A straight two-way street along x: nodes every ``spacing`` metres, pieces [100 i, 100 (i + 1)]."""
    graph = nx.MultiDiGraph(crs=CRS)
    for i in range(n_nodes):
        graph.add_node(i + 1, x=X0 + i * spacing, y=Y0)
    for i in range(n_nodes - 1):
        for a, b in ((i + 1, i + 2), (i + 2, i + 1)):
            graph.add_edge(a, b, key=0, length=spacing, name="Testgatan", highway="residential", speed_kph=5.0)
    return from_graph(graph)


def incidents(rows: list[tuple[float, int, str]], *, deaths: int = 0) -> gpd.GeoDataFrame:
    """Incidents at x metres along the test road, ``day`` days after T0, of kind 'attack' or 'riot'."""
    types = {"attack": ("Violence against civilians", "Attack"), "riot": ("Riots", "Mob violence")}
    n = len(rows)
    frame = gpd.GeoDataFrame(
        {
            "incident_id": pd.array([f"I{i + 1}" for i in range(n)], dtype="string"),
            "date": [T0 + pd.Timedelta(days=d) for _, d, _ in rows],
            "event_type": pd.array([types[k][0] for *_, k in rows], dtype="string"),
            "sub_event_type": pd.array([types[k][1] for *_, k in rows], dtype="string"),
            "fatalities": np.full(n, deaths, dtype=np.int64),
            "geo_precision": np.ones(n, dtype=np.int64),
            "notes": pd.array([""] * n, dtype="string"),
            "source": pd.array(["csv"] * n, dtype="string"),
        },
        geometry=shapely.points(X0 + np.array([x for x, *_ in rows]), np.full(n, Y0)),
        crs=CRS,
    ).to_crs("EPSG:4326")
    frame.attrs["source"] = "test.csv"
    return frame


def defenders_at(xs: list[float], ids: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": ids}, geometry=shapely.points(X0 + np.array(xs), np.full(len(xs), Y0 + 20.0)), crs=CRS
    ).to_crs("EPSG:4326")


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def row(result: bt.BacktestResult, method: str, as_of: pd.Timestamp) -> pd.Series:
    s = result.scores
    return s[(s["method"] == method) & (s["as_of"] == as_of.date().isoformat())].iloc[0]


# --------------------------------------------------------------------------- hand-computed scores


def test_road_hits_by_hand():
    risk = np.array([3.0, 2.0, 2.0, 1.0, 0.0, 9.0])
    length = np.array([100.0, 200.0, 100.0, 300.0, 300.0, 0.0])  # the zero-length road takes no part
    target = np.array([2.0, 1.0, 3.0, 0.0, 4.0, 0.0])
    # 10 % of 1,000 m: the first road exactly; 25 %: + half of the tied pair (300 m for 150 m): 2 + 0.5 · (1 + 3);
    # 70 %: roads 0-3 (700 m); 100 %: everything
    np.testing.assert_allclose(bt.road_hits(risk, length, target, (10, 25, 70, 100)), [2.0, 4.0, 6.0, 10.0])
    # a uniform forecast captures exactly its share, whatever the target
    np.testing.assert_allclose(bt.road_hits(np.ones(6), length, target, (1, 5, 10)), [0.1, 0.5, 1.0])
    assert bt.alert_outcomes([True, True, False, False], [True, False, True, False]) == (1, 1, 1)


def test_road_and_defender_scores_by_hand_on_a_straight_road():
    net = straight_road()  # 2 km of road, pieces of 100 m
    rows = [
        (340, -2, "attack"),  # known: two on piece 3 in the last 56 days, one on piece 10, one older on piece 15
        (360, -10, "attack"),
        (1050, -20, "attack"),
        (1550, -70, "attack"),
        (330, 1, "attack"),  # the horizon (T0, T0 + 7]: piece 3, piece 15, two on piece 7
        (1520, 3, "attack"),
        (720, 5, "attack"),
        (780, 5, "attack"),
        (1900, 9, "attack"),  # after the horizon
    ]
    d = defenders_at([350, 1550, 1950], ["A", "B", "C"])
    res = quiet(bt.backtest, net, incidents(rows), d, T0, T0, workers=0, distance_m=320.0, bootstrap=0)
    last = row(res, "last_counts", T0)
    assert last["known_incidents"] == 4 and last["target_incidents"] == 4 and last["target_weight"] == 4.0
    # last_counts: piece 3 at 20 per km, piece 10 at 10, the rest 0. 1 % of 2 km = 20 m of piece 3 (0.2 of its
    # target weight 1); 5 % = piece 3 (1 of 4); 10 % = pieces 3 and 10 (still 1 of 4)
    assert [last["hit_rate_1"], last["hit_rate_5"], last["hit_rate_10"]] == pytest.approx([0.05, 0.25, 0.25])
    assert [last["pai_1"], last["pai_5"], last["pai_10"]] == pytest.approx([5.0, 5.0, 2.5])
    uni = row(res, "uniform", T0)
    assert [uni["pai_1"], uni["pai_5"], uni["pai_10"]] == [1.0, 1.0, 1.0]
    # defenders: A has an attack 20 m away in the horizon, B one 30 m away, C none within 320 m. havenmap alerts A
    # (an attack 10 m away two days ago, within half the distance); every baseline alerts one defender too: A (the
    # most risk nearby; for uniform, A and B tie on 0.7 km of road and A comes first)
    for method in bt.METHODS:
        r = row(res, method, T0)
        assert (r["events"], r["alerts"], r["hits"], r["false_alarms"], r["misses"]) == (2, 1, 1, 0, 1), method
        assert (r["precision"], r["recall"]) == (1.0, 0.5)
    summary = res.summary["last_counts"]
    assert summary["pai_5"] == pytest.approx(5.0) and summary["precision"] == 1.0 and summary["recall"] == 0.5


def test_onset_lead_time_by_hand():
    """A surge of riots near A is alerted two weeks running; an attack follows three days after the second."""
    net = straight_road()
    t1 = 7
    rows = [
        (1950, -60, "riot"),  # the history starts 60 days before T0 (so a 28-day quiet spell can be seen)
        *[(1550, day, "riot") for day in (-40, -36, -32, -28, -24, -20)],  # steady activity near B
        (410, -3, "riot"),  # week before T0: 2 riots near A; P(X >= 2 | 0.5 · 7/90) = 7e-4
        (410, -2, "riot"),
        (430, t1 - 3, "riot"),  # week before T1: 3 more; P(X >= 3 | 2.5 · 7/90) = 1e-3
        (430, t1 - 2, "riot"),
        (430, t1 - 1, "riot"),
        (360, t1 + 3, "attack"),  # the onset: 10 m from A, after 28 quiet days
    ]
    d = defenders_at([1550, 350], ["B", "A"])
    res = quiet(
        bt.backtest, net, incidents(rows), d, T0, T0 + pd.Timedelta(days=t1), workers=0, distance_m=320.0, bootstrap=0
    )
    hm = res.summary["havenmap"]
    # T0: A alerted, no event (false alarm); T1: A alerted, attack within the horizon (hit)
    assert (hm["alerts"], hm["hits"], hm["false_alarms"], hm["misses"]) == (2, 1, 1, 0)
    assert hm["precision"] == 0.5 and hm["recall"] == 1.0
    # one onset, warned by the run of alerts that began at T0: lead = (T1 + 3) - T0 = 10 days
    assert (hm["onsets"], hm["onsets_warned"]) == (1, 1)
    assert hm["lead_time_days"] == 10.0 and hm["onset_recall"] == 1.0
    # the baselines spend their one alert on B (more past incidents nearby; uniform: a tie, B listed first)
    for method in bt.METHODS[1:]:
        s = res.summary[method]
        assert (s["hits"], s["false_alarms"], s["misses"], s["onsets_warned"]) == (0, 2, 1, 0), method
        assert s["lead_time_days"] is None and s["recall"] == 0.0


def test_no_peeking_a_planted_future_incident_changes_nothing_before_its_date():
    net = straight_road()
    past = [(150 + (97 * i) % 1300, -3 * i, "attack") for i in range(30)]
    base = past + [(200 + (131 * i) % 1250, 3 * i, "attack") for i in range(1, 9)]  # and some in every horizon
    plant = (1890.0, 10, "attack")  # far from everything else, deadly
    kw = {"workers": 0, "bootstrap": 0, "distance_m": 300.0, "step": "4d", "horizon": "7d"}
    end = T0 + pd.Timedelta(days=16)
    d = defenders_at([400, 1880], ["A", "Z"])
    without = quiet(bt.backtest, net, incidents(base), d, T0, end, **kw).scores.set_index(["as_of", "method"])
    planted = incidents([*base, plant])
    planted.loc[len(base), "fatalities"] = 50
    with_plant = quiet(bt.backtest, net, planted, d, T0, end, **kw).scores.set_index(["as_of", "method"])
    day_of = T0 + pd.Timedelta(days=plant[1])
    for as_of in without.index.get_level_values(0).unique():
        t = pd.Timestamp(as_of)
        a, b = without.loc[as_of], with_plant.loc[as_of]
        if t + pd.Timedelta(days=7) < day_of:  # neither known nor in the horizon: identical scores
            pd.testing.assert_frame_equal(a, b)
        elif t < day_of:  # in the horizon only: the same forecast, scored on one more incident
            assert (b["known_incidents"] == a["known_incidents"]).all()
            assert (b["target_incidents"] == a["target_incidents"] + 1).all()
            # nobody predicted the remote road, so the captured weight is unchanged: hit rates scale down
            hm = (b["hit_rate_10"] * b["target_weight"]).loc[["havenmap", "last_counts", "planar_kde"]]
            before = (a["hit_rate_10"] * a["target_weight"]).loc[hm.index]
            np.testing.assert_allclose(hm, before, rtol=1e-5)  # the CSV has 6 decimals
            assert b.loc["havenmap", "events"] == a.loc["havenmap", "events"] + 1  # Z's attack 10 m away
        else:  # known: one more incident in the forecast
            assert (b["known_incidents"] == a["known_incidents"] + 1).all()


# --------------------------------------------------------------------------- planted signal and null, real streets


def quiet_node(net, hotspots: pd.DataFrame) -> int:
    """The interior intersection farthest (straight line) from every hotspot centre: a quiet place."""
    lo, hi = np.quantile(net.node_xy, [0.15, 0.85], axis=0)
    inner = np.flatnonzero(np.all((net.node_xy >= lo) & (net.node_xy <= hi), axis=1))
    centres = hotspots[["x", "y"]].to_numpy()
    gap = np.hypot(*(net.node_xy[inner, None, :] - centres[None]).transpose(2, 0, 1)).min(axis=1)
    return int(inner[np.argmax(gap)])


def test_a_surge_before_a_wave_is_warned_ahead_and_beats_the_baselines(demo_walk):
    """A quiet place heats up: riots and clashes for three weeks, then two weeks of deadly attacks, among
    persistent, emerging and fading hotspots on the demo's streets. The surge test alerts the defenders there
    about two weeks before the attacks start; the baselines, alerting as many defenders by risk level, spend
    their alerts on the busy hotspots and miss the change."""
    net = demo_walk
    kw = {"weeks": 24, "seed": 3, "background_per_week": 8.0, "rate_per_week": 6.0, "severe_share": 0.05}
    node = quiet_node(net, synthetic_history(net, **kw).hotspots)  # same seed: the same hotspots as below
    hist = synthetic_history(net, **kw, wave=PlantedWave(wave_week=20, node=node, spread_m=100.0))
    d = synthetic_defenders(net, 60, seed=3, near=np.array([node]), near_share=0.2)
    start = hist.start + pd.Timedelta(days=7 * 14 - 1)  # as-of dates: the ends of weeks 13 .. 20
    end = hist.start + pd.Timedelta(days=7 * 21 - 1)
    res = quiet(bt.backtest, net, hist.incidents, d, start, end, workers=0, distance_m=400.0, bootstrap=0)
    wave = set(hist.incidents.loc[hist.incidents["process"] == "wave", "incident_id"])
    onsets = res.onsets[res.onsets["incident_id"].isin(wave)]
    by = onsets.groupby("method").agg(n=("warned", "size"), warned=("warned", "sum"), lead=("lead_time_days", "mean"))
    ours = by.loc["havenmap"]
    assert ours["n"] >= 8 and ours["warned"] >= 0.8 * ours["n"]  # nearly every defender hit by the wave was warned
    assert ours["lead"] >= 10  # the surge began 14-20 days before the attacks
    assert (onsets.loc[onsets["method"] == "havenmap", "lead_time_days"].dropna() > 0).all()
    for method in bt.METHODS[1:]:
        assert by.loc[method, "warned"] < ours["warned"] / 2, method
    assert res.summary["havenmap"]["lead_time_days"] > 0


def test_shuffled_dates_score_pai_near_one(demo_walk):
    """Squares of 600 m, each active in turn for about five weeks (random order): the recent past points at
    next week's roads (PAI well above 1). Over the year every place gets the same incidents per km, so with
    the dates shuffled every place is equally likely next week and every method scores PAI ≈ 1 (a forecast that
    peeked at its horizon would not)."""
    net = demo_walk
    rng = np.random.default_rng(3)
    n = 2600
    edge, frac = random_road_points(net, n, seed=rng)  # uniform per km of road: no place is special over the year
    xy = net.points_along(edge, frac)
    _, square = np.unique(np.floor((xy - xy.min(axis=0)) / 600.0), axis=0, return_inverse=True)
    n_sq = int(square.max()) + 1
    turn_days = 360 // n_sq
    day = rng.permutation(n_sq)[square.ravel()] * turn_days + rng.integers(0, turn_days, n)
    frame = gpd.GeoDataFrame(
        {
            "incident_id": pd.array([f"F{i}" for i in range(n)], dtype="string"),
            "date": pd.Timestamp("2025-01-01") + pd.to_timedelta(day, unit="D"),
            "event_type": pd.array(["Riots"] * n, dtype="string"),
            "sub_event_type": pd.array(["Mob violence"] * n, dtype="string"),
            "fatalities": np.zeros(n, dtype=np.int64),
            "geo_precision": np.ones(n, dtype=np.int64),
            "notes": pd.array([""] * n, dtype="string"),
            "source": pd.array(["csv"] * n, dtype="string"),
        },
        geometry=shapely.points(xy),
        crs=net.crs,
    ).to_crs("EPSG:4326")
    kw = {"workers": 0, "bootstrap": 200, "step": "14d", "horizon": "7d"}
    start, end = "2025-02-15", "2025-12-13"
    ordered = quiet(bt.backtest, net, frame, None, start, end, **kw)
    for method in ("havenmap", "last_counts"):  # the control: the recent past does point at next week's roads
        assert ordered.summary[method]["pai_5"] > 2.0 and ordered.summary[method]["pai_5_ci"][0] > 1.5, method
    shuffled = frame.copy()
    shuffled["date"] = rng.permutation(frame["date"].to_numpy())
    null = quiet(bt.backtest, net, shuffled, None, start, end, **kw)
    for method in bt.METHODS:
        s = null.summary[method]
        for share in (5, 10):
            assert s[f"pai_{share}"] == pytest.approx(1.0, abs=0.3), (method, share)
            lo, hi = s[f"pai_{share}_ci"]
            assert lo < 1.0 < hi or method == "uniform", (method, share, lo, hi)
    assert null.summary["uniform"]["pai_5"] == 1.0


# --------------------------------------------------------------------------- parameters, outputs, CLI


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"start": "2026-13-01"}, "--from '2026-13-01' is not a date; write it as YYYY-MM-DD"),
        ({"end": "05/06/2026"}, "--to '05/06/2026' is not a date"),
        ({"end": "2026-02-01"}, "--to 2026-02-01 is before --from 2026-03-01"),
        ({"step_days": "0d"}, "--step '0d': must be at least one day"),
        ({"horizon_days": "7h"}, "--horizon '7h': give whole days or weeks"),
        ({"method": "magic"}, "--method 'magic': use one of"),
        ({"distance_m": -5}, "--distance-m -5: give a positive number"),
        ({"threat_options": {"kernal": "quartic"}}, "threat_options: 'kernal' is not a parameter of"),
        ({"threat_options": {"grid": True}}, "threat_options: grid cannot be set there"),
    ],
)
def test_bad_parameters_are_named(kw, message):
    values = {"start": "2026-03-01", "end": "2026-04-01", **kw}
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        bt.BacktestParams(**values)


def test_params_from_toml_and_durations(tmp_path):
    path = tmp_path / "bt.toml"
    path.write_text('[backtest]\nfrom = "2026-01-05"\nto = "2026-03-02"\nstep = "2w"\nhorizon = 7\nmethod = "kde"\n')
    p = bt.BacktestParams.from_file(path)
    assert (p.step_days, p.horizon_days, p.method) == (14, 7, "kde")
    assert [d.date().isoformat() for d in p.as_of_dates] == [
        "2026-01-05",
        "2026-01-19",
        "2026-02-02",
        "2026-02-16",
        "2026-03-02",
    ]
    path.write_text('[backtest]\nfrom = "2026-01-05"\nto = "2026-03-02"\nsteps = "2w"\n')
    with pytest.raises(InputError, match="unknown backtest parameter 'steps'"):
        bt.BacktestParams.from_file(path)


def test_incidents_without_dates_are_refused():
    inc = incidents([(100, 0, "attack"), (200, 1, "attack"), (300, 2, "attack")])
    inc.loc[1, "date"] = pd.NaT
    with pytest.raises(InputError, match=r"test.csv: row 2 \(id 'I2'\), column 'date': no date"):
        bt.check_incidents(inc)
    inc["date"] = pd.NaT
    with pytest.raises(InputError, match="the incidents have no dates; a backtest needs an event date"):
        bt.check_incidents(inc)


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "havenmap.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory):
    """A small synthetic history and defenders on the demo streets, as CSV files."""
    from havenmap.network import load_network

    net = load_network(DEMO / "helsinki.osm.pbf", "walk")
    folder = tmp_path_factory.mktemp("bt_inputs")
    hist = synthetic_history(net, weeks=20, seed=11, wave=PlantedWave(wave_week=16))
    inc = hist.incidents
    pd.DataFrame(
        {
            "id": inc["incident_id"],
            "date": inc["date"].dt.strftime("%Y-%m-%d"),
            "event_type": inc["event_type"],
            "sub_event_type": inc["sub_event_type"],
            "fatalities": inc["fatalities"],
            "latitude": inc.geometry.y.round(7),
            "longitude": inc.geometry.x.round(7),
        }
    ).to_csv(folder / "incidents.csv", index=False)
    d = synthetic_defenders(net, 40, seed=11, near=hist.hotspots["node"].to_numpy())
    pd.DataFrame({"id": d["id"], "latitude": d.geometry.y.round(7), "longitude": d.geometry.x.round(7)}).to_csv(
        folder / "defenders.csv", index=False
    )
    return folder, hist


NET_ARGS = ("--network", str(DEMO / "helsinki.osm.pbf"), "--network-type", "walk")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2025-13-01"), "--from '2025-13-01' is not a date"),
        (("--to", "2025-01-01"), "--to 2025-01-01 is before --from 2025-04-01"),
        (("--step", "0"), "--step '0': must be at least one day"),
        (("--scheduler", "not an address"), "--scheduler 'not an address': not a scheduler address"),
        (("--incidents", "{undated}"), "the incidents have no dates; a backtest needs an event date"),
        (("--incidents", "{half_dated}"), "row 2, id '2', column 'date': the date is blank"),  # the reader's check
        (("--method", "oracle"), "'oracle' is not one of 'mix', 'kde'"),
        (("--p-value", "2"), "--p-value 2"),
    ],
)
def test_cli_checks_inputs_before_loading_the_network(tmp_path, cli_inputs, capsys, monkeypatch, args, message):
    from havenmap import cli

    def never(*a, **kw):
        raise AssertionError("the network was loaded before the inputs were checked")

    monkeypatch.setattr(cli, "load_network", never)
    folder, _ = cli_inputs
    undated = tmp_path / "undated.csv"
    undated.write_text("id,event_type,latitude,longitude\n1,Riots,60.17,24.94\n")
    half_dated = tmp_path / "half_dated.csv"
    half_dated.write_text(
        "id,date,event_type,latitude,longitude\n1,2025-03-01,Riots,60.17,24.94\n2,,Riots,60.17,24.94\n"
    )
    values = {"--incidents": str(folder / "incidents.csv"), "--from": "2025-04-01", "--to": "2025-05-01"}
    files = {"undated": undated, "half_dated": half_dated}
    values.update(dict(zip(args[::2], [a.format(**files) for a in args[1::2]], strict=True)))
    flat = [x for kv in values.items() for x in kv]
    code = cli.execute(["backtest", *NET_ARGS, *flat, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("havenmap: error")]
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_cli_backtest_on_a_real_dask_cluster_equals_the_serial_run(tmp_path, cli_inputs, demo_walk, dask_cluster):
    """`dask scheduler` + two `dask worker` processes (the standard commands) on free ports; the CLI runs through
    --scheduler and writes byte-identical scores, summary and page to a serial run in this process."""
    from havenmap import layers

    folder, hist = cli_inputs
    start = (hist.start + pd.Timedelta(days=7 * 12 - 1)).date().isoformat()
    end = (hist.start + pd.Timedelta(days=7 * 16 - 1)).date().isoformat()
    # the serial reference, in this process: the same files, the same parameters as the command below
    inc = bt.check_incidents(layers.read_incidents(folder / "incidents.csv"))
    d = layers.read_defenders(folder / "defenders.csv")
    serial = quiet(bt.backtest, demo_walk, inc, d, start, end, workers=0, distance_m=400.0, bootstrap=200)
    serial.write(tmp_path / "serial", title="Backtest — helsinki.osm.pbf")

    address, env = dask_cluster, cli_env()
    args = [
        *NET_ARGS,
        "--incidents",
        str(folder / "incidents.csv"),
        "--defenders",
        str(folder / "defenders.csv"),
        "--from",
        start,
        "--to",
        end,
        "--distance-m",
        "400",
        "--bootstrap",
        "200",
    ]
    on_cluster = run_cli("backtest", *args, "--scheduler", address, "--out", str(tmp_path / "dask"), env=env)
    assert on_cluster.returncode == 0, on_cluster.stderr
    a, b = tmp_path / "dask", tmp_path / "serial"
    assert (a / "backtest.csv").read_bytes() == (b / "backtest.csv").read_bytes()
    ja, jb = json.loads((a / "backtest.json").read_text()), json.loads((b / "backtest.json").read_text())
    assert ja["summary"] == jb["summary"] and ja["comparison"] == jb["comparison"] and ja["params"] == jb["params"]
    ex = ja["manifest"]["execution"]
    assert ex["mode"] == "cluster" and ex["workers"] == 2 and len(ex["peak_rss_bytes"]) == 2
    # the shared inputs went to each worker once; the tasks themselves are tiny
    assert ex["sent_bytes"] < 2 * ex["shared_bytes"] + 100_000
    assert jb["manifest"]["execution"]["mode"] == "serial"
    assert (a / "backtest.html").read_bytes() == (b / "backtest.html").read_bytes()


def test_cli_backtest_outputs(tmp_path, cli_inputs):
    folder, hist = cli_inputs
    start = (hist.start + pd.Timedelta(days=7 * 12 - 1)).date().isoformat()
    end = (hist.start + pd.Timedelta(days=7 * 16 - 1)).date().isoformat()
    out = tmp_path / "bt"
    proc = run_cli(
        "backtest",
        *NET_ARGS,
        "--incidents",
        str(folder / "incidents.csv"),
        "--defenders",
        str(folder / "defenders.csv"),
        "--from",
        start,
        "--to",
        end,
        "--distance-m",
        "400",
        "--workers",
        "2",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "pai_5" in proc.stdout and "havenmap / " in proc.stdout
    scores = pd.read_csv(out / "backtest.csv")
    assert len(scores) == 5 * len(bt.METHODS) and list(scores["method"].unique()) == list(bt.METHODS)
    body = json.loads((out / "backtest.json").read_text())
    for method in bt.METHODS:
        entry = body["summary"][method]
        for key in ("pai_1", "pai_5", "pai_10", "hit_rate_5", "precision", "recall", "lead_time_days"):
            assert key in entry and f"{key}_ci" in entry
        lo, hi = entry["pai_5_ci"]
        assert lo <= entry["pai_5"] <= hi
    assert body["params"]["step_days"] == 7 and body["params"]["start"] == start
    assert body["manifest"]["execution"]["mode"] == "local" and body["manifest"]["network"]["nodes"] > 1000
    assert body["manifest"]["threat"] == {"method": "mix", **threat.METHOD_DEFAULTS["mix"]}
    page = (out / "backtest.html").read_text()
    assert page.count("<svg") >= 4 and "<script" not in page  # charts inline, nothing to run
    for remote in ('src="http', "src='http", 'href="http', "url(http", "@import"):
        assert remote not in page  # nothing fetched: opens offline
    assert not list(out.glob(".*part*"))  # atomic writes leave nothing behind
    assert cli.execute(["verify", str(out)]) == 0  # its manifest: inputs and outputs as recorded
