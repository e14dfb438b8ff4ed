"""Photos are decoded upright and RGB whatever their mode; GPS is read; bad files are named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from geoclip_qgis.core.errors import ImageError
from geoclip_qgis.core.io.photos import gps_from_exif, load_photo


def _exif_with(orientation=None, gps=None) -> Image.Exif:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if gps:
        lat, lon = gps
        exif.get_ifd(0x8825).update({
            1: "N" if lat >= 0 else "S", 2: (abs(lat), 0.0, 0.0),
            3: "E" if lon >= 0 else "W", 4: (abs(lon), 0.0, 0.0),
        })
    return exif


def test_orientation_is_applied(tmp_path):
    arr = np.zeros((100, 200, 3), np.uint8)
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=_exif_with(orientation=6))
    photo = load_photo(path)
    assert photo.image.size == (100, 200), "orientation 6 means rotate 90°: width and height swap"


def test_gps_roundtrip(tmp_path):
    path = tmp_path / "gps.jpg"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(path, exif=_exif_with(gps=(-33.5, -70.25)))
    lat, lon = load_photo(path).gps
    assert lat == pytest.approx(-33.5) and lon == pytest.approx(-70.25)
    assert gps_from_exif(Image.Exif()) is None


@pytest.mark.parametrize("mode,suffix", [("CMYK", ".jpg"), ("I;16", ".png"), ("P", ".png"), ("RGBA", ".png"),
                                         ("LA", ".png"), ("L", ".tif"), ("RGB", ".webp")])
def test_modes_become_rgb(tmp_path, mode, suffix):
    im = Image.fromarray((np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3))
    if mode == "I;16":
        im = Image.fromarray((np.arange(64 * 64) * 16).astype(np.uint16).reshape(64, 64))
    elif mode != "RGB":
        im = im.convert(mode)
    if mode == "P":
        im.info["transparency"] = 0
    path = tmp_path / f"x_{mode.replace(';', '')}{suffix}"
    im.save(path)
    photo = load_photo(path)
    assert photo.image.mode == "RGB" and photo.image.size == (64, 64)


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"just text", "not a readable image"),
                                           (None, "not found")])
def test_bad_files_are_named(tmp_path, content, match):
    path = tmp_path / "bad photo ü.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=match) as info:
        load_photo(path)
    assert str(path) in str(info.value)


def test_truncated_jpeg_and_bomb(tmp_path, monkeypatch):
    full = tmp_path / "full.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_photo(cut)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match="too large"):
        load_photo(full)
