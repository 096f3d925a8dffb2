"""Write a synthetic country-sized OSM PBF: a jittered street grid with shape points and one-ways.

Used by the scale benchmarks (``bench_scale.py``); not part of the package. The grid has
``side × side`` intersections; every block edge carries ``shape`` intermediate vertices, so
the file holds about ``side² × (1 + 2·shape)`` road nodes (OSM nodes used by highway ways).
Streets run as ways of ``way_blocks`` blocks; about 10 % of streets are one-way, every 10th
street is a primary road with a ``maxspeed``; 2 % of block edges are missing (dead ends).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def write_grid_pbf(
    path: Path,
    side: int,
    shape: int = 1,
    way_blocks: int = 8,
    seed: int = 0,
    spacing_deg: float = 0.0009,
    origin=(30.0, 0.5),
) -> dict[str, int]:
    """Write the grid to ``path`` (overwritten) and return counts of nodes and ways."""
    import osmium

    rng = np.random.default_rng(seed)
    lon0, lat0 = origin
    jitter = rng.uniform(-0.2, 0.2, size=(side, side, 2)) * spacing_deg
    ix, iy = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    lon = lon0 + ix * spacing_deg + jitter[..., 0]
    lat = lat0 + iy * spacing_deg + jitter[..., 1]
    inter_id = 1 + ix * side + iy  # node ids of intersections
    next_id = side * side + 1
    missing = rng.random((2, side, side)) < 0.02
    path = Path(path)
    if path.exists():
        path.unlink()
    writer = osmium.SimpleWriter(str(path))
    n_nodes = n_ways = 0
    way_id = 1
    try:
        for i in range(side):
            for j in range(side):
                writer.add_node(
                    osmium.osm.mutable.Node(id=int(inter_id[i, j]), location=(float(lon[i, j]), float(lat[i, j])))
                )
        n_nodes += side * side
        for direction in (0, 1):  # 0: streets along x (fixed j), 1: along y (fixed i)
            for street in range(side):
                oneway = rng.random() < 0.10
                primary = street % 10 == 0
                tags = {"highway": "primary" if primary else "residential"}
                if primary:
                    tags["maxspeed"] = "60"
                if oneway:
                    tags["oneway"] = "yes"
                refs: list[int] = []
                for step in range(side):
                    a = (step, street) if direction == 0 else (street, step)
                    refs.append(int(inter_id[a]))
                    blocks_done = len(refs) > 1 and (step % way_blocks == 0 or step == side - 1)
                    gap = step + 1 < side and missing[direction, a[0], a[1]]
                    if blocks_done or gap or step == side - 1:
                        if len(refs) > 1:
                            writer.add_way(osmium.osm.mutable.Way(id=way_id, nodes=refs, tags=tags))
                            way_id += 1
                            n_ways += 1
                        refs = [] if gap else [refs[-1]]
                        if gap:
                            continue
                    if step + 1 < side and not gap:
                        b = (step + 1, street) if direction == 0 else (street, step + 1)
                        for s in range(1, shape + 1):
                            t = s / (shape + 1)
                            x = lon[a] * (1 - t) + lon[b] * t + rng.normal(0, spacing_deg * 0.03)
                            y = lat[a] * (1 - t) + lat[b] * t + rng.normal(0, spacing_deg * 0.03)
                            writer.add_node(osmium.osm.mutable.Node(id=next_id, location=(float(x), float(y))))
                            refs.append(next_id)
                            next_id += 1
                            n_nodes += 1
    finally:
        writer.close()
    return {"nodes": n_nodes, "ways": n_ways, "intersections": side * side}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--side", type=int, default=580)
    parser.add_argument("--shape", type=int, default=1)
    args = parser.parse_args()
    print(write_grid_pbf(args.out, args.side, args.shape))
