"""GUI widgets on real QGIS (pytest-qgis, headless): settings, dock runs, photo viewer, map tool, manager."""

from __future__ import annotations

import ast
import os
import re
import sys
import time
from pathlib import Path

import pytest
from conftest import make_photo, wait_for
from PIL import Image

GUI = Path(__file__).resolve().parents[1] / "geoclip_qgis" / "gui"


@pytest.fixture(autouse=True)
def delete_widgets_after_each_test():
    """Widgets made without a parent are deleted here, while QGIS is alive, not by Python's exit-time GC."""
    from qgis.PyQt import sip
    from qgis.PyQt.QtWidgets import QApplication

    before = set(map(id, QApplication.topLevelWidgets()))
    yield
    for w in QApplication.topLevelWidgets():
        if id(w) not in before and not sip.isdeleted(w):
            w.close()
            sip.delete(w)
    QApplication.processEvents()



def test_settings_dialog_round_trip(qgis_iface, gui_settings, tmp_path):
    from geoclip_qgis.gui import settings_dialog as settings
    from geoclip_qgis.gui.settings_dialog import SettingsDialog

    dlg = SettingsDialog(cuda_reason="CPU, because this torch build has no CUDA support")
    assert dlg.device.currentData() == "cpu" and "no CUDA" in dlg.cuda_note.text()
    dlg.gallery.setText("fibonacci:3000")
    dlg.device.setCurrentIndex(dlg.device.findData("cpu"))
    dlg.save()
    opts = settings.engine_options()
    assert opts["device"] == "cpu" and opts["gallery"] == "fibonacci:3000" and opts["clip_path"]
    assert settings.redact(os.path.expanduser("~") + "/x") == "~/x"
    asked = SettingsDialog()  # no reason given: the dialog asks the engine itself
    wait_for(lambda: "Asking" not in asked.cuda_note.text(), 120)
    assert "CUDA is not usable" in asked.cuda_note.text() or "CUDA is usable" in asked.cuda_note.text()
    assert asked.precision_note.text().startswith("Automatic precision here: fp32")  # the suite pins fp32


def geoclip_layers():
    from qgis.core import QgsProject

    return [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("GeoCLIP")]


def run_tree(group):
    """The run group's children, top to bottom, as (kind, layer)."""
    return [(node.layer().customProperty("geoclip/kind") or node.layer().name(), node.layer())
            for node in group.children()]


