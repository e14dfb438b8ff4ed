"""Issue 24: what an analyst sees in the window — the results table's columns, cancelled tasks, the view after a
run, singular/plural, removed layers, messages. Fast: rows are made here, no engine runs (the real window is
tests/test_real_window.py)."""

from __future__ import annotations

import threading

import pytest
from conftest import wait_for

LONG_PLACE = "Saint-Rémy-de-Provence, Provence-Alpes-Côte d'Azur, France (12 km)"


def worker_row(source: str = "snowy alpine village", n: int = 4, kind: str = "text", region: bool = True,
               spread: float = 30.0) -> dict:
    """A worker row as the engine sends it (places and raw top-k), made up."""
    places = [{"rank": i + 1, "probability": 0.5 / (i + 1), "lat": 40.0 + spread * (i % 2) - spread / 2 * (i // 2),
               "lon": -60.0 + spread * i, "label": LONG_PLACE if i == 0 else f"Place {i}", "country": "France",
               "n_points": 3} for i in range(n)]
    preds = [dict(p, gallery_index=i) for i, p in enumerate(places)]
    row = {"source": source, "kind": kind, "places": places, "predictions": preds}
    if region:
        row["region"] = {"area_km2": 1234567.0, "parts": 3}
    return row


@pytest.fixture(autouse=True)
def _widgets_deleted():
    from qgis.PyQt import sip
    from qgis.PyQt.QtWidgets import QApplication

    before = set(map(id, QApplication.topLevelWidgets()))
    yield
    for w in QApplication.topLevelWidgets():
        if id(w) not in before and not sip.isdeleted(w):
            w.close()
            sip.delete(w)
    QApplication.processEvents()


# ---- 1. the results table ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", [340, 420, 560])
def test_results_table_fits_the_dock_and_elides_in_the_middle(qgis_app, width):
    """24.1: every visible column fits the viewport (no horizontal scrolling), the place keeps a readable width
    once the 90 % region has text, and the full name is in the tooltip; a next run without regions gets its width
    back (nothing carries over)."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtWidgets import QApplication

    from geoclip_qgis.gui.dock.results_table import MIN_TEXT, ResultsTable

    table = ResultsTable()
    table.resize(width, 300)
    table.show()
    table.add_result(worker_row(), raw=False)
    QApplication.processEvents()
    assert table.textElideMode() == Qt.TextElideMode.ElideMiddle
    assert not table.isColumnHidden(6), "the region column shows once it has text"
    assert table.columns_width() <= table.viewport().width(), (table.columns_width(), table.viewport().width())
    assert table.horizontalScrollBar().maximum() == 0, "no horizontal scrolling"
    with_region = table.columnWidth(3)
    assert with_region >= MIN_TEXT, with_region
    assert table.item(0, 3).toolTip().startswith(LONG_PLACE), "the full name on hover"
    assert table.item(0, 6).text() == "1.2 M km², 3 parts"
    table.clear_rows()
    table.add_result(worker_row(region=False), raw=False)
    QApplication.processEvents()
    assert table.isColumnHidden(6) and table.isColumnHidden(5), "empty columns take no room"
    assert table.columnWidth(3) > with_region, "the next run's place column is not the last run's narrow one"
    assert table.columns_width() <= table.viewport().width()


def test_share_gives_small_columns_what_they_need():
    from geoclip_qgis.gui.dock.results_table import share

    assert share(300, {1: 50, 3: 400, 6: 400}, 40) == {1: 50, 3: 125, 6: 125}
    assert share(300, {1: 50, 3: 400, 6: 400}, 40, {3: 2}) == {1: 50, 3: 166, 6: 83}, "the place's name first"
    assert share(60, {1: 50, 3: 400}, 40) == {1: 40, 3: 40}, "never below the floor"


# ---- 2. cancelled is not complete -----------------------------------------------------------------------------------
class BlockingClient:
    """Holds a request until it is cancelled; answers as the worker does for a cancelled job."""

    def __init__(self):
        self.lock = threading.Lock()
        self.started = threading.Event()

    def call(self, op, params, *, on_progress=None, on_row=None, is_cancelled=None, on_waiting=None, timeout=None):
        self.started.set()
        while not is_cancelled():
            threading.Event().wait(0.02)
        return {"cancelled": True}


def test_a_cancelled_task_ends_terminated_and_says_cancelled(qgis_app):
    """24.2: a job cancelled while it runs, and one cancelled while it waits behind it, end in QgsTask's
    Terminated state (QGIS then never says "Task complete"), with "(cancelled)" in their description, and the dock's
    slots still get their {"cancelled": True} result."""
    from qgis.core import QgsApplication, QgsTask

    from geoclip_qgis.gui.tasks import EngineTask

    client = BlockingClient()
    running = EngineTask("GeoCLIP likelihood raster", "likelihood", {}, client=client)
    waiting = EngineTask("GeoCLIP: “a lighthouse”", "geolocate_text", {}, client=client)
    results = {"running": [], "waiting": []}
    ends, names = [], {}
    for key, task in (("running", running), ("waiting", waiting)):
        task.done.connect(lambda res, k=key, t=task: (results[k].append(res), names.__setitem__(k, t.description())))
        task.taskTerminated.connect(lambda k=key: ends.append((k, "terminated")))
        task.taskCompleted.connect(lambda k=key: ends.append((k, "complete")))
    QgsApplication.taskManager().addTask(running)
    wait_for(client.started.is_set, 30)
    QgsApplication.taskManager().addTask(waiting)
    wait_for(lambda: waiting.status() == QgsTask.TaskStatus.Running, 30)
    waiting.cancel()
    wait_for(lambda: bool(results["waiting"]), 30)
    running.cancel()
    wait_for(lambda: bool(results["running"]), 30)
    assert results["waiting"] == [{"cancelled": True, "started": False}]
    assert results["running"] == [{"cancelled": True}]
    wait_for(lambda: len(ends) == 2, 10)
    assert sorted(ends) == [("running", "terminated"), ("waiting", "terminated")], ends
    assert names == {"running": "GeoCLIP likelihood raster (cancelled)",
                     "waiting": "GeoCLIP: “a lighthouse” (cancelled)"}, names


def test_a_finished_task_still_ends_complete(qgis_app):
    from qgis.core import QgsApplication

    from geoclip_qgis.gui.tasks import EngineTask

    class Quick:
        lock = threading.Lock()

        def call(self, op, params, **_kw):
            return {"done": 1}

    task = EngineTask("GeoCLIP: quick", "geolocate_text", {}, client=Quick())
    got, ends = [], []
    task.done.connect(got.append)
    task.taskCompleted.connect(lambda: ends.append("complete"))
    task.taskTerminated.connect(lambda: ends.append("terminated"))
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: bool(got) and bool(ends), 30)
    assert got == [{"done": 1}] and ends == ["complete"]


# ---- 5. the map after a run -----------------------------------------------------------------------------------------
def test_framed_extent_keeps_points_and_map_tips_on_the_canvas():
    """24.5: every point lies inside the canvas with the left/top margin and the map tip's room right/below."""
    from qgis.core import QgsRectangle

    from geoclip_qgis.gui.dock.framing import MARGIN_PX, TIP_PX, framed_extent

    for bbox, size in ((QgsRectangle(-120, -40, 150, 60), (1200, 800)), (QgsRectangle(0, 0, 1, 10), (900, 700)),
                       (QgsRectangle(5, 5, 50, 6), (1000, 600))):
        view = framed_extent(bbox, size)
        scale_x, scale_y = view.width() / size[0], view.height() / size[1]
        assert abs(scale_x - scale_y) < 1e-9 * max(scale_x, 1), "one scale on both axes"
        left = (bbox.xMinimum() - view.xMinimum()) / scale_x
        right = (view.xMaximum() - bbox.xMaximum()) / scale_x
        top = (view.yMaximum() - bbox.yMaximum()) / scale_y
        bottom = (bbox.yMinimum() - view.yMinimum()) / scale_y
        assert left >= MARGIN_PX - 1e-6 and top >= MARGIN_PX - 1e-6, (left, top)
        assert right >= TIP_PX[0] - 1e-6 and bottom >= TIP_PX[1] - 1e-6, (right, bottom)


def test_dock_frames_results_removes_rows_of_removed_layers_and_clears_stale_warnings(qgis_iface, qgis_new_project):
    """24.5 in the dock: the view after a run holds every point (in EPSG:3857 too); a layer the user removes takes
    its rows out of the table; "1 photo could not be read" (singular) is taken back by the next, clean run."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject
    from qgis.gui import QgsMessageBar

    from geoclip_qgis.gui.dock.dock import STORE_MEMORY, GeolocationDock, Run

    class Iface:  # pytest-qgis's message bar only records texts: a real one shows what stays on screen
        def __init__(self, real):
            self.real, self.bar = real, QgsMessageBar()

        def __getattr__(self, name):
            return getattr(self.real, name)

        def messageBar(self):  # noqa: N802 - Qt naming
            return self.bar

    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    iface = Iface(qgis_iface)
    dock = GeolocationDock(iface)
    dock.store.setCurrentIndex(dock.store.findData(STORE_MEMORY))
    dock.run_state = Run("image", 2)
    dock.add_row(worker_row("/photos/a.jpg", kind="image"))
    dock.add_row({"source": "/photos/b.jpg", "kind": "image", "error": {"message": "/photos/b.jpg: not a photo"}})
    assert dock.failure_toggle.text() == "1 photo could not be read"
    dock.predictions_done({"done": 1, "failed": 1, "cancelled": False})
    assert dock.run_state.group.name() == "GeoCLIP · 1 of 2 photos"
    assert "1 of 2 photos geolocated" in dock.status.text(), dock.status.text()
    assert len(dock._bar_items) == 1 and iface.bar.currentItem().text() == \
        "1 photo could not be read; see the GeoCLIP panel", "the warning of this run"
    view = canvas.extent()
    to_map = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), canvas.mapSettings().destinationCrs(),
                                    QgsProject.instance())
    for f in dock.run_state.layers["places"].getFeatures():
        p = to_map.transform(QgsPointXY(f.geometry().asPoint()))
        assert view.contains(p), (p.toString(), view.toString())
    # The user removes the places layer: its rows leave the table.
    assert dock.table.rowCount() == 4
    QgsProject.instance().removeMapLayer(dock.run_state.layers["places"].id())
    assert dock.table.rowCount() == 0 and "places" not in dock.run_state.layers
    # A clean run: the last run's warning is taken back (photos=[] and a query would start the engine: call the
    # part of run() that starts a new run's display).
    dock._clear_bar()
    assert dock._bar_items == [] and iface.bar.currentItem() is None
    dock.run_state = Run("image", 1)
    dock.add_row(worker_row("/photos/c.jpg", kind="image", n=1, region=False))
    dock.predictions_done({"done": 1, "failed": 0, "cancelled": False})
    assert dock.run_state.group.name() == "GeoCLIP · 1 photo"
    assert "1 of 1 photo geolocated" in dock.status.text() and dock._bar_items == []
    dock.shutdown()


def test_plural_forms_are_in_every_language_file():
    """24.5: each plural() form has a translation entry in every shipped .ts file."""
    import ast
    import xml.etree.ElementTree as ET
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    forms = set()
    for path in (root / "geoclip_qgis").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "plural":
                forms |= {a.value for a in node.args[1:3] if isinstance(a, ast.Constant)}
    assert len(forms) >= 10, forms
    for ts in (root / "geoclip_qgis" / "i18n").glob("*.ts"):
        done = {m.findtext("source"): (m.findtext("translation") or "") for m in ET.parse(ts).getroot().iter("message")}
        missing = sorted(f for f in forms if not done.get(f))
        assert not missing, f"{ts.name}: {missing}"


# ---- 4. messages for analysts ---------------------------------------------------------------------------------------
def test_engine_errors_read_as_qgis_advice():
    """24.4: no command-line syntax, environment variable, code path or "None" in what QGIS shows; each names the
    QGIS action that fixes it and fits the message bar."""
    from geoclip_qgis.client.messages import BAR_CHARS, bar_text, crash_error, for_analysts
    from geoclip_qgis.core.model.image_encoder import _HOWTO

    cases = [
        {"code": "backbone", "message": "the CLIP backbone openai/clip-vit-large-patch14 is not available offline",
         "hint": _HOWTO},
        {"code": "input", "message": "top_k must be an integer", "path": "top_k",
         "hint": "this request does not fit the worker's protocol; see shared/protocol.py"},
        {"code": "input", "message": "no location field at 0.1° covers this extent",
         "hint": "build one first: geoclip-qgis field --resolution 0.1 (or use the plugin's model manager)"},
        {"code": "internal", "message": "ModuleNotFoundError: No module named 'torch'"},
        crash_error(None, ""),
        crash_error(None, "Traceback…\nModuleNotFoundError: No module named 'torch'"),
    ]
    for raw in cases:
        info = for_analysts(raw) if "details" not in raw else raw
        shown = f"{info['message']} {info['hint']}"
        for bad in ("--", "GEOCLIP_", "geoclip-qgis ", ".py", "None", "`"):
            assert bad not in shown, (bad, shown)
        assert any(w in shown for w in ("Settings…", "Engine and models…", "Log Messages", "Copy diagnostics")), shown
        assert len(bar_text(info)) <= BAR_CHARS + 1


def test_copy_diagnostics_writes_real_characters(qgis_iface):
    """24.10: a Polish path stays "Łódź", not "\\u0141\\u00f3d\\u017a"."""
    from geoclip_qgis.gui import settings_dialog as settings
    from geoclip_qgis.gui.manager.dialog import ManagerDialog

    old = settings.get("clip_path")
    settings.put("clip_path", "/data/Łódź/clip")
    try:
        dlg = ManagerDialog()
        text = dlg.diagnostics()
        dlg.shutdown()
    finally:
        settings.put("clip_path", old or "")
    assert "Łódź" in text and "\\u0141" not in text


# ---- 6. projected CRSs --------------------------------------------------------------------------------------------
def test_rasters_are_cut_to_the_crs_valid_area_and_transforms_never_warn(qgis_app):
    """24.6: a world view in EPSG:3857 asks for ±85.06° (no streaks beyond Mercator's domain), one in EPSG:3035 for
    the CRS's area of use; the dock's world likelihood is cut only for a CRS spanning every longitude; every view
    transform accepts ballpark operations (no yellow "ballpark transform" bar)."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsRectangle

    from geoclip_qgis.gui.map_tool import WORLD, clip_to_valid_area, raster_request

    merc, laea = QgsCoordinateReferenceSystem("EPSG:3857"), QgsCoordinateReferenceSystem("EPSG:3035")
    req = raster_request(QgsRectangle(-25e6, -30e6, 25e6, 30e6), merc)
    w, s, e, n = req["extent"]
    assert (w, e) == (-180.0, 180.0) and 85.0 < n < 85.1 and -85.1 < s < -85.0, req
    w, s, e, n = raster_request(QgsRectangle(1e6, 0.5e6, 8e6, 6e6), laea)["extent"]
    b = laea.bounds()
    assert w >= b.xMinimum() - 1e-6 and e <= b.xMaximum() + 1e-6 and s >= b.yMinimum() - 1e-6 and n <= b.yMaximum()
    assert clip_to_valid_area(list(WORLD), laea, world_only=True) == WORLD
    assert clip_to_valid_area(list(WORLD), merc, world_only=True)[3] < 85.1
    assert clip_to_valid_area(list(WORLD), QgsCoordinateReferenceSystem("EPSG:4326")) == WORLD


# ---- 3. progress ---------------------------------------------------------------------------------------------------
def test_progress_line_names_each_step_and_shows_it_is_alive(qgis_app):
    """24.3: a step without counts shows a busy bar and its seconds; a counted step shows "2 of 8 photos"; the
    worker's words become an analyst's; the end fills (or empties) a busy bar."""
    from qgis.PyQt.QtWidgets import QLabel, QProgressBar

    from geoclip_qgis.gui.dock.progress_line import ProgressLine

    label, bar = QLabel(), QProgressBar()
    line = ProgressLine(label, bar)
    line.begin("Starting the engine…")
    assert bar.maximum() == 0 and label.text() == "Starting the engine…", "busy, not a frozen 0 %"
    line.stage("loading the model")
    line.counts(0, 8)
    assert bar.maximum() == 0 and label.text().startswith("Loading the model")
    line.since -= 12
    line._show()
    assert label.text().endswith("12 s"), label.text()
    line.stage("/photos/trip/trip_02.jpg")
    line.counts(2, 8)
    assert label.text() == "2 of 8 photos geolocated (trip_02.jpg)" and (bar.value(), bar.maximum()) == (2, 8)
    line.since -= 20  # the next batch takes a while: say so, with the seconds
    line._show()
    assert label.text() == "2 of 8 photos geolocated; geolocating the next ones… 20 s", label.text()
    line.stage("scoring the grid")
    assert "scoring the map cells" in label.text()
    line.counts(64_800, 259_200)  # the worker counts the map's cells as they are scored
    assert label.text() == "Likelihood raster: 64,800 of 259,200 map cells scored", label.text()
    assert (bar.value(), bar.maximum()) == (64_800, 259_200)
    line.stage("tracing the confidence regions")
    assert label.text() == "Likelihood raster: tracing the 50 % / 90 % regions…", label.text()
    line.begin("Mapping the likelihood…")
    line.end(complete=False)
    assert not line.timer.isActive() and bar.maximum() == 100 and bar.value() == 0


# ---- 10. clean shutdowns ---------------------------------------------------------------------------------------------
def _resource_warnings(action) -> list:
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        action()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_worker_shutdowns_leave_no_resource_warning():
    """24.10: a worker stopped without waiting (plugin unload, QGIS quitting) and one that died leave no unclosed
    pipe and no "subprocess is still running" behind."""
    import os
    import signal
    import sys
    import time

    from geoclip_qgis.client.engine_client import EngineClient, WorkerCrashed

    def unload():
        client = EngineClient(python=sys.executable)
        client.log_to_qgis = False
        client.start()
        proc = client.proc
        client.shutdown(wait=False)
        deadline = time.monotonic() + 30
        while (proc.poll() is None or not proc.stdout.closed) and time.monotonic() < deadline:
            time.sleep(0.05)
        del proc, client

    def death():
        client = EngineClient(python=sys.executable)
        client.log_to_qgis = False
        client.start()
        os.kill(client.proc.pid, signal.SIGKILL)
        try:  # a death seen before the request is sent restarts the worker; one seen after fails the request
            client.call("info", {})
        except WorkerCrashed as exc:
            assert "None" not in exc.info["message"]
        client.shutdown()
        del client

    assert _resource_warnings(unload) == []
    assert _resource_warnings(death) == []


def test_worker_warnings_reach_the_log_once_without_code_paths():
    """24.10: a Python warning from the worker is logged once, as "Category: message", without the file path and
    the source line that stderr shows under it."""
    from geoclip_qgis.client.engine_client import StderrFilter

    f = StderrFilter()
    lines = ["/usr/lib/python3/dist-packages/pyproj/network.py:59: UserWarning: pyproj unable to set PROJ database "
             "path.", "  _set_context_ca_bundle_path(ca_bundle_path)",
             "/usr/lib/python3/dist-packages/pyproj/network.py:59: UserWarning: pyproj unable to set PROJ database "
             "path.", "  _set_context_ca_bundle_path(ca_bundle_path)", "Traceback (most recent call last):"]
    out = [f(line) for line in lines]
    assert out[0] == ("UserWarning: pyproj unable to set PROJ database path.", "warning")
    assert out[1:4] == [None, None, None], out
    assert out[4] == ("Traceback (most recent call last):", "critical")


# ---- 8. background work ------------------------------------------------------------------------------------------
def _meta(folder, res: float, done: int) -> None:
    import json

    d = folder / "fields" / f"field-{res:g}deg-{round(360 / res)}x{round(180 / res)}-abc"
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"rows_done": done, "grid": {"height": round(180 / res)}}))


