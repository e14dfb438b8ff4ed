"""The CLIP download without an engine (the standard-library downloader on a QGIS task), what a failed download
says, QGIS's proxy for the engine's download, and whether a CLIP on disk is ready."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFileDialog

from ...client import downloader
from ...client.engine_client import EngineError, data_dir, engine_python
from ...shared import defaults, protocol
from .. import settings_dialog as settings
from ..settings_dialog import redact, tr

CLIP_HUB_ID = defaults.CLIP_REPO


def download_error_text(exc: BaseException) -> str:
    """What the user reads when a download fails: the download's own refusals say what they are and what fixes
    them (shared/hub_files.py: "no connection to the model host (…)", disk, checksum, host); anything else is
    shown as it is, never a raw urlopen error."""
    import socket
    import urllib.error

    if isinstance(exc, downloader.DownloadError):
        return str(exc)
    reason = getattr(exc, "reason", None)
    if isinstance(exc, (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError)) or \
            isinstance(reason, (socket.gaierror, OSError)):
        why = reason if reason is not None else exc
        return tr("no connection to the model host ({}): check the network or proxy, or use a CLIP folder you "
                  "already have").format(getattr(why, "strerror", None) or why)
    return str(exc)


class DownloadTask(QgsTask):
    progressed = pyqtSignal(int, int, str)

    def __init__(self, folder: Path, endpoint: Optional[str] = None):
        super().__init__(tr("GeoCLIP: downloading CLIP ViT-L/14"), QgsTask.Flag.CanCancel)
        self.folder, self.endpoint = folder, endpoint
        self.error: Optional[str] = None

    def run(self) -> bool:
        try:
            downloader.download_clip_folder(
                self.folder, lambda d, t: (self.setProgress(100.0 * d / max(t, 1)),
                                           self.progressed.emit(d, t, "CLIP ViT-L/14")),
                self.isCanceled, endpoint=self.endpoint, proxy=qgis_proxy())
            return True
        except Exception as exc:  # network, disk, checksum: all shown to the user
            self.error = download_error_text(exc)
            return False


def worker_can_download() -> bool:
    """The worker's download_clip op is in the protocol (both its ops list and its schema) and an engine is
    installed to run it."""
    if "download_clip" not in protocol.OPS or "download_clip" not in protocol.SCHEMA:
        return False
    try:
        engine_python()
    except EngineError:
        return False
    return True


def qgis_proxy() -> Optional[str]:
    """QGIS's HTTP proxy (Settings › Options › Network) as a URL, or None."""
    from qgis.core import QgsSettings

    s = QgsSettings()
    enabled = str(s.value("proxy/proxyEnabled", "false")).lower() in ("true", "1")
    host, port = s.value("proxy/proxyHost", ""), s.value("proxy/proxyPort", "")
    if not enabled or not host:
        return None
    return f"http://{host}:{port}" if port else f"http://{host}"


def clip_on_disk(entry: dict) -> bool:
    """The engine resolves a missing CLIP to the hub id (it would download on first use): that is not "ready"."""
    path = str(entry.get("path") or "")
    return bool(entry.get("ok")) and path != CLIP_HUB_ID and os.path.isdir(path)


class DownloadPanel:
    """The manager's CLIP rows: download (through the worker's op when an engine is installed, else the plugin's
    own download on a QGIS task) or a folder the user has. A mixin of ManagerDialog, which holds the widgets
    (labels, progress, log) and the task in flight."""

    def models_dir(self) -> Path:
        return data_dir() / "models" / "clip-vit-large-patch14"

    def start_download(self) -> None:
        """Through the worker's download_clip op (huggingface_hub layout in the HF cache, progress and cancel over
        the protocol, "no connection to the model host" when offline) when the protocol has it and the engine is
        installed; else the plugin's standard-library downloader into the plugin's models folder."""
        if worker_can_download():
            self.start_worker_download()
            return
        folder = self.models_dir()
        self.append(tr("Downloading {} into {} (resumes if interrupted).").format(
            downloader.CLIP_REPO, redact(str(folder))))
        task = DownloadTask(folder)
        task.progressed.connect(self.download_progress)
        task.taskCompleted.connect(self.download_done)
        task.taskTerminated.connect(self.download_stopped)
        self.task = task
        self._busy(True)
        QgsApplication.taskManager().addTask(task)

    def start_worker_download(self) -> None:
        from ..tasks import EngineTask

        self.append(tr("Downloading {} into the Hugging Face cache (resumes if interrupted; Cancel keeps the "
                       "part done).").format(CLIP_HUB_ID))
        params = {"dest": None}
        proxy = qgis_proxy()
        if proxy:
            params["proxy"] = proxy
        task = EngineTask(tr("GeoCLIP: downloading CLIP ViT-L/14"), "download_clip", params)
        self._start_engine_task(task, self.worker_download_done, self.worker_download_failed)

    def worker_download_done(self, result: dict) -> None:
        if result.get("cancelled"):
            self.worker_download_failed({"message": tr("cancelled; the part done is kept and resumes next time")})
            return
        if result.get("path"):
            settings.put("clip_path", str(result["path"]))  # holds even when the dialog was closed meanwhile
        if self.closing:
            return
        self.append(tr("CLIP downloaded and checked ({:,.0f} MiB).").format(result.get("bytes", 0) / 2**20))
        self.task = None
        self._busy(False)
        self.refresh()

    def worker_download_failed(self, error: dict) -> None:
        if self.closing:
            return
        message = str(error.get("message") or tr("cancelled"))
        hint = str(error.get("hint") or "")
        self.append(tr("Download stopped: {}").format(message) + (f"\n{hint}" if hint and hint not in message else ""))
        self.labels["clip"].setText("<span style='color:#b00'>✘</span> " + redact(message))
        self.task = None
        self._busy(False)

    def download_progress(self, done: int, total: int, name: str) -> None:
        if self.closing:
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * done / max(total, 1)))
        self.progress.setFormat(f"{name}: {done / 2**20:,.0f} / {total / 2**20:,.0f} MiB")

    def download_stopped(self) -> None:
        if self.closing:
            return
        error = getattr(self.task, "error", None)
        self.append(tr("Download stopped: {}").format(error or tr("cancelled")))
        self.labels["clip"].setText("<span style='color:#b00'>✘</span> " + redact(error or tr("download cancelled")))
        self.task = None
        self._busy(False)

    def download_done(self) -> None:
        folder = self.models_dir()
        settings.put("clip_path", str(folder))  # the setting holds even when the dialog was closed meanwhile
        if self.closing:
            return
        self.append(tr("CLIP downloaded and checked."))
        self.task = None
        self._busy(False)
        self.refresh()

    def pick_clip_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, tr("Folder holding openai/clip-vit-large-patch14"))
        if folder:
            settings.put("clip_path", folder)
            self.append(tr("Using CLIP from {}; checking it…").format(redact(folder)))
            self.refresh()  # the worker rebuilds its engine itself for the new CLIP folder

    # ---- closing ----------------------------------------------------------------------------------------------
