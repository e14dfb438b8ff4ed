"""Location fields: stored features equal the encoder's, builds resume, products read them, refusals are clear.

Each test builds its fields in its own cache folder (coarse lattices, seconds of encoding), so no other test
ever meets a field it did not ask for.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio
import torch
from test_rasters import photo_like_query

from geoclip_qgis.core.errors import BudgetError, InputError
from geoclip_qgis.core.maps import location_field as field_mod
from geoclip_qgis.core.maps.encoder_rasters import pca_raster, similarity_raster
from geoclip_qgis.core.maps.field_choice import find_field
from geoclip_qgis.core.maps.likelihood import likelihood_map
from geoclip_qgis.core.maps.location_field import LocationField, build_field, field_dir
from geoclip_qgis.core.maps.raster import Grid
from geoclip_qgis.core.model.engine import GeoClipEngine
from geoclip_qgis.core.service.cli import main


@pytest.fixture
def private_engine(weights, small_gallery, tmp_path):
    return GeoClipEngine(weights=weights, device="cpu", gallery=small_gallery, cache_dir=tmp_path / "cache")


class CountingEncoder:
    """The real encoder, counting the cells it is asked for (to prove a resumed build skips finished rows)."""

    def __init__(self, encoder):
        self.encoder, self.cells = encoder, 0

    def encode(self, latlon, **kwargs):
        self.cells += len(latlon)
        return self.encoder.encode(latlon, **kwargs)


def test_build_resumes_and_matches_the_encoder(private_engine):
    eng = private_engine
    grid = Grid.over(None, 5.0)  # 72 x 36
    cache = eng.cache_dir

    def stop_after_12_rows(done, total):
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_field(eng.location_encoder, eng.weights.digest, grid, cache, block_cells=72 * 4,
                    progress=stop_after_12_rows)
    partial = LocationField(field_dir(cache, eng.weights.digest, grid))
    assert partial.rows_done == 12 and not partial.complete
    assert eng.field_for(grid)[0] is None, "a partial field is never used"
    counting = CountingEncoder(eng.location_encoder)
    resumed = build_field(counting, eng.weights.digest, grid, cache, block_cells=72 * 4)
    assert resumed.complete and counting.cells == (36 - 12) * 72, "only the missing rows are encoded"

    fresh = build_field(eng.location_encoder, eng.weights.digest, grid, eng.cache_dir / "fresh", block_cells=72 * 4)
    assert np.array_equal(np.asarray(resumed.codes), np.asarray(fresh.codes))
    exact = torch.from_numpy(eng.encode_locations(grid.centres(), normalise=True))
    stored = resumed.unit_features(grid, 0, grid.height)
    assert (stored - exact).abs().max() < 2e-5
    q = photo_like_query(eng, 46.0, 8.0)
    dots = resumed.dot(q.numpy(), grid)
    assert np.abs(dots - (exact @ q).double().numpy().reshape(grid.shape)).max() < 2e-5


def test_likelihood_from_the_field_equals_dense(private_engine):
    eng = private_engine
    eng.build_field(Grid.over(None, 2.0))
    for extent, expect in [(None, (-180, -90, 180, 90)),
                           ((3, 38, 22, 51), (2, 38, 22, 52)),           # snapped outward onto the 2° lattice
                           ((170, -20, -170, 0), (170, -20, 190, 0))]:   # across the antimeridian: wraps
        q = photo_like_query(eng, 46.0, 8.0, weight=0.5)
        lmap = likelihood_map(eng, q, Grid.over(extent, 2.0))
        g = lmap.grid
        assert lmap.stats["method"] == "field" and lmap.stats["evaluated"] == 0
        assert (g.west, g.south, g.east, g.north) == pytest.approx(expect)
        dense = likelihood_map(eng, q, g, method="dense")
        l1 = np.abs(lmap.mass() - dense.mass()).sum()
        assert l1 < 1e-4, f"{extent}: L1 {l1}"
        assert lmap.best == dense.best and lmap.mass().sum() == pytest.approx(1.0, abs=1e-6)


def test_similarity_and_pca_read_the_field(private_engine, tmp_path):
    eng = private_engine
    grid = Grid.over((-30, 30, 50, 70), 1.0)
    plain = similarity_raster(eng, 48.5, 2.5, grid, tmp_path / "plain.tif")
    plain_pca = pca_raster(eng, grid, tmp_path / "plain_pca.tif")
    eng.build_field(grid)
    assert eng.field_for(grid)[0] is not None
    fast = similarity_raster(eng, 48.5, 2.5, grid, tmp_path / "fast.tif")
    fast_pca = pca_raster(eng, grid, tmp_path / "fast_pca.tif")
    with rasterio.open(plain["path"]) as a, rasterio.open(fast["path"]) as b:
        sa, sb = a.read(1), b.read(1)
        assert a.bounds == b.bounds
    assert np.abs(sa - sb).max() < 2e-5
    r, c = grid.cell_of(48.5, 2.5)
    assert sb[r, c] == pytest.approx(1.0, abs=2e-5), "similarity is 1 at the query point"
    with rasterio.open(plain_pca["path"]) as a, rasterio.open(fast_pca["path"]) as b:
        diff = np.abs(a.read().astype(int) - b.read().astype(int))
    assert diff.max() <= 1, "PCA colours agree to one level of 255"


def test_refusals_and_repairs(private_engine, monkeypatch, tmp_path):
    eng = private_engine
    grid = Grid.over(None, 5.0)
    with pytest.raises(InputError, match="geoclip-qgis field --resolution 5"):
        likelihood_map(eng, photo_like_query(eng, 0, 0), grid, method="field")

    monkeypatch.setattr(field_mod.shutil, "disk_usage", lambda p: type("U", (), {"free": 2 * 2**30})())
    with pytest.raises(BudgetError) as err:
        eng.build_field(Grid.over(None, 0.1))
    assert "6.20 GiB more disk" in str(err.value) and "build at 0.25°" in str(err.value)
    assert not (eng.cache_dir / "fields").exists(), "nothing is written before the check"
    monkeypatch.undo()

    built = eng.build_field(grid)
    codes = built.path / "codes.int16"
    with open(codes, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(InputError, match="wrong size") as err:
        LocationField(built.path)
    assert "codes.int16" in str(err.value)
    assert find_field(eng.cache_dir, eng.weights.digest, 5.0) == [], "a damaged field is skipped"
    assert eng.build_field(grid).complete, "building again repairs it"

    real_fsync = os.fsync

    def disk_full(fd):  # the disk fills while the rows are written (the field's meta.json was made before)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("codes.int16"):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(field_mod.os, "fsync", disk_full)
    with pytest.raises(InputError, match="No space left on device.*it resumes"):
        build_field(eng.location_encoder, eng.weights.digest, Grid.over(None, 10.0), eng.cache_dir)
    monkeypatch.undo()
    stalled = LocationField(field_dir(eng.cache_dir, eng.weights.digest, Grid.over(None, 10.0)))
    assert stalled.rows_done == 0, "rows are claimed only once they are on disk"

    other = build_field(eng.location_encoder, "other-weights", grid, tmp_path / "other")
    assert other.complete and find_field(tmp_path / "other", eng.weights.digest, 5.0) == [], \
        "a field of other weights is never used"
    meta = json.loads((built.path / "meta.json").read_text())
    assert meta["rows_done"] == 36 and meta["grid"]["res"] == 5.0


def test_cli_builds_and_uses_a_field(tmp_path, tiny_clip, capsys):
    cache = tmp_path / "cache"
    # Before any field exists, --method field fails at once, before CLIP is even looked for.
    assert main(["likelihood", "--text", "a beach", "--resolution", "5", "--method", "field", "--clip-path",
                 str(tmp_path / "no-clip"), "--cache-dir", str(cache), "-o", str(tmp_path / "x.tif")]) == 2
    err = capsys.readouterr().err
    assert "no location field at 5°" in err and "geoclip-qgis field --resolution 5" in err and "CLIP" not in err
    assert main(["field", "--resolution", "5", "--device", "cpu", "--cache-dir", str(cache)]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["complete"] and (info["width"], info["height"]) == (72, 36)
    tif = tmp_path / "t.tif"
    assert main(["likelihood", "--text", "snowy alpine village", "--resolution", "5", "--method", "field",
                 "--clip-path", tiny_clip, "--device", "cpu", "--cache-dir", str(cache), "-o", str(tif)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["method"] == "field"
    with rasterio.open(tif) as ds:
        assert (ds.width, ds.height) == (72, 36) and ds.crs.to_epsg() == 4326


def test_worker_builds_cancels_and_resumes(weights, tmp_path):
    from geoclip_qgis.core.service.worker import Worker

    sent = []
    opts = {"cache_dir": str(tmp_path / "cache"), "device": "cpu", "gallery": "fibonacci:100"}
    worker = Worker(sent.append)

    def cancel_on_progress(message):
        sent.append(message)
        if message.get("type") == "progress" and message.get("done", 0) > 0:
            worker.cancel(7)

    worker.send = cancel_on_progress
    params = {"engine": opts, "resolution": 1.0}
    worker.handle({"id": 7, "op": "build_field", "params": params})
    assert sent[-1]["type"] == "result" and sent[-1]["data"] == {"cancelled": True}
    worker.send = sent.append
    worker.handle({"id": 8, "op": "field_status", "params": params})
    status = sent[-1]["data"]
    assert 0 < status["rows_done"] < 180 and not status["complete"]
    worker.handle({"id": 9, "op": "build_field", "params": params})
    assert sent[-1]["data"]["complete"]
    worker.handle({"id": 10, "op": "field_status", "params": params})
    assert sent[-1]["data"]["complete"] and sent[-1]["data"]["bytes"] == 360 * 180 * 1028


def test_quantising_in_place_gives_the_stored_bytes_of_before():
    """The build quantises its own block in place (aminmax, no |x| copy): the codes and scales must be the bytes
    the former formula gave, rows of zeros and rows whose largest magnitude is negative included."""
    g = torch.Generator().manual_seed(0)
    unit = torch.nn.functional.normalize(torch.randn(300, 512, generator=g), dim=1)
    unit[0] = 0.0
    unit[1] = -unit[1].abs()
    unit[2, 7] = -1.0
    for dtype, top in field_mod.CODE_LEVELS.items():
        scale = unit.abs().amax(dim=1).clamp_min(1e-30) / float(top)  # the formula before session 9
        want_c = torch.round(unit / scale[:, None]).clamp_(-top, top).to(getattr(torch, dtype)).numpy()
        c, s = field_mod.quantise(unit.clone(), dtype, in_place=True)
        c2, s2 = field_mod.quantise(unit, dtype)
        assert c.tobytes() == c2.tobytes() == want_c.tobytes()
        assert s.tobytes() == s2.tobytes() == scale.numpy().astype(np.float32).tobytes()
