"""What in the photo drove the answer (core/model/saliency.py): known answers on photos whose signal sits in one
quadrant, the gradient checked against finite differences, shapes and ranges, the overlay's aspect, the CLI flag,
the photo's SHA-256, and that nothing is computed unless asked."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geoclip_qgis.core.model import saliency

CLIP_MEAN = (122.77, 116.75, 104.09)  # CLIP's normalisation mean in 0-255: these pixels are (almost) zero inputs


def quadrant_photo(path: Path, quadrant: int, size=(224, 224), seed: int = 0) -> Path:
    """A flat photo at CLIP's mean colour with texture in one quadrant only (0 top-left, 1 top-right, 2 bottom-left,
    3 bottom-right): gradient × input can only be large where the input is not the mean."""
    w, h = size
    arr = np.empty((h, w, 3), dtype=np.uint8)
    arr[:] = np.round(CLIP_MEAN).astype(np.uint8)
    rng = np.random.default_rng(seed)
    top, left = (quadrant // 2) * h // 2, (quadrant % 2) * w // 2
    arr[top:top + h // 2, left:left + w // 2] = rng.integers(0, 255, (h // 2, w // 2, 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").save(path)
    return path


def _quadrant_means(heat: np.ndarray) -> np.ndarray:
    h, w = heat.shape
    return np.array([heat[:h // 2, :w // 2].mean(), heat[:h // 2, w // 2:].mean(),
                     heat[h // 2:, :w // 2].mean(), heat[h // 2:, w // 2:].mean()])


def _pixels(engine, path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return engine.image_encoder.preprocess([im.convert("RGB")])[0]


@pytest.mark.parametrize("quadrant", [0, 3])
def test_the_map_lies_where_the_signal_is_and_moves_with_it(engine, tmp_path, quadrant):
    photo = quadrant_photo(tmp_path / f"q{quadrant}.png", quadrant)
    top = engine.predict_images([str(photo)], top_k=1)[0].predictions[0].gallery_index
    heat = saliency.saliency_map(engine, _pixels(engine, photo), top)
    assert heat.shape == (224, 224) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and heat.max() > 0.5
    means = _quadrant_means(heat)
    assert int(np.argmax(means)) == quadrant
    assert means[quadrant] > 5 * np.delete(means, quadrant).max()  # the other three carry (almost) nothing


def test_the_gradient_is_the_logits_gradient(engine, photos):
    """Autograd's directional derivative of the top place's logit equals a central finite difference."""
    pixels = _pixels(engine, Path(photos[0]))
    top = engine.predict_images([photos[0]], top_k=1)[0].predictions[0].gallery_index
    target = saliency.place_embedding(engine, top)
    x = pixels[None].clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(saliency.place_logit(engine, x, target)[0], x)
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).float()
    eps = 1e-2
    with torch.no_grad():
        plus = saliency.place_logit(engine, pixels[None] + eps * direction, target)[0]
        minus = saliency.place_logit(engine, pixels[None] - eps * direction, target)[0]
    numeric = float((plus - minus) / (2 * eps))
    analytic = float((grad * direction).sum())
    assert analytic == pytest.approx(numeric, rel=0.05, abs=1e-3)
    # and the logit is the one retrieval ranks by: exp(logit_scale) · cosine with the gallery point
    feats = engine.embed_pixels(pixels[None])
    with torch.no_grad():
        assert float(saliency.place_logit(engine, pixels[None], target)[0]) == pytest.approx(
            float(engine.gallery().logits(feats, engine.scale)[0, top]), rel=1e-4)


def test_the_run_writes_an_overlay_of_the_photos_aspect_only_when_asked(engine, tmp_path, monkeypatch):
    photo = quadrant_photo(tmp_path / "wide.png", 1, size=(448, 224))
    plain = engine.predict_images([str(photo)], top_k=3)[0]
    assert plain.saliency is None
    calls = []
    real = saliency.saliency_map
    monkeypatch.setattr(saliency, "saliency_map", lambda *a: calls.append(a) or real(*a))
    again = list(engine.iter_predict_images([str(photo)], 3))[0]
    assert again.saliency is None and calls == []  # nothing computed without the option
    out = tmp_path / "why"
    res = list(engine.iter_predict_images([str(photo)], 3, options=replace(engine.answers,
                                                                           saliency_dir=str(out))))[0]
    assert len(calls) == 1 and calls[0][2] == res.predictions[0].gallery_index  # the top gallery point's map
    png = Path(res.saliency)
    assert png.parent == out and png.name.endswith(".saliency.png") and png.is_file()
    with Image.open(png) as im:
        assert im.size == (448, 224)  # the photo's aspect, the crop heat-mapped, the sides dimmed
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    assert arr[:, :112].mean() < 0.6 * np.asarray(Image.open(photo).convert("RGB"), np.float32)[:, :112].mean()
    assert [p.lat for p in res.predictions] == [p.lat for p in plain.predictions]  # the answer is unchanged
    assert not list(out.glob("*.tmp*"))


def test_summary_rows_carry_the_files_sha256(engine, photos):
    from geoclip_qgis.core.io.results import summary_row

    res = engine.predict_images([photos[1]], top_k=2)[0]
    assert res.sha256 == hashlib.sha256(Path(photos[1]).read_bytes()).hexdigest()
    assert summary_row(res)["sha256"] == res.sha256


def test_cli_saliency_folder(tmp_path, tiny_clip, cache_dir, photos):
    from geoclip_qgis.core.service.cli import main

    out = tmp_path / "why"
    csv_out = tmp_path / "s.csv"
    rc = main(["photos", photos[0], photos[1], "--clip-path", tiny_clip, "--device", "cpu", "--gallery",
               "fibonacci:500", "--cache-dir", str(cache_dir), "--saliency", str(out), "-o", str(csv_out),
               "--table", "summary"])
    assert rc == 0
    rows = list(csv.DictReader(csv_out.open(encoding="utf-8")))
    assert [Path(r["saliency"]).parent for r in rows] == [out, out]
    assert all(Path(r["saliency"]).is_file() for r in rows) and len(set(r["saliency"] for r in rows)) == 2
    bad = main(["photos", photos[0], "--clip-path", tiny_clip, "--device", "cpu", "--saliency",
                str(tmp_path / "no" / "such" / "dir")])
    assert bad == 2  # the plan refuses a folder whose parent is missing, before any model loads


def test_worker_request_carries_the_saliency_folder(tiny_clip, cache_dir, photos, tmp_path):
    from geoclip_qgis.core.service.worker import Worker

    sent = []
    engine = {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:500"}
    worker = Worker(sent.append)
    worker.handle({"id": 1, "op": "geolocate_images", "params": {"paths": [photos[0]], "top_k": 2, "engine": engine}})
    row = next(m for m in sent if m["type"] == "row")["data"]
    assert row["saliency"] is None and row["sha256"]
    sent.clear()
    worker.handle({"id": 2, "op": "geolocate_images", "params": {
        "paths": [photos[0]], "top_k": 2, "engine": engine, "saliency": str(tmp_path / "why")}})
    row = next(m for m in sent if m["type"] == "row")["data"]
    assert Path(row["saliency"]).is_file() and Path(row["saliency"]).parent == tmp_path / "why"
    sent.clear()
    worker.handle({"id": 3, "op": "geolocate_images", "params": {
        "paths": [photos[0]], "top_k": 2, "engine": engine, "saliency": photos[0]}})
    err = next(m for m in sent if m["type"] == "error")["error"]
    assert "saliency folder" in err["message"]  # a photo named as the folder: refused before any write


def test_int8_has_no_gradients_the_answer_is_kept_and_the_reason_logged(weights, tiny_clip, small_gallery,
                                                                         cache_dir, photos, tmp_path, caplog):
    from geoclip_qgis.core.model.engine import GeoClipEngine

    eng = GeoClipEngine(weights=weights, clip_path=tiny_clip, device="cpu", precision="int8", gallery=small_gallery,
                        cache_dir=cache_dir)
    opts = replace(eng.answers, saliency_dir=str(tmp_path / "why"))
    with caplog.at_level("WARNING", logger="geoclip_qgis"):
        res = list(eng.iter_predict_images([photos[0]], 2, options=opts))[0]
    assert res.ok and res.places and res.saliency is None
    assert "int8" in caplog.text and "no saliency map" in caplog.text


def test_a_bf16_engine_differentiates_through_its_folded_towers(weights, tiny_clip, small_gallery, cache_dir,
                                                                 tmp_path):
    """bf16 towers run fused oneDNN products, which have no backward, when no gradient is recorded
    (precision.CastLinear); a saliency map records one, so it takes the plain path, and the map still lies where the
    signal is."""
    from geoclip_qgis.core.model.engine import GeoClipEngine

    eng = GeoClipEngine(weights=weights, clip_path=tiny_clip, device="cpu", precision="bf16", gallery=small_gallery,
                        cache_dir=cache_dir)
    photo = quadrant_photo(tmp_path / "q2.png", 2)
    top = eng.predict_images([str(photo)], top_k=1)[0].predictions[0].gallery_index
    heat = saliency.saliency_map(eng, _pixels(eng, photo), top)
    means = _quadrant_means(heat)
    assert int(np.argmax(means)) == 2 and means[2] > 5 * np.delete(means, 2).max()
