"""CLIP ViT-L/14 for the plugin before any engine is installed: shared/hub_files.py's download (the same files,
resume, sha256 checks and refusals as the engine's) over the standard library (shared/hub_http.py), so it runs in a
QgsTask on QGIS's own Python. The folder it fills is a plain CLIP folder the engine loads later."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..shared import hub_files
from ..shared.hub_files import CLIP_REPO, Cancelled, HubError  # noqa: F401 - the names the manager reads
from ..shared.hub_http import UrllibTransport

DownloadError = HubError  # every refusal a download can end in (network, disk, checksum, host)


def download_clip_folder(folder: Path, progress: Callable[[int, int], None],
                         is_cancelled: Callable[[], bool] = lambda: False, *, endpoint: Optional[str] = None,
                         proxy: Optional[str] = None, timeout: float = 30.0) -> dict:
    """Fill `folder` with CLIP ViT-L/14's files (progress(done_bytes, total_bytes)); a cancel keeps the partial
    file and the next call resumes it. Returns shared/hub_files.download's summary."""

    def check() -> None:
        if is_cancelled():
            raise Cancelled("cancelled; the bytes so far are kept and the next download resumes them")

    return hub_files.download(UrllibTransport(proxy), dest=Path(folder), endpoint=endpoint, progress=progress,
                              timeout=timeout, check=check)
