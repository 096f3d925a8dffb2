"""Tests for havenmap.layers: readers, canonical columns, and one-line errors for bad input."""

from __future__ import annotations

import gzip
import math
import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import MultiPoint, Point, Polygon

from havenmap.errors import InputError
from havenmap.layers import (
    INCIDENT_COLUMNS,
    as_incidents,
    as_points,
    looks_swapped,
    read_bases,
    read_defenders,
    read_havens,
    read_incidents,
    read_points,
)

R_MERCATOR = 6378137.0  # EPSG:3857 sphere radius, metres
DATA = Path(__file__).resolve().parent / "data"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(func, *args, **kw) -> str:
    with pytest.raises(InputError) as info:
        func(*args, **kw)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def xy(gdf):
    return [(round(p.x, 9), round(p.y, 9)) for p in gdf.geometry]


# --------------------------------------------------------------------------- incidents: formats

ACLED = (DATA / "acled_sample.csv").read_text(encoding="utf-8")


def test_acled_canonical_columns_and_dtypes(tmp_path):
    gdf = read_incidents(write(tmp_path, "acled.csv", ACLED))
    assert list(gdf.columns[: len(INCIDENT_COLUMNS)]) == list(INCIDENT_COLUMNS)
    assert gdf.columns[-1] == "geometry"
    assert gdf.crs.to_epsg() == 4326
    assert pd.api.types.is_string_dtype(gdf["incident_id"])
    assert pd.api.types.is_datetime64_dtype(gdf["date"])
    assert gdf["fatalities"].dtype == np.int64
    assert gdf["geo_precision"].dtype == np.int64
    assert list(gdf["incident_id"]) == ["MEX101", "MEX102", "MEX103"]
    # ISO and ACLED's "16 March 2024" both parse
    assert list(gdf["date"]) == [pd.Timestamp(f"2024-03-{d}") for d in (15, 16, 17)]
    assert list(gdf["event_type"]) == ["Violence against civilians", "Protests", "Riots"]
    assert list(gdf["sub_event_type"]) == ["Attack", "Peaceful protest", "Mob violence"]
    assert list(gdf["fatalities"]) == [0, 3, 12]
    assert list(gdf["geo_precision"]) == [1, 2, 3]
    assert list(gdf["notes"]) == ["Journalist attacked, injured", "", "Crowd"]
    assert set(gdf["source"]) == {"acled"}
    # ACLED's own "source" column clashes with ours and is kept under another name
    assert list(gdf["source_original"]) == ["La Jornada", "Reforma", "Local"]
    assert list(gdf["admin1"]) == ["Aguascalientes"] * 3
    assert xy(gdf)[0] == (-102.2916, 21.8818)


UCDP = (DATA / "ucdp_ged_sample.csv").read_text(encoding="utf-8")


def test_ucdp_mapping(tmp_path):
    gdf = read_incidents(write(tmp_path, "ged.csv", UCDP))
    assert list(gdf["incident_id"]) == ["244657", "244658", "244659", "244660"]
    assert list(gdf["event_type"]) == [
        "state-based conflict",
        "non-state conflict",
        "one-sided violence",
        "5",  # unknown code: kept, not an error
    ]
    assert list(gdf["fatalities"]) == [4, 0, 7, 1]  # from "best"
    assert list(gdf["geo_precision"]) == [1, 2, 3, 3]  # where_prec 1, 2, 4, 7
    assert list(gdf["date"]) == [pd.Timestamp(d) for d in ("2017-01-01", "2017-01-02", "2017-01-05", "2017-01-06")]
    assert list(gdf["sub_event_type"]) == ["", "", "", ""]
    assert list(gdf["notes"]) == ["Clash", "", "Massacre", ""]
    assert set(gdf["source"]) == {"ucdp"}
    assert list(gdf["side_b"])[:2] == ["CJNG", "Sinaloa Cartel"]
    assert "date_end" in gdf.columns


def test_generic_incidents_without_id_or_date(tmp_path):
    path = write(tmp_path, "events.csv", "Latitude,Longitude,Event_Type\n21.1,-102.1,robbery\n21.2,-102.2,\n")
    gdf = read_incidents(path)
    assert list(gdf["incident_id"]) == ["1", "2"]  # data row numbers
    assert gdf["date"].isna().all()
    assert pd.api.types.is_datetime64_dtype(gdf["date"])
    assert list(gdf["event_type"]) == ["robbery", ""]
    assert list(gdf["fatalities"]) == [0, 0]
    assert list(gdf["geo_precision"]) == [1, 1]
    assert set(gdf["source"]) == {"csv"}


