"""Incident feeds from several sources (issue 14): duplicates merged, each incident counted once; HXL in and out.

Oracles: hand-built feeds whose duplicates are known (``tests/data/feeds/expected.toml``),
great-circle distances computed here with the haversine formula (not the module's chords),
brute-force checks of the merge rules on random feeds, and the threat picture of merged feeds
against the picture of the feed without its duplicates.
"""

from __future__ import annotations

import csv
import math
import tomllib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from havenmap import _io, feeds, layers
from havenmap.cli import execute
from havenmap.errors import InputError

DATA = Path(__file__).parent / "data"
FEEDS = DATA / "feeds"
HAND = [FEEDS / "acled_overlap.csv", FEEDS / "ucdp_overlap.csv", FEEDS / "partner_hxl.csv"]


def haversine_m(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def groups_of(merged: feeds.IncidentFeeds) -> list[list[str]]:
    return [ids.split("; ") for ids in merged.incidents["source_ids"]]


# ---------------------------------------------------------------------- hand-built feeds


def test_hand_built_feeds_merge_exactly_the_known_duplicates():
    expected = tomllib.loads((FEEDS / "expected.toml").read_text())
    merged = feeds.read_incident_feeds(HAND)
    assert merged.feeds == ("acled_overlap", "ucdp_overlap", "partner_hxl")
    assert merged.records == (6, 4, 4) and len(merged.incidents) == len(expected["groups"]) == 8
    got = sorted(groups_of(merged))
    assert [g[0] for g in sorted(expected["groups"])] == [g[0] for g in got]  # the kept record of each group
    assert sorted(sorted(g) for g in got) == sorted(sorted(g) for g in expected["groups"])
    by_id = merged.incidents.set_index("incident_id")
    for ident, deaths in expected["fatalities"].items():
        assert by_id.loc[ident, "fatalities"] == deaths  # the largest count any source gives
    assert set(merged.incidents["n_sources"]) == {1, 2, 3}
    assert by_id.loc["acled_overlap:MEX201", "sources"] == "acled_overlap; ucdp_overlap; partner_hxl"
    assert merged.merged == 6 and "14 records → 8 incidents (6 duplicates merged)" in merged.summary()


def test_warnings_about_merged_feeds_name_the_feed_and_record_not_a_merged_row():
    from havenmap.threat import weigh_incidents

    def feed(name, rows):
        table = pd.DataFrame(
            [
                {"id": i, "date": "2024-05-01", "event_type": t, "latitude": 21.87, "longitude": lon}
                for i, t, lon in rows
            ]
        )
        return layers.as_incidents(table, label=name)

    frames = [
        feed("acled", [("A1", "Battles", -102.30), ("A2", "Riots", -102.25)]),
        feed("partner", [("R1", "Battles", -102.20), ("R2", "curfew breach", -102.10)]),
    ]
    merged = feeds.merge_incident_feeds(frames, ["acled", "partner"]).incidents
    with pytest.warns(UserWarning, match="unknown event type") as caught:
        weigh_incidents(merged, "2024-05-02")
    message = next(str(w.message) for w in caught if "unknown event type" in str(w.message))
    assert "'curfew breach' in incident 'partner:R2';" in message and "row" not in message.split(";")[0]
    single = feeds.merge_incident_feeds(frames[1:], ["partner"]).incidents  # one feed: its own rows and ids
    with pytest.warns(UserWarning, match=r"unknown event type 'curfew breach' in row 2 \(id 'R2'\)"):
        weigh_incidents(single, "2024-05-02")


def test_the_audit_shows_each_merge_with_distances_computed_independently():
    merged = feeds.read_incident_feeds(HAND)
    audit = merged.audit
    assert list(audit.columns) == list(feeds.AUDIT_COLUMNS)
    assert audit.groupby("merged_id")["kept"].sum().eq(1).all()
    assert len(audit) == 11  # the records of the five merged incidents; single ones are not listed
    for _, part in audit.groupby("merged_id"):
        kept = part.loc[part["kept"]].iloc[0]
        for row in part.itertuples():
            metres = haversine_m(kept.latitude, kept.longitude, row.latitude, row.longitude)
            assert abs(metres - row.metres_apart) < 0.5
            days = abs((pd.Timestamp(row.date) - pd.Timestamp(kept.date)).days)
            assert days == row.days_apart <= 1
            if not row.kept:
                assert f"{metres:,.0f} m apart" in row.merge_reason
    grenade = audit.loc[audit["source_id"] == "MEX205"].iloc[0]
    assert grenade.metres_apart > 500  # within 2 x 500 m: the ACLED record has geo_precision 2


def test_thresholds_and_type_rules_are_configurable():
    same_day = feeds.read_incident_feeds(HAND, feeds.DedupOptions(days=0))
    assert ["acled_overlap:MEX202"] in groups_of(same_day)  # 400002 is a day later
    close = feeds.read_incident_feeds(HAND, feeds.DedupOptions(metres=55))
    assert not any("ucdp_overlap:400001" in g and "acled_overlap:MEX201" in g for g in groups_of(close))
    exact = feeds.read_incident_feeds(HAND, feeds.DedupOptions(types="exact"))
    assert ["acled_overlap:MEX202"] in groups_of(exact)  # Battles is not the words 'state-based conflict'
    assert ["acled_overlap:MEX203", "partner_hxl:R-3"] in groups_of(exact)  # 'incident' is no type: compatible
    week = feeds.read_incident_feeds(HAND, feeds.DedupOptions(days=5))
    assert ["acled_overlap:MEX206", "ucdp_overlap:400004"] in groups_of(week)  # same place, 5 days apart
    loose = feeds.read_incident_feeds(HAND, feeds.DedupOptions(types="any"))
    assert loose.merged >= feeds.read_incident_feeds(HAND).merged
    for bad in ({"days": -1}, {"days": 1.5}, {"metres": -5}, {"types": "fuzzy"}):
        with pytest.raises(InputError):
            feeds.DedupOptions(**bad)
    with pytest.raises(InputError, match="unknown key 'metre'"):
        feeds.DedupOptions.from_dict({"metre": 5})


def test_a_chain_does_not_collapse_and_a_feed_never_merges_with_itself():
    """A ~ B (400 m), B ~ C (400 m), A and C 800 m apart: complete linkage keeps C alone; two
    reports of one feed at the same place stay two incidents."""
    east = 400 / (111_320 * math.cos(math.radians(21.87)))

    def feed(name, lon, ident, extra=()):
        rows = [{"id": ident, "date": "2024-05-01", "event_type": "attack", "latitude": 21.87, "longitude": lon}]
        rows += [dict(rows[0], id=e) for e in extra]
        return layers.as_incidents(pd.DataFrame(rows), label=name)

    frames = [feed("a", -102.28, "A", extra=["A2"]), feed("b", -102.28 + east, "B"), feed("c", -102.28 + 2 * east, "C")]
    merged = feeds.merge_incident_feeds(frames, ["a", "b", "c"])
    assert sorted(groups_of(merged)) == [["a:A", "b:B"], ["a:A2"], ["c:C"]]


def test_random_feeds_obey_the_rules_and_no_two_incidents_could_be_merged():
    """Brute force on random feeds: every merged incident's records come from different feeds and are
    pairwise within the limits (haversine); no two incidents could still be merged (maximal)."""
    rng = np.random.default_rng(7)
    types = ["Battles", "state-based conflict", "Protests", "riot", "incident", "kidnapping"]
    opts = feeds.DedupOptions(days=1, metres=300)
    for trial in range(6):
        frames, names = [], []
        for f in range(3):
            n = int(rng.integers(8, 20))
            frame = pd.DataFrame(
                {
                    "id": [f"{f}-{i}" for i in range(n)],
                    "date": (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 4, n), unit="D")).astype(str),
                    "event_type": rng.choice(types, n),
                    "latitude": 21.87 + rng.uniform(0, 0.008, n),
                    "longitude": -102.28 + rng.uniform(0, 0.008, n),
                    "geo_precision": rng.choice([1, 1, 1, 2], n),
                }
            )
            frames.append(layers.as_incidents(frame, label=f"f{f}"))
            names.append(f"f{f}")
        merged = feeds.merge_incident_feeds(frames, names, opts)
        records = pd.concat(
            [fr.assign(key=[f"{nm}:{i}" for i in fr["incident_id"]]) for fr, nm in zip(frames, names, strict=True)]
        )
        records = records.set_index("key")
        groups = groups_of(merged)
        assert sorted(k for g in groups for k in g) == sorted(records.index)  # every record exactly once

        def duplicates(a: str, b: str, records: pd.DataFrame = records) -> bool:
            ra, rb = records.loc[a], records.loc[b]
            if a.split(":")[0] == b.split(":")[0]:
                return False
            factor = max({1: 1, 2: 2, 3: 4}[int(ra.geo_precision)], {1: 1, 2: 2, 3: 4}[int(rb.geo_precision)])
            near = haversine_m(ra.geometry.y, ra.geometry.x, rb.geometry.y, rb.geometry.x) <= 300 * factor + 1e-6
            soon = abs((ra.date - rb.date).days) <= 1
            fa, fb = feeds.type_family(ra.event_type), feeds.type_family(rb.event_type)
            return near and soon and (not fa or not fb or fa == fb)

        for g in groups:
            assert len({k.split(":")[0] for k in g}) == len(g)
            assert all(duplicates(a, b) for i, a in enumerate(g) for b in g[i + 1 :]), (trial, g)
        for i, g in enumerate(groups):
            for h in groups[i + 1 :]:
                disjoint = not {k.split(":")[0] for k in g} & {k.split(":")[0] for k in h}
                assert not (disjoint and all(duplicates(a, b) for a in g for b in h)), (trial, g, h)


