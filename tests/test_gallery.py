"""Gallery embeddings are encoded once, cached under a key, reused, and rebuilt when the key changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.model.gallery import Gallery, fibonacci_grid, load_gallery, read_coordinates_csv
from geoclip_qgis.core.model.location_encoder import LocationEncoder


class CountingEncoder:
    def __init__(self, enc):
        self.enc, self.calls = enc, 0

    def iter_encode(self, *a, **k):
        self.calls += 1
        yield from self.enc.iter_encode(*a, **k)


def test_cache_is_written_reused_and_keyed(tmp_path, weights):
    enc = CountingEncoder(LocationEncoder.from_state(weights.location))
    coords = fibonacci_grid(500)
    g1 = Gallery(coords).attach(enc, weights.digest, tmp_path)
    assert enc.calls == 1 and g1.cache_file.is_file()
    g2 = Gallery(coords).attach(enc, weights.digest, tmp_path)
    assert enc.calls == 1, "second attach must read the cache"
    assert torch.equal(g1.embeddings, g2.embeddings)
    Gallery(coords).attach(enc, "other-weights", tmp_path)
    assert enc.calls == 2, "a different weights digest must not reuse the cache"
    Gallery(coords[:400]).attach(enc, weights.digest, tmp_path)
    assert enc.calls == 3, "different coordinates must not reuse the cache"
    np.testing.assert_allclose(np.linalg.norm(np.asarray(g2.embeddings), axis=1), 1.0, atol=1e-5)
    # A damaged cache is rebuilt, not trusted. (Replaced, not truncated in place: g1/g2 still map the old file.)
    damaged = tmp_path / "damaged"
    damaged.write_bytes(b"garbage")
    damaged.replace(g1.cache_file)
    g3 = Gallery(coords).attach(enc, weights.digest, tmp_path)
    assert enc.calls == 4
    assert torch.allclose(g3.embeddings, g1.embeddings)


def test_fibonacci_grid_is_near_uniform():
    pts = fibonacci_grid(10_000)
    assert pts.shape == (10_000, 2)
    assert np.abs(pts[:, 0]).max() < 90 and np.abs(pts[:, 1]).max() <= 180
    # Equal-area: the fraction of points north of 30° N equals the cap's area fraction (1 - sin 30°) / 2.
    frac = (pts[:, 0] > 30).mean()
    assert abs(frac - 0.25) < 0.005


def test_custom_csv_and_specs(tmp_path, weights):
    csv = tmp_path / "g.csv"
    csv.write_text("name,Latitude,Longitude\na,10,20\nb,-5.5,170\n")
    np.testing.assert_allclose(read_coordinates_csv(csv), [[10, 20], [-5.5, 170]])
    assert len(load_gallery("fibonacci:123")) == 123
    assert len(load_gallery(None, weights.gallery_csv)) == 100_000
    assert len(load_gallery([[1, 2], [3, 4]])) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("LAT,LON\n10,20\n95,0\n")
    with pytest.raises(InputError, match="outside lat"):
        read_coordinates_csv(bad)
    nocols = tmp_path / "nocols.csv"
    nocols.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no lat/lon columns"):
        read_coordinates_csv(nocols)
