"""The case report and the 'why' overlay in QGIS (pytest-qgis, headless): the shipped template's atlas over a summary
layer made from real engine rows (a case page, then a page per answered photo, each bound to its photo, overlay,
places and EXIF), the PDF exported in a QgsTask, hint and trip columns shown only when present, the photo viewer's
toggle, the dock's 'Why' and 'Report (PDF)…', and Processing's 'Case report (PDF)'."""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_photo, wait_for
from PIL import Image


def _exif(lat: float, lon: float) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Fujifilm", "X-T3"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:20:30"
    exif.get_ifd(0x8825).update({1: "N", 2: (lat, 0.0, 0.0), 3: "E", 4: (lon, 0.0, 0.0)})
    return exif


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", path.read_bytes()))


@pytest.fixture(scope="module")
def run_rows(engine, tmp_path_factory):
    """Real worker-like rows: three photos (one with EXIF GPS, time and camera), overlays, one broken file."""
    folder = tmp_path_factory.mktemp("report photos")
    paths = [make_photo(folder / "gps.jpg", seed=31, size=(400, 300), exif=_exif(45.0, 7.0)),
             make_photo(folder / "plain.jpg", seed=32, size=(300, 400)), folder / "broken.jpg"]
    paths[2].write_bytes(b"\xff\xd8 broken")
    opts = replace(engine.answers, saliency_dir=str(folder / "why"))
    return [r.to_dict() for r in engine.iter_predict_images([str(p) for p in paths], 3, options=opts)]


def _layers(rows, extra=None):
    from qgis.core import QgsField, QgsVectorLayer

    from geoclip_qgis.layers.results import place_features, place_fields, summary_feature, summary_fields
    from geoclip_qgis.qt_compat import field_type

    summary = QgsVectorLayer("Point?crs=EPSG:4326", "summary", "memory")
    summary.dataProvider().addAttributes(summary_fields().toList())
    for name in extra or {}:
        summary.dataProvider().addAttributes([QgsField(name, field_type("QString"))])
    summary.updateFields()
    feats = []
    for row in rows:
        f = summary_feature(row, summary.fields())
        for name, value in (extra or {}).items():
            f[name] = value
        feats.append(f)
    summary.dataProvider().addFeatures(feats)
    places = QgsVectorLayer("Point?crs=EPSG:4326", "places", "memory")
    places.dataProvider().addAttributes(place_fields().toList())
    places.updateFields()
    answered = [r for r in rows if not r.get("error")]
    places.dataProvider().addFeatures([f for r in answered for f in place_features(r, places.fields())])
    return summary, places


META = {"version": "9.9.9", "model": "CLIP test + GeoCLIP, fp32", "weights_sha256": {"mlp.pth": "ab" * 32}}


def test_the_atlas_binds_each_page_to_its_photo(qgis_iface, qgis_new_project, run_rows):
    from qgis.core import QgsProject

    from geoclip_qgis.layers.report.design import ITEM_IDS
    from geoclip_qgis.layers.report.layout import CaseLayout

    summary, places = _layers(run_rows)
    case = CaseLayout(QgsProject.instance(), summary, places, None, META)
    assert case.pages == 3  # the case page + the two answered photos (the broken file is on the case page)
    assert all(case.layout.itemById(i) is not None for i in ITEM_IDS)
    atlas = case.layout.atlas()
    assert atlas.beginRender() and atlas.count() == 3
    atlas.seekTo(0)
    case_text = case.layout.itemById("case_text").currentText()
    assert "2 photo(s) answered, 1 could not be read" in case_text
    for page, row in zip((1, 2), run_rows[:2]):
        atlas.seekTo(page)
        feature = atlas.layout().reportContext().feature()
        assert feature["photo"] == row["source"] and feature["overlay"] == row["saliency"]
        assert Path(feature["overlay"]).is_file()
        table = case.layout.itemById("places").multiFrame()
        table.refreshAttributes()
        assert len(table.contents()) == len(row["places"])  # only this photo's places
        fingerprint = case.layout.itemById("fingerprint").currentText()
        digest = hashlib.sha256(Path(row["source"]).read_bytes()).hexdigest()
        assert digest[:32] in fingerprint and digest[32:] in fingerprint and "9.9.9" in fingerprint
        assert "abababab" in fingerprint
        context = case.layout.itemById("context").currentText()
        assert "none, the pixels alone" in context and "Trip" not in context
        if row["gps"]:
            assert "2024-05-01 10:20:30" in context and "Fujifilm X-T3" in context
            assert re.search(r"45\.00000, 7\.00000 — [\d,]+\.\d km from the answer", context)
    atlas.endRender()