def test_incidents_from_geojson(tmp_path):
    src = gpd.GeoDataFrame(
        {"id": ["a", "b"], "date": ["2024-01-02", "2024-01-03"], "fatalities": [1, 0]},
        geometry=[Point(-102.3, 21.9), Point(-102.4, 21.8)],
        crs=4326,
    )
    path = tmp_path / "inc.geojson"
    src.to_file(path, driver="GeoJSON")
    gdf = read_incidents(path)
    assert list(gdf["incident_id"]) == ["a", "b"]
    assert list(gdf["date"]) == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    assert list(gdf["fatalities"]) == [1, 0]
    assert set(gdf["source"]) == {"file"}
    assert xy(gdf) == [(-102.3, 21.9), (-102.4, 21.8)]


def test_blank_fatalities_become_zero_with_warning(tmp_path):
    text = ACLED.replace(",0,Mexico", ",,Mexico").replace(",12,Mexico", ",,Mexico")
    path = write(tmp_path, "acled_blank.csv", text)
    with pytest.warns(UserWarning, match=r"acled_blank\.csv.*'fatalities'.*rows 1, 3") as record:
        gdf = read_incidents(path)
    assert list(gdf["fatalities"]) == [0, 3, 0]
    assert gdf["fatalities"].dtype == np.int64
    assert record[0].filename == __file__  # the warning points at the caller's line
    with pytest.warns(UserWarning, match="'fatalities' is blank in row 1;") as record:
        as_incidents(pd.DataFrame({"lat": [1.0], "lon": [1.0], "fatalities": [np.nan]}))
    assert record[0].filename == __file__


@pytest.mark.parametrize(("value", "row"), [("many", "row 2"), ("-1", "row 2"), ("2.5", "row 2")])
def test_bad_fatalities(tmp_path, value, row):
    text = ACLED.replace(",3,Mexico", f",{value},Mexico")
    message = error_of(read_incidents, write(tmp_path, "acled.csv", text))
    assert "acled.csv" in message and row in message and "'MEX102'" in message
    assert "'fatalities'" in message and value in message


def test_blank_date_is_an_error(tmp_path):
    text = ACLED.replace("MEX103,2024-03-17", "MEX103,")
    message = error_of(read_incidents, write(tmp_path, "acled.csv", text))
    assert "acled.csv: row 3, id 'MEX103', column 'event_date'" in message
    assert "blank" in message and "YYYY-MM-DD" in message


def test_unparseable_date_names_row_column_value_and_format(tmp_path):
    text = ACLED.replace("MEX101,2024-03-15", "MEX101,15/03/24").replace("MEX103,2024-03-17", "MEX103,soon")
    message = error_of(read_incidents, write(tmp_path, "acled.csv", text))
    assert "acled.csv: row 1, id 'MEX101', column 'event_date'" in message
    assert "'15/03/24'" in message and "YYYY-MM-DD" in message
    assert "(and 1 more row)" in message


def test_unknown_event_types_are_fine(tmp_path):
    path = write(tmp_path, "e.csv", "id,lat,lon,event_type\n1,1,1,alien landing\n")
    assert read_incidents(path)["event_type"].iloc[0] == "alien landing"


def test_forced_source_with_missing_columns(tmp_path):
    path = write(tmp_path, "notacled.csv", "id,lat,lon\n1,1,1\n")
    message = error_of(read_incidents, path, source="acled")
    assert "notacled.csv" in message and "'event_id_cnty'" in message and "'event_date'" in message


def test_as_incidents_accepts_dataframe_unchanged():
    df = pd.DataFrame({"lat": [10.0], "lon": [20.0], "date": ["2020-05-01"]})
    before = df.copy()
    gdf = as_incidents(df)
    pd.testing.assert_frame_equal(df, before)
    assert gdf["date"].iloc[0] == pd.Timestamp("2020-05-01")
    assert xy(gdf) == [(20.0, 10.0)]


# --------------------------------------------------------------------------- points: formats


