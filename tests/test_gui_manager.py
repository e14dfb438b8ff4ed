"""Issue 12 points 2-4, 13-16 on the QGIS side: the engine client (parent-death exit, waiting requests, log
forwarding, canonical engine options), the plugin's unload, its icons and dialogs, the manager and the settings."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]


def spin_event_loop(ms: int = 200) -> None:
    """A real event loop for a moment: deleteLater() called outside any loop is carried out when one runs."""
    from qgis.PyQt.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ---- point 4: the worker never outlives QGIS ----------------------------------------------------------------------
def test_child_env_names_the_parent_for_the_worker_only():
    from geoclip_qgis.client.engine_client import PARENT_ENV, child_env

    assert PARENT_ENV not in child_env({"PATH": "/bin", PARENT_ENV: "1"}), "pip never gets it (nor a stale one)"
    assert child_env({"PATH": "/bin"}, worker=True)[PARENT_ENV] == str(os.getpid())


PARENT_SCRIPT = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from geoclip_qgis.client.engine_client import EngineClient
client = EngineClient(python=sys.executable)
client.log_to_qgis = False
client.start()
print(client.proc.pid, flush=True)
if sys.argv[2] == "busy":  # a request in flight when the parent dies: the worker is mid-job
    threading.Thread(target=client.call, args=("encode_locations", {"points": [[0.0, 0.0]] * 200000}),
                     daemon=True).start()
time.sleep(120)
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_worker_exits_when_its_qgis_like_parent_is_killed(tmp_path, state):
    """A process that starts an EngineClient (as QGIS does) is SIGKILLed: its worker is gone within seconds."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "GEOCLIP_PARENT_PID"}
    parent = subprocess.Popen([sys.executable, str(script), str(ROOT), state], stdout=subprocess.PIPE, text=True,
                              env=env, start_new_session=True)
    try:
        worker_pid = int(parent.stdout.readline())
        time.sleep(1.0 if state == "busy" else 0.2)
        assert not gone(worker_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        t0 = time.monotonic()
        while not gone(worker_pid) and time.monotonic() - t0 < 20:
            time.sleep(0.1)
        took = time.monotonic() - t0
        assert gone(worker_pid), "the worker outlived its parent"
        assert took < (3.0 if state == "idle" else 8.0), f"worker exited {took:.1f} s after its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


# ---- point 2 (client side): a waiting request says so and can be cancelled while it waits -------------------------
def test_waiting_request_reports_and_never_runs_when_cancelled():
    from geoclip_qgis.client.engine_client import EngineClient

    client = EngineClient(python="/nonexistent/python")  # never started: a cancelled waiting job never runs
    client.lock.acquire()
    client.running_op = "build_field"
    said, cancelled, out = [], threading.Event(), {}
    t = threading.Thread(target=lambda: out.update(res=client.call("geolocate_text", {"queries": ["x"]},
                                                                    on_waiting=said.append,
                                                                    is_cancelled=cancelled.is_set)))
    t.start()
    deadline = time.monotonic() + 10
    while not said and time.monotonic() < deadline:
        time.sleep(0.02)
    assert said == ["Waiting for the field build to finish…"]
    t0 = time.monotonic()
    cancelled.set()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 1.0
    assert out["res"] == {"cancelled": True, "started": False}
    assert client.proc is None, "the cancelled request never reached a worker"
    client.running_op = None
    client.lock.release()


def test_waiting_request_runs_once_the_lock_is_free():
    from geoclip_qgis.client.engine_client import EngineClient

    client = EngineClient(python=sys.executable)
    client.log_to_qgis = False
    client.lock.acquire()
    client.running_op = "likelihood"
    said, out = [], {}
    t = threading.Thread(target=lambda: out.update(res=client.call("field_status", {"resolution": 45.0},
                                                                    on_waiting=said.append)))
    t.start()
    time.sleep(0.5)
    assert said == ["Waiting for the likelihood map to finish…"] and "res" not in out
    client.running_op = None
    client.lock.release()
    t.join(120)
    try:
        assert "complete" in out["res"]
    finally:
        client.shutdown()


# ---- point 3: unload never blocks -------------------------------------------------------------------------------
def test_shutdown_without_waiting_returns_at_once_and_the_worker_exits():
    from geoclip_qgis.client.engine_client import EngineClient

    client = EngineClient(python=sys.executable)
    client.log_to_qgis = False
    client.start()
    pid = client.proc.pid
    t0 = time.monotonic()
    client.shutdown(wait=False)
    assert time.monotonic() - t0 < 0.5
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid)


