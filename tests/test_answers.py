"""Issue 14 through the engine API, the CLI and the worker: distinct places (not near-duplicate gallery points),
offline names on every point and place, and one summary row per input."""

from __future__ import annotations

import csv

import numpy as np
import pyogrio

from geoclip_qgis.core.io.results import DEFAULT_LAYER
from geoclip_qgis.core.service.cli import main
from geoclip_qgis.core.service.worker import Worker
from geoclip_qgis.shared.geodesy import haversine_km


def _check_places(res, k):
    assert len(res.places) == k
    probs = [p["probability"] for p in res.places]
    assert probs == sorted(probs, reverse=True)
    assert abs(sum(probs) + res.remaining - 1.0) < 1e-6, "places + remaining mass = 1"
    for i, a in enumerate(res.places):
        for b in res.places[i + 1:]:
            assert haversine_km(a["best_lat"], a["best_lon"], b["best_lat"], b["best_lon"]) > 25.0
        assert a["place"] and a["label"] and a["place_km"] >= 0
    assert res.places[0]["probability"] >= res.predictions[0].probability, "a place holds at least its best point"


def test_engine_returns_distinct_named_places(engine, photos):
    for res in [*engine.predict_text(["snowy alpine village", "tropical beach"], top_k=5),
                *engine.predict_images(photos, top_k=4)]:
        _check_places(res, 5 if res.kind == "text" else 4)
        assert all(p.place for p in res.predictions), "every raw prediction is named too"


def test_cli_writes_places_and_summary_layers(tmp_path, photos, tiny_clip, cache_dir):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    gpkg, places_csv = tmp_path / "a.gpkg", tmp_path / "a_places.csv"
    args = ["--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000", "--cache-dir", str(cache_dir)]
    assert main(["photos", *photos, str(bad), "-o", str(gpkg), "--top-k", "3", *args]) == 3
    assert main(["photos", *photos, "-o", str(places_csv), "--table", "places", "--top-k", "3", *args]) == 0
    info = pyogrio.read_info(gpkg, layer=f"{DEFAULT_LAYER}_places")
    assert info["features"] == 9 and "label" in list(info["fields"])
    _, _, geom, data = pyogrio.raw.read(str(gpkg), layer=f"{DEFAULT_LAYER}_summary", columns=["source", "status"])
    assert sorted(zip(data[0], data[1])) == sorted([*((p, "ok") for p in photos), (str(bad), "failed")])
    assert sum(g is None for g in geom) == 1, "the failed photo's summary row has no position"
    with open(places_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 and all(r["place"] and float(r["n_points"]) >= 1 for r in rows)


def test_worker_rows_carry_places(tiny_clip, cache_dir):
    sent = []
    Worker(sent.append).handle({"id": 1, "op": "geolocate_text", "params": {
        "queries": ["a harbour"], "top_k": 3,
        "engine": {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:2000"}}})
    row = next(m for m in sent if m["type"] == "row")["data"]
    assert len(row["places"]) == 3 and 0 <= row["remaining"] < 1
    assert np.isclose(sum(p["probability"] for p in row["places"]) + row["remaining"], 1.0)


EUROPE = "-10,35,30,60"


def test_area_of_interest_renormalises_and_reports_the_outside_share(engine, tiny_clip, cache_dir, tmp_path):
    from geoclip_qgis.core.answers.aoi import AreaOfInterest

    free = engine.predict_text(["a harbour"], top_k=3)[0]
    engine.set_aoi(AreaOfInterest.from_bbox([-10, 35, 30, 60]))
    try:
        res = engine.predict_text(["a harbour"], top_k=3)[0]
    finally:
        engine.set_aoi(None)
    assert 0 < res.aoi_outside < 1 and free.aoi_outside is None
    for p in [*res.predictions, *res.places]:
        lat, lon = (p.lat, p.lon) if hasattr(p, "lat") else (p["lat"], p["lon"])
        assert 35 <= lat <= 60 and -10 <= lon <= 30
    assert abs(sum(p["probability"] for p in res.places) + res.remaining - 1) < 1e-6, "renormalised inside"
    out = tmp_path / "aoi.csv"
    args = ["--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000", "--cache-dir", str(cache_dir)]
    assert main(["text", "a harbour", "-o", str(out), "--table", "summary", "--aoi", EUROPE, *args]) == 0
    with open(out, newline="") as fh:
        row = next(csv.DictReader(fh))
    assert 0 < float(row["aoi_outside"]) < 1 and 35 <= float(row["lat"]) <= 60
    sent = []
    Worker(sent.append).handle({"id": 1, "op": "geolocate_text", "params": {
        "queries": ["a harbour"], "top_k": 2, "aoi": [-10, 35, 30, 60],
        "engine": {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:3000"}}})
    assert 0 < next(m for m in sent if m["type"] == "row")["data"]["aoi_outside"] < 1


def test_confidence_regions_from_the_cli_and_the_worker(tmp_path, tiny_clip, cache_dir, capsys):
    import json

    regions = tmp_path / "regions.gpkg"
    args = ["--clip-path", tiny_clip, "--device", "cpu", "--cache-dir", str(cache_dir)]
    assert main(["likelihood", "--text", "a harbour", "--resolution", "2", "-o", str(tmp_path / "l.tif"),
                 "--regions", str(regions), *args]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["regions"]["0.9"]["area_km2"] > info["regions"]["0.5"]["area_km2"] > 0
    assert pyogrio.read_info(regions, layer="geoclip_regions")["features"] == 2
    assert pyogrio.read_info(regions, layer="geoclip_regions")["geometry_type"] == "MultiPolygon"
    sent = []
    Worker(sent.append).handle({"id": 2, "op": "likelihood", "params": {
        "text": "a harbour", "resolution": 2.0, "out": str(tmp_path / "w.tif"), "aoi": [-10, 35, 30, 60],
        "regions_out": str(tmp_path / "w.geojson"), "levels": [0.9],
        "engine": {"clip_path": tiny_clip, "device": "cpu"}}})
    data = sent[-1]["data"]
    assert 0 < data["aoi_outside"] < 1 and data["regions"][0]["level"] == 0.9
    assert pyogrio.read_info(tmp_path / "w.geojson")["features"] == 1


def test_summary_gets_the_region_area(engine, photos):
    engine.set_answers(region_res=5.0)
    try:
        res = engine.predict_images(photos[:1], top_k=2)[0]
    finally:
        engine.set_answers(region_res=None)
    assert res.region["area_km2"] > 0 and res.region["parts"] >= 1 and "90 % region" in res.region["summary"]
