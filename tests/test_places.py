"""Distinct places (core.places) and offline place names (core.placenames), on synthetic galleries whose answer is
known, checked against a naive implementation of the documented rule."""

from __future__ import annotations

import importlib.util
import itertools
import math
import time

import numpy as np
import pytest

from geoclip_qgis.core.answers.places import (
    PlaceFinder,
    chord_to_km,
    distinct_places,
    to_latlon,
    top_mass,
    unit_vectors,
)
from geoclip_qgis.core.errors import InputError
from geoclip_qgis.shared.geodesy import haversine_km


def clustered_gallery(seed: int = 0, clusters: int = 40, per: int = 30, spread_km: float = 6.0):
    """Flickr-like: dense clusters (cities) far apart, plus a sparse uniform background."""
    rng = np.random.default_rng(seed)
    centres = np.column_stack([rng.uniform(-60, 70, clusters), rng.uniform(-180, 180, clusters)])
    pts = []
    for lat, lon in centres:
        dlat = rng.normal(0, spread_km / 111.0, per)
        dlon = rng.normal(0, spread_km / (111.0 * max(0.2, math.cos(math.radians(lat)))), per)
        pts.append(np.column_stack([lat + dlat, (lon + dlon + 180) % 360 - 180]))
    background = np.column_stack([rng.uniform(-80, 80, 400), rng.uniform(-180, 180, 400)])
    return np.vstack(pts + [background]), centres


def softmax_probs(coords: np.ndarray, modes, kappa: float, weights=None) -> np.ndarray:
    """A mixture of von Mises–Fisher bumps evaluated at the gallery points, normalised over them."""
    v = unit_vectors(coords)
    weights = np.ones(len(modes)) if weights is None else np.asarray(weights, dtype=float)
    p = sum(w * np.exp(kappa * (v @ unit_vectors([m])[0] - 1.0)) for w, m in zip(weights, modes))
    return p / p.sum()


