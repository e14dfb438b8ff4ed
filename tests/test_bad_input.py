"""Bad input, case by case, through the engine API, the CLI and the Processing algorithm: each bad photo is
reported by name with its reason, every other photo is still geolocated, and other bad requests fail clearly."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_photo
from PIL import Image

from geoclip_qgis.core.service.cli import main

# name -> None (must be geolocated) or a regex its error must match
CASES = {
    "corrupt.jpg": r"corrupt|not a readable image",
    "truncated.jpg": r"corrupt or truncated",
    "text file.jpg": r"not a readable image",
    "empty.jpg": r"empty \(0 bytes\)",
    "bomb.png": r"too large to decode safely",
    "photo.heic": r"not a readable image|HEIC/HEIF photos need the optional pillow-heif",  # a broken HEIC
    "iphone.heic": None,  # a real one: pillow-heif is an engine requirement
    "cmyk.jpg": None,
    "sixteen_bit.png": None,
    "palette_transparent.png": None,
    "alpha.png": None,
    "exif_rotated.jpg": None,
    "photo.webp": None,
    "photo.tif": None,
    "ünïcödé and spaces.jpg": None,
}


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad input")
    good = make_photo(folder / "_good.jpg", seed=7)
    data = good.read_bytes()
    (folder / "corrupt.jpg").write_bytes(data[:200] + os.urandom(3000))
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "text file.jpg").write_text("this is not a photo")
    (folder / "empty.jpg").write_bytes(b"")
    Image.new("1", (10000, 10000)).save(folder / "bomb.png")  # 100M pixels: over Pillow's 89M safety limit
    (folder / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    rgb = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray((np.arange(120 * 160).reshape(120, 160) * 3).astype(np.uint16)).save(folder / "sixteen_bit.png")
    pal = Image.fromarray(rgb).convert("P")
    pal.save(folder / "palette_transparent.png", transparency=0)
    Image.fromarray(rgb).convert("RGBA").save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(rgb).save(folder / "exif_rotated.jpg", exif=exif)
    Image.fromarray(rgb).save(folder / "photo.webp")
    Image.fromarray(rgb).save(folder / "photo.tif")
    make_photo(folder / "ünïcödé and spaces.jpg", seed=8)
    from pillow_heif import register_heif_opener

    register_heif_opener()
    Image.fromarray(rgb).save(folder / "iphone.heic", quality=80)
    return folder


def check(outcomes: dict) -> None:
    """outcomes: file name -> None when geolocated, else the error message."""
    assert outcomes.get("_good.jpg", "missing") is None
    for name, expected in CASES.items():
        assert name in outcomes, f"{name} was not reported at all"
        got = outcomes[name]
        if expected is None:
            assert got is None, f"{name} should be geolocated, got: {got}"
        else:
            assert got is not None and re.search(expected, got), f"{name}: {got!r} does not match {expected!r}"
            assert name in got, f"the message must name the file: {got!r}"


def test_bad_photos_engine_api(engine, bad_folder):
    paths = sorted(str(p) for p in bad_folder.iterdir())
    results = engine.predict_images(paths, top_k=2)
    check({Path(r.source).name: (None if r.ok else r.error["message"]) for r in results})


def test_bad_photos_cli(bad_folder, tiny_clip, cache_dir, tmp_path):
    out = tmp_path / "cli.csv"
    rc = main(["photos", str(bad_folder), str(bad_folder / "_good.jpg"), "-o", str(out), "--clip-path", tiny_clip,
               "--device", "cpu", "--gallery", "fibonacci:2000", "--top-k", "1"])
    assert rc == 3
    with open(out, newline="") as fh:
        outcomes = {Path(r["source"]).name: None for r in csv.DictReader(fh)}
    with open(tmp_path / "cli.failed.csv", newline="") as fh:
        outcomes.update({Path(r["source"]).name: r["message"] for r in csv.DictReader(fh)})
    check(outcomes)
    assert len(outcomes) == len(CASES) + 1, "the duplicate _good.jpg is geolocated once"


def test_bad_photos_processing(geoclip_provider, bad_folder, tiny_clip, cache_dir, tmp_path):
    import processing
    from qgis.core import QgsVectorLayer

    res = processing.run("geoclip:geolocate_photos", {
        "FOLDER": str(bad_folder), "TOP_K": 1, "DEVICE": 1, "GALLERY": "fibonacci:2000", "CLIP_PATH": tiny_clip,
        "OUTPUT": str(tmp_path / "p.gpkg"), "FAILED": str(tmp_path / "f.gpkg")})
    outcomes = {Path(f["photo"]).name: None for f in QgsVectorLayer(res["OUTPUT"], "p", "ogr").getFeatures()}
    outcomes.update({Path(f["photo"]).name: f["reason"]
                     for f in QgsVectorLayer(res["FAILED"], "f", "ogr").getFeatures()})
    check(outcomes)
    with pytest.raises(Exception, match="No photos to geolocate"):
        processing.run("geoclip:geolocate_photos", {"FOLDER": tempfile.mkdtemp(), "OUTPUT": "memory:"})
    with pytest.raises(Exception, match="not a Hugging Face model folder") as info:
        processing.run("geoclip:geolocate_text", {"QUERY": "a beach", "CLIP_PATH": str(bad_folder), "DEVICE": 1,
                                                  "GALLERY": "fibonacci:2000", "OUTPUT": "memory:"})
    assert str(info.value).count("download openai/clip") == 1, "the hint is given once"
    with pytest.raises(Exception, match="memory budget"):
        processing.run("geoclip:likelihood_raster", {"TEXT": "a beach", "CLIP_PATH": tiny_clip, "DEVICE": 1,
                                                     "RESOLUTION": 0.001, "OUTPUT": str(tmp_path / "big.tif")})


def test_unreadable_photo_is_named(tmp_path):
    """As root every file is readable, so the check runs as 'nobody' there; otherwise in this process."""
    folder = Path(tempfile.mkdtemp(prefix="geoclip-perm-"))
    os.chmod(folder, 0o755)
    photo = make_photo(folder / "locked.jpg", seed=3)
    os.chmod(photo, 0o000)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from geoclip_qgis.core.io.photos import load_photo\n"
            "try:\n    load_photo(sys.argv[2]); print('READ')\nexcept Exception as e:\n    print(e)")
    root = str(Path(__file__).resolve().parents[1])
    kwargs = {"preexec_fn": lambda: os.setuid(65534)} if os.geteuid() == 0 else {}
    out = subprocess.run([sys.executable, "-c", code, root, str(photo)], capture_output=True, text=True,
                         timeout=60, **kwargs).stdout.strip()
    assert "permission denied" in out and "locked.jpg" in out, out


@pytest.mark.parametrize("argv,message", [
    (["text", "   "], "empty text query"),
    (["text", "mountain " * 100], "at most 77"),
    (["text", "a beach", "--top-k", "5000"], "top-k must be between 1"),
    (["text", "a beach", "--top-k", "2001"], "top-k must be between 1"),
    (["text", "a beach", "--clip-path", "/nonexistent/clip"], "CLIP folder does not exist"),
    (["text", "a beach", "--weights", "/nonexistent/weights"], "weights folder does not exist"),
    (["features", "--resolution", "0.001", "-o", "OUT/f.tif"], "memory budget|MiB"),
    (["similar", "--lat", "95", "--lon", "0", "-o", "OUT/s.tif"], "outside lat"),
    (["similar", "--lat", "0", "--lon", "0", "--extent", "-190,0,10,10", "-o", "OUT/s.tif"], "longitudes"),
])
def test_bad_requests_cli(argv, message, tiny_clip, cache_dir, tmp_path, capsys):
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    if argv[0] == "text" and "--clip-path" not in argv:
        argv += ["--clip-path", tiny_clip, "--gallery", "fibonacci:2000", "--device", "cpu"]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)


def test_antimeridian_extent_is_accepted_by_the_cli(tmp_path):
    assert main(["similar", "--lat", "-17", "--lon", "179", "--extent", "170,-25,-170,-5", "--resolution", "1",
                 "-o", str(tmp_path / "fiji.tif")]) == 0
