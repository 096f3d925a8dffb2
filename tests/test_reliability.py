"""Nothing lost, nothing leaked, nothing silently wrong (issue 15), through the command line.

Most cases run the real command line in this process (:func:`havenmap.cli.execute`, the
function the console script calls), so exit status, stdout and stderr are what a user sees;
cases that depend on the umask run in a subprocess. Every refused run is checked for one
line ``havenmap: error: ...``, exit status 2, and untouched files (bytes and listings).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import typer

from havenmap import _io, cli
from havenmap.errors import InputError, listing
from havenmap.scenario import demo_dir

from .conftest import REPO, shared_file

DEMO = demo_dir()
NET = DEMO / "helsinki.osm.pbf"
WALK = ("--network", str(NET), "--network-type", "walk")
POINTS = ("--defenders", str(DEMO / "defenders.csv"), "--havens", str(DEMO / "havens.geojson"))


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("havenmap: error:")]


@pytest.fixture
def hm(capsys):
    """Run ``havenmap ARGS...`` in this process; return exit status, stdout and stderr."""

    def run(*args: object) -> Result:
        capsys.readouterr()
        code = cli.execute([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def refused(result: Result, *words: str, quiet: bool = True, loaded: bool = False) -> str:
    """Assert a one-line refusal with exit status 2, returning the line.

    ``quiet``: nothing else was printed (the run failed before its first step); ``loaded``: the
    network may have been loaded (the error can only be found with it).
    """
    assert result.code == 2, result.err + result.out
    assert len(result.errors) == 1, result.err
    line = result.errors[0]
    for word in words:
        assert word in line, line
    assert "Traceback" not in result.err and "╭" not in result.err + result.out  # no box, no trace
    assert result.err.strip().splitlines()[-1] == line  # the error is the last word
    if quiet:
        assert result.err.strip() == line, result.err
    if not loaded:
        assert "Loading the" not in result.err, result.err
    return line


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# =========================================================================== 1. outputs never overwrite inputs
OUTPUT_OPTIONS = ("--out", "--map")


def _commands() -> dict:
    return typer.main.get_command(cli.app).commands


def _path_params(command) -> list:
    """Options taking a file or folder (``--units`` takes a number or a file)."""
    return [p for p in command.params if _takes_paths(p) or p.opts[0] == "--units"]


def _takes_paths(param) -> bool:
    """A file option, or one taking several files (``--incidents`` may be repeated)."""
    kind = param.type_descriptor
    return kind.is_path or (param.multiple and "Path" in str(kind.annotation))


def _conflict_cases() -> list[tuple[str, str, str]]:
    cases = []
    for name, command in _commands().items():
        params = _path_params(command)
        outs = [p.opts[0] for p in params if p.opts[0] in OUTPUT_OPTIONS]
        ins = [p.opts[0] for p in params if p.opts[0] not in OUTPUT_OPTIONS]
        cases += [(name, out, inp) for out in outs for inp in ins]
    return cases


def _dummy_inputs(tmp: Path, command) -> dict[str, Path]:
    """A file (with junk bytes) for every input option; the patrol folder of ``map --patrols`` as its files."""
    paths = {}
    for p in _path_params(command):
        opt = p.opts[0]
        if opt in OUTPUT_OPTIONS:
            continue
        if opt == "--patrols":
            folder = tmp / "patrols"
            folder.mkdir()
            for name in ("patrol_routes.geojson", "patrol_schedule.csv"):
                (folder / name).write_text(f"junk {name}\n")
            paths[opt] = folder
            continue
        path = tmp / f"{p.name}.csv"
        path.write_text(f"junk for {opt}\n")
        paths[opt] = path
    return paths


#: Values for required options that are not paths (backtest's as-of dates).
REQUIRED_VALUES = {"--from": "2026-01-05", "--to": "2026-02-02"}


def _args(name: str, command, inputs: dict[str, Path], outputs: dict[str, Path]) -> list[str]:
    args = [name]
    for p in command.params:
        opt = p.opts[0]
        if p.param_type_name == "argument":  # a positional: run's SCENARIO.toml (input), share's DIR (output)
            args.append(str(outputs[opt] if opt in outputs else inputs[opt]))
        elif opt in outputs:
            args += [opt, str(outputs[opt])]
        elif opt in inputs and p.required:
            args += [opt, str(inputs[opt])]
        elif p.required and opt in REQUIRED_VALUES:
            args += [opt, REQUIRED_VALUES[opt]]
    return args


@pytest.mark.parametrize(("command_name", "out_option", "in_option"), _conflict_cases())
def test_every_output_pointed_at_every_input_is_refused_before_any_work(
    tmp_path, hm, command_name, out_option, in_option
):
    command = _commands()[command_name]
    inputs = _dummy_inputs(tmp_path, command)
    target = inputs[in_option]
    if in_option == "--patrols":
        target = target / "patrol_routes.geojson"  # the file map reads from the folder
    outputs = {opt: tmp_path / "new" / opt.strip("-") for opt in OUTPUT_OPTIONS if opt == "--out"}
    outputs[out_option] = target
    args = _args(command_name, command, inputs, outputs)
    positional = {p.opts[0] for p in command.params if p.param_type_name == "argument"}
    if in_option not in args and in_option not in positional:  # an optional input: give it
        args += [in_option, str(inputs[in_option])]
    if command_name == "patrol" and "--targets" not in args:
        args += ["--targets", str(inputs["--targets"])]
    before = snapshot(tmp_path)
    result = hm(*args)
    param = next(p for p in command.params if p.opts[0] == in_option)
    line = refused(result, out_option, param.metavar if param.param_type_name == "argument" else in_option, "input")
    assert snapshot(tmp_path) == before, line  # the input's bytes, and nothing created
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command_name", ["threat", "coverage", "patrol"])
def test_an_output_folder_holding_an_input_is_refused(tmp_path, hm, command_name):
    command = _commands()[command_name]
    inputs = _dummy_inputs(tmp_path, command)
    args = _args(command_name, command, inputs, {"--out": tmp_path})
    if command_name == "patrol":
        args += ["--targets", str(inputs["--targets"])]
    before = snapshot(tmp_path)
    refused(hm(*args), "--out", "the output folder holds the", "input")
    assert snapshot(tmp_path) == before


def test_symlinks_hard_links_and_dot_dot_are_seen_through(tmp_path, hm):
    (tmp_path / "sub").mkdir()
    defenders = tmp_path / "defenders.csv"
    defenders.write_bytes((DEMO / "defenders.csv").read_bytes())
    link = tmp_path / "routes.geojson"
    link.symlink_to(defenders)
    hard = tmp_path / "hard.geojson"
    os.link(defenders, hard)
    before = snapshot(tmp_path)
    for out in (link, hard, tmp_path / "sub" / ".." / "defenders.csv"):
        result = hm("nearest", *WALK, "--defenders", defenders, "--havens", DEMO / "havens.geojson", "--out", out)
        refused(result, "--out", "is the --defenders input")
    assert snapshot(tmp_path) == before and link.is_symlink()


def test_two_outputs_on_one_path_and_the_alerts_json_beside_the_csv(tmp_path, hm):
    out = tmp_path / "routes.geojson"
    refused(hm("nearest", *WALK, *POINTS, "--out", out, "--map", out), "--map", "same path as --out")
    incidents = tmp_path / "alerts.json"  # alerts --out alerts.csv writes alerts.json beside it
    incidents.write_text("{}")
    args = ("alerts", *WALK, "--incidents", incidents, "--defenders", DEMO / "defenders.csv")
    refused(hm(*args, "--out", tmp_path / "alerts.csv"), "its .json", "--incidents input")
    assert incidents.read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == ["alerts.json"]


def test_demo_refuses_to_write_over_its_own_scenario(tmp_path, hm):
    refused(hm("demo", "--out", DEMO), "--out", "holds the demo scenario input")
    link = tmp_path / "demo-link"
    link.symlink_to(DEMO, target_is_directory=True)
    refused(hm("demo", "--out", link), "holds the demo scenario")


def test_check_paths_library_function(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("x")
    _io.check_paths({"--in": a, "--none": None}, {"--out": tmp_path / "b.csv", "--map": None})  # fine
    with pytest.raises(InputError, match="is the --in input"):
        _io.check_paths({"--in": [tmp_path / "other.csv", a]}, {"--out": a})
    with pytest.raises(InputError, match="lies inside the --out output folder"):
        _io.check_paths({}, {"--out": tmp_path / "o", "--map": tmp_path / "o" / "m.html"}, folders=["--out"])
    with pytest.raises(InputError, match="lies inside the --in input folder"):
        _io.check_paths({"--in": tmp_path}, {"--out": tmp_path / "new.csv"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


# =========================================================================== 5. a command owns its output folder
def test_output_folder_swaps_in_whole_keeps_others_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    owns = ("a.csv", "b.csv", "gpx/*.gpx")
    with _io.output_folder(target, owns) as stage:
        assert stage.parent == tmp_path and not target.exists()  # written aside
        _io.write_text(stage / "a.csv", "1")
        _io.write_text(stage / "b.csv", "1")
        _io.write_text(stage / "gpx" / "u_day-1.gpx", "1")
        _io.write_text(stage / "gpx" / "u_day-2.gpx", "1")
    assert snapshot(target) == {"a.csv": b"1", "b.csv": b"1", "gpx/u_day-1.gpx": b"1", "gpx/u_day-2.gpx": b"1"}
    (target / "notes.txt").write_text("mine")  # a user's file in the folder
    with _io.output_folder(target, owns) as stage:
        _io.write_text(stage / "a.csv", "2")
        _io.write_text(stage / "gpx" / "u_day-1.gpx", "2")
    assert snapshot(target) == {"a.csv": b"2", "gpx/u_day-1.gpx": b"2", "notes.txt": b"mine"}
    (target / "gpx" / "mine").mkdir()  # a user's folder in a folder the run writes into stays
    with _io.output_folder(target, owns) as stage:
        _io.write_text(stage / "a.csv", "2")
    assert snapshot(target) == {"a.csv": b"2", "notes.txt": b"mine"} and (target / "gpx" / "mine").is_dir()
    (target / "gpx" / "mine").rmdir()
    with _io.output_folder(target, owns) as stage:  # no GPX this time: the emptied gpx/ goes too
        _io.write_text(stage / "a.csv", "2")
        _io.write_text(stage / "gpx" / "u_day-1.gpx", "2")
    with _io.output_folder(target, owns) as stage:
        _io.write_text(stage / "a.csv", "2")
    assert not (target / "gpx").exists()
    with _io.output_folder(target, owns) as stage:
        _io.write_text(stage / "a.csv", "2")
        _io.write_text(stage / "gpx" / "u_day-1.gpx", "2")
    before = snapshot(target)
    with pytest.raises(RuntimeError), _io.output_folder(target, owns) as stage:
        _io.write_text(stage / "a.csv", "3")
        raise RuntimeError("the run failed half-way")
    assert snapshot(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (target / "gpx").rename(tmp_path / "moved")
    (target / "gpx").write_text("in the way")
    with pytest.raises(InputError, match="is a file, not a folder"), _io.output_folder(target, owns):
        pass


def _closure(tmp: Path) -> Path:
    """A no-go polygon over central Helsinki (within the demo network)."""
    path = tmp / "closures.geojson"
    area = shapely.Point(24.946, 60.1755).buffer(0.002)
    gpd.GeoDataFrame({"id": ["c1"]}, geometry=[area], crs=4326).to_file(path)
    return path


def test_coverage_rerun_without_closures_leaves_no_closures_impact(tmp_path, hm):
    out = tmp_path / "cov"
    args = ("coverage", *WALK, *POINTS, "--minutes", "5,10", "--out", out)
    assert hm(*args, "--closures", _closure(tmp_path)).code == 0
    assert (out / "closures_impact.csv").exists()
    result = hm(*args)
    assert result.code == 0, result.err
    assert not (out / "closures_impact.csv").exists()
    names = sorted(snapshot(out))
    assert names == ["coverage.csv", "coverage.json", "manifest.json", "n_minus_1.csv", "service_areas.geojson"]
    assert json.loads((out / "coverage.json").read_text())["cost_model"]["closures"] is None


def test_threat_rerun_without_defenders_or_scan_leaves_no_alerts_or_clusters(tmp_path, hm):
    out = tmp_path / "threat"
    args = ("threat", *WALK, "--incidents", DEMO / "incidents.csv", "--as-of", "2026-11-20", "--out", out)
    first = hm(*args, "--defenders", DEMO / "defenders.csv", "--cluster-permutations", "99")
    assert first.code == 0, first.err
    assert {"alerts.csv", "alerts.json", "clusters.geojson"} <= set(snapshot(out))
    second = hm(*args, "--cluster-permutations", "0")
    assert second.code == 0, second.err
    assert not {"alerts.csv", "alerts.json", "clusters.geojson"} & set(snapshot(out))
    assert {"edge_risk.geojson", "hotspots.geojson", "threat_map.html"} <= set(snapshot(out))


def test_patrol_rerun_with_fewer_days_leaves_no_old_gpx(tmp_path, hm):
    out = tmp_path / "patrol"
    args = ("patrol", *WALK, "--bases", DEMO / "bases.csv", "--targets", DEMO / "targets.csv")
    args += ("--units", "2", "--shift-minutes", "45", "--iterations", "30", "--out", out)
    assert hm(*args, "--days", "2").code == 0
    assert {"gpx/unit-1_day-1.gpx", "gpx/unit-1_day-2.gpx"} <= set(snapshot(out))
    assert hm(*args, "--days", "1").code == 0
    gpx = sorted(p for p in snapshot(out) if p.startswith("gpx/"))
    assert gpx and all(p.endswith("_day-1.gpx") for p in gpx)
    assert json.loads((out / "patrol_summary.json").read_text())["days"] == 1


def test_a_run_failing_after_the_network_loaded_leaves_the_folder_as_it_was(tmp_path, hm):
    out = tmp_path / "cov"
    args = ("coverage", *WALK, *POINTS, "--minutes", "5", "--out", out)
    assert hm(*args).code == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    risk = tmp_path / "risk.csv"  # readable, but its edges are not this network's: found after the load
    risk.write_text("u,v,key,risk\n1,2,0,0.5\n")
    result = hm(*args, "--risk", risk)
    refused(result, "risk.csv", "no edge u=1, v=2", quiet=False, loaded=True)
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["cov", "risk.csv"]


# =========================================================================== 7. file modes follow the umask
UMASK_RUN = """
import os, sys
os.umask(int(sys.argv[1], 8))
from havenmap.cli import execute
sys.exit(execute(sys.argv[2:]))
"""


def _run_with_umask(umask: int, *args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", UMASK_RUN, f"{umask:o}", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.parametrize("umask", [0o077, 0o022, 0o000], ids=["umask077", "umask022", "umask000"])
def test_file_modes_follow_the_umask_and_sensitive_files_stay_owner_only(tmp_path, umask):
    routes = tmp_path / "new" / "routes.geojson"  # routes start at defenders: private, and so its new folder
    page = tmp_path / "maps" / "routes.html"  # aggregated defenders, but the demo's safe houses: private too
    proc = _run_with_umask(umask, "nearest", *WALK, *POINTS, "--out", routes, "--map", page)
    assert proc.returncode == 0, proc.stderr
    assert mode(routes) == 0o600 & ~umask and mode(routes.parent) == 0o700 & ~umask
    assert mode(page) == 0o600 & ~umask and mode(page.parent) == 0o700 & ~umask
    if umask == 0o000:  # what matters there: private files and their new folder stay owner-only
        return
    threat = tmp_path / "threat"
    args = ("threat", *WALK, "--incidents", DEMO / "incidents.csv", "--cluster-permutations", "0", "--out", threat)
    proc = _run_with_umask(umask, *args, "--defenders", DEMO / "defenders.csv")
    assert proc.returncode == 0, proc.stderr
    assert mode(threat / "alerts.csv") == mode(threat / "alerts.json") == 0o600 & ~umask
    assert mode(threat / "edge_risk.geojson") == 0o666 & ~umask
    assert mode(threat) == 0o700 & ~umask  # it holds the alerts
    for path in (tmp_path, *tmp_path.rglob("*")):  # never looser than the umask allows
        assert not mode(path) & umask, path
    assert not list(tmp_path.rglob("*.part"))  # no temporary folder left behind


# =========================================================================== 8. nothing raw reaches the terminal
ESCAPES = ("\x1b]0;pwned\x07", "\x1b[2J", "\u202eevil")


def test_ids_with_terminal_escapes_are_printed_escaped(tmp_path, hm):
    frame = pd.read_csv(DEMO / "defenders.csv", dtype=str)
    frame.loc[frame["id"] == "D049", "id"] = ESCAPES[0]  # the offshore defenders are named in warnings
    frame.loc[frame["id"] == "D050", "id"] = ESCAPES[1]
    frame.loc[0, "id"] = ESCAPES[2]
    defenders = tmp_path / "defenders.csv"
    frame.to_csv(defenders, index=False)
    result = hm("nearest", *WALK, "--defenders", defenders, "--havens", DEMO / "havens.geojson", "-o", tmp_path / "r")
    assert result.code == 0, result.err
    text = result.out + result.err
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b]0;pwned\\x07" in text and "\\x1b[2J" in result.out  # shown, harmlessly (in 'Unreachable')
    frame.loc[1, "id"] = ESCAPES[1]  # a repeated id: the error names it
    frame.to_csv(defenders, index=False)
    line = refused(hm("nearest", *WALK, "--defenders", defenders, "--havens", DEMO / "havens.geojson", "-o", "x"))
    assert "\\x1b[2J" in line
    line = refused(hm("nearest", *WALK, "--defenders", tmp_path / "\x1b[2J.csv", "--havens", defenders, "-o", "x"))
    assert "\\x1b[2J.csv" in line and "\x1b" not in line


def test_printable_and_listing_helpers():
    assert _io.printable("a\tb\nc\x9bd\udcff") == "a\\x09b\\x0ac\\x9bd\\udcff"
    assert _io.printable("x" * 50, limit=10) == "x" * 10 + "… (40 more characters)"
    assert listing(["a", "b", "c"]) == "a, b, c"
    assert listing(range(50_289), 3) == "0, 1, 2 and 50,286 more"
    assert listing([]) == "" and listing(["x y"], quote=True) == "'x y'"


def test_long_lists_are_shortened_on_screen(tmp_path, hm):
    rng = np.random.default_rng(5)
    n = 3000
    lat = np.where(np.arange(n) % 2 == 0, 60.17, 59.0) + rng.uniform(0, 0.005, n)  # half far offshore
    frame = pd.DataFrame({"id": [f"defender-with-a-long-id-{i:05d}" for i in range(n)], "latitude": lat})
    frame["longitude"] = 24.945 + rng.uniform(0, 0.005, n)
    frame.to_csv(tmp_path / "d.csv", index=False)
    result = hm("nearest", *WALK, "-d", tmp_path / "d.csv", "--havens", DEMO / "havens.geojson", "-o", tmp_path / "r")
    assert result.code == 0, result.err
    lines = (result.out + result.err).splitlines()
    assert max(map(len, lines)) < _io.MAX_PRINTED_CHARS + 100
    unreachable = next(line for line in lines if line.startswith("Unreachable ("))
    count = int(unreachable.split("(")[1].split(")")[0])
    assert count >= 1500 and unreachable.endswith(f" and {count - 20:,} more")


# =========================================================================== 9. negative edge lengths
@pytest.fixture(scope="module")
def demo_graph():
    from havenmap.network import load_network

    return load_network(NET, "walk").to_networkx()


def _graphml(graph, path: Path, **edge_values) -> Path:
    import osmnx as ox

    g = graph.copy()
    u, v, k = sorted(g.edges(keys=True))[10]
    g.edges[u, v, k].update(edge_values)
    ox.save_graphml(g, path)
    return path


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"length": -15.0}, ["length '-15.0' is negative"]),
        ({"travel_time": float("nan")}, ["travel_time 'nan' is not a number"]),
        ({"length": float("inf")}, ["length 'inf' is infinite"]),
    ],
)
def test_graphml_with_a_bad_edge_length_or_time_is_refused_naming_the_file_and_edge(
    tmp_path, hm, demo_graph, values, words
):
    path = _graphml(demo_graph, tmp_path / "city.graphml", **values)
    result = hm("nearest", "--network", path, *POINTS, "--out", tmp_path / "r.geojson")
    refused(result, "city.graphml", "edge (u=", *words, quiet=False, loaded=True)
    assert not (tmp_path / "r.geojson").exists()


def test_from_graph_refuses_negative_lengths(demo_graph):
    from havenmap.errors import NetworkError
    from havenmap.network import from_graph

    g = demo_graph.copy()
    u, v, k = next(iter(g.edges(keys=True)))
    g.edges[u, v, k]["length"] = -1.0
    with pytest.raises(NetworkError, match=r"edge \(u=.*length '-1.0' is negative"):
        from_graph(g)
    g.edges[u, v, k]["length"] = 0.0  # zero is a length (two nodes at one place)
    assert from_graph(g).edge_length.min() == 0.0


def test_a_truncated_graphml_is_named(tmp_path, hm, demo_graph):
    path = _graphml(demo_graph, tmp_path / "city.graphml")
    path.write_bytes(path.read_bytes()[:5000])
    result = hm("nearest", "--network", path, *POINTS, "--out", tmp_path / "r.geojson")
    refused(result, "city.graphml: cannot read it as an osmnx GraphML", quiet=False, loaded=True)


# =========================================================================== 4. patrol time limit and days
SOLVE_140 = """
import sys, time
import numpy as np
from havenmap import _vrp
rng = np.random.default_rng(0)
n, vehicles = 300, 140
xy = rng.uniform(0, 5000, (n + 1, 2))
duration = np.ceil(np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))).astype(np.int64)
cut_off = rng.choice(np.arange(1, n + 1), 15, replace=False)  # targets no road reaches
duration[cut_off, :] = _vrp.UNREACHABLE
duration[:, cut_off] = _vrp.UNREACHABLE
np.fill_diagonal(duration, 0)
shift = np.full(vehicles, 480 * 600)
prize = _vrp.lexicographic_prizes(rng.integers(1, 11, n).astype(float), _vrp.cost_bound(duration, duration, shift))
inst = _vrp.Instance(duration=duration, cost=duration.copy(), n_bases=1, service=np.full(n, 3000),
    tw_early=np.zeros(n, np.int64), tw_late=np.full(n, _vrp.UNREACHABLE), prize=prize,
    vehicle_base=np.zeros(vehicles, np.int64), vehicle_shift=shift, xy=xy)
