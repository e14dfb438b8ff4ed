"""A dock that shows the photo behind the selected prediction point (EXIF orientation respected)."""

from __future__ import annotations

import contextlib
import os
from typing import Optional

from qgis.core import QgsProject, QgsVectorLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QImageReader, QPixmap
from qgis.PyQt.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

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
        v.addWidget(self.image, 1)
        v.addWidget(self.caption)
        self.setWidget(body)
        self.pixmap: Optional[QPixmap] = None
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
        self.pixmap = load_upright(path) if path else None
        if self.pixmap is None:
            self.image.setText(tr("Photo not found: {}").format(path) if path else tr("(text query: no photo)"))
            self.caption.setText("")
            return False
        self._fit()
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

    def _fit(self) -> None:
        if self.pixmap is not None:
            self.image.setPixmap(self.pixmap.scaled(self.image.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                    Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event):  # noqa: N802
        super().resizeEvent(event)
        self._fit()