def test_generic_csv_with_odd_case_columns(tmp_path):
    path = write(tmp_path, "defenders.csv", "ID,Lat,LNG,Name,group,note\n007,21.5,-102.5,Ana,A,x\n8,21.6,-102.6,,B,\n")
    gdf = read_defenders(path)
    assert list(gdf["id"]) == ["007", "8"]  # read as text: leading zeros kept
    assert pd.api.types.is_string_dtype(gdf["id"])
    assert list(gdf["name"]) == ["Ana", "8"]  # blank name falls back to the id
    assert list(gdf["group"]) == ["A", "B"]
    assert "ID" not in gdf.columns and "Name" not in gdf.columns
    assert gdf["Lat"].dtype == np.float64 and list(gdf["LNG"]) == [-102.5, -102.6]
    assert xy(gdf) == [(-102.5, 21.5), (-102.6, 21.6)]
    assert list(gdf.index) == [0, 1]


def test_explicit_columns_override(tmp_path):
    path = write(tmp_path, "p.csv", "code,id,northing_deg,easting_deg\n a ,99,1.5,2.5\n")
    gdf = read_points(path, id_column="code", lat_column="northing_deg", lon_column="easting_deg")
    assert list(gdf["id"]) == ["a"]  # stripped
    assert list(gdf["id_original"]) == ["99"]  # the file's own "id" column is not lost (read as text)
    assert xy(gdf) == [(2.5, 1.5)]


def test_havens_kind_and_name(tmp_path):
    path = write(
        tmp_path,
        "havens.csv",
        "id,lat,lon,name,kind,amenity\nh1,1,1,Embassy of X,embassy,\nh2,1,1,,,clinic\nh3,1,1,Chapel,,\n",
    )
    gdf = read_havens(path)
    assert list(gdf["name"]) == ["Embassy of X", "h2", "Chapel"]
    assert list(gdf["kind"]) == ["embassy", "clinic", "haven"]
    assert list(gdf.columns[:3]) == ["id", "name", "kind"]
    plain = read_havens(write(tmp_path, "h2.csv", "id,lat,lon\nq,1,1\n"))
    assert list(plain["name"]) == ["q"] and list(plain["kind"]) == ["haven"]


def test_tsv_and_gzip(tmp_path):
    assert xy(read_bases(write(tmp_path, "b.tsv", "id\tlat\tlon\nb1\t3\t4\n"))) == [(4.0, 3.0)]
    gz = tmp_path / "b.csv.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.write("id,lat,lon\nb1,5,6\n")
    assert xy(read_bases(gz)) == [(6.0, 5.0)]


def test_geojson_points(tmp_path):
    path = write(
        tmp_path,
        "h.geojson",
        '{"type":"FeatureCollection","features":['
        '{"type":"Feature","properties":{"id":"h1","amenity":"clinic"},'
        '"geometry":{"type":"Point","coordinates":[-102.3,21.9,1800]}},'
        '{"type":"Feature","properties":{"id":"h2"},'
        '"geometry":{"type":"MultiPoint","coordinates":[[-102.4,21.8]]}}]}',
    )
    gdf = read_havens(path)
    assert list(gdf["id"]) == ["h1", "h2"]
    assert list(gdf["kind"]) == ["clinic", "haven"]
    assert xy(gdf) == [(-102.3, 21.9), (-102.4, 21.8)]  # Z dropped, single-part MultiPoint taken
    assert not gdf.geometry.has_z.any()


def test_gpkg_in_web_mercator_is_reprojected(tmp_path):
    lonlat = [(-102.2916, 21.8818), (13.4050, 52.5200)]
    merc = [
        Point(
            R_MERCATOR * math.radians(lon),
            R_MERCATOR * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)),
        )
        for lon, lat in lonlat
    ]
    src = gpd.GeoDataFrame({"id": [1, 2], "name": ["a", "b"]}, geometry=merc, crs=3857)
    path = tmp_path / "pts.gpkg"
    src.to_file(path, driver="GPKG")
    gdf = read_points(path)
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf["id"]) == ["1", "2"]
    got = [(p.x, p.y) for p in gdf.geometry]
    np.testing.assert_allclose(got, lonlat, atol=1e-9)