def test_dock_text_query_adds_layer_and_rows(qgis_iface, qgis_new_project, gui_settings):
    """Issue 12.8/12.11, issue 14: one group per run with honest, distinct names; a places layer (named places in
    the table) and the raw top-k kept as a second, unticked layer; table and map selection in sync."""
    from qgis.core import QgsProject

    from geoclip_qgis.gui.dock.dock import STORE_MEMORY, GeolocationDock

    dock = GeolocationDock(qgis_iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_MEMORY))
    dock.query.setText("snowy alpine village")
    dock.top_k.setValue(4)
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.run()
    assert not dock.run_button.isEnabled()
    wait_for(lambda: dock.task is None, 240)
    run = dock.run_state
    assert set(run.layers) == {"places", "ranks"}, (run.layers, dock.status.text())
    places, ranks = run.layers["places"], run.layers["ranks"]
    assert ranks.featureCount() == 4 and 1 <= places.featureCount() <= 4
    # issue 22: the line says what ran it (short), its tooltip why that precision (the tests pin fp32)
    assert dock.status.text().endswith(" (CPU, fp32)."), dock.status.text()
    assert dock.status.toolTip().startswith("Ran on CPU in fp32: "), dock.status.toolTip()
    assert run.group.name() == "GeoCLIP · “snowy alpine village”"
    assert places.name() == "GeoCLIP · “snowy alpine village” · places"
    assert [k for k, _ in run_tree(run.group)] == ["places", "ranks"]
    assert not run.group.findLayer(ranks.id()).itemVisibilityChecked(), "raw top-k kept, unticked"
    assert dock.table.rowCount() == places.featureCount()
    row0 = run.rows[0]["places"][0]
    assert dock.table.item(0, 3).text() and dock.table.item(0, 3).text() != "", "the place is named"
    assert places.mapTipTemplate() and "source" in places.mapTipTemplate()
    assert abs(float(dock.table.item(0, 4).text()) - row0["probability"]) < 1e-4
    dock.raw.setChecked(True)
    assert dock.table.rowCount() == 4, "the raw top-k on demand"
    dock.raw.setChecked(False)
    # 12.11: a row selects its point; a point selects its row.
    dock.table.selectRow(0)
    fid = dock.table.item(0, 0).data(dock_roles()[1])[1]
    assert places.selectedFeatureIds() == [fid]
    assert qgis_iface.activeLayer() is places, "the photo tab follows the current layer"
    if places.featureCount() > 1:
        last = dock.table.rowCount() - 1
        places.selectByIds([dock.table.item(last, 0).data(dock_roles()[1])[1]])
        assert sorted({i.row() for i in dock.table.selectedItems()}) == [last]
    before = qgis_iface.mapCanvas().extent()
    dock.zoom_to_row(0)
    assert qgis_iface.mapCanvas().extent() != before
    assert dock.run_button.isEnabled()
    # The same query again: a second group and layers with distinct names, nothing merged into the first.
    dock.run()
    wait_for(lambda: dock.task is None, 240)
    names = [lyr.name() for lyr in geoclip_layers()]
    assert len(names) == len(set(names)) == 4, names
    assert dock.run_state.group.name() == "GeoCLIP · “snowy alpine village” (2)"
    assert len(QgsProject.instance().layerTreeRoot().findGroups()) == 2


def dock_roles():
    from geoclip_qgis.gui.dock.dock import ROLE_FEATURE, ROLE_POINT

    return ROLE_POINT, ROLE_FEATURE


