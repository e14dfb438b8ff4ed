"""The Processing provider on real QGIS (pytest-qgis, headless): every algorithm through processing.run with the
real engine worker, the tiny CLIP and the real GeoCLIP weights; crash recovery and cancel keep finished rows."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from conftest import make_photo
from PIL import Image

pytestmark = pytest.mark.usefixtures("qgis_processing")


@pytest.fixture(scope="module")
def provider(geoclip_provider, cache_dir, tiny_clip):
    from geoclip_qgis.client.engine_client import shutdown_shared

    yield geoclip_provider
    shutdown_shared()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qgis photos ü")
    for i in range(3):
        make_photo(folder / f"p{i}.jpg", seed=10 + i)
    exif = Image.Exif()
    exif.get_ifd(0x8825).update({1: "N", 2: (46.0, 0.0, 0.0), 3: "E", 4: (8.0, 0.0, 0.0)})
    make_photo(folder / "with_gps.jpg", seed=20, exif=exif)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def common(tiny_clip, **extra):
    return {"TOP_K": 3, "DEVICE": 1, "GALLERY": "fibonacci:3000", "CLIP_PATH": tiny_clip, **extra}


def run(alg, params, feedback=None):
    import processing
    from qgis.core import QgsProcessingContext, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    return processing.run(f"geoclip:{alg}", params, feedback=feedback, context=context)


def test_provider_lists_its_algorithms(provider):
    names = sorted(a.name() for a in provider.algorithms())
    assert names == ["build_location_field", "case_report", "geolocate_photos", "geolocate_text", "likelihood_raster",
                     "location_features", "places_like_here"]
    for alg in provider.algorithms():
        assert len(alg.shortHelpString()) > 80, alg.name()
        # 24.9: a group, the README's section as help, and no command-line syntax in the help
        assert alg.group() and alg.groupId() in ("geolocation", "maps", "fields"), alg.name()
        assert alg.helpUrl().endswith("#in-qgis"), alg.name()
        for bad in ("`", "geoclip-qgis ", "--"):
            assert bad not in alg.shortHelpString(), (alg.name(), bad)


def test_geolocate_photos_folder(provider, photo_folder, tiny_clip, tmp_path):
    from qgis.core import QgsVectorLayer

    out, failed = tmp_path / "pred.gpkg", tmp_path / "failed.gpkg"
    res = run("geolocate_photos", common(tiny_clip, FOLDER=str(photo_folder), OUTPUT=str(out), FAILED=str(failed)))
    assert res["GEOLOCATED"] == 4 and res["FAILED_COUNT"] == 1
    layer = QgsVectorLayer(res["OUTPUT"], "pred", "ogr")
    assert layer.isValid() and layer.featureCount() == 12
    assert layer.crs().authid() == "EPSG:4326"
    names = [f.name() for f in layer.fields()]
    for field in ("photo", "rank", "probability", "lat", "lon", "exif_lat", "exif_lon", "error_km"):
        assert field in names
    gps_rows = [f for f in layer.getFeatures() if f["photo"].endswith("with_gps.jpg")]
    assert len(gps_rows) == 3 and all(f["exif_lat"] == pytest.approx(46.0) for f in gps_rows)
    assert all(f["error_km"] > 0 for f in gps_rows)
    bad = QgsVectorLayer(res["FAILED"], "failed", "ogr")
    rows = list(bad.getFeatures())
    assert len(rows) == 1 and rows[0]["photo"].endswith("broken.jpg") and "corrupt" in rows[0]["reason"]


def test_geolocate_photos_from_layer_field(provider, photo_folder, tiny_clip):
    from qgis.core import QgsFeature, QgsVectorLayer

    table = QgsVectorLayer("None?field=path:string", "paths", "memory")
    feats = []
    for name in ("p0.jpg", "p1.jpg", "p0.jpg"):  # a duplicate is geolocated once
        f = QgsFeature(table.fields())
        f["path"] = str(photo_folder / name)
        feats.append(f)
    table.dataProvider().addFeatures(feats)
    res = run("geolocate_photos", common(tiny_clip, LAYER=table, PATH_FIELD="path", OUTPUT="memory:",
                                         FAILED="memory:"))
    assert res["GEOLOCATED"] == 2


def test_geolocate_text_with_raster(provider, tiny_clip, tmp_path):
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    res = run("geolocate_text", common(tiny_clip, QUERY="snowy alpine village\nrice terraces",
                                       EXTENT="0,40,20,50 [EPSG:4326]", RESOLUTION=1.0,
                                       OUTPUT=str(tmp_path / "text.gpkg"), RASTER=str(tmp_path / "text.tif")))
    points = QgsVectorLayer(res["OUTPUT"], "t", "ogr")
    assert points.featureCount() == 6
    assert {f["query"] for f in points.getFeatures()} == {"snowy alpine village", "rice terraces"}
    raster = QgsRasterLayer(res["RASTER"], "r")
    assert raster.isValid() and raster.crs().authid() == "EPSG:4326"
    ext = raster.extent()
    assert (ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()) == pytest.approx((0, 20, 40, 50))
    assert (raster.width(), raster.height()) == (40, 30)


def test_likelihood_raster_fuses_photos(provider, photo_folder, tiny_clip, tmp_path):
    from qgis.core import QgsRasterLayer

    photos = [str(photo_folder / "p0.jpg"), str(photo_folder / "p1.jpg")]
    res = run("likelihood_raster", {"PHOTOS": photos, "EXTENT": "-10,30,30,60 [EPSG:4326]", "RESOLUTION": 0.5,
                                    "DEVICE": 1, "CLIP_PATH": tiny_clip, "OUTPUT": str(tmp_path / "lk.tif")})
    layer = QgsRasterLayer(res["OUTPUT"], "lk")
    assert layer.isValid() and (layer.width(), layer.height()) == (80, 60)
    assert -10 <= res["BEST_LON"] <= 30 and 30 <= res["BEST_LAT"] <= 60
    with pytest.raises(Exception, match="either photos or a text"):
        run("likelihood_raster", {"PHOTOS": photos, "TEXT": "a beach", "CLIP_PATH": tiny_clip,
                                  "OUTPUT": str(tmp_path / "x.tif")})


def test_location_features_and_places_like_here(provider, tmp_path):
    from qgis.core import QgsRasterLayer

    res = run("location_features", {"EXTENT": "-20,40,30,70 [EPSG:4326]", "RESOLUTION": 2.0, "MODE": 0,
                                    "OUTPUT": str(tmp_path / "pca.tif")})
    pca = QgsRasterLayer(res["OUTPUT"], "pca")
    assert pca.isValid() and pca.bandCount() == 3 and (pca.width(), pca.height()) == (30, 20)
    res = run("location_features", {"RESOLUTION": 10.0, "MODE": 1, "BANDS": "0,7",
                                    "OUTPUT": str(tmp_path / "bands.tif")})
    bands = QgsRasterLayer(res["OUTPUT"], "bands")
    assert bands.bandCount() == 2 and (bands.width(), bands.height()) == (36, 18)
    res = run("places_like_here", {"POINT": "2.35,48.85 [EPSG:4326]", "EXTENT": "-10,20,40,60 [EPSG:4326]",
                                   "RESOLUTION": 0.5, "OUTPUT": str(tmp_path / "like.tif")})
    like = QgsRasterLayer(res["OUTPUT"], "like")
    assert like.isValid() and like.crs().authid() == "EPSG:4326"


def test_build_location_field_then_likelihood_reads_it(provider, tiny_clip, tmp_path):
    from qgis.core import QgsRasterLayer

    res = run("build_location_field", {"RESOLUTION": 7.5, "DEVICE": 1})
    assert res["COMPLETE"] and Path(res["PATH"], "codes.int16").stat().st_size == 48 * 24 * 512 * 2
    # METHOD 3 is "field": it fails unless the field just built is found and read.
    out = run("likelihood_raster", {"TEXT": "a beach", "RESOLUTION": 7.5, "METHOD": 3, "DEVICE": 1,
                                    "CLIP_PATH": tiny_clip, "OUTPUT": str(tmp_path / "beach.tif")})
    layer = QgsRasterLayer(out["OUTPUT"], "beach")
    assert layer.isValid() and (layer.width(), layer.height()) == (48, 24)
    with pytest.raises(Exception, match="no location field at 2.5°"):
        run("likelihood_raster", {"TEXT": "a beach", "RESOLUTION": 2.5, "METHOD": 3, "DEVICE": 1,
                                  "CLIP_PATH": tiny_clip, "OUTPUT": str(tmp_path / "none.tif")})


class KillAfterFirstRow:
    """Kills the worker as soon as one photo's row is in, like a CUDA crash mid-batch would."""

    def __init__(self):
        from qgis.core import QgsProcessingFeedback

        class Feedback(QgsProcessingFeedback):
            def setProgressText(self, text):  # called with each finished photo's path
                super().setProgressText(text)
                from geoclip_qgis.client.engine_client import shared_client

                if text.endswith(".jpg") and not getattr(self, "killed", False):
                    self.killed = True
                    shared_client().kill()

        self.feedback = Feedback()