class FakeIface:
    """What GeoClipGui uses of QgisInterface."""

    def __init__(self):
        from qgis.gui import QgsMapCanvas
        from qgis.PyQt.QtWidgets import QMainWindow

        self.window = QMainWindow()
        self.canvas = QgsMapCanvas()
        self.menu = []

    def mainWindow(self):  # noqa: N802
        return self.window

    def mapCanvas(self):  # noqa: N802
        return self.canvas

    def addToolBar(self, name):  # noqa: N802
        return self.window.addToolBar(name)

    def addPluginToMenu(self, menu, action):  # noqa: N802
        self.menu.append((menu, action))

    def removePluginMenu(self, menu, action):  # noqa: N802
        self.menu.remove((menu, action))

    def removeDockWidget(self, dock):  # noqa: N802
        self.window.removeDockWidget(dock)


def test_plugin_unload_mid_job_does_not_block(monkeypatch):
    """A worker busy on a request and a running GeoCLIP task: unload returns at once, cancels the task and the
    worker goes away."""
    from qgis.core import QgsApplication, QgsTask

    from geoclip_qgis.client import engine_client
    from geoclip_qgis.plugin import GeoClipPlugin

    monkeypatch.setenv("GEOCLIP_ENGINE_PYTHON", sys.executable)
    client = engine_client.shared_client()
    client.log_to_qgis = False
    client.python = sys.executable
    def job():
        with contextlib.suppress(engine_client.EngineError):  # stopped by the unload: a crash/stop error
            client.call("encode_locations", {"points": [[0.0, 0.0]] * 300000})

    busy = threading.Thread(target=job, daemon=True)
    busy.start()
    wait_for(lambda: client.running_op == "encode_locations" and client.alive, 60)
    pid = client.proc.pid

    class Spin(QgsTask):
        def __init__(self):
            super().__init__("GeoCLIP: test job", QgsTask.Flag.CanCancel)

        def run(self):
            while not self.isCanceled():
                time.sleep(0.02)
            return False

    task = Spin()
    QgsApplication.taskManager().addTask(task)
    wait_for(lambda: task.status() == QgsTask.TaskStatus.Running, 30)
    plugin = GeoClipPlugin(FakeIface())
    t0 = time.monotonic()
    plugin.unload()
    assert time.monotonic() - t0 < 1.0, "unload blocked the GUI thread"
    wait_for(lambda: task.status() in (QgsTask.TaskStatus.Terminated, QgsTask.TaskStatus.Complete), 10)
    wait_for(lambda: gone(pid), 10)
    busy.join(10)


# ---- points 15, 3: icons, menu, dialogs not leaked ----------------------------------------------------------------
def test_distinct_icons_and_menu(monkeypatch):
    from geoclip_qgis.gui import toolbar as gui_main

    iface = FakeIface()
    gui = gui_main.GeoClipGui(iface)
    gui.init()
    try:
        files = list(gui_main.ICONS.values())
        assert len({f.read_bytes() for f in files}) == len(files) == 4
        for f in files:
            assert f.is_file() and f.suffix == ".svg"
        assert [m for m, _ in iface.menu] == [gui_main.MENU] * 4
        icons = [a.icon().pixmap(32, 32).toImage() for a in gui.actions]
        assert all(not i.isNull() for i in icons)
        assert len({bytes(i.constBits().asstring(i.sizeInBytes())) for i in icons}) == 4, "four different icons"
        toolbar = [a for a in gui.toolbar.actions()]
        assert toolbar == [gui.dock_action, gui.tool_action]
    finally:
        gui.unload()
    assert iface.menu == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Plugins › GeoCLIP › Engine and models" in readme


def test_dialogs_are_not_leaked(monkeypatch):
    from geoclip_qgis.gui import settings_dialog as settings
    from geoclip_qgis.gui import toolbar as gui_main
    from geoclip_qgis.gui.manager import dialog as manager

    monkeypatch.setattr(manager.ManagerDialog, "refresh", lambda self: None)
    monkeypatch.setattr(settings.SettingsDialog, "ask_engine", lambda self: None)
    opened = []
    monkeypatch.setattr(settings.SettingsDialog, "exec", lambda self: pytest.fail("the settings dialog is modal"))
    monkeypatch.setattr(settings.SettingsDialog, "show", lambda self: opened.append(self))
    iface = FakeIface()
    gui = gui_main.GeoClipGui(iface)
    gui.init()
    try:
        gui.open_manager()
        first = gui.manager
        gui.open_manager()
        assert gui.manager is first, "one manager at a time"
        first.close()
        spin_event_loop()
        assert gui.manager is None, "a closed manager with nothing running is deleted"
        gui.open_settings()
        gui.open_settings()
        assert len(opened) == 2 and opened[0] is opened[1], "one settings dialog at a time, not modal"
        dlg = opened[0]
        dlg.close()
        spin_event_loop()
        assert gui.settings_dialog is None, "the settings dialog is deleted on close"
    finally:
        gui.unload()


