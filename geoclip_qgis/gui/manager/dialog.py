"""Engine and model manager: what is installed, one-click engine install, CLIP download or import, the world
location field (one-time encoding that makes 0.1° world rasters take seconds), diagnostics."""

from __future__ import annotations

import contextlib
import json
import platform
import sys
from typing import List, Optional, Tuple

from qgis.core import Qgis, QgsApplication, QgsProxyProgressTask
from qgis.PyQt.QtCore import QProcess, QProcessEnvironment, Qt
from qgis.PyQt.QtWidgets import (
    QApplication,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ...client.engine_client import (
    EngineError,
    child_env,
    engine_python,
    managed_env_dir,
    shared_client,
    shutdown_shared,
    venv_python,
)
from ...shared import defaults
from .. import settings_dialog as settings
from ..settings_dialog import redact, tr
from .downloads import (  # noqa: F401 - one module each; the dialog's callers look them up here (tests patch them)
    DownloadPanel,
    DownloadTask,
    clip_on_disk,
    download_error_text,
    qgis_proxy,
    worker_can_download,
)
from .field_panel import WORLD_FIELD_RES, FieldPanel  # noqa: F401 - re-exported
from .install_plan import (  # noqa: F401 - as above
    REQUIREMENTS,
    TORCH_INDEX,
    DriverProbe,
    base_python,
    install_steps,
    nvidia_driver,
    python_problem,
    torch_build,
    torch_requirement,
    weights_steps,
)

CLIP_HUB_ID = defaults.CLIP_REPO  # one definition: shared/defaults.py
NO_CONNECTION = "no connection to the model host"


class ManagerDialog(DownloadPanel, FieldPanel, QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle(tr("GeoCLIP engine and models"))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # not leaked: each opening is a new dialog
        self.resize(760, 560)
        self.closing = False  # set once the dialog is shut down: late task signals are ignored
        self.proc: Optional[QProcess] = None
        self.install_task: Optional[QgsProxyProgressTask] = None  # the install's task-bar entry
        self.steps: List[Tuple[str, str, List[str]]] = []
        self.task = None
        self.info: dict = {}
        self.driver: Optional[str] = None
        self.driver_known = False  # set by DriverProbe, started below
        self.install_waiting = False
        v = QVBoxLayout(self)
        grid = QGridLayout()
        self.labels = {}
        for r, (key, title) in enumerate((("engine", tr("Engine (Python + PyTorch)")), ("device", tr("Device")),
                                           ("clip", tr("CLIP ViT-L/14 backbone")), ("weights", tr("GeoCLIP weights")),
                                           ("field", tr("World location field (0.1°)")))):
            grid.addWidget(QLabel(f"<b>{title}</b>"), r, 0)
            self.labels[key] = QLabel(tr("checking…"))
            self.labels[key].setWordWrap(True)
            grid.addWidget(self.labels[key], r, 1)
        grid.setColumnStretch(1, 1)
        v.addLayout(grid)
        buttons = QHBoxLayout()
        self.install = QPushButton(tr("Install engine"))
        self.download = QPushButton(tr("Download CLIP (1.7 GB)"))
        self.import_folder = QPushButton(tr("Use a CLIP folder I have…"))
        self.build_field = QPushButton(tr("Build world field"))
        self.build_field.setToolTip(tr("Encode the world at 0.1° once (6.7 GB on disk, minutes on a GPU, 8–15 min "
                                       "on a 2-core CPU, resumable); then 0.1° world likelihood and similarity rasters "
                                       "take seconds."))
        self.refresh_button = QPushButton(tr("Check again"))
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setEnabled(False)
        self.copy = QPushButton(tr("Copy diagnostics"))
        for b in (self.install, self.download, self.import_folder, self.build_field):
            buttons.addWidget(b)
        v.addLayout(buttons)
        actions = QHBoxLayout()  # a second row: what the dialog does, apart from what it installs
        actions.addStretch(1)
        for b in (self.refresh_button, self.cancel_button, self.copy):
            actions.addWidget(b)
        v.addLayout(actions)
        self.progress = QProgressBar()
        v.addWidget(self.progress)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        v.addWidget(self.log, 1)
        self.install.clicked.connect(self.start_install)
        self.download.clicked.connect(self.start_download)
        self.import_folder.clicked.connect(self.pick_clip_folder)
        self.build_field.clicked.connect(self.start_field_build)
        self.refresh_button.clicked.connect(self.refresh)
        self.cancel_button.clicked.connect(self.cancel)
        self.copy.clicked.connect(self.copy_diagnostics)
        self.probe: Optional[DriverProbe] = DriverProbe()
        self.probe.found.connect(self.driver_found)
        QgsApplication.taskManager().addTask(self.probe)
        self.refresh()

    def driver_found(self, driver: Optional[str]) -> None:
        if self.closing:
            return
        self.driver, self.driver_known, self.probe = driver, True, None
        if self.install_waiting:
            self.install_waiting = False
            self.start_install()

    # ---- status -----------------------------------------------------------------------------------------------
    def use_engine(self, python: str) -> None:
        """A new engine Python (Install engine's last step): the old worker goes, and every row is checked again
        for the new one (none keeps the old engine's tick meanwhile)."""
        settings.put("engine_python", python)
        shutdown_shared(wait=False)  # the next request starts the new engine's worker
        self.refresh()

    def refresh(self) -> None:
        try:
            py = engine_python()
        except EngineError as exc:
            self.labels["engine"].setText(f"<span style='color:#b00'>{exc}</span><br>{exc.info.get('hint', '')}")
            for key in ("device", "clip", "weights", "field"):
                self.labels[key].setText(tr("needs the engine"))
            return
        for key in ("device", "clip", "weights", "field"):  # nothing of the last check stays on screen
            self.labels[key].setText(tr("checking…"))
        self.append(tr("Checking the engine {}…").format(py))
        self.labels["engine"].setText(redact(py) + tr(" — starting…"))
        from ..tasks import EngineTask

        opts = settings.engine_options()
        self.task = EngineTask(tr("GeoCLIP: checking the engine"), "info",
                               {"check_models": True, "clip_path": opts["clip_path"], "weights": opts["weights"],
                                "device": opts["device"]})
        self.task.done.connect(self.show_info)
        self.task.failed.connect(self.info_failed)
        QgsApplication.taskManager().addTask(self.task)

    def info_failed(self, error: dict) -> None:
        """The engine check failed: every row says so (none stays at "checking…")."""
        if self.closing:
            return
        self.task = None
        bad = "<span style='color:#b00'>✘</span> "
        message = str(error.get("message") or tr("the engine did not answer"))
        hint = str(error.get("hint") or "")
        short = hint.split("\n", 1)[0]
        self.labels["engine"].setText(bad + redact(message) + (f"<br>{redact(short)}" if short else ""))
        for key in ("device", "clip", "weights", "field"):
            self.labels[key].setText(tr("unknown: the engine check failed (the log below says why; Check again)"))
        # The log holds the whole story: the message, the fix and the engine's last lines.
        self.append(tr("The engine check failed: {}").format(message))
        if hint:
            self.append(hint)
        tail = [line for line in shared_client().diagnostics()[-8:] if line.strip()]
        if tail and not any(line in hint for line in tail):
            self.append(tr("The engine's last messages:") + "\n" + "\n".join(tail))

    def show_info(self, info: dict) -> None:
        if self.closing:
            return
        self.info = info
        self.task = None
        ok, bad = "<span style='color:#080'>✔</span> ", "<span style='color:#b00'>✘</span> "
        self.labels["engine"].setText(ok + redact(f"Python {info['python']}, torch {info['torch']}, transformers "
                                                  f"{info['transformers']} ({info['executable']})"))
        dev = info["device"]
        self.labels["device"].setText(ok + f"{dev['device']}" + ("" if info["cuda_usable"] else f" — {info['cuda']}"))
        clip = info.get("clip", {})
        if clip_on_disk(clip):
            self.labels["clip"].setText(ok + redact(clip.get("path", "")))
        elif clip.get("ok"):  # the engine would fetch it from the hub on first use: not on this disk
            self.labels["clip"].setText(bad + tr("not on this computer (no CLIP folder set, none in the Hugging Face "
                                                 "cache). Fix: Download CLIP, or Use a CLIP folder I have…"))
        else:
            self.labels["clip"].setText(bad + redact(clip.get("message", "")) + "<br>" +
                                        tr("Fix: Download CLIP, or Use a CLIP folder I have…"))
        weights = info.get("weights", {})
        self.labels["weights"].setText((ok + redact(weights.get("path", ""))) if weights.get("ok")
                                       else bad + redact(weights.get("message", "")))
        if info.get("weights", {}).get("ok"):
            self.check_field()
        else:
            self.labels["field"].setText(tr("needs the GeoCLIP weights"))

    # ---- world location field -----------------------------------------------------------------------------------
    def _start_engine_task(self, task, on_done, on_failed) -> None:
        """One long worker job in the dialog (field build, download): its progress in the bar, its end to the slots."""
        self.progress.setRange(0, 100)
        task.progressChanged.connect(self.field_progress)
        task.progressText.connect(self.field_progress_text)
        task.done.connect(on_done)
        task.failed.connect(on_failed)
        self.task = task
        self._busy(True)
        QgsApplication.taskManager().addTask(task)

    def field_progress(self, percent: float) -> None:
        if not self.closing:
            self.progress.setValue(int(percent))

    def field_progress_text(self, message: str) -> None:
        if not self.closing:
            self.progress.setFormat(f"{message}: %p%")

    # ---- install ----------------------------------------------------------------------------------------------
    def start_install(self) -> None:
        if not self.driver_known:  # the probe is still running: the install starts when it answers
            self.install_waiting = True
            self._busy(True)
            self.append(tr("Looking for an NVIDIA driver…"))
            return
        venv = managed_env_dir()
        problem = python_problem()  # said before anything is created or downloaded
        if problem:
            self.append(problem)
            self._busy(False)
            return
        try:
            self.steps = install_steps(venv, self.driver)
        except FileNotFoundError as exc:
            self.append(str(exc))
            self._busy(False)
            return
        label, _ = torch_build(sys.platform, self.driver)
        found = tr("NVIDIA driver {}").format(self.driver) if self.driver else tr("no NVIDIA driver")
        self.append(tr("Installing the engine into {} ({}; PyTorch build: {}).").format(redact(str(venv)), found,
                                                                                         label))
        self.progress.setRange(0, len(self.steps))
        self.progress.setValue(0)
        self._busy(True)
        self._install_entry()
        self.next_step()

    def _install_entry(self) -> None:
        """The install's entry in QGIS's task bar: a proxy task (pip runs in a QProcess, not a QgsTask), so "Keep it
        running" leaves a visible, cancellable (QGIS >= 3.26) job when the window is closed."""
        self._end_install_entry(False)
        try:
            task = QgsProxyProgressTask(tr("GeoCLIP: installing the engine"), True)
        except TypeError:  # QGIS < 3.26: no cancel from the task bar (the manager's Cancel stays)
            task = QgsProxyProgressTask(tr("GeoCLIP: installing the engine"))
        if hasattr(task, "canceled"):
            task.canceled.connect(self.cancel)
        self.install_task = task
        QgsApplication.taskManager().addTask(task)

    def _end_install_entry(self, ok: bool) -> None:
        """Finalize the proxy task once (its thread waits for this; QGIS would wait for it on exit)."""
        task, self.install_task = self.install_task, None
        if task is not None:
            with contextlib.suppress(RuntimeError):  # the C++ task is already gone
                task.finalize(ok)

    def next_step(self) -> None:
        if not self.steps:
            self._end_install_entry(True)
            self.append(tr("Engine installed."))
            self._busy(False)
            self.use_engine(str(venv_python(managed_env_dir())))
            return
        title, program, args = self.steps.pop(0)
        self.append(f"== {title}\n$ {redact(program)} {' '.join(args)}")
        self.proc = QProcess(self)
        self.proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        env = QProcessEnvironment()
        for key, value in child_env().items():
            if key != "PYTHONPATH":  # pip needs no plugin on its path
                env.insert(key, value)
        self.proc.setProcessEnvironment(env)
        self.proc.readyReadStandardOutput.connect(
            lambda: self.append(bytes(self.proc.readAllStandardOutput()).decode(errors="replace").rstrip()))
        self.proc.finished.connect(self.step_finished)
        self.proc.start(program, args)

    def step_finished(self, code: int, status) -> None:
        if self.closing:
            return
        self.progress.setValue(self.progress.value() + 1)
        if self.install_task is not None:
            with contextlib.suppress(RuntimeError):
                self.install_task.setProxyProgress(100.0 * self.progress.value() / max(1, self.progress.maximum()))
        if code != 0 or status != QProcess.ExitStatus.NormalExit:
            self._end_install_entry(False)
            self.append(tr("Step failed (exit code {}). See the log above; nothing else was changed.").format(code))
            self.steps = []
            self._busy(False)
            return
        self.next_step()

    def running_job(self) -> Optional[str]:
        """What the dialog runs that outlives a click: the install, a CLIP download, a field build (None: nothing;
        the engine and field checks are cancelled silently)."""
        if self.proc is not None and self.proc.state() != QProcess.ProcessState.NotRunning or self.install_waiting:
            return tr("The engine install")
        if isinstance(self.task, DownloadTask) or getattr(self.task, "op", "") == "download_clip":
            return tr("The CLIP download")
        if self.task is not None and getattr(self.task, "op", "") == "build_field":
            return tr("The world field build")
        return None

    def ask_on_close(self, job: str) -> str:
        """'cancel', 'keep' (close the window, the job goes on; reopening shows it) or 'stay'."""
        box = QMessageBox(QMessageBox.Icon.Question, tr("GeoCLIP engine and models"),
                          tr("{} is still running.").format(job), QMessageBox.StandardButton.NoButton, self)
        cancel = box.addButton(tr("Cancel it"), QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton(tr("Keep it running"), QMessageBox.ButtonRole.AcceptRole)
        box.addButton(tr("Don't close"), QMessageBox.ButtonRole.RejectRole)
        box.setInformativeText(tr("Keep it running: it goes on in the background (QGIS's task bar shows it; "
                                  "Engine and models… shows this window again)."))
        box.exec()
        clicked = box.clickedButton()
        return "cancel" if clicked is cancel else "keep" if clicked is keep else "stay"

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        job = None if self.closing else self.running_job()
        if job is not None:
            choice = self.ask_on_close(job)
            if choice == "stay":
                event.ignore()
                return
            if choice == "keep":  # hidden, not deleted: the job and its log live on, the menu shows them again
                event.ignore()
                self.hide()
                return
        self.shutdown()
        super().closeEvent(event)

    def reject(self) -> None:  # Esc goes through closeEvent's question too
        if self.closing:  # QDialog.closeEvent calls reject(): hide, and let the close go on
            super().reject()
        else:
            self.close()

    def shutdown(self) -> None:
        """Cancel what runs and ignore every later signal of it (slots never touch a deleted dialog)."""
        if self.closing:
            return
        self.closing = True
        self.install_waiting = False
        if self.proc is not None:
            with contextlib.suppress(RuntimeError, TypeError):
                self.proc.finished.disconnect()
                self.proc.readyReadStandardOutput.disconnect()
            if self.proc.state() != QProcess.ProcessState.NotRunning:
                self.steps = []
                self.proc.kill()
        self._end_install_entry(False)
        for task in (self.task, self.probe):
            if task is not None:
                with contextlib.suppress(RuntimeError):  # the C++ task may already be gone
                    task.cancel()
        self.task = self.probe = None

    # ---- misc -------------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        self.install_waiting = False
        if self.proc is not None and self.proc.state() != QProcess.ProcessState.NotRunning:
            self.steps = []
            self.proc.kill()
            self.append(tr("Install cancelled."))
        self._end_install_entry(False)
        if self.task is not None:
            self.task.cancel()
        self._busy(False)

    def _busy(self, busy: bool) -> None:
        for b in (self.install, self.download, self.import_folder, self.build_field, self.refresh_button):
            b.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def append(self, text: str) -> None:
        if text:
            self.log.appendPlainText(redact(text))

    def diagnostics(self) -> str:
        from ... import __name__ as plugin_name

        report = {
            "plugin": plugin_name, "qgis": Qgis.QGIS_VERSION, "qgis_python": sys.version.split()[0],
            "platform": platform.platform(), "settings": {k: settings.get(k) for k in settings.DEFAULTS},
            "engine": self.info or None, "nvidia_driver": self.driver if self.driver_known else "(still looking)",
            "worker_log": shared_client().diagnostics()[-30:],
        }
        return redact(json.dumps(report, indent=1, default=str, ensure_ascii=False))  # ł, not \u0142

    def copy_diagnostics(self) -> None:
        QApplication.clipboard().setText(self.diagnostics())
        self.append(tr("Diagnostics copied to the clipboard (home folder shown as ~)."))
