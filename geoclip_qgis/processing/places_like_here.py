"""Processing: 'places like here' — similarity of every cell's location feature to one point's."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterPoint,
    QgsProcessingParameterRasterDestination,
)

from ..layers.results import style_similarity
from .base import GeoClipAlgorithm, tr, tr_noop
from .postprocess import StyleOnLoad


class PlacesLikeHere(GeoClipAlgorithm):
    _name = "places_like_here"
    _display = tr_noop("Places like here")
    _group = "maps"
    _help = tr_noop(
        "Cosine similarity between the GeoCLIP location feature of a point and that of every cell: 1 at the "
        "point itself, high where the model sees similar places (climate, landscape, culture as photos show "
        "them). Needs no CLIP backbone.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterPoint("POINT", tr("Place")))
        self.add_extent_parameters(0.5)
        self.add_engine_parameters(top_k=False, gallery=False, clip=False)
        self.add_advanced(QgsProcessingParameterBoolean("COG", tr("Write a Cloud Optimised GeoTIFF"), False))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Similarity raster")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        point = self.parameterAsPoint(parameters, "POINT", context)
        crs = self.parameterAsPointCrs(parameters, "POINT", context)
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        if crs.isValid() and crs != wgs84:
            point = QgsCoordinateTransform(crs, wgs84, context.transformContext()).transform(point)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        self.run_engine("similar", {
            "lat": point.y(), "lon": point.x(), "engine": self.engine_options(parameters, context),
            "extent": self.extent_wsen(parameters, context),
            "resolution": self.parameterAsDouble(parameters, "RESOLUTION", context),
            "cog": self.parameterAsBool(parameters, "COG", context), "out": out}, feedback)
        StyleOnLoad.attach(context, out, style_similarity)
        return {"OUTPUT": out}
