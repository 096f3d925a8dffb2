"""Country-sized road line layer → network: havenmap vs momepy ``gdf_to_nx`` and spaghetti, same run.

Writes a synthetic GeoParquet road layer (EPSG:4326): a jittered street grid of about
``--segments`` line features (one per block; a third bend through an extra vertex), some
missing blocks (dead ends), 1 % of blocks ending 0.4 m short of their junction (joined by the
snap tolerance), a few long avenues drawn as one line over many blocks (their intersections are
shared interior vertices), diagonal expressways crossing streets without a vertex (bridges, left
apart), ~10 % one-way (Geofabrik ``F``/``T``),
``maxspeed`` numbers with 0 = unknown for a third, and ``fclass``. Then, each in a fresh child
process so peak memory (``ru_maxrss``) is the step's own, it times

- havenmap: ``read_lines(... oneway_column, speed_column, class_column)`` — read + network;
- the read alone (``geopandas.read_parquet``), the floor for any loader;
- momepy ``gdf_to_nx`` (primal, directed, on the layer reprojected to metres);
- spaghetti ``Network`` (only up to ``--spaghetti-max`` segments, default 10,000: it is pure
  Python and needs about a minute for 10,000 segments).

and prints a markdown table with ratios to havenmap. Targets: 1M segments in ≤ 30 s and ≤ 2 GB.
Usage::

    python benchmarks/bench_lines.py [--segments 10000,100000,1000000] [--spaghetti-max 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# (imports, timed work) per contender: imports are not timed, reading the file is
_WORKERS = {
    "read": (
        "import geopandas as gpd",
        """
frame = gpd.read_parquet(PATH)
result = {"features": len(frame)}
""",
    ),
    "havenmap": (
        "from havenmap.lines import network_report, read_lines",
        """
net = read_lines(PATH, oneway_column="oneway", speed_column="maxspeed", class_column="fclass")
r = network_report(net)
result = {"nodes": net.n_nodes, "edges": net.n_edges, "components": r.components, "dangling": r.dangling_ends}
""",
    ),
    "momepy": (
        "import geopandas as gpd, momepy, warnings",
        """
frame = gpd.read_parquet(PATH)
frame = frame.to_crs(frame.estimate_utm_crs())
frame["one_way"] = frame["oneway"] != "B"
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    graph = momepy.gdf_to_nx(frame, approach="primal", directed=True, oneway_column="one_way")
result = {"nodes": graph.number_of_nodes(), "edges": graph.number_of_edges()}
""",
    ),
    "spaghetti": (
        "import geopandas as gpd, spaghetti, warnings",
        """
