"""core.decode: reduced-size decode stays faithful (pixels, orientation, GPS, errors) and the pool keeps order,
per-photo errors and a bounded number of photos in flight."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geoclip_qgis.core.errors import ImageError
from geoclip_qgis.core.io.decode import decode_ahead, input_side, open_photo, reduce_to
from geoclip_qgis.core.io.photos import load_photo


def _psnr(a, b) -> float:
    from transformers.image_utils import OPENAI_CLIP_STD

    d = (a.numpy() - b.numpy()) * np.array(OPENAI_CLIP_STD).reshape(3, 1, 1) * 255.0
    rms = float(np.sqrt(np.mean(d ** 2)))
    return float("inf") if rms == 0 else 20 * np.log10(255.0 / rms)


def _scene(w: int, h: int, seed: int = 0) -> Image.Image:
    """Smooth gradients with hard-edged blocks: photo-like enough for a fidelity bound."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 64 + 2, w // 64 + 2, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    arr = np.asarray(im).copy()
    for _ in range(20):
        y, x = rng.integers(0, h - h // 8), rng.integers(0, w - w // 8)
        arr[y:y + h // 10, x:x + w // 12] = rng.integers(0, 255, 3)
    return Image.fromarray(arr)


def _exif(orientation: int = 1, gps=(46.5, 8.25)):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8825).update({1: "N", 2: (gps[0], 0.0, 0.0), 3: "E", 4: (gps[1], 0.0, 0.0)})
    return exif


@pytest.fixture(scope="module")
def processor(tiny_clip):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil.from_pretrained(tiny_clip)


def _pixels(processor, image):
    return processor(images=[image], return_tensors="pt")["pixel_values"][0]


def test_input_side_is_read_from_the_processor(processor):
    assert input_side(processor) == 224


@pytest.mark.parametrize("orientation", [1, 6, 3, 8])
def test_reduced_jpeg_keeps_orientation_gps_and_fidelity(tmp_path, processor, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    _scene(2400, 1800).save(path, quality=92, exif=_exif(orientation))
    exact, fast = load_photo(path), open_photo(path, 224)
    assert fast.gps == exact.gps == (46.5, 8.25)
    assert max(fast.image.size) < max(exact.image.size)  # decoded at a DCT scale
    assert min(fast.image.size) >= 224
    assert (fast.image.width > fast.image.height) == (exact.image.width > exact.image.height)  # upright
    assert _psnr(_pixels(processor, fast.image), _pixels(processor, exact.image)) >= 40


def test_small_photos_and_exact_path_are_bit_identical(photos, processor):
    for p in photos:  # shortest side 240 < 2 × 224: no DCT scale or reduce applies
        assert _pixels(processor, open_photo(p, 224).image).equal(_pixels(processor, load_photo(p).image))
        assert open_photo(p).image.tobytes() == load_photo(p).image.tobytes()


def test_other_formats_are_box_reduced_within_40_db(tmp_path, processor):
    gray = (np.asarray(_scene(2000, 1500))[..., 1].astype(np.uint16) * 257)
    png = tmp_path / "sixteen.png"
    Image.fromarray(gray).save(png)
    exact, fast = load_photo(png), open_photo(png, 224)
    assert Image.open(png).mode == "I;16" and min(fast.image.size) >= 448
    assert _psnr(_pixels(processor, fast.image), _pixels(processor, exact.image)) >= 40
    assert reduce_to(exact.image, 224).size == fast.image.size


def test_errors_are_the_exact_paths(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("not a photo")
    cut = tmp_path / "cut.jpg"
    _scene(800, 600).save(cut, quality=90)
    cut.write_bytes(cut.read_bytes()[:2000])
    for path in (empty, text, tmp_path / "missing.jpg", tmp_path, cut):
        try:
            load_photo(path)
            expected = None
        except ImageError as exc:
            expected = exc.to_dict()
        try:
            open_photo(path, 224)
            got = None
        except ImageError as exc:
            got = exc.to_dict()
        assert got == expected, path


def test_pool_keeps_order_and_per_item_errors_and_bounds_what_is_in_flight():
    pulled = []
    lock = threading.Lock()

    def items():
        for i in range(40):
            pulled.append(i)
            yield i

    def load(item, i):
        if item % 7 == 3:
            raise ImageError("bad", f"photo{item}")
        return type("P", (), {"path": f"photo{item}", "gps": None, "image": item})()

    seen = []
    for d in decode_ahead(items(), load, lambda im: im * 10, workers=3, ahead=5):
        with lock:
            assert len(pulled) - len(seen) <= 5  # never more than `ahead` photos decoded and not yet consumed
        seen.append(d)
    assert [d.index for d in seen] == list(range(40))
    assert [d.source for d in seen] == [f"photo{i}" for i in range(40)]
    assert all((d.error is not None) == (i % 7 == 3) for i, d in enumerate(seen))
    assert [d.pixels for d in seen if d.error is None] == [i * 10 for i in range(40) if i % 7 != 3]


def test_engine_fast_and_exact_decode_agree(engine, photos, tmp_path):
    big = tmp_path / "big.jpg"
    _scene(2400, 1800, seed=3).save(big, quality=92, exif=_exif(6))
    inputs = [*photos, str(big), str(tmp_path / "missing.jpg")]
    fast = engine.predict_images(inputs, 3)
    engine.exact_decode = True
    try:
        exact = engine.predict_images(inputs, 3)
    finally:
        engine.exact_decode = False
    assert [r.source for r in fast] == [r.source for r in exact] == [str(Path(p)) for p in inputs]
    assert not fast[-1].ok and fast[-1].error == exact[-1].error
    for f, e in zip(fast[:3], exact[:3]):  # small photos: identical
        assert [(p.lat, p.lon, p.probability) for p in f.predictions] == \
               [(p.lat, p.lon, p.probability) for p in e.predictions]
    assert fast[3].gps == exact[3].gps == (46.5, 8.25)


@pytest.mark.parametrize("min_side", [None, 224])
def test_bombs_are_refused_by_every_decode_thread(tmp_path, monkeypatch, min_side):
    """A photo between one and two times Pillow's pixel limit (Pillow only warns there) must be refused on every
    thread, every time, whatever other threads do. It was turned into an error by a process-wide warning filter
    that any thread leaving warnings.catch_warnings restored under it (not thread-safe): a bomb was sometimes
    decoded (CI: Processing's bad-photo test, through the worker)."""
    from geoclip_qgis.core.io.decode import decode_ahead, open_photo

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300)
    rng = np.random.default_rng(0)
    items = []
    for i in range(48):
        size = (400, 300) if i % 2 else (250, 250)  # 120,000 px: over the limit, under twice it
        path = tmp_path / f"p{i}.{'jpg' if i % 4 < 2 else 'png'}"
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        items.append(str(path))
    stop = threading.Event()

    def neighbour():  # other code in the worker (a library, a prefetch thread) using warnings.catch_warnings
        import time
        import warnings

        while not stop.is_set():
            with warnings.catch_warnings():
                time.sleep(0.0005)

    noisy = threading.Thread(target=neighbour, daemon=True)
    noisy.start()
    try:
        out = list(decode_ahead(items, lambda item, i: open_photo(item, min_side), lambda im: im.size, workers=4))
    finally:
        stop.set()
        noisy.join()
    for i, d in enumerate(out):
        if i % 2:
            assert d.error is not None and "too large to decode safely" in str(d.error), (i, d.pixels)
        else:
            assert d.error is None and d.pixels is not None
