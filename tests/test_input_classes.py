"""Issue 11, classes of bad input owned by the engine: raster extents (C), models validated before use (D), only
regular files read (E), faults of the machine (F) and the one coordinate validator (G). Each class is tried through
the Python API, the CLI (`cli.main`) and the worker protocol (`Worker.handle`)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geoclip_qgis.core.errors import GeoClipError, InputError
from geoclip_qgis.core.maps.raster import Grid, budget_bytes
from geoclip_qgis.core.service.cli import main

ROOT = Path(__file__).resolve().parents[1]


def worker_answer(op: str, params: dict) -> dict:
    """The last message the worker sends for one request: its result or its error."""
    from geoclip_qgis.core.service.worker import Worker

    sent: list = []
    Worker(sent.append).handle({"id": 1, "op": op, "params": params})
    return sent[-1]


def worker_error(op: str, params: dict) -> dict:
    """The error a request gets: code, message, path and hint."""
    ans = worker_answer(op, params)
    assert ans["type"] == "error", ans
    err = ans.get("error", ans)
    assert "Traceback" not in err["message"] and err["code"] != "internal", err
    return err


def cli_error(argv: list, capsys) -> str:
    assert main(argv) == 2, "a clear refusal, exit code 2"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ---- C. raster extents mean what they say ----------------------------------------------------------------------
def _random_requests(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        res = float(rng.choice([0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 0.3, 0.7, 1.1, 7.0]))
        s, n_ = sorted(rng.uniform(-90, 90, 2))
        w, e = rng.uniform(-180, 180, 2)
        if rng.random() < 0.2:
            s, n_ = (-90.0, n_) if rng.random() < 0.5 else (s, 90.0)
        yield (round(w, 3), round(s, 3), round(e, 3), round(n_, 3)), res


def test_grids_always_cover_the_extent_and_stay_on_the_globe():
    """Random extents (antimeridian, poles, resolutions that do not divide the globe): every grid covers its extent,
    lies on the global lattice, is the smallest such grid, and stays within ±90° and 360°; or it is refused."""
    tried = covered = refused = 0
    for (w, s, e, n), res in _random_requests(600):
        tried += 1
        try:
            g = Grid.over((w, s, e, n), res)
        except InputError as exc:
            refused += 1
            assert re.search(r"same meridian|coarser than the extent|divides", str(exc)), str(exc)
            continue
        e_u = e + 360 if e < w else e
        assert g.west <= w + 1e-9 and g.east >= e_u - 1e-9 and g.south <= s + 1e-9 and g.north >= n - 1e-9
        assert g.south >= -90 and g.north <= 90 and g.east - g.west <= 360 + 1e-9
        assert g.west - w > -res - 1e-9 and g.east - e_u < res + 1e-9, "smallest cover: less than a cell more"
        assert g.north - n < res + 1e-9 and s - g.south < res + 1e-9
        for edge, origin in ((g.west, -180), (g.north, 90)):
            k = (edge - origin) / res
            assert abs(k - round(k)) < 1e-6, "on the global lattice"
        assert g.width * res == pytest.approx(g.east - g.west) and g.height * res == pytest.approx(g.north - g.south)
        covered += 1
    assert covered + refused == tried and covered > 400
    print(f"class C: {tried} random extents tried, {covered} covered exactly, {refused} refused clearly")


@pytest.mark.parametrize("extent,res,message", [
    ((0, 0, 0, 10), 1.0, "same meridian"),
    ((180, 0, -180, 10), 1.0, "same meridian"),
    ((-180, 0, -180, 10), 1.0, "same meridian"),
    ((0, 0, 1, 1), 5.0, "coarser than the extent"),
    ((0, 0, 100, 0.2), 0.5, "coarser than the extent"),
    (None, 0.7, "divides 360"),
    ((0, -90, 10, -80), 0.7, "divides 180"),
    ((0, 0, 10), 1.0, "4 numbers"),
    ((0, "a", 10, 10), 1.0, "4 numbers"),
    ((0, 0, 10, 10), "abc", "4 numbers"),
    ((0, 0, 10, 10), float("nan"), "positive number"),
    ((0, 0, 10, 10), -1, "positive number"),
    ("1234", 1.0, "4 numbers"),
    ((0, 0, 10, 10), True, "4 numbers"),
    ((0, 0, 10, 10), 1e-300, "too fine"),
    ((0, -95, 10, 10), 1.0, "latitudes"),
    ((0, 10, 10, 10), 1.0, "latitudes"),
])
def test_bad_extents_are_refused_api(extent, res, message):
    with pytest.raises(InputError, match=message):
        Grid.over(extent, res)


def test_extent_rules_by_example():
    assert Grid.over((3, 38, 22, 51), 2.0) == Grid(2, 38, 22, 52, 2.0), "round() used to give 3,39,23,51: less"
    assert Grid.over((0.3, 0.3, 10.3, 10.3), 1.0) == Grid(0, 0, 11, 11, 1.0)
    world = Grid.over(None, 0.1)
    assert (world.west, world.south, world.east, world.north, world.width, world.height) == \
        (-180, -90, 180, 90, 3600, 1800), "a world grid stays 360° wide and inside ±90°"
    am = Grid.over((170, -20, -170, 0), 0.5)
    assert (am.west, am.east, am.width) == (170, 190, 40)
    assert Grid.over((-180, -90, 180, 90), 0.75).north == 90, "a resolution dividing both spans is fine"


@pytest.mark.parametrize("extent,res,message", [
    ("0,0,0,10", "1", "same meridian"),
    ("0,0,1,1", "5", "coarser than the extent"),
    ("-180,-90,180,90", "0.7", "divides 360"),
])
def test_bad_extents_are_refused_cli(extent, res, message, tmp_path, capsys):
    err = cli_error(["similar", "--lat", "0.5", "--lon", "0.5", "--extent", extent, "--resolution", res,
                     "-o", str(tmp_path / "s.tif")], capsys)
    assert message in err
    assert not (tmp_path / "s.tif").exists()


def test_cli_raster_covers_the_extent(tmp_path):
    import rasterio

    assert main(["similar", "--lat", "45", "--lon", "10", "--extent", "3,38,22,51", "--resolution", "2",
                 "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "s.tif")]) == 0
    with rasterio.open(tmp_path / "s.tif") as ds:
        assert tuple(ds.bounds) == pytest.approx((2, 38, 22, 52))


@pytest.mark.parametrize("extent,res,message", [
    ([0, 0, 0, 10], 1.0, "same meridian"),
    ([0, 0, 1, 1], 5.0, "coarser than the extent"),
    (None, 0.7, "divides 360"),
])
def test_bad_extents_are_refused_worker(extent, res, message, tmp_path):
    err = worker_error("similar", {"engine": {"device": "cpu", "cache_dir": str(tmp_path)}, "lat": 0.5, "lon": 0.5,
                                   "extent": extent, "resolution": res, "out": str(tmp_path / "s.tif")})
    assert err["code"] == "input" and message in err["message"]


# ---- F. an unparsable budget variable is a documented fallback, not a crash at import --------------------------
@pytest.mark.parametrize("value", ["abc", "-5", "nan", "inf", "0", ""])
def test_bad_budget_variable_falls_back_to_the_default_api(value, monkeypatch, caplog):
    monkeypatch.setenv("GEOCLIP_MEMORY_BUDGET_MB", value)
    with caplog.at_level(logging.WARNING, logger="geoclip_qgis"):
        assert budget_bytes("memory") == 2048 * 2**20
    assert value == "" or "GEOCLIP_MEMORY_BUDGET_MB" in caplog.text
    monkeypatch.setenv("GEOCLIP_OUTPUT_BUDGET_MB", "512.5")
    assert budget_bytes("output") == int(512.5 * 2**20)


def test_bad_budget_variable_cli_runs_with_a_warning(tmp_path):
    env = {**os.environ, "GEOCLIP_MEMORY_BUDGET_MB": "abc", "GEOCLIP_OUTPUT_BUDGET_MB": "lots"}
    proc = subprocess.run([sys.executable, "-m", "geoclip_qgis.core.service.cli", "similar", "--lat", "45",
                           "--lon", "10", "--extent", "0,40,20,50", "--resolution", "1",
                           "--cache-dir", str(tmp_path / "c"),
                           "-o", str(tmp_path / "s.tif")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "GEOCLIP_OUTPUT_BUDGET_MB='lots'" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "s.tif").is_file()


def test_bad_budget_variable_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOCLIP_OUTPUT_BUDGET_MB", "abc")
    ans = worker_answer("similar", {"engine": {"device": "cpu", "cache_dir": str(tmp_path)}, "lat": 45, "lon": 10,
                                    "extent": [0, 40, 20, 50], "resolution": 1.0, "out": str(tmp_path / "s.tif")})
    assert ans["type"] == "result", ans


# ---- B. EXIF GPS read exactly ------------------------------------------------------------------------------------
def exif_block(gps: dict) -> bytes:
    """An EXIF block (little-endian TIFF) whose GPS IFD holds `gps` {tag: value} exactly as written: a str is ASCII,
    a tuple of numbers RATIONAL, or SRATIONAL when one is negative (as some writers do); a (num, den) pair of
    ints in a list is written raw (den 0 allowed). Pillow cannot write signed GPS values, hence this writer."""
    import struct

    gps_off, n = 26, len(gps)
    data_off = gps_off + 2 + 12 * n + 4
    entries, data = [], b""
    for tag in sorted(gps):
        value = gps[tag]
        if isinstance(value, str):
            raw, typ, count = value.encode() + b"\0", 2, len(value) + 1
        else:
            pairs = [v if isinstance(v, list) else (round(v * 10000), 10000) for v in value]
            signed = any(a < 0 for a, _ in pairs)
            raw = b"".join(struct.pack("<ii" if signed else "<II", a, b) for a, b in pairs)
            typ, count = (10 if signed else 5), len(pairs)
        field = raw.ljust(4, b"\0") if len(raw) <= 4 else struct.pack("<I", data_off + len(data))
        if len(raw) > 4:
            data += raw
        entries.append(struct.pack("<HHI", tag, typ, count) + field)
    tiff = b"II*\0" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x8825, 4, 1, gps_off) + struct.pack("<I", 0)
    tiff += struct.pack("<H", n) + b"".join(entries) + struct.pack("<I", 0) + data
    return b"Exif\0\0" + tiff


# gps tags -> expected (lat, lon), or a regex for the reported problem
GPS_CASES = {
    "plain_north_east": ({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 21.0, 0.0)},
                         (48 + 51 / 60 + 29 / 3600, 2.35)),
    "south_west_letters": ({1: "S", 2: (33.0, 30.0, 0.0), 3: "W", 4: (70.0, 15.0, 0.0)}, (-33.5, -70.25)),
    "negative_with_S_stays_negative": ({1: "S", 2: (-45.0, 0.0, 0.0), 3: "W", 4: (-70.0, 30.0, 0.0)},
                                       (-45.0, -70.5)),
    "negative_with_N_contradicts": ({1: "N", 2: (-45.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}, "contradicts"),
    "negative_with_E_contradicts": ({1: "N", 2: (45.0, 0.0, 0.0), 3: "E", 4: (-10.0, 0.0, 0.0)}, "contradicts"),
    "unknown_letter": ({1: "X", 2: (45.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}, "reference is 'X'"),
    "lowercase_letter": ({1: "n", 2: (45.0, 0.0, 0.0), 3: "e", 4: (10.0, 0.0, 0.0)}, (45.0, 10.0)),
    "missing_letter": ({2: (45.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}, "no latitude reference"),
    "minutes_60": ({1: "N", 2: (45.0, 60.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}, r"minutes 60 outside \[0, 60\)"),
    "seconds_75": ({1: "N", 2: (45.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 75.0)}, r"seconds 75 outside"),
    "negative_minutes": ({1: "N", 2: (45.0, -5.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}, "minutes -5 outside"),
    "latitude_95": ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}, r"latitude 95° outside ±90°"),
    "latitude_89_59_60s": ({1: "N", 2: (89.0, 59.0, 59.9), 3: "E", 4: (10.0, 0.0, 0.0)}, (89.0 + 59 / 60 + 59.9 / 3600,
                                                                                           10.0)),
    "longitude_181": ({1: "N", 2: (45.0, 0.0, 0.0), 3: "W", 4: (180.0, 30.0, 0.0)}, r"longitude 180.5° outside"),
    "zero_denominator": ({1: "N", 2: [[45, 1], [0, 0], [0, 1]], 3: "E", 4: (10.0, 0.0, 0.0)}, "not finite|not numbers"),
    "null_island": ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, "exactly 0, 0"),
    "status_void": ({1: "N", 2: (45.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0), 9: "V"}, "no fix"),
    "only_latitude": ({1: "N", 2: (45.0, 0.0, 0.0)}, "only one of"),
}


@pytest.fixture(scope="module")
def gps_photos(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("gps photos")
    pixels = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8))
    for name, (tags, _) in GPS_CASES.items():
        pixels.save(folder / f"{name}.jpg", exif=exif_block(tags))
    return folder


def _check_gps(name: str, gps, problem) -> None:
    want = GPS_CASES[name][1]
    if isinstance(want, tuple):
        assert gps == pytest.approx(want, abs=1e-6), name
        assert problem is None
    else:
        assert gps is None, f"{name}: {gps} should have been refused"
        assert problem and re.search(want, problem), f"{name}: {problem!r}"


@pytest.mark.parametrize("name", list(GPS_CASES))
def test_exif_gps_api(name, gps_photos):
    from geoclip_qgis.core.io.photos import load_photo, read_gps

    photo = load_photo(gps_photos / f"{name}.jpg")
    _check_gps(name, photo.gps, photo.gps_problem)
    assert read_gps(gps_photos / f"{name}.jpg") == photo.gps


def test_exif_gps_cli(gps_photos, tiny_clip, tmp_path):
    import csv

    out = tmp_path / "gps.csv"
    assert main(["photos", str(gps_photos), "--clip-path", tiny_clip, "--device", "cpu", "--gallery",
                 "fibonacci:300", "--cache-dir", str(tmp_path / "c"), "--top-k", "1", "-o", str(out)]) == 0
    with open(out, newline="") as fh:
        rows = {Path(r["source"]).stem: r for r in csv.DictReader(fh)}
    assert set(rows) == set(GPS_CASES)
    for name, (_, want) in GPS_CASES.items():
        got = rows[name].get("exif_lat") or None
        if isinstance(want, tuple):
            assert got is not None and float(got) == pytest.approx(want[0], abs=1e-5), name
        else:
            assert got is None, f"{name}: refused GPS must not be written ({got})"


def test_exif_gps_worker(gps_photos, tiny_clip, tmp_path):
    from geoclip_qgis.core.service.worker import Worker

    sent: list = []
    paths = sorted(str(p) for p in gps_photos.iterdir())
    Worker(sent.append).handle({"id": 1, "op": "geolocate_images", "params": {
        "paths": paths, "top_k": 1, "engine": {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:300",
                                               "cache_dir": str(tmp_path)}}})
    rows = {Path(m["data"]["source"]).stem: m["data"] for m in sent if m["type"] == "row"}
    assert set(rows) == set(GPS_CASES)
    for name, (_, want) in GPS_CASES.items():
        gps = rows[name]["gps"]
        assert (gps is not None) == isinstance(want, tuple), name
        if gps is not None:
            assert gps == pytest.approx(want, abs=1e-6)


# ---- D. models validated before use -----------------------------------------------------------------------------
def _clip_copy(tiny_clip: str, tmp_path: Path) -> Path:
    """The tiny CLIP's small files copied, its weights linked: a folder each case may break."""
    folder = tmp_path / "clip"
    folder.mkdir()
    for f in Path(tiny_clip).iterdir():
        if f.name == "model.safetensors":
            (folder / f.name).symlink_to(f)
        else:
            (folder / f.name).write_bytes(f.read_bytes())
    return folder


