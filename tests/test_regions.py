"""Confidence regions (core.regions) on synthetic likelihood maps whose highest-density regions are known: a von
Mises–Fisher cap (analytic area per level), a uniform disc, two blobs, a blob across the antimeridian."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geoclip_qgis.core.answers.places import unit_vectors
from geoclip_qgis.core.answers.regions import (
    confidence_regions,
    format_area,
    hdr_level_at,
    hdr_thresholds,
    region_features,
    summary,
)
from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.maps.likelihood import LikelihoodMap
from geoclip_qgis.core.maps.raster import Grid
from geoclip_qgis.shared.geodesy import EARTH_RADIUS_KM as R

pytest.importorskip("scipy")
KAPPA = 300.0


_VECTORS: dict = {}


def cosines(grid: Grid, lat: float, lon: float) -> np.ndarray:
    if grid not in _VECTORS:
        _VECTORS[grid] = unit_vectors(grid.centres()).astype(np.float32)
    return (_VECTORS[grid] @ unit_vectors([[lat, lon]])[0].astype(np.float32)).reshape(grid.shape).astype(np.float64)


def as_map(grid: Grid, density: np.ndarray) -> LikelihoodMap:
    density = density / (density * grid.row_areas_km2()[:, None]).sum()
    r, c = np.unravel_index(int(np.argmax(density)), density.shape)
    return LikelihoodMap(grid, density.astype(np.float32), (float(grid.row_lats(r)), float(grid.col_lons(c))))


def vmf_cap_km2(level: float, kappa: float = KAPPA) -> float:
    """Area of the cap holding `level` of a vMF density exp(κ cos θ) on the sphere."""
    cos_t = 1.0 + math.log(1.0 - level * (1.0 - math.exp(-2.0 * kappa))) / kappa
    return 2.0 * math.pi * R**2 * (1.0 - cos_t)


def rounding_km2(area_km2: float, grid: Grid, lat: float) -> float:
    """What the cells along a round region's edge can add or remove: perimeter × one cell's size (+ margin)."""
    perimeter = 2.0 * math.sqrt(math.pi * area_km2)
    cell = grid.res * 111.2
    return perimeter * cell * (1.0 + 1.0 / max(0.2, math.cos(math.radians(lat))))


@pytest.fixture(scope="module")
def world() -> Grid:
    return Grid.over(None, 0.25)


def test_vmf_cap_areas_match_the_analytic_values(world):
    lmap = as_map(world, np.exp(KAPPA * (cosines(world, 45.0, 10.0) - 1.0)))
    regions = confidence_regions(lmap, (0.9, 0.5))
    assert [r.level for r in regions] == [0.5, 0.9]
    for r in regions:
        exact = vmf_cap_km2(r.level)
        assert abs(r.area_km2 - exact) < rounding_km2(exact, world, 45.0), (r.level, r.area_km2, exact)
        assert r.parts == 1
        assert r.level <= r.mass < r.level + 0.02
        assert r.contains(45.0, 10.0) and not r.contains(-45.0, 10.0)
        assert r.area_km2 == pytest.approx(float((r.mask * world.row_areas_km2()[:, None]).sum()))
    assert regions[0].area_km2 < regions[1].area_km2
    assert (regions[0].mask <= regions[1].mask).all()  # nested


def test_thresholds_equal_a_full_sort():
    """Against the textbook rule on the same float32 map: sort every cell, cumulate mass, cut."""
    rng = np.random.default_rng(0)
    grid = Grid.over((-30, -20, 30, 40), 0.5)
    density = np.exp(rng.normal(0, 3, grid.shape)).astype(np.float32)
    density[rng.random(grid.shape) < 0.05] = 0.0
    density[3, :7] = np.nan
    areas = grid.row_areas_km2()[:, None]
    levels = [0.1, 0.5, 0.9, 0.99]
    got = hdr_thresholds(density, areas, levels)
    d = np.where(np.isfinite(density), density, np.float32(0))
    m = (d * areas.astype(np.float32)).ravel().astype(np.float64)
    order = np.argsort(-d.ravel(), kind="stable")
    cum = np.cumsum(m[order]) / m.sum()
    for level, t in zip(levels, got):
        assert t == d.ravel()[order][np.searchsorted(cum, level - 1e-12)]


def test_uniform_disc_is_its_own_region(world):
    radius_km = 800.0
    inside = cosines(world, -20.0, 30.0) >= math.cos(radius_km / R)
    lmap = as_map(world, inside.astype(np.float64))
    cells_area = float((inside * world.row_areas_km2()[:, None]).sum())
    for r in confidence_regions(lmap, (0.5, 0.9)):
        # every cell ties: the smallest region holding the level can only be the whole disc
        assert (r.mask == inside).all()
        assert r.area_km2 == pytest.approx(cells_area, rel=1e-9)
        assert r.mass == pytest.approx(1.0, abs=1e-6) and r.parts == 1
    cap = 2 * math.pi * R**2 * (1 - math.cos(radius_km / R))
    assert abs(cells_area - cap) < rounding_km2(cap, world, -20.0)


def test_two_blobs_make_two_parts(world):
    density = np.exp(KAPPA * (cosines(world, 40.0, -100.0) - 1)) + np.exp(KAPPA * (cosines(world, -10.0, 20.0) - 1))
    lmap = as_map(world, density)
    for r in confidence_regions(lmap, (0.5, 0.9)):
        assert r.parts == 2
        assert len(r.geometry["coordinates"]) == 2
        exact = 2 * vmf_cap_km2(r.level)  # each blob holds `level` of its own half
        assert abs(r.area_km2 - exact) < 2 * rounding_km2(exact / 2, world, 40.0)
        assert r.summary().endswith("in 2 parts")


def test_polygons_rasterise_back_to_the_mask(world):
    from rasterio.features import rasterize

    density = np.exp(KAPPA * (cosines(world, 60.0, 100.0) - 1)) + 0.6 * np.exp(KAPPA * (cosines(world, 0, -60) - 1))
    r = confidence_regions(as_map(world, density), (0.9,))[0]
    burnt = rasterize([r.geometry], out_shape=world.shape, transform=world.transform, fill=0, default_value=1)
    assert (burnt.astype(bool) == r.mask).all()
    feature = region_features([r], source="photo.jpg")[0]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "MultiPolygon"
    assert feature["properties"] == {"level": 0.9, "area_km2": r.area_km2, "parts": 2, "major_parts": 2,
                                     "mass": r.mass, "source": "photo.jpg", "summary": r.summary()}


@pytest.mark.parametrize("extent", [None, (150.0, -50.0, -150.0, 10.0)])
def test_region_across_the_antimeridian_is_one_part(extent):
    grid = Grid.over(extent, 0.25)
    r = confidence_regions(as_map(grid, np.exp(KAPPA * (cosines(grid, -17.0, 179.5) - 1))), (0.9,))[0]
    assert r.parts == 1 and r.major_parts == 1 and r.summary().endswith("in 1 part")
    polys = r.geometry["coordinates"]
    assert len(polys) == 2  # one each side of ±180: the EPSG:4326 way
    xs = np.array([x for poly in polys for ring in poly for x, _ in ring])
    assert xs.min() >= -180.0 and xs.max() <= 180.0
    assert r.contains(-17.0, 179.5) and r.contains(-17.0, -179.8)
    exact = vmf_cap_km2(0.9)
    assert abs(r.area_km2 - exact) < rounding_km2(exact, grid, -17.0)


def test_hdr_level_and_coverage_of_samples(world):
    """Points drawn from the map itself fall inside its 90 % region 90 % of the time (what evaluation reports)."""
    density = np.exp(KAPPA * (cosines(world, 30.0, 60.0) - 1)) + np.exp(0.5 * KAPPA * (cosines(world, 5, 100) - 1))
    lmap = as_map(world, density)
    mass = lmap.mass().ravel()
    rng = np.random.default_rng(1)
    cells = rng.choice(mass.size, size=3000, p=mass / mass.sum())
    r, c = np.unravel_index(cells, world.shape)
    pts = np.column_stack([world.row_lats(r), world.col_lons(c)])
    levels = hdr_level_at(lmap, pts)
    assert abs(np.mean(levels <= 0.9) - 0.9) < 0.025
    region = confidence_regions(lmap, (0.9,), polygons=False)[0]
    inside = np.array([region.contains(lat, lon) for lat, lon in pts])
    assert (inside == (levels <= region.mass + 1e-9)).mean() > 0.99
    assert region.geometry is None
    assert hdr_level_at(lmap, [[30.0, 60.0]])[0] < 0.01
    assert np.allclose(hdr_level_at(lmap, pts[:5]), levels[:5])  # the per-point path agrees with the sorted one
    assert np.isnan(hdr_level_at(as_map(Grid.over((0, 0, 10, 10), 1.0), np.ones((10, 10))), [[50.0, 5.0]])[0])


def test_summary_and_formatting(world):
    assert format_area(1_234_567) == "1.2 million km²"
    assert format_area(45_234) == "45,200 km²"
    assert format_area(830.4) == "830 km²"
    assert format_area(23_400_000) == "23 million km²"
    lmap = as_map(world, np.exp(KAPPA * (cosines(world, 45.0, 10.0) - 1.0)))
    regions = confidence_regions(lmap, (0.5, 0.9), polygons=False)
    assert summary(regions) == regions[1].summary()
    assert summary(regions).startswith("90 % region: ") and summary(regions).endswith(" in 1 part")
    assert regions[0].summary().startswith("50 % region: ")


def test_specks_are_counted_but_the_summary_says_which_parts_matter(world):
    density = np.exp(KAPPA * (cosines(world, 45.0, 10.0) - 1.0))
    rows = np.arange(400, 700, 40)  # single cells far from the blob, as dense as its peak
    cols = np.arange(0, 1440, 240)
    density[np.ix_(rows, cols)] = density.max()
    r = confidence_regions(as_map(world, density), (0.9,), polygons=False)[0]
    assert r.parts == 1 + rows.size * cols.size and r.major_parts == 1
    assert r.summary().endswith(f"in {r.parts} parts (1 holds ≥ 1 % each)")


def test_levels_are_checked(world):
    lmap = as_map(world, np.ones(world.shape))
    for bad in ([], [0.0], [1.0], [0.5, 1.2]):
        with pytest.raises(InputError):
            confidence_regions(lmap, bad)
