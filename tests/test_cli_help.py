"""The planner's command line (issue 13): help that reads like the tool, and bad inputs found before the network.

Help is read through the real command line (in this process); the fail-fast cases check that
a bad input file fails without the network being loaded at all, and, on a large synthetic
``.osm.pbf``, in a small fraction of the time loading that network takes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer

from havenmap import cli
from havenmap.scenario import demo_dir

from .conftest import REPO

DEMO = demo_dir()


def run(capsys, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.execute([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def commands() -> dict:
    return typer.main.get_command(cli.app).commands


def option_blocks(help_text: str) -> dict[str, str]:
    """Each option's help entry (its wrapped lines joined), by long option name."""
    blocks: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        found = re.match(r"^  (?:-\w, )?(--[\w-]+)", line)
        if found:
            current = found.group(1)
            blocks[current] = line.strip()
        elif current and line.startswith("    "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return blocks


# ---------------------------------------------------------------------- start-up
def test_the_command_line_starts_without_the_map_report_and_siting_libraries():
    """`import havenmap` is lazy: a routing command does not import folium, jinja2, networkx or the MILP solver."""
    heavy = ("offlinefolium", "folium", "jinja2", "networkx", "scipy.optimize", "havenmap.maps", "havenmap.siting")
    code = f"import sys, havenmap.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""


def test_every_public_name_of_the_package_resolves():
    import havenmap

    for name in havenmap.__all__:
        assert getattr(havenmap, name) is not None, name
    assert set(havenmap.__all__) <= set(dir(havenmap))
    with pytest.raises(AttributeError, match="no attribute 'nearest_haven'"):
        havenmap.nearest_haven  # noqa: B018 -- a misspelt name is an AttributeError, not an import


# ---------------------------------------------------------------------- help
def test_commands_are_listed_in_workflow_order_with_a_one_line_purpose(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    listed = re.findall(r"^  ([\w-]+)\s{2,}(.+)$", out.split("Commands:")[1], flags=re.M)
    names = [name for name, _ in listed]
    assert names == [c for c in cli.WORKFLOW if c in commands()]
    assert names[:4] == ["demo", "run", "verify", "threat"] and names[-1] == "download"
    for name, purpose in listed:
        assert purpose.endswith(".") and "..." not in purpose, (name, purpose)  # whole, on one line
    code, out, _ = run(capsys)  # no arguments: the same help
    assert code == 0 and "Commands:" in out


@pytest.mark.parametrize("name", sorted(commands()))
def test_help_shows_types_choices_and_defaults(capsys, name):
    code, out, err = run(capsys, name, "--help")
    assert code == 0 and not err
    assert "<bool>" not in out and "╭" not in out
    blocks = option_blocks(out)
    for param in commands()[name].params:
        if param.param_type_name == "argument":  # positional: named in the usage line
            assert param.metavar in out.splitlines()[0] or param.metavar in out, (name, param.metavar)
            continue
        entry = blocks[param.opts[0]]
        if param.is_flag:
            assert re.match(rf"^(-\w, )?{param.opts[0]}\s{{2,}}", entry), entry  # a plain flag, no placeholder
            continue
        assert re.search(r"<[\w |,]+>|\[[\w|]+\]", entry.split("  ")[0]), entry  # a type or the choices
        if param.default is not None and not param.required:
            assert "[default: " in entry, entry
    if "--cost" in blocks:
        assert blocks["--cost"].startswith("--cost [time|length]")
    if "--network-type" in blocks:
        assert blocks["--network-type"].startswith("--network-type [drive|walk]")
    if "--shift-minutes" in blocks:
        assert "[default: 480.0]" in blocks["--shift-minutes"]


def test_one_name_per_idea_alpha_is_the_danger_weight():
    for name, command in commands().items():
        for param in command.params:
            if param.opts[0] == "--alpha":
                assert "Danger weight" in param.help, name
    alerts = {p.opts[0] for p in commands()["alerts"].params}
    assert "--p-value" in alerts and "--alpha" not in alerts
    assert "--alpha" in {p.opts[0] for p in commands()["patrol"].params}  # was --risk-alpha


# ---------------------------------------------------------------------- inputs before the network
def _never_load(*args, **kwargs):
    raise AssertionError("the network was loaded before the inputs were checked")


BAD_CSV = "id,latitude,longitude\nd1,60.17,24.94\nd2,sixty,24.94\n"


def _bad_input_cases(tmp: Path) -> list[tuple[str, list[object], str]]:
    bad = tmp / "bad.csv"
    bad.write_text(BAD_CSV)
    net = ["--network", DEMO / "helsinki.osm.pbf", "--network-type", "walk"]
    points = ["--defenders", DEMO / "defenders.csv", "--havens", DEMO / "havens.geojson"]
    bases = ["--bases", DEMO / "bases.csv"]
    undated = tmp / "undated.csv"
    pd.read_csv(DEMO / "incidents.csv").drop(columns="event_date").to_csv(undated, index=False)
    units = tmp / "units.csv"
    units.write_text("unit,base_id\nu1,NOWHERE\n")
    risk = tmp / "risk.csv"
    risk.write_text("u,v,key,risk\n1,2,0,-3\n")
    consent = tmp / "consent.csv"
    consent.write_text("id,latitude,longitude,consent\nd1,60.17,24.94,maybe\n")
    out = tmp / "out"
    demo_d, demo_h, targets = DEMO / "defenders.csv", DEMO / "havens.geojson", DEMO / "targets.csv"
    return [
        ("nearest", ["nearest", *net, "--defenders", bad, "--havens", demo_h, "-o", out], "sixty"),
        ("nearest --havens", ["nearest", *net, "--defenders", demo_d, "--havens", bad, "-o", out], "sixty"),
        ("nearest --risk", ["nearest", *net, *points, "--risk", risk, "-o", out], "negative"),
        ("coverage", ["coverage", *net, "--defenders", bad, "--havens", demo_h, "-o", out], "sixty"),
        ("coverage --closures", ["coverage", *net, *points, "--closures", bad, "-o", out], "sixty"),
        ("threat", ["threat", *net, "--incidents", bad, "-o", out], "sixty"),
        ("threat --as-of", ["threat", *net, "--incidents", undated, "--as-of", "2026-11-20", "-o", out], "has a date"),
        ("alerts", ["alerts", *net, "--incidents", DEMO / "incidents.csv", "--defenders", bad, "-o", out], "sixty"),
        ("patrol --targets", ["patrol", *net, *bases, "--targets", bad, "-o", out], "sixty"),
        ("patrol --units", ["patrol", *net, *bases, "--targets", targets, "--units", units, "-o", out], "NOWHERE"),
        ("patrol --defenders", ["patrol", *net, *bases, "--defenders", consent, "-o", out], "unknown consent"),
        ("map", ["map", *net, "--havens", bad, "-o", tmp / "m.html"], "sixty"),
    ]


def test_every_command_checks_its_input_files_before_loading_the_network(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_network", _never_load)
    for label, args, word in _bad_input_cases(tmp_path):
        code, _, err = run(capsys, *args)
        errors = [line for line in err.splitlines() if line.startswith("havenmap: error:")]
        assert code == 2 and len(errors) == 1 and word in errors[0], (label, err)
        assert "Traceback" not in err and "AssertionError" not in err, label
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.html").exists()


@pytest.fixture(scope="session")
def big_pbf(tmp_path_factory):
    """A synthetic street grid of about 270,000 road nodes (written once per session)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from synthetic_pbf import write_grid_pbf
    finally:
        sys.path.pop(0)
    path = tmp_path_factory.mktemp("big") / "country.osm.pbf"
    counts = write_grid_pbf(path, 300, shape=1, origin=(24.0, 60.0))
    assert counts["nodes"] > 250_000
    return path


def test_a_bad_defenders_file_fails_in_a_fraction_of_the_network_load(tmp_path, capsys, big_pbf):
    from havenmap.network import load_network

    start = time.perf_counter()
    net = load_network(big_pbf, "drive")
    load_s = time.perf_counter() - start
    lon, lat = net.node_lonlat[net.n_nodes // 2]
    bad = tmp_path / "defenders.csv"
    bad.write_text(f"id,latitude,longitude\nd1,{lat},{lon}\nd2,{lat},east\n")
    havens = tmp_path / "havens.csv"
    havens.write_text(f"id,latitude,longitude\nh1,{lat},{lon}\n")
    args = ["coverage", "--network", big_pbf, "--defenders", bad, "--havens", havens, "--out", tmp_path / "out"]
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        code, _, err = run(capsys, *args)
        timings.append(time.perf_counter() - start)
        assert code == 2 and "row 2" in err and "'east' is not a number" in err and "Loading" not in err
    ratio = min(timings) / load_s
    print(f"bad defenders file: {min(timings):.3f} s; network load: {load_s:.2f} s; ratio {ratio:.3f}")
    assert ratio < 0.2
    assert not (tmp_path / "out").exists()


def test_option_values_are_checked_before_the_files_are_read(tmp_path, capsys):
    code, _, err = run(capsys, "coverage", "--network", tmp_path / "missing.pbf", "--buffer-m", "-5")
    assert code == 2 and err.strip() == "havenmap: error: --buffer-m -5: give a distance in metres above 0"
    code, _, err = run(
        capsys, "nearest", "-n", tmp_path / "no.pbf", "-d", tmp_path / "no.csv", "--havens", "h", "-o", "o"
    )
    assert code == 2 and "no.pbf: network file not found" in err  # the network path itself first: it costs nothing
    np.testing.assert_equal(list(tmp_path.iterdir()), [])
