"""The engine's background work, shown in QGIS's task bar: the coarse world fields it builds after it starts.

The worker builds the 0.5° and 0.25° world fields (location features of every cell) in a background thread that
pauses whenever a request waits or runs (a GeoCLIP job never waits on it), so that world and continent maps read a
field instead of running the encoder. (An OS priority for that thread was tried: on a loaded machine the build
starved, as torch's other threads wait for the niced one.) Nothing of it used to show in QGIS while a core ran at
~96 %. This task watches the fields' meta.json in the cache folder (no request to the worker, which would pause the
build) and reports their rows as progress. Cancel stops it for this session: the worker is restarted without
background work as soon as it is idle (the rows done are kept, a later session resumes them). Settings › "Build
coarse world fields in the background" turns it off for good.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional, Tuple

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QTimer

from ..client.engine_client import shared_client, shutdown_shared
from . import settings_dialog as settings
from .settings_dialog import tr

PYRAMID_ENV = "GEOCLIP_PYRAMID"  # read by the worker at engine start (core/service/worker.py)
LEVELS = (0.5, 0.25)  # core/maps/field_choice.py PYRAMID: the levels the worker builds
APPEAR_SECONDS = 180.0  # a build that has not started by then is not coming (disabled, or nothing to do)

_watch: dict = {}


def enabled() -> bool:
    """Background fields on: the setting, and no GEOCLIP_PYRAMID=0 in this session's environment."""
    if os.environ.get(PYRAMID_ENV, "").strip().lower() in ("0", "off", "no", "false", "none"):
        return False
    return settings.background_fields()


def progress(cache_dir: Path, levels=LEVELS) -> Tuple[int, int]:
    """(rows done, rows) of the world fields at `levels` found in `cache_dir` (0, 0 when none exists yet)."""
    done = total = 0
    root = Path(cache_dir) / "fields"
    for res in levels:
        best: Optional[Tuple[int, int]] = None
        for meta in root.glob(f"field-{res:g}deg-*/meta.json") if root.is_dir() else []:
            try:
                m = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            rows = int((m.get("grid") or {}).get("height") or round(180 / res))
            cand = (min(int(m.get("rows_done", 0)), rows), rows)
            if best is None or cand[1] > best[1]:
                best = cand
        if best is not None:
            done, total = done + best[0], total + best[1]
    return done, total


class BackgroundFieldTask(QgsTask):
    """A task-bar entry for the worker's background field build; its progress is the rows done on disk."""

    def __init__(self, cache_dir: str):
        super().__init__(tr("GeoCLIP: building coarse world fields in the background (pauses for your runs)"),
                         QgsTask.Flag.CanCancel)
        self.cache_dir = Path(cache_dir)
        self.outcome = ""

    def run(self) -> bool:
        started = time.monotonic()
        seen = False  # the engine seen running: its end then ends the watch
        while not self.isCanceled():
            done, total = progress(self.cache_dir)
            seen = seen or shared_client().alive
            if total:
                self.setProgress(100.0 * done / total)
                if done >= total and total >= sum(round(180 / r) for r in LEVELS):
                    self.outcome = "complete"
                    return True
            elif time.monotonic() - started > APPEAR_SECONDS:
                self.outcome = "not started"
                return True
            if seen and not shared_client().alive:
                self.outcome = "engine stopped"
                return True
            time.sleep(1.0)
        return False

    def finished(self, ok: bool) -> None:  # main thread
        _watch.pop("task", None)
        if not ok and not _watch.pop("unloading", False):
            stop_for_this_session()


def watch() -> None:
    """Show the build in the task bar (once per engine start; nothing when it is turned off or already done)."""
    if not enabled() or "task" in _watch:
        return
    cache = settings.engine_options()["cache_dir"]
    done, total = progress(Path(cache))
    if total and done >= total:
        return
    task = BackgroundFieldTask(cache)
    _watch["task"] = task
    QgsApplication.taskManager().addTask(task)


def unload() -> None:
    """Plugin unload: the task bar entry goes (the worker is stopped by the unload itself)."""
    task = _watch.get("task")
    if task is not None:
        _watch["unloading"] = True
        try:
            task.cancel()
        except RuntimeError:  # already deleted by QGIS
            _watch.clear()


def stop_for_this_session() -> None:
    """Cancelled from the task bar: no background fields until QGIS restarts; the worker, which builds them in a
    thread of its own, is restarted without them as soon as no request runs (the rows done stay on disk)."""
    os.environ[PYRAMID_ENV] = "0"

    def when_idle() -> None:
        if shared_client().running_op is None:
            shutdown_shared(wait=False)
        else:
            QTimer.singleShot(2000, when_idle)

    when_idle()