def test_geoparquet_round_trip(tmp_path):
    src = gpd.GeoDataFrame(
        {"id": ["x", "y"], "capacity": [10, 20]},
        geometry=[Point(-102.3, 21.9), Point(-102.4, 21.8)],
        crs=4326,
    )
    path = tmp_path / "h.parquet"
    src.to_parquet(path)
    gdf = read_points(path)
    assert list(gdf["id"]) == ["x", "y"]
    assert list(gdf["capacity"]) == [10, 20]
    assert gdf.geometry.geom_equals(src.geometry).all()
    again = tmp_path / "again.geoparquet"
    gdf.to_parquet(again)
    back = read_points(again)
    assert back.geometry.geom_equals(gdf.geometry).all() and list(back["id"]) == ["x", "y"]


def test_plain_parquet_with_lat_lon(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"id": [1, 2], "latitude": [1.0, 2.0], "longitude": [3.0, 4.0]}).to_parquet(path)
    gdf = read_points(path)
    assert list(gdf["id"]) == ["1", "2"] and xy(gdf) == [(3.0, 1.0), (4.0, 2.0)]


def test_projected_csv_with_crs(tmp_path):
    # UTM zone 13N false easting/northing: the central meridian (-105°) at the equator is (500000, 0)
    path = write(tmp_path, "utm.csv", "id,easting,northing\nc,500000,0\n")
    gdf = read_points(path, crs="EPSG:32613")
    np.testing.assert_allclose([(p.x, p.y) for p in gdf.geometry], [(-105.0, 0.0)], atol=1e-9)
    assert gdf.crs.to_epsg() == 4326


def test_as_points_with_frames():
    df = pd.DataFrame({"id": ["a"], "lat": [1.0], "lon": [2.0]})
    before = df.copy()
    assert xy(as_points(df, kind="bases")) == [(2.0, 1.0)]
    pd.testing.assert_frame_equal(df, before)
    gdf = gpd.GeoDataFrame({"id": ["a"]}, geometry=[Point(0, 0)], crs=3857)
    assert xy(as_points(gdf)) == [(0.0, 0.0)]
    message = error_of(as_points, pd.DataFrame({"id": ["a", "a"], "lat": [1, 1], "lon": [1, 1]}), label="my frame")
    assert message.startswith("my frame: ") and "'a'" in message


# --------------------------------------------------------------------------- bad input


def test_file_not_found_unknown_extension_and_folder(tmp_path):
    assert "missing.csv" in error_of(read_points, tmp_path / "missing.csv")
    message = error_of(read_points, write(tmp_path, "pts.xlsx", "x"))
    assert "pts.xlsx" in message and "'.xlsx'" in message and "CSV" in message
    assert "folder" in error_of(read_points, tmp_path)


def test_damaged_files(tmp_path):
    message = error_of(read_points, write(tmp_path, "bad.geojson", "{not json"))
    assert "bad.geojson" in message and "GeoJSON" in message
    message = error_of(read_points, write(tmp_path, "ragged.csv", "id,lat,lon\n1,2,3\n4,5,6,7\n"))
    assert "ragged.csv" in message
    (tmp_path / "latin.csv").write_bytes("id,lat,lon,name\n1,2,3,Jos\xe9\n".encode("latin-1"))
    assert "UTF-8" in error_of(read_points, tmp_path / "latin.csv")


@pytest.mark.parametrize("text", ["", "id,lat,lon\n", "id,lat,lon\n,,\n,,\n"])
def test_empty_file(tmp_path, text):
    message = error_of(read_points, write(tmp_path, "empty.csv", text))
    assert "empty.csv" in message and "has no rows" in message


def test_empty_geojson(tmp_path):
    path = write(tmp_path, "none.geojson", '{"type":"FeatureCollection","features":[]}')
    assert "has no rows" in error_of(read_havens, path)


def test_missing_id_column(tmp_path):
    message = error_of(read_points, write(tmp_path, "noid.csv", "code,lat,lon\na,1,1\n"))
    assert "noid.csv" in message and "no id column" in message
    assert "'code', 'lat', 'lon'" in message  # columns found
    assert "'id'" in message and "--id" in message


