"""Processing: likelihood raster (probability per km²) for photos of one place, or for a text."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..layers import style_likelihood
from .base import GeoClipAlgorithm, tr, tr_noop
from .postprocess import StyleOnLoad

METHODS = ["auto", "coarse-to-fine", "dense", "field"]  # appended only: saved models keep their index


class LikelihoodRaster(GeoClipAlgorithm):
    _name = "likelihood_raster"
    _display = tr_noop("Likelihood raster")
    _help = tr_noop(
        "Maps how likely each place is for the given photo(s) or text, as probability density per km² "
        "(area-aware: the raster times cell area sums to 1 over the extent). Several photos of one place are "
        "fused: their likelihoods multiply (their GeoCLIP scores add), giving a sharper map and one best "
        "estimate. When a location field covers the extent at this cell size (Engine and models > "
        "Build world field, or `geoclip-qgis field`), the map is read from it in seconds and the extent "
        "snaps to its 0.1° lattice; otherwise large grids are computed coarse-to-fine: exact where the "
        "probability mass is.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers("PHOTOS", tr("Photos (of one place)"),
                                                               QgsProcessing.SourceType.TypeFile, optional=True))
        self.addParameter(QgsProcessingParameterString("TEXT", tr("…or a text description"), optional=True))
        self.add_extent_parameters(0.5)
        self.add_engine_parameters(top_k=False)
        self.add_advanced(QgsProcessingParameterEnum("METHOD", tr("Method"), METHODS, defaultValue=0))
        self.add_advanced(QgsProcessingParameterBoolean("COG", tr("Write a Cloud Optimised GeoTIFF"), False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Likelihood raster")))
        self.addOutput(QgsProcessingOutputNumber("BEST_LAT", tr("Best estimate latitude")))
        self.addOutput(QgsProcessingOutputNumber("BEST_LON", tr("Best estimate longitude")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        photos = [p for p in (self.parameterAsFileList(parameters, "PHOTOS", context) or []) if p]
        text = self.parameterAsString(parameters, "TEXT", context).strip()
        if bool(photos) == bool(text):
            raise QgsProcessingException(tr("Give either photos or a text description (not both)."))
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        res = self.run_engine("likelihood", {
            "photos": photos, "text": text, "engine": self.engine_options(parameters, context),
            "extent": self.extent_wsen(parameters, context),
            "resolution": self.parameterAsDouble(parameters, "RESOLUTION", context),
            "method": METHODS[self.parameterAsEnum(parameters, "METHOD", context)],
            "cog": self.parameterAsBool(parameters, "COG", context), "out": out}, feedback)
        feedback.pushInfo(tr("Best estimate: {:.5f}, {:.5f} ({} cells scored, {})").format(
            res["best_lat"], res["best_lon"], res["stats"].get("evaluated"), res["stats"].get("method")))
        StyleOnLoad.attach(context, out, style_likelihood)
        return {"OUTPUT": out, "BEST_LAT": res["best_lat"], "BEST_LON": res["best_lon"]}