def test_dock_photos_with_a_bad_one_and_raster(qgis_iface, qgis_new_project, gui_settings, tmp_path):
    """Photos + raster (made cheap: a 4° raster over a small extent, 10° per-photo regions) — issue 12.6/12.8/12.9/
    12.12 and issue 14: places, summary (failed photo included), regions under the points, raster at the bottom
    with the stretched range in its legend, a compact failure list, results kept in a GeoPackage."""
    from osgeo import ogr
    from qgis.core import QgsRasterLayer

    from geoclip_qgis.gui.dock.dock import STORE_GPKG, GeolocationDock, results_gpkg
    from geoclip_qgis.layers.results import legend_labels

    folder = tmp_path / "dock photos"
    for i in range(2):
        make_photo(folder / f"d{i}.jpg", seed=50 + i)
    (folder / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    dock = GeolocationDock(qgis_iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_GPKG))
    dock.photos.add([str(folder), str(folder / "d0.jpg")])
    assert dock.photos.count() == 3, "folder expanded, duplicate ignored"
    dock.top_k.setValue(2)
    dock.raster.setChecked(True)
    dock.likelihood_resolution, dock.likelihood_extent, dock.region_res = 4.0, [-40, -40, 40, 40], 10.0
    dock.run()
    wait_for(lambda: dock.task is None and dock.run_button.isEnabled(), 300)
    run = dock.run_state
    assert len(run.rows) == 2 and len(run.failures) == 1 and "bad.jpg" in dock.failures[0], dock.status.text()
    assert dock.failure_toggle.isVisibleTo(dock) and "1 photo" in dock.failure_toggle.text()
    assert not dock.failure_list.isVisibleTo(dock), "collapsed until asked"
    dock.failure_toggle.setChecked(True)
    assert dock.failure_list.topLevelItemCount() == 1 and dock.failure_list.isVisibleTo(dock)
    assert run.group.name() == "GeoCLIP · 2 of 3 photos", run.group.name()
    kinds = [k for k, _ in run_tree(run.group)]
    assert kinds[:3] == ["places", "summary", "ranks"] and kinds[3] == "regions", kinds
    raster = run_tree(run.group)[-1][1]
    assert isinstance(raster, QgsRasterLayer) and raster.isValid() and raster.crs().authid() == "EPSG:4326"
    labels = legend_labels(raster)
    assert len(set(labels)) >= 2 and labels[0] != labels[-1], labels
    assert float(labels[-1]) > float(labels[0]) >= 0 and float(labels[-1]) > 0, labels  # not "0 … 0"
    summary = run.layers["summary"]
    feats = list(summary.getFeatures())
    assert summary.featureCount() == 3 and sorted(f["status"] for f in feats) == ["failed", "ok", "ok"]
    ok = [f for f in feats if f["status"] == "ok"]
    assert all(f["label"] and f["probability"] > 0 for f in ok)
    assert all(f["region90_km2"] and f["region90_km2"] > 0 for f in ok), "90 % region per photo"
    regions = run.layers["regions"]
    assert {round(f["level"], 2) for f in regions.getFeatures()} == {0.5, 0.9}
    assert "90 % region" in dock.status.text(), dock.status.text()
    assert dock.table.rowCount() == run.layers["places"].featureCount()
    assert not dock.table.item(0, 0).icon().isNull(), "photo thumbnail shown"
    assert dock.table.item(0, 6).text().endswith(("part", "parts")), "90 % region in the table"
    # 12.12: kept in a GeoPackage, our own marked layers; memory layers gone.
    path = results_gpkg()
    assert all(lyr.providerType() == "ogr" for k, lyr in run.layers.items()), run.layers
    ds = ogr.Open(path)
    ours = [ds.GetLayer(i) for i in range(ds.GetLayerCount())]
    assert len(ours) >= 4 and all(lyr.GetMetadataItem("GEOCLIP_QGIS") == "1" for lyr in ours)
    ours = ds = None  # close our GDAL handle on the GeoPackage before QGIS's layers on it go (next test's reset)


def test_kept_results_never_replace_a_users_layer(qgis_iface, qgis_new_project, gui_settings, tmp_path):
    """12.12: the GeoPackage next to the project gets new layers of ours; a user's layer in it stays as it was."""
    from osgeo import ogr, osr
    from qgis.core import QgsProject

    from geoclip_qgis.gui.dock.dock import STORE_GPKG, GeolocationDock, results_gpkg

    project = tmp_path / "proj" / "p.qgz"
    project.parent.mkdir()
    QgsProject.instance().setFileName(str(project))
    QgsProject.instance().write()
    path = results_gpkg()
    assert Path(path).parent == project.parent
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    mine = ds.CreateLayer("my_field_notes", srs, ogr.wkbPoint)
    mine.CreateField(ogr.FieldDefn("note", ogr.OFTString))
    f = ogr.Feature(mine.GetLayerDefn())
    f.SetField("note", "keep me")
    f.SetGeometry(ogr.CreateGeometryFromWkt("POINT (1 2)"))
    mine.CreateFeature(f)
    ds = None
    dock = GeolocationDock(qgis_iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_GPKG))
    dock.query.setText("harbour with fishing boats")
    dock.top_k.setValue(2)
    dock.run()
    wait_for(lambda: dock.task is None, 240)
    ds = ogr.Open(path)
    names = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    assert "my_field_notes" in names and len(names) == 3, names
    notes = ds.GetLayerByName("my_field_notes")
    assert notes.GetFeatureCount() == 1 and notes.GetNextFeature().GetField("note") == "keep me"
    assert notes.GetMetadataItem("GEOCLIP_QGIS") is None
    assert "Kept in" in dock.status.text()
    notes = ds = None  # close our GDAL handle on the GeoPackage before QGIS's layers on it go (next test's reset)
    QgsProject.instance().setFileName("")


