"""Processing: likelihood raster (probability per km²) for photos of one place, or for a text."""

from __future__ import annotations

import os

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsVectorLayer,
    QgsWkbTypes,
)

from ..layers.results import region_fields, style_likelihood, style_regions
from .base import GeoClipAlgorithm, tr, tr_noop
from .case_params import add_case_parameters, case_request
from .postprocess import StyleOnLoad

METHODS = ["auto", "coarse-to-fine", "dense", "field"]  # appended only: saved models keep their index


class LikelihoodRaster(GeoClipAlgorithm):
    _name = "likelihood_raster"
    _display = tr_noop("Likelihood raster")
    _group = "maps"
    _help = tr_noop(
        "Maps how likely each place is for the given photo(s) or text, as probability density per km² "
        "(area-aware: the raster times cell area sums to 1 over the extent). Several photos of one place are "
        "fused: their likelihoods multiply (their GeoCLIP scores add), giving a sharper map and one best "
        "estimate. When a location field covers the extent at this cell size (Plugins › GeoCLIP › Engine and "
        "models… › Build world field, or the Build location field algorithm), the map is read from it in "
        "seconds and the extent snaps to its 0.1° lattice; otherwise large grids are computed coarse-to-fine: "
        "exact where the probability mass is. Optional: an area of interest (polygons) that restricts the map "
        "(the share of the probability outside it is reported), and the confidence regions — the smallest "
        "areas holding 50 % and 90 % (settable) of the probability — as polygons with their area in km².")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers("PHOTOS", tr("Photos (of one place)"),
                                                               QgsProcessing.SourceType.TypeFile, optional=True))
        self.addParameter(QgsProcessingParameterString("TEXT", tr("…or a text description"), optional=True))
        self.add_extent_parameters(0.5)
        self.add_engine_parameters(top_k=False)
        self.add_advanced(QgsProcessingParameterEnum("METHOD", tr("Method"), METHODS, defaultValue=0))
        self.add_advanced(QgsProcessingParameterBoolean("COG", tr("Write a Cloud Optimised GeoTIFF"), False))
        self.add_aoi_parameter()
        add_case_parameters(self)
        self.addParameter(QgsProcessingParameterString("LEVELS", tr("Confidence levels of the regions (0-1, "
                                                                    "comma-separated)"), "0.5,0.9", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Likelihood raster")))
        self.addParameter(QgsProcessingParameterFeatureSink("REGIONS", tr("Confidence regions"),
                                                            QgsProcessing.SourceType.TypeVectorPolygon, optional=True,
                                                            createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("BEST_LAT", tr("Best estimate latitude")))
        self.addOutput(QgsProcessingOutputNumber("BEST_LON", tr("Best estimate longitude")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        photos = [p for p in (self.parameterAsFileList(parameters, "PHOTOS", context) or []) if p]
        text = self.parameterAsString(parameters, "TEXT", context).strip()
        if bool(photos) == bool(text):
            raise QgsProcessingException(tr("Give either photos or a text description (not both)."))
        levels = parse_levels(self.parameterAsString(parameters, "LEVELS", context))
        aoi = self.aoi_geojson(parameters, context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        want_regions = bool(parameters.get("REGIONS"))
        regions_tmp = QgsProcessingUtils.generateTempFilename("geoclip_regions.gpkg") if want_regions else None
        params = {
            "photos": photos, "text": text, "engine": self.engine_options(parameters, context),
            "extent": self.extent_wsen(parameters, context),
            "resolution": self.parameterAsDouble(parameters, "RESOLUTION", context),
            "method": METHODS[self.parameterAsEnum(parameters, "METHOD", context)],
            "cog": self.parameterAsBool(parameters, "COG", context), "out": out}
        if levels:
            params["levels"] = levels
        params.update(case_request(self, parameters, context, aoi))  # the AOI layer, names, circle, hint
        if regions_tmp:
            params["regions_out"] = regions_tmp
        res = self.run_engine("likelihood", params, feedback)
        feedback.pushInfo(tr("Best estimate: {:.5f}, {:.5f} ({} cells scored, {})").format(
            res["best_lat"], res["best_lon"], res["stats"].get("evaluated"), res["stats"].get("method")))
        if res.get("aoi_outside") is not None:
            feedback.pushInfo(tr("Area of interest: {:.1%} of the probability fell outside it").format(
                res["aoi_outside"]))
        for region in res.get("regions") or []:
            feedback.pushInfo(tr("{:.0%} confidence region: {:,.0f} km² in {} part(s)").format(
                region["level"], region["area_km2"], region["parts"]))
        StyleOnLoad.attach(context, out, style_likelihood)
        results = {"OUTPUT": out, "BEST_LAT": res["best_lat"], "BEST_LON": res["best_lon"]}
        if want_regions:
            results["REGIONS"] = self.copy_regions(parameters, context, regions_tmp)
            StyleOnLoad.attach(context, results["REGIONS"], style_regions)
        return results

    def copy_regions(self, parameters, context, path: str) -> str:
        """The worker's region polygons (a temporary GeoPackage) into the REGIONS sink."""
        fields = region_fields()
        sink, dest = self.sink(parameters, "REGIONS", context, fields, QgsWkbTypes.Type.MultiPolygon,
                               QgsCoordinateReferenceSystem("EPSG:4326"))
        if sink is None or not os.path.isfile(path):
            return dest
        layer = QgsVectorLayer(f"{path}|layername=geoclip_regions", "regions", "ogr")
        if not layer.isValid():
            raise QgsProcessingException(tr("The confidence regions could not be read back ({})").format(path))
        for src in layer.getFeatures():
            f = QgsFeature(fields)
            f.setGeometry(src.geometry())
            for field in fields.names():
                if src.fields().indexOf(field) >= 0:
                    f[field] = src[field]
            sink.addFeature(f, QgsFeatureSink.Flag.FastInsert)
        return dest


def parse_levels(text: str) -> list:
    """'0.5, 0.9' -> [0.5, 0.9]; percentages (50, 90) are read as fractions; an empty text means the default."""
    levels = []
    for part in (text or "").replace(";", ",").split(","):
        if not part.strip():
            continue
        try:
            value = float(part.strip().rstrip("%"))
        except ValueError as exc:
            raise QgsProcessingException(tr("Levels must be numbers between 0 and 1, e.g. 0.5,0.9")) from exc
        value = value / 100.0 if value > 1 else value
        if not 0 < value < 1:
            raise QgsProcessingException(tr("Levels must be numbers between 0 and 1, e.g. 0.5,0.9"))
        levels.append(value)
    return sorted(set(levels))
