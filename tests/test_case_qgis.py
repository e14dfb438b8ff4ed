"""Issue 25 in QGIS (pytest-qgis, headless, the real worker): the dock's hint and 'Limit to' / 'Near' fields and
Processing's HINT, LIMIT_TO, NEAR and RADIUS_KM reach the engine, and their answers say what was used."""

from __future__ import annotations

import pytest
from conftest import make_photo, wait_for

from geoclip_qgis.shared.geodesy import haversine_km

SANTIAGO = (-33.45, -70.66)


@pytest.fixture(scope="module")
def case_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("case")
    return [str(make_photo(folder / f"c{i}.jpg", seed=40 + i)) for i in range(2)]



def test_dock_sends_hint_and_constraint(qgis_iface, qgis_new_project, gui_settings, case_photos):
    from geoclip_qgis.gui.dock.dock import STORE_MEMORY, GeolocationDock

    dock = GeolocationDock(qgis_iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_MEMORY))
    dock.photos.add(case_photos)
    dock.case.hint.setText("snowy mountains")
    dock.case.hint_weight.setValue(0.5)
    dock.case.limit.setText("Chile; Argentina")
    dock.run()
    wait_for(lambda: dock.task is None, 240)
    rows = dock.run_state.rows
    assert len(rows) == 2, dock.status.text()
    assert {(r["hint"], r["hint_weight"], r["constraint"]) for r in rows} == {("snowy mountains", 0.5,
                                                                               "Chile, Argentina")}
    assert all(r["places"][0]["country"] in ("Chile", "Argentina") for r in rows)
    assert "Chile, Argentina" in dock.status.text() and "snowy mountains" in dock.status.text()
    summary = dock.run_state.layers.get("summary")
    if summary is not None:
        assert {f["constraint"] for f in summary.getFeatures()} == {"Chile, Argentina"}
    # a point and radius, typed
    dock.case.limit.clear()
    dock.case.hint.clear()
    dock.case.near.setText("-33.45, -70.66")
    dock.case.radius.setValue(500)
    dock.run()
    wait_for(lambda: dock.task is None, 240)
    for r in dock.run_state.rows:
        assert r["constraint"] == "within 500 km of -33.45, -70.66" and r["hint"] is None
        assert haversine_km(r["places"][0]["best_lat"], r["places"][0]["best_lon"], *SANTIAGO) <= 500
    # an unknown name: the run fails with the closest names; a point without a radius is said before any run
    dock.case.near.clear()
    dock.case.radius.setValue(0)
    dock.case.limit.setText("Chilie")
    dock.run()
    wait_for(lambda: dock.task is None, 240)
    assert "Chile" in dock.status.text() or "Chile" in " ".join(i.text() for i in dock._bar_items
                                                                if hasattr(i, "text")), dock.status.text()
    dock.case.limit.clear()
    dock.case.near.setText("10, 10")
    dock.run()
    assert dock.task is None and "radius" in dock.status.text()


def test_processing_passes_hint_and_constraints(geoclip_provider, tiny_clip, cache_dir, case_photos):
    import processing
    from qgis.core import QgsProcessingContext, QgsProject, QgsVectorLayer

    from geoclip_qgis.client.engine_client import shutdown_shared
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    common = {"TOP_K": 3, "DEVICE": 1, "GALLERY": "fibonacci:3000", "CLIP_PATH": tiny_clip, "OUTPUT": "memory:",
              "PLACES": "memory:", "SUMMARY": "memory:"}
    try:
        res = processing.run("geoclip:geolocate_photos", {**common, "FILES": case_photos, "HINT": "a harbour",
                                                          "HINT_WEIGHT": 2.0, "LIMIT_TO": "CL", "NEAR": "45.76, 4.84",
                                                          "RADIUS_KM": 300}, context=context)
        summary = res["SUMMARY"]
        summary = summary if isinstance(summary, QgsVectorLayer) else context.getMapLayer(summary)
        feats = list(summary.getFeatures())
        assert len(feats) == 2
        for f in feats:
            assert (f["hint"], f["hint_weight"]) == ("a harbour", 2.0)
            assert f["constraint"] == "Chile, within 300 km of 45.76, 4.84" and 0 <= f["aoi_outside"] < 1
            inside_chile = f["country"] == "Chile"
            assert inside_chile or haversine_km(f["lat"], f["lon"], 45.76, 4.84) <= 300 + 25
        res = processing.run("geoclip:geolocate_text", {**common, "QUERY": "old town", "LIMIT_TO": "BRA"},
                             context=context)
        summary = res["SUMMARY"]
        summary = summary if isinstance(summary, QgsVectorLayer) else context.getMapLayer(summary)
        assert [f["country"] for f in summary.getFeatures()] == ["Brazil"]
        from qgis.core import QgsProcessingException

        with pytest.raises(QgsProcessingException, match="radius"):
            processing.run("geoclip:geolocate_photos", {**common, "FILES": case_photos, "NEAR": "1, 2"},
                           context=context)
    finally:
        shutdown_shared()


def test_processing_likelihood_takes_hint_and_names(geoclip_provider, tiny_clip, cache_dir, case_photos, tmp_path):
    """The likelihood raster fuses the hint and keeps its regions inside the named country."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer, QgsVectorLayer

    from geoclip_qgis.client.engine_client import shutdown_shared
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    try:
        res = processing.run("geoclip:likelihood_raster", {
            "PHOTOS": case_photos, "EXTENT": "-80,-56,-50,-16 [EPSG:4326]", "RESOLUTION": 2.0, "DEVICE": 1,
            "CLIP_PATH": tiny_clip, "HINT": "a harbour", "HINT_WEIGHT": 1.5, "LIMIT_TO": "Chile", "LEVELS": "90",
            "OUTPUT": str(tmp_path / "lk.tif"), "REGIONS": str(tmp_path / "regions.gpkg")}, context=context)
        assert QgsRasterLayer(res["OUTPUT"], "lk").isValid()
        regions = QgsVectorLayer(res["REGIONS"], "r", "ogr")
        box = next(regions.getFeatures()).geometry().boundingBox()
        assert box.xMinimum() >= -80 and box.xMaximum() <= -65.5 and box.yMaximum() <= -16  # Chile's mainland box
    finally:
        shutdown_shared()
