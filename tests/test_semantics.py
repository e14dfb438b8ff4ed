"""Issue 20, exact semantics: areas of interest restrict places and regions to the area; fused photos count once;
repeated options accumulate or are refused; levels, region resolution and EXIF GPS are validated in one place.
Each class is tested from its rule (random cases against a reference), not only from the issue's example."""

from __future__ import annotations

import argparse
import math
import os

import numpy as np
import pytest
import torch
from conftest import make_photo

from geoclip_qgis.core.answers.places import PlaceFinder
from geoclip_qgis.core.answers.regions import LEVEL_MAX, LEVEL_MIN, check_levels, check_region_res, confidence_regions
from geoclip_qgis.core.errors import InputError
from geoclip_qgis.core.maps.likelihood import LikelihoodMap, query_for
from geoclip_qgis.core.maps.raster import Grid
from geoclip_qgis.core.service.cli import build_parser, main

shapely = pytest.importorskip("shapely")
from geoclip_qgis.core.answers.aoi import AreaOfInterest, restrict_map  # noqa: E402


def _random_sphere(rng, n):
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.stack([np.degrees(np.arcsin(v[:, 2])), np.degrees(np.arctan2(v[:, 1], v[:, 0]))], axis=1)


def _clustered(rng, n):
    """Gallery points in a few tight clusters, so places merge many points and straddle area edges."""
    centres = _random_sphere(rng, 6)
    pts = centres[rng.integers(0, 6, n)] + rng.normal(scale=0.3, size=(n, 2))
    pts[:, 0] = np.clip(pts[:, 0], -89.9, 89.9)
    pts[:, 1] = (pts[:, 1] + 180.0) % 360.0 - 180.0
    return pts, centres


# ---- 1. areas of interest ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(40))
def test_places_with_an_area_are_the_places_of_the_area_alone(seed):
    """The finder restricted to an area gives exactly the places of the gallery cut to the area (the reference):
    same probabilities, centres, point counts and seeds; no point outside merges in; no place lies outside."""
    rng = np.random.default_rng(seed)
    coords, centres = _clustered(rng, 600)
    c = centres[seed % 6]
    area = AreaOfInterest.from_bbox((c[1] - 0.4, c[0] - 0.5, c[1] + 0.4, c[0] + 0.5)) if abs(c[1]) < 179 else \
        AreaOfInterest.from_bbox((-10, -10, 10, 10))
    inside = area.points_mask(coords)
    if not inside.any():
        inside[rng.integers(0, 600)] = True
    logits = rng.normal(scale=3.0, size=600)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    sub = probs * inside
    sub /= sub.sum()
    k = int(rng.integers(1, 8))
    radius = float(rng.choice([5.0, 25.0, 80.0]))
    ref_idx = np.flatnonzero(inside)
    want = PlaceFinder(coords[inside], radius).find(sub[inside], k)
    for got in (PlaceFinder(coords, radius, inside=inside).find(sub, k),  # whole vector
                PlaceFinder(coords, radius, inside=inside).find(probs, k),  # even unrestricted probabilities
                PlaceFinder(coords, radius, inside=inside).find(sub[np.argsort(-sub)], k, indices=np.argsort(-sub))):
        if got is not None and got.places and not math.isclose(sum(p.probability for p in got.places) +
                                                                got.remaining, 1.0, abs_tol=1e-9):
            pytest.fail("places + remaining != 1")
        assert all(inside[p.best_index] for p in got.places), "a place seeded outside the area"
        assert all(p.probability > 0 for p in got.places), "a place of zero probability (outside) was listed"
    got = PlaceFinder(coords, radius, inside=inside).find(sub, k)
    assert len(got.places) == len(want.places)
    for a, b in zip(got.places, want.places):
        assert a.best_index == ref_idx[b.best_index] and a.n_points == b.n_points
        assert math.isclose(a.probability, b.probability, rel_tol=1e-9)
        assert math.isclose(a.lat, b.lat, abs_tol=1e-9) and math.isclose(a.lon, b.lon, abs_tol=1e-9)
        assert math.isclose(a.max_km, b.max_km, abs_tol=1e-6)


def test_a_point_just_outside_never_joins_a_place_inside():
    """The issue's example: Two points 16 km apart across the area's edge; the outer one is the more probable."""
    coords = np.array([[45.0, 9.9], [45.0, 10.1], [20.0, 50.0]])
    inside = AreaOfInterest.from_bbox((0, 40, 10, 50)).points_mask(coords)
    assert inside.tolist() == [True, False, False]
    found = PlaceFinder(coords, 25.0, inside=inside).find(np.array([0.2, 0.7, 0.1]), 3)
    assert len(found.places) == 1 and found.places[0].n_points == 1 and found.places[0].best_index == 0
    assert found.places[0].max_km == 0.0