def test_cancel_from_the_dock_keeps_rows(qgis_iface, qgis_new_project, gui_settings, tmp_path):
    """12.1/12.5: Cancel mid-run ends the job within seconds, rows done are kept, the bar shows what was done."""
    from geoclip_qgis.gui.dock.dock import STORE_MEMORY, GeolocationDock

    n = 160  # enough batches that a quiet machine is still mid-run when the first row has arrived
    folder = tmp_path / "many"
    for i in range(n):
        make_photo(folder / f"c{i:03d}.jpg", seed=300 + i, size=(80, 80))
    dock = GeolocationDock(qgis_iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_MEMORY))
    dock.photos.add([str(folder)])
    dock.top_k.setValue(1)
    dock.run()
    task = dock.task  # held from the start: a job that ends before the cancel lands clears dock.task
    wait_for(lambda: dock.rows >= 1, 240)
    dock.cancel()
    wait_for(lambda: dock.task is None, 60)
    assert 1 <= dock.layer.featureCount() <= n and dock.layer.featureCount() == dock.rows
    if dock.rows < n:
        assert task.cancel_seconds is not None and task.cancel_seconds < 15, task.cancel_seconds
        print(f"cancel geolocate_images: {task.cancel_seconds:.2f} s")
        assert "cancelled after" in dock.status.text(), dock.status.text()
        assert dock.progress.value() < dock.progress.maximum(), "the bar shows what was done, not 100 %"
        assert dock.run_state.group.name() == f"GeoCLIP · {dock.rows} of {n} photos"


def test_cancel_during_the_likelihood_adds_no_raster(qgis_iface, qgis_new_project, gui_settings):
    """12.1: Cancel while the grid is scored: the job ends within seconds and no raster is added."""
    from qgis.core import QgsProject, QgsRasterLayer

    from geoclip_qgis.gui.dock.dock import STORE_MEMORY, GeolocationDock

    dock = GeolocationDock(qgis_iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_MEMORY))
    dock.query.setText("desert canyon at sunset")
    dock.top_k.setValue(2)
    dock.raster.setChecked(True)
    dock.likelihood_resolution = 0.05  # a world at 0.05° (26 M cells): far longer than the cancel takes
    dock.run()
    wait_for(lambda: dock.task is not None and dock.task.op == "likelihood" and dock.task.started_running, 240)
    wait_for(lambda: any(w in dock.status.text() for w in ("scoring", "map cells scored", "encoding")), 120)
    time.sleep(1.0)
    task = dock.task
    dock.cancel()
    wait_for(lambda: dock.task is None, 60)
    print(f"cancel likelihood: {task.cancel_seconds:.2f} s")
    assert task.cancel_seconds < 15, task.cancel_seconds
    rasters = [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsRasterLayer)]
    assert rasters == [], "a cancelled job adds nothing"
    assert "no raster added" in dock.status.text() and "nothing added" not in dock.status.text()
    assert dock.run_state.layers["places"].featureCount() >= 1, "the points of the finished step stay"


def test_a_waiting_job_says_so_and_never_runs_when_cancelled(qgis_iface, gui_settings, tmp_path):
    """12.2: a job behind another says what it waits for; cancelled while waiting, it never reaches the worker."""
    from qgis.core import QgsApplication

    from geoclip_qgis.gui import settings_dialog as settings
    from geoclip_qgis.gui.tasks import EngineTask

    slow = EngineTask("GeoCLIP likelihood raster", "likelihood",
                      {"engine": settings.engine_options(), "text": "a lighthouse", "resolution": 0.05,
                       "out": str(tmp_path / "slow.tif")})
    waiting = EngineTask("GeoCLIP: text", "geolocate_text",
                         {"engine": settings.engine_options(), "queries": ["a lighthouse"], "top_k": 1})
    texts, results, rows = [], [], []
    waiting.progressText.connect(texts.append)
    waiting.rowReady.connect(rows.append)
    waiting.done.connect(results.append)
    slow_done = []
    slow.done.connect(slow_done.append)
    slow.failed.connect(slow_done.append)
    QgsApplication.taskManager().addTask(slow)
    wait_for(lambda: slow.started_running is not None, 240)
    QgsApplication.taskManager().addTask(waiting)
    wait_for(lambda: any("Waiting for" in t for t in texts), 60)
    assert any("Waiting for the likelihood map to finish…" in t for t in texts), texts
    waiting.cancel()
    wait_for(lambda: bool(results), 30)
    assert results[0] == {"cancelled": True, "started": False} and rows == []
    assert waiting.started_running is None, "a cancelled waiting job never runs"
    slow.cancel()
    wait_for(lambda: bool(slow_done), 60)
    print(f"cancel likelihood (task): {slow.cancel_seconds:.2f} s")
    assert slow.cancel_seconds < 15


