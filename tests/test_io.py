"""Output writing: atomic files, owner-only modes, compact GeoJSON, CSV formula injection defused."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from havenmap import _io


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out" / "report.json"
    with pytest.raises(TypeError):
        _io.write_json(target, {"bad": object()})
    assert not target.exists() and (not target.parent.exists() or list(target.parent.iterdir()) == [])
    with pytest.raises(RuntimeError), _io.atomic_path(target) as tmp:  # a writer failing half-way
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_private_files_are_owner_only(tmp_path):
    path = _io.write_text(tmp_path / "secret.txt", "x", private=True)
    assert path.stat().st_mode & 0o777 == 0o600
    assert _io.write_text(tmp_path / "open.txt", "x").stat().st_mode & 0o777 == 0o644


def test_csv_cells_that_would_run_as_formulas_are_defused(tmp_path):
    frame = pd.DataFrame(
        {
            "defender_id": ['=HYPERLINK("http://x")', "+1+2", "@SUM(A1)", "D1", "-3.5"],
            "score": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    back = pd.read_csv(_io.write_csv(tmp_path / "a.csv", frame), dtype=str)
    assert list(back["defender_id"]) == ['\'=HYPERLINK("http://x")', "'+1+2", "'@SUM(A1)", "D1", "-3.5"]
    assert frame["defender_id"].iat[0].startswith("=")  # the caller's frame is untouched


def test_geojson_is_wgs84_and_rounded(tmp_path):
    frame = gpd.GeoDataFrame(
        {"id": ["a"]}, geometry=[shapely.Point(500000.123456789, 6670000.987654321)], crs="EPSG:32635"
    )
    text = _io.write_geojson(tmp_path / "p.geojson", frame).read_text()
    back = gpd.read_file(tmp_path / "p.geojson")
    assert back.crs.to_epsg() == 4326
    x, y = back.geometry.iloc[0].coords[0]
    assert len(repr(x).split(".")[1]) <= 7 and len(repr(y).split(".")[1]) <= 7
    assert "e-" not in text


# ids that a spreadsheet would run as a formula, ids that look like numbers, and ids that already
# carry the guard's quote: every one must come back exactly through write_csv -> read_table
TRICKY_IDS = ["=cmd", "+1", "-x", "@y", "'=q", "''+z", "'5", "007", "-5", "\tTAB", "plain", "a,b", 'q"uote']


def test_our_tables_round_trip_every_id_exactly(tmp_path):
    frame = pd.DataFrame(
        {
            "defender_id": TRICKY_IDS,
            "haven_id": ["=h"] * len(TRICKY_IDS),
            "reason": ["+surge"] * len(TRICKY_IDS),
            "travel_time_s": range(len(TRICKY_IDS)),
        }
    )
    path = _io.write_csv(tmp_path / "coverage.csv", frame)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert raw["defender_id"].iloc[0] == "'=cmd" and raw["defender_id"].iloc[4] == "''=q"  # guarded for spreadsheets
    back = _io.read_table(path, "--coverage")
    assert back["defender_id"].tolist() == TRICKY_IDS
    assert back["haven_id"].tolist() == ["=h"] * len(TRICKY_IDS)
    assert back["reason"].tolist() == ["+surge"] * len(TRICKY_IDS)  # every text column, not only ids
    assert back["travel_time_s"].tolist() == list(range(len(TRICKY_IDS)))  # numbers stay numbers


def test_read_table_json_and_errors(tmp_path):
    path = _io.write_json(tmp_path / "alerts.json", {"as_of": "2026-11-20", "alerts": [{"defender_id": 7}]})
    assert _io.read_table(path, "--alerts")["defender_id"].tolist() == ["7"]
    with pytest.raises(_io.InputError, match=r"^--alerts .*missing.json: file not found"):
        _io.read_table(tmp_path / "missing.json", "--alerts")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(_io.InputError, match="cannot read it as JSON"):
        _io.read_table(tmp_path / "bad.json", "--alerts")
