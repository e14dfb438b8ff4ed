"""Processing: geolocate photos (a folder, a list of files, or a layer with a path field) into points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)

from ..layers.results import (
    failed_feature,
    failed_fields,
    iter_paths_from_layer,
    place_features,
    place_fields,
    prediction_features,
    prediction_fields,
    style_places,
    style_predictions,
    style_trip,
    summary_feature,
    summary_fields,
    trip_feature,
    trip_fields,
)
from ..shared import photo_list
from .base import GeoClipAlgorithm, tr, tr_noop
from .case_params import add_case_parameters, case_request
from .postprocess import StyleOnLoad


def list_folder(folder: str, recursive: bool) -> List[str]:
    """The one listing rule (shared/photo_list.py), as the CLI and the dock read a folder."""
    return photo_list.list_photos(folder, recursive)


class GeolocatePhotos(GeoClipAlgorithm):
    _name = "geolocate_photos"
    _display = tr_noop("Geolocate photos")
    _group = "geolocation"
    _help = tr_noop(
        "Predicts where each photo was taken with GeoCLIP: the top-k most likely places as points, ranked, "
        "with their probability. Photos come from a folder (optionally with sub-folders), a list of files, "
        "or a layer with a field holding photo paths. Where a photo has EXIF GPS, its position and the "
        "distance to each prediction are added. Each prediction is named offline (country, region, nearest "
        "populated place). Optional outputs: the distinct places (gallery points within 25 km merged, "
        "probabilities summed, with names) and one summary row per photo (best place, its name and "
        "probability, or why the photo failed). An optional area of interest (polygons) restricts the answer "
        "to it: probabilities renormalise inside, and the share that fell outside is reported; countries or "
        "regions by name or ISO code (Limit to) and a point with a radius do the same. A hint in words is fused "
        "with each photo (the photo's answer times the hint's, raised to its weight). Photos that "
        "cannot be read are listed, with the reason; the batch goes on. Cancelling keeps the rows already "
        "written. An existing GeoPackage output keeps its other layers. "
        "Photos of one trip can be answered jointly: in the order of their EXIF capture times (file order when "
        "none has one), two consecutive photos cannot lie farther apart than the travel speed allows in the time "
        "between them, and photos with EXIF GPS fix their neighbours. The summary then holds each photo's joint "
        "answer beside its own (trip_ columns; photos without a time are answered alone, and the note says so), "
        "and the trip track is a line through the joint answers in time order.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("FOLDER", tr("Folder of photos"), optional=True,
                                                     behavior=QgsProcessingParameterFile.Behavior.Folder))
        self.addParameter(QgsProcessingParameterBoolean("RECURSIVE", tr("Include sub-folders"), False))
        self.addParameter(QgsProcessingParameterMultipleLayers("FILES", tr("Photo files"),
                                                               QgsProcessing.SourceType.TypeFile, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource("LAYER", tr("Layer with photo paths"),
                                                              [QgsProcessing.SourceType.TypeVector], optional=True))
        self.addParameter(QgsProcessingParameterField("PATH_FIELD", tr("Photo path field"),
                                                      parentLayerParameterName="LAYER", optional=True))
        self.add_engine_parameters()
        self.add_advanced(QgsProcessingParameterFeatureSource(
            "RESUME_FROM", tr("Resume: skip photos already in this earlier result layer"),
            [QgsProcessing.SourceType.TypeVector], optional=True))
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", tr("Predicted places"),
                                                            QgsProcessing.SourceType.TypeVectorPoint))
        self.add_aoi_parameter()
        add_case_parameters(self)
        self.addParameter(QgsProcessingParameterFeatureSink("FAILED", tr("Photos that could not be read"),
                                                            QgsProcessing.SourceType.TypeVector, optional=True,
                                                            createByDefault=True))
        add_answer_sinks(self)
        self.addParameter(QgsProcessingParameterBoolean("TRIP", tr("The photos are one trip (answer them jointly "
                                                                   "in time order)"), False))
        self.addParameter(QgsProcessingParameterNumber("TRIP_SPEED", tr("Trip: fastest travel between two photos "
                                                                        "(km/h)"),
                                                       QgsProcessingParameterNumber.Type.Double, 900.0,
                                                       minValue=1.0, maxValue=1e9))
        self.addParameter(QgsProcessingParameterFeatureSink("TRIP_TRACK", tr("Trip track"),
                                                            QgsProcessing.SourceType.TypeVectorLine, optional=True,
                                                            createByDefault=True))
        self.add_advanced(QgsProcessingParameterFolderDestination(
            "SALIENCY", tr("What drove each answer: a heat map per photo into this folder (about twice the time)"),
            optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("GEOLOCATED", tr("Photos geolocated")))
        self.addOutput(QgsProcessingOutputNumber("FAILED_COUNT", tr("Photos that could not be read")))

    def photo_paths(self, parameters, context) -> List[str]:
        paths: List[str] = []
        folder = self.parameterAsFile(parameters, "FOLDER", context)
        if folder:
            if not Path(folder).is_dir():
                raise QgsProcessingException(tr("Folder not found: {}").format(folder))
            paths += list_folder(folder, self.parameterAsBool(parameters, "RECURSIVE", context))
        paths += [p for p in (self.parameterAsFileList(parameters, "FILES", context) or []) if p]
        source = self.parameterAsSource(parameters, "LAYER", context)
        if source is not None:
            field = self.parameterAsString(parameters, "PATH_FIELD", context)
            if not field:
                raise QgsProcessingException(tr("Choose the field that holds the photo paths"))
            paths += list(iter_paths_from_layer(source, field))
        paths = photo_list.unique(paths)
        previous = self.parameterAsSource(parameters, "RESUME_FROM", context)
        if previous is not None and paths:
            home = context.project().homePath() if context.project() else ""
            done = {os.path.realpath(os.path.join(home, p)) for p in iter_paths_from_layer(previous, "photo")}
            before = len(paths)
            paths = [p for p in paths if os.path.realpath(p) not in done]
            self.skipped = before - len(paths)
            if not paths:
                return []
        if not paths:
            raise QgsProcessingException(tr("No photos to geolocate: choose a folder with photos, photo files, "
                                            "or a layer with a photo path field."))
        return paths

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.skipped = 0
        paths = self.photo_paths(parameters, context)
        if self.skipped:
            feedback.pushInfo(tr("Resume: {} photo(s) already done, {} to go").format(self.skipped, len(paths)))
        aoi = self.aoi_geojson(parameters, context)
        fields = prediction_fields()
        sink, dest = self.sink(parameters, "OUTPUT", context, fields, QgsWkbTypes.Type.Point,
                               QgsCoordinateReferenceSystem("EPSG:4326"))
        fsink, fdest = self.sink(parameters, "FAILED", context, failed_fields(), QgsWkbTypes.Type.NoGeometry,
                                 QgsCoordinateReferenceSystem())
        trip = self.parameterAsBool(parameters, "TRIP", context)
        answers = AnswerSinks(self, parameters, context, hold=trip)
        home = context.project().homePath() if context.project() else None
        counts = {"ok": 0, "failed": 0}

        def on_row(row):
            answers.add(row, home or None)
            if row.get("error"):
                counts["failed"] += 1
                feedback.pushWarning(row["error"].get("message", ""))
                if fsink is not None:
                    fsink.addFeature(failed_feature(row, failed_fields()), QgsFeatureSink.Flag.FastInsert)
                return
            counts["ok"] += 1
            sink.addFeatures(prediction_features(row, fields, home or None), QgsFeatureSink.Flag.FastInsert)

        feedback.pushInfo(tr("Geolocating {} photo(s)").format(len(paths)))
        params = {"paths": paths, "top_k": self.parameterAsInt(parameters, "TOP_K", context),
                  "engine": self.engine_options(parameters, context)}
        params.update(case_request(self, parameters, context, aoi))  # the AOI layer, names, circle, hint
        if trip:
            params["trip"] = True
            params["trip_speed_kmh"] = self.parameterAsDouble(parameters, "TRIP_SPEED", context)
        why = self.parameterAsString(parameters, "SALIENCY", context)
        if why:
            params["saliency"] = why  # the summary's saliency column names each overlay
        result = {} if not paths else self.run_engine("geolocate_images", params, feedback, on_row=on_row,
                                                      keep_partial=True)
        feedback.pushInfo(tr("{} geolocated, {} could not be read{}").format(
            counts["ok"], counts["failed"], tr(" (cancelled)") if result.get("cancelled") else ""))
        outputs = {}
        if trip:
            outputs["TRIP_TRACK"] = self.trip_track(parameters, context, feedback, result.get("trip"), paths,
                                                    answers)
        answers.flush(home or None)
        answers.report(feedback)
        StyleOnLoad.attach(context, dest, style_predictions)
        return {"OUTPUT": dest, "FAILED": fdest, "GEOLOCATED": counts["ok"], "FAILED_COUNT": counts["failed"],
                **answers.outputs(context), **outputs}

    def trip_track(self, parameters, context, feedback, trip, paths, answers):
        """The trip's joint answer into the held summary rows, and its track into the TRIP_TRACK sink."""
        if not trip:
            feedback.pushWarning(tr("The trip could not be answered (the run stopped early)."))
            return None
        by_source = {paths[p["index"]]: p for p in trip.get("photos") or [] if 0 <= p["index"] < len(paths)}
        for row in answers.held:
            if row.get("source") in by_source:
                row["trip"] = by_source[row["source"]]
        sink, dest = self.sink(parameters, "TRIP_TRACK", context, trip_fields(), QgsWkbTypes.Type.LineString,
                               QgsCoordinateReferenceSystem("EPSG:4326"))
        track = trip_feature(trip, trip_fields())
        if sink is not None and track is not None:
            sink.addFeature(track, QgsFeatureSink.Flag.FastInsert)
        alone = sum(1 for p in by_source.values() if p.get("trip_order") is None)
        feedback.pushInfo(tr("Trip: {} photo(s) in time order, {} answered alone").format(
            len(trip.get("track") or []), alone))
        note = (trip.get("summary") or {}).get("note")
        if note:
            feedback.pushInfo(note)
        StyleOnLoad.attach(context, dest, style_trip)
        return dest