def test_the_pdf_is_exported_in_a_task(qgis_iface, qgis_new_project, run_rows, tmp_path):
    from qgis.core import QgsApplication, QgsProject

    from geoclip_qgis.gui.report import ReportTask
    from geoclip_qgis.layers.report.layout import CaseLayout

    summary, places = _layers(run_rows)
    case = CaseLayout(QgsProject.instance(), summary, places, None, META)
    out = tmp_path / "case.pdf"
    out.write_bytes(b"the earlier report")
    task = ReportTask(case, str(out))
    said = []
    task.exported.connect(lambda ok, path, error: said.append((ok, path, error)))
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: said, 120)
    assert said[0][0], said
    assert out.read_bytes()[:5] == b"%PDF-" and pdf_pages(out) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.pdf"], "no temporary file left"


def test_a_cancelled_or_failed_export_leaves_the_earlier_pdf_and_the_users_files(qgis_iface, qgis_new_project,
                                                                                  run_rows, tmp_path, monkeypatch):
    """The one atomic writer (shared/atomic.py) under both front doors' export: the earlier PDF survives a cancel
    and a failure byte for byte; a user's own file with the name the old exporters used as their fixed temporary
    ('case.pdf.partial.pdf', deleted by them) is never touched; a temporary a killed export left is swept."""
    import subprocess
    import sys

    from qgis.core import QgsFeedback, QgsLayoutExporter, QgsProject

    from geoclip_qgis.layers.report.layout import CaseLayout
    from geoclip_qgis.shared.atomic import STALE_S

    summary, places = _layers(run_rows)
    case = CaseLayout(QgsProject.instance(), summary, places, None, META)
    out = tmp_path / "case.pdf"
    out.write_bytes(b"the earlier report")
    users = tmp_path / "case.pdf.partial.pdf"
    users.write_bytes(b"the analyst's own file")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".case.{int(dead.stdout)}.0123abcd.tmp.pdf"  # what a killed export leaves
    stale.write_bytes(b"%PDF- torn")
    an_hour_ago = time.time() - STALE_S - 60  # the sweep spares temporaries written within the hour
    os.utime(stale, (an_hour_ago, an_hour_ago))
    cancelled = QgsFeedback()
    cancelled.cancel()
    ok, error = case.export_pdf(str(out), cancelled)
    assert not ok and error
    assert out.read_bytes() == b"the earlier report" and users.read_bytes() == b"the analyst's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.pdf", "case.pdf.partial.pdf"], "swept, and no new one"
    real = QgsLayoutExporter.exportToPdf

    def half_then_fail(atlas, path, settings, feedback=None):  # the exporter writes part of a page, then fails
        Path(path).write_bytes(b"%PDF-1.7 half a page")
        return QgsLayoutExporter.ExportResult.FileError, "disk full"

    monkeypatch.setattr(QgsLayoutExporter, "exportToPdf", half_then_fail)
    ok, error = case.export_pdf(str(out))
    assert not ok and error == "disk full"
    assert out.read_bytes() == b"the earlier report" and users.read_bytes() == b"the analyst's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.pdf", "case.pdf.partial.pdf"]
    monkeypatch.setattr(QgsLayoutExporter, "exportToPdf", real)
    ok, error = case.export_pdf(str(out))
    assert ok, error
    assert pdf_pages(out) == 3 and users.read_bytes() == b"the analyst's own file"


def test_hint_and_trip_columns_show_only_when_present(qgis_iface, qgis_new_project, run_rows):
    from qgis.core import QgsProject

    from geoclip_qgis.layers.report.layout import CaseLayout

    extra = {"hint": "signs in Cyrillic", "constraint": "country: Chile", "trip_note": "pulled by its neighbours",
             "taken_at": "2024-05-02T08:00:00+02:00"}
    summary, places = _layers(run_rows, extra)
    case = CaseLayout(QgsProject.instance(), summary, places, None, META)
    atlas = case.layout.atlas()
    atlas.beginRender()
    atlas.seekTo(1)
    context = case.layout.itemById("context").currentText()
    atlas.endRender()
    for shown in ("signs in Cyrillic", "country: Chile", "Trip: trip note: pulled by its neighbours",
                  "2024-05-02T08:00:00+02:00"):
        assert shown in context, context


def test_photo_viewer_toggle_shows_the_overlay(qgis_iface, qgis_new_project, run_rows):
    from qgis.core import QgsProject

    from geoclip_qgis.gui.photo_viewer import PhotoViewer

    summary, places = _layers(run_rows)
    QgsProject.instance().addMapLayers([summary, places])
    viewer = PhotoViewer(qgis_iface)
    row = run_rows[0]
    place = next(iter(places.getFeatures()))  # a places feature: the overlay is found through the summary layer
    assert viewer.show_photo(row["source"], place)
    assert viewer.why.isVisibleTo(viewer) and not viewer.why.isChecked()
    with Image.open(row["source"]) as im:
        photo_size = im.size
    assert (viewer.pixmap.width(), viewer.pixmap.height()) == photo_size
    viewer.why.setChecked(True)
    with Image.open(row["saliency"]) as ov:
        assert (viewer.pixmap.width(), viewer.pixmap.height()) == ov.size
    viewer.why.setChecked(False)
    assert (viewer.pixmap.width(), viewer.pixmap.height()) == photo_size
    assert not viewer.show_photo("", None) and not viewer.why.isVisibleTo(viewer)  # a text query: no photo



