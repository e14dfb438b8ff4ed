"""The trip through the real engine (tiny random CLIP, the real location encoder and gallery) and the command line:
EXIF times read by the one reader, an anchor's GPS fixing its neighbours, photos without a time answered alone and
said so, a huge speed giving back the single-photo answers, the track written as our layer."""

from __future__ import annotations

import csv
import struct
from datetime import datetime, timedelta, timezone

import pyogrio
import pytest
from conftest import make_photo
from PIL import Image

from geoclip_qgis.core.answers import trip
from geoclip_qgis.core.io.photos import read_taken_at
from geoclip_qgis.core.service.cli import main
from geoclip_qgis.shared.geodesy import haversine_km


def _exif(when=None, offset=None, gps=None) -> Image.Exif:
    exif = Image.Exif()
    if when is not None:
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = when
        if offset is not None:
            sub[0x9011] = offset
    if gps is not None:
        lat, lon = gps
        exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: (abs(lat), 0.0, 0.0),
                                     3: "E" if lon >= 0 else "W", 4: (abs(lon), 0.0, 0.0)})
    return exif


def test_exif_capture_time_with_and_without_offset(tmp_path):
    aware = make_photo(tmp_path / "a.jpg", exif=_exif("2026:05:01 14:30:05", "+02:00"))
    naive = make_photo(tmp_path / "n.jpg", exif=_exif("2026:05:01 14:30:05"))
    west = make_photo(tmp_path / "w.jpg", exif=_exif("2026:05:01 08:00:00", "-05:30"))
    blank = make_photo(tmp_path / "b.jpg", exif=_exif("0000:00:00 00:00:00"))
    none = make_photo(tmp_path / "none.jpg")
    assert read_taken_at(aware) == (datetime(2026, 5, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2))), None)
    assert read_taken_at(naive) == (datetime(2026, 5, 1, 14, 30, 5), None)
    assert read_taken_at(west)[0].utcoffset() == -timedelta(hours=5, minutes=30)
    when, problem = read_taken_at(blank)
    assert when is None and "not a date and time" in problem
    assert read_taken_at(none) == (None, None)


def _run(engine, paths, trip_options):
    return trip.predict_trip(engine, paths, 3, trip_options)


@pytest.fixture(scope="module")
def trip_photos(tmp_path_factory, small_gallery):
    """Four photos an hour's drive apart from a GPS photo on a gallery point, and one with no time at all."""
    folder = tmp_path_factory.mktemp("trip")
    gps = tuple(float(v) for v in small_gallery[100])
    t0 = datetime(2026, 5, 1, 12, 0)
    paths = []
    for i, minutes in enumerate((0, 5, 10, 15)):
        stamp = (t0 + timedelta(minutes=minutes)).strftime("%Y:%m:%d %H:%M:%S")
        paths.append(str(make_photo(folder / f"trip_{i}.jpg", seed=40 + i,
                                    exif=_exif(stamp, "+02:00", gps if i == 1 else None))))
    paths.append(str(make_photo(folder / "untimed.jpg", seed=50)))
    return paths, gps


def test_an_anchor_fixes_its_neighbours_and_an_untimed_photo_is_alone(engine, trip_photos):
    paths, gps = trip_photos
    results, answer = _run(engine, paths, trip.TripOptions.make(True, 120, 10))
    rows = [answer.rows[p] for p in paths]
    assert [r["trip_order"] for r in rows] == [1, 2, 3, 4, None]
    assert rows[0]["taken_at"] == "2026-05-01T12:00:00+02:00"
    assert (rows[1]["trip_lat"], rows[1]["trip_lon"]) == gps and trip.NOTE_ANCHOR in rows[1]["trip_note"]
    for k, minutes in ((0, 5), (2, 5), (3, 10)):  # within reach of the anchor: 120 km/h × Δt + 10 km (+ a place)
        reach = 120 * minutes / 60 + 10
        assert haversine_km(*gps, rows[k]["trip_lat"], rows[k]["trip_lon"]) < reach + 25
    single = [(r.places[0]["lat"], r.places[0]["lon"]) for r in results]
    assert max(haversine_km(*gps, *single[k]) for k in (0, 2, 3)) > 500, "the random CLIP's own answers are far"
    assert rows[4]["trip_note"] == trip.NOTE_ALONE
    assert haversine_km(rows[4]["trip_lat"], rows[4]["trip_lon"], *single[4]) < 25
    assert [t[2] for t in answer.track] == paths[:4]


def test_a_huge_speed_gives_back_the_single_photo_answers(engine, trip_photos):
    paths = trip_photos[0][:1] + trip_photos[0][2:4]  # no anchor
    results, answer = _run(engine, paths, trip.TripOptions.make(True, 1e9, 0))
    for res in results:
        row = answer.rows[res.source]
        assert haversine_km(row["trip_lat"], row["trip_lon"], res.places[0]["lat"], res.places[0]["lon"]) < 25
        assert row["trip_probability"] == pytest.approx(res.places[0]["probability"], rel=0.25)


def test_no_capture_times_is_file_order_and_said(engine, photos):
    _, answer = _run(engine, photos, trip.TripOptions.make(True))
    assert [answer.rows[p]["trip_order"] for p in photos] == [1, 2, 3]
    assert all(answer.rows[p]["trip_note"] == trip.NOTE_FILE_ORDER for p in photos)
    assert answer.summary["note"] == trip.NOTE_FILE_ORDER