def _many_photos(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        make_photo(folder / f"m{i:02d}.jpg", seed=100 + i, size=(96, 96))
    return folder


def test_worker_killed_mid_job_keeps_rows_and_recovers(provider, tiny_clip, tmp_path):
    from qgis.core import QgsVectorLayer

    from geoclip_qgis.client.engine_client import shared_client

    folder = _many_photos(tmp_path / "many", 12)
    killer = KillAfterFirstRow()
    before = shared_client().restarts
    res = run("geolocate_photos", common(tiny_clip, FOLDER=str(folder), OUTPUT=str(tmp_path / "k.gpkg"),
                                         TOP_K=1), feedback=killer.feedback)
    assert killer.feedback.killed
    assert shared_client().restarts == before + 1
    kept = QgsVectorLayer(res["OUTPUT"], "k", "ogr").featureCount()
    assert 1 <= kept < 12, kept
    again = run("geolocate_photos", common(tiny_clip, FOLDER=str(folder), OUTPUT="memory:", TOP_K=1))
    assert again["GEOLOCATED"] == 12, "the next request restarts the worker"


def test_cancel_keeps_finished_rows(provider, tiny_clip, tmp_path):
    from qgis.core import QgsProcessingFeedback, QgsVectorLayer

    folder = _many_photos(tmp_path / "cancel", 12)

    class CancelEarly(QgsProcessingFeedback):
        def setProgressText(self, text):
            super().setProgressText(text)
            if text.endswith(".jpg"):
                self.cancel()

    res = run("geolocate_photos", common(tiny_clip, FOLDER=str(folder), OUTPUT=str(tmp_path / "c.gpkg"), TOP_K=1),
              feedback=CancelEarly())
    kept = QgsVectorLayer(res["OUTPUT"], "c", "ogr").featureCount()
    assert 1 <= kept < 12, kept


def test_resume_skips_photos_already_done(provider, tiny_clip, tmp_path):
    from qgis.core import QgsVectorLayer

    folder = _many_photos(tmp_path / "resume", 5)
    first = run("geolocate_photos", common(tiny_clip, FILES=[str(folder / "m00.jpg"), str(folder / "m01.jpg")],
                                           OUTPUT=str(tmp_path / "first.gpkg"), TOP_K=1))
    assert first["GEOLOCATED"] == 2
    previous = QgsVectorLayer(first["OUTPUT"], "first", "ogr")
    again = run("geolocate_photos", common(tiny_clip, FOLDER=str(folder), RESUME_FROM=previous, OUTPUT="memory:",
                                           TOP_K=1))
    assert again["GEOLOCATED"] == 3


def test_engine_not_installed_is_explained(provider, tmp_path, monkeypatch):
    from geoclip_qgis.client.engine_client import EngineClient, EngineNotInstalled, engine_python

    monkeypatch.setattr("geoclip_qgis.client.engine_client.setting", lambda key, default=None: default)
    monkeypatch.setenv("GEOCLIP_ENGINE_PYTHON", str(tmp_path / "nope" / "python"))
    monkeypatch.setattr("geoclip_qgis.client.engine_client.PLUGIN_DIR", tmp_path / "plugin")
    monkeypatch.setattr("geoclip_qgis.client.engine_client.managed_env_dir", lambda: tmp_path / "managed")
    with pytest.raises(EngineNotInstalled, match="not installed"):
        engine_python()
    with pytest.raises(EngineNotInstalled):
        EngineClient().call("info", {})


FAKE_WORKER = r'''
import json, os, sys
sys.stderr.buffer.write(b"\xc3\x28 bad bytes\n" * 20000)  # more than any pipe buffer: it must be drained
sys.stderr.buffer.write(b"\xff\xfe stderr that is not UTF-8 \x80\n")
sys.stderr.flush()
sys.stdout.buffer.write(b"\xff an unframed stdout line \xfe\n")
sys.stdout.flush()
print(json.dumps({"type": "ready", "protocol": 1}), flush=True)
req = json.loads(sys.stdin.readline())
env = {k: os.environ.get(k) for k in ("PYTHONUTF8", "PYTHONHOME", "PYTHONPATH")}
print(json.dumps({"type": "result", "id": req["id"], "data": env}), flush=True)
sys.stdin.readline()
'''


def test_worker_env_and_undecodable_output(tmp_path, monkeypatch):
    """QGIS's PYTHONHOME/PYTHONPATH do not reach the worker (a PYTHONHOME that would break it is set here), it runs in
    UTF-8 mode, and bytes that are not UTF-8 on its stdout and stderr neither kill a reader nor block the worker."""
    from geoclip_qgis.client.engine_client import PLUGIN_DIR, EngineClient

    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER, encoding="utf-8")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}"\n')
    python.chmod(0o755)
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "qgis-python-home"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "qgis-python-path"))
    client = EngineClient(python=str(python), startup_timeout=30)
    try:
        env = client.call("info", {}, timeout=60)  # the stdout reader got past the bad line to the answer
        assert env == {"PYTHONUTF8": "1", "PYTHONHOME": None, "PYTHONPATH": str(PLUGIN_DIR.parent)}
        deadline = time.monotonic() + 30  # the stderr reader is still alive and reaches the last line
        while "stderr that is not UTF-8" not in "\n".join(client.diagnostics()) and time.monotonic() < deadline:
            time.sleep(0.1)
        log = "\n".join(client.diagnostics())
        assert "stderr that is not UTF-8" in log and "\ufffd" in log
    finally:
        client.shutdown()


