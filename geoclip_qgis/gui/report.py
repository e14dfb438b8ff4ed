"""The dock's 'Report (PDF)…': the engine says which model and weights answered (one `info` request, in a task),
the case layout is built from the shipped template on the main thread (layers/report/layout.py, fractions of a
second: it reads no pixels and hashes nothing), and the PDF is exported in a QgsTask, so QGIS never freezes.

The PDF is written under a temporary name of our own and renamed when complete (CaseLayout.export_pdf, the same
path as Processing's): a cancelled or failed export leaves the analyst's earlier file as it was."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional

from qgis.core import QgsApplication, QgsFeedback, QgsProject, QgsTask, QgsVectorLayer
from qgis.PyQt.QtCore import pyqtSignal

from ..layers.report.layout import CaseLayout, engine_meta
from .settings_dialog import tr
from .tasks import EngineTask


class ReportTask(QgsTask):
    """Export a built case layout to one PDF off the main thread (QgsLayoutExporter over its atlas)."""

    exported = pyqtSignal(bool, str, str)  # ok, path, error

    def __init__(self, case: CaseLayout, path: str):
        super().__init__(tr("GeoCLIP case report"), QgsTask.Flag.CanCancel)
        self.case, self.path = case, path
        self.feedback = QgsFeedback()
        self.feedback.progressChanged.connect(self.setProgress)
        self.ok, self.error = False, ""

    def run(self) -> bool:
        try:  # written under a temporary name, renamed when complete (CaseLayout.export_pdf)
            self.ok, self.error = self.case.export_pdf(self.path, self.feedback)
        except Exception as exc:  # reported in the dock, never raised into QGIS's task manager
            self.ok, self.error = False, str(exc)
        return self.ok

    def cancel(self) -> None:
        self.feedback.cancel()
        super().cancel()

    def finished(self, ok: bool) -> None:  # main thread
        self.exported.emit(bool(ok and self.ok), self.path,
                           tr("cancelled") if self.feedback.isCanceled() else self.error)


class ReportJob:
    """One press of 'Report (PDF)…': info, then the layout, then the export task; `on_done(ok, path, error)`."""

    def __init__(self, engine_options: Dict[str, Any], summary: QgsVectorLayer, path: str,
                 places: Optional[QgsVectorLayer] = None, regions: Optional[QgsVectorLayer] = None,
                 likelihood=None, on_done: Optional[Callable[[bool, str, str], None]] = None):
        self.summary, self.places, self.regions, self.likelihood = summary, places, regions, likelihood
        self.path, self.on_done = path, on_done
        self.task: Optional[QgsTask] = None
        self.case: Optional[CaseLayout] = None
        self.info = EngineTask(tr("GeoCLIP: which model answered"), "info", {"engine": engine_options})

    def start(self) -> None:
        self.info.done.connect(self._build)
        self.info.failed.connect(lambda _error: self._build({}))  # a report without weights' lines, not none
        self.task = self.info
        QgsApplication.taskManager().addTask(self.info)

    def _build(self, info: Dict[str, Any]) -> None:
        try:
            self.case = CaseLayout(QgsProject.instance(), self.summary, self.places, self.regions,
                                   engine_meta(info or {}), self.likelihood)
        except (ValueError, RuntimeError) as exc:
            self._done(False, self.path, str(exc))
            return
        self.task = ReportTask(self.case, self.path)
        self.task.exported.connect(self._done)
        QgsApplication.taskManager().addTask(self.task)

    def _done(self, ok: bool, path: str, error: str) -> None:
        self.task = None
        if self.on_done is not None:
            self.on_done(ok, path, error)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


def run_layers_for_report(run, active) -> Dict[str, Any]:
    """The layers a report is made of: the dock's last run (summary, places, regions, likelihood), else the active
    layer when it is a GeoCLIP summary layer (a kept run opened from its GeoPackage)."""
    layers = dict(getattr(run, "layers", None) or {}) if run is not None else {}
    group = getattr(run, "group", None)
    if group is not None and layers.get("likelihood") is None:  # the run's raster, when it made one
        for node in group.findLayers():
            layer = node.layer()
            if layer is not None and layer.customProperty("geoclip/kind") == "likelihood":
                layers["likelihood"] = layer
    if layers.get("summary") is None and isinstance(active, QgsVectorLayer) and \
            {"source", "status", "sha256"} <= set(active.fields().names()):
        layers = {"summary": active}
    return layers


def start_from_dock(dock) -> Optional[ReportJob]:
    """'Report (PDF)…': ask where, then start the job; the dock's status line says how it went."""
    from qgis.PyQt.QtWidgets import QFileDialog

    layers = run_layers_for_report(dock.run_state, dock.iface.activeLayer())
    summary = layers.get("summary")
    if summary is None:
        dock.status.setText(tr("Run some photos first, or select a GeoCLIP summary layer, to make a report."))
        return None
    home = QgsProject.instance().absolutePath() or os.path.expanduser("~")
    path, _ = QFileDialog.getSaveFileName(dock, tr("Case report"), os.path.join(home, "geoclip_case_report.pdf"),
                                          tr("PDF files (*.pdf)"))
    if not path:
        return None
    if not path.lower().endswith(".pdf"):
        path += ".pdf"
    return start_report(dock, summary, path, layers)


def start_report(dock, summary: QgsVectorLayer, path: str, layers: Dict[str, Any]) -> ReportJob:
    def done(ok: bool, out: str, error: str) -> None:
        dock.report_button.setEnabled(True)
        dock.report_job = None
        dock.status.setText(tr("Case report written: {}").format(out) if ok else
                            tr("The case report was not written: {}").format(error or tr("unknown reason")))

    job = ReportJob(dock.engine_options(), summary, path, layers.get("places"), layers.get("regions"),
                    layers.get("likelihood"), done)
    dock.report_job = job
    dock.report_button.setEnabled(False)
    dock.status.setText(tr("Making the case report…"))
    job.start()
    return job
