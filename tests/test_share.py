"""Share bundles (issue 14): what partners and the public get, and that no one is in it.

The property-style tests build random scenes on real streets (downtown Aguascalientes):
defenders, public and private havens, patrol bases and targets, two incident feeds with
duplicates, some incidents planted at defenders' homes. Each scene runs the whole pipeline
(``run_scenario``) and is shared at both levels through the command line. Every file of every
bundle is then scanned by an oracle written here — not the bundle's own self-check — for
defender, private-haven and base ids and names, and for every number pair the files hold
(both orders; as degrees with 4-7 decimals and as UTM / Web Mercator metres; every decoded
polyline) within the generalisation radius of one of them. Only what depends on no one's
position may be that close: road-network vertices, public havens, points of the publication
grid, and the 0.01-degree grid of the map's view box. Negative controls show the oracle finds
people in the run's own files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import textwrap
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

from havenmap import _io, layers, privacy, share
from havenmap.cli import execute

from .browser import open_page, requires_chromium
from .conftest import shared_file

SEEDS = (11, 12, 13)
CELL_M = 500.0
RADIUS_M = CELL_M / 2
K = 5
AS_OF = "2024-06-30"
UTM = "EPSG:32613"  # downtown Aguascalientes


# ====================================================================== scenes on real streets


def _points_on_streets(net, rng, n: int, jitter_m: float = 8.0) -> np.ndarray:
    """``n`` random positions along random roads (metres, the network's UTM), moved up to ``jitter_m``."""
    edges = net.edges_gdf(undirected=True).to_crs(UTM)
    lines = edges.geometry.to_numpy()[rng.integers(0, len(edges), n)]
    pts = shapely.line_interpolate_point(lines, rng.uniform(0, 1, n), normalized=True)
    return shapely.get_coordinates(pts) + rng.uniform(-jitter_m, jitter_m, (n, 2))


def _lonlat(xy: np.ndarray) -> np.ndarray:
    lon, lat = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(xy[:, 0], xy[:, 1])
    return np.column_stack([lon, lat])


def _write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def make_scene(net, folder: Path, seed: int) -> dict:
    """Random inputs on real streets and a scenario file; returns paths and the exact secrets."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_def, n_hav = int(rng.integers(25, 45)), int(rng.integers(8, 14))
    dxy, hxy, bxy, txy = (_lonlat(_points_on_streets(net, rng, n)) for n in (n_def, n_hav, 2, 6))
    defenders = [
        {"id": f"DF{seed}-{i:03d}", "name": f"Nombre{seed}x{i}", "latitude": la, "longitude": lo}
        for i, (lo, la) in enumerate(dxy)
    ]
    public = rng.uniform(size=n_hav) < 0.5
    public[:2] = True
    havens = [
        {
            "id": f"HV{seed}-{i:02d}" if not public[i] else f"PH{seed}-{i:02d}",
            "name": f"Refugio{seed}x{i}" if not public[i] else f"Clinica{seed}x{i}",
            "kind": "clinic" if public[i] else "place_of_worship",
            "public": "true" if public[i] else "",
            "latitude": la,
            "longitude": lo,
        }
        for i, (lo, la) in enumerate(hxy)
    ]
    bases = [
        {"id": f"BS{seed}-{i}", "name": f"Cuartel{seed}x{i}", "latitude": la, "longitude": lo}
        for i, (lo, la) in enumerate(bxy)
    ]
    targets = [
        {"id": f"T{i}", "name": f"Punto {i}", "latitude": la, "longitude": lo, "priority": int(rng.integers(1, 4))}
        for i, (lo, la) in enumerate(txy)
    ]
    end = pd.Timestamp(AS_OF)
    n_inc = 160
    ixy = _lonlat(_points_on_streets(net, rng, n_inc, jitter_m=30))
    homes = rng.choice(n_def, 6, replace=False)  # attacks at defenders' homes: must not give them away
    ixy[:6] = dxy[homes]
    days = rng.integers(0, 90, n_inc)
    types = ["Violence against civilians", "Battles", "Riots", "Explosions/Remote violence", "Protests"]
    acled = [
        {
            "event_id_cnty": f"MEX{seed}{i:04d}",
            "event_date": (end - pd.Timedelta(days=int(days[i]))).date().isoformat(),
            "event_type": types[i % len(types)],
            "sub_event_type": "",
            "latitude": round(la, 5),
            "longitude": round(lo, 5),
            "geo_precision": 1,
            "fatalities": int(rng.integers(0, 3)),
            "notes": "attack near the home of a rights worker" if i < 6 else "incident report",
        }
        for i, (lo, la) in enumerate(ixy)
    ]
    # a partner's HXL feed: a third of the same events, 20-60 m off, same day (duplicates), plus its own
    dup = rng.choice(n_inc, n_inc // 3, replace=False)
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    offset = rng.uniform(20, 40, (len(dup), 2)) * rng.choice([-1, 1], (len(dup), 2))
    shift = _lonlat(np.column_stack(to_utm.transform(ixy[dup, 0], ixy[dup, 1])) + offset)
    own = _lonlat(_points_on_streets(net, rng, 20, jitter_m=30))
    partner_rows = [
        (f"R{j}", acled[i]["event_date"], la, lo, "armed attack")
        for j, (i, (lo, la)) in enumerate(zip(dup, shift, strict=True))
    ]
    partner_rows += [
        (f"P{j}", (end - pd.Timedelta(days=int(rng.integers(0, 90)))).date().isoformat(), la, lo, "shooting")
        for j, (lo, la) in enumerate(own)
    ]
    paths = {
        "defenders": _write_csv(folder / "defenders.csv", defenders),
        "havens": _write_csv(folder / "havens.csv", havens),
        "bases": _write_csv(folder / "bases.csv", bases),
        "targets": _write_csv(folder / "targets.csv", targets),
        "acled": _write_csv(folder / "acled_feed.csv", acled),
        "partner": folder / "partner_feed.csv",
    }
    with open(paths["partner"], "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["Ref", "Fecha", "Lat", "Lon", "Tipo", "Notas"])
        out.writerow(["#meta+id", "#date", "#geo+lat", "#geo+lon", "#event+type", "#description"])
        for ref, date, la, lo, kind in partner_rows:
            out.writerow([ref, date, f"{la:.6f}", f"{lo:.6f}", kind, "partner report"])
    scenario = folder / "scenario.toml"
    scenario.write_text(
        textwrap.dedent(
            f"""
            name = "Aguascalientes scene {seed}"
            as_of = "{AS_OF}"
            network = "{shared_file("aguascalientes.osm.bz2").as_posix()}"
            network_type = "drive"
            havens = "havens.csv"
            defenders = "defenders.csv"
            incidents = ["acled_feed.csv", "partner_feed.csv"]
            bases = "bases.csv"
            targets = "targets.csv"
            k = 2
            minutes = [1, 3]
            [threat]
            cluster_permutations = 19
            [patrol]
            units = 1
            shift_minutes = 45
            days = 2
            time_limit_s = 2
            [dedup]
            days = 1
            metres = 100
            """
        ),
        encoding="utf-8",
    )
    return {"paths": paths, "scenario": scenario, "seed": seed}


def secrets_of(scene: dict) -> gpd.GeoDataFrame:
    """Defenders, private havens and bases: kind, id, name, point (EPSG:4326)."""
    p = scene["paths"]
    rows = []
    for kind, frame in (
        ("defender", layers.read_defenders(p["defenders"])),
        ("haven", layers.read_havens(p["havens"])),
        ("base", layers.read_bases(p["bases"])),
    ):
        if kind == "haven":
            frame = frame.loc[~frame["public"]]
            kind = "private haven"
        rows.append(gpd.GeoDataFrame({"kind": kind, "id": frame["id"], "name": frame["name"]}, geometry=frame.geometry))
    return gpd.GeoDataFrame(pd.concat(rows, ignore_index=True), crs="EPSG:4326")


@pytest.fixture(scope="module")
def net():
    from havenmap.network import load_network

    return load_network(shared_file("aguascalientes.osm.bz2"), "drive")


_SCENES: dict[int, dict] = {}


def _scene(seed: int, net, tmp_path_factory) -> dict:
    """A scene run through the whole pipeline and shared at both levels by the command line (once per seed)."""
    from havenmap.scenario import load_scenario, run_scenario

    if seed in _SCENES:
        return _SCENES[seed]
    root = tmp_path_factory.mktemp(f"scene{seed}")
    s = make_scene(net, root / "inputs", seed)
    run_scenario(load_scenario(s["scenario"]), root / "run")
    p = s["paths"]
    s["run"] = root / "run"
    s["bundles"] = {}
    for level in share.LEVELS:
        out = root / f"bundle-{level}"
        args = ["share", str(s["run"]), "--level", level, "--out", str(out), "--k", str(K), "--cell-m", str(CELL_M)]
        args += ["--defenders", str(p["defenders"]), "--havens", str(p["havens"]), "--bases", str(p["bases"])]
        args += ["--incidents", str(p["acled"]), "--incidents", str(p["partner"]), "--dedup-m", "100"]
        assert execute(args) == 0
        s["bundles"][level] = out
    s["secrets"] = secrets_of(s)
    _SCENES[seed] = s
    return s


@pytest.fixture(scope="module", params=SEEDS)
def scene(request, net, tmp_path_factory):
    return _scene(request.param, net, tmp_path_factory)


@pytest.fixture(scope="module")
def one_scene(net, tmp_path_factory):
    """The first scene, for tests that need one."""
    return _scene(SEEDS[0], net, tmp_path_factory)


# ====================================================================== the oracle scanner

NUMBER = r"-?\d+(?:\.\d+)?"
PAIR = re.compile(rf"(?=(?<![\w.])({NUMBER})[\s,;]{{1,3}}({NUMBER})(?![\w.]))")
ATTRIBUTES = re.compile(rf'lat="({NUMBER})"\s+lon="({NUMBER})"')  # GPX, the negative control
ENCODED = re.compile(r'"enc":\s*"((?:[^"\\]|\\.)*)",\s*"counts":\s*\[([\d,\s]*)\]')


def _polyline(text: str, counts: list[int]) -> list[tuple[float, float]]:
    """Google's polyline algorithm, written again here (not the map code's decoder)."""
    values, shift, result = [], 0, 0
    for byte in text.encode():
        chunk = byte - 63
        result |= (chunk & 0x1F) << shift
        shift += 5
        if chunk < 0x20:
            values.append(-(result >> 1) - 1 if result & 1 else result >> 1)
            shift, result = 0, 0
    out, lat, lon = [], 0, 0
    for dlat, dlon in zip(values[0::2], values[1::2], strict=True):
        lat, lon = lat + dlat, lon + dlon
        out.append((lat / 1e5, lon / 1e5))
    assert len(out) == sum(counts)
    return out


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def number_pairs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of numbers a file holds: ``(n, 2)`` values and the decimals of the coarser one.

    Text: consecutive numbers with 1-3 separator characters (overlapping, so every neighbour);
    CSV: any two numeric cells of a row as well; polylines of the map decoded (5 decimals).
    """
    text = path.read_text(encoding="utf-8")
    pairs, decimals = [], []
    for a, b in PAIR.findall(text) + ATTRIBUTES.findall(text):
        pairs.append((float(a), float(b)))
        decimals.append(min(_decimals(a), _decimals(b)))
    if path.suffix == ".csv":
        for row in csv.reader(io.StringIO(text)):
            cells = [c for c in row if re.fullmatch(NUMBER, c.strip() or "x")]
            for i, a in enumerate(cells):
                for b in cells[i + 1 :]:
                    pairs.append((float(a), float(b)))
                    decimals.append(min(_decimals(a), _decimals(b)))
    for enc, counts in ENCODED.findall(text):
        for lat, lon in _polyline(json.loads(f'"{enc}"'), [int(c) for c in counts.split(",") if c.strip()]):
            pairs.append((lat, lon))
            decimals.append(5)
    return np.array(pairs, dtype=float).reshape(-1, 2), np.array(decimals, dtype=int)


