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

from geoclip_qgis.core.cli import main
from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.raster import Grid, budget_bytes

ROOT = Path(__file__).resolve().parents[1]


def worker_answer(op: str, params: dict) -> dict:
    """The last message the worker sends for one request: its result or its error."""
    from geoclip_qgis.core.worker import Worker

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
    proc = subprocess.run([sys.executable, "-m", "geoclip_qgis.core.cli", "similar", "--lat", "45", "--lon", "10",
                           "--extent", "0,40,20,50", "--resolution", "1", "--cache-dir", str(tmp_path / "c"),
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
    from geoclip_qgis.core.exif import load_photo, read_gps

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
    from geoclip_qgis.core.worker import Worker

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
