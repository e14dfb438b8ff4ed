"""Plugin settings (QgsSettings under geoclip/): engine Python, device, precision, model folders, gallery, cache
folder."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

from qgis.core import QgsApplication
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)

from ..client import settings as store
from ..client.engine_client import default_cache_dir, engine_defaults
from ..i18n import plural, tr, tr_noop  # noqa: F401 - re-exported for the gui modules
from ..shared import defaults
from ..shared.defaults import PRECISIONS

# The one settings store (client/settings.py), re-exported for the gui modules.
DEFAULTS, get, put = store.DEFAULTS, store.get, store.put


def background_fields() -> bool:
    """The engine builds the coarse world fields in the background after it starts (Settings checkbox)."""
    return str(get("background_fields")).lower() not in ("off", "false", "0", "no")


def raster_output(stem: str) -> str:
    """A new GeoTIFF path for a GUI-made raster, in the cache folder's rasters/ (kept with the project's layers)."""
    folder = Path(engine_defaults()["cache_dir"]) / "rasters"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}.tif")


def engine_options(**overrides: Any) -> Dict[str, Any]:
    """THE engine options the dock, the map tool, the manager and Processing send (engine_client.engine_defaults:
    every key, canonical like the worker's, so equal settings never reload the model). `overrides` (e.g. the
    dock's device combo: engine_options(device=combo.currentData())) replace a setting when not empty."""
    return engine_defaults(**overrides)


def device_choices() -> list:
    """(value, label) for a device combo: auto, CPU, CUDA 0 and 1, plus the saved setting when it is another
    (cuda:3): a `cuda:1` setting shows as CUDA device 1, never as Automatic."""
    choices = [(value, tr(label)) for value, label in defaults.DEVICES]  # the one list (shared/defaults.py)
    current = defaults.canonical_device(engine_defaults()["device"])
    if current not in [value for value, _ in choices]:
        choices.append((current, current))
    return choices


def current_device() -> str:
    """The device setting in the form device_choices() uses ("cuda" is CUDA device 0)."""
    return defaults.canonical_device(engine_defaults()["device"])


_NAME_ENDS = r"""(?=$|[\\/"'\s:;,)\]}])"""  # /home/ann is redacted in /home/ann/x, not in /home/anna


def redact(text: str, home: Optional[str] = None) -> str:
    """Diagnostics never show the user's home folder, however a path spells it: C:\\Users\\Ann, C:/Users/Ann,
    JSON-escaped (C:\\\\Users\\\\Ann), in any letter case where the file system ignores it (Windows, macOS)."""
    home = (home if home is not None else os.path.expanduser("~")).rstrip("/\\")
    if len(home) < 2 or home.endswith(":"):  # "/" or a bare drive: nothing personal to hide
        return text
    spellings = {home, home.replace("\\", "/"), home.replace("/", "\\"), home.replace("\\", "/").replace("/", "\\\\")}
    pattern = "|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True))
    windows_like = "\\" in home or home[1:2] == ":" or sys.platform in ("win32", "darwin")
    return re.sub(f"(?:{pattern}){_NAME_ENDS}", "~", text, flags=re.IGNORECASE if windows_like else 0)


class SettingsDialog(QDialog):
    """The settings form; the device line shows why CUDA is not usable when it is not."""

    def __init__(self, parent=None, cuda_reason: Optional[str] = None):
        super().__init__(parent)
        self.task = None
        self.setWindowTitle(tr("GeoCLIP settings"))
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.python = QgsFileWidget()
        self.python.setFilePath(get("engine_python"))
        self.python.setDialogTitle(tr("Python of the engine environment"))
        form.addRow(tr("Engine Python"), self.python)
        self.device = QComboBox()
        for value, label in device_choices():
            self.device.addItem(label, value)
        self.device.setCurrentIndex(max(0, self.device.findData(current_device())))
        form.addRow(tr("Device"), self.device)
        self.cuda_note = QLabel(cuda_reason or tr("Asking the engine whether CUDA is usable…"))
        self.cuda_note.setWordWrap(True)
        if cuda_reason is None:
            self.ask_engine()
        form.addRow("", self.cuda_note)
        self.precision = QComboBox()
        for value, label in PRECISIONS:
            self.precision.addItem(tr(label), value)
        self.precision.setCurrentIndex(max(0, self.precision.findData(engine_defaults()["precision"])))
        form.addRow(tr("Precision"), self.precision)
        self.precision_note = QLabel("")  # the engine's answer: what auto picks here, and why
        self.precision_note.setWordWrap(True)
        form.addRow("", self.precision_note)
        self.clip = self._folder(get("clip_path"), tr("CLIP ViT-L/14 folder"))
        form.addRow(tr("CLIP folder"), self.clip)
        self.weights = self._folder(get("weights"), tr("GeoCLIP weights folder (empty: the geoclip package's)"))
        form.addRow(tr("GeoCLIP weights"), self.weights)
        self.gallery = QLineEdit(get("gallery"))
        self.gallery.setToolTip(tr("'default' (100K Flickr points), 'fibonacci:N' (uniform), or a CSV with LAT,LON"))
        form.addRow(tr("Gallery"), self.gallery)
        self.cache = self._folder(get("cache_dir") or str(default_cache_dir()), tr("Cache folder"))
        form.addRow(tr("Cache folder"), self.cache)
        self.background = QCheckBox(tr("Build coarse world fields (0.5°, 0.25°) in the background"))
        self.background.setToolTip(tr("After the engine starts it encodes the world once at low priority, pausing "
                                      "for your runs, so that world and continent maps take seconds; the task bar "
                                      "shows it and can cancel it."))
        self.background.setChecked(background_fields())
        form.addRow("", self.background)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @staticmethod
    def _folder(path: str, title: str) -> QgsFileWidget:
        w = QgsFileWidget()
        w.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        w.setDialogTitle(title)
        w.setFilePath(path or "")
        return w

    def ask_engine(self) -> None:
        """The CUDA line comes from the engine itself (its torch build and driver), in the background."""
        from ..client.engine_client import EngineError, engine_python
        from .tasks import EngineTask

        try:
            engine_python()
        except EngineError as exc:
            self.cuda_note.setText(str(exc))
            return
        self.task = EngineTask(tr("GeoCLIP: checking CUDA"), "info", {"device": "auto"})
        self.task.done.connect(self._cuda_answer)
        self.task.failed.connect(lambda err: self._cuda_answer({"error": err.get("message", "")}))
        QgsApplication.taskManager().addTask(self.task)

    def _cuda_answer(self, info: dict) -> None:
        if self.task is None:  # closed meanwhile (the dialog is not modal): nothing to show it in
            return
        self.task = None
        self.cuda_note.setText(info["error"] if "error" in info else
                               tr("CUDA is usable: {}").format(info["cuda"]) if info.get("cuda_usable")
                               else tr("CUDA is not usable: {}").format(info.get("cuda", "")))
        if isinstance(info.get("precision"), dict):
            self.precision_note.setText(tr("Automatic precision here: {}").format(info["precision"].get("reason", "")))

    def shutdown(self) -> None:
        """Closing (or unloading the plugin) drops the CUDA check: its answer never reaches a deleted label."""
        task, self.task = self.task, None
        if task is not None:
            for signal in (task.done, task.failed):
                with contextlib.suppress(RuntimeError, TypeError):
                    signal.disconnect()
            with contextlib.suppress(RuntimeError):
                task.cancel()

    def done(self, result: int) -> None:  # accept, reject and the window's close all end here
        self.shutdown()
        super().done(result)

    def save(self) -> None:
        """Takes effect on the next run: a new engine Python restarts the worker (stopped here, in the background;
        the next request starts the new one); other engine options are sent with every request and the worker
        rebuilds its engine when they differ (equal options keep the loaded model)."""
        python_changed = (self.python.filePath() or "") != (get("engine_python") or "")
        python_changed |= self.background.isChecked() != background_fields()  # the worker reads it at start
        put("background_fields", "on" if self.background.isChecked() else "off")
        put("engine_python", self.python.filePath())
        put("device", self.device.currentData())
        put("precision", self.precision.currentData())
        put("clip_path", self.clip.filePath())
        put("weights", self.weights.filePath())
        put("gallery", self.gallery.text().strip() or "default")
        put("cache_dir", self.cache.filePath())
        if python_changed:
            from ..client.engine_client import shutdown_shared

            shutdown_shared(wait=False)

    def accept(self) -> None:
        self.save()
        super().accept()
