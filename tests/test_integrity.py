"""Caches prove their integrity (issue 11, class A): the gallery embedding cache and location fields carry checksums
written with the data; a cache damaged afterwards — one row overwritten, random bytes, truncated — is reported by
name, moved aside and rebuilt (or, for a field, replaced by the encoder until it is rebuilt), so that results equal
a clean cache's. Through the API, the CLI and the worker protocol."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from geoclip_qgis.core.maps.field_choice import find_field
from geoclip_qgis.core.maps.likelihood import likelihood_map
from geoclip_qgis.core.maps.location_field import CorruptField, LocationField, build_field, field_dir
from geoclip_qgis.core.maps.raster import Grid
from geoclip_qgis.core.model.engine import GeoClipEngine
from geoclip_qgis.core.model.gallery import HEADER_BYTES, Gallery, fibonacci_grid
from geoclip_qgis.core.model.location_encoder import LocationEncoder
from geoclip_qgis.core.service.cli import main

DAMAGES = ["row", "random", "truncate"]


def damage(path: Path, how: str, offset: int, payload: bytes) -> None:
    """Damage a cache file in place: `payload` over the bytes at `offset`, the whole file random, or cut in half."""
    size = path.stat().st_size
    if how == "row":
        with open(path, "r+b") as fh:
            fh.seek(offset)
            fh.write(payload)
    elif how == "random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes())
    else:
        os.truncate(path, size // 2)


def moved_aside(folder: Path, name: str) -> list:
    return sorted(p.name for p in folder.glob(f"{name}.corrupt-*"))


# ---- the gallery cache ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder(weights):
    return LocationEncoder.from_state(weights.location)


def queries(n: int = 4) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, 512, generator=torch.Generator().manual_seed(3)), dim=1)


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_gallery_cache_is_moved_aside_and_rebuilt_api(how, encoder, weights, tmp_path, caplog):
    coords = fibonacci_grid(600)
    clean = Gallery(coords).attach(encoder, weights.digest, tmp_path)
    q = queries()
    want = clean.topk(q, 40.0, 5)
    clean_emb = clean.embeddings.clone()
    cache = clean.cache_file
    # The failure: row 7 overwritten with a large multiple of the first query made it every top-1, p = 1.0.
    damage(cache, how, HEADER_BYTES + 7 * 512 * 4, (q[0] * 10).numpy().astype(np.float32).tobytes())
    with caplog.at_level(logging.WARNING, logger="geoclip_qgis"):
        again = Gallery(coords).attach(encoder, weights.digest, tmp_path)
    assert torch.equal(again.embeddings, clean_emb)
    got = again.topk(q, 40.0, 5)
    assert torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])
    assert len(moved_aside(tmp_path, cache.name)) == 1, "the damaged file is kept aside for inspection"
    assert str(cache) in caplog.text and "damaged" in caplog.text
    assert again.cache_file == cache and cache.is_file(), "and a verified cache is written again"
    caplog.clear()
    Gallery(coords).attach(encoder, weights.digest, tmp_path)
    assert "damaged" not in caplog.text, "the rebuilt cache passes its checks"


def test_gallery_cache_checks_catch_every_kind_of_damage(encoder, weights, tmp_path):
    """Header, shape, size and data are all covered: flipping any single byte of the file is caught."""
    coords = fibonacci_grid(50)
    g = Gallery(coords).attach(encoder, weights.digest, tmp_path)
    data = g.cache_file.read_bytes()
    rng = np.random.default_rng(0)
    for offset in [0, 30, 60, HEADER_BYTES - 1, HEADER_BYTES, *rng.integers(HEADER_BYTES, len(data), 20).tolist()]:
        broken = bytearray(data)
        broken[offset] ^= 0x41
        g.cache_file.write_bytes(bytes(broken))
        again = Gallery(coords).attach(encoder, weights.digest, tmp_path)
        assert torch.equal(again.embeddings, g.embeddings), f"byte {offset}"
        assert g.cache_file.read_bytes() == data, f"byte {offset}: rebuilt identically"
    assert len(list(tmp_path.glob("*.corrupt-*"))) >= 1
    assert not list(tmp_path.glob("*.tmp*")), "no temporary files left"


def _cli_text(tiny_clip, cache: Path, out: Path) -> int:
    return main(["text", "snowy alpine village", "a tropical beach", "--clip-path", tiny_clip, "--device", "cpu",
                 "--gallery", "fibonacci:700", "--top-k", "3", "--cache-dir", str(cache), "-o", str(out)])


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_gallery_cache_cli(how, tiny_clip, tmp_path, caplog):
    cache = tmp_path / "cache"
    assert _cli_text(tiny_clip, cache, tmp_path / "clean.csv") == 0
    (cache_file,) = cache.glob("gallery-*.emb")
    damage(cache_file, how, HEADER_BYTES + 3 * 2048, b"\x7f" * 2048)
    assert _cli_text(tiny_clip, cache, tmp_path / "again.csv") == 0
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "clean.csv").read_text()
    assert len(moved_aside(cache, cache_file.name)) == 1
    assert str(cache_file) in caplog.text, "the warning names the file"


def _worker_rows(op: str, params: dict) -> list:
    from geoclip_qgis.core.service.worker import Worker

    sent: list = []
    Worker(sent.append).handle({"id": 1, "op": op, "params": params})
    assert sent[-1]["type"] == "result", sent[-1]
    return [m["data"] for m in sent if m["type"] == "row"] or [sent[-1]["data"]]


def test_damaged_gallery_cache_worker(tiny_clip, tmp_path):
    opts = {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:650", "cache_dir": str(tmp_path)}
    params = {"queries": ["snowy alpine village"], "top_k": 3, "engine": opts}
    clean = _worker_rows("geolocate_text", params)
    (cache_file,) = tmp_path.glob("gallery-*.emb")
    damage(cache_file, "row", HEADER_BYTES + 11 * 2048, b"\x41" * 2048)
    assert _worker_rows("geolocate_text", params) == clean
    assert len(moved_aside(tmp_path, cache_file.name)) == 1


# ---- location fields -------------------------------------------------------------------------------------------
GRID = Grid.over(None, 10.0)  # 36 x 18 cells: a field in a second


def _field_damage(path: Path, how: str) -> None:
    codes = path / "codes.int16"
    row = 36 * 512 * 2
    damage(codes, how, 5 * row + 100, np.full(300, 1234, dtype=np.int16).tobytes())


@pytest.fixture
def field_engine(weights, small_gallery, tmp_path):
    def make():  # a fresh engine each time: nothing remembered between "runs"
        return GeoClipEngine(weights=weights, device="cpu", gallery=small_gallery, cache_dir=tmp_path / "cache")
    return make


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_field_is_moved_aside_and_maps_stay_right_api(how, field_engine, caplog):
    eng = field_engine()
    built = eng.build_field(GRID)
    q = torch.from_numpy(eng.encode_locations([[46.0, 8.0]], normalise=True)[0])
    clean = likelihood_map(eng, q, Grid.over(None, 10.0))
    assert clean.stats["method"] == "field"
    _field_damage(built.path, how)
    with caplog.at_level(logging.WARNING, logger="geoclip_qgis"):
        again = likelihood_map(field_engine(), q, Grid.over(None, 10.0))
    assert again.stats["method"] != "field", "a damaged field is never read"
    assert np.abs(again.mass() - clean.mass()).sum() < 1e-4 and again.best == clean.best
    assert str(built.path) in caplog.text and "damaged" in caplog.text
    assert not built.path.exists() and len(moved_aside(built.path.parent, built.path.name)) == 1
    rebuilt = field_engine().build_field(GRID)
    assert rebuilt.complete and rebuilt.path == built.path
    assert likelihood_map(field_engine(), q, Grid.over(None, 10.0)).stats["method"] == "field"


def test_field_rows_are_verified_once_and_prefetch_verifies_all(field_engine):
    eng = field_engine()
    built = eng.build_field(GRID)
    meta = json.loads((built.path / "meta.json").read_text())
    assert len(meta["row_sha256"]) == GRID.height and all(meta["row_sha256"])
    f = LocationField(built.path)
    assert f.prefetch() == GRID.width * GRID.height * 1028 and f._verified.all()
    _field_damage(built.path, "row")
    assert f.dot(np.ones(512), GRID).shape == GRID.shape, "rows verified earlier are not hashed again"
    fresh = LocationField(built.path)
    assert fresh.prefetch() == 0, "the damaged row is found by the start-up prefetch"
    assert not built.path.exists() and fresh.snap(GRID) is None
    with pytest.raises(CorruptField):
        fresh.dot(np.ones(512), GRID)
    assert find_field(eng.cache_dir, eng.weights.digest, 10.0) == []


def test_resumed_build_checks_the_rows_it_keeps(field_engine):
    eng = field_engine()

    def stop(done, total):
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_field(eng.location_encoder, eng.weights.digest, GRID, eng.cache_dir, block_cells=36 * 4, progress=stop)
    path = field_dir(eng.cache_dir, eng.weights.digest, GRID)
    _field_damage(path, "row")  # row 5: one of the 8 rows done
    rebuilt = build_field(eng.location_encoder, eng.weights.digest, GRID, eng.cache_dir)
    clean = build_field(eng.location_encoder, eng.weights.digest, GRID, eng.cache_dir / "clean")
    assert rebuilt.complete and np.array_equal(np.asarray(rebuilt.codes), np.asarray(clean.codes))
    assert len(moved_aside(path.parent, path.name)) == 1


def test_old_field_without_checksums_is_not_used(field_engine, caplog):
    eng = field_engine()
    built = eng.build_field(GRID)
    meta = json.loads((built.path / "meta.json").read_text())
    meta["version"] = 1
    del meta["row_sha256"]
    (built.path / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="geoclip_qgis"):
        assert find_field(eng.cache_dir, eng.weights.digest, 10.0) == []
    assert "older version" in caplog.text


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_field_cli(how, tmp_path, caplog):
    cache = tmp_path / "cache"
    common = ["--resolution", "10", "--device", "cpu", "--cache-dir", str(cache)]
    assert main(["field", *common]) == 0
    (path,) = (cache / "fields").glob("field-*")
    assert main(["similar", "--lat", "48.8", "--lon", "2.3", *common, "-o", str(tmp_path / "clean.tif")]) == 0
    _field_damage(path, how)
    assert main(["similar", "--lat", "48.8", "--lon", "2.3", *common, "-o", str(tmp_path / "again.tif")]) == 0
    assert str(path) in caplog.text
    with rasterio.open(tmp_path / "clean.tif") as a, rasterio.open(tmp_path / "again.tif") as b:
        assert a.bounds == b.bounds and np.abs(a.read(1) - b.read(1)).max() < 2e-5
    assert len(moved_aside(path.parent, path.name)) == 1
    assert main(["field", *common]) == 0 and path.is_dir(), "building again replaces it"


def test_damaged_field_worker(weights, tmp_path):
    opts = {"cache_dir": str(tmp_path / "cache"), "device": "cpu", "gallery": "fibonacci:100"}
    _worker_rows("build_field", {"engine": opts, "resolution": 10.0})
    (path,) = (tmp_path / "cache" / "fields").glob("field-*")
    sim = {"engine": opts, "lat": 10.0, "lon": 20.0, "resolution": 10.0}
    _worker_rows("similar", {**sim, "out": str(tmp_path / "clean.tif")})
    _field_damage(path, "random")
    _worker_rows("similar", {**sim, "out": str(tmp_path / "again.tif")})
    with rasterio.open(tmp_path / "clean.tif") as a, rasterio.open(tmp_path / "again.tif") as b:
        assert np.abs(a.read(1) - b.read(1)).max() < 2e-5
    status = _worker_rows("field_status", {"engine": opts, "resolution": 10.0})[0]
    assert not status["complete"] and len(moved_aside(path.parent, path.name)) == 1


def test_gallery_cache_without_checksum_is_replaced(encoder, weights, tmp_path):
    coords = fibonacci_grid(80)
    g = Gallery(coords)
    legacy = g.cache_path(tmp_path, weights.digest, "float32").with_suffix(".npy")
    np.save(legacy, np.zeros((80, 512), np.float32))  # the old format: no checksum, and here all wrong
    g.attach(encoder, weights.digest, tmp_path)
    assert not legacy.exists() and g.cache_file.suffix == ".emb"
    assert np.allclose(np.linalg.norm(np.asarray(g.embeddings), axis=1), 1.0, atol=1e-5)