def test_status_and_error_texts():
    """12.5/24.4: errors show their fix once; a crash never says "exit code None" nor promises details it lacks;
    no torch -> the manager."""
    from geoclip_qgis.client.messages import crash_error
    from geoclip_qgis.gui.dock.dock import error_text

    t = error_text({"code": "input", "message": "bad photo", "hint": "use a JPEG"})
    assert t == "bad photo\nuse a JPEG"
    assert error_text({"code": "input", "message": "bad photo (use a JPEG)", "hint": "use a JPEG"}).count("JPEG") == 1
    crash = error_text(crash_error(None, ""))
    assert "None" not in crash and "details" not in crash.lower() and "Log Messages" in crash, crash
    assert "exit code -11" in error_text(crash_error(-11, "Segfault"))
    assert crash_error(-11, "Segfault")["details"] == "Segfault"
    for err in ({"code": "not_installed", "message": "x"},
                {"code": "internal", "message": "ModuleNotFoundError: No module named 'torch'"}):
        assert "Engine and models" in error_text(err) and "Install engine" in error_text(err)


def test_result_fields_mirror_the_engine():
    """One definition of the result tables: layers/results.py uses shared/schema.py's lists, as core/io/results.py
    does."""
    from geoclip_qgis.core.io import results as export
    from geoclip_qgis.layers.results import (
        LAYER_MARK,
        PLACE_FIELDS,
        PREDICTION_FIELDS,
        REGION_FIELDS,
        SUMMARY_FIELDS,
    )

    assert PLACE_FIELDS == export.PLACE_FIELDS and SUMMARY_FIELDS == export.SUMMARY_FIELDS
    assert REGION_FIELDS == export.REGION_FIELDS and LAYER_MARK == export.LAYER_MARK
    names = [n for n, _ in PREDICTION_FIELDS]
    assert {n for n, _ in export.PREDICTION_FIELDS} - {"source", "kind"} <= set(names)


def test_photo_viewer_respects_exif_orientation(qgis_iface, tmp_path):
    from geoclip_qgis.gui.photo_viewer import PhotoViewer

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°
    path = make_photo(tmp_path / "rotated.jpg", size=(200, 100), exif=exif)
    viewer = PhotoViewer(qgis_iface)
    assert viewer.show_photo(str(path))
    assert (viewer.pixmap.width(), viewer.pixmap.height()) == (100, 200)
    assert not viewer.show_photo(str(tmp_path / "missing.jpg"))
    assert "not found" in viewer.image.text()


