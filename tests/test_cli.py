"""The command line end to end: outputs readable by GDAL, failures listed, resume skips finished photos."""

from __future__ import annotations

import csv
import json
import shutil
import struct

import pyogrio
import rasterio

from geoclip_qgis.core.service.cli import main


def _args(tiny_clip, cache_dir):
    return ["--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000", "--cache-dir", str(cache_dir)]


def test_photos_to_gpkg_csv_geojson(tmp_path, photos, tiny_clip, cache_dir):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    outs = [tmp_path / "r.gpkg", tmp_path / "r.csv", tmp_path / "r.geojson"]
    rc = main(["photos", *photos, str(bad), "--top-k", "3", *sum((["-o", str(o)] for o in outs), []),
               *_args(tiny_clip, cache_dir)])
    assert rc == 3, "a failed photo makes the exit code say so"
    info = pyogrio.read_info(outs[0], layer="geoclip_predictions")
    assert info["features"] == 9 and info["crs"] == "EPSG:4326"
    _, _, geom, data = pyogrio.raw.read(outs[0], layer="geoclip_predictions", columns=["rank", "lon"])
    assert data[0][0] == 1 and struct.unpack("<BIdd", geom[0])[2] == data[1][0]
    with open(outs[1], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 and {r["source"] for r in rows} == set(photos)
    assert len(json.loads(outs[2].read_text())["features"]) == 9
    with open(tmp_path / "r.failed.csv", newline="") as fh:
        failed = list(csv.DictReader(fh))
    assert [f["source"] for f in failed] == [str(bad)] and "corrupt" in failed[0]["message"]


def test_resume_skips_done_photos(tmp_path, photos, tiny_clip, cache_dir, capsys):
    folder = tmp_path / "batch"
    folder.mkdir()
    for p in photos:
        shutil.copy(p, folder)
    out = tmp_path / "batch.csv"
    assert main(["photos", str(folder / "photo_0.jpg"), "-o", str(out), *_args(tiny_clip, cache_dir)]) == 0
    capsys.readouterr()
    assert main(["photos", str(folder), "--resume", "-o", str(out), *_args(tiny_clip, cache_dir)]) == 0
    assert "1 photo(s) already done, 2 to go" in capsys.readouterr().err
    with open(out, newline="") as fh:
        sources = [r["source"] for r in csv.DictReader(fh) if r["rank"] == "1"]
    assert sorted(sources) == sorted(str(folder / f"photo_{i}.jpg") for i in range(3))


def test_text_and_rasters(tmp_path, tiny_clip, cache_dir, capsys):
    assert main(["text", "snowy alpine village", "-o", str(tmp_path / "t.csv"), *_args(tiny_clip, cache_dir)]) == 0
    tif = tmp_path / "t.tif"
    rc = main(["likelihood", "--text", "snowy alpine village", "--extent", "0,40,20,50", "--resolution", "1",
               "--clip-path", tiny_clip, "--device", "cpu", "-o", str(tif), "--preview", str(tmp_path / "t.png")])
    assert rc == 0 and (tmp_path / "t.png").is_file()
    with rasterio.open(tif) as ds:
        assert ds.crs.to_epsg() == 4326 and (ds.width, ds.height) == (20, 10)
    rc = main(["similar", "--lat", "45", "--lon", "10", "--extent", "0,40,20,50", "--resolution", "1",
               "-o", str(tmp_path / "s.tif")])
    assert rc == 0


def test_clear_errors(tmp_path, capsys, tiny_clip, cache_dir):
    assert main(["photos", str(tmp_path), *_args(tiny_clip, cache_dir)]) == 2
    assert "no photos to geolocate" in capsys.readouterr().err
    assert main(["features", "--extent", "0,-95,10,0", "-o", str(tmp_path / "x.tif")]) == 2
    assert "latitudes" in capsys.readouterr().err
    assert main(["likelihood", "-o", str(tmp_path / "x.tif")]) == 2
    assert main(["photos", "a.jpg", "-o", str(tmp_path / "x.shp"), *_args(tiny_clip, cache_dir)]) == 2
    assert "unknown output format" in capsys.readouterr().err
