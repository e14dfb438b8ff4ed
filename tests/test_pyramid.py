"""Issue 16, engine side: int8 fields beside int16, a resumable and pausable pyramid of world fields, and the one
rule that sizes a raster to the view. Coarse lattices (10°, 5°) stand in for 0.5° and 0.25°: seconds of encoding.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from test_field import CountingEncoder
from test_rasters import photo_like_query

from geoclip_qgis.core import cancel
from geoclip_qgis.core.maps import location_field as field_mod
from geoclip_qgis.core.maps.field_choice import build_pyramid, choose_resolution, find_field, view_grid
from geoclip_qgis.core.maps.likelihood import likelihood_map
from geoclip_qgis.core.maps.location_field import LocationField, build_field, bytes_per_cell, field_dir
from geoclip_qgis.core.maps.raster import Grid
from geoclip_qgis.core.model.engine import GeoClipEngine

WORLD10 = Grid.over(None, 10.0)  # 36 x 18


@pytest.fixture
def private_engine(weights, small_gallery, tmp_path):
    return GeoClipEngine(weights=weights, device="cpu", gallery=small_gallery, cache_dir=tmp_path / "cache")


def test_int8_and_int16_fields_coexist(private_engine):
    eng = private_engine
    enc, digest, cache = eng.location_encoder, eng.weights.digest, eng.cache_dir
    wide = build_field(enc, digest, WORLD10, cache)
    narrow = build_field(enc, digest, WORLD10, cache, dtype="int8")
    assert wide.path != narrow.path and "int8" in narrow.path.name and "int8" not in wide.path.name
    assert (wide.dtype, narrow.dtype) == ("int16", "int8")
    assert json.loads((narrow.path / "meta.json").read_text())["dtype"] == "int8"
    assert (narrow.path / "codes.int8").stat().st_size == 36 * 18 * 512
    assert narrow.info()["bytes"] == 36 * 18 * bytes_per_cell("int8") == 36 * 18 * 516
    exact = torch.from_numpy(eng.encode_locations(WORLD10.centres(), normalise=True))
    err16 = (wide.unit_features(WORLD10, 0, 18) - exact).abs().max()
    err8 = (narrow.unit_features(WORLD10, 0, 18) - exact).abs().max()
    assert err16 < 2e-5 and err8 < 1e-3, (err16, err8)  # half a step of max|f| / 127
    q = photo_like_query(eng, 46.0, 8.0)
    score8 = narrow.dot(q.numpy(), WORLD10) * eng.scale
    assert np.abs(score8 - (exact @ q).double().numpy().reshape(18, 36) * eng.scale).max() < 0.1
    found = find_field(cache, digest, 10.0)
    assert [f.dtype for f in found] == ["int16", "int8"], "the more precise field is read first"
    assert eng.field_for(WORLD10)[0].dtype == "int16"


def test_int16_field_from_before_int8_is_read_and_resumed(private_engine):
    eng = private_engine
    built = eng.build_field(WORLD10)
    meta = json.loads((built.path / "meta.json").read_text())
    del meta["dtype"], meta["bytes_per_cell"]  # as written before int8 existed
    (built.path / "meta.json").write_text(json.dumps(meta))
    old = LocationField(built.path)
    assert old.dtype == "int16" and old.complete
    counting = CountingEncoder(eng.location_encoder)
    again = build_field(counting, eng.weights.digest, WORLD10, eng.cache_dir)
    assert again.path == built.path and counting.cells == 0, "found where it was: not built again"


def test_pyramid_builds_coarse_first_pauses_cancels_and_resumes(private_engine, monkeypatch):
    eng = private_engine
    monkeypatch.setattr(field_mod, "PAUSE_STEP", 0.001)
    seen = []

    def stop_in_the_second_level(done, total):
        seen.append((done, total))
        if done > 36 * 18 + 72 * 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_pyramid(eng, (5.0, 10.0), progress=stop_in_the_second_level, block_cells=72 * 4)
    assert seen[0][1] == 36 * 18 + 72 * 36 and seen[-1][0] < seen[-1][1]
    assert eng.field_for(WORLD10)[0] is not None, "the coarse level is complete and used at once"
    partial = LocationField(field_dir(eng.cache_dir, eng.weights.digest, Grid.over(None, 5.0)))
    assert 0 < partial.rows_done < 36

    with cancel.cancel_scope(lambda: True), pytest.raises(cancel.Cancelled):
        build_pyramid(eng, (10.0, 5.0))
    assert LocationField(partial.path).rows_done == partial.rows_done, "a cancel keeps the rows done"

    pauses = iter([True] * 5 + [False] * 10**6)
    asked = []

    def busy() -> bool:
        asked.append(1)
        return next(pauses)

    counting = CountingEncoder(eng.location_encoder)
    monkeypatch.setattr(GeoClipEngine, "location_encoder", property(lambda self: counting))
    statuses = build_pyramid(eng, (10.0, 5.0), should_pause=busy)
    assert [(s["res"], s["status"]) for s in statuses] == [(10.0, "present"), (5.0, "built")]
    assert counting.cells == (36 - partial.rows_done) * 72, "only the missing rows are encoded"
    assert len(asked) >= 6, "the build waited while a request was waiting"
    monkeypatch.undo()
    fine = Grid.over((0, 40, 20, 50), 5.0)
    assert likelihood_map(eng, photo_like_query(eng, 46, 8), fine).stats["method"] == "field"


def test_pyramid_is_skipped_when_the_disk_is_short(private_engine, monkeypatch):
    eng = private_engine
    monkeypatch.setattr(field_mod.shutil, "disk_usage", lambda p: types.SimpleNamespace(free=2**30))
    statuses = build_pyramid(eng, (10.0, 5.0))
    assert [s["status"] for s in statuses] == ["skipped", "skipped"]
    assert "10° world field was not built" in statuses[0]["message"] and "keeping 2.0 GiB free" in \
        statuses[0]["message"]
    assert not (eng.cache_dir / "fields").exists(), "nothing is written"
    monkeypatch.setattr(field_mod.shutil, "disk_usage", lambda p: types.SimpleNamespace(free=2**30 * 3))
    assert [s["status"] for s in build_pyramid(eng, (10.0,))] == ["built"]


def fake_field(res: float, extent=None):
    """Just what the rule reads of a built field: its lattice and its snap()."""
    ns = types.SimpleNamespace(grid=Grid.over(extent, res), usable=True, complete=True)
    ns.wraps = abs(ns.grid.width * res - 360.0) < 1e-6
    ns.snap = lambda grid: LocationField.snap(ns, grid)
    return ns


def test_choose_resolution_rule():
    pyramid = [fake_field(0.5), fake_field(0.25)]
    world, europe, city = None, (-25, 30, 45, 72), (2.0, 48.5, 3.0, 49.5)
    assert choose_resolution(world, 1920, 960) == 1.0, "never coarser than 1°; the encoder is capped there"
    assert choose_resolution(world, 1920, 960, pyramid) == 0.5, "the field within a factor 2 of ~3 px a cell"
    assert choose_resolution(world, 100, 50, pyramid[1:]) == 1.0, "0.25° is over twice finer than the 1° cap"
    assert choose_resolution(europe, 1920, 1150) == 0.5, "the encoder alone: ~3 s of cells"
    assert choose_resolution(europe, 1920, 1150, pyramid) == 0.25, "a field finer than the encoder could do"
    assert choose_resolution(europe, 1920, 1150, pyramid + [fake_field(0.1)]) == 0.1
    assert choose_resolution(europe, 1920, 1150, pyramid + [fake_field(0.1, (100, 0, 140, 40))]) == 0.25, \
        "a field that does not cover the view is not used"
    assert choose_resolution(city, 800, 800, pyramid) == 0.01, "~18,000 cells: what the CPU encodes in ~3 s"
    assert choose_resolution(city, 800, 800, cells_per_s=500_000) == 0.005, "a GPU affords ~3 px a cell"
    assert choose_resolution((170, -10, -170, 10), 400, 400, pyramid) == 0.25, "across the antimeridian"
    for extent, w, h in [(world, 3000, 1500), (europe, 640, 480), (city, 300, 200), ((8, 46, 8.01, 46.01), 50, 50)]:
        res = choose_resolution(extent, w, h, pyramid)
        assert Grid.over(extent, res).res == res, "every answer is a grid the products accept"


def test_view_grid_reads_the_engines_fields(private_engine):
    eng = private_engine
    assert view_grid(eng, None, 100, 50, coarsest=10.0).res == 10.0
    eng.build_field(Grid.over(None, 5.0))
    grid = view_grid(eng, None, 100, 50, coarsest=10.0)
    assert grid.res == 5.0 and eng.field_for(grid)[0] is not None
    assert likelihood_map(eng, photo_like_query(eng, 46, 8), grid).stats["method"] == "field"


def test_views_partly_inside_fields_encode_only_the_rest(private_engine, tmp_path):
    """A view reaching past regional fields reads what they hold and encodes the other cells; across the
    antimeridian too. The map equals the encoder's."""
    from geoclip_qgis.core.maps.encoder_rasters import similarity_raster

    eng = private_engine
    grid = Grid.over((175, -5, -175, 5), 1.0)  # 10 x 10, across the antimeridian
    plain = similarity_raster(eng, 0.0, 178.0, grid, tmp_path / "plain.tif")
    q = photo_like_query(eng, 0.0, 179.0, weight=0.5)
    dense = likelihood_map(eng, q, grid, method="dense")
    for extent in ((170, -10, 180, 0), (-180, -10, -170, 0)):  # each holds one 5 x 5 quarter of the view
        eng.build_field(Grid.over(extent, 1.0))
    assert eng.field_for(grid)[0] is None
    lmap = likelihood_map(eng, q, grid)
    assert lmap.stats["method"] == "field+encoder" and lmap.stats["evaluated"] == 50
    assert lmap.grid == grid and np.abs(lmap.mass() - dense.mass()).sum() < 1e-4
    mixed = similarity_raster(eng, 0.0, 178.0, grid, tmp_path / "mixed.tif")
    import rasterio

    with rasterio.open(plain["path"]) as a, rasterio.open(mixed["path"]) as b:
        assert a.bounds == b.bounds and np.abs(a.read(1) - b.read(1)).max() < 2e-5