start = time.perf_counter()
result = _vrp.solve_pyvrp(inst, time_limit_s=1.0, max_iterations=None)
assert all(_vrp.route_feasible(inst, v, r) for v, r in enumerate(result.routes))
print(time.perf_counter() - start, sum(map(len, result.routes)))
"""


def test_pyvrp_time_limit_holds_for_140_vehicles_with_unreachable_targets():
    # before the fix PyVRP's penalised costs overflowed int64 here and its local search never ended
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", SOLVE_140], capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode == 0, proc.stderr
    seconds, visited = proc.stdout.split()
    assert float(seconds) < 1.0 + 0.5 and int(visited) > 200


def test_penalised_costs_cannot_overflow():
    from havenmap import _vrp

    n, vehicles, horizon = 10_000, 140, 7 * 24 * 3600 * 10  # a week's shift in ticks
    shift = np.full(vehicles, horizon - 1)
    inst = _vrp.Instance(
        duration=np.zeros((1, 1), dtype=np.int64),  # the penalty cap depends on sizes and the horizon only
        cost=np.zeros((1, 1), dtype=np.int64),
        n_bases=1,
        service=np.full(n, horizon),
        tw_early=np.zeros(n, np.int64),
        tw_late=np.full(n, _vrp.UNREACHABLE),
        prize=np.full(n, 10**12),
        vehicle_base=np.zeros(vehicles, np.int64),
        vehicle_shift=shift,
    )
    # every stop reached at the horizon and served for the longest service: the largest time warp possible
    worst_warp = (n + vehicles) * (horizon + horizon)
    assert _vrp._max_penalty(inst) * worst_warp < 2**63 / 4


def test_patrol_with_140_units_keeps_its_time_limit(tmp_path, aguascalientes_drive):
    net = aguascalientes_drive
    rng = np.random.default_rng(1)
    edges = rng.integers(0, net.n_edges, 300)
    pts = shapely.line_interpolate_point(net.edge_geometries(edges), rng.uniform(0.05, 0.95, 300), normalized=True)
    targets = gpd.GeoDataFrame(
        {"id": [f"T{i:03d}" for i in range(300)], "priority": rng.integers(1, 11, 300), "service_minutes": 3},
        geometry=pts,
        crs=net.crs,
    ).to_crs(4326)
    targets.assign(latitude=targets.geometry.y, longitude=targets.geometry.x).drop(columns="geometry").to_csv(
        tmp_path / "targets.csv", index=False
    )
    nodes = np.random.default_rng(1002).choice(net.n_nodes, 2, replace=False)
    pd.DataFrame(
        {"id": ["B0", "B1"], "longitude": net.node_lonlat[nodes, 0], "latitude": net.node_lonlat[nodes, 1]}
    ).to_csv(tmp_path / "bases.csv", index=False)
    args = ["patrol", "-n", shared_file("aguascalientes.osm.bz2"), "--bases", tmp_path / "bases.csv"]
    args += ["--targets", tmp_path / "targets.csv", "--units", "140", "--time-limit", "1", "--iterations", "100000"]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "havenmap.cli", *map(str, args), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "patrol_summary.json").read_text())
    solve_s = json.loads((tmp_path / "out" / "manifest.json").read_text())["timings"]["patrol"]["solve_s_per_day"]
    assert solve_s[0] < 1.0 + 0.5, solve_s  # wall-clock times live in the manifest, not in the outputs
    assert summary["per_day"][0]["targets_visited"] > 200
    assert time.perf_counter() - start < 120


def test_days_beyond_a_year_are_refused_up_front(tmp_path, hm):
    out = tmp_path / "patrol"
    base = ("patrol", *WALK, "--bases", DEMO / "bases.csv", "--targets", DEMO / "targets.csv", "--out", out)
    refused(hm(*base, "--days", "10000"), "--days 10000", "366")
    refused(hm(*base, "--days", "0"), "--days 0")
    assert list(tmp_path.iterdir()) == []


# =========================================================================== 6. dates that are missing
def _without(column: str, tmp: Path, name: str = "incidents.csv") -> Path:
    frame = pd.read_csv(DEMO / "incidents.csv", dtype=str)
    path = tmp / name
    frame.drop(columns=[column]).to_csv(path, index=False)
    return path


def test_alerts_on_an_acled_file_without_event_date_is_an_error(tmp_path, hm):
    incidents = _without("event_date", tmp_path)
    args = ("alerts", *WALK, "--incidents", incidents, "--defenders", DEMO / "defenders.csv")
    line = refused(hm(*args, "--as-of", "2026-11-20", "--out", tmp_path / "a.csv"), "no incident has a date")
    assert "event_date" in line
    refused(hm(*args, "--out", tmp_path / "a.csv"), "no dates", "event_date", quiet=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["incidents.csv"]


def test_alerts_on_a_ucdp_file_without_dates_is_an_error(tmp_path, hm):
    demo = pd.read_csv(DEMO / "incidents.csv", dtype=str)
    ucdp = pd.DataFrame(
        {
            "id": np.arange(len(demo)),
            "type_of_violence": 3,
            "latitude": demo["latitude"],
            "longitude": demo["longitude"],
            "best": 1,
        }
    )
    ucdp.to_csv(tmp_path / "ged.csv", index=False)
    args = ("alerts", *WALK, "--incidents", tmp_path / "ged.csv", "--defenders", DEMO / "defenders.csv")
    refused(hm(*args, "--as-of", "2026-11-20", "--out", tmp_path / "a.csv"), "no incident has a date", "date_start")


def test_every_incident_after_as_of_is_an_error_not_a_quiet_picture(tmp_path, hm):
    args = ("threat", *WALK, "--incidents", DEMO / "incidents.csv", "--as-of", "2000-01-01", "--out", tmp_path / "t")
    refused(hm(*args), "every incident is dated after the as-of date 2000-01-01", "--as-of")


def test_mostly_undated_incidents_in_memory_are_an_error():
    from havenmap import layers, threat

    inc = layers.read_incidents(DEMO / "incidents.csv")
    inc.loc[inc.index[: len(inc) * 2 // 3], "date"] = pd.NaT
    with pytest.raises(InputError, match="incidents have no date"):
        threat.weigh_incidents(inc, "2026-11-20")


# =========================================================================== 11. messages
def test_ragged_csv_row_names_the_row_and_both_counts(tmp_path, hm):
    path = tmp_path / "d.csv"
    path.write_text("id,latitude,longitude\nd1,60.17,24.94\nd2,60.17,24.94,oops\n")
    line = refused(hm("nearest", *WALK, "-d", path, "--havens", DEMO / "havens.geojson", "-o", tmp_path / "r"))
    assert "d.csv: row 2 has 4 fields, the header has 3" in line


def test_nan_is_not_a_number_and_na_is_an_id(tmp_path, hm):
    path = tmp_path / "d.csv"
    path.write_text("id,latitude,longitude\nNA,60.17,24.94\nd2,NaN,24.94\n")
    line = refused(hm("nearest", *WALK, "-d", path, "--havens", DEMO / "havens.geojson", "-o", tmp_path / "r"))
    assert "row 2, id 'd2', column 'latitude': 'NaN' is not a number" in line
    from havenmap import layers

    path.write_text("id,latitude,longitude\nNA,60.17,24.94\n")
    assert list(layers.read_defenders(path)["id"]) == ["NA"]


def test_a_geopackage_with_several_layers_needs_layer(tmp_path, hm):
    gpkg = tmp_path / "people.gpkg"
    defenders = pd.read_csv(DEMO / "defenders.csv")
    points = gpd.GeoDataFrame(defenders, geometry=gpd.points_from_xy(defenders.longitude, defenders.latitude), crs=4326)
    points.drop(columns=["latitude", "longitude"]).to_file(gpkg, layer="defenders")
    points.iloc[:3].to_file(gpkg, layer="visitors")
    args = ("nearest", *WALK, "--defenders", gpkg, "--havens", DEMO / "havens.geojson", "--out", tmp_path / "r")
    line = refused(hm(*args))
    assert "people.gpkg: holds 2 layers ('defenders', 'visitors'); choose one with --points-layer" in line
    refused(hm(*args, "--points-layer", "staff"), "has no layer 'staff'", "'defenders', 'visitors'")
    result = hm(*args, "--points-layer", "defenders")
    assert result.code == 0, result.err
    assert "48 of 50" in result.out


def _numeric_options() -> list[tuple[str, str]]:
    return [
        (name, p.opts[0])
        for name, command in _commands().items()
        for p in command.params
        if p.type_descriptor.annotation in (float, float | None) and p.callback is not None
    ]


@pytest.mark.parametrize(("command_name", "option"), _numeric_options())
@pytest.mark.parametrize("value", ["nan", "-1"])
def test_bad_numbers_are_option_errors_before_any_work(tmp_path, hm, command_name, option, value):
    result = hm(command_name, option, value, "--out", tmp_path / "o")
    line = refused(result, f"{option} {value}")
    if value == "nan":
        assert "nan is not a number" in line
    assert list(tmp_path.iterdir()) == []


def test_no_walk_roads_suggests_drive_and_no_roads_says_so(tmp_path, hm):
    osm = tmp_path / "motorway.osm"
    osm.write_text(
        "<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6'>\n"
        "<node id='1' lat='60.17' lon='24.94'/><node id='2' lat='60.18' lon='24.95'/>\n"
        "<way id='10'><nd ref='1'/><nd ref='2'/><tag k='highway' v='motorway'/></way>\n</osm>\n"
    )
    args = ("nearest", "--network", osm, *POINTS, "--out", tmp_path / "r.geojson")
    line = refused(hm(*args, "--network-type", "walk"), "motorway.osm", quiet=False, loaded=True)
    assert "is a 'walk' road; try --network-type drive" in line
    osm.write_text(osm.read_text().replace("highway", "railway"))
    refused(hm(*args), "holds no roads", quiet=False, loaded=True)


def test_units_profile_on_a_graphml_names_the_real_mismatch(tmp_path, hm, demo_graph):
    graphml = _graphml(demo_graph, tmp_path / "city.graphml")
    units = tmp_path / "units.csv"
    units.write_text("unit,base_id,shift_minutes,profile\nu1,B1,60,walk\n")
    args = ("patrol", "--network", graphml, "--bases", DEMO / "bases.csv", "--targets", DEMO / "targets.csv")
    line = refused(hm(*args, "--units", units, "--out", tmp_path / "p"), "units.csv", quiet=False)  # not loaded
    assert "graph file (GraphML) used as given" in line and "leave the profile blank" in line


def test_usage_errors_are_one_line(tmp_path, hm):
    for args, words in (
        (("nearest", *WALK, *POINTS, "--k", "0", "--out", tmp_path / "r"), ["--k"]),
        (("patrol", *WALK, "--bases", DEMO / "bases.csv", "--days", "0", "--out", tmp_path / "p"), ["--days 0"]),
        (("nearest", "--bogus", "1"), ["no such option: --bogus", "havenmap nearest --help"]),
        (("coverage", *WALK), ["missing option '--defenders'"]),
        (("nearest", *WALK, *POINTS, "--cost", "money", "--out", tmp_path / "r"), ["'money' is not one of"]),
        (("bogus",), ["no such command 'bogus'"]),
    ):
        refused(hm(*args), *words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command_name", sorted(_commands()))
def test_every_command_gives_one_line_for_an_unknown_option(hm, command_name):
    refused(hm(command_name, "--no-such-option"), "no such option: --no-such-option", f"havenmap {command_name}")


def test_errors_subclass_the_matching_builtin():
    from havenmap.errors import HavenmapError, InfeasibleError, InputError, NetworkError, OffNetworkError

    for cls in (InputError, NetworkError, InfeasibleError, OffNetworkError):
        assert issubclass(cls, HavenmapError) and issubclass(cls, ValueError)