def test_map_tip_photo_links_match_qurl(qgis_new_project):
    """The map tip's <img src> is the file:// URL Qt itself makes, for POSIX, drive-letter and UNC paths, absolute or
    relative to the project folder."""
    from qgis.core import QgsExpression, QgsExpressionContext, QgsExpressionContextScope, QgsFeature
    from qgis.PyQt.QtCore import QUrl

    from geoclip_qgis.layers.results import PHOTO_URL, prediction_fields

    cases = [("/home/ann/a b.jpg", "", "/home/ann/a b.jpg"), ("C:\\Photos\\a.jpg", "", "C:/Photos/a.jpg"),
             ("\\\\server\\share\\a.jpg", "", "//server/share/a.jpg"), ("sub/a.jpg", "/proj", "/proj/sub/a.jpg"),
             ("sub/a.jpg", "\\\\server\\share\\proj", "//server/share/proj/sub/a.jpg"),
             ("a.jpg", "D:\\work", "D:/work/a.jpg")]
    for photo, home, local in cases:
        feature = QgsFeature(prediction_fields())
        feature["photo"] = photo
        scope = QgsExpressionContextScope()
        scope.setVariable("project_home", home)
        context = QgsExpressionContext()
        context.appendScope(scope)
        context.setFeature(feature)
        expression = QgsExpression(PHOTO_URL)
        assert expression.evaluate(context) == QUrl.fromLocalFile(local).toString(), (photo, home)
    assert QUrl.fromLocalFile("//server/share/a.jpg").host() == "server"