def test_background_fields_show_in_the_task_bar_and_can_be_turned_off(qgis_app, tmp_path, monkeypatch):
    """24.8: the worker's background world fields get a cancellable task-bar entry whose progress is the rows on
    disk; cancelling it turns them off for the session; the Settings toggle reaches the worker's environment."""
    from qgis.core import QgsApplication, QgsTask

    from geoclip_qgis.client.engine_client import child_env
    from geoclip_qgis.gui import background
    from geoclip_qgis.gui import settings_dialog as settings

    _meta(tmp_path, 0.5, 90)
    assert background.progress(tmp_path) == (90, 360)
    _meta(tmp_path, 0.25, 0)
    assert background.progress(tmp_path) == (90, 1080)
    monkeypatch.delenv("GEOCLIP_PYRAMID", raising=False)
    old = {k: settings.get(k) for k in ("cache_dir", "background_fields")}
    settings.put("cache_dir", str(tmp_path))
    settings.put("background_fields", "on")
    try:
        assert background.enabled() and "GEOCLIP_PYRAMID" not in child_env(worker=True)
        background.watch()
        task = background._watch["task"]
        assert task.flags() & QgsTask.Flag.CanCancel
        assert task in QgsApplication.taskManager().activeTasks()
        wait_for(lambda: task.progress() > 5, 10)
        task.cancel()
        wait_for(lambda: "task" not in background._watch, 10)
        import os

        assert os.environ.get("GEOCLIP_PYRAMID") == "0" and not background.enabled(), "off for this session"
        monkeypatch.delenv("GEOCLIP_PYRAMID")
        settings.put("background_fields", "off")
        assert not background.enabled() and child_env(worker=True)["GEOCLIP_PYRAMID"] == "0"
    finally:
        for k, v in old.items():
            settings.put(k, v if v is not None else "")


