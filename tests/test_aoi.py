"""Area of interest (core.aoi): polygons from GeoJSON / WKT / vector files / bboxes, masks over gallery points and
grids, renormalised probabilities and the share of mass that fell outside."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.maps.likelihood import LikelihoodMap
from geoclip_qgis.core.maps.raster import Grid

shapely = pytest.importorskip("shapely")

from geoclip_qgis.core.answers.aoi import AreaOfInterest, restrict_map, restrict_probs  # noqa: E402

SQUARE = {"type": "Polygon", "coordinates": [[[0, 40], [10, 40], [10, 50], [0, 50], [0, 40]]]}


def test_bbox_and_antimeridian_bbox():
    box = AreaOfInterest.from_bbox((0, 40, 10, 50))
    pts = [[45, 5], [45, 15], [40, 0], [55, 5]]
    assert box.points_mask(pts).tolist() == [True, False, True, False]  # the edge counts as inside
    pacific = AreaOfInterest.parse("170,-20,-170,0")
    assert pacific.points_mask([[-10, 175], [-10, -175], [-10, 180], [-10, -180], [-10, 0]]).tolist() == \
        [True, True, True, True, False]
    assert pacific.bounds == (-180.0, -20.0, 180.0, 0.0)
    for bad in ((0, 50, 10, 40), (0, 0, 0, 10), (0, 0, 200, 10), (1, 2, 3)):
        with pytest.raises(InputError):
            AreaOfInterest.from_bbox(bad)


@pytest.mark.parametrize("spec", [
    SQUARE,
    {"type": "Feature", "properties": {}, "geometry": SQUARE},
    {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": SQUARE}]},
    '{"type": "Polygon", "coordinates": [[[0, 40], [10, 40], [10, 50], [0, 50], [0, 40]]]}',
    "POLYGON ((0 40, 10 40, 10 50, 0 50, 0 40))",
    "0,40,10,50",
])
def test_every_form_gives_the_same_area(spec):
    aoi = AreaOfInterest.parse(spec)
    assert aoi.bounds == (0.0, 40.0, 10.0, 50.0)
    assert aoi.points_mask([[45, 5], [45, -5]]).tolist() == [True, False]


def test_polygon_with_a_hole_and_a_bowtie():
    donut = AreaOfInterest.from_wkt("POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (4 4, 6 4, 6 6, 4 6, 4 4))")
    assert donut.points_mask([[5, 5], [2, 2]]).tolist() == [False, True]
    bowtie = AreaOfInterest.from_wkt("POLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))")  # self-intersecting: made valid
    assert bowtie.geometry.is_valid
    assert bowtie.points_mask([[5, 2], [2, 5]]).tolist() == [True, False]


def test_polygon_drawn_past_180_is_wrapped():
    aoi = AreaOfInterest.from_wkt("POLYGON ((175 -10, 185 -10, 185 10, 175 10, 175 -10))")
    assert aoi.bounds[0] >= -180 and aoi.bounds[2] <= 180
    assert aoi.points_mask([[0, 178], [0, -178], [0, 170], [0, -170]]).tolist() == [True, True, False, False]


def test_refuses_what_is_not_an_area():
    with pytest.raises(InputError, match="polygon"):
        AreaOfInterest.from_wkt("LINESTRING (0 0, 1 1)")
    with pytest.raises(InputError, match="did you mean France"):  # names: tests/test_constraints.py
        AreaOfInterest.parse("Frnace")
    with pytest.raises(InputError):
        AreaOfInterest.from_wkt("POLYGON ((0 0, 1")
    with pytest.raises(InputError):
        AreaOfInterest.from_file("/nonexistent/area.gpkg")


def _write(path, geoms, crs, fields=None):
    from pyogrio.raw import write

    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    names = list(fields) if fields else []
    write(path, wkb, [np.asarray(v, dtype=object) for v in (fields or {}).values()], names, crs=crs,
          geometry_type="Polygon", driver="GPKG")


def test_vector_file_layers_filters_and_reprojection(tmp_path):
    a, b = shapely.box(0, 40, 10, 50), shapely.box(20, -10, 30, 0)
    path = tmp_path / "areas.gpkg"
    _write(path, [a, b], "EPSG:4326", {"name": ["north", "south"]})
    both = AreaOfInterest.from_file(path)
    assert both.points_mask([[45, 5], [-5, 25], [0, 0]]).tolist() == [True, True, False]
    north = AreaOfInterest.from_file(path, where="name = 'north'")
    assert north.points_mask([[45, 5], [-5, 25]]).tolist() == [True, False]
    assert AreaOfInterest.parse(str(path)).bounds == both.bounds
    # the same square in Web Mercator metres comes back in degrees
    from rasterio.warp import transform_geom

    merc = shapely.geometry.shape(transform_geom("EPSG:4326", "EPSG:3857", shapely.geometry.mapping(a)))
    mpath = tmp_path / "merc.gpkg"
    _write(mpath, [merc], "EPSG:3857")
    back = AreaOfInterest.from_file(mpath)
    assert np.allclose(back.bounds, (0, 40, 10, 50), atol=1e-6)


def test_grid_mask_uses_cell_centres_and_unwrapped_grids():
    aoi = AreaOfInterest.from_bbox((0, 40, 10, 50))
    grid = Grid.over((-20, 30, 20, 60), 1.0)
    mask = aoi.grid_mask(grid)
    assert mask.sum() == 100 and mask[10:20, 20:30].all()
    pacific = AreaOfInterest.from_bbox((170, -20, -170, 0))
    unwrapped = Grid.over((160, -30, -160, 10), 1.0)  # east = 200
    m = pacific.grid_mask(unwrapped)
    assert m.sum() == 400 and m[10:30, 10:30].all()
    world = Grid.over(None, 1.0)
    mw = pacific.grid_mask(world)
    assert mw.sum() == 400 and mw[90:110, :10].all() and mw[90:110, -10:].all()


def test_restrict_probs_renormalises_and_reports_the_outside_share():
    coords = np.array([[45, 5], [45, 6], [0, 0], [-30, 100]])
    probs = np.array([0.3, 0.1, 0.4, 0.2])
    inside = AreaOfInterest.from_geojson(SQUARE).points_mask(coords)
    p, outside = restrict_probs(probs, inside)
    assert np.allclose(p, [0.75, 0.25, 0, 0]) and outside == pytest.approx(0.6)
    rows, out_rows = restrict_probs(np.vstack([probs, probs[::-1]]), inside)
    assert np.allclose(rows.sum(axis=1), 1.0) and np.allclose(out_rows, [0.6, 0.4])
    with pytest.raises(InputError, match="no gallery point"):
        restrict_probs(probs, np.zeros(4, dtype=bool))


def test_restrict_map_keeps_mass_inside():
    grid = Grid.over((-20, 30, 20, 60), 0.5)
    rng = np.random.default_rng(0)
    density = rng.random(grid.shape)
    density /= (density * grid.row_areas_km2()[:, None]).sum()
    lmap = LikelihoodMap(grid, density.astype(np.float32), (45.0, 0.0))
    aoi = AreaOfInterest.from_bbox((0, 40, 10, 50), name="box")
    inside = aoi.grid_mask(grid)
    expected_out = 1.0 - float((density * grid.row_areas_km2()[:, None])[inside].sum())
    new, outside = restrict_map(lmap, aoi)
    assert outside == pytest.approx(expected_out, rel=1e-6)
    assert new.mass().sum() == pytest.approx(1.0, rel=1e-5)
    assert (new.density[~inside] == 0).all()
    assert 40 <= new.best[0] <= 50 and 0 <= new.best[1] <= 10
    assert new.stats["outside_share"] == pytest.approx(outside) and new.stats["aoi"] == "box"
    with pytest.raises(InputError):
        restrict_map(lmap, AreaOfInterest.from_bbox((100, 0, 110, 10)))


def test_gallery_mask_is_fast():
    """The whole 100K-point gallery against a detailed polygon in one vectorised call."""
    import time

    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-90, 90, 100_000), rng.uniform(-180, 180, 100_000)])
    angles = np.linspace(0, 2 * math.pi, 2000, endpoint=False)
    ring = np.column_stack([10 + 20 * np.cos(angles) * (1 + 0.2 * np.sin(9 * angles)), 45 + 15 * np.sin(angles)])
    aoi = AreaOfInterest(shapely.Polygon(ring))
    t = time.perf_counter()
    mask = aoi.points_mask(pts)
    took = time.perf_counter() - t
    print(f"aoi: 100K points vs a 2,000-vertex polygon in {took * 1e3:.1f} ms")
    assert took < 1.0 and 0 < mask.sum() < len(pts)