def test_acled_and_ucdp_samples_without_overlap_stay_apart():
    merged = feeds.read_incident_feeds([DATA / "acled_sample.csv", DATA / "ucdp_ged_sample.csv"])
    assert merged.merged == 0 and merged.audit.empty
    assert len(merged.incidents) == sum(merged.records)
    single = feeds.read_incident_feeds(DATA / "acled_sample.csv")
    plain = layers.read_incidents(DATA / "acled_sample.csv")
    assert list(single.incidents["incident_id"]) == list(plain["incident_id"])  # one feed: its own ids and order
    assert set(single.incidents["source"]) == {"acled_sample"}


def test_type_families():
    assert feeds.type_family("Battles") == feeds.type_family("state-based conflict") == "political violence"
    assert feeds.type_family("Violence against civilians") == feeds.type_family("one-sided violence")
    assert feeds.type_family("armed attack") == feeds.type_family("kidnapping of a journalist") == "political violence"
    assert feeds.type_family("Riots") == feeds.type_family("protest march") == "demonstrations"
    assert feeds.type_family("incident") == feeds.type_family("") == feeds.type_family("unexplained") == ""


# ---------------------------------------------------------------------- HXL in and out


def test_partner_hxl_feed_is_read_by_its_hashtags():
    inc = layers.read_incidents(FEEDS / "partner_hxl.csv")
    assert list(inc["incident_id"]) == ["R-1", "R-2", "R-3", "R-4"]
    assert list(inc["event_type"]) == ["armed attack", "protest", "incident", "shooting"]
    assert list(inc["fatalities"]) == [0, 0, 0, 1]
    assert inc["notes"].iloc[0] == "Lawyer followed and shot at"
    assert set(inc["source"]) == {"hxl"}
    assert abs(inc.geometry.y.iloc[0] - 21.8815) < 1e-9 and abs(inc.geometry.x.iloc[0] + 102.2920) < 1e-9