def _public_utm(net, havens_path: Path) -> np.ndarray:
    roads = net.edges_gdf(undirected=True).to_crs(UTM)
    havens = layers.read_havens(havens_path)
    pts = [
        shapely.get_coordinates(roads.geometry.to_numpy()),
        shapely.get_coordinates(havens.loc[havens["public"]].to_crs(UTM).geometry.to_numpy()),
    ]
    return np.concatenate(pts)


def close_points(path: Path, secrets: gpd.GeoDataFrame, public_utm: np.ndarray) -> list[str]:
    """Number pairs of ``path`` within the radius of a secret point that nothing public explains."""
    pairs, dec = number_pairs(path)
    if not len(pairs):
        return []
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    merc = Transformer.from_crs("EPSG:3857", UTM, always_xy=True)
    secret_xy = shapely.get_coordinates(secrets.to_crs(UTM).geometry.to_numpy())
    tree, public = cKDTree(secret_xy), cKDTree(public_utm)
    found = []
    for label, (first, second) in (("lat/lon", (0, 1)), ("lon/lat", (1, 0))):
        lat, lon = pairs[:, first], pairs[:, second]
        error_m = 0.5 * 10.0 ** (-dec.astype(float)) * 111_320
        ok = (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & (error_m < RADIUS_M) & (dec >= 3)
        xy = np.column_stack(to_utm.transform(lon[ok], lat[ok]))
        found += _judge(xy, error_m[ok], pairs[ok], label, tree, public)
    for label, (first, second) in (("x/y", (0, 1)), ("y/x", (1, 0))):
        xy = pairs[:, [first, second]]
        big = (np.abs(xy) > 1000).all(axis=1)
        found += _judge(xy[big], 0.5 * 10.0 ** (-dec[big].astype(float)), pairs[big], f"UTM {label}", tree, public)
        mxy = np.column_stack(merc.transform(xy[big, 0], xy[big, 1]))
        found += _judge(mxy, 1.0 + 0 * dec[big], pairs[big], f"Web Mercator {label}", tree, public)
    return found


def _judge(xy, error_m, raw, label, tree, public) -> list[str]:
    if not len(xy):
        return []
    finite = np.isfinite(xy).all(axis=1)
    dist, who = tree.query(np.where(finite[:, None], xy, 0.0))
    near = finite & (dist <= RADIUS_M)
    tol = 1.5 * error_m + 0.6
    explained = public.query(xy)[0] <= tol
    rest = np.abs(xy - np.round(xy / (CELL_M / 2)) * (CELL_M / 2))
    explained |= (rest <= tol[:, None]).all(axis=1)  # the publication grid (corners and centres)
    degrees = raw * 100
    explained |= (np.abs(degrees - np.round(degrees)) < 1e-6).all(axis=1)  # the view box's 0.01-degree grid
    hits = np.flatnonzero(near & ~explained)
    return [f"{label} {tuple(raw[i])} {dist[i]:.1f} m from secret #{who[i]}" for i in hits[:5]]


def ids_and_names(path: Path, secrets: gpd.GeoDataFrame) -> list[str]:
    """Secret ids (whole tokens) and names (whole words, any case) in the raw file and its JSON-unescaped text."""
    text = path.read_text(encoding="utf-8")
    text = text + "\n" + _unescaped(text)
    ids = "|".join(re.escape(i) for i in sorted(secrets["id"], key=len, reverse=True))
    names = "|".join(re.escape(n) for n in sorted(secrets["name"].dropna(), key=len, reverse=True))
    hits = [f"id {m}" for m in re.findall(rf"(?<![\w-])(?:{ids})(?![\w-])", text)]
    hits += [f"name {m}" for m in re.findall(rf"(?<!\w)(?:{names})(?!\w)", text, re.I)]
    return hits


def _unescaped(text: str) -> str:
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


# ====================================================================== zero hits, every level, every file


@pytest.mark.parametrize("level", share.LEVELS)
def test_no_defender_private_haven_or_base_in_any_file(scene, level, net):
    bundle = scene["bundles"][level]
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    assert files and not any(p.suffix == ".gpx" for p in files)
    public = _public_utm(net, scene["paths"]["havens"])
    for path in files:
        assert ids_and_names(path, scene["secrets"]) == [], path.name
        assert close_points(path, scene["secrets"], public) == [], path.name


def test_the_oracle_finds_people_in_the_runs_own_files(scene, net):
    """Negative controls: routes start at defenders, alerts name them, GPX passes the bases."""
    public = _public_utm(net, scene["paths"]["havens"])
    secrets = scene["secrets"]
    run = scene["run"]
    assert close_points(run / "nearest_havens.geojson", secrets.loc[secrets["kind"] == "defender"], public)
    assert any(h.startswith("id DF") for h in ids_and_names(run / "nearest_havens.geojson", secrets))
    gpx = sorted((run / "patrol" / "gpx").glob("*.gpx"))
    assert gpx and close_points(gpx[0], secrets.loc[secrets["kind"] == "base"], public)
    # and the bundle's own self-check agrees on the same files
    defenders = layers.read_defenders(scene["paths"]["defenders"])
    havens = layers.read_havens(scene["paths"]["havens"])
    folder = run / "probe"
    folder.mkdir(exist_ok=True)
    shutil.copy(run / "nearest_havens.geojson", folder)
    found = share.check_bundle(folder, defenders, havens, options=share.ShareOptions(cell_m=CELL_M))
    assert found and "defender" in " ".join(found)


def test_levels_show_what_the_issue_says(scene):
    public, partner = (scene["bundles"][lv] for lv in ("public", "partner"))
    pub_files = {p.name for p in public.iterdir()}
    par_files = {p.name for p in partner.iterdir()}
    base = {"map.html", "incidents.csv", "threat_roads.geojson", "havens.geojson", "coverage_cells.csv"}
    base |= {"coverage_cells.geojson", "WITHHELD.json", "README.txt", "manifest.json"}
    assert base <= pub_files and base <= par_files
    assert not pub_files & {"defenders_by_cell.csv", "alerts_by_area.csv", "patrol_areas.csv"}
    assert {"defenders_by_cell.csv", "defenders_by_cell.geojson", "alerts_by_area.csv", "patrol_areas.csv"} <= par_files
    # public incidents: weeks (Mondays), no ids, days or notes; positions at cell centres
    inc = _io.read_table(public / "incidents.csv")
    assert not {"incident_id", "date", "notes"} & set(inc.columns)
    weeks = pd.to_datetime(inc["week"])
    assert (weeks.dt.day_of_week == 0).all()
    xy = np.column_stack(
        Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(inc["longitude"], inc["latitude"])
    )
    assert np.abs(np.mod(xy, CELL_M) - CELL_M / 2).max() < 0.2
    # free text is withheld at every level (notes can name or locate people), and the bundle says so
    assert "notes" not in _io.read_table(partner / "incidents.csv").columns
    for bundle in (public, partner):
        withheld = json.loads((bundle / "WITHHELD.json").read_text())
        assert "notes" in withheld["inputs"]["free_text"] and "every level" in withheld["inputs"]["free_text"]
        assert "free text can name or locate people" in (bundle / "README.txt").read_text().lower()
    # merged feeds count once: the run's merge audit and the bundle agree
    audit = pd.read_csv(scene["run"] / "incidents_merged.csv")
    records = len(pd.read_csv(scene["paths"]["acled"])) + len(pd.read_csv(scene["paths"]["partner"], skiprows=[1]))
    assert len(inc) == records - int((~audit["kept"]).sum()) and (~audit["kept"]).sum() > 0
    # only public havens
    havens = gpd.read_file(public / "havens.geojson")
    truth = layers.read_havens(scene["paths"]["havens"])
    assert sorted(havens["id"]) == sorted(truth.loc[truth["public"], "id"])


def test_partner_cells_are_k_anonymous_and_count_the_defenders_inside(scene):
    """Brute force: each published cell's polygon holds exactly its count of defenders (point in polygon)."""
    cells = gpd.read_file(scene["bundles"]["partner"] / "defenders_by_cell.geojson")
    table = _io.read_table(scene["bundles"]["partner"] / "defenders_by_cell.csv")
    defenders = layers.read_defenders(scene["paths"]["defenders"]).to_crs(UTM)
    inside = np.array([int(defenders.within(g).sum()) for g in cells.to_crs(UTM).geometry.buffer(1e-6)])
    shown = ~table["suppressed"].astype(bool).to_numpy()
    assert inside.sum() == len(defenders)  # every defender in exactly one cell
    assert (table.loc[shown, "defenders"].to_numpy() == inside[shown]).all()
    assert (inside[shown] >= K).all() and (inside[~shown] < K).all()
    assert table.loc[~shown, ["defenders", "covered", "slow", "unreachable"]].isna().all().all()
    assert (table.loc[shown, ["covered", "slow", "unreachable"]].sum(axis=1) == table.loc[shown, "defenders"]).all()
    expected = privacy.defender_cells(layers.read_defenders(scene["paths"]["defenders"]), cell_size_m=CELL_M, k=K)
    assert len(expected.cells) == len(cells)


def test_coverage_cells_use_public_havens_only(scene):
    """Monte Carlo oracle: the share of each cell within a band is the share of sample points in the
    union of the public havens' service areas of that band (private havens' areas left out)."""
    cells = gpd.read_file(scene["bundles"]["public"] / "coverage_cells.geojson").to_crs(UTM)
    areas = gpd.read_file(scene["run"] / "coverage" / "service_areas.geojson").to_crs(UTM)
    truth = layers.read_havens(scene["paths"]["havens"])
    public_ids = set(truth.loc[truth["public"], "id"])
    grid = (np.arange(20) + 0.5) / 20
    differs = 0
    for band in sorted(areas["minutes"].unique()):
        in_band = areas["minutes"] == band
        reach = shapely.union_all(areas.loc[areas["haven_id"].isin(public_ids) & in_band].geometry)
        with_private = shapely.union_all(areas.loc[in_band].geometry)
        for geom, share_value in zip(cells.geometry, cells[f"share_within_{band:g}"], strict=True):
            x0, y0, _, _ = geom.bounds
            pts = shapely.points(x0 + grid[:, None] * CELL_M, y0 + grid[None, :] * CELL_M).ravel()
            assert abs(shapely.contains(reach, pts).mean() - share_value) < 0.06
            differs += abs(shapely.contains(with_private, pts).mean() - share_value) > 0.06
    assert differs > 0  # the private havens' reach is really left out


def test_every_file_opens_in_its_normal_reader(scene):
    import hxl

    for level, bundle in scene["bundles"].items():
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["kind"] == share.BUNDLE_KIND and manifest["level"] == level
        listed = set(manifest["files"])
        assert listed | {"manifest.json"} == {p.name for p in bundle.iterdir()}
        for name, entry in manifest["files"].items():
            assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == entry["sha256"]
        for path in bundle.glob("*.geojson"):
            frame = gpd.read_file(path)
            assert frame.crs.to_epsg() == 4326 and len(frame)
        for path in bundle.glob("*.csv"):
            frame = _io.read_table(path)
            data = hxl.data(str(path), hxl.InputOptions(allow_local=True))
            tags = [c.display_tag for c in data.columns]
            assert all(tags), (path.name, tags)  # every column carries a hashtag
            assert tags == _io.hxl_hashtags(frame.columns)
            assert sum(1 for _ in data) == len(frame)
        json.loads((bundle / "WITHHELD.json").read_text())
        assert "withheld" in (bundle / "README.txt").read_text().lower()


@pytest.mark.browser
@requires_chromium
def test_bundle_maps_open_offline_without_errors(one_scene):
    for level, bundle in one_scene["bundles"].items():
        with open_page(bundle / "map.html") as view:
            view.page.wait_for_function("() => window.HM && document.querySelector('#hm-summary')")
            assert view.blocked_requests == [] and view.requests == [view.url]
            assert view.console_errors == [] and view.page_errors == []
            layers_on = view.evaluate("() => document.querySelectorAll('.leaflet-control-layers label').length")
            assert layers_on >= 3, level
            if level == "partner":
                assert view.evaluate("() => document.querySelectorAll('.hm-defender-cell').length") > 0


# ====================================================================== refusals


def _error_lines(stderr: str) -> list[str]:
    """stderr without the progress lines (ticks)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("✓")]


def _run_copy(scene, folder: Path, manifest: bool = True) -> Path:
    """A copy of the scene's run folder (without its manifest: inputs planted here are not the run's)."""
    shutil.copytree(scene["run"], folder)
    if not manifest:
        (folder / "manifest.json").unlink()
    return folder


def _share(scene, out: Path, level: str = "partner", run: Path | None = None, **files) -> tuple[int, str]:
    p = {**scene["paths"], **files}
    args = ["share", str(run or scene["run"]), "--level", level, "--out", str(out), "--cell-m", str(CELL_M)]
    args += ["--defenders", str(p["defenders"]), "--havens", str(p["havens"]), "--bases", str(p["bases"])]
    args += ["--incidents", str(p["acled"]), "--incidents", str(p["partner"])]
    return execute(args), ""


def test_refuses_a_defender_id_planted_in_a_havens_name(one_scene, tmp_path, capsys):
    havens = pd.read_csv(one_scene["paths"]["havens"], dtype=str, keep_default_na=False)
    victim = layers.read_defenders(one_scene["paths"]["defenders"])["id"].iloc[3]
    row = havens.index[havens["public"] == "true"][0]
    havens.loc[row, "name"] = f"Safe room of {victim}"
    planted = tmp_path / "havens.csv"
    havens.to_csv(planted, index=False)
    out = tmp_path / "bundle"
    run = _run_copy(one_scene, tmp_path / "run", manifest=False)
    capsys.readouterr()
    assert _share(one_scene, out, havens=planted, run=run)[0] == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("havenmap: error: --out")
    assert "havens.geojson" in err[0] and f"defender id {victim!r}" in err[0] and "not written" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".bundle*"))  # nothing written, no staging left
    # an earlier bundle in the folder stays exactly as it was
    earlier = tmp_path / "earlier"
    shutil.copytree(one_scene["bundles"]["partner"], earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    assert _share(one_scene, earlier, havens=planted, run=run)[0] == 2
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before


NOTES = [
    "seen at {lat:.5f}, {lon:.5f}",
    "seen at {lat:.5f}N {alon:.5f}W",
    "seen at {dms}",
    "seen at {clat} / {clon}",
    "https://maps.google.com/?q={lat:.5f}%2C{lon:.5f}",
    "UTM 13N E {x:.1f} N {y:.1f}",
    "{name} was beaten outside the home",
    "lawyer {surname} was beaten",
]


def _dms(value: float, positive: str, negative: str) -> str:
    hemisphere = positive if value >= 0 else negative
    value = abs(value)
    d, m = int(value), int(value * 60) % 60
    return f"{d}°{m:02d}'{(value * 3600) % 60:04.1f}\"{hemisphere}"


def test_free_text_is_never_published(one_scene, tmp_path):
    """A defender named or located in incident notes, in any notation: the notes are withheld at every level,
    so the bundle is written and none of it is there (the self-check, second line, reads them all:
    test_self_check_reads_every_format)."""
    defenders = layers.read_defenders(one_scene["paths"]["defenders"])
    lon, lat = defenders.geometry.x.iloc[5], defenders.geometry.y.iloc[5]
    x, y = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(lon, lat)
    name = str(defenders["name"].iloc[5])
    values = dict(lat=lat, lon=lon, alon=-lon, x=x, y=y, name=name.upper(), surname=name[-6:])
    values["dms"] = f"{_dms(lat, 'N', 'S')} {_dms(lon, 'E', 'W')}"
    values["clat"], values["clon"] = f"{lat:.5f}".replace(".", ","), f"{lon:.5f}".replace(".", ",")
    feed = pd.read_csv(one_scene["paths"]["acled"], dtype=str, keep_default_na=False)
    for i, note in enumerate(NOTES):
        feed.loc[10 + i, "notes"] = note.format(**values)
    planted = tmp_path / "acled_feed.csv"
    feed.to_csv(planted, index=False)
    run = _run_copy(one_scene, tmp_path / "run", manifest=False)
    for level in share.LEVELS:
        assert _share(one_scene, tmp_path / level, level=level, run=run, acled=planted)[0] == 0
        text = (tmp_path / level / "incidents.csv").read_text()
        assert "seen at" not in text and "beaten" not in text and "notes" not in text.splitlines()[0]
        assert ids_and_names(tmp_path / level / "incidents.csv", one_scene["secrets"]) == []


def test_missing_inputs_and_manifests(one_scene, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(one_scene["run"], run)
    outputs = json.loads((run / "manifest.json").read_text())["outputs"]
    (run / "manifest.json").unlink()  # the run's own manifest names its inputs: without it, they must be given
    capsys.readouterr()
    assert execute(["share", str(run), "--level", "public", "--out", str(tmp_path / "b")]) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "--defenders FILE --havens FILE --bases FILE" in err[0]
    # a manifest naming the inputs (the schema of 'havenmap run') is enough
    p = one_scene["paths"]

    def entry(path: Path) -> dict:
        return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    inputs = {k: entry(p[k]) for k in ("defenders", "havens", "bases")}
    inputs["incidents"] = [entry(p["acled"]), entry(p["partner"])]
    (run / "manifest.json").write_text(json.dumps({"inputs": inputs, "outputs": outputs}))
    assert execute(["share", str(run), "--level", "public", "--out", str(tmp_path / "b")]) == 0
    assert "incidents.csv" in {f.name for f in (tmp_path / "b").iterdir()}
    # a changed input is refused: the self-check must look for the people the run used
    changed = tmp_path / "defenders.csv"
    shutil.copy(p["defenders"], changed)
    inputs["defenders"] = {"path": str(changed), "sha256": "0" * 64}
    (run / "manifest.json").write_text(json.dumps({"inputs": inputs}))
    capsys.readouterr()
    assert execute(["share", str(run), "--level", "public", "--out", str(tmp_path / "c")]) == 2
    assert "changed since the run" in capsys.readouterr().err
    # explicit files must be the run's when its manifest lists that role (SHA-256), incident feeds too
    real = one_scene["run"]
    other_feed = tmp_path / "acled_feed.csv"
    other_feed.write_bytes(p["acled"].read_bytes() + b"\n")
    for option, path in (("--defenders", changed), ("--incidents", other_feed)):
        changed.write_bytes(p["defenders"].read_bytes() + b"\n")
        args = ["share", str(real), "--out", str(tmp_path / "d"), "--defenders", str(p["defenders"])]
        args += ["--havens", str(p["havens"]), "--bases", str(p["bases"]), option, str(path)]
        capsys.readouterr()
        assert execute(args) == 2
        err = _error_lines(capsys.readouterr().err)
        assert len(err) == 1 and err[0].startswith(f"havenmap: error: {option} {path}: the run used another file")
        assert not (tmp_path / "d").exists()
    # an output folder holding other files is refused (everything in it would be shared)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    args = ["share", str(one_scene["run"]), "--level", "public", "--out", str(other)]
    args += ["--defenders", str(p["defenders"]), "--havens", str(p["havens"]), "--bases", str(p["bases"])]
    assert execute(args) == 2
    assert "not an earlier share bundle" in capsys.readouterr().err


def test_public_road_risk_is_flat_per_cell(one_scene, net):
    """An incident at a defender's home lifts the risk of the road piece in front of it: the public bundle
    gives every road of a cell the cell's length-weighted mean risk (oracle: the run's own per-road risk,
    cells of road midpoints computed here); the partner bundle keeps the run's risk per road."""
    run_roads = gpd.read_file(one_scene["run"] / "threat" / "edge_risk.geojson").to_crs(UTM)
    physical = pd.Series(shapely.to_wkb(shapely.normalize(run_roads.geometry.to_numpy())))
    run_roads = run_roads.loc[~physical.duplicated().to_numpy()].reset_index(drop=True)  # a two-way road once
    mid = shapely.get_coordinates(shapely.line_interpolate_point(run_roads.geometry.to_numpy(), 0.5, normalized=True))
    run_roads["cell"] = [f"{int(a)},{int(b)}" for a, b in np.floor(mid / CELL_M)]
    length = run_roads.length.to_numpy()
    run_roads["w"] = length * run_roads["risk"].to_numpy()
    by_cell = run_roads.groupby("cell")
    expected = (by_cell["w"].sum() / by_cell.apply(lambda g: g.length.sum(), include_groups=False)).to_dict()
    public = gpd.read_file(one_scene["bundles"]["public"] / "threat_roads.geojson").to_crs(UTM)
    pmid = shapely.get_coordinates(shapely.line_interpolate_point(public.geometry.to_numpy(), 0.5, normalized=True))
    public["cell"] = [f"{int(a)},{int(b)}" for a, b in np.floor(pmid / CELL_M)]
    assert len(public) and (public.groupby("cell")["risk"].nunique() == 1).all()  # one value per cell
    assert np.allclose(public["risk"], public["cell"].map(expected), atol=1e-4)
    # the home's piece: the highest risk of its cell in the run, not singled out in the bundle
    defenders = layers.read_defenders(one_scene["paths"]["defenders"]).to_crs(UTM)
    spread = by_cell["risk"].agg(lambda r: r.max() - r.min())
    assert spread.max() > 0.5  # the run's risk really differs within a cell (the test can fail)
    home = defenders.geometry.iloc[0]
    home_cell = int(np.argmin(run_roads.distance(home)))
    cell = run_roads["cell"].iloc[home_cell]
    mine = public.loc[public["cell"] == cell, "risk"]
    assert (mine == mine.iloc[0]).all() if len(mine) else True
    partner = gpd.read_file(one_scene["bundles"]["partner"] / "threat_roads.geojson").to_crs(UTM)
    truth = dict(zip(shapely.to_wkb(shapely.normalize(run_roads.geometry.to_numpy())), run_roads["risk"], strict=True))
    got = [truth.get(k) for k in shapely.to_wkb(shapely.normalize(partner.geometry.to_numpy()))]
    assert None not in got and np.allclose(partner["risk"], got, atol=1e-4)