# ---- point 13: the manager tells the truth ------------------------------------------------------------------------
INFO = {"python": "3.11", "torch": "2.13.0", "transformers": "4.57", "executable": "/usr/bin/python3",
        "cuda_usable": False, "cuda": "no CUDA", "device": {"device": "cpu"},
        "weights": {"ok": True, "path": "/w"}}


def test_manager_clip_row_is_red_unless_clip_is_on_disk(monkeypatch, tmp_path):
    from geoclip_qgis.gui.manager import dialog as manager

    monkeypatch.setattr(manager.ManagerDialog, "refresh", lambda self: None)
    monkeypatch.setattr(manager.ManagerDialog, "check_field", lambda self: None)
    dlg = manager.ManagerDialog()
    try:
        dlg.show_info({**INFO, "clip": {"ok": True, "path": manager.CLIP_HUB_ID}})  # would download on first use
        text = dlg.labels["clip"].text()
        assert "✘" in text and "Download CLIP" in text and "✔" not in text
        dlg.show_info({**INFO, "clip": {"ok": False, "message": "the CLIP backbone is not available offline"}})
        assert "✘" in dlg.labels["clip"].text() and "Download CLIP" in dlg.labels["clip"].text()
        dlg.show_info({**INFO, "clip": {"ok": True, "path": str(tmp_path)}})
        assert "✔" in dlg.labels["clip"].text()
    finally:
        dlg.shutdown()
        dlg.deleteLater()


def test_manager_rows_resolve_when_the_engine_check_fails(monkeypatch, tmp_path):
    """A broken engine Python: the check fails, and every row says so — none stays at "checking…"."""
    from geoclip_qgis.client.engine_client import shutdown_shared
    from geoclip_qgis.gui import settings_dialog as settings
    from geoclip_qgis.gui.manager import dialog as manager

    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'cannot start: broken engine' >&2\nexit 3\n")
    broken.chmod(0o755)
    shutdown_shared()
    old = settings.get("engine_python")
    settings.put("engine_python", str(broken))
    dlg = manager.ManagerDialog()
    try:
        wait_for(lambda: "checking" not in " ".join(lbl.text() for lbl in dlg.labels.values()), 60)
        assert "✘" in dlg.labels["engine"].text()
        for key in ("device", "clip", "weights", "field"):
            assert "unknown" in dlg.labels[key].text(), key
    finally:
        dlg.shutdown()
        dlg.deleteLater()
        settings.put("engine_python", old or "")
        shutdown_shared()


def test_download_without_network_says_no_connection(tmp_path):
    from geoclip_qgis.gui.manager import dialog as manager

    task = manager.DownloadTask(tmp_path / "clip", endpoint="http://127.0.0.1:9")  # nothing listens there
    assert task.run() is False
    assert task.error.startswith("no connection to the model host"), task.error
    assert "urlopen" not in task.error and "None" not in task.error
    assert manager.download_error_text(TimeoutError("timed out")).startswith("no connection to the model host")
    assert manager.download_error_text(OSError(28, "No space left on device")) == "[Errno 28] No space left on device"


@pytest.mark.parametrize("choice", ["keep", "cancel", "stay"])
def test_closing_the_manager_mid_download_asks(monkeypatch, tmp_path, choice):
    from geoclip_qgis.gui.manager import dialog as manager

    monkeypatch.setattr(manager.ManagerDialog, "refresh", lambda self: None)
    dlg = manager.ManagerDialog()
    dlg.show()
    task = manager.DownloadTask(tmp_path / "clip")  # not started: only its state matters here
    dlg.task = task
    asked = []
    monkeypatch.setattr(dlg, "ask_on_close", lambda job: asked.append(job) or choice)
    dlg.close()
    assert asked == ["The CLIP download"]
    if choice == "keep":
        assert not dlg.isVisible() and not dlg.closing and not task.isCanceled()
    elif choice == "cancel":
        assert dlg.closing and task.isCanceled()
    else:
        assert dlg.isVisible() and not dlg.closing and not task.isCanceled()
    dlg.shutdown()
    dlg.deleteLater()