# ---- issue 14: answers (places with names, summary, area of interest, confidence regions) ------------------------
def _polygon_layer(wkt: str, crs: str, name: str = "aoi"):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    layer = QgsVectorLayer(f"Polygon?crs={crs}&field=name:string", name, "memory")
    f = QgsFeature(layer.fields())
    f.setGeometry(QgsGeometry.fromWkt(wkt))
    f["name"] = name
    layer.dataProvider().addFeatures([f])
    return layer


def test_geolocate_photos_places_and_summary(provider, photo_folder, tiny_clip, tmp_path):
    from qgis.core import QgsVectorLayer

    res = run("geolocate_photos", common(tiny_clip, FOLDER=str(photo_folder), OUTPUT=str(tmp_path / "o.gpkg"),
                                         PLACES=str(tmp_path / "places.gpkg"), SUMMARY=str(tmp_path / "s.gpkg")))
    preds = QgsVectorLayer(res["OUTPUT"], "p", "ogr")
    assert {"country", "region", "place", "place_km"} <= set(preds.fields().names())
    assert all(f["place"] for f in preds.getFeatures()), "raw predictions are named offline (country: not at sea)"
    places = QgsVectorLayer(res["PLACES"], "pl", "ogr")
    names = set(places.fields().names())
    assert {"rank", "probability", "n_points", "spread_km", "country", "place", "label"} <= names
    per_photo = {}
    for f in places.getFeatures():
        per_photo.setdefault(f["source"], []).append(f)
        assert f["label"] and f["n_points"] >= 1
    assert len(per_photo) == 4 and all(1 <= len(v) <= 3 for v in per_photo.values())
    for feats in per_photo.values():  # distinct places: no two at the same position
        assert len({(round(f["lat"], 4), round(f["lon"], 4)) for f in feats}) == len(feats)
        assert sum(f["probability"] for f in feats) <= 1.0 + 1e-6
    summary = QgsVectorLayer(res["SUMMARY"], "s", "ogr")
    rows = {f["source"].split("/")[-1]: f for f in summary.getFeatures()}
    assert len(rows) == 5, "one summary row per photo, the unreadable one included"
    assert rows["broken.jpg"]["status"] == "failed" and rows["broken.jpg"]["message"]
    ok = rows["p0.jpg"]
    assert ok["status"] == "ok" and ok["label"] and 0 < ok["probability"] <= 1 and ok["place"]
    assert rows["with_gps.jpg"]["error_km"] is not None


