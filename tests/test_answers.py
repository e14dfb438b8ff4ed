"""Issue 14 through the engine API, the CLI and the worker: distinct places (not near-duplicate gallery points),
offline names on every point and place, and one summary row per input."""

from __future__ import annotations

import csv

import numpy as np
import pyogrio

from geoclip_qgis.core.cli import main
from geoclip_qgis.core.export import DEFAULT_LAYER
from geoclip_qgis.core.geodesy import haversine_km
from geoclip_qgis.core.worker import Worker


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
