"""Country-sized end to end: a 1M-road-node .osm.pbf, 100 havens, 10,000 defenders, `havenmap coverage`.

Writes a synthetic street-grid PBF (``synthetic_pbf.py``: ~1,000,000 OSM road nodes, jittered,
one-ways, primaries with maxspeed, dead ends) and random havens/defenders inside it, then runs
the real CLI in a child process and reports wall time, the steps' own timings and the child's
peak memory (``ru_maxrss``). Baseline in the same run: the time pyosmium takes to hand every
road way to Python with its node locations, doing no work per node (the floor for any loader
built on pyosmium), so the ratio shows what reading the nodes, building the network and
answering coverage add. Usage::

    python benchmarks/bench_scale.py [--side 580] [--shape 1] [--havens 100] [--defenders 10000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_pbf import write_grid_pbf


def _points(n: int, prefix: str, bounds: tuple[float, float, float, float], rng) -> pd.DataFrame:
    west, south, east, north = bounds
    return pd.DataFrame(
        {
            "id": [f"{prefix}{i:05d}" for i in range(n)],
            "latitude": rng.uniform(south, north, n),
            "longitude": rng.uniform(west, east, n),
        }
    )


def _pyosmium_floor(path: Path) -> float:
    """Seconds for pyosmium to hand every road way to Python with its node locations, no work per node."""
    code = (
        "import time, osmium; t = time.perf_counter(); n = 0\n"
        f"p = osmium.FileProcessor({str(path)!r}, osmium.osm.NODE | osmium.osm.WAY).with_locations()\n"
        "for o in p.with_filter(osmium.filter.KeyFilter('highway')):\n"
        "    n += o.is_way() and len(o.nodes)\n"
        "print(time.perf_counter() - t)"
    )
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=580, help="intersections per side of the grid")
    parser.add_argument("--shape", type=int, default=1, help="shape points per block edge")
    parser.add_argument("--havens", type=int, default=100)
    parser.add_argument("--defenders", type=int, default=10_000)
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temp dir)")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="havenmap-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    pbf = work / f"grid{args.side}x{args.shape}.osm.pbf"
    if not pbf.exists():
        t = time.perf_counter()
        counts = write_grid_pbf(pbf, args.side, args.shape)
        print(
            f"wrote {pbf.name}: {counts['nodes']:,} road nodes, {counts['ways']:,} ways "
            f"({pbf.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s"
        )
    spacing = 0.0009
    bounds = (30.0, 0.5, 30.0 + spacing * (args.side - 1), 0.5 + spacing * (args.side - 1))
    rng = np.random.default_rng(0)
    _points(args.havens, "H", bounds, rng).to_csv(work / "havens.csv", index=False)
    _points(args.defenders, "D", bounds, rng).to_csv(work / "defenders.csv", index=False)

    floor = _pyosmium_floor(pbf)
    cmd = [
        sys.executable,
        "-m",
        "havenmap.cli",
        "coverage",
        "--network",
        str(pbf),
        "--havens",
        str(work / "havens.csv"),
        "--defenders",
        str(work / "defenders.csv"),
        "--minutes",
        "5,10,15",
        "--out",
        str(work / "out"),
    ]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    if proc.returncode != 0:
        sys.exit(f"havenmap coverage failed:\n{proc.stderr}")
    print("\nsteps (from the CLI's progress lines):")
    for line in proc.stderr.splitlines():
        if line.startswith("✓"):
            print("  " + line[2:])
    print(proc.stdout.strip())
    print(
        f"\n| what | value |\n|---|---|\n| road nodes in the file | ≈{args.side**2 * (1 + 2 * args.shape):,} |"
        f"\n| pyosmium: road ways with node locations, no work per node (floor) | {floor:.1f} s |"
        f"\n| `havenmap coverage` end to end, {args.havens} havens × {args.defenders:,} defenders | {wall:.1f} s |"
        f"\n| end to end / floor | {wall / floor:.1f}× |"
        f"\n| peak memory (child RSS) | {peak_gb:.2f} GB |"
    )
    print(f"\n(files in {work})")


if __name__ == "__main__":
    main()