def test_area_of_interest_in_another_crs_restricts_text_answers(provider, tiny_clip, tmp_path):
    """An AOI layer in EPSG:3857 (Iberia) is unioned, sent in EPSG:4326, and every answer lies inside it."""
    from qgis.core import QgsVectorLayer

    # Iberia, W,S,E,N = -10,36,3,44, in web-mercator metres; two overlapping polygons (unioned)
    aoi = _polygon_layer("POLYGON((-1113195 4300621, 333958 4300621, 333958 5465442, -1113195 5465442, "
                         "-1113195 4300621))", "EPSG:3857")
    aoi.dataProvider().addFeatures(list(_polygon_layer(
        "POLYGON((-500000 4500000, 300000 4500000, 300000 5000000, -500000 5000000, -500000 4500000))",
        "EPSG:3857").getFeatures()))
    res = run("geolocate_text", common(tiny_clip, QUERY="a sunny beach\nold town", AOI=aoi, GALLERY="fibonacci:20000",
                                       OUTPUT="memory:", PLACES="memory:", SUMMARY="memory:"))
    from qgis.core import QgsProcessingUtils  # noqa: F401 - outputs are layers in the context

    def layer(value):
        return value if isinstance(value, QgsVectorLayer) else QgsVectorLayer(value, "x", "ogr")

    for key in ("OUTPUT", "PLACES"):
        feats = list(layer(res[key]).getFeatures())
        assert feats, key
        for f in feats:
            assert -10.05 <= f["lon"] <= 3.05 and 35.95 <= f["lat"] <= 44.05, (key, f["lat"], f["lon"])
    summary = list(layer(res["SUMMARY"]).getFeatures())
    assert len(summary) == 2
    assert all(0.0 < f["aoi_outside"] < 1.0 for f in summary), "the share outside the AOI is reported"