def test_dock_why_then_report(qgis_iface, qgis_new_project, gui_settings, tmp_path):
    """The dock end to end: 'Why' ticked -> overlays beside the results, named in the summary layer; then the
    report of that run (the file dialog answered in code) -> one PDF with a page per photo plus the case page."""
    from geoclip_qgis.gui.dock.dock import STORE_MEMORY, GeolocationDock
    from geoclip_qgis.gui.report import run_layers_for_report, start_report

    for i in range(2):
        make_photo(tmp_path / f"w{i}.jpg", seed=60 + i)
    dock = GeolocationDock(qgis_iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_MEMORY))
    dock.photos.add([str(tmp_path / "w0.jpg"), str(tmp_path / "w1.jpg")])
    assert not dock.why.isChecked()  # off by default: nothing computed unless asked
    dock.why.setChecked(True)
    dock.raster.setChecked(True)  # the run's likelihood raster goes under the report's maps
    dock.likelihood_resolution, dock.likelihood_extent, dock.region_res = 4.0, [-40, -40, 40, 40], 10.0
    dock.run()
    wait_for(lambda: dock.task is None and dock.run_button.isEnabled(), 300)
    summary = dock.run_state.layers["summary"]
    overlays = [f["saliency"] for f in summary.getFeatures()]
    assert len(overlays) == 2 and all(o and Path(o).is_file() for o in overlays), overlays
    assert all(len(f["sha256"] or "") == 64 for f in summary.getFeatures())
    layers = run_layers_for_report(dock.run_state, None)
    assert layers["likelihood"] is not None and layers["places"] is not None
    out = tmp_path / "dock case.pdf"
    start_report(dock, summary, str(out), layers)
    wait_for(lambda: dock.report_job is None, 180)
    assert out.is_file() and pdf_pages(out) == 3, dock.status.text()
    assert "Case report written" in dock.status.text()


def run_algorithm(name: str, params: dict, context):
    """One of our algorithms run as Processing runs it (checked parameters, the algorithm's own thread flags), made
    from the provider's list without the shared registry: another module's provider there is not ours to touch."""
    from qgis.core import QgsProcessingFeedback

    from geoclip_qgis.processing.provider import ALGORITHMS

    alg = next(cls for cls in ALGORITHMS if cls._name == name)().create()
    ok, why = alg.checkParameterValues(params, context)
    assert ok, why
    results, ok = alg.run(params, context, QgsProcessingFeedback())
    assert ok
    return results


def test_processing_case_report(qgis_processing, qgis_new_project, run_rows, tiny_clip, cache_dir, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProject

    from geoclip_qgis.client.engine_client import shutdown_shared

    summary, places = _layers(run_rows)
    QgsProject.instance().addMapLayers([summary, places])
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = tmp_path / "processing case.pdf"
    try:
        res = run_algorithm("case_report", {"SUMMARY": summary, "PLACES": places, "DEVICE": 1, "OUTPUT": str(out)},
                            context)
    finally:
        shutdown_shared()
    assert res["OUTPUT"] == str(out) and pdf_pages(out) == 3
    text = out.read_bytes()
    assert text[:5] == b"%PDF-"


def test_processing_geolocate_photos_saliency_only_when_asked(qgis_processing, qgis_new_project, tiny_clip,
                                                             cache_dir, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProject, QgsVectorLayer

    from geoclip_qgis.client.engine_client import shutdown_shared

    make_photo(tmp_path / "photos" / "a.jpg", seed=70)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    common = {"FOLDER": str(tmp_path / "photos"), "TOP_K": 2, "DEVICE": 1, "GALLERY": "fibonacci:3000",
              "CLIP_PATH": tiny_clip, "OUTPUT": "memory:", "SUMMARY": "memory:"}
    try:
        plain = run_algorithm("geolocate_photos", common, context)
        why = run_algorithm("geolocate_photos", {**common, "SALIENCY": str(tmp_path / "why")}, context)
    finally:
        shutdown_shared()

    def overlays(result):
        layer = result["SUMMARY"]
        layer = layer if isinstance(layer, QgsVectorLayer) else context.getMapLayer(layer)
        return [f["saliency"] for f in layer.getFeatures()]

    assert overlays(plain) in ([None], [""])  # without the folder, no map is made
    (made,) = overlays(why)
    assert Path(made).is_file() and Path(made).parent == tmp_path / "why"
