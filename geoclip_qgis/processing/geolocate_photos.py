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
    QgsProcessingParameterMultipleLayers,
    QgsWkbTypes,
)

from ..core.protocol import IMAGE_SUFFIXES
from ..layers import (
    failed_feature,
    failed_fields,
    iter_paths_from_layer,
    prediction_features,
    prediction_fields,
    style_predictions,
)
from .base import GeoClipAlgorithm, tr, tr_noop
from .postprocess import StyleOnLoad


def list_folder(folder: str, recursive: bool) -> List[str]:
    root = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(str(p) for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def unique(paths: List[str]) -> List[str]:
    seen, out = set(), []
    for p in paths:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


class GeolocatePhotos(GeoClipAlgorithm):
    _name = "geolocate_photos"
    _display = tr_noop("Geolocate photos")
    _help = tr_noop(
        "Predicts where each photo was taken with GeoCLIP: the top-k most likely places as points, ranked, "
        "with their probability. Photos come from a folder (optionally with sub-folders), a list of files, "
        "or a layer with a field holding photo paths. Where a photo has EXIF GPS, its position and the "
        "distance to each prediction are added. Photos that cannot be read are listed, with the reason, in "
        "the second output; the batch goes on. Cancelling keeps the rows already written.")

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
        self.addParameter(QgsProcessingParameterFeatureSink("FAILED", tr("Photos that could not be read"),
                                                            QgsProcessing.SourceType.TypeVector, optional=True,
                                                            createByDefault=True))
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
        paths = unique(paths)
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
        fields = prediction_fields()
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, fields, QgsWkbTypes.Type.Point,
                                          QgsCoordinateReferenceSystem("EPSG:4326"))
        fsink, fdest = self.parameterAsSink(parameters, "FAILED", context, failed_fields(), QgsWkbTypes.Type.NoGeometry,
                                            QgsCoordinateReferenceSystem())
        home = context.project().homePath() if context.project() else None
        counts = {"ok": 0, "failed": 0}

        def on_row(row):
            if row.get("error"):
                counts["failed"] += 1
                feedback.pushWarning(row["error"].get("message", ""))
                if fsink is not None:
                    fsink.addFeature(failed_feature(row, failed_fields()), QgsFeatureSink.Flag.FastInsert)
                return
            counts["ok"] += 1
            sink.addFeatures(prediction_features(row, fields, home or None), QgsFeatureSink.Flag.FastInsert)

        feedback.pushInfo(tr("Geolocating {} photo(s)").format(len(paths)))
        result = {} if not paths else self.run_engine("geolocate_images", {
            "paths": paths, "top_k": self.parameterAsInt(parameters, "TOP_K", context),
            "engine": self.engine_options(parameters, context)}, feedback, on_row=on_row, keep_partial=True)
        feedback.pushInfo(tr("{} geolocated, {} could not be read{}").format(
            counts["ok"], counts["failed"], tr(" (cancelled)") if result.get("cancelled") else ""))
        StyleOnLoad.attach(context, dest, style_predictions)
        return {"OUTPUT": dest, "FAILED": fdest, "GEOLOCATED": counts["ok"], "FAILED_COUNT": counts["failed"]}