def naive_places(probs, coords, k, radius_km):
    """The rule as the docstring states it, with the scalar haversine of core.geodesy: a reference, not fast."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    owner = {}
    seeds = []
    for i in order:
        if i in owner:
            continue
        seeds.append(i)
        for j in order:
            if j not in owner and haversine_km(*coords[i], *coords[j]) <= radius_km:
                owner[j] = i
    sums = {s: sum(probs[j] for j, o in owner.items() if o == s) for s in seeds}
    counts = {s: sum(1 for o in owner.values() if o == s) for s in seeds}
    top = sorted(seeds, key=lambda s: -sums[s])[:k]
    return [(s, sums[s], counts[s]) for s in top]


def test_chord_distance_is_the_haversine_of_geodesy():
    rng = np.random.default_rng(1)
    a = np.column_stack([rng.uniform(-90, 90, 200), rng.uniform(-180, 180, 200)])
    b = np.column_stack([rng.uniform(-90, 90, 200), rng.uniform(-180, 180, 200)])
    ours = chord_to_km(np.linalg.norm(unit_vectors(a) - unit_vectors(b), axis=1))
    ref = np.array([haversine_km(*p, *q) for p, q in zip(a, b)])
    assert np.allclose(ours, ref, rtol=1e-9, atol=1e-6)
    small = chord_to_km(np.linalg.norm(unit_vectors([[10, 20]]) - unit_vectors([[10, 20.0001]]), axis=1))[0]
    assert small == pytest.approx(haversine_km(10, 20, 10, 20.0001), rel=1e-6)
    assert np.allclose(to_latlon(unit_vectors(a)), a, atol=1e-9)


def test_k_places_are_k_distinct_locations_and_add_up_to_one():
    coords, centres = clustered_gallery()
    probs = softmax_probs(coords, centres[:8], kappa=2000.0, weights=np.linspace(2, 1, 8))
    ps = distinct_places(probs, coords, k=6, radius_km=25.0)
    assert len(ps.places) == 6
    seeds = [(p.best_lat, p.best_lon) for p in ps.places]
    centres_found = [(p.lat, p.lon) for p in ps.places]
    for a, b in itertools.combinations(range(6), 2):
        assert haversine_km(*seeds[a], *seeds[b]) > 25.0
        assert haversine_km(*centres_found[a], *centres_found[b]) > 25.0
    total = math.fsum(p.probability for p in ps.places) + ps.remaining
    assert total == pytest.approx(1.0, abs=1e-6)
    assert [p.rank for p in ps.places] == list(range(1, 7))
    assert all(a.probability >= b.probability for a, b in zip(ps.places, ps.places[1:]))
    # the remaining mass is what the returned places leave, counted point by point
    owned = np.zeros(len(coords), dtype=bool)
    for p in ps.places:
        owned[p.best_index] = True
    assert ps.remaining <= 1.0 - probs[owned].sum() + 1e-9


@pytest.mark.parametrize("kappa", [800.0, 20000.0])
def test_matches_the_naive_rule(kappa):
    """Flat and peaked: the early stop (no later place can enter the top k) never changes the answer."""
    coords, centres = clustered_gallery(seed=3, clusters=12, per=15, spread_km=12.0)
    coords = coords[:300]
    probs = softmax_probs(coords, centres[:4], kappa=kappa)
    finder = PlaceFinder(coords, radius_km=25.0, max_points=len(coords), mass=1.0)
    ps = finder.find(probs, k=5)
    ref = naive_places(probs, coords, 5, 25.0)
    assert [p.best_index for p in ps.places] == [s for s, _, _ in ref]
    assert [p.n_points for p in ps.places] == [n for _, _, n in ref]
    assert np.allclose([p.probability for p in ps.places], [s for _, s, _ in ref], atol=1e-12)
    assert ps.stats["places_formed"] <= len({s for s, _, _ in naive_places(probs, coords, len(coords), 25.0)})


def test_place_fields_centre_best_point_and_spread():
    # three points 10 km apart east-west at the equator, weights 2:1:1 -> centre pulled towards the heavy one
    d = 10.0 / 111.195
    coords = np.array([[0.0, 0.0], [0.0, d], [0.0, -d], [40.0, 40.0]])
    probs = np.array([0.4, 0.2, 0.2, 0.2])
    ps = distinct_places(probs, coords, k=5, radius_km=25.0)
    first = ps.places[0]
    assert first.probability == pytest.approx(0.8) and first.n_points == 3
    assert (first.best_lat, first.best_lon, first.best_index) == (0.0, 0.0, 0)
    assert first.best_probability == pytest.approx(0.4)
    assert abs(first.lat) < 1e-9 and abs(first.lon) < 1e-9
    assert first.spread_km == pytest.approx(0.5 * 10.0, rel=1e-3)  # mean distance: (0·.4 + 10·.2 + 10·.2) / .8
    assert first.max_km == pytest.approx(10.0, rel=1e-3)
    assert ps.places[1].n_points == 1 and ps.places[1].spread_km == 0.0
    assert ps.remaining == pytest.approx(0.0, abs=1e-12)
    row = first.to_dict()
    assert set(row) >= {"rank", "lat", "lon", "probability", "n_points", "spread_km", "best_lat", "best_lon"}
    assert ps.to_dict()["places"][0] == row


def test_antimeridian_and_pole():
    coords = np.array([[-17.0, 179.96], [-17.0, -179.96], [-17.05, 179.99], [89.95, 0.0], [89.95, 120.0],
                       [89.95, -120.0], [10.0, 10.0]])
    probs = np.array([0.2, 0.2, 0.1, 0.15, 0.15, 0.15, 0.05])
    ps = distinct_places(probs, coords, k=3, radius_km=25.0)
    fiji, pole, other = ps.places
    assert fiji.n_points == 3 and fiji.probability == pytest.approx(0.5)
    assert abs(abs(fiji.lon) - 180.0) < 0.05 and fiji.lat == pytest.approx(-17.01, abs=0.02)
    assert fiji.max_km < 10.0
    assert pole.n_points == 3 and pole.lat > 89.99
    assert other.n_points == 1
    assert math.fsum(p.probability for p in ps.places) + ps.remaining == pytest.approx(1.0, abs=1e-6)


def test_photo_like_and_text_like_distributions():
    coords, centres = clustered_gallery(seed=5)
    # a photo: one sharp mode on a city cluster; most of the mass lands in one place
    photo = softmax_probs(coords, [centres[7]], kappa=20000.0)
    ps = distinct_places(photo, coords, k=5)
    assert haversine_km(ps.places[0].lat, ps.places[0].lon, *centres[7]) < 10.0
    assert ps.places[0].probability > 0.9 and ps.places[0].n_points > 10
    assert ps.tail <= 1e-3 + 1e-12
    # a text: three broad modes with weights 3:2:1; the top three places sit on them, in that order
    text = softmax_probs(coords, centres[[2, 11, 23]], kappa=3000.0, weights=[3, 2, 1])
    pt = distinct_places(text, coords, k=5)
    for place, mode in zip(pt.places[:3], centres[[2, 11, 23]]):
        assert haversine_km(place.lat, place.lon, *mode) < 25.0
    assert math.fsum(p.probability for p in pt.places) + pt.remaining == pytest.approx(1.0, abs=1e-6)


def test_top_m_input_and_candidate_cap():
    coords, centres = clustered_gallery(seed=2)
    probs = softmax_probs(coords, centres[:5], kappa=1500.0)
    tp, ti = top_mass(probs, max_points=50)
    assert len(ti) <= 50 and np.all(np.diff(tp) <= 0)
    full = PlaceFinder(coords, max_points=50).find(probs, k=3)
    part = PlaceFinder(coords).find(tp, k=3, indices=ti)
    assert [p.best_index for p in full.places] == [p.best_index for p in part.places]
    assert part.tail == pytest.approx(1.0 - tp.sum(), abs=1e-9)
    assert math.fsum(p.probability for p in part.places) + part.remaining == pytest.approx(1.0, abs=1e-6)
    # mass: the fewest points holding 99.9 %
    tp2, _ = top_mass(probs, max_points=len(probs), mass=0.999)
    assert tp2.sum() >= 0.999 * probs.sum() - 1e-12 and tp2[:-1].sum() < 0.999 * probs.sum()


def test_radius_is_settable_and_inputs_are_checked():
    coords, centres = clustered_gallery(seed=4, spread_km=30.0)
    probs = softmax_probs(coords, centres[:3], kappa=500.0)
    finder = PlaceFinder(coords)
    wide = finder.find(probs, k=3, radius_km=200.0)
    narrow = finder.find(probs, k=3, radius_km=5.0)
    assert wide.places[0].n_points > narrow.places[0].n_points
    assert wide.radius_km == 200.0
    with pytest.raises(InputError):
        finder.find(probs, k=0)
    with pytest.raises(InputError):
        finder.find(probs[:-1])
    with pytest.raises(InputError):
        finder.find(-probs)
    with pytest.raises(InputError):
        PlaceFinder(coords, radius_km=0)
    with pytest.raises(InputError):
        finder.find(probs[:3], indices=[0, 1, len(coords)])


# ---- place names ------------------------------------------------------------------------------------------------
needs_names = pytest.mark.skipif(importlib.util.find_spec("reverse_geocode") is None,
                                 reason="reverse-geocode is not installed")


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    from geoclip_qgis.core.answers import placenames

    placenames._INDEX = None
    t = time.perf_counter()
    placenames.load(tmp_path_factory.mktemp("names-cache"))
    print(f"place names: first load {time.perf_counter() - t:.2f} s")
    return placenames


@needs_names
def test_paris_and_friends(names):
    paris, sydney, nuuk = names.place_names([[48.8566, 2.3522], [-33.87, 151.21], [64.18, -51.72]])
    assert (paris.country, paris.country_code, paris.region, paris.place) == ("France", "FR", "Île-de-France",
                                                                              "Paris")
    assert paris.place_km < 3.0 and paris.population > 1_000_000
    assert paris.label() == "Paris, Île-de-France, France"
    assert (sydney.country_code, sydney.region) == ("AU", "New South Wales")
    assert nuuk.country == "Greenland"
    assert paris.to_dict()["place_km"] == paris.place_km


@needs_names
def test_mid_ocean_is_not_given_a_country(names):
    pacific, south = names.place_names([[0.0, -140.0], [-60.0, -120.0]])
    for row in (pacific, south):
        assert row.country is None and row.country_code is None and row.region is None
        assert row.place_km > 500 and row.place
        assert row.label().endswith("(nearest populated place)")
    # the distance is a real great-circle distance to the named place
    assert pacific.place_km == pytest.approx(haversine_km(0.0, -140.0, pacific.place_lat, pacific.place_lon),
                                             rel=1e-6)


@needs_names
def test_antimeridian_lookup(names):
    # Taveuni, Fiji, sits on the 180th meridian; its nearest populated place lies across it (lon > 0): a plain
    # lat/lon tree would measure ~360° of longitude to it
    row, = names.place_names([[-16.85, -179.98]])
    assert row.country_code == "FJ" and row.place_lon > 170.0 and row.place_km < 100.0
    assert row.place_km == pytest.approx(haversine_km(-16.85, -179.98, row.place_lat, row.place_lon), rel=1e-6)


@needs_names
def test_names_are_fast_after_load(names):
    pts = np.array([[48.85, 2.35], [40.7, -74.0], [35.68, 139.69], [-22.9, -43.2], [0.0, -140.0]])
    names.place_names(pts)
    best = min(_timed(lambda: names.place_names(pts)) for _ in range(5))
    print(f"place names: 5 lookups {best * 1e3:.2f} ms")
    assert best < 0.060  # 5 % of a 1.2 s photo


@needs_names
def test_names_never_touch_the_network_and_cache_round_trips(tmp_path, monkeypatch):
    import socket
    import urllib.request

    from geoclip_qgis.core.answers import placenames

    def refuse(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    pts = [[51.5, -0.12], [-1.29, 36.82]]
    placenames._INDEX = None
    first = placenames.place_names(pts, cache_dir=tmp_path)
    assert list(tmp_path.glob("placenames-*.npz"))
    placenames._INDEX = None
    t = time.perf_counter()
    second = placenames.place_names(pts, cache_dir=tmp_path)
    print(f"place names: load from cache {time.perf_counter() - t:.2f} s")
    assert first == second
    assert ("FR", "France") in placenames.countries()


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