def _edit_json(path: Path, edit) -> None:
    import json

    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _clip_breakers() -> dict:
    """name -> (how to break the folder, the file the error must name, regex for its message)"""
    import json

    def fifo(name):
        def go(folder):
            (folder / name).unlink()
            os.mkfifo(folder / name)
        return go

    return {
        "no_tokenizer": (lambda f: [(f / n).unlink() for n in ("vocab.json", "merges.txt", "tokenizer.json")],
                         "", "no tokenizer files"),
        "no_processor": (lambda f: [(f / n).unlink() for n in ("processor_config.json",)
                                    if (f / n).exists()], "", "no preprocessor_config.json"),
        "config_is_a_list": (lambda f: (f / "config.json").write_text("[1, 2]"), "config.json", "not a JSON object"),
        "projection_dim_abc": (lambda f: _edit_json(f / "config.json", lambda c: c.update(projection_dim="abc")),
                               "config.json", "projection_dim is 'abc'"),
        "vision_config_string": (lambda f: _edit_json(f / "config.json", lambda c: c.update(vision_config="big")),
                                 "config.json", "vision_config is str, not an object"),
        "image_size_0": (lambda f: _edit_json(f / "config.json", lambda c: c["vision_config"].update(image_size=0)),
                         "config.json", "image_size is 0"),
        "patch_not_dividing": (lambda f: _edit_json(f / "config.json",
                                                    lambda c: c["vision_config"].update(image_size=225)),
                               "config.json", "not a multiple of patch_size"),
        "hidden_size_float": (lambda f: _edit_json(f / "config.json",
                                                   lambda c: c["text_config"].update(hidden_size=31.5)),
                              "config.json", "hidden_size is 31.5"),
        "two_token_vocab": (lambda f: (f / "vocab.json").write_text(json.dumps({"a": 0, "b": 1})), "vocab.json",
                            "has 2 tokens, the model 49,408"),
        "vocab_not_json": (lambda f: (f / "vocab.json").write_text("{oops"), "vocab.json", "not valid JSON"),
        "empty_merges": (lambda f: (f / "merges.txt").write_text(""), "merges.txt", "merges.txt is empty"),
        "config_fifo": (fifo("config.json"), "config.json", "named pipe"),
        "vocab_fifo": (fifo("vocab.json"), "vocab.json", "named pipe"),
        "weights_device": (lambda f: ((f / "model.safetensors").unlink(),
                                      (f / "model.safetensors").symlink_to("/dev/null")),
                           "model.safetensors", "a device"),
        "config_is_folder": (lambda f: ((f / "config.json").unlink(), (f / "config.json").mkdir()), "config.json",
                             "a folder"),
        "tokenizer_config_fifo": (fifo("tokenizer_config.json"), "tokenizer_config.json", "named pipe"),
        "absurd_hidden_size": (lambda f: _edit_json(f / "config.json",
                                                    lambda c: c["vision_config"].update(hidden_size=10**9)),
                               "config.json", "hidden_size is 1000000000, not a whole number from 1 to 16,384"),
        "heads_not_dividing": (lambda f: _edit_json(f / "config.json",
                                                    lambda c: c["text_config"].update(num_attention_heads=3)),
                               "config.json", "not a multiple of num_attention_heads"),
    }