def test_likelihood_regions_and_aoi(provider, tiny_clip, tmp_path):
    from qgis.core import QgsProcessingFeedback, QgsRasterLayer, QgsVectorLayer

    class Log(QgsProcessingFeedback):
        lines: list = []

        def pushInfo(self, info):  # noqa: N802
            self.lines.append(info)
            super().pushInfo(info)

    feedback = Log()
    aoi = _polygon_layer("POLYGON((-10 36, 30 36, 30 60, -10 60, -10 36))", "EPSG:4326")
    res = run("likelihood_raster", {"TEXT": "a beach", "EXTENT": "-20,30,40,65 [EPSG:4326]", "RESOLUTION": 1.0,
                                    "DEVICE": 1, "CLIP_PATH": tiny_clip, "AOI": aoi, "LEVELS": "50, 90",
                                    "OUTPUT": str(tmp_path / "lk.tif"), "REGIONS": str(tmp_path / "regions.gpkg")},
              feedback)
    assert QgsRasterLayer(res["OUTPUT"], "lk").isValid()
    regions = QgsVectorLayer(res["REGIONS"], "r", "ogr")
    assert regions.isValid() and regions.geometryType() == 2  # polygons
    feats = sorted(regions.getFeatures(), key=lambda f: f["level"])
    assert [round(f["level"], 2) for f in feats] == [0.5, 0.9]
    assert 0 < feats[0]["area_km2"] < feats[1]["area_km2"]
    for f in feats:  # inside the AOI
        box = f.geometry().boundingBox()
        assert box.xMinimum() >= -10.01 and box.xMaximum() <= 30.01 and box.yMinimum() >= 35.99
    text = "\n".join(Log.lines)
    assert "90% confidence region:" in text and "km²" in text and "Area of interest:" in text


def test_existing_geopackage_keeps_the_users_layers(provider, tiny_clip, tmp_path):
    """Issue 11 through Processing: QGIS's own sink would replace user.gpkg whole; ours adds or replaces our
    layers only, and a second run replaces them instead of appending."""
    from osgeo import ogr
    from qgis.core import QgsCoordinateTransformContext, QgsVectorFileWriter, QgsVectorLayer

    gpkg = tmp_path / "user.gpkg"
    parcels = _polygon_layer("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))", "EPSG:4326", "my_parcels")
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName, opts.layerName = "GPKG", "my_parcels"
    err = QgsVectorFileWriter.writeAsVectorFormatV3(parcels, str(gpkg), QgsCoordinateTransformContext(), opts)
    assert err[0] == QgsVectorFileWriter.WriterError.NoError

    def layers():
        ds = ogr.Open(str(gpkg))
        out = {ds.GetLayer(i).GetName(): ds.GetLayer(i).GetFeatureCount() for i in range(ds.GetLayerCount())}
        ds = None
        return out

    for _ in range(2):
        res = run("geolocate_text", common(tiny_clip, QUERY="a beach", OUTPUT=str(gpkg), PLACES=str(gpkg),
                                           SUMMARY=str(gpkg)))
        got = layers()
        assert got == {"my_parcels": 1, "geoclip_predictions": 3, "geoclip_predictions_places": got[
            "geoclip_predictions_places"], "geoclip_predictions_summary": 1}, got
        assert QgsVectorLayer(res["OUTPUT"], "o", "ogr").featureCount() == 3
    parcel = next(QgsVectorLayer(f"{gpkg}|layername=my_parcels", "p", "ogr").getFeatures())
    assert parcel["name"] == "my_parcels" and parcel.geometry().area() == pytest.approx(1.0)


def test_gpkg_layer_uri_quotes_names():
    from geoclip_qgis.processing.base import gpkg_layer_uri

    assert gpkg_layer_uri("/a/b's.gpkg", 'x"y') == "ogr:dbname='/a/b''s.gpkg' table=\"x\"\"y\" (geom)"