def add_answer_sinks(alg) -> None:
    """The optional answer layers (issue 14): distinct places with names, and one summary row per input."""
    alg.addParameter(QgsProcessingParameterFeatureSink("PLACES", tr("Distinct places (with names)"),
                                                       QgsProcessing.SourceType.TypeVectorPoint, optional=True,
                                                       createByDefault=True))
    alg.addParameter(QgsProcessingParameterFeatureSink("SUMMARY", tr("Summary (one row per input)"),
                                                       QgsProcessing.SourceType.TypeVectorPoint, optional=True,
                                                       createByDefault=True))


class AnswerSinks:
    """The PLACES and SUMMARY sinks of one run, fed from the worker's rows."""

    def __init__(self, alg, parameters, context, hold: bool = False):
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        self.hold = hold  # a trip: summary rows wait for its joint answer (flush)
        self.held: List[dict] = []
        self.place_fields, self.summary_fields = place_fields(), summary_fields()
        self.places, self.places_dest = alg.sink(parameters, "PLACES", context, self.place_fields,
                                                 QgsWkbTypes.Type.Point, wgs84)
        self.summary, self.summary_dest = alg.sink(parameters, "SUMMARY", context, self.summary_fields,
                                                   QgsWkbTypes.Type.Point, wgs84)
        self.outside: List[float] = []

    def add(self, row, home=None) -> None:
        if row.get("aoi_outside") is not None:
            self.outside.append(float(row["aoi_outside"]))
        if self.places is not None and not row.get("error"):
            self.places.addFeatures(place_features(row, self.place_fields, home), QgsFeatureSink.Flag.FastInsert)
        if self.summary is not None and self.hold:
            self.held.append(row)
        elif self.summary is not None:
            self.summary.addFeature(summary_feature(row, self.summary_fields, home), QgsFeatureSink.Flag.FastInsert)

    def flush(self, home=None) -> None:
        """The held summary rows (a trip's), with its joint answer when it came."""
        if self.summary is not None and self.held:
            self.summary.addFeatures([summary_feature(r, self.summary_fields, home) for r in self.held],
                                     QgsFeatureSink.Flag.FastInsert)
        self.held = []

    def report(self, feedback) -> None:
        if self.outside:
            feedback.pushInfo(tr("Area of interest: on average {:.1%} of the probability fell outside it (the "
                                 "rest is renormalised inside)").format(sum(self.outside) / len(self.outside)))

    def outputs(self, context) -> dict:
        StyleOnLoad.attach(context, self.places_dest, style_places)
        StyleOnLoad.attach(context, self.summary_dest, style_places)
        return {"PLACES": self.places_dest, "SUMMARY": self.summary_dest}