def test_small_cells_show_no_status_or_level(one_scene):
    """Where counts are blank (fewer than k), the status and the alert level are blank too: table and map."""
    bundle = one_scene["bundles"]["partner"]
    alerts = _io.read_table(bundle / "alerts_by_area.csv")
    hidden = alerts["suppressed"].astype(bool)
    assert alerts.loc[hidden, ["level", "defenders_alerted", "critical"]].isna().all().all()
    assert alerts.loc[~hidden, "level"].notna().all()
    assert all("fewer than" in r for r in alerts.loc[hidden, "reason"])
    text = (bundle / "map.html").read_text()
    calls = [json.loads(m) for m in re.findall(r'HM\.call\("defenderCells",\s*\w+,\s*(.*)\);\s*$', text, re.M)]
    items = [item for call in calls for item in call["items"]]
    few = [i for i in items if i["badge"][0][0].startswith("<")]
    assert few and len(few) < len(items)  # the scene has both kinds of cell
    from havenmap import _maphtml as mh

    for item in few:
        assert item["badge"] == [[f"<{K}", "hm-st-few"]] and item["style"]["fillColor"] == mh.COUNT_COLOUR
        assert not any(line.startswith("some ") for line in item["tip"])
    # alerts drawn on the map only on published cells
    cell_calls = [json.loads(m) for m in re.findall(r'HM\.call\("cellAlerts",\s*\w+,\s*(.*)\);\s*$', text, re.M)]
    hidden_cells = {items.index(i) for i in few}
    drawn = {a["cell"] for call in cell_calls for a in call.get("items", [])}
    assert not drawn & hidden_cells


