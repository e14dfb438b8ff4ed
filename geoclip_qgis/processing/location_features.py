"""Processing: rasterise GeoCLIP's location-encoder features (bands, or a PCA colour view)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from .base import GeoClipAlgorithm, tr, tr_noop

MODES = ["PCA colour view (3 bands, RGB)", "Feature bands"]


class LocationFeatures(GeoClipAlgorithm):
    _name = "location_features"
    _display = tr_noop("Rasterise location-encoder features")
    _group = "maps"
    _help = tr_noop(
        "Evaluates GeoCLIP's location encoder on every cell and writes its 512-dimensional embedding: either "
        "chosen dimensions as float bands (all 512 by default), or the first three principal components as "
        "an RGB image that shows the geography the model learned. Needs no CLIP backbone. Computed in tiles.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_extent_parameters(1.0)
        self.addParameter(QgsProcessingParameterEnum("MODE", tr("Output"), MODES, defaultValue=0))
        self.addParameter(QgsProcessingParameterString("BANDS", tr("Dimensions 0-511, comma-separated (empty: all)"),
                                                       "", optional=True))
        self.add_engine_parameters(top_k=False, gallery=False, clip=False)
        self.add_advanced(QgsProcessingParameterBoolean("NORMALISE", tr("Unit-normalise the embeddings"), False))
        self.add_advanced(QgsProcessingParameterBoolean("COG", tr("Write a Cloud Optimised GeoTIFF"), False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Feature raster")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        text = self.parameterAsString(parameters, "BANDS", context)
        try:
            bands = [int(b) for b in text.replace(";", ",").split(",") if b.strip()]
        except ValueError as exc:
            raise QgsProcessingException(tr("Bands must be integers 0-511, e.g. 0,1,2")) from exc
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        self.run_engine("features", {
            "pca": self.parameterAsEnum(parameters, "MODE", context) == 0, "bands": bands,
            "normalise": self.parameterAsBool(parameters, "NORMALISE", context),
            "engine": self.engine_options(parameters, context), "extent": self.extent_wsen(parameters, context),
            "resolution": self.parameterAsDouble(parameters, "RESOLUTION", context),
            "cog": self.parameterAsBool(parameters, "COG", context), "out": out}, feedback)
        return {"OUTPUT": out}
