"""Processing: 'Case report (PDF)' — the print layout of the plugin's template, an atlas over a GeoCLIP summary layer
(a case page, then one page per photo), exported to one PDF. The same builder as the dock's button
(layers/report/layout.py); the engine is asked only which model and weights answered."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterVectorLayer,
    QgsProject,
)

from ..layers.report.layout import CaseLayout, engine_meta
from .base import GeoClipAlgorithm, tr, tr_noop


class CaseReport(GeoClipAlgorithm):
    _name = "case_report"
    _display = tr_noop("Case report (PDF)")
    _group = "geolocation"
    _help = tr_noop(
        "A PDF to hand on, from a GeoCLIP summary layer (one row per photo): a case page, then one page per photo "
        "with the photo, what drove its answer (when the run asked 'Why'), a map of its places and regions, the "
        "places table, EXIF time, camera and GPS with the distance to the answer, the photo's SHA-256, the model, "
        "the weights' SHA-256, the software version and the date. The layout comes from the plugin's template "
        "(case_report.qpt), which can be edited in the layout designer.")

    def flags(self):
        # Layouts are drawn on QGIS's main thread; the dock's button exports in a background task instead.
        return super().flags() | QgsProcessingAlgorithm.Flag.FlagNoThreading

    def initAlgorithm(self, config=None):  # noqa: N802
        vector = [QgsProcessing.SourceType.TypeVectorPoint]
        self.addParameter(QgsProcessingParameterVectorLayer("SUMMARY", tr("Summary layer (one row per photo)"),
                                                            vector))
        self.addParameter(QgsProcessingParameterVectorLayer("PLACES", tr("Places layer"), vector, optional=True))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "REGIONS", tr("Confidence regions layer"), [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.add_engine_parameters(top_k=False, gallery=False, clip=False)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", tr("Case report"),
                                                                tr("PDF files (*.pdf)")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        summary = self.parameterAsVectorLayer(parameters, "SUMMARY", context)
        if summary is None or not {"source", "status"} <= set(summary.fields().names()):
            raise QgsProcessingException(tr("The summary layer must be a GeoCLIP summary (one row per photo)."))
        places = self.parameterAsVectorLayer(parameters, "PLACES", context)
        regions = self.parameterAsVectorLayer(parameters, "REGIONS", context)
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        if not out.lower().endswith(".pdf"):
            raise QgsProcessingException(tr("Name the case report .pdf"))
        feedback.setProgressText(tr("Asking the engine which model answered"))
        try:
            info = self.run_engine("info", {"engine": self.engine_options(parameters, context)}, feedback)
        except QgsProcessingException as exc:  # the report is still made, without the weights' lines
            feedback.reportError(str(exc), False)
            info = {}
        case = CaseLayout(context.project() or QgsProject.instance(), summary, places, regions, engine_meta(info))
        feedback.setProgressText(tr("Writing {} pages").format(case.pages))
        ok, error = case.export_pdf(out, feedback)  # atomic: an earlier file is replaced only when complete
        if feedback.isCanceled():
            return {}
        if not ok:
            raise QgsProcessingException(tr("The PDF was not written: {}").format(error))
        return {"OUTPUT": out}