def test_places_like_here_tool(qgis_iface, qgis_new_project, gui_settings):
    """12.7/16.3: a task with progress and Cancel; the view's size in pixels goes to the engine, whose one rule
    (core.field.choose_resolution, as Processing's "auto") picks the resolution."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle

    from geoclip_qgis.core.maps.field_choice import choose_resolution
    from geoclip_qgis.gui.map_tool import PlacesLikeHereTool, raster_request

    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    canvas.resize(240, 160)  # a small view: ~80 x 53 cells at 3 px a cell, cheap on a loaded machine
    canvas.setExtent(QgsRectangle(-10, 35, 20, 55))
    tool = PlacesLikeHereTool(qgis_iface)
    size = canvas.mapSettings().outputSize()
    req = raster_request(canvas.extent(), canvas.mapSettings().destinationCrs(), (size.width(), size.height()))
    assert req["resolution"] == "auto" and req["view_px"] == [size.width(), size.height()], req
    expected = choose_resolution(req["extent"], *req["view_px"])  # no field is built in the test cache
    cheap = {**req, "resolution": expected}
    tool.clicked(QgsPointXY(2.35, 48.85), None)
    assert tool.task is not None and tool.bar_item is not None, "progress and Cancel in the message bar"
    progress, texts = [], []
    tool.task.progressChanged.connect(progress.append)
    tool.task.progressText.connect(texts.append)
    try:
        wait_for(lambda: tool.task is None, 300)
    except AssertionError:
        raise AssertionError(f"still running: {texts[-5:]} {progress[-3:]}") from None
    rasters = [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsRasterLayer)]
    assert len(rasters) == 1 and rasters[0].name().startswith("Places like"), tool.last_result
    assert abs(rasters[0].rasterUnitsPerPixelX() - cheap["resolution"]) < 1e-6, cheap
    assert rasters[0].extent().xMinimum() <= cheap["extent"][0] + cheap["resolution"], "the visible extent"
    assert progress, "the task reports progress"
    # Cancelled at once: nothing added.
    canvas.setExtent(QgsRectangle(-180, -90, 180, 90))
    tool.clicked(QgsPointXY(2.35, 48.85), None)
    task = tool.task
    tool.cancel()
    wait_for(lambda: tool.task is None, 60)
    assert task.cancel_seconds < 15
    rasters = [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsRasterLayer)]
    assert len(rasters) == 1, "a cancelled click adds no raster"


def test_places_like_here_extent_in_projected_crs():
    """12.10: the visible area of a projected view, exactly: valid lat/lon, the world when the view holds it, the
    pole and every longitude when a pole is visible, and every visible point inside the box."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsPointXY,
        QgsProject,
        QgsRectangle,
    )

    from geoclip_qgis.gui.map_tool import visible_extent_4326

    def covers(ext, view, crs):
        to = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
        for i in range(0, 31):
            for j in range(0, 31):
                p = to.transform(QgsPointXY(view.xMinimum() + view.width() * (i + 0.5) / 31.5,
                                            view.yMinimum() + view.height() * (j + 0.5) / 31.5))
                assert ext[0] - 1e-6 <= p.x() <= ext[2] + 1e-6 and ext[1] - 1e-6 <= p.y() <= ext[3] + 1e-6, (p, ext)

    merc = QgsCoordinateReferenceSystem("EPSG:3857")
    world = QgsRectangle(-25e6, -30e6, 25e6, 30e6)  # more than the whole Mercator world
    assert visible_extent_4326(world, merc) == [-180.0, -90.0, 180.0, 90.0]
    europe = QgsRectangle(-1.2e6, 4.2e6, 2.6e6, 7.5e6)
    ext = visible_extent_4326(europe, merc)
    assert -90 <= ext[1] < ext[3] <= 90 and -180 <= ext[0] < ext[2] <= 180
    assert 34 < ext[1] < 36 and 55 < ext[3] < 56, ext
    covers(ext, europe, merc)
    tall = QgsRectangle(-2e6, -3e7, 2e6, 3e7)  # beyond Mercator's latitudes: clipped, never below -90
    ext = visible_extent_4326(tall, merc)
    assert ext[1] >= -90 and ext[3] <= 90 and ext[3] - ext[1] > 160, ext
    laea = QgsCoordinateReferenceSystem("EPSG:3035")
    north = QgsRectangle(3.0e6, 5.5e6, 5.5e6, 8.5e6)  # holds the North Pole (x 4321000, y 7369716)
    ext = visible_extent_4326(north, laea)
    assert ext[3] == 90 and ext[0] == -180 and ext[2] == 180, ext
    covers(ext, north, laea)
    alps = QgsRectangle(4.0e6, 2.4e6, 4.6e6, 2.9e6)
    ext = visible_extent_4326(alps, laea)
    assert ext[2] - ext[0] < 15 and ext[3] < 60, ext
    covers(ext, alps, laea)