CLIP_BREAKERS = _clip_breakers()


@pytest.mark.parametrize("name", list(CLIP_BREAKERS))
def test_broken_clip_folders_are_refused_api(name, tiny_clip, tmp_path):
    from geoclip_qgis.core.errors import BackboneError
    from geoclip_qgis.core.model.image_encoder import resolve_clip_path

    folder = _clip_copy(tiny_clip, tmp_path)
    resolve_clip_path(folder)  # the copy itself is fine
    breaker, culprit, message = CLIP_BREAKERS[name]
    breaker(folder)
    with pytest.raises(BackboneError, match=message) as info:
        resolve_clip_path(folder)
    assert str(folder / culprit).rstrip("/") in str(info.value) and info.value.hint


@pytest.mark.parametrize("name", ["two_token_vocab", "image_size_0", "config_fifo", "no_processor"])
def test_broken_clip_folders_are_refused_cli_and_worker(name, tiny_clip, tmp_path, capsys):
    folder = _clip_copy(tiny_clip, tmp_path)
    breaker, culprit, message = CLIP_BREAKERS[name]
    breaker(folder)
    out = tmp_path / "t.csv"
    err = cli_error(["text", "a beach", "--clip-path", str(folder), "--device", "cpu", "--gallery", "fibonacci:200",
                     "--cache-dir", str(tmp_path / "c"), "-o", str(out)], capsys)
    assert re.search(message, err) and str(folder / culprit).rstrip("/") in err
    assert not out.exists(), "nothing written for a run refused up front"
    e = worker_error("geolocate_text", {"queries": ["a beach"], "top_k": 1, "engine": {
        "clip_path": str(folder), "device": "cpu", "gallery": "fibonacci:200", "cache_dir": str(tmp_path / "c")}})
    assert e["code"] == "backbone" and re.search(message, e["message"])