frame = gpd.read_parquet(PATH)
frame = frame.to_crs(frame.estimate_utm_crs())
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    network = spaghetti.Network(in_data=frame)
result = {"nodes": len(network.vertex_list), "edges": len(network.arcs)}
""",
    ),
}

_RUNNER = """
import json, resource, sys, time
{imports}
PATH = sys.argv[1]
start = time.perf_counter()
{work}
result["seconds"] = time.perf_counter() - start
result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def write_layer(path: Path, segments: int, seed: int = 0) -> dict:
    """Write the synthetic road layer; return its size."""
    import geopandas as gpd
    import pyproj
    import shapely

    rng = np.random.default_rng(seed)
    # blocks: 2·side² less the avenues' (1/25) and the 3 % missing: about 1.9·side² lines
    side = int(np.sqrt(segments / 1.9) + 0.5) + 1
    spacing = 100.0
    ix, iy = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    xy = np.column_stack([ix.ravel(), iy.ravel()]) * spacing + rng.normal(0, 8, (side * side, 2))
    node = np.arange(side * side).reshape(side, side)
    horizontal = np.column_stack([node[:-1, :].ravel(), node[1:, :].ravel()])
    vertical = np.column_stack([node[:, :-1].ravel(), node[:, 1:].ravel()])
    blocks = np.vstack([horizontal, vertical])
    # a few avenues: every 25th grid row drawn as one line through all its blocks (shared interior vertices)
    avenue_rows = np.arange(0, side, 25)
    on_avenue = np.isin(blocks[:, 0], node[avenue_rows, :].ravel()) & (blocks[:, 1] - blocks[:, 0] == 1)
    single = blocks[~on_avenue & (rng.random(len(blocks)) > 0.03)]  # missing blocks: dead ends
    bend = rng.random(len(single)) < 0.33
    mid = (xy[single[:, 0]] + xy[single[:, 1]]) / 2 + rng.normal(0, 6, (len(single), 2))
    counts = np.where(bend, 3, 2)
    coords = np.empty((counts.sum(), 2))
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    coords[start] = xy[single[:, 0]]
    coords[start + counts - 1] = xy[single[:, 1]]
    coords[start[bend] + 1] = mid[bend]
    # 1 % of blocks stop 0.4 m short of their junction: loose ends joined by the snap tolerance
    short = np.flatnonzero(rng.random(len(single)) < 0.01)
    last = start[short] + counts[short] - 1
    towards = coords[last - 1] - coords[last]
    coords[last] += 0.4 * towards / np.hypot(*towards.T)[:, None]
    lines = list(shapely.linestrings(coords, indices=np.repeat(np.arange(len(single)), counts)))
    for row in avenue_rows:
        lines.append(shapely.linestrings(xy[node[row, :]]))
    # expressways on bridges: diagonals over the grid, crossing streets without shared vertices
    extent = (side - 1) * spacing
    for k in range(max(1, side // 100)):
        offset = (k + 0.5) * extent / max(1, side // 100)
        lines.append(shapely.linestrings([[offset, 0.0], [0.0, offset]]))
    n = len(lines)

    utm = pyproj.CRS.from_epsg(32736)  # UTM 36S: East Africa
    to_geo = pyproj.Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    origin = np.array([500_000.0, 9_800_000.0])
    geoms = shapely.transform(np.asarray(lines), lambda c: np.column_stack(to_geo.transform(*(c + origin).T)))
    fclass = rng.choice(["residential", "tertiary", "secondary", "primary", "unclassified", "track"], n)
    maxspeed = np.where(rng.random(n) < 0.33, 0, rng.choice([30, 40, 50, 60, 80], n))
    oneway = rng.choice(["B", "F", "T"], n, p=[0.9, 0.07, 0.03])
    frame = gpd.GeoDataFrame(
        {"osm_id": np.arange(n), "fclass": fclass, "name": "road", "oneway": oneway, "maxspeed": maxspeed},
        geometry=geoms,
        crs="EPSG:4326",
    )
    frame.to_parquet(path)
    return {"features": n}


def measure(worker: str, path: Path, timeout: float) -> dict | None:
    imports, work = _WORKERS[worker]
    code = _RUNNER.format(imports=imports, work=work)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cell(result: dict | None, base: dict) -> str:
    if result is None:
        return "skipped"
    if "timeout" in result:
        return f"> {result['timeout']:.0f} s"
    if "error" in result:
        return "failed"
    ratio = result["seconds"] / base["seconds"]
    size = f", {result['nodes']:,} / {result['edges']:,}" if "nodes" in result else ""
    return f"{result['seconds']:.1f} s ({ratio:.1f}×), {result['peak_mb']:,.0f} MB{size}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", default="10000,100000,1000000", help="comma-separated layer sizes")
    parser.add_argument("--spaghetti-max", type=int, default=10_000, help="largest layer given to spaghetti")
    parser.add_argument("--momepy-max", type=int, default=1_000_000, help="largest layer given to momepy")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a peer run is abandoned")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="havenmap-lines-"))
    work.mkdir(parents=True, exist_ok=True)

    rows = []
    for size in (int(s) for s in args.segments.split(",")):
        path = work / f"roads_{size}.parquet"
        start = time.perf_counter()
        facts = write_layer(path, size)
        print(f"wrote {path.name}: {facts['features']:,} features in {time.perf_counter() - start:.1f} s", flush=True)
        ours = measure("havenmap", path, args.timeout)
        if "seconds" not in ours:
            raise SystemExit(f"havenmap failed on {path}: {ours}")
        read = measure("read", path, args.timeout)
        momepy = measure("momepy", path, args.timeout) if size <= args.momepy_max else None
        spaghetti = measure("spaghetti", path, args.timeout) if size <= args.spaghetti_max else None
        print(f"  havenmap: {ours}\n  read: {read}\n  momepy: {momepy}\n  spaghetti: {spaghetti}", flush=True)
        rows.append((facts["features"], ours, read, momepy, spaghetti))

    print()
    print("| segments | havenmap read_lines | read only | momepy gdf_to_nx | spaghetti Network |")
    print("|---:|---|---|---|---|")
    for features, ours, read, momepy, spaghetti in rows:
        print(
            f"| {features:,} | {ours['seconds']:.1f} s, {ours['peak_mb']:,.0f} MB, "
            f"{ours['nodes']:,} nodes / {ours['edges']:,} edges | {_cell(read, ours)} | {_cell(momepy, ours)} | "
            f"{_cell(spaghetti, ours)} |"
        )
    print(
        "\nTimes include reading the file; (×) = time relative to havenmap's read_lines. Peers build other graphs: "
        "momepy joins only identical line ends (no interior vertices, no tolerance), spaghetti makes every vertex "
        "a node."
    )
    big = max(rows, key=lambda r: r[0])
    ok = big[1]["seconds"] <= 30 and big[1]["peak_mb"] <= 2048
    print(
        f"Target (1M segments ≤ 30 s, ≤ 2 GB): {big[0]:,} segments in {big[1]['seconds']:.1f} s, "
        f"{big[1]['peak_mb']:,.0f} MB peak — {'met' if ok else 'NOT met'}."
    )


if __name__ == "__main__":
    main()