def test_missing_lat_lon_columns(tmp_path):
    message = error_of(read_points, write(tmp_path, "nolat.csv", "id,north,east\na,1,1\n"))
    assert "nolat.csv" in message
    assert "no latitude column" in message and "'latitude', 'lat'" in message
    assert "no longitude column" in message and "'lng'" in message
    assert "'id', 'north', 'east'" in message
    message = error_of(read_points, write(tmp_path, "x.csv", "id,lat,lon\na,1,1\n"), lat_column="breite")
    assert "'breite'" in message and "not in the file" in message


def test_non_numeric_coordinate(tmp_path):
    path = write(tmp_path, "pts.csv", "id,lat,lon\na,1,1\nb,12°N,1\nc,1,x\nd,1,2\n")
    message = error_of(read_points, path)
    assert message.startswith(str(path) + ": row 2, id 'b', column 'lat'")
    assert "'12°N' is not a number" in message
    assert "(and 1 more row)" in message


def test_decimal_comma_is_named(tmp_path):
    message = error_of(read_points, write(tmp_path, "pts.csv", 'id,lat,lon\na,"21,88",1\n'))
    assert "row 1, id 'a', column 'lat'" in message and "'21,88'" in message and "decimal" in message


def test_blank_coordinate(tmp_path):
    message = error_of(read_points, write(tmp_path, "pts.csv", "id,lat,lon\na,1,1\nb,1,\n"))
    assert "row 2, id 'b', column 'lon'" in message and "blank" in message


def test_fully_blank_rows_are_skipped_but_rows_keep_their_numbers(tmp_path):
    path = write(tmp_path, "pts.csv", "id,lat,lon\na,1,1\n,,\nc,1,oops\n")
    assert "row 3, id 'c', column 'lon'" in error_of(read_points, path)
    ok = write(tmp_path, "ok.csv", "id,lat,lon\na,1,1\n,,\n\nc,2,2\n")
    assert list(read_points(ok)["id"]) == ["a", "c"]


def test_out_of_range_longitude(tmp_path):
    message = error_of(read_points, write(tmp_path, "pts.csv", "id,lat,lon\na,1,1\nb,45,200\n"))
    assert "pts.csv: row 2, id 'b', column 'lon'" in message
    assert "200" in message and "-180..180" in message
    assert "swapped" not in message


def test_whole_file_swapped(tmp_path):
    path = write(tmp_path, "swapped.csv", "id,lat,lon\na,-102.29,21.88\nb,-102.72,21.85\nc,-102.34,21.96\n")
    message = error_of(read_points, path)
    assert "swapped.csv: row 1, id 'a', column 'lat'" in message
    assert "(and 2 more rows)" in message
    assert "latitude and longitude look swapped" in message
    assert "swap the columns or pass --lat/--lon" in message
    # the suggested fix works
    fixed = read_points(path, lat_column="lon", lon_column="lat")
    assert xy(fixed)[0] == (-102.29, 21.88)


def test_one_swapped_row(tmp_path):
    path = write(tmp_path, "pts.csv", "id,lat,lon\na,21.88,-102.29\nb,-102.72,21.85\nc,21.9,-150\n")
    message = error_of(read_points, path)
    assert "row 2, id 'b', column 'lat'" in message
    assert "swapped in this row" in message


def test_metres_without_crs_suggest_crs(tmp_path):
    message = error_of(read_points, write(tmp_path, "utm.csv", "id,lat,lon\na,2420000,780000\n"))
    assert "row 1, id 'a', column 'lat'" in message and "2420000" in message and "--crs" in message


def test_bad_crs(tmp_path):
    message = error_of(read_points, write(tmp_path, "utm.csv", "id,x,y\na,1,1\n"), crs="EPSG:999999")
    assert "utm.csv" in message and "EPSG:999999" in message


def test_duplicate_ids(tmp_path):
    path = write(tmp_path, "dups.csv", "id,lat,lon\na,1,1\nb,1,1\na,1,1\nc,1,1\nb,1,1\na,1,1\n")
    message = error_of(read_points, path)
    assert "dups.csv" in message and "id 'a'" in message and "column 'id'" in message
    assert "rows 1, 3, 6" in message
    assert "(and 1 more repeated id)" in message


def test_blank_id(tmp_path):
    message = error_of(read_points, write(tmp_path, "ids.csv", "id,lat,lon,name\na,1,1,x\n  ,1,1,y\n,2,2,z\n"))
    assert "ids.csv: row 2, column 'id'" in message and "blank" in message and "(and 1 more row)" in message