def _wheel_copy(tmp_path: Path) -> Path:
    import shutil

    from geoclip_qgis.core.model.weights import wheel_data_dir

    dst = tmp_path / "w"
    shutil.copytree(wheel_data_dir() / "weights", dst / "weights")
    shutil.copytree(wheel_data_dir() / "gps_gallery", dst / "gps_gallery")
    return dst


def _poison(file: str, key, value):
    def go(folder: Path):
        import torch

        path = folder / "weights" / file
        state = torch.load(path, weights_only=True)
        if key is None:
            state = torch.tensor(value)
        else:
            state[key] = state[key].clone()
            state[key].view(-1)[7] = value
        torch.save(state, path)
    return go


WEIGHT_BREAKERS = {
    "nan_in_location_encoder": (_poison("location_encoder_weights.pth", "LocEnc1.capsule.3.weight", float("nan")),
                                "location_encoder_weights.pth", "non-finite"),
    "inf_in_mlp": (_poison("image_encoder_mlp_weights.pth", "2.bias", float("inf")),
                   "image_encoder_mlp_weights.pth", "non-finite"),
    "inf_logit_scale": (_poison("logit_scale_weights.pth", None, float("inf")), "logit_scale_weights.pth",
                        "non-finite"),
    "huge_logit_scale": (_poison("logit_scale_weights.pth", None, 50.0), "logit_scale_weights.pth",
                         "no usable scale"),
    "weights_fifo": (lambda f: ((f / "weights" / "logit_scale_weights.pth").unlink(),
                                os.mkfifo(f / "weights" / "logit_scale_weights.pth")),
                     "logit_scale_weights.pth", "named pipe"),
    "weights_folder": (lambda f: ((f / "weights" / "image_encoder_mlp_weights.pth").unlink(),
                                  (f / "weights" / "image_encoder_mlp_weights.pth").mkdir()),
                       "image_encoder_mlp_weights.pth", "a folder"),
    "gallery_fifo": (lambda f: ((f / "gps_gallery" / "coordinates_100K.csv").unlink(),
                                os.mkfifo(f / "gps_gallery" / "coordinates_100K.csv")),
                     "coordinates_100K.csv", "named pipe"),
}


