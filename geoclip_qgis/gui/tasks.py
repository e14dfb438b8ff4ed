"""Background work for the GUI: a QgsTask that runs one engine request and hands results to the main thread.

run() executes on a QGIS worker thread and only emits signals; every widget and layer update happens in slots
connected from the main thread (queued connections), so QGIS never freezes and Qt's thread rules hold.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..engine_client import EngineError, shared_client


class EngineTask(QgsTask):
    rowReady = pyqtSignal(dict)  # noqa: N815 - Qt naming
    progressText = pyqtSignal(str)  # noqa: N815
    done = pyqtSignal(dict)
    failed = pyqtSignal(dict)

    def __init__(self, description: str, op: str, params: Dict[str, Any]):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.op = op
        self.params = params
        self.result: Optional[Dict[str, Any]] = None
        self.error: Optional[Dict[str, Any]] = None

    def run(self) -> bool:
        def progress(done: int, total: int, message: str) -> None:
            if total:
                self.setProgress(100.0 * done / total)
            if message:
                self.progressText.emit(message)

        try:
            self.result = shared_client().call(self.op, self.params, on_progress=progress,
                                               on_row=self.rowReady.emit, is_cancelled=self.isCanceled)
            return True
        except EngineError as exc:
            self.error = dict(exc.info)
            return False
        except Exception as exc:  # never let an exception escape a task thread
            self.error = {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
            return False

    def finished(self, ok: bool) -> None:  # main thread
        if ok:
            self.done.emit(self.result or {})
        else:
            self.failed.emit(self.error or {"code": "cancelled", "message": "cancelled"})