def test_manager_reports_engine_and_models(qgis_iface, gui_settings):
    from geoclip_qgis.gui.manager.dialog import ManagerDialog, nvidia_driver

    dlg = ManagerDialog()
    wait_for(lambda: bool(dlg.info), 120)
    assert re.search(r"torch \d+\.\d+", dlg.labels["engine"].text()), dlg.labels["engine"].text()
    assert "✔" in dlg.labels["clip"].text() and "✔" in dlg.labels["weights"].text()
    assert "no CUDA" in dlg.labels["device"].text() or "CUDA" in dlg.labels["device"].text()
    report = dlg.diagnostics()
    assert '"torch": "' in report and os.path.expanduser("~") + "/" not in report
    wait_for(lambda: dlg.driver_known, 60)
    assert dlg.driver == nvidia_driver()


def test_manager_builds_the_world_field(qgis_iface, gui_settings, monkeypatch):
    """The manager reports the field missing, builds it through the worker and then reports it built."""
    from geoclip_qgis.gui.manager import field_panel
    from geoclip_qgis.gui.manager.dialog import ManagerDialog

    monkeypatch.setattr(field_panel, "WORLD_FIELD_RES", 10.0)  # the real 0.1° build is the benchmark's job
    dlg = ManagerDialog()
    wait_for(lambda: "not built" in dlg.labels["field"].text(), 120)
    assert dlg.build_field.isEnabled()
    dlg.build_field.click()
    wait_for(lambda: "✔" in dlg.labels["field"].text(), 120)
    assert "World location field built." in dlg.log.toPlainText()
    assert not dlg.build_field.isEnabled() and dlg.progress.value() == 100