@pytest.mark.parametrize("name", list(WEIGHT_BREAKERS))
def test_broken_weights_are_refused_api(name, tmp_path):
    from geoclip_qgis.core.errors import WeightsError
    from geoclip_qgis.core.model.weights import load_weights

    folder = _wheel_copy(tmp_path)
    breaker, culprit, message = WEIGHT_BREAKERS[name]
    breaker(folder)
    with pytest.raises(WeightsError, match=message) as info:
        load_weights(folder, verify=False)
    assert culprit in str(info.value) and info.value.hint


@pytest.mark.parametrize("name", ["nan_in_location_encoder", "inf_logit_scale", "gallery_fifo"])
def test_broken_weights_are_refused_cli_and_worker(name, tmp_path, capsys):
    folder = _wheel_copy(tmp_path)
    breaker, culprit, message = WEIGHT_BREAKERS[name]
    breaker(folder)
    err = cli_error(["similar", "--lat", "1", "--lon", "1", "--extent", "0,0,10,10", "--weights", str(folder),
                     "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "s.tif")], capsys)
    assert re.search(message, err) and culprit in err
    e = worker_error("encode_locations", {"points": [[1.0, 2.0]], "engine": {"weights": str(folder),
                                                                           "cache_dir": str(tmp_path / "c")}})
    assert e["code"] == "weights" and re.search(message, e["message"])


def test_release_config_with_bad_sigma_is_refused(tmp_path):
    import json

    from geoclip_qgis.core.errors import WeightsError
    from geoclip_qgis.core.model.weights import load_weights

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "geoclip-geolocation", "format_version": 1,
                                                      "sigma": ["abc", 16, 256], "gallery_file": "g.csv"}))
    with pytest.raises(WeightsError, match="sigma must be a list of positive numbers"):
        load_weights(tmp_path, verify=False)


@pytest.mark.parametrize("text,message", [
    ("mountain " * 100, "tokens long; CLIP reads at most 77"),
    ("x" * 50_000_000, "50,000,000 characters long"),
    ("   ", "empty text query"),
])
def test_long_text_is_refused_from_its_length(text, message, tiny_clip, tmp_path, capsys):
    import time

    from geoclip_qgis.core.model.image_encoder import check_text_query

    t = time.perf_counter()
    if "characters" in message:
        with pytest.raises(InputError, match=message):
            check_text_query(text)
    err = cli_error(["text", text, "--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:200",
                     "--cache-dir", str(tmp_path)], capsys)
    assert re.search(message, err)
    if len(text) < 2_000_000:  # the worker's line limit refuses the 50 MB request itself, as a protocol error
        e = worker_error("geolocate_text", {"queries": [text], "top_k": 1, "engine": {
            "clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:200", "cache_dir": str(tmp_path)}})
        assert e["code"] == "input" and re.search(f"{message}|must not be empty", e["message"])
    assert time.perf_counter() - t < 60


# ---- D + E + F. gallery CSVs --------------------------------------------------------------------------------------
def _gallery_breakers() -> dict:
    def write(text):
        return lambda p: p.write_text(text)

    return {
        "not_a_number": (write("LAT,LON\n10,20\nabc,5\n"), r"data row 2, column LAT: 'abc' is not a number"),
        "empty_cell": (write("LAT,LON\n10,20\n11,\n"), r"data row 2, column LON: '' is not a number"),
        "nan_text": (write("lat,lon\n10,20\nnan,5\n"), r"data row 2, column lat: 'nan' is not a number"),
        "infinite": (write("LAT,LON\n10,20\ninf,5\n"), "not finite or lie outside"),
        "latitude_95": (write("LAT,LON\n10,20\n95,5\n"), "not finite or lie outside lat"),
        "no_columns": (write("a,b\n1,2\n"), "no lat/lon columns"),
        "empty_file": (write(""), "cannot read gallery CSV|empty"),
        "header_only": (write("LAT,LON\n"), "no points"),
        "not_utf8": (lambda p: p.write_bytes(b"LAT,LON\n\xff\xfe,1\n"), "cannot read gallery CSV"),
        "fifo": (lambda p: os.mkfifo(p), "named pipe"),
        "folder": (lambda p: p.mkdir(), "a folder"),
        "device": (lambda p: p.symlink_to("/dev/zero"), "a device"),
        "over_budget": (write("LAT,LON\n" + "10,20\n" * 1000), "memory budget"),
        "huge_file": (write("LAT,LON\n1" + "0" * 2_000_000 + ",20\n"), "2 MiB, over the 1 MiB memory budget"),
    }


