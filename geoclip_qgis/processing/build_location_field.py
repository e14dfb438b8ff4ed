"""Processing: encode a lattice once (a location field), so later rasters on it are read instead of computed."""

from __future__ import annotations

from qgis.core import QgsProcessingOutputBoolean, QgsProcessingOutputString

from .base import GeoClipAlgorithm, tr, tr_noop


class BuildLocationField(GeoClipAlgorithm):
    _name = "build_location_field"
    _display = tr_noop("Build location field")
    _group = "fields"
    _help = tr_noop(
        "Runs GeoCLIP's location encoder once over every cell of the extent at this cell size and stores the "
        "result in the engine's cache. Likelihood, 'places like here' and PCA rasters on that lattice are then "
        "read from it: the whole world at 0.1° takes about a second instead of minutes on a CPU. "
        "The world at 0.1° needs 6.7 GB of disk and takes 8–15 minutes on a 2-core CPU (seconds on a GPU). "
        "Cancelling keeps the rows done: run it again to resume. Needs no CLIP backbone.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_extent_parameters(0.1)
        self.add_engine_parameters(top_k=False, gallery=False, clip=False)
        self.addOutput(QgsProcessingOutputString("PATH", tr("Field folder")))
        self.addOutput(QgsProcessingOutputBoolean("COMPLETE", tr("Complete")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        res = self.run_engine("build_field", {
            "engine": self.engine_options(parameters, context), "extent": self.extent_wsen(parameters, context),
            "resolution": self.parameterAsDouble(parameters, "RESOLUTION", context)}, feedback)
        if res.get("cancelled"):
            feedback.pushInfo(tr("Cancelled: the rows done are kept; run the algorithm again to resume."))
            return {"PATH": "", "COMPLETE": False}
        feedback.pushInfo(tr("Location field ready: {} ({:.2f} GiB)").format(res["path"], res["bytes"] / 2**30))
        return {"PATH": res["path"], "COMPLETE": bool(res["complete"])}
