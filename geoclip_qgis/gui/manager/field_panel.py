"""The manager's world-field row: is the 0.1° world location field built, and building it (resumable) on the
shared worker. A mixin of ManagerDialog: it uses the dialog's labels, progress bar, log and busy state."""

from __future__ import annotations

from qgis.core import QgsApplication

from .. import settings_dialog as settings
from ..settings_dialog import redact, tr

WORLD_FIELD_RES = 0.1  # the lattice the dock's "auto" likelihood resolution and the 10 s goal refer to


class FieldPanel:
    """check_field -> show_field; start_field_build -> field_built / field_failed (then checked again)."""

    def check_field(self) -> None:
        from ..tasks import EngineTask

        self.task = EngineTask(tr("GeoCLIP: checking the world field"), "field_status",
                               {"engine": settings.engine_options(), "resolution": WORLD_FIELD_RES})
        self.task.done.connect(self.show_field)
        self.task.failed.connect(self.field_check_failed)
        QgsApplication.taskManager().addTask(self.task)

    def field_check_failed(self, error: dict) -> None:
        if self.closing:
            return
        self.task = None
        self.labels["field"].setText(f"<span style='color:#b00'>✘</span> {redact(str(error.get('message')))}")

    def show_field(self, status: dict) -> None:
        if self.closing:
            return
        self.task = None
        size = status.get("bytes", 0) / 1e9
        if status.get("complete"):
            self.labels["field"].setText(tr("<span style='color:#080'>✔</span> built ({:.1f} GB, {}): 0.1° world "
                                            "rasters are read from it").format(size, redact(status.get("path", ""))))
            self.build_field.setEnabled(False)
            return
        done, rows = status.get("rows_done", 0), max(status.get("rows", 1), 1)
        text = tr("not built: 0.1° world maps are computed cell by cell (minutes on a CPU). Building it once "
                  "takes {:.1f} GB of disk.").format(size)
        if done:
            text = tr("partly built ({:.0%}): Build resumes where it stopped.").format(done / rows)
        if status.get("problem"):
            text = tr("damaged ({}); Build repairs it.").format(status["problem"])
        self.labels["field"].setText(text)
        self.build_field.setEnabled(True)

    def start_field_build(self) -> None:
        from ..tasks import EngineTask

        task = EngineTask(tr("GeoCLIP: building the world location field"), "build_field",
                          {"engine": settings.engine_options(), "resolution": WORLD_FIELD_RES})
        self.append(tr("Encoding the world at 0.1° (resumable: Cancel keeps the rows done)."))
        self._start_engine_task(task, self.field_built, self.field_failed)

    def field_failed(self, error: dict) -> None:
        if self.closing:
            return
        self.append(tr("Field build stopped: {}").format(error.get("message", "")))
        self._busy(False)
        self.check_field()

    def field_built(self, result: dict) -> None:
        if self.closing:
            return
        self._busy(False)
        self.append(tr("Field build paused; click Build world field to resume.") if result.get("cancelled")
                    else tr("World location field built."))
        self.check_field()