# ---- 7. the manager after Install engine ----------------------------------------------------------------------
def test_manager_rechecks_every_row_for_a_new_engine_and_logs_why(qgis_iface, monkeypatch):
    """24.7: switching to a new engine (Install engine's last step) puts every row back to "checking…" (none keeps
    the old engine's tick) and says so in the log; a failed check says why in the log, which the rows point to."""
    import sys

    from geoclip_qgis.client.engine_client import shutdown_shared
    from geoclip_qgis.gui import settings_dialog as settings
    from geoclip_qgis.gui.manager.dialog import ManagerDialog

    old = settings.get("engine_python")
    monkeypatch.setattr(ManagerDialog, "check_field", lambda self: None)
    try:
        dlg = ManagerDialog()
        for key in ("device", "clip", "weights", "field"):
            dlg.labels[key].setText("✔ the old engine's answer")
        dlg.use_engine(sys.executable)
        assert all(dlg.labels[k].text() == "checking…" for k in ("device", "clip", "weights", "field"))
        assert "Checking the engine" in dlg.log.toPlainText()
        dlg.info_failed({"code": "not_installed", "message": "The engine's Python has no PyTorch.",
                         "hint": "Fix: Plugins › GeoCLIP › Engine and models… › Install engine"})
        assert "log below" in dlg.labels["device"].text()
        log = dlg.log.toPlainText()
        assert "no PyTorch" in log and "Install engine" in log
        dlg.shutdown()
    finally:
        settings.put("engine_python", old or "")
        shutdown_shared()
