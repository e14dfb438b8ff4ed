"""Map products: georeferencing, mass, coarse-to-fine fidelity, PCA, similarity, budgets and extents."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import torch

from geoclip_qgis.core.errors import BudgetError, InputError
from geoclip_qgis.core.maps.encoder_rasters import feature_raster, pca_raster, similarity_raster
from geoclip_qgis.core.maps.likelihood import (
    LikelihoodMapper,
    density_from_scores,
    fused_query,
    likelihood_map,
    write_likelihood,
)
from geoclip_qgis.core.maps.raster import EARTH_RADIUS_KM, Grid, check_budget, render_preview


def photo_like_query(engine, lat, lon, seed=0, weight=0.55):
    """A query like a real photo's: partly the feature of a true place, partly unrelated content."""
    g = torch.Generator().manual_seed(seed)
    place = torch.from_numpy(engine.encode_locations([[lat, lon]], normalise=True)[0])
    noise = torch.nn.functional.normalize(torch.randn(512, generator=g), dim=0)
    return torch.nn.functional.normalize(weight * place + (1 - weight) * noise, dim=0)


def test_grid_georeferencing_and_areas(engine, tmp_path):
    grid = Grid.over((-10, 35, 30, 60), 0.5)
    assert (grid.width, grid.height) == (80, 50)
    out = similarity_raster(engine, 48.85, 2.35, grid, tmp_path / "s.tif")
    with rasterio.open(out["path"]) as ds:
        assert ds.crs.to_epsg() == 4326
        assert tuple(ds.bounds) == pytest.approx((-10, 35, 30, 60))
        assert ds.res == pytest.approx((0.5, 0.5))
        assert (ds.width, ds.height) == (80, 50)
        assert ds.nodata == -9999.0 and "cosine similarity" in ds.descriptions[0]
        assert ds.profile["compress"] == "deflate"
    world = Grid.over(None, 1.0)
    total = world.row_areas_km2().sum() * world.width
    assert total == pytest.approx(4 * math.pi * EARTH_RADIUS_KM**2, rel=1e-9)
    areas = world.row_areas_km2()
    assert areas[0] < areas[90] / 50, "polar cells must be far smaller than equatorial ones"


def test_likelihood_mass_sums_to_one(engine, tmp_path):
    grid = Grid.over((0, 40, 20, 55), 0.25)
    q = photo_like_query(engine, 46.0, 8.0)
    lmap = likelihood_map(engine, q, grid, method="dense")
    assert lmap.mass().sum() == pytest.approx(1.0, abs=1e-6)
    path = write_likelihood(lmap, tmp_path / "l.tif", "test")
    with rasterio.open(path) as ds:
        dens = ds.read(1).astype(np.float64)
        assert "per km2" in ds.descriptions[0] and ds.nodata == -1.0
        assert ds.tags()["units"] == "probability per km2"
    assert (dens * grid.row_areas_km2()[:, None]).sum() == pytest.approx(1.0, abs=1e-5)
    assert abs(lmap.best[0] - 46.0) < 3 and abs(lmap.best[1] - 8.0) < 3


@pytest.mark.parametrize("seed,lat,lon,weight,max_fraction", [(0, 46.0, 8.0, 0.9, 0.4), (1, 41.0, 14.0, 0.55, 0.8)])
def test_coarse_to_fine_matches_dense(engine, seed, lat, lon, weight, max_fraction):
    """Several refinement levels (block 25 -> 5 -> 1) on a region where dense is affordable; a sharp and a
    broad query (the broad one spreads its mass, so less can be skipped)."""
    grid = Grid.over((0, 38, 20, 50), 0.1)
    q = photo_like_query(engine, lat, lon, seed, weight)
    mapper = LikelihoodMapper(engine.location_encoder, engine.scale)
    dense = mapper.dense(q, grid)
    fine, stats = mapper.coarse_to_fine(q, grid, factor=5, coarse_cells=500)
    assert [lv["block"] for lv in stats["levels"]] == [25, 5, 1]
    assert stats["fraction_evaluated"] < max_fraction
    d_dense, best_dense = density_from_scores(dense, grid)
    d_fine, best_fine = density_from_scores(fine, grid)
    areas = grid.row_areas_km2()[:, None]
    l1 = np.abs(d_dense.astype(np.float64) - d_fine) @ np.ones(grid.width) @ areas[:, 0]
    assert l1 <= 1e-3, l1
    z_ratio = np.exp(fine + np.log(areas) - dense.max()).sum() / np.exp(dense + np.log(areas) - dense.max()).sum()
    assert abs(z_ratio - 1) <= 1e-3
    assert best_dense == best_fine