def test_incidents_after_as_of_are_left_out(one_scene, tmp_path):
    feed = pd.read_csv(one_scene["paths"]["acled"], dtype=str, keep_default_na=False)
    feed.loc[:4, "event_date"] = "2024-07-15"  # after the run's as_of (2024-06-30)
    planted = tmp_path / "acled_feed.csv"
    feed.to_csv(planted, index=False)
    run = _run_copy(one_scene, tmp_path / "run", manifest=False)
    assert _share(one_scene, tmp_path / "b", run=run, acled=planted)[0] == 0
    inc = _io.read_table(tmp_path / "b" / "incidents.csv")
    assert (pd.to_datetime(inc["date"]) <= pd.Timestamp(AS_OF)).all()
    assert "5 later ones left out" in json.loads((tmp_path / "b" / "WITHHELD.json").read_text())["inputs"]["incidents"]


def test_a_bundle_verifies_like_a_run(one_scene, tmp_path, capsys):
    for level, bundle in one_scene["bundles"].items():
        copy = shutil.copytree(bundle, tmp_path / level)
        manifest = json.loads((copy / "manifest.json").read_text())
        assert manifest["inputs"] == {} and set(manifest["outputs"]) == set(manifest["files"])
        assert all(entry["description"] for entry in manifest["files"].values())
        assert execute(["verify", str(copy)]) == 0
        data = bytearray((copy / "incidents.csv").read_bytes())
        data[-2] = ord("9") if data[-2] != ord("9") else ord("8")
        (copy / "incidents.csv").write_bytes(bytes(data))
        capsys.readouterr()
        assert execute(["verify", str(copy)]) == 1
        assert "incidents.csv" in capsys.readouterr().out + capsys.readouterr().err


