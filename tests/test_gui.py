"""GUI widgets on real QGIS (pytest-qgis, headless): settings, dock runs, photo viewer, map tool, manager."""

from __future__ import annotations

import ast
import os
import re
import sys
import time
from pathlib import Path

import pytest
from conftest import make_photo
from PIL import Image

GUI = Path(__file__).resolve().parents[1] / "geoclip_qgis" / "gui"


def wait_for(predicate, timeout: float = 120.0) -> None:
    from qgis.core import QgsApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        QgsApplication.processEvents()
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the GUI")
        time.sleep(0.02)


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


@pytest.fixture(scope="module")
def gui_settings(tiny_clip, cache_dir):
    from geoclip_qgis.engine_client import shutdown_shared
    from geoclip_qgis.gui import settings

    os.environ["GEOCLIP_ENGINE_PYTHON"] = sys.executable
    values = {"clip_path": tiny_clip, "gallery": "fibonacci:3000", "device": "cpu", "cache_dir": str(cache_dir),
              "engine_python": sys.executable, "weights": ""}
    for k, v in values.items():
        settings.put(k, v)
    yield values
    shutdown_shared()
    from qgis.core import QgsSettings

    QgsSettings().remove("geoclip")  # settings persist for the session: leave none behind


def test_settings_dialog_round_trip(qgis_iface, gui_settings, tmp_path):
    from geoclip_qgis.gui import settings
    from geoclip_qgis.gui.settings import SettingsDialog

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


def test_dock_text_query_adds_layer_and_rows(qgis_iface, qgis_new_project, gui_settings):
    from qgis.core import QgsProject

    from geoclip_qgis.gui.dock import GeolocationDock

    dock = GeolocationDock(qgis_iface)
    dock.query.setText("snowy alpine village")
    dock.top_k.setValue(4)
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.run()
    assert not dock.run_button.isEnabled()
    wait_for(lambda: dock.task is None)
    assert dock.table.rowCount() == 4, dock.status.text()
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("GeoCLIP")]
    assert len(layers) == 1 and layers[0].featureCount() == 4
    assert layers[0].mapTipTemplate() and "photo" in layers[0].mapTipTemplate()
    before = qgis_iface.mapCanvas().extent()
    dock.zoom_to_row(0)
    assert qgis_iface.mapCanvas().extent() != before
    assert dock.run_button.isEnabled()


def test_dock_photos_with_a_bad_one_and_raster(qgis_iface, qgis_new_project, gui_settings, tmp_path):
    from qgis.core import QgsProject, QgsRasterLayer

    from geoclip_qgis.gui.dock import GeolocationDock

    folder = tmp_path / "dock photos"
    for i in range(2):
        make_photo(folder / f"d{i}.jpg", seed=50 + i)
    (folder / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    dock = GeolocationDock(qgis_iface)
    dock.photos.add([str(folder), str(folder / "d0.jpg")])
    assert dock.photos.count() == 3, "folder expanded, duplicate ignored"
    dock.top_k.setValue(2)
    dock.raster.setChecked(True)
    dock.run()
    wait_for(lambda: dock.task is None and dock.run_button.isEnabled(), 180)
    assert dock.table.rowCount() == 4
    assert len(dock.failures) == 1 and "bad.jpg" in dock.failures[0]
    rasters = [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsRasterLayer)]
    assert len(rasters) == 1, dock.status.text()
    assert rasters[0].isValid() and rasters[0].crs().authid() == "EPSG:4326"
    assert not dock.table.item(0, 0).icon().isNull(), "photo thumbnail shown"


def test_cancel_from_the_dock_keeps_rows(qgis_iface, qgis_new_project, gui_settings, tmp_path):
    from geoclip_qgis.gui.dock import GeolocationDock

    folder = tmp_path / "many"
    for i in range(16):
        make_photo(folder / f"c{i:02d}.jpg", seed=300 + i, size=(80, 80))
    dock = GeolocationDock(qgis_iface)
    dock.photos.add([str(folder)])
    dock.top_k.setValue(1)
    dock.run()
    wait_for(lambda: dock.rows >= 1)
    dock.cancel()
    wait_for(lambda: dock.task is None)
    assert 1 <= dock.layer.featureCount() <= 16 and dock.layer.featureCount() == dock.rows


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
    from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle

    from geoclip_qgis.gui.map_tool import PlacesLikeHereTool, raster_request

    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    canvas.setExtent(QgsRectangle(-10, 35, 20, 55))
    tool = PlacesLikeHereTool(qgis_iface)
    tool.clicked(QgsPointXY(2.35, 48.85), None)
    wait_for(lambda: tool.task is None)
    rasters = [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsRasterLayer)]
    assert len(rasters) == 1 and rasters[0].name().startswith("Places like")
    req = raster_request(QgsRectangle(-200, -100, 200, 100))
    assert req["extent"] == [-180, -90, 180, 90]


def test_manager_reports_engine_and_models(qgis_iface, gui_settings):
    from geoclip_qgis.gui.manager import ManagerDialog, nvidia_driver

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
    from geoclip_qgis.gui import manager
    from geoclip_qgis.gui.manager import ManagerDialog

    monkeypatch.setattr(manager, "WORLD_FIELD_RES", 10.0)  # the real 0.1° build is the benchmark's job
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

    from geoclip_qgis.gui.settings import redact

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
    from geoclip_qgis.gui import manager

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

    from geoclip_qgis.gui import manager

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
    import geoclip_qgis.gui.main as gui_main
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
