"""The trip in QGIS (real QGIS headless, the real worker with the tiny random CLIP): the dock's 'Photos are one
trip' run adds a track line layer on top of the run's group, the trip columns in the summary layer and the joint
answer in the table; the Processing algorithm writes the track to its sink."""

from __future__ import annotations

import os

import pytest
from conftest import make_photo, wait_for
from test_trip_engine import _exif


@pytest.fixture(scope="module")
def trip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dock trip")
    for i, (stamp, gps) in enumerate((("2026:05:01 10:00:00", None), ("2026:05:01 10:20:00", (45.76, 4.84)),
                                      ("2026:05:01 10:40:00", None))):
        make_photo(folder / f"t{i}.jpg", seed=70 + i, exif=_exif(stamp, "+02:00", gps))
    make_photo(folder / "untimed.jpg", seed=80)
    return folder


def test_dock_trip_adds_the_track_and_the_joint_answer(qgis_iface, qgis_new_project, gui_settings, trip_folder):
    from qgis.core import QgsWkbTypes

    from geoclip_qgis.gui.dock.dock import STORE_MEMORY, GeolocationDock

    dock = GeolocationDock(qgis_iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_MEMORY))
    dock.photos.add([str(trip_folder)])
    assert not dock.trip_speed.isEnabled()
    dock.trip.setChecked(True)
    assert dock.trip_speed.isEnabled() and dock.trip_speed.value() == 900
    dock.trip_speed.setValue(120)
    dock.top_k.setValue(2)
    dock.run()
    wait_for(lambda: dock.task is None and dock.run_button.isEnabled(), 300)
    run = dock.run_state
    assert len(run.rows) == 4, dock.status.text()
    track = run.layers["trip"]
    assert track.geometryType() == QgsWkbTypes.GeometryType.LineGeometry and track.featureCount() == 1
    line = next(track.getFeatures())
    pts = line.geometry().asPolyline()
    assert len(pts) == 3 and (pts[1].y(), pts[1].x()) == pytest.approx((45.76, 4.84)), "the anchor's GPS"
    assert line["photos"] == 3 and line["start"] == "2026-05-01T10:00:00+02:00" and line["speed_kmh"] == 120
    first = run.group.children()[0]
    assert first.layer() is track, "the track on top of the run's group"
    summary = {os.path.basename(f["source"]): f for f in run.layers["summary"].getFeatures()}
    assert [summary[f"t{i}.jpg"]["trip_order"] for i in range(3)] == [1, 2, 3]
    assert summary["untimed.jpg"]["trip_note"].startswith("no capture time")
    assert "Trip: 3 photos in time order" in dock.status.text(), dock.status.text()
    trip_cells = [dock.table.item(r, 7).text() for r in range(dock.table.rowCount()) if dock.table.item(r, 7)]
    assert sum(t.startswith("#") for t in trip_cells) == 3 and any(t.startswith("alone") for t in trip_cells)
    assert not dock.table.isColumnHidden(7)


@pytest.fixture(scope="module")
def provider(geoclip_provider, cache_dir, tiny_clip):
    from geoclip_qgis.client.engine_client import shutdown_shared

    yield geoclip_provider
    shutdown_shared()


def test_processing_photos_as_a_trip(provider, trip_folder, tiny_clip, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProject, QgsVectorLayer, QgsWkbTypes

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = tmp_path / "trip.gpkg"
    res = processing.run("geoclip:geolocate_photos", {
        "FOLDER": str(trip_folder), "TOP_K": 2, "DEVICE": 1, "GALLERY": "fibonacci:3000", "CLIP_PATH": tiny_clip,
        "OUTPUT": str(out), "SUMMARY": str(tmp_path / "s.gpkg"), "TRIP": True, "TRIP_SPEED": 120,
        "TRIP_TRACK": str(tmp_path / "track.gpkg")}, context=context)
    track = QgsVectorLayer(res["TRIP_TRACK"], "track", "ogr")
    assert track.isValid() and track.geometryType() == QgsWkbTypes.GeometryType.LineGeometry
    feats = list(track.getFeatures())
    assert len(feats) == 1 and feats[0]["photos"] == 3 and feats[0]["speed_kmh"] == 120
    assert (feats[0].geometry().asPolyline()[1].y()) == pytest.approx(45.76), "through the anchor's GPS"
    summary = {os.path.basename(f["source"]): f for f in QgsVectorLayer(res["SUMMARY"], "s", "ogr").getFeatures()}
    assert [summary[f"t{i}.jpg"]["trip_order"] for i in range(3)] == [1, 2, 3]
    assert summary["t1.jpg"]["trip_lat"] == pytest.approx(45.76)
    assert summary["untimed.jpg"]["trip_note"].startswith("no capture time")
    assert summary["t0.jpg"]["taken_at"] == "2026-05-01T10:00:00+02:00"


def test_trip_in_a_real_qgis_window(tmp_path, tiny_clip, cache_dir):
    """The desktop under Xvfb (scripts/screenshot_qgis.py --scenario trip): eight timed photos Lyon -> Geneva ->
    Milan (three with GPS) and one without a time; the track layer tops the run's group with a vertex per photo,
    and the table's Trip column holds the joint answers."""
    from test_real_window import shoot

    status = shoot(tmp_path, tiny_clip, "trip")
    assert status["trip_track"] and status["trip_vertices"] == 8 and status["trip_photos"] == 8, status
    assert status["tree"][1].endswith("trip track"), status["tree"]
    assert "Trip: 8 photos in time order, 1 without a time answered alone" in status["status"], status
    assert sum(c.startswith("#") for c in status["trip_cells"]) == 8 and status["trip_cells"][-1].startswith("alone")
