"""The trip (core/answers/trip.py): photos of one journey answered jointly, with known answers on synthetic data.

The chain itself is pure numpy and is tested on hand-made distributions over a small lattice; the time reading on
photos written with EXIF times by Pillow; the whole path through the engine with the tiny random CLIP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from geoclip_qgis.core.answers import trip
from geoclip_qgis.shared.geodesy import haversine_km

LYON = [(45.76, 4.84), (45.70, 4.90), (45.80, 4.75)]
SYDNEY = [(-33.87, 151.21), (-33.80, 151.10), (-33.95, 151.25)]
LATTICE = np.array(LYON + SYDNEY)
DIST = trip.haversine_matrix(LATTICE, LATTICE)


def _photo(lyon: float) -> np.ndarray:
    """A distribution putting `lyon` of its mass on the Lyon points, the rest on Sydney's."""
    return np.array([lyon / 3] * 3 + [(1 - lyon) / 3] * 3)


def _mass_lyon(post: np.ndarray) -> float:
    return float(post[:3].sum())


def test_haversine_matrix_is_geodesy():
    d = trip.haversine_matrix(LATTICE[:2], LATTICE)
    for i in range(2):
        for j in range(len(LATTICE)):
            assert d[i, j] == pytest.approx(haversine_km(*LATTICE[i], *LATTICE[j]), rel=1e-9)


def test_ambiguous_photo_between_two_confident_ones_is_pulled_to_their_side():
    emission = np.stack([_photo(0.95), _photo(0.4), _photo(0.95)])  # the middle one leans to Sydney
    reach = trip.reach_km(1.0, trip.DEFAULT_SPEED_KMH, trip.DEFAULT_SLACK_KM)
    post = trip.forward_backward(emission, DIST, [reach, reach])
    assert _mass_lyon(post[1]) > 0.99  # 0.4·0.95² against 0.6·0.05²
    assert _mass_lyon(post[0]) > 0.95 and _mass_lyon(post[2]) > 0.95
    assert np.allclose(post.sum(axis=1), 1.0)


def test_a_flight_long_enough_leaves_the_ambiguous_photo_its_own_answer():
    """24 h at 900 km/h reach anywhere: the chain decouples and each photo keeps its own distribution."""
    emission = np.stack([_photo(0.95), _photo(0.4), _photo(0.95)])
    reach = trip.reach_km(24.0, trip.DEFAULT_SPEED_KMH, trip.DEFAULT_SLACK_KM)
    post = trip.forward_backward(emission, DIST, [reach, reach])
    assert np.allclose(post, emission / emission.sum(axis=1, keepdims=True), atol=1e-9)


def test_a_huge_speed_gives_back_the_single_photo_answers():
    emission = np.stack([_photo(0.9), _photo(0.2), _photo(0.7), _photo(0.5)])
    reach = trip.reach_km(0.01, 1e9, 0.0)
    post = trip.forward_backward(emission, DIST, [reach] * 3)
    assert np.allclose(post, emission / emission.sum(axis=1, keepdims=True), atol=1e-9)


def test_an_anchor_with_gps_fixes_its_neighbours():
    """Two ambiguous photos around a GPS photo in Sydney, ten minutes apart: both are pulled to Sydney."""
    anchor = trip.anchor_emission(LATTICE, SYDNEY[0])
    assert int(np.argmax(anchor)) == 3 and anchor[:3].max() < 1e-100
    emission = np.stack([_photo(0.6), anchor, _photo(0.6)])
    reach = trip.reach_km(1 / 6, trip.DEFAULT_SPEED_KMH, trip.DEFAULT_SLACK_KM)
    post = trip.forward_backward(emission, DIST, [reach, reach])
    assert _mass_lyon(post[0]) < 1e-3 and _mass_lyon(post[2]) < 1e-3
    assert int(np.argmax(post[1])) == 3