def _features(geometries, ids):
    return gpd.GeoDataFrame({"id": ids}, geometry=geometries, crs=4326)


def test_polygon_feature_is_refused(tmp_path):
    square = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    path = tmp_path / "areas.gpkg"
    _features([Point(0, 0), square], ["p", "poly"]).to_file(path, driver="GPKG")
    message = error_of(read_havens, path)
    assert "areas.gpkg: feature 2, id 'poly', column 'geometry'" in message
    assert "Polygon" in message and "convert" in message


def test_multipart_point_is_refused():
    gdf = _features([MultiPoint([(0, 0), (1, 1)])], ["m"])
    assert "MultiPoint" in error_of(as_points, gdf)


def test_null_geometry_names_the_feature(tmp_path):
    path = write(
        tmp_path,
        "nulls.geojson",
        '{"type":"FeatureCollection","features":['
        '{"type":"Feature","properties":{"id":"ok"},"geometry":{"type":"Point","coordinates":[1,2]}},'
        '{"type":"Feature","properties":{"id":"ghost"},"geometry":null}]}',
    )
    message = error_of(read_points, path)
    assert "nulls.geojson: feature 2, id 'ghost', column 'geometry'" in message
    assert "no geometry" in message


def test_swapped_geojson_coordinates(tmp_path):
    gdf = _features([Point(21.88, -102.29), Point(21.85, -102.72)], ["a", "b"])
    path = tmp_path / "swapped.geojson"
    gdf.to_file(path, driver="GeoJSON")
    message = error_of(read_points, path)
    assert "feature 1, id 'a'" in message and "swapped" in message and "longitude first" in message


# --------------------------------------------------------------------------- looks_swapped

AGUASCALIENTES = (-102.6, 21.6, -101.8, 22.3)  # west, south, east, north


def test_looks_swapped():
    right = _features([Point(-102.29, 21.88), Point(-102.3, 21.9)], ["a", "b"])
    wrong = _features([Point(21.88, -102.29), Point(21.9, -102.3)], ["a", "b"])
    elsewhere = _features([Point(13.4, 52.5), Point(13.5, 52.4)], ["a", "b"])
    assert looks_swapped(wrong, AGUASCALIENTES)
    assert not looks_swapped(right, AGUASCALIENTES)
    assert not looks_swapped(elsewhere, AGUASCALIENTES)
    assert not looks_swapped(right.iloc[:0], AGUASCALIENTES)
    assert not looks_swapped(right.to_crs(3857), AGUASCALIENTES)
    # compared in degrees whatever the CRS: Berlin points entered as (lat, lon) land in Yemen
    berlin = (13.0, 52.3, 13.8, 52.7)
    yemen = _features([Point(52.52, 13.40), Point(52.50, 13.45)], ["a", "b"]).to_crs(3857)
    assert looks_swapped(yemen, berlin)
    assert not looks_swapped(_features([Point(13.40, 52.52)], ["a"]).to_crs(3857), berlin)
    assert looks_swapped(wrong.geometry, AGUASCALIENTES)


# --------------------------------------------------------------------------- scale


def test_large_file_reports_first_bad_row(tmp_path):
    n = 100_000
    lat = pd.Series(np.linspace(-60, 60, n), dtype=object)
    frame = pd.DataFrame({"id": [f"d{i}" for i in range(n)], "lat": lat, "lon": 10.0})
    frame.loc[n - 10, "lat"] = "north"
    frame.loc[n - 1, "lat"] = "south"
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    message = error_of(read_defenders, path)
    assert re.search(rf"row {n - 9}, id 'd{n - 10}', column 'lat'", message)
    assert "(and 1 more row)" in message
    frame.loc[[n - 10, n - 1], "lat"] = 0.0
    frame.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_defenders(path)) == n


def test_semicolon_separated_csv_with_bom_and_padded_headers(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_bytes("\ufeff id ; Latitude ; LONG \nd1;60.17;24.94\nd2;60.168;24.945\n".encode())
    points = read_defenders(path)
    assert list(points["id"]) == ["d1", "d2"]
    assert points.geometry.iloc[1].x == pytest.approx(24.945) and points.geometry.iloc[1].y == pytest.approx(60.168)