GALLERY_BREAKERS = _gallery_breakers()


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setenv("GEOCLIP_MEMORY_BUDGET_MB", "1")  # 509 gallery points


@pytest.mark.parametrize("name", list(GALLERY_BREAKERS))
def test_bad_gallery_csv_api(name, tmp_path, small_budget):
    from geoclip_qgis.core.model.gallery import load_gallery

    path = tmp_path / "gallery.csv"
    breaker, message = GALLERY_BREAKERS[name]
    breaker(path)
    with pytest.raises(GeoClipError, match=message) as info:
        load_gallery(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["not_a_number", "fifo", "device", "over_budget"])
def test_bad_gallery_csv_cli_and_worker(name, tiny_clip, tmp_path, capsys, small_budget):
    path = tmp_path / "gallery.csv"
    breaker, message = GALLERY_BREAKERS[name]
    breaker(path)
    err = cli_error(["text", "a beach", "--clip-path", tiny_clip, "--device", "cpu", "--gallery", str(path),
                     "--top-k", "1", "--cache-dir", str(tmp_path / "c")], capsys)
    assert re.search(message, err) and str(path) in err
    e = worker_error("geolocate_text", {"queries": ["a beach"], "top_k": 1, "engine": {
        "clip_path": tiny_clip, "device": "cpu", "gallery": str(path), "cache_dir": str(tmp_path / "c")}})
    assert re.search(message, e["message"]) and e["code"] in ("input", "budget")


# ---- E. only regular files are read as photos ----------------------------------------------------------------------
@pytest.fixture
def special_photos(tmp_path) -> dict:
    from conftest import make_photo

    folder = tmp_path / "special"
    good = make_photo(folder / "good.jpg", seed=1)
    os.mkfifo(folder / "pipe.jpg")
    (folder / "folder.jpg").mkdir()
    (folder / "device.jpg").symlink_to("/dev/zero")
    (folder / "dangling.jpg").symlink_to(folder / "nowhere.jpg")
    return {"folder": folder, "good": good, "pipe.jpg": "named pipe", "device.jpg": "a device",
            "dangling.jpg": "not found", "folder.jpg": "a folder"}


def test_special_files_as_photos_api(special_photos, engine):
    from geoclip_qgis.core.io.photos import list_photos

    folder = special_photos["folder"]
    listed = [Path(p).name for p in list_photos(folder)]
    assert listed == ["dangling.jpg", "device.jpg", "good.jpg", "pipe.jpg"], "special files are listed, to be named"
    paths = [str(folder / n) for n in ("good.jpg", "pipe.jpg", "folder.jpg", "device.jpg", "dangling.jpg")]
    results = {Path(r.source).name: r for r in engine.predict_images(paths, top_k=1)}
    assert results["good.jpg"].ok
    for name in ("pipe.jpg", "folder.jpg", "device.jpg", "dangling.jpg"):
        assert not results[name].ok and special_photos[name] in results[name].error["message"], name