def test_a_contradicting_photo_keeps_its_own_evidence_without_zeros():
    """Lyon then a certain Sydney one hour later: impossible at 900 km/h, yet the chain stays finite (the floor)
    and each keeps its own place rather than collapsing to NaN."""
    emission = np.stack([np.array([1, 1, 1, 0, 0, 0.0]) + 1e-300, np.array([0, 0, 0, 1, 1, 1.0]) + 1e-300])
    reach = trip.reach_km(1.0, trip.DEFAULT_SPEED_KMH, trip.DEFAULT_SLACK_KM)
    post = trip.forward_backward(emission, DIST, [reach])
    assert np.isfinite(post).all()
    assert _mass_lyon(post[0]) > 0.99 and _mass_lyon(post[1]) < 0.01


def test_order_by_time_with_offsets_and_photos_without_time_alone():
    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    times = [t0 + timedelta(hours=2), None, t0, t0.astimezone(timezone.utc) + timedelta(minutes=30)]
    plan = trip.order_photos(times)
    assert plan.chain == [2, 3, 0] and plan.hours == pytest.approx([0.5, 1.5])
    assert plan.alone == [1] and plan.notes[1] == trip.NOTE_ALONE
    assert plan.taken_at[2] == "2026-05-01T12:00:00+02:00"


def test_no_times_at_all_is_file_order_and_said():
    plan = trip.order_photos([None, None, None])
    assert plan.chain == [0, 1, 2] and plan.hours == [trip.FILE_ORDER_GAP_H] * 2 and not plan.alone
    assert all(plan.notes[i] == trip.NOTE_FILE_ORDER for i in range(3))


def test_naive_clocks_are_compared_as_local_time_and_said():
    t0 = datetime(2026, 5, 1, 12, 0)
    plan = trip.order_photos([t0, t0.replace(tzinfo=timezone.utc) + timedelta(hours=1)])
    assert plan.chain == [0, 1] and plan.hours == pytest.approx([1.0])
    assert plan.notes[0] == trip.NOTE_LOCAL and 1 not in plan.notes


def test_options_are_checked():
    assert trip.TripOptions.make(True, 120, 10) == trip.TripOptions(True, 120.0, 10.0)
    assert trip.TripOptions.from_params({"trip": True}).speed_kmh == trip.DEFAULT_SPEED_KMH
    from geoclip_qgis.core.errors import InputError

    for bad in (0, -5, float("nan")):
        with pytest.raises(InputError, match="travel speed"):
            trip.TripOptions.make(True, bad)


def test_region_area_counts_the_cells_of_the_90_percent_set():
    post = np.array([0.5, 0.45, 0.05, 0, 0, 0])  # two Lyon points hold 95 %
    area = trip.region_area_km2(LATTICE[:, 0], LATTICE[:, 1], post)

    def cell(lat0: float) -> float:
        band = np.sin(np.radians(lat0 + 0.25)) - np.sin(np.radians(lat0))
        return trip.EARTH_RADIUS_KM ** 2 * np.radians(0.25) * band

    assert area == pytest.approx(cell(45.75) + cell(45.5), rel=1e-9)  # 45.76 and 45.70 lie in two rows of cells


def test_the_kernel_is_the_documented_formula():
    kern = trip._Kernel(DIST)
    for reach in (0.0, 80.0, 5_000.0, 16_800.0):
        for i in range(len(LATTICE)):
            unit = np.eye(len(LATTICE))[i]
            want = np.exp(np.minimum(reach - DIST[:, i], 0.0) / trip.SCALE_KM) + trip.FLOOR
            assert np.allclose(kern.apply(unit, reach), want, rtol=1e-6, atol=1e-18)  # float32 kernel


def test_a_photo_cannot_outrun_the_speed_against_strong_evidence():
    """Lyon (GPS) then, 30 minutes later at 120 km/h, a photo whose own answer favours Genoa (350 km) a million
    times over Grenoble (95 km): the trip puts it at Grenoble, the only place in reach."""
    lattice = np.array([(45.76, 4.84), (45.19, 5.72), (44.41, 8.93)])
    dist = trip.haversine_matrix(lattice, lattice)
    emission = np.stack([trip.anchor_emission(lattice, (45.76, 4.84)), np.array([0.0, 1e-6, 1.0])])
    post = trip.forward_backward(emission, dist, [trip.reach_km(0.5, 120, trip.DEFAULT_SLACK_KM)])
    assert post[1, 1] > 0.99