def test_cli_writes_the_trip_columns_and_the_track_layer(tmp_path, trip_photos, tiny_clip, cache_dir):
    paths, gps = trip_photos
    out, table = tmp_path / "t.gpkg", tmp_path / "t.csv"
    rc = main(["photos", *paths, "--trip", "--trip-speed", "120", "-o", str(out), "-o", str(table),
               "--table", "summary", "--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000",
               "--cache-dir", str(cache_dir)])
    assert rc == 0
    info = pyogrio.read_info(out, layer="geoclip_trip")
    assert info["features"] == 1 and info["geometry_type"] == "LineString"
    _, _, geom, data = pyogrio.raw.read(out, layer="geoclip_trip", columns=["photos", "start"])
    assert data[0][0] == 4 and data[1][0] == "2026-05-01T12:00:00+02:00"
    n = struct.unpack("<BII", geom[0][:9])[2]
    x, y = struct.unpack("<dd", geom[0][9 + 16:9 + 32])  # the second vertex: the anchor's GPS
    assert n == 4 and (y, x) == pytest.approx(gps)
    with open(table, newline="") as fh:
        rows = {r["source"]: r for r in csv.DictReader(fh)}
    assert rows[paths[1]]["trip_order"] == "2" and float(rows[paths[1]]["trip_lat"]) == pytest.approx(gps[0])
    assert rows[paths[4]]["trip_order"] == "" and rows[paths[4]]["trip_note"] == trip.NOTE_ALONE
    assert pyogrio.read_info(out, layer="geoclip_trip")["layer_metadata"].get("GEOCLIP_QGIS") == "1"


def test_cli_refuses_trip_with_resume(tmp_path, photos, tiny_clip, cache_dir, capsys):
    rc = main(["photos", *photos, "--trip", "--resume", "-o", str(tmp_path / "r.csv"), "--clip-path", tiny_clip,
               "--device", "cpu", "--cache-dir", str(cache_dir)])
    assert rc == 2 and "cannot resume" in capsys.readouterr().err


def test_worker_answers_the_trip_with_its_result(trip_photos, tiny_clip, cache_dir):
    from geoclip_qgis.core.service.worker import Worker
    from geoclip_qgis.shared import protocol

    paths, gps = trip_photos
    sent = []
    engine = {"device": "cpu", "clip_path": tiny_clip, "cache_dir": str(cache_dir), "gallery": "fibonacci:3000"}
    Worker(sent.append).handle({"id": 5, "op": "geolocate_images", "params": {
        "paths": paths, "top_k": 2, "engine": engine, "trip": True, "trip_speed_kmh": 120.0}})
    reply = sent[-1]
    assert reply["type"] == "result", reply
    got = reply["data"]["trip"]
    by_index = {p["index"]: p for p in got["photos"]}
    assert [by_index[i]["trip_order"] for i in range(5)] == [1, 2, 3, 4, None]
    assert (by_index[1]["trip_lat"], by_index[1]["trip_lon"]) == gps
    assert [t[2] for t in got["track"]] == [0, 1, 2, 3] and got["summary"]["speed_kmh"] == 120.0
    protocol.encode(reply)  # JSON all through (no NaN)
    with pytest.raises(protocol.SchemaError, match="trip_speed_kmh"):
        protocol.validate("geolocate_images", {"paths": paths, "trip": True, "trip_speed_kmh": 0})


def test_a_trip_too_large_is_refused_before_any_model_loads():
    from geoclip_qgis.core.service.worker import Worker

    sent = []
    worker = Worker(sent.append)
    worker.handle({"id": 6, "op": "geolocate_images", "params": {
        "paths": ["/x.jpg"] * (trip.MAX_TRIP_PHOTOS + 1), "trip": True}})
    assert sent[-1]["type"] == "error" and "split the photos" in sent[-1]["error"]["hint"]
    assert worker._engine is None


def test_the_lattice_stays_bounded_however_many_photos(engine, trip_photos, monkeypatch):
    monkeypatch.setattr(trip, "MAX_LATTICE", 40)
    paths, _ = trip_photos
    _, answer = _run(engine, paths, trip.TripOptions.make(True))
    bound = 40 + trip.ANCHOR_NEIGHBOURS + trip.ANCHOR_REACH_POINTS + trip.KEEP_OWN * len(paths)  # cap, anchor, own
    assert answer.summary["lattice"] <= bound


def test_cli_without_a_geopackage_writes_the_track_as_geojson_and_prints_without_outputs(
        tmp_path, trip_photos, tiny_clip, cache_dir, capsys):
    import json

    paths, _ = trip_photos
    common = ["--clip-path", tiny_clip, "--device", "cpu", "--gallery", "fibonacci:3000", "--cache-dir",
              str(cache_dir)]
    assert main(["photos", *paths, "--trip", "-o", str(tmp_path / "r.csv"), *common]) == 0
    track = json.loads((tmp_path / "r.trip.geojson").read_text())
    assert track["name"] == "geoclip_trip" and track["features"][0]["geometry"]["type"] == "LineString"
    assert len(track["features"][0]["geometry"]["coordinates"]) == 4
    capsys.readouterr()
    assert main(["photos", *paths, "--trip", *common]) == 0
    out = capsys.readouterr().out
    assert "trip (time order):" in out and trip.NOTE_ALONE in out and trip.NOTE_ANCHOR in out
