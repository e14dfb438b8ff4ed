"""Photo and text geolocation through the engine, checked against official GeoCLIP.predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoclip_qgis.core.errors import InputError


def test_images_match_official_predict(engine, tiny_clip, small_gallery, photos):
    from geoclip import GeoCLIP

    official = GeoCLIP(clip_path=tiny_clip).eval()
    official.gps_gallery = torch.from_numpy(small_gallery)
    results = engine.predict_images(photos, top_k=5)
    assert [r.source for r in results] == photos
    for path, res in zip(photos, results):
        gps, probs = official.predict(path, 5)
        assert res.ok and len(res.predictions) == 5
        ours_gps = np.array([[p.lat, p.lon] for p in res.predictions])
        np.testing.assert_array_equal(ours_gps, gps.numpy())
        ours_probs = np.array([p.probability for p in res.predictions])
        assert np.abs(ours_probs - probs.numpy()).max() <= 1e-5
        assert [p.rank for p in res.predictions] == [1, 2, 3, 4, 5]
        idx = [p.gallery_index for p in res.predictions]
        np.testing.assert_allclose(small_gallery[idx], gps.numpy())


def test_batch_size_does_not_change_results(engine, photos):
    one = [r.predictions for r in engine.iter_predict_images(photos, 3, batch_size=1)]
    many = [r.predictions for r in engine.iter_predict_images(photos, 3, batch_size=8)]
    for a, b in zip(one, many):
        assert [p.gallery_index for p in a] == [p.gallery_index for p in b]
        np.testing.assert_allclose([p.probability for p in a], [p.probability for p in b], atol=1e-5)


def test_pil_inputs_and_bad_files_do_not_stop_the_batch(engine, photos, tmp_path):
    from PIL import Image

    bad = tmp_path / "not_a_photo.jpg"
    bad.write_text("hello")
    results = engine.predict_images([photos[0], str(bad), Image.open(photos[1])], top_k=2)
    assert [r.ok for r in results] == [True, False, True]
    assert str(bad) in results[1].error["message"]
    assert results[2].source == "<image 2>"


def test_text_queries(engine):
    res = engine.predict_text(["snowy alpine village", "a beach with palm trees"], top_k=4)
    assert [r.kind for r in res] == ["text", "text"]
    for r in res:
        probs = [p.probability for p in r.predictions]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    with pytest.raises(InputError, match="empty text query"):
        engine.predict_text(["   "])
    with pytest.raises(InputError, match="at most 77"):
        engine.predict_text(["mountain " * 100])


@pytest.mark.parametrize("k", [0, -1, 2001, 2.5])
def test_top_k_bounds(engine, photos, k):
    with pytest.raises(InputError, match="top-k"):
        engine.predict_images(photos[:1], top_k=k)


def test_encode_locations_matches_gallery_cache(engine, small_gallery):
    emb = engine.encode_locations(small_gallery[:10], normalise=True)
    cached = np.asarray(engine.gallery().embeddings[:10])
    np.testing.assert_allclose(emb, cached, atol=2e-5)