def test_every_gui_string_is_translatable():
    """Widgets get their text through tr(): no bare string literal in a user-facing call."""
    calls = {"QLabel", "QPushButton", "QCheckBox", "QAction", "setText", "setWindowTitle", "setPlaceholderText",
             "setToolTip", "addRow", "pushInfo", "pushWarning", "pushCritical", "appendPlainText"}
    bad = []
    for path in sorted(GUI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in calls:
                    for arg in node.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.strip() \
                                and arg.value not in ("GeoCLIP",):
                            bad.append(f"{path.name}:{node.lineno} {name}({arg.value!r})")
    assert not bad, "\n".join(bad)


def test_redaction_of_windows_and_posix_homes():
    import json

    from geoclip_qgis.gui.settings_dialog import redact

    home = "C:\\Users\\Ann"
    text = json.dumps({"a": home + "\\AppData\\x", "b": "c:/users/ann/y", "c": "C:\\Users\\Anna\\z"})
    out = redact(text + " " + home + "\\AppData C:/USERS/ANN", home)
    assert "Ann\\" not in out and "ann/" not in out and "ANN" not in out, out
    assert "Anna" in out, "another user's folder is not the home folder"
    assert redact("/home/ann/x /home/anna/y", "/home/ann") == "~/x /home/anna/y"
    assert redact("/x/y", "/") == "/x/y"


def test_install_plan_per_platform(monkeypatch):
    """CUDA build where nvidia-smi shows a driver (Linux, Windows), PyPI's wheel on macOS (MPS), CPU otherwise; the
    venv is made from QGIS's own Python, found from sys.prefix when sys.executable is the QGIS binary."""
    from geoclip_qgis.gui.manager import dialog as manager

    venv = Path("/tmp/venv")
    linux_gpu, linux_cpu = manager.install_steps(venv, "550.54", "linux"), manager.install_steps(venv, None, "linux")
    mac, win = manager.install_steps(venv, None, "darwin"), manager.install_steps(venv, "551.0", "win32")
    assert "cu126" in " ".join(linux_gpu[2][2]) and "cu126" in " ".join(win[2][2])
    assert "whl/cpu" in " ".join(linux_cpu[2][2])
    assert "--index-url" not in mac[2][2] and "MPS" in mac[2][0]
    assert linux_gpu[2][2][3] == manager.torch_requirement() and manager.torch_requirement().startswith("torch")
    assert linux_gpu[0][2][:2] == ["-m", "venv"]

    prefix = Path(sys.base_prefix)
    monkeypatch.setattr(sys, "executable", str(prefix / "bin" / "qgis"))  # as inside QGIS: not a Python
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(sys, "exec_prefix", str(prefix))
    found = Path(manager.base_python())
    assert found.name.startswith("python") and found.parent == prefix / "bin", found


def test_driver_probe_runs_off_the_gui_thread(qgis_iface):
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QThread

    from geoclip_qgis.gui.manager import install_plan as manager  # where the probe and nvidia_driver live

    threads, answers = [], []
    original = manager.nvidia_driver

    def probe():
        threads.append(QThread.currentThread() == QgsApplication.instance().thread())
        return original()

    manager.nvidia_driver = probe
    try:
        task = manager.DriverProbe()
        task.found.connect(answers.append)
        QgsApplication.taskManager().addTask(task)
        wait_for(lambda: bool(answers), 60)
    finally:
        manager.nvidia_driver = original
    assert threads == [False] and (answers[0] is None or isinstance(answers[0], str))


def test_gui_import_failure_is_reported(qgis_iface, monkeypatch):
    """initGui no longer swallows a broken GUI: the message bar says so, Processing still loads."""
    import geoclip_qgis.gui.toolbar as gui_main
    from geoclip_qgis.plugin import GeoClipPlugin

    class Bar:
        messages = []

        def pushMessage(self, *args):  # noqa: N802 - Qt naming
            self.messages.append(args)

    class Iface:
        bar = Bar()

        def messageBar(self):  # noqa: N802
            return self.bar

    def broken(self, iface):
        raise ImportError("cannot import name 'QAction'")

    monkeypatch.setattr(gui_main.GeoClipGui, "__init__", broken)
    plugin = GeoClipPlugin(Iface())
    plugin.initGui()
    try:
        assert plugin.gui is None and plugin.provider is not None
        assert "QAction" in Iface.bar.messages[0][1]
    finally:
        plugin.unload()


def test_translation_for_the_users_language(qgis_iface):
    from qgis.core import QgsSettings
    from qgis.PyQt.QtCore import QCoreApplication

    from geoclip_qgis.i18n import install_translator, tr, user_language

    settings = QgsSettings()
    before = settings.value("locale/userLocale", None)
    settings.setValue("locale/userLocale", "fr_FR")
    try:
        assert user_language() == "fr"
        translator = install_translator()
        assert translator is not None and tr("Run") == "Lancer" and tr("Places like here") == "Lieux semblables"
        QCoreApplication.removeTranslator(translator)
    finally:
        if before is None:
            settings.remove("locale/userLocale")
        else:
            settings.setValue("locale/userLocale", before)
    assert tr("Run") == "Run"
    assert install_translator("xx") is None, "no translation shipped: QGIS's English stays"


def test_tests_write_settings_to_a_temporary_profile():
    from conftest import QGIS_PROFILE
    from qgis.core import QgsSettings

    path = Path(QgsSettings().fileName()).resolve()
    assert path.is_relative_to(QGIS_PROFILE.resolve()) and not path.is_relative_to(GUI.parents[1]), path
    assert os.environ["QGIS_CUSTOM_CONFIG_PATH"] == str(QGIS_PROFILE)