def test_processing_sends_the_canonical_engine_options(provider, tiny_clip):
    """Processing's engine options are engine_client.engine_defaults (the dock's), with the run's overrides."""
    from qgis.core import QgsProcessingContext

    from geoclip_qgis.client.engine_client import canonical_engine_options, engine_defaults
    from geoclip_qgis.processing.geolocate_text import GeolocateText

    alg = GeolocateText()
    alg.initAlgorithm()
    ctx = QgsProcessingContext()
    assert alg.engine_options({"DEVICE": 0}, ctx) == engine_defaults()
    opts = alg.engine_options({"DEVICE": 1, "CLIP_PATH": tiny_clip, "GALLERY": "fibonacci:3000"}, ctx)
    assert opts == canonical_engine_options({**engine_defaults(), "device": "cpu", "clip_path": tiny_clip,
                                             "gallery": "fibonacci:3000"})
    assert set(opts) == {"weights", "clip_path", "cache_dir", "device", "precision", "gallery", "batch_size"}
    from geoclip_qgis.processing import base

    bf16 = base.PRECISIONS.index("bf16")
    assert alg.engine_options({"PRECISION": bf16}, ctx)["precision"] == "bf16"  # 22: chosen per run, like the device
    assert alg.engine_options({"PRECISION": 0}, ctx)["precision"] == engine_defaults()["precision"]


def test_processing_says_what_the_engine_ran_on_and_why(provider, tiny_clip):
    """Issue 22: the precision is chosen per machine, so a run says which it used and why (the worker's `ran_on`),
    in the algorithm's log, as the dock's status line does."""
    from qgis.core import QgsProcessingFeedback

    class Log(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):  # noqa: N802 - QGIS's name
            self.lines.append(info)
            super().pushInfo(info)

    log = Log()
    run("geolocate_text", common(tiny_clip, QUERY="a beach", OUTPUT="memory:"), log)
    said = [line for line in log.lines if line.startswith("Ran on ")]
    assert said and said[0].startswith("Ran on CPU in fp32: "), log.lines
    assert len(said[0]) > len("Ran on CPU in fp32: ") + 10, "the reason is said"


def test_a_queued_run_says_what_it_waits_for_and_can_be_cancelled(provider):
    """Issue 12 point 2 in Processing: a run behind another job says so in the log, and a cancel while it waits
    ends it without reaching the worker."""
    import threading

    from qgis.core import QgsProcessingFeedback

    from geoclip_qgis.client.engine_client import shared_client
    from geoclip_qgis.processing.geolocate_text import GeolocateText

    class Log(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):  # noqa: N802
            self.lines.append(info)

    client, feedback, out = shared_client(), Log(), {}
    client.lock.acquire()
    client.running_op = "build_field"
    try:
        t = threading.Thread(target=lambda: out.update(res=GeolocateText().run_engine(
            "geolocate_text", {"queries": ["a beach"]}, feedback)))
        t.start()
        deadline = time.monotonic() + 10
        while not feedback.lines and time.monotonic() < deadline:
            time.sleep(0.02)
        assert feedback.lines == ["Waiting for the field build to finish…"]
        feedback.cancel()
        t.join(5)
        assert out["res"] == {"cancelled": True, "started": False}
    finally:
        client.running_op = None
        client.lock.release()


def test_two_outputs_of_one_run_get_distinct_layer_names(provider, tiny_clip, tmp_path):
    """Issue 24.9: the outputs of one run, both into one GeoPackage and loaded on completion, are named by what they
    hold, never twice the same (the file's name)."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingOutputLayerDefinition, QgsProject

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    gpkg = str(tmp_path / "both.gpkg")
    params = common(tiny_clip, QUERY="snowy alpine village")
    for key in ("OUTPUT", "PLACES"):
        params[key] = QgsProcessingOutputLayerDefinition(gpkg, QgsProject.instance())
    processing.run("geoclip:geolocate_text", params, context=context)
    names = [context.layerToLoadOnCompletionDetails(d).name for d in context.layersToLoadOnCompletion()]
    assert len(names) == 2 and len(set(names)) == 2 and all(names), names