def test_engine_answers_with_an_area_lie_inside_it_and_report_the_outside_share(engine):
    """Through the engine (the CLI, the worker and Ray call the same rank): every prediction and place inside,
    none with probability 0, and the share of the mass outside reported."""
    area = AreaOfInterest.from_bbox((-10, 35, 30, 60), "europe")
    engine.set_aoi(area)
    try:
        results = engine.predict_text(["a beach", "snowy mountain village", "desert road"], top_k=8)
    finally:
        engine.set_aoi(None)
    coords = engine.gallery().coords
    inside = area.points_mask(coords)
    for res in results:
        assert res.predictions and res.places
        assert all(inside[p.gallery_index] and p.probability > 0 for p in res.predictions)
        assert all(pl["probability"] > 0 and area.points_mask([[pl["best_lat"], pl["best_lon"]]])[0]
                   for pl in res.places)
        assert all(area.points_mask([[pl["lat"], pl["lon"]]])[0] for pl in res.places)
        assert 0.0 < res.aoi_outside < 1.0
        assert math.isclose(sum(pl["probability"] for pl in res.places) + res.remaining, 1.0, abs_tol=1e-6)
        assert sum(pl["n_points"] for pl in res.places) <= int(inside.sum())
    feats = engine.embed_text(["a beach"])
    top = engine.rank_query(feats, 20, area)[0]
    assert top and all(inside[p.gallery_index] for p in top)
    assert math.isclose(sum(p.probability for p in engine.rank_query(feats, int(inside.sum()), area)[0]), 1.0,
                        rel_tol=1e-4)


@pytest.mark.parametrize("seed", range(10))
def test_regions_with_an_area_lie_inside_it(seed):
    rng = np.random.default_rng(seed)
    grid = Grid.over([-20, 30, 40, 70], 1.0)
    density = rng.gamma(0.5, size=grid.shape).astype(np.float32)
    area = AreaOfInterest.from_bbox((0, 40, 15, 55))
    lmap, outside = restrict_map(LikelihoodMap(grid, density, (0.0, 0.0)), area)
    assert 0 < outside < 1
    mask = area.grid_mask(grid)
    levels = sorted(set(np.round(rng.uniform(0.05, 0.99, 3), 3).tolist()))
    for reg in confidence_regions(lmap, levels, polygons=False):
        assert not (reg.mask & ~mask).any(), "a confidence region reached outside the area"
        assert reg.mass >= reg.level - 1e-6


# ---- 2. fused inputs and repeated options -----------------------------------------------------------------------
class _Recorder:
    def __init__(self):
        self.seen = []

    def embed_images(self, photos):
        self.seen.append(list(photos))
        return torch.nn.functional.normalize(torch.ones(len(photos), 4), dim=1)


def test_fused_photos_count_once_whatever_the_spelling(tmp_path, monkeypatch):
    a = make_photo(tmp_path / "a.jpg", seed=1)
    b = make_photo(tmp_path / "sub" / "b.jpg", seed=2)
    os.symlink(a, tmp_path / "link.jpg")
    monkeypatch.chdir(tmp_path)
    spellings = ["a.jpg", "./a.jpg", str(a), str(tmp_path / "sub" / ".." / "a.jpg"), "link.jpg", "sub/b.jpg",
                 str(b), "./sub/./b.jpg"]
    for n in range(1, len(spellings) + 1):
        rec, notes = _Recorder(), []
        query, label = query_for(rec, spellings[:n], notes=notes)
        want = 1 if n <= 5 else 2
        assert len(rec.seen[0]) == want and len(notes) == n - want, (n, rec.seen, notes)
        assert math.isclose(float(query.norm()), want, rel_tol=1e-6)


def test_a_photo_named_twice_gives_the_map_of_the_photo_once(engine, tmp_path, monkeypatch):
    a = make_photo(tmp_path / "a.jpg", seed=3)
    monkeypatch.chdir(tmp_path)
    once, _ = query_for(engine, [str(a)])
    twice, _ = query_for(engine, ["a.jpg", "./a.jpg", str(a)], notes=[])
    assert torch.allclose(once, twice)


def _value(action: argparse.Action) -> str:
    if action.choices:
        return str(list(action.choices)[0])
    return "1" if action.type in (int, float) or getattr(action.type, "__name__", "") == "positive_int" else "x"


def _single_options():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.nargs is None and action.dest != "help" and \
                    "Append" not in type(action).__name__ and "Extend" not in type(action).__name__:
                yield name, action


@pytest.mark.parametrize("command,action", list(_single_options()),
                         ids=lambda x: x if isinstance(x, str) else x.option_strings[-1])
def test_every_single_valued_option_given_twice_is_refused(command, action, capsys):
    opt = action.option_strings[-1]
    twice = [opt, opt] if action.nargs == 0 else [opt, _value(action), opt, _value(action)]
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, *twice])
    assert exc.value.code == 2 and "given twice" in capsys.readouterr().err


def test_list_options_accumulate():
    parser = build_parser()
    args = parser.parse_args(["likelihood", "--photos", "a.jpg", "--photos", "b.jpg", "c.jpg", "-o", "x.tif"])
    assert args.photos == ["a.jpg", "b.jpg", "c.jpg"]
    args = parser.parse_args(["photos", "x", "-o", "a.csv", "-o", "b.gpkg"])
    assert args.out == ["a.csv", "b.gpkg"]


