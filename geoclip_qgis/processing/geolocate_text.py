"""Processing: where does a text description fit? Points, and optionally a likelihood raster."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ..layers.results import prediction_features, prediction_fields, style_likelihood, style_predictions
from .base import GeoClipAlgorithm, tr, tr_noop
from .case_params import add_case_parameters, case_request
from .geolocate_photos import AnswerSinks, add_answer_sinks
from .postprocess import StyleOnLoad


class GeolocateText(GeoClipAlgorithm):
    _name = "geolocate_text"
    _display = tr_noop("Geolocate text query")
    _group = "geolocation"
    _help = tr_noop(
        "Finds the places that best match a description such as 'snowy alpine village' or 'rice terraces': "
        "GeoCLIP's text tower puts the description in the same space as photos, and the top-k gallery "
        "points are returned. Several queries can be given, one per line. Optionally writes a likelihood "
        "raster (probability per km²) for the first query. Optional outputs: the distinct places (with "
        "offline names) and one summary row per query; an optional area of interest (polygons) restricts "
        "the answer to it and reports the share of the probability that fell outside.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterString("QUERY", tr("Text description(s), one per line"),
                                                       multiLine=True))
        self.add_engine_parameters()
        self.add_extent_parameters(0.5)
        self.add_aoi_parameter()
        add_case_parameters(self, hint=False)
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", tr("Matching places"),
                                                            QgsProcessing.SourceType.TypeVectorPoint))
        add_answer_sinks(self)
        self.addParameter(QgsProcessingParameterRasterDestination("RASTER", tr("Likelihood raster"), optional=True,
                                                                  createByDefault=False))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        queries = [q.strip() for q in self.parameterAsString(parameters, "QUERY", context).splitlines() if q.strip()]
        if not queries:
            raise QgsProcessingException(tr("Type a description, e.g. 'snowy alpine village'"))
        aoi = case_request(self, parameters, context, self.aoi_geojson(parameters, context)).get("aoi")
        fields = prediction_fields()
        sink, dest = self.sink(parameters, "OUTPUT", context, fields, QgsWkbTypes.Type.Point,
                               QgsCoordinateReferenceSystem("EPSG:4326"))
        answers = AnswerSinks(self, parameters, context)
        engine = self.engine_options(parameters, context)

        def on_row(row):
            answers.add(row)
            sink.addFeatures(prediction_features(row, fields), QgsFeatureSink.Flag.FastInsert)

        params = {"queries": queries, "engine": engine, "top_k": self.parameterAsInt(parameters, "TOP_K", context)}
        if aoi is not None:
            params["aoi"] = aoi
        self.run_engine("geolocate_text", params, feedback, on_row=on_row)
        answers.report(feedback)
        StyleOnLoad.attach(context, dest, style_predictions)
        results = {"OUTPUT": dest, **answers.outputs(context)}
        raster = self.parameterAsOutputLayer(parameters, "RASTER", context)
        if raster and not feedback.isCanceled():
            lparams = {"text": queries[0], "engine": engine, "extent": self.extent_wsen(parameters, context),
                       "resolution": self.parameterAsDouble(parameters, "RESOLUTION", context), "out": raster}
            if aoi is not None:
                lparams["aoi"] = aoi
            out = self.run_engine("likelihood", lparams, feedback)
            feedback.pushInfo(tr("Densest cell: {:.4f}, {:.4f}").format(out["best_lat"], out["best_lon"]))
            StyleOnLoad.attach(context, raster, style_likelihood)
            results["RASTER"] = raster
        return results
