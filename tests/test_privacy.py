"""k-anonymous defender cells (havenmap.privacy): hand-worked quadtree merges and properties on random data.

The oracles do not share the implementation: cells are checked with shapely predicates
(each point inside its own cell, cells disjoint, corners on the grid), counts by brute
force, and the hand-worked case below was drawn on paper.
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Point

from havenmap.errors import InputError
from havenmap.privacy import MIN_CELL_M, DefenderPrivacy, defender_cells

UTM35 = "EPSG:32635"  # Helsinki's zone: the grid is laid in the points' own UTM zone
X0, Y0 = 384_800.0, 6_670_400.0  # multiples of 800 m, so the quadtree squares start here


def _points(xy, crs=UTM35) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=[Point(x, y) for x, y in xy], crs=crs)


def _cell(xy, size):
    return (int(np.floor(xy[0] / size)), int(np.floor(xy[1] / size)))


def test_hand_worked_quadtree_merge():
    """100 m cells, k = 3 (drawn on paper).

    * A (0, 0): 3 points -> published as it is.
    * B (1, 0) and C (0, 1): 1 point each -> their 200 m parent holds only 2 -> up a level.
    * D (3, 3): 1 point -> with B and C in the 400 m square (0, 0): 3 points -> one cell,
      the 400 m square minus A.
    * E far away (100, 100): alone -> suppressed after the last level (400 m square).
    """
    a = [(X0 + 10, Y0 + 10), (X0 + 50, Y0 + 50), (X0 + 90, Y0 + 20)]
    b, c, d = (X0 + 150, Y0 + 30), (X0 + 40, Y0 + 160), (X0 + 350, Y0 + 370)
    e = (X0 + 10_050, Y0 + 10_050)
    pts = _points([*a, b, c, d, e])
    status = np.array(["ok", "ok", "late", "late", "ok", "late", "ok"], dtype=object)
    got = defender_cells(pts, status, cell_size_m=MIN_CELL_M, k=3, categories=("ok", "late"), max_levels=2)
    cells = got.cells.to_crs(UTM35)
    assert got.cell_of.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert cells["level"].tolist() == [0, 2, 2]
    assert cells["count"].tolist() == [3, 3, 1]
    assert cells["ok"].tolist() == [2, 1, 1] and cells["late"].tolist() == [1, 2, 0]
    assert cells["suppressed"].tolist() == [False, False, True]
    assert cells["size_m"].tolist() == [100.0, 400.0, 400.0]
    square = shapely.box(X0, Y0, X0 + 100, Y0 + 100)
    assert cells.geometry.iloc[0].symmetric_difference(square).area < 1.0
    merged = shapely.box(X0, Y0, X0 + 400, Y0 + 400).difference(square)
    assert cells.geometry.iloc[1].symmetric_difference(merged).area < 1.0  # 150,000 m², an L shape
    assert cells.geometry.iloc[1].area == pytest.approx(150_000, rel=1e-4)
    far = shapely.box(X0 + 10_000, Y0 + 10_000, X0 + 10_400, Y0 + 10_400)
    assert cells.geometry.iloc[2].symmetric_difference(far).area < 1.0


@pytest.mark.parametrize(("seed", "size", "k"), [(0, 100.0, 5), (1, 250.0, 3), (2, 500.0, 5), (3, 100.0, 1)])
def test_cells_properties_on_random_points(seed, size, k):
    """Every point in its own cell, cells disjoint, counts by brute force, >= k unless suppressed, grid corners."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 6000, (6, 2))
    xy = np.concatenate(
        [centres[rng.integers(0, 6, 300)] + rng.normal(0, 400, (300, 2)), rng.uniform(0, 9000, (20, 2))]
    )
    xy += (X0, Y0)
    pts = _points(xy).to_crs("EPSG:4326")  # any CRS in: the grid is the points' UTM zone
    got = defender_cells(pts, cell_size_m=size, k=k)
    cells = got.cells.to_crs(got.crs)
    geoms = cells.geometry.to_numpy()
    utm = pts.to_crs(got.crs).geometry.to_numpy()
    # each point lies in (or on the border of) the cell it was counted in, and in no other cell
    inside = shapely.intersects(geoms[got.cell_of], utm)
    assert inside.all()
    for i, j in itertools.combinations(range(len(geoms)), 2):
        assert geoms[i].intersection(geoms[j]).area < 1e-3
    # counts by brute force
    brute = np.array([(got.cell_of == c).sum() for c in range(len(geoms))])
    assert cells["count"].tolist() == brute.tolist() and brute.sum() == len(xy)
    # the floor: published counts are >= k; what is below k is marked
    assert (cells.loc[~cells["suppressed"], "count"] >= k).all()
    assert (cells.loc[cells["suppressed"], "count"] < k).all()
    # every corner of every cell is on the grid (multiples of the cell side): positions carry
    # no information beyond the cell
    corners = shapely.get_coordinates(geoms)
    assert np.allclose(corners / size, np.round(corners / size), atol=1e-6)
    # a level-0 cell of k or more is never merged away
    cell0 = {}
    for p in utm:
        key = _cell((p.x, p.y), size)
        cell0[key] = cell0.get(key, 0) + 1
    assert (cells["level"] == 0).sum() == sum(1 for v in cell0.values() if v >= k)


def test_minimum_cell_size_and_k_are_enforced():
    pts = _points([(X0 + 1, Y0 + 1)])
    with pytest.raises(InputError, match=r"at least 100 m"):
        defender_cells(pts, cell_size_m=1)
    with pytest.raises(InputError, match=r"k-anonymity"):
        defender_cells(pts, k=0)
    with pytest.raises(InputError, match=r"cell_size_m"):
        DefenderPrivacy(cell_size_m=float("nan"))
    assert DefenderPrivacy(exact=True, cell_size_m=1).exact  # exact maps do not use cells
    with pytest.raises(InputError, match="unknown key 'k_anon'"):
        DefenderPrivacy.from_dict({"k_anon": 3})


def test_privacy_from_toml(tmp_path):
    path = tmp_path / "scenario.toml"
    path.write_text("[privacy]\ncell_size_m = 250\nk = 8\nroutes = false\n", encoding="utf-8")
    got = DefenderPrivacy.from_file(path)
    assert (got.cell_size_m, got.k, got.routes, got.exact) == (250, 8, False, False)
    path.write_text("[privacy]\nk = 0\n", encoding="utf-8")
    with pytest.raises(InputError, match="k 0"):
        DefenderPrivacy.from_file(path)