def test_the_install_has_a_task_bar_entry_that_outlives_the_window(monkeypatch, qgis_iface):
    """12.3: the install (pip in a QProcess) shows in QGIS's task bar; "Keep it running" leaves the entry with its
    progress; cancelling, or a failed step, removes it (a proxy task left open would hold QGIS's exit)."""
    from qgis.core import QgsApplication

    from geoclip_qgis.gui.manager import dialog as manager

    monkeypatch.setattr(manager.ManagerDialog, "refresh", lambda self: None)
    sleep = ("wait", sys.executable, ["-c", "import time; time.sleep(60)"])
    fail = ("fail", sys.executable, ["-c", "raise SystemExit(1)"])
    plan = [[("quick", sys.executable, ["-c", "pass"]), sleep], [fail]]
    monkeypatch.setattr(manager, "install_steps", lambda venv, driver, system=sys.platform: list(plan.pop(0)))

    def entries():
        return [t for t in QgsApplication.taskManager().activeTasks()
                if t.description() == "GeoCLIP: installing the engine"]

    dlg = manager.ManagerDialog()
    dlg.driver_known, dlg.driver = True, None
    dlg.show()
    dlg.start_install()
    wait_for(lambda: entries() and entries()[0].progress() >= 49, 30)  # the first of two steps done
    monkeypatch.setattr(dlg, "ask_on_close", lambda job: "keep")
    dlg.close()
    assert not dlg.isVisible() and len(entries()) == 1, "kept running: the task bar still shows it"
    dlg.cancel()
    wait_for(lambda: not entries(), 10)
    dlg.start_install()  # a failing step ends the entry too
    wait_for(lambda: dlg.proc is not None and dlg.proc.state() == manager.QProcess.ProcessState.NotRunning
             and not entries(), 30)
    assert "Step failed" in dlg.log.toPlainText()
    dlg.shutdown()
    dlg.deleteLater()


# ---- point 14: one canonical engine-options object ----------------------------------------------------------------
def test_canonical_engine_options_match_the_workers():
    from geoclip_qgis.client.engine_client import ENGINE_DEFAULTS, canonical_engine_options
    from geoclip_qgis.core.service import worker

    assert ENGINE_DEFAULTS == worker.ENGINE_DEFAULTS
    for opts in ({}, None, {"device": " CUDA:1 "}, {"clip_path": "~/clip/../clip", "cache_dir": "/a//b/"},
                 {"gallery": "fibonacci:3000", "weights": ""}, {"gallery": "~/g.csv", "batch_size": 4}):
        assert canonical_engine_options(opts) == worker.canonical_engine_options(opts), opts


def test_settings_device_cuda1_is_kept_and_options_are_stable():
    from geoclip_qgis.client.engine_client import engine_defaults
    from geoclip_qgis.gui import settings_dialog as settings

    old = settings.get("device")
    try:
        settings.put("device", "cuda:1")
        assert settings.engine_options()["device"] == "cuda:1"
        assert settings.engine_options() == engine_defaults() == settings.engine_options()
        dlg = settings.SettingsDialog(cuda_reason="test")
        assert dlg.device.currentData() == "cuda:1"
        settings.put("device", "cuda:3")
        assert settings.SettingsDialog(cuda_reason="test").device.currentData() == "cuda:3"
        assert settings.engine_options(device="cpu")["device"] == "cpu"
        assert settings.engine_options(device="")["device"] == "cuda:3"
    finally:
        settings.put("device", old or "auto")


def test_settings_precision_is_sent_with_the_engine_options():
    from geoclip_qgis.gui import settings_dialog as settings

    old = settings.get("precision")
    try:
        assert settings.SettingsDialog(cuda_reason="test").precision.currentData() == (old or "auto")
        settings.put("precision", "bf16")
        dlg = settings.SettingsDialog(cuda_reason="test")
        assert dlg.precision.currentData() == "bf16" and settings.engine_options()["precision"] == "bf16"
        dlg.precision.setCurrentIndex(dlg.precision.findData("fp32"))
        dlg.save()
        assert settings.engine_options()["precision"] == "fp32"
    finally:
        settings.put("precision", old or "auto")