def test_special_files_as_photos_cli(special_photos, tiny_clip, tmp_path, capsys):
    folder = special_photos["folder"]
    rc = main(["photos", str(folder), "--clip-path", tiny_clip, "--device", "cpu",
               "--gallery", "fibonacci:200", "--top-k", "1", "--cache-dir", str(tmp_path / "c"),
               "-o", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc == 3 and "Traceback" not in err
    for name in ("pipe.jpg", "device.jpg", "dangling.jpg"):  # a folder named on the command line is listed
        line = next((ln for ln in err.splitlines() if name in ln), "")
        assert special_photos[name] in line, f"{name}: {line!r}"
    assert "good.jpg" in (tmp_path / "p.csv").read_text()


def test_special_files_as_photos_worker(special_photos, tiny_clip, tmp_path):
    from geoclip_qgis.core.service.worker import Worker

    folder = special_photos["folder"]
    names = ["good.jpg", "pipe.jpg", "folder.jpg", "device.jpg", "dangling.jpg"]
    sent: list = []
    Worker(sent.append).handle({"id": 1, "op": "geolocate_images", "params": {
        "paths": [str(folder / n) for n in names], "top_k": 1,
        "engine": {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:200", "cache_dir": str(tmp_path)}}})
    rows = {Path(m["data"]["source"]).name: m["data"] for m in sent if m["type"] == "row"}
    assert sent[-1]["type"] == "result" and rows["good.jpg"]["error"] is None
    for name in names[1:]:
        assert special_photos[name] in rows[name]["error"]["message"], name


# ---- F. folder listings say what they skipped; budgets before allocating; unwritable caches ----------------------
def test_recursive_listing_follows_links_once_and_says_what_it_skipped(tmp_path, caplog):
    from conftest import make_photo

    from geoclip_qgis.core.io.photos import list_photos

    root = tmp_path / "trip"
    make_photo(root / "a" / "1.jpg")
    make_photo(root / "b" / "2.jpg")
    make_photo(tmp_path / "elsewhere" / "3.jpg")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)     # a cycle
    (root / "again").symlink_to(root / "b", target_is_directory=True)    # a second way into b
    (root / "outside").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a real extra folder
    skipped: list = []
    with caplog.at_level(logging.WARNING, logger="geoclip_qgis"):
        found = list_photos(root, recursive=True, skipped=skipped)
    assert sorted(Path(p).name for p in found) == ["1.jpg", "2.jpg", "3.jpg"], found
    reasons = {Path(p).name: r for p, r in skipped}
    assert set(reasons) == {"loop", "b"} or set(reasons) == {"loop", "again"}, skipped
    assert all("listed once" in r for r in reasons.values()) and "skipped" in caplog.text
    assert list_photos(root) == [], "not recursive: only the top folder"


def test_recursive_listing_cli(tmp_path, tiny_clip, capsys):
    from conftest import make_photo

    root = tmp_path / "trip"
    make_photo(root / "a" / "1.jpg")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    assert main(["photos", str(root), "--recursive", "--clip-path", tiny_clip, "--device", "cpu", "--gallery",
                 "fibonacci:200", "--top-k", "1", "--cache-dir", str(tmp_path / "c"),
                 "-o", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().count("1.jpg") == 1


@pytest.mark.parametrize("spec", ["fibonacci:30000000", "fibonacci:2000000000"])
def test_huge_fibonacci_gallery_is_refused_before_allocating(spec, tiny_clip, tmp_path, capsys):
    import resource
    import time

    from geoclip_qgis.core.errors import BudgetError
    from geoclip_qgis.core.model.gallery import load_gallery

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    with pytest.raises(BudgetError, match=r"MiB for their embeddings, over the 2,048 MiB memory budget"):
        load_gallery(spec)
    assert time.perf_counter() - t < 1 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000
    err = cli_error(["text", "a beach", "--clip-path", tiny_clip, "--device", "cpu", "--gallery", spec,
                     "--cache-dir", str(tmp_path)], capsys)
    assert "memory budget" in err and "fibonacci:1044495" in err, "the hint is a spec that can be pasted"
    e = worker_error("geolocate_text", {"queries": ["a beach"], "top_k": 1, "engine": {
        "clip_path": tiny_clip, "device": "cpu", "gallery": spec, "cache_dir": str(tmp_path)}})
    assert e["code"] == "budget"


@pytest.mark.parametrize("spec", ["fibonacci:abc", "fibonacci:-3", "fibonacci:0", "fibonacci:1e9", "fibonaccix"])
def test_bad_fibonacci_specs(spec):
    from geoclip_qgis.core.model.gallery import load_gallery

    with pytest.raises(GeoClipError):
        load_gallery(spec)


def test_cache_path_that_is_a_file_keeps_the_gallery_in_memory(weights, tmp_path, caplog):
    from geoclip_qgis.core.model.gallery import Gallery, fibonacci_grid
    from geoclip_qgis.core.model.location_encoder import LocationEncoder

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    enc = LocationEncoder.from_state(weights.location)
    coords = fibonacci_grid(300)
    with caplog.at_level(logging.WARNING, logger="geoclip_qgis"):
        g = Gallery(coords).attach(enc, weights.digest, blocker)
    ref = Gallery(coords).attach(enc, weights.digest, tmp_path / "ok")
    assert g.cache_file is None and np.array_equal(np.asarray(g.embeddings), np.asarray(ref.embeddings))
    assert "stay in memory" in caplog.text and str(blocker) in caplog.text
    assert blocker.read_text().startswith("a file"), "the user's file is untouched"


_FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # every write past 200 kB fails: a full disk
from geoclip_qgis.core.service.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_full_cache_disk_cli(tiny_clip, tmp_path):
    """A cache write that fails half way (EFBIG, as ENOSPC would) leaves no temporary file, and the run goes on."""
    cache = tmp_path / "cache"
    out = tmp_path / "t.csv"
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, "text", "a beach", "--clip-path", tiny_clip,
                           "--device", "cpu", "--gallery", "fibonacci:500", "--top-k", "2", "--cache-dir", str(cache),
                           "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "stay in memory" in proc.stderr and "geoclip_qgis/core/model/gallery.py" not in proc.stderr
    assert out.is_file() and list(cache.glob("gallery-*")) == [], "no stray temporary file"


_READ_ONLY = """
import os, sys
os.setgid(65534); os.setuid(65534)
sys.path.insert(0, sys.argv[1])
import logging; logging.basicConfig()
from geoclip_qgis.core.model.gallery import Gallery, fibonacci_grid
from geoclip_qgis.core.model.location_encoder import LocationEncoder
from geoclip_qgis.core.model.weights import load_weights
w = load_weights(verify=False)
g = Gallery(fibonacci_grid(200)).attach(LocationEncoder.from_state(w.location), w.digest, sys.argv[2])
print("cache_file", g.cache_file, tuple(g.embeddings.shape))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to 'nobody'")
def test_read_only_cache_folder_keeps_the_gallery_in_memory(tmp_path):
    import shutil
    import tempfile

    cache = Path(tempfile.mkdtemp(prefix="geoclip-ro-"))
    os.chmod(cache, 0o555)  # owned by root: 'nobody' can read it, not write it
    try:
        proc = subprocess.run([sys.executable, "-c", _READ_ONLY, str(ROOT), str(cache)], capture_output=True,
                              text=True, timeout=300)
        assert "cache_file None (200, 512)" in proc.stdout, proc.stderr[-2000:]
        assert "stay in memory" in proc.stderr and "Traceback" not in proc.stderr
        assert list(cache.iterdir()) == []
    finally:
        shutil.rmtree(cache)


# ---- G. check_coordinates is the one coordinate validator ----------------------------------------------------------
@pytest.mark.parametrize("value,message", [
    ([[95.0, 0.0]], r"1 of the points are not finite or lie outside lat ±90 / lon ±180, the first at row 0"),
    ([[10.0, 20.0], [float("nan"), 0.0]], r"first at row 1"),
    ([[10.0, 20.0], [0.0, float("inf")]], r"first at row 1"),
    ([[0.0, 181.0]], "outside"),
    ([[1, 2, 3]], r"\(lat, lon\) pairs; got an array of shape \(1, 3\)"),
    (np.zeros((3, 4)), r"shape \(3, 4\)"),
    ("abc", "pairs of numbers"),
    ([[1, 2], [3]], "pairs of numbers"),
    ([], "no points"),
])
def test_check_coordinates_names_what_was_given(value, message):
    from geoclip_qgis.core.model.gallery import check_coordinates

    with pytest.raises(InputError, match=message) as info:
        check_coordinates(value, "points")
    assert "points" in str(info.value)


def test_check_coordinates_edges_and_files(tmp_path):
    from geoclip_qgis.core.model.gallery import check_coordinates, read_coordinates_csv

    ok = check_coordinates([[90, 180], [-90, -180]], "points")
    assert ok.dtype == np.float32 and ok.shape == (2, 2)
    assert check_coordinates([45, 10], "points").shape == (1, 2), "one pair is one point"
    assert check_coordinates([], "points", allow_empty=True).shape == (0, 2)
    with pytest.raises(InputError, match="outside"):
        check_coordinates([[90.0000001, 0]], "points")  # refused before float32 rounding would make it 90
    csv = tmp_path / "g.csv"
    csv.write_text("LAT,LON\n10,20\n91,0\n")
    with pytest.raises(InputError, match="gallery CSV points") as info:
        read_coordinates_csv(csv)
    assert info.value.path == str(csv)


def test_encode_locations_refuses_bad_points_api_cli_worker(engine, tmp_path, capsys):
    with pytest.raises(InputError, match="points"):
        engine.encode_locations([[95.0, 0.0]])
    err = cli_error(["similar", "--lat", "95", "--lon", "0", "-o", str(tmp_path / "s.tif")], capsys)
    assert "outside" in err
    e = worker_error("encode_locations", {"points": [[10.0, 20.0], [float("nan"), 0.0]],
                                          "engine": {"device": "cpu", "cache_dir": str(tmp_path)}})
    assert e["code"] == "input"


def test_points_to_encode_are_budgeted_api_worker(engine, tmp_path, small_budget):
    """Encoding allocates (N, 512) floats: N past the budget is refused before the encoder runs."""
    from geoclip_qgis.core.errors import BudgetError

    pts = np.zeros((1000, 2))
    with pytest.raises(BudgetError, match="points to encode: 1,000 points need"):
        engine.encode_locations(pts)
    assert engine.encode_locations(pts[:100]).shape == (100, 512)
    e = worker_error("encode_locations", {"points": pts.tolist(), "engine": {"device": "cpu",
                                                                             "cache_dir": str(tmp_path)}})
    assert e["code"] == "budget"


def test_clip_path_that_is_a_file(tmp_path):
    from geoclip_qgis.core.errors import BackboneError
    from geoclip_qgis.core.model.image_encoder import resolve_clip_path

    (tmp_path / "clip").write_text("not a folder")
    with pytest.raises(BackboneError, match="CLIP path is not a folder"):
        resolve_clip_path(tmp_path / "clip")


@pytest.fixture
def nan_clip(tiny_clip, tmp_path) -> Path:
    """The tiny CLIP with one NaN in each tower: loads fine, and would make every probability NaN."""
    from safetensors.torch import load_file, save_file

    folder = _clip_copy(tiny_clip, tmp_path)
    tensors = load_file(str(Path(tiny_clip) / "model.safetensors"))
    for key in ("vision_model.post_layernorm.weight", "text_model.final_layer_norm.weight"):
        tensors[key] = tensors[key].clone()
        tensors[key][0] = float("nan")
    (folder / "model.safetensors").unlink()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_nan_clip_weights_are_refused_at_first_use(nan_clip, tmp_path, capsys, small_gallery, weights):
    from conftest import make_photo

    from geoclip_qgis.core.errors import BackboneError
    from geoclip_qgis.core.model.engine import GeoClipEngine

    photo = make_photo(tmp_path / "p.jpg")
    eng = GeoClipEngine(weights=weights, clip_path=str(nan_clip), device="cpu", gallery=small_gallery,
                        cache_dir=tmp_path / "c")
    with pytest.raises(BackboneError, match="non-finite features"):
        eng.predict_images([str(photo)], top_k=1)
    with pytest.raises(BackboneError, match="non-finite features"):
        eng.predict_text(["a beach"], top_k=1)
    err = cli_error(["text", "a beach", "--clip-path", str(nan_clip), "--device", "cpu", "--gallery", "fibonacci:200",
                     "--cache-dir", str(tmp_path / "c")], capsys)
    assert "non-finite features" in err and str(nan_clip) in err
    e = worker_error("geolocate_images", {"paths": [str(photo)], "top_k": 1, "engine": {
        "clip_path": str(nan_clip), "device": "cpu", "gallery": "fibonacci:200", "cache_dir": str(tmp_path / "c")}})
    assert e["code"] == "backbone" and "non-finite" in e["message"]


def test_damaged_exif_costs_the_gps_not_the_photo(tmp_path):
    import struct

    from PIL import Image

    from geoclip_qgis.core.io.photos import load_photo

    tiff = b"II*\0" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x8825, 4, 1, 99999) + struct.pack("<I", 0)
    path = tmp_path / "bad_exif.jpg"
    Image.new("RGB", (32, 24), (10, 20, 30)).save(path, exif=b"Exif\0\0" + tiff)
    photo = load_photo(path)
    assert photo.image.size == (32, 24) and photo.gps is None