def test_refusals_of_options_and_run_folders(one_scene, tmp_path, capsys):
    p = one_scene["paths"]
    base = ["share", str(one_scene["run"]), "--defenders", str(p["defenders"]), "--havens", str(p["havens"])]
    base += ["--bases", str(p["bases"])]
    cases = [
        (["--out", str(tmp_path / "a"), "--k", "1"], "--k 1: a share bundle needs k of at least 2"),
        (["--out", str(tmp_path / "a"), "--cell-m", "1e9"], "--cell-m 1e+09: give a finite cell side of at most"),
        (["--out", str(tmp_path / "a"), "--cell-m", "inf"], "--cell-m inf: give a finite cell side of at most"),
        (["--out", str(one_scene["run"] / "threat")], "lies inside the DIR input folder"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert execute([*base, *extra]) == 2, extra
        err = _error_lines(capsys.readouterr().err)
        assert len(err) == 1 and message in err[0], (extra, err)
    assert not (tmp_path / "a").exists()
    # no threat/ in the run and no --network: refused, saying what to pass
    run = _run_copy(one_scene, tmp_path / "run", manifest=False)
    shutil.rmtree(run / "threat")
    args = ["share", str(run), "--out", str(tmp_path / "b"), *base[2:]]
    capsys.readouterr()
    assert execute(args) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "pass --network FILE" in err[0]


def test_a_rerun_into_an_old_folder_is_read_by_its_manifest(one_scene, tmp_path):
    """A run without patrols written over an old one: patrol/ is left over, the manifest does not list it."""
    run = _run_copy(one_scene, tmp_path / "run")
    record = json.loads((run / "manifest.json").read_text())
    record["inputs"].pop("bases")
    record["outputs"] = {k: v for k, v in record["outputs"].items() if not k.startswith("patrol/")}
    (run / "manifest.json").write_text(json.dumps(record))
    assert (run / "patrol" / "patrol_routes.geojson").is_file()
    assert execute(["share", str(run), "--level", "partner", "--out", str(tmp_path / "b")]) == 0
    assert not (tmp_path / "b" / "patrol_areas.csv").exists()


def test_self_check_reads_every_format(tmp_path):
    """The bundle's self-check on planted files: each format and file type is caught."""
    from shapely.geometry import Point

    defenders = gpd.GeoDataFrame(
        {
            "id": ["D1x", "7", "D3z", "D4w", "D5v"],
            "name": ["Ana Lopez", "Bo", "José Pérez", "Protest", "Refugio Norte"],
        },
        geometry=[Point(-102.2800, 21.8700), Point(-102.2700, 21.8650), *[Point(-102.2, 21.9)] * 3],
        crs="EPSG:4326",
    )
    havens = gpd.GeoDataFrame(
        {
            "id": ["H9", "PUB", "PUB2"],
            "name": ["Casa Segura", "Embajada", "Refugio Norte"],
            "public": [False, True, True],
        },
        geometry=[Point(-102.2600, 21.8600), Point(-102.2803, 21.8701), Point(-102.1, 21.95)],
        crs="EPSG:4326",
    )
    x, y = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(-102.2800, 21.8700)
    plants = {
        "a.csv": "cell_id,lat,lon\nc1,21.870010,-102.280020\n",
        "b.csv": "lon,what,lat\n-102.28001,x,21.87002\n",
        "c.geojson": json.dumps({"type": "Point", "coordinates": [-102.2800012, 21.8699991]}),
        "d.txt": f"easting {x:.1f} northing {y:.1f}",
        "e.txt": "ana lopez was here",
        "f.json": json.dumps({"defender_id": "7"}),
        "g.csv": "name\nCasa Segura\n",
        "h.gpx": "<gpx/>",
        "i.txt": "the safe house H9",
        "j.html": '<script>HM.call("lines", map_1, {"enc":"'
        + _encode([(21.870012, -102.280017), (21.9, -102.2)])
        + '","counts":[2]});</script>',
        "m.txt": "seen at 21.87001N 102.28002W",
        "n.txt": "seen at 21°52'12.0\"N 102°16'48.1\"W",
        "o.txt": "seen at 21,87001 / -102,28002",
        "p.txt": "https://maps.google.com/?q=21.87001%2C-102.28002",
        "q.txt": "JOSE PEREZ was beaten",
        "r.txt": "lawyer Pérez was beaten",
        "s.json": json.dumps({"name": "BO"}),  # a two-letter name: as a name field
        "t.csv": "name\nProtest\n",  # a common word as a name field: still a name
    }
    clean = {
        "k.txt": "far away 21.95, -102.10; the embassy at 21.8701, -102.2803; grid 21.87, -102.28 (2 decimals)",
        "l.csv": "id,n\nD10,7\n",  # 'D1x' is not a token of this, 7 is a count, not an id field
        "u.json": json.dumps({"n": "7", "label": "7 incidents"}),  # a count, not an id field
        "v.html": '<script>HM.call("defenderCells", map_1, {"items": [{"id": 7, "tip": ["7 defenders"]}]});</script>',
        "w.csv": "sub_event_type,n\nPeaceful protest,3\n",  # the defender "Protest": an event type word
        "x.json": json.dumps({"name": "Refugio Norte", "kind": "clinic"}),  # a public haven of that name
        "y.json": json.dumps({"legend": "<ul><li>bo</li></ul>"}),  # two letters in free text: a tag, a syllable
    }
    for name, text in {**plants, **clean}.items():
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_text(text)
        found = share.check_bundle(folder, defenders, havens, options=share.ShareOptions(cell_m=100))
        assert bool(found) == (name in plants), (name, found)


def _encode(points: list[tuple[float, float]]) -> str:
    from havenmap import _maphtml as mh

    return mh.encode_coords(np.array(points))
