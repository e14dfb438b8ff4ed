"""The CLIP download without an engine (the standard-library downloader on a QGIS task), what a failed download
says, QGIS's proxy for the engine's download, and whether a CLIP on disk is ready."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ...client import downloader
from ...client.engine_client import EngineError, engine_python
from ...shared import defaults, protocol
from ..settings_dialog import tr

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