def test_fusion_adds_scores(engine):
    grid = Grid.over((0, 40, 10, 50), 1.0)
    qa, qb = photo_like_query(engine, 45, 5, 0), photo_like_query(engine, 44, 6, 1)
    mapper = LikelihoodMapper(engine.location_encoder, engine.scale)
    fused = mapper.dense(fused_query(torch.stack([qa, qb])), grid)
    np.testing.assert_allclose(fused, mapper.dense(qa, grid) + mapper.dense(qb, grid), atol=1e-4)
    with pytest.raises(InputError):
        fused_query(torch.zeros(0, 512))


def test_pca_rgb_range(engine, tmp_path):
    grid = Grid.over(None, 4.0)
    out = pca_raster(engine, grid, tmp_path / "pca.tif")
    with rasterio.open(out["path"]) as ds:
        rgb = ds.read()
        assert ds.count == 3 and rgb.dtype == np.uint8
    for band in rgb:
        assert band.min() <= 10 and band.max() >= 245 and band.std() > 20


def test_feature_bands_and_subset(engine, tmp_path):
    grid = Grid.over((-5, 40, 5, 50), 1.0)
    out = feature_raster(engine, grid, tmp_path / "f.tif", bands=[3, 0, 511])
    with rasterio.open(out["path"]) as ds:
        assert ds.count == 3 and ds.descriptions == ("feature 0", "feature 3", "feature 511")
        data = ds.read()
    emb = engine.encode_locations(grid.centres())
    np.testing.assert_allclose(data[0].ravel(), emb[:, 0], atol=1e-5)
    np.testing.assert_allclose(data[2].ravel(), emb[:, 511], atol=1e-5)
    with pytest.raises(InputError, match="between 0 and 511"):
        feature_raster(engine, grid, tmp_path / "g.tif", bands=[600])


def test_similarity_is_one_at_the_query_point(engine, tmp_path):
    grid = Grid.over((0, 40, 10, 50), 0.5)
    lat, lon = float(grid.row_lats(7)), float(grid.col_lons(11))
    out = similarity_raster(engine, lat, lon, grid, tmp_path / "s.tif")
    with rasterio.open(out["path"]) as ds:
        sim = ds.read(1)
    assert sim[7, 11] == pytest.approx(1.0, abs=1e-5)
    assert np.unravel_index(sim.argmax(), sim.shape) == (7, 11)
    assert sim.min() >= -1.0001


def test_tiled_products_refuse_absurd_outputs(engine, tmp_path):
    """Tiles bound the memory, but a global 0.001° raster would still be 65 billion encoder calls: refused."""
    world = Grid.over(None, 0.001)
    for call in (lambda: similarity_raster(engine, 0, 0, world, tmp_path / "s.tif"),
                 lambda: feature_raster(engine, world, tmp_path / "f.tif", bands=[0]),
                 lambda: pca_raster(engine, world, tmp_path / "p.tif")):
        with pytest.raises(BudgetError, match="output budget"):
            call()
    assert not list(tmp_path.iterdir()), "refused before any file was created"


def test_budget_refusal_before_allocating():
    grid = Grid.over(None, 0.001)
    with pytest.raises(BudgetError) as info:
        check_budget(grid, 26, "a likelihood raster", budget=2**30)
    text = str(info.value)
    assert "360000 x 180000" in text and "MiB" in text and "resolution of 0.0" in text


def test_extents_antimeridian_and_bounds(engine, tmp_path):
    grid = Grid.over((170, -20, -170, 0), 0.5)
    assert (grid.width, grid.height) == (40, 40) and grid.east == 190
    lons = grid.col_lons(np.arange(grid.width))
    assert lons.min() >= -180 and lons.max() < 180 and (lons < 0).sum() == 20
    out = similarity_raster(engine, -10, 179.9, grid, tmp_path / "am.tif")
    with rasterio.open(out["path"]) as ds:
        assert tuple(ds.bounds) == pytest.approx((170, -20, 190, 0))
    for bad in [(-10, -95, 10, 0), (-190, 0, 10, 10), (0, 10, 10, 5)]:
        with pytest.raises(InputError):
            Grid.over(bad, 1.0)
    with pytest.raises(InputError):
        Grid.over((0, 0, 10, 10), 0)


def test_cog_and_preview(engine, tmp_path):
    grid = Grid.over((0, 40, 20, 50), 0.5)
    lmap = likelihood_map(engine, photo_like_query(engine, 45, 10), grid)
    path = write_likelihood(lmap, tmp_path / "cog.tif", "cog", cog=True)
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    png = render_preview(path, tmp_path / "p.png")
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (40, 20) and im.mode == "RGB"
    assert not list(tmp_path.glob("*.partial*")), "no partial files left behind"
