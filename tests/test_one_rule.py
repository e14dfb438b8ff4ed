"""One definition of each rule, pinned across the front doors (issue 21): the CLI, the dock and Processing list a
hostile folder identically; they resolve one cache folder and offer one device list; a GeoPackage layer one of them
wrote is ours to the others, and a user's layer of our name is refused by all of them."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import make_photo


@pytest.fixture()
def hostile_folder(tmp_path):
    """Links, a FIFO, duplicates (a link and a hard link to one photo), non-images, odd-case suffixes, a folder
    reached twice through a link and a link loop."""
    root = tmp_path / "hostile"
    (root / "sub").mkdir(parents=True)
    make_photo(root / "a.jpg", seed=1)
    make_photo(root / "B.JPG", seed=2)
    make_photo(root / "sub" / "c.png", seed=3)
    make_photo(root / "sub" / "D.Jpeg", seed=4)
    (root / "link_to_a.jpg").symlink_to(root / "a.jpg")
    os.link(root / "a.jpg", root / "hard_a.jpg")
    (root / "sub_again").symlink_to(root / "sub")
    (root / "loop").symlink_to(root)
    (root / "broken.jpg").symlink_to(root / "gone.jpg")
    os.mkfifo(root / "pipe.jpg")
    (root / "notes.txt").write_text("not a photo")
    (root / "photo.jpg.bak").write_bytes(b"x")
    return root


def test_one_hostile_folder_is_listed_identically_by_the_cli_the_dock_and_processing(hostile_folder, qgis_iface,
                                                                                     qgis_processing):
    from qgis.core import QgsProcessingContext

    from geoclip_qgis.core.io.photos import collect_photos
    from geoclip_qgis.gui.dock.photo_list import PhotoList
    from geoclip_qgis.processing.geolocate_photos import GeolocatePhotos

    cli = collect_photos([str(hostile_folder)], True, None)

    widget = PhotoList()
    widget.add([str(hostile_folder)])
    dock = widget.paths()
    widget.deleteLater()

    alg = GeolocatePhotos()
    alg.initAlgorithm({})
    processing_list = alg.photo_paths({"FOLDER": str(hostile_folder), "RECURSIVE": True}, QgsProcessingContext())

    assert cli == dock == processing_list, (cli, dock, processing_list)
    names = [os.path.relpath(p, hostile_folder) for p in cli]
    assert "a.jpg" in names and "B.JPG" in names and "sub/D.Jpeg" in names and "pipe.jpg" in names
    assert not {"link_to_a.jpg", "hard_a.jpg", "notes.txt"} & set(names), names  # each file once, photos only
    assert not any(n.startswith(("sub_again", "loop")) for n in names), names  # each real folder once


def test_the_plugin_and_the_engine_resolve_one_cache_folder(monkeypatch, tmp_path, qgis_iface):
    from geoclip_qgis.client import engine_client
    from geoclip_qgis.core.model import gallery
    from geoclip_qgis.shared import defaults

    monkeypatch.delenv(defaults.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert engine_client.default_cache_dir() == gallery.default_cache_dir() == tmp_path / "xdg" / "geoclip_qgis"
    monkeypatch.setenv(defaults.CACHE_ENV, str(tmp_path / "mine"))
    assert engine_client.default_cache_dir() == gallery.default_cache_dir() == tmp_path / "mine"
    # the same path platformdirs gives on every OS, so caches made before this rule are found
    platformdirs = pytest.importorskip("platformdirs")
    monkeypatch.delenv(defaults.CACHE_ENV)
    assert defaults.os_cache_dir() == __import__("pathlib").Path(
        platformdirs.user_cache_dir("geoclip_qgis", appauthor=False))
    cases = [("win32", {"LOCALAPPDATA": "C:/U/AppData/Local"}, "C:/U/AppData/Local/geoclip_qgis/Cache"),
             ("darwin", {"HOME": "/Users/ann"}, "/Users/ann/Library/Caches/geoclip_qgis")]
    for platform, env, want in cases:
        assert defaults.os_cache_dir(env, platform).as_posix() == want


def test_the_dock_settings_and_processing_offer_one_device_list(qgis_iface, qgis_processing, monkeypatch):
    from geoclip_qgis.gui import settings_dialog
    from geoclip_qgis.gui.dock.dock import GeolocationDock
    from geoclip_qgis.processing import base
    from geoclip_qgis.shared import defaults

    monkeypatch.setenv("GEOCLIP_ENGINE_PYTHON", sys.executable)
    dock = GeolocationDock(qgis_iface)
    try:
        in_dock = [dock.device.itemData(i) for i in range(dock.device.count())]
    finally:
        dock.close()
        dock.deleteLater()
    in_settings = [v for v, _ in settings_dialog.device_choices()][: len(defaults.DEVICES)]
    in_processing = base.DEVICES[1:]
    assert in_dock[: len(defaults.DEVICES)] == in_settings == list(defaults.DEVICE_VALUES)
    assert sorted(in_processing) == sorted(defaults.DEVICE_VALUES)  # the same devices
    assert base.DEVICES[1:4] == ["cpu", "cuda:0", "mps"], "saved Processing indices keep their meaning"
    assert "mps" in in_processing and "cuda:1" in in_dock


def test_a_layer_processing_wrote_is_ours_to_the_cli_and_a_users_layer_is_refused_by_all(tmp_path, qgis_iface,
                                                                                       qgis_processing):
    """The mark is one rule (shared/geopackage.py): Processing marks what it writes, the CLI's plan and the dock
    read the same mark, and none of them replaces a layer of our name that lacks it."""
    import numpy as np
    import shapely
    from pyogrio.raw import write
    from qgis.core import QgsProcessingException

    from geoclip_qgis.core.errors import InputError
    from geoclip_qgis.core.io.plan import IOPlan
    from geoclip_qgis.processing.base import GeoClipAlgorithm, gpkg_target
    from geoclip_qgis.shared import geopackage

    gpkg = tmp_path / "db.gpkg"
    pt = np.array([shapely.to_wkb(shapely.Point(1, 2))], dtype=object)
    for layer in ("my_parcels", "geoclip_predictions"):  # the user's own layer of our name
        write(str(gpkg), geometry=pt, field_data=[np.array([1])], fields=["a"], layer=layer, driver="GPKG",
              geometry_type="Point", crs="EPSG:4326")
    want = ["geoclip_predictions", "geoclip_predictions_places", "geoclip_predictions_summary"]

    plan = IOPlan()
    plan.write(gpkg, "output", "table", want)
    with pytest.raises(InputError, match="GeoCLIP did not write"):
        plan.check()  # the CLI and the worker
    with pytest.raises(QgsProcessingException, match="GeoCLIP did not write"):
        GeoClipAlgorithm().safe_destination({"OUTPUT": str(gpkg)}, "OUTPUT")  # Processing

    # what Processing does after its sink is closed: mark the layer it wrote; then it is ours everywhere
    assert gpkg_target(f"ogr:dbname='{gpkg}' table=\"geoclip_predictions\" (geom)") == (str(gpkg),
                                                                                      "geoclip_predictions")
    geopackage.mark(str(gpkg), "geoclip_predictions")
    plan = IOPlan()
    plan.write(gpkg, "output", "table", want)
    plan.check()
    GeoClipAlgorithm().safe_destination({"OUTPUT": str(gpkg)}, "OUTPUT")
    assert geopackage.is_ours(str(gpkg), "geoclip_predictions") and not geopackage.is_ours(str(gpkg), "my_parcels")