# ---- 3. one validation per option -------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [[0.5, 0.5], [0.5, 0.9, 0.5], [0.5, 0.5000000001], [1e-12], [1.0], [0.0], [-0.1],
                                    [1.5], [math.nan], [math.inf], [], [0.9, 1.0], [LEVEL_MIN / 2],
                                    [1 - LEVEL_MIN / 2], ["x"]])
def test_bad_levels_are_refused_with_the_reason(levels):
    with pytest.raises(InputError, match="confidence levels must"):
        check_levels(levels)


@pytest.mark.parametrize("seed", range(20))
def test_every_accepted_level_defines_a_region(seed):
    """Random maps (sparse, peaked, flat, with empty cells) × levels from the whole accepted range: no error,
    each region holds at least its level, and a larger level never gives a smaller region."""
    rng = np.random.default_rng(seed)
    grid = Grid.over([-30, -20, 30, 20], 2.0)
    kind = seed % 4
    density = [rng.gamma(0.2, size=grid.shape), np.ones(grid.shape), rng.gamma(5, size=grid.shape),
               np.where(rng.random(grid.shape) < 0.9, 0.0, 1.0)][kind].astype(np.float32)
    if not density.any():
        density[0, 0] = 1.0
    levels = check_levels([LEVEL_MIN, LEVEL_MAX, *np.round(rng.uniform(0.001, 0.999, 4), 4).tolist()])
    regions = confidence_regions(LikelihoodMap(grid, density, (0.0, 0.0)), levels, polygons=False)
    for reg in regions:
        assert reg.cells >= 1 and reg.mass >= reg.level - 1e-6
    assert all(a.cells <= b.cells for a, b in zip(regions, regions[1:]))


def test_levels_and_region_res_are_refused_before_anything_is_written(tmp_path, tiny_clip, cache_dir, capsys):
    common = ["--clip-path", tiny_clip, "--device", "cpu", "--cache-dir", str(cache_dir)]
    for levels in ("0.5,0.5", "1e-12", "1.0", "0", "0.9,2"):
        out = tmp_path / "l.tif"
        rc = main(["likelihood", "--text", "a beach", "--extent", "0,40,10,50", "--resolution", "1",
                   "--levels", levels, "-o", str(out), *common])
        assert rc == 2 and "confidence levels must" in capsys.readouterr().err and not out.exists()
    for res in ("0", "-1", "nan", "11"):
        out = tmp_path / "t.csv"
        rc = main(["text", "a beach", "--region-res", res, "-o", str(out), "--gallery", "fibonacci:3000", *common])
        assert rc == 2 and "region resolution" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("res", [0, 0.0, -1, math.nan, math.inf, 10.5, "x", True])
def test_region_res_rule(res):
    with pytest.raises(InputError, match="region resolution"):
        check_region_res(res)


def test_region_res_rule_accepts():
    assert check_region_res(None) is None and check_region_res(0.5) == 0.5 and check_region_res(10) == 10.0


def test_worker_refuses_bad_levels_before_the_engine_or_any_write(tmp_path):
    from geoclip_qgis.core.service.worker import Worker

    for levels in ([1.0], [0.5, 0.5], [1e-12], [0]):
        sent, out = [], tmp_path / "w.tif"
        worker = Worker(sent.append)
        worker.handle({"id": 1, "op": "likelihood", "params": {"text": "a beach", "out": str(out), "levels": levels,
                                                               "engine": {"device": "cpu"}}})
        assert sent[-1]["type"] == "error" and sent[-1]["error"]["code"] == "input", sent[-1]
        assert "confidence levels must" in sent[-1]["error"]["message"]
        assert worker._engine is None and not out.exists()


def _gps_exif(lat, lon, lat_ref="N", lon_ref="E"):
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: lat_ref, 2: (float(lat), 0.0, 0.0), 3: lon_ref, 4: (float(lon), 0.0, 0.0)})
    return exif


@pytest.mark.parametrize("lat,lon,problem", [
    (95, 10, "latitude 95° outside ±90°"), (45, 190, "longitude 190° outside ±180°"), (90.5, 0, "latitude"),
    (0, 0, "exactly 0, 0"), (46, 8, None), (90, 180, None),
])
def test_exif_gps_out_of_range_reaches_the_summary_as_exif_problem(engine, tmp_path, lat, lon, problem):
    from geoclip_qgis.core.io.results import summary_row

    path = make_photo(tmp_path / "p.jpg", exif=_gps_exif(lat, lon))
    res = engine.predict_images([str(path)], top_k=2)[0]
    row = summary_row(res)
    assert res.to_dict()["exif_problem"] == row["exif_problem"]
    if problem is None:
        assert row["exif_problem"] is None and res.gps == (lat, lon)
    else:
        assert res.gps is None and problem in row["exif_problem"]
