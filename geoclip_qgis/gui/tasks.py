"""Background work for the GUI: a QgsTask that runs one engine request and hands results to the main thread.

run() executes on a QGIS worker thread and only emits signals; every widget and layer update happens in slots
connected from the main thread (queued connections), so QGIS never freezes and Qt's thread rules hold.

The GUI's jobs run one at a time (the worker serves one request at a time anyway). A job queued behind another says
so ("Waiting for … to finish…") and can be cancelled while it waits: it then never reaches the worker. A cancelled job
finishes with a result {"cancelled": True, ...}: the dock and map tool add nothing for it. It ends in QgsTask's
Terminated state (run() returns False), so QGIS's task bar and its end-of-task notice never say "Task complete" for
it, and its description says it was cancelled.
"""

from __future__ import annotations

import inspect
import threading
import time
from typing import Any, Dict, Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..client.engine_client import OP_WORDS, EngineError, shared_client, waiting_text
from ..i18n import tr

_gate = threading.Lock()  # one GUI job at a time, acquired with a timeout so that a waiting job can be cancelled
_running: Dict[str, str] = {}  # the description of the job that holds the gate
POLL = 0.1


def running_job() -> Optional[str]:
    return _running.get("description")


class EngineTask(QgsTask):
    rowReady = pyqtSignal(dict)  # noqa: N815 - Qt naming
    progressText = pyqtSignal(str)  # noqa: N815
    counts = pyqtSignal(int, int)  # done, total as the worker reports them (the bar shows what was done)
    done = pyqtSignal(dict)
    failed = pyqtSignal(dict)

    def __init__(self, description: str, op: str, params: Dict[str, Any], client=None):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.op = op
        self.params = params
        self.client = client
        self.result: Optional[Dict[str, Any]] = None
        self.error: Optional[Dict[str, Any]] = None
        self.waited = False  # did this job wait behind another one?
        self.started_running: Optional[float] = None
        self.cancel_requested: Optional[float] = None
        self.ended: Optional[float] = None
        self.last = (0, 0)

    def cancel(self) -> None:  # main thread
        if self.cancel_requested is None:
            self.cancel_requested = time.monotonic()
            self.setDescription(tr("{} (cancelled)").format(self.description()))
        super().cancel()

    @property
    def cancelled_result(self) -> bool:
        return isinstance(self.result, dict) and bool(self.result.get("cancelled"))

    @property
    def cancel_seconds(self) -> Optional[float]:
        """From Cancel to the task's end (measured by the tests and shown in the closing note)."""
        if self.cancel_requested is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.cancel_requested)

    def _wait(self, lock, who) -> bool:
        """Acquire `lock`, saying what we wait for and giving up when cancelled. True when acquired."""
        said = None
        while not lock.acquire(timeout=POLL):
            if self.isCanceled():
                return False
            name = who()
            if name and name != said:
                self.waited = True
                self.progressText.emit(waiting_text(name))
                said = name
        return True

    def _waiting(self, message: str) -> None:
        self.waited = True
        self.progressText.emit(message)

    def run(self) -> bool:
        def progress(done: int, total: int, message: str) -> None:
            if message:  # the step first, then its counts (a new step forgets the last one's)
                self.progressText.emit(message)
            if total:
                self.last = (done, total)
                self.counts.emit(done, total)
                self.setProgress(100.0 * done / total)

        client = self.client or shared_client()
        try:
            if not self._wait(_gate, lambda: running_job() or "the running GeoCLIP job"):
                self.result = {"cancelled": True, "started": False}
                return False
            try:
                _running["description"] = OP_WORDS.get(self.op, self.description())  # "the field build"
                # Processing or the manager may hold the client: wait for them too, still cancellable. A client
                # that says what it waits for (on_waiting) does it itself; an older one is probed here.
                kwargs: Dict[str, Any] = {}
                if "on_waiting" in inspect.signature(client.call).parameters:
                    kwargs["on_waiting"] = self._waiting
                else:
                    if not self._wait(client.lock, lambda: "another GeoCLIP job (Processing or the manager)"):
                        self.result = {"cancelled": True, "started": False}
                        return False
                    client.lock.release()
                if self.isCanceled():
                    self.result = {"cancelled": True, "started": False}
                    return False
                self.started_running = time.monotonic()
                self.result = client.call(self.op, self.params, on_progress=progress, on_row=self.rowReady.emit,
                                          is_cancelled=self.isCanceled, **kwargs)
                if self.isCanceled() and isinstance(self.result, dict):
                    self.result.setdefault("cancelled", True)
                return not self.cancelled_result  # a cancelled job ends Terminated, not Complete
            finally:
                _running.pop("description", None)
                _gate.release()
        except EngineError as exc:
            self.error = dict(exc.info)
            return False
        except Exception as exc:  # never let an exception escape a task thread
            self.error = {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
            return False
        finally:
            self.ended = time.monotonic()

    def finished(self, ok: bool) -> None:  # main thread
        if self.ended is None:
            self.ended = time.monotonic()
        if ok or self.cancelled_result:
            self.done.emit(self.result or {})
        elif self.error is None:  # QGIS cancelled the task before run() started
            self.done.emit({"cancelled": True, "started": False})
        else:
            self.failed.emit(self.error)
