"""Hints (core/answers/hints.py): a text fused with a photo as p ∝ p_photo · p_text^w over the real gallery.

Known answers on the real GeoCLIP location encoder and a 2,000-point slice of its gallery. The tiny random CLIP has
no meaning, so the "photo" of the bimodal case is the fused feature of two real places (Paris and Sydney, as two
photos are fused) and the hint's feature is Paris's location feature, set as the hint's text feature (the engine
reads every hint through one cache). The photo path and the CLI run the real towers end to end."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from geoclip_qgis.core.answers import hints
from geoclip_qgis.core.answers.options import AnswerOptions
from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.service.cli import main
from geoclip_qgis.shared.geodesy import haversine_km

PARIS, SYDNEY = (48.85, 2.35), (-33.87, 151.2)


def _nearest(engine, lat, lon) -> int:
    coords = engine.gallery().coords
    return int(np.argmin([haversine_km(float(a), float(b), lat, lon) for a, b in coords]))


def _mass_near(engine, probs, lat, lon, km=1500.0) -> float:
    coords = engine.gallery().coords
    near = np.array([haversine_km(float(a), float(b), lat, lon) <= km for a, b in coords])
    return float(np.asarray(probs, dtype=np.float64)[near].sum())


@pytest.fixture
def bimodal(engine):
    """A photo that GeoCLIP reads as Paris or Sydney (two places' location features fused), and Paris's feature."""
    idx = [_nearest(engine, *PARIS), _nearest(engine, *SYDNEY)]
    e = torch.from_numpy(engine.encode_locations(engine.gallery().coords[idx], normalise=True))
    return (e[0] + e[1])[None], e[0]


def test_a_hint_moves_a_bimodal_photo_to_its_place(engine, bimodal):
    photo, paris = bimodal
    hints._TEXT_FEATURES.setdefault(engine, {})["in Paris"] = paris  # the text tower is random: its meaning, set
    alone = engine.gallery().logits(photo, engine.scale).softmax(-1)[0].numpy()
    assert 0.2 < _mass_near(engine, alone, *PARIS) < 0.8 and 0.2 < _mass_near(engine, alone, *SYDNEY) < 0.8
    for weight, at_least in ((0.25, 0.9), (1.0, 0.999)):
        opts = AnswerOptions.make(hint="in Paris", hint_weight=weight)
        fused = hints.with_hint(engine, photo, opts.hint, opts.hint_weight)
        probs = engine.gallery().logits(fused, engine.scale).softmax(-1)[0].numpy()
        assert _mass_near(engine, probs, *PARIS) > at_least
        assert _mass_near(engine, probs, *SYDNEY) < 1 - at_least
        _, places, _, _ = engine.rank(fused, 5, opts)[0]
        assert haversine_km(places[0]["lat"], places[0]["lon"], *PARIS) < 300, "the best place moves to Paris"
    _, places, _, _ = engine.rank(photo, 5, AnswerOptions.make())[0]
    best_two = {round(haversine_km(p["lat"], p["lon"], *PARIS) < 1500) for p in places[:2]}
    assert best_two == {0, 1}, "without the hint the two best places are Paris and Sydney"


def test_the_fusion_is_the_tempered_product(engine, photos):
    """p_fused = p_photo · p_text^w / Z over the whole gallery, for a real photo and a real text feature."""
    photo = engine.embed_images(photos[:1])
    text = engine.embed_text(["a harbour at dusk"])
    w = 0.7
    logits = engine.gallery().logits
    lp = logits(photo, engine.scale).double().log_softmax(-1)
    lt = logits(text, engine.scale).double().log_softmax(-1)
    expected = (lp + w * lt).softmax(-1)
    fused = hints.with_hint(engine, photo, "a harbour at dusk", w)
    got = logits(fused, engine.scale).double().softmax(-1)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-9)


def test_weight_zero_is_the_photo_bit_for_bit(engine, photos):
    plain = list(engine.iter_predict_images(photos, 5, options=AnswerOptions.make()))
    zero = list(engine.iter_predict_images(photos, 5, options=AnswerOptions.make(hint="a harbour", hint_weight=0)))
    one = list(engine.iter_predict_images(photos, 5, options=AnswerOptions.make(hint="a harbour", hint_weight=1)))
    for a, b, c in zip(plain, zero, one):
        assert [p.probability for p in a.predictions] == [p.probability for p in b.predictions]
        assert [p.gallery_index for p in a.predictions] == [p.gallery_index for p in b.predictions]
        assert a.places == b.places and a.remaining == b.remaining
        assert (b.hint, b.hint_weight) == ("a harbour", 0.0) and (c.hint, c.hint_weight) == ("a harbour", 1.0)
        assert a.hint is None and a.constraint is None
        assert [p.probability for p in a.predictions] != [p.probability for p in c.predictions]


def test_a_hint_alone_is_the_text_query(engine):
    """The hint with no photo is geolocate_text: the same feature, the same answer."""
    text = list(engine.iter_predict_text(["a harbour at dusk"], 5))[0]
    feat = hints.hint_feature(engine, "a harbour at dusk")[None]
    assert [p.gallery_index for p in text.predictions] == [p.gallery_index for p in engine.rank(feat, 5)[0][0]]


@pytest.mark.parametrize("weight", [-1, float("nan"), "x", 1000])
def test_bad_weights_are_refused(weight):
    with pytest.raises(InputError, match="hint weight"):
        AnswerOptions.make(hint="snow", hint_weight=weight)
    assert AnswerOptions.make(hint="   ").hint is None


def test_cli_hint_and_constraint_columns(tmp_path, photos, tiny_clip, cache_dir):
    out = tmp_path / "s.csv"
    args = ["--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000", "--cache-dir", str(cache_dir)]
    rc = main(["photos", *photos[:2], "--hint", "snowy mountains", "--hint-weight", "0.5", "--within",
               "Chile; Argentina", "--table", "summary", "-o", str(out), *args])
    assert rc == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["hint"] for r in rows] == ["snowy mountains"] * 2 and {r["hint_weight"] for r in rows} == {"0.5"}
    assert {r["constraint"] for r in rows} == {"Chile, Argentina"}
    assert all(r["country"] in ("Chile", "Argentina") for r in rows)
    rc = main(["photos", photos[0], "--near", "-33.45,-70.66", "--radius-km", "400", "--table", "summary", "-o",
               str(tmp_path / "c.csv"), *args])
    with open(tmp_path / "c.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert rc == 0 and row["constraint"] == "within 400 km of -33.45, -70.66"
    assert haversine_km(float(row["lat"]), float(row["lon"]), -33.45, -70.66) <= 400 + 25
    assert main(["photos", photos[0], "--hint", "x", "--hint-weight", "-2", *args]) == 2
    assert main(["photos", photos[0], "--near", "10,10", *args]) == 2


def test_worker_takes_hint_and_named_areas(tiny_clip, cache_dir, photos, tmp_path):
    from geoclip_qgis.core.service.worker import Worker
    from geoclip_qgis.shared import protocol

    sent = []
    w = Worker(sent.append)
    eng = {"clip_path": tiny_clip, "device": "cpu", "gallery": "fibonacci:3000", "cache_dir": str(cache_dir)}
    req = {"paths": photos[:1], "top_k": 3, "engine": eng, "hint": "snowy mountains", "hint_weight": 2.0,
           "aoi": ["Chile", {"near": [45.76, 4.84], "radius_km": 300}]}
    w.handle({"id": 1, "op": "geolocate_images", "params": req})
    row = [m for m in sent if m.get("type") == "row"][-1]["data"]
    assert (row["hint"], row["hint_weight"]) == ("snowy mountains", 2.0)
    assert row["constraint"] == "Chile, within 300 km of 45.76, 4.84" and row["aoi_outside"] is not None
    assert sent[-1]["type"] == "result"
    w.handle({"id": 2, "op": "geolocate_text", "params": {"queries": ["x"], "engine": eng, "aoi": "Chilie"}})
    assert sent[-1]["type"] == "error" and "did you mean Chile" in (sent[-1]["error"]["hint"] or "")
    for bad in ({"hint_weight": -1}, {"aoi": {"near": [1, 2]}}, {"aoi": [1, "x"]}):
        with pytest.raises(protocol.SchemaError):
            protocol.validate("geolocate_images", {"paths": ["a.jpg"], **bad})
    tif = tmp_path / "l.tif"
    base = {"engine": eng, "photos": photos[:1], "extent": [0, 40, 20, 50], "resolution": 1.0, "out": str(tif)}
    w.handle({"id": 3, "op": "likelihood", "params": base})
    plain = sent[-1]["data"]
    w.handle({"id": 4, "op": "likelihood", "params": {**base, "hint": "snowy mountains", "hint_weight": 0.0}})
    assert sent[-1]["data"]["best_lat"] == plain["best_lat"] and sent[-1]["data"]["top"] == plain["top"]
    w.handle({"id": 5, "op": "likelihood", "params": {**base, "hint": "snowy mountains", "hint_weight": 3.0}})
    assert sent[-1]["type"] == "result" and sent[-1]["data"]["top"] != plain["top"]