@pytest.mark.parametrize("method", ["field", "dense", "coarse-to-fine"])
def test_a_map_counts_its_cells_as_it_scores_them(private_engine, monkeypatch, method):
    """Issue 24 point 3: a likelihood map says how many of its cells are scored while it runs (a field read row
    block by row block, the encoder batch by batch), never a frozen 'scoring' for a minute; the count only grows
    and ends at the whole grid."""
    from geoclip_qgis.core.maps import likelihood

    eng = private_engine
    grid = Grid.over((0, 30, 40, 60), 0.5) if method != "field" else Grid.over(None, 2.0)
    if method == "field":  # 16,200 cells: four tiles of the field's 4,096-cell reads
        build_field(eng.location_encoder, eng.location_digest, grid, eng.cache_dir)
    monkeypatch.setattr(likelihood.CellMeter, "__call__", _every_call)  # no 0.25 s throttle in the test
    q = torch.nn.functional.normalize(torch.randn(512, generator=torch.Generator().manual_seed(3)), dim=0)
    seen = []
    kwargs = {"coarse_cells": 100} if method == "coarse-to-fine" else {}
    eng_method = "auto" if method == "field" else method
    lmap = likelihood_map(eng, q, grid, method=eng_method, progress=lambda d, n: seen.append((d, n)), **kwargs)
    cells = grid.width * grid.height
    assert lmap.stats["method"] == method
    assert len(seen) >= 3 and all(n == cells for _, n in seen), seen
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == cells and 0 < done[0] < cells, done


def _every_call(meter, done):
    meter.progress(min(int(done), meter.cells), meter.cells)
