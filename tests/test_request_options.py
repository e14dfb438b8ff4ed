"""Requests carry their own answer options (issue 21): nothing per-request is set on the shared engine, so two
requests with different options never leak into each other, even interleaved on one engine."""

from __future__ import annotations

from geoclip_qgis.core.answers.options import AnswerOptions

QUERIES = ["a snowy alpine village", "a tropical beach with palm trees", "a desert road", "a rainy harbour"]


def _answers(results):
    return [(r.source, [(p["lat"], p["lon"], round(p["probability"], 9)) for p in r.places], r.aoi_outside,
             r.region) for r in results]


def test_two_requests_interleaved_on_one_engine_keep_their_own_options(engine):
    europe = AnswerOptions.make(aoi=[-10, 35, 30, 60], place_radius_km=100)
    world = AnswerOptions.make(place_radius_km=10)
    alone_europe = _answers(engine.iter_predict_text(QUERIES, 3, batch_size=1, options=europe))
    alone_world = _answers(engine.iter_predict_text(QUERIES, 3, batch_size=1, options=world))
    a = engine.iter_predict_text(QUERIES, 3, batch_size=1, options=europe)
    b = engine.iter_predict_text(QUERIES, 3, batch_size=1, options=world)
    mixed_a, mixed_b = [], []
    for _ in QUERIES:  # one batch of each in turn, on the one engine
        mixed_a.append(next(a))
        mixed_b.append(next(b))
    assert _answers(mixed_a) == alone_europe
    assert _answers(mixed_b) == alone_world
    assert all(r[2] is not None for r in alone_europe) and all(r[2] is None for r in alone_world)
    assert engine.aoi is None and engine.place_radius_km == 25.0, "the engine's defaults were never touched"


def test_worker_requests_do_not_leak_options(tiny_clip, cache_dir):
    from geoclip_qgis.core.service.worker import Worker

    rows = []
    w = Worker(lambda m: rows.append(m) if m.get("type") == "row" else None)
    eng = {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:3000", "cache_dir": str(cache_dir)}
    w.op_geolocate_text(1, {"queries": QUERIES[:1], "top_k": 3, "engine": eng, "aoi": [-10, 35, 30, 60],
                            "place_radius_km": 200, "region_res": 10})
    first = rows.pop()["data"]
    w.op_geolocate_text(2, {"queries": QUERIES[:1], "top_k": 3, "engine": eng})
    second = rows.pop()["data"]
    assert first["aoi_outside"] is not None and first["region"] is not None
    assert second["aoi_outside"] is None and second["region"] is None, "the first request's options leaked"
    assert w._engine.answers == AnswerOptions(), "nothing was set on the shared engine"
