"""The accuracy harness on synthetic ground truth whose answer is known in advance."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_photo
from PIL import Image

from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.service.evaluation import accuracy_table, evaluate, geodesic_km, read_ground_truth

ROOT = Path(__file__).resolve().parents[1]


def test_geodesic_known_values():
    assert geodesic_km(0, 0, 0, 1) == pytest.approx(111.3195, abs=1e-3)  # one degree of the WGS84 equator
    assert geodesic_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.9, abs=0.5)  # Paris-London


def test_accuracy_table_thresholds():
    table = accuracy_table([0.5, 10, 150, 700, 2000, 9000])
    assert [table[f"{t} km"] for t in (1, 25, 200, 750, 2500)] == pytest.approx([100 / 6, 200 / 6, 300 / 6,
                                                                                 400 / 6, 500 / 6])
    assert table["median km"] == pytest.approx(425.0)


def test_evaluate_on_known_truth(engine, tmp_path):
    """Truth = the model's own top-1 shifted north by chosen distances, so each threshold's share is known."""
    photos = [str(make_photo(tmp_path / f"e{i}.jpg", seed=400 + i)) for i in range(6)]
    preds = {r.source: r.predictions[0] for r in engine.predict_images(photos, 1)}
    shifts_deg = [0.0, 0.0, 0.1, 1.5, 5.0, 60.0]  # 0, 0, ~11, ~167, ~556, ~6700 km
    rows = []
    for p, d in zip(photos, shifts_deg):
        lat = preds[p].lat + d if preds[p].lat + d <= 90 else preds[p].lat - d
        rows.append((Path(p).name, lat, preds[p].lon))
    truth_csv = tmp_path / "truth.csv"
    with open(truth_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["IMG_ID", "LAT", "LON"])  # Im2GPS3k's column names, image names relative to the CSV
        w.writerows(rows)
    truth = read_ground_truth(truth_csv)
    out = tmp_path / "per_photo.csv"
    table = evaluate(engine, truth, out)
    assert [round(table[f"{t} km"], 2) for t in (1, 25, 200, 750, 2500)] == [33.33, 50.0, 66.67, 83.33, 83.33]
    assert table["photos"] == 6 and table["failed"] == 0
    with open(out, newline="") as fh:
        per_photo = list(csv.DictReader(fh))
    assert len(per_photo) == 6 and float(per_photo[0]["error_km"]) == pytest.approx(0, abs=1e-6)


def test_exif_folder_through_the_script(tmp_path, tiny_clip, cache_dir, engine):
    folder = tmp_path / "gps"
    folder.mkdir()
    probe = make_photo(folder / "a.jpg", seed=500)
    best = engine.predict_images([str(probe)], 1)[0].predictions[0]
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N" if best.lat >= 0 else "S", 2: (abs(best.lat), 0.0, 0.0),
                                 3: "E" if best.lon >= 0 else "W", 4: (abs(best.lon), 0.0, 0.0)})
    make_photo(folder / "a.jpg", seed=500, exif=exif)  # same pixels, now with its own prediction as GPS
    make_photo(folder / "no_gps.jpg", seed=501)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--exif-folder", str(folder),
                           "--clip-path", tiny_clip, "--gallery", "fibonacci:2000", "--device", "cpu",
                           "--out", str(tmp_path / "r.csv")], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "GEOCLIP_QGIS_CACHE": str(cache_dir)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "this run" in proc.stdout and "paper" in proc.stdout and "over 1 photo(s)" in proc.stdout


def test_bad_ground_truth(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,lat,lon\na.jpg,95,0\n")
    with pytest.raises(InputError, match="outside lat"):
        read_ground_truth(bad)
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(InputError, match="columns not found"):
        read_ground_truth(bad)


def test_places_accuracy_and_region_coverage_on_known_truth(engine, tmp_path):
    """Truth for photo 1 = its top place's centre (place error 0), for photo 2 = 60° away from it, in the map's
    least likely cells; the first lies inside every confidence region, the second outside the 90 % one."""
    import numpy as np

    from geoclip_qgis.core.maps.likelihood import likelihood_map
    from geoclip_qgis.core.maps.raster import Grid

    photos = [str(make_photo(tmp_path / f"c{i}.jpg", seed=600 + i)) for i in range(2)]
    res = engine.predict_images(photos, 1)
    first = res[0].places[0]
    lmap = likelihood_map(engine, engine.embed_images([photos[1]])[0], Grid.over(None, 5.0))
    r, c = np.unravel_index(int(np.argmin(lmap.density)), lmap.density.shape)
    far = (float(lmap.grid.row_lats(r)), float(lmap.grid.col_lons(c)))
    top = np.unravel_index(int(np.argmax(likelihood_map(engine, engine.embed_images([photos[0]])[0],
                                                        Grid.over(None, 5.0)).density)), lmap.density.shape)
    near = (float(lmap.grid.row_lats(top[0])), float(lmap.grid.col_lons(top[1])))
    truth = [(photos[0], *near), (photos[1], *far)]
    table = evaluate(engine, truth, tmp_path / "cov.csv", coverage_res=5.0)
    assert table["coverage 90 %"] == 50.0 and table["coverage 50 %"] == 50.0
    truth = [(photos[0], first["lat"], first["lon"])]
    table = evaluate(engine, truth, None)
    assert table["places"]["1 km"] == 100.0 and "coverage 90 %" not in table