def test_hxl_errors_count_data_rows(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("Fecha,Lat,Lon\n#date,#geo+lat,#geo+lon\n2024-01-01,21.88,-102.29\nsoon,21.88,-102.29\n")
    with pytest.raises(InputError, match=r"p\.csv: row 2, column 'date': 'soon' is not a date"):
        layers.read_incidents(path)
    only_tags = tmp_path / "q.csv"  # a hashtag row and no text header
    only_tags.write_text("#date,#geo+lat,#geo+lon,#adm1+name\n2024-01-01,21.88,-102.29,Ags\n")
    inc = layers.read_incidents(only_tags)
    assert len(inc) == 1 and inc["#adm1+name"].iloc[0] == "Ags"


def test_csv_outputs_carry_hashtags_libhxl_reads(tmp_path):
    import hxl

    table = pd.DataFrame(
        {
            "defender_id": ["=x", "D1"],
            "travel_time_s": [61.5, np.nan],
            "covered_15": [1, 2],
            "share_7.5": [0.5, 1.0],
            "band_min": [15.0, np.nan],
            "own_column": ["a", "b"],
        }
    )
    path = _io.write_csv(tmp_path / "t.csv", table, hxl=True)
    data = hxl.data(str(path), hxl.InputOptions(allow_local=True))
    tags = [c.display_tag for c in data.columns]
    assert tags == [
        "#beneficiary+id",
        "#indicator+travel_time_s+num",
        "#beneficiary+covered+num+m15",
        "#indicator+share+covered+m7_5",
        "#indicator+band_min+num",
        "",
    ]
    rows = [r.values for r in data]
    assert rows[0][:3] == ["'=x", "61.5", "1"]  # the formula guard holds in the HXL file too
    back = _io.read_table(path)  # our own reader skips the hashtag row and undoes the guard
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert _io.hxl_hashtags(["lat", "latitude", "unknown"]) == ["#geo+lat", "#geo+lat+n2", ""]


# ---------------------------------------------------------------------- counted once


def _in_the_network(net, n: int, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    nodes = rng.choice(net.n_nodes, n)
    lon, lat = net.node_lonlat[nodes, 0], net.node_lonlat[nodes, 1]
    return gpd.GeoDataFrame(
        {
            "event_id_cnty": [f"AGS{i}" for i in range(n)],
            "event_date": (pd.Timestamp("2024-06-30") - pd.to_timedelta(rng.integers(0, 60, n), unit="D")).astype(str),
            "event_type": rng.choice(["Violence against civilians", "Battles", "Riots"], n),
            "fatalities": rng.integers(0, 3, n),
        },
        geometry=[Point(x, y) for x, y in zip(lon, lat, strict=True)],
        crs="EPSG:4326",
    )


def _write_feeds(tmp_path: Path, base: gpd.GeoDataFrame, seed: int) -> tuple[Path, Path]:
    """The ACLED feed, and a partner's HXL feed reporting half of its events again 20-40 m off."""
    rng = np.random.default_rng(seed)
    acled = tmp_path / "acled.csv"
    base.assign(latitude=base.geometry.y, longitude=base.geometry.x).drop(columns="geometry").to_csv(acled, index=False)
    again = base.iloc[: len(base) // 2]
    step = rng.uniform(20, 40, len(again)) / 111_320
    partner = tmp_path / "partner.csv"
    with open(partner, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["ref", "when", "lat", "lon", "what", "dead"])
        out.writerow(["#meta+id", "#date", "#geo+lat", "#geo+lon", "#event+type", "#affected+killed"])
        for i, (row, d) in enumerate(zip(again.itertuples(), step, strict=True)):
            kind = "riot" if row.event_type == "Riots" else "armed attack"  # the partner's own words
            out.writerow([f"P{i}", row.event_date, row.geometry.y + d, row.geometry.x, kind, row.fatalities])
    return acled, partner


def test_threat_and_alerts_count_merged_incidents_once(aguascalientes_drive, tmp_path):
    from havenmap import threat

    net = aguascalientes_drive
    base = _in_the_network(net, 60, 3)
    acled, partner = _write_feeds(tmp_path, base, 3)
    merged = feeds.read_incident_feeds([acled, partner])
    assert merged.merged == 30 and len(merged.incidents) == 60
    alone = threat.compute_threat(net, layers.read_incidents(acled), "2024-06-30", clusters=False, grid=False)
    both = threat.compute_threat(net, merged.incidents, "2024-06-30", clusters=False, grid=False)
    np.testing.assert_allclose(both.risk, alone.risk, rtol=1e-12, atol=1e-12)
    naive = pd.concat([layers.read_incidents(acled), layers.read_incidents(partner)], ignore_index=True)
    counted_twice = threat.compute_threat(net, naive, "2024-06-30", clusters=False, grid=False)
    assert counted_twice.risk.sum() > both.risk.sum() * 1.2  # what merging prevents
    defenders = gpd.GeoDataFrame({"id": ["a", "b"]}, geometry=list(base.geometry.iloc[:2]), crs="EPSG:4326")
    once = threat.early_warning(net, both.incidents, defenders, "2024-06-30")
    single = threat.early_warning(net, alone.incidents, defenders, "2024-06-30")
    pd.testing.assert_frame_equal(once, single)


def test_cli_takes_several_feeds_and_writes_the_merge_audit(aguascalientes_drive, tmp_path, capsys):
    import hxl

    base = _in_the_network(aguascalientes_drive, 40, 5)
    acled, partner = _write_feeds(tmp_path, base, 5)
    defenders = tmp_path / "defenders.csv"
    pd.DataFrame({"id": ["d1", "d2"], "latitude": base.geometry.y[:2], "longitude": base.geometry.x[:2]}).to_csv(
        defenders, index=False
    )
    network = Path(aguascalientes_drive.source)
    out = tmp_path / "alerts.csv"
    args = ["alerts", "--network", str(network), "--incidents", str(acled), "--incidents", str(partner)]
    args += ["--defenders", str(defenders), "--as-of", "2024-06-30", "--out", str(out), "--hxl", "--dedup-m", "200"]
    assert execute(args) == 0
    err = capsys.readouterr().err
    assert "2 feeds (acled 40, partner 20): 60 records → 40 incidents (20 duplicates merged)" in err
    audit = hxl.data(str(tmp_path / "incidents_merged.csv"), hxl.InputOptions(allow_local=True))
    assert "#event+id+merged" in [c.display_tag for c in audit.columns]
    assert sum(1 for _ in audit) == 40  # 20 merged incidents, two records each
    assert "#beneficiary+id" in out.read_text().splitlines()[1]
    # the threat command writes it into its folder; bad thresholds fail before any work
    folder = tmp_path / "threat"
    args = ["threat", "--network", str(network), "--incidents", str(acled), "--incidents", str(partner)]
    assert execute([*args, "--out", str(folder), "--cluster-permutations", "0"]) == 0
    assert (folder / "incidents_merged.csv").exists()
    assert execute([*args, "--out", str(folder), "--dedup-m", "-1"]) == 2
    assert "--dedup-m" in capsys.readouterr().err


def test_one_feed_given_twice_or_copied_is_refused_before_any_work(aguascalientes_drive, tmp_path, capsys):
    """Merged with itself, every record would count as confirmed by two sources."""
    base = _in_the_network(aguascalientes_drive, 10, 6)
    acled, partner = _write_feeds(tmp_path, base, 3)
    copy = tmp_path / "acled_copy.csv"
    copy.write_bytes(acled.read_bytes())
    with pytest.raises(InputError, match=r"acled\.csv is given twice: the same feed twice would merge"):
        feeds.read_incident_feeds([acled, partner, acled])
    with pytest.raises(InputError, match=r"acled_copy\.csv holds the same bytes as .*acled\.csv"):
        feeds.read_incident_feeds([acled, copy])
    assert len(feeds.read_incident_feeds([acled, partner]).feeds) == 2
    network = Path(aguascalientes_drive.source)
    args = ["threat", "--network", str(network), "--incidents", str(acled), "--incidents", str(copy)]
    capsys.readouterr()
    assert execute([*args, "--out", str(tmp_path / "threat")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds the same bytes" in err and "Loading" not in err
    assert not (tmp_path / "threat").exists()


def test_scenario_incidents_may_be_a_list(tmp_path):
    from havenmap.scenario import incident_files, input_files, load_scenario

    for name in ("n.osm", "h.csv", "d.csv", "a.csv", "b.csv"):
        (tmp_path / name).write_text("x")
    (tmp_path / "s.toml").write_text(
        'network = "n.osm"\nhavens = "h.csv"\ndefenders = "d.csv"\nincidents = ["a.csv", "b.csv"]\n'
        "[dedup]\ndays = 0\nmetres = 250\n"
    )
    scen = load_scenario(tmp_path / "s.toml")
    assert [p.name for p in incident_files(scen)] == ["a.csv", "b.csv"]
    assert (scen.dedup.days, scen.dedup.metres, scen.dedup.types) == (0, 250.0, "family")
    files = input_files(scen)
    assert files["incidents"].name == "a.csv" and files["incidents_2"].name == "b.csv"
    (tmp_path / "t.toml").write_text('network = "n.osm"\nhavens = "h.csv"\ndefenders = "d.csv"\nincidents = 3\n')
    with pytest.raises(InputError, match="incidents = 3: give a file name"):
        load_scenario(tmp_path / "t.toml")
    (tmp_path / "u.toml").write_text(
        'network = "n.osm"\nhavens = "h.csv"\ndefenders = "d.csv"\n[dedup]\ntypes = "fuzzy"\n'
    )
    with pytest.raises(InputError, match="dedup types 'fuzzy'"):
        load_scenario(tmp_path / "u.toml")