def test_changing_the_engine_python_restarts_the_worker(monkeypatch, tmp_path):
    from geoclip_qgis.client import engine_client
    from geoclip_qgis.gui import settings_dialog as settings

    calls = []
    monkeypatch.setattr(engine_client, "shutdown_shared", lambda wait=True: calls.append(wait))
    old = settings.get("engine_python")
    try:
        dlg = settings.SettingsDialog(cuda_reason="test")
        dlg.save()
        assert calls == [], "identical settings keep the worker (and its loaded model)"
        dlg.python.setFilePath(str(tmp_path / "other-python"))
        dlg.save()
        assert calls == [False], "a new engine Python stops the worker, in the background"
    finally:
        settings.put("engine_python", old or "")


# ---- point 16: the worker's stderr and warnings reach the Log Messages panel --------------------------------------
def test_worker_stderr_and_log_messages_go_to_the_log_panel():
    import io

    from qgis.core import Qgis, QgsApplication

    from geoclip_qgis.client.engine_client import EngineClient

    got = []

    def record(message, tag, level):
        if tag == "GeoCLIP":
            got.append((message, level))

    QgsApplication.messageLog().messageReceived.connect(record)
    try:
        client = EngineClient(python=sys.executable)

        class Proc:
            stderr = io.StringIO("loading weights\ngeoclip-worker WARNING: cuda not usable\nTraceback (most recent)\n")
            stdout = io.StringIO('{"type": "log", "level": "warning", "message": "gallery cache rebuilt"}\n'
                                 '{"id": 1, "type": "result", "data": {}}\n')

        client._read_stderr(Proc)
        client._read_stdout(Proc, client.messages)
        wait_for(lambda: len(got) >= 4, 5)
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(record)
    assert ("worker: geoclip-worker WARNING: cuda not usable", Qgis.MessageLevel.Warning) in got
    assert ("worker: Traceback (most recent)", Qgis.MessageLevel.Critical) in got
    assert ("worker: loading weights", Qgis.MessageLevel.Info) in got
    assert ("gallery cache rebuilt", Qgis.MessageLevel.Warning) in got
    assert client.messages.get_nowait() == {"id": 1, "type": "result", "data": {}}, "log lines are not requests"


def test_download_clip_goes_through_the_worker_op_when_the_protocol_has_it(monkeypatch, tmp_path):
    """Issue 13 part 4 wiring: Download CLIP runs the worker's download_clip op as an EngineTask (progress and
    cancel through the protocol); its network error reads as the worker says it."""
    from geoclip_qgis.gui import settings_dialog as settings
    from geoclip_qgis.gui.manager import dialog as manager
    from geoclip_qgis.shared import protocol

    monkeypatch.setattr(manager.ManagerDialog, "refresh", lambda self: None)
    from geoclip_qgis.gui.manager import downloads

    monkeypatch.setattr(downloads, "worker_can_download", lambda: True)
    added = []

    class Tasks:
        def addTask(self, task):  # noqa: N802
            added.append(task)

    monkeypatch.setattr(manager.QgsApplication, "taskManager", staticmethod(lambda: Tasks()))
    dlg = manager.ManagerDialog()
    old = settings.get("clip_path")
    try:
        dlg.start_download()
        task = added[-1]
        assert task.op == "download_clip" and task.params == {"dest": None}
        assert protocol.validate("download_clip", task.params) == {"dest": None}
        assert dlg.running_job() == "The CLIP download" and not dlg.download.isEnabled()
        dlg.worker_download_failed({"code": "network", "message": "no connection to the model host (huggingface.co)"})
        assert "no connection to the model host" in dlg.labels["clip"].text() and dlg.download.isEnabled()
        dlg.start_download()
        dlg.worker_download_done({"path": str(tmp_path), "bytes": 2**20})
        assert settings.get("clip_path") == str(tmp_path)
        assert "CLIP downloaded and checked" in dlg.log.toPlainText()
    finally:
        settings.put("clip_path", old or "")
        dlg.shutdown()
        dlg.deleteLater()


def test_worker_can_download_needs_the_op_in_the_protocol(monkeypatch):
    from geoclip_qgis.gui.manager import dialog as manager
    from geoclip_qgis.shared import protocol

    monkeypatch.setenv("GEOCLIP_ENGINE_PYTHON", sys.executable)
    monkeypatch.setattr(protocol, "OPS", tuple(op for op in protocol.OPS if op != "download_clip"))
    assert manager.worker_can_download() is False
    if "download_clip" in protocol.SCHEMA:
        monkeypatch.setattr(protocol, "OPS", protocol.OPS + ("download_clip",))
        assert manager.worker_can_download() is True
