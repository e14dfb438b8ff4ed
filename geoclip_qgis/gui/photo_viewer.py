"""A dock that shows the photo behind the selected prediction point (EXIF orientation respected)."""

from __future__ import annotations

import contextlib
import os
from typing import Optional

from qgis.core import QgsExpression, QgsFeatureRequest, QgsProject, QgsVectorLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QImageReader, QPixmap
from qgis.PyQt.QtWidgets import QCheckBox, QLabel, QSizePolicy, QVBoxLayout, QWidget

from .settings_dialog import tr


def resolve(path: str) -> str:
    """Stored photo paths may be relative to the project folder (see layers.stored_path)."""
    if not path or os.path.isabs(path):
        return path
    home = QgsProject.instance().homePath()
    return os.path.join(home, path) if home else path


def load_upright(path: str) -> Optional[QPixmap]:
    reader = QImageReader(path)
    reader.setAutoTransform(True)  # applies the EXIF orientation
    image = reader.read()
    return None if image.isNull() else QPixmap.fromImage(image)


def photo_field(layer) -> bool:
    """Layers whose features name a photo: the predictions' "photo", or the places/summary "source" of kind image."""
    names = layer.fields().names()
    return "photo" in names or ("source" in names and "kind" in names)


def photo_of(feature) -> str:
    names = feature.fields().names()
    if "photo" in names:
        return feature["photo"] or ""
    return (feature["source"] or "") if feature["kind"] == "image" else ""


def overlay_of(feature, source: str) -> str:
    """The photo's 'why' overlay (the summary's `saliency` column): from the feature itself, else from a summary
    layer of the project that lists the same photo (the places and raw top-k layers do not carry it)."""
    if feature is not None and "saliency" in feature.fields().names() and feature["saliency"]:
        return resolve(str(feature["saliency"]))
    if not source:
        return ""
    request = QgsFeatureRequest(QgsExpression(f'"source" = {QgsExpression.quotedValue(source)} '
                                              'AND "saliency" IS NOT NULL')).setLimit(1)
    request.setFlags(QgsFeatureRequest.Flag.NoGeometry)
    for layer in QgsProject.instance().mapLayers().values():
        if isinstance(layer, QgsVectorLayer) and {"source", "saliency"} <= set(layer.fields().names()):
            for found in layer.getFeatures(request):
                return resolve(str(found["saliency"]))
    return ""


class PhotoViewer(QgsDockWidget):
    def __init__(self, iface, parent=None):
        super().__init__(tr("GeoCLIP photo"), parent)
        self.setObjectName("GeoClipPhotoViewer")
        self.iface = iface
        body = QWidget()
        v = QVBoxLayout(body)
        self.image = QLabel(tr("Select a GeoCLIP prediction to see its photo."))
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.image.setMinimumHeight(180)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.why = QCheckBox(tr("Show what drove the answer"))
        self.why.setToolTip(tr("A heat map of the parts of the photo that raised the top place's score most "
                               "(runs with 'Why' ticked). The model sees the centre square; the sides are dimmed."))
        self.why.setVisible(False)
        self.why.toggled.connect(self._show_current)
        v.addWidget(self.image, 1)
        v.addWidget(self.why)
        v.addWidget(self.caption)
        self.setWidget(body)
        self.pixmap: Optional[QPixmap] = None
        self.photo_pixmap: Optional[QPixmap] = None
        self.photo_path = ""
        self.overlay_path = ""
        self.layer: Optional[QgsVectorLayer] = None
        iface.currentLayerChanged.connect(self.watch)
        self.watch(iface.activeLayer())

    def watch(self, layer) -> None:
        if self.layer is not None:
            with contextlib.suppress(TypeError, RuntimeError):
                self.layer.selectionChanged.disconnect(self.show_selection)
        self.layer = layer if isinstance(layer, QgsVectorLayer) and photo_field(layer) else None
        if self.layer is not None:
            self.layer.selectionChanged.connect(self.show_selection)

    def show_selection(self, *args) -> None:
        feats = list(self.layer.getSelectedFeatures()) if self.layer else []
        if not feats:
            return
        f = feats[0]
        self.show_photo(resolve(photo_of(f) or ""), f)

    def show_photo(self, path: str, feature=None) -> bool:
        self.photo_path = path
        self.overlay_path = overlay_of(feature, photo_of(feature) if feature is not None else path) if path else ""
        if self.overlay_path and not os.path.isfile(self.overlay_path):
            self.overlay_path = ""
        self.why.setVisible(bool(self.overlay_path))
        self.pixmap = self.photo_pixmap = load_upright(path) if path else None
        if self.pixmap is None:
            self.image.setText(tr("Photo not found: {}").format(path) if path else tr("(text query: no photo)"))
            self.caption.setText("")
            return False
        self._show_current()
        if feature is not None:
            names = feature.fields().names()
            rank = feature["rank"] if "rank" in names else 1
            text = tr("{} — rank {}, p = {:.4f}, {:.5f}, {:.5f}").format(
                os.path.basename(path), rank, feature["probability"] or 0.0, feature["lat"] or 0.0,
                feature["lon"] or 0.0)
            if "label" in names and feature["label"]:
                text += "\n" + str(feature["label"])
            self.caption.setText(text)
        return True

    def _show_current(self, *_args) -> None:
        """The photo, or its overlay when the toggle is on and the overlay exists (same aspect as the photo)."""
        if self.overlay_path and self.why.isChecked():
            overlay = load_upright(self.overlay_path)
            if overlay is not None:
                self.pixmap = overlay
        else:
            self.pixmap = self.photo_pixmap
        self._fit()

    def _fit(self) -> None:
        if self.pixmap is not None:
            self.image.setPixmap(self.pixmap.scaled(self.image.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                    Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event):  # noqa: N802
        super().resizeEvent(event)
        self._fit()
