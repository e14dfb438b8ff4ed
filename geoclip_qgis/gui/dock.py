"""The geolocation dock: drop photos or type a description, run, and watch the places appear on the map."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QSize, Qt, pyqtSignal
from qgis.PyQt.QtGui import QIcon, QImageReader, QPixmap
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.geodesy import haversine_km
from ..core.protocol import IMAGE_SUFFIXES
from ..layers import prediction_features, prediction_fields, style_likelihood, style_predictions
from ..processing.geolocate_photos import list_folder
from . import settings
from .settings import tr, tr_noop
from .tasks import EngineTask

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
COLUMNS = ["", tr_noop("Photo / query"), tr_noop("Rank"), tr_noop("Probability"), tr_noop("Lat"), tr_noop("Lon"),
           tr_noop("EXIF GPS distance (km)")]


def thumbnail(path: str, size: int = 56) -> Optional[QPixmap]:
    """Upright (EXIF orientation applied) and decoded at reduced size, so big JPEGs stay cheap."""
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    full = reader.size()
    if full.isValid() and full.width() > 0:
        reader.setScaledSize(full.scaled(QSize(size * 2, size * 2), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        return None
    return QPixmap.fromImage(image).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation)


class PhotoList(QListWidget):
    """A list that accepts dropped photos and folders (folders are expanded, duplicates ignored)."""

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setToolTip(tr("Drop photos or folders here"))

    def paths(self) -> List[str]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]

    def add(self, paths: List[str]) -> None:
        known = set(self.paths())
        for p in paths:
            if os.path.isdir(p):
                self.add(list_folder(p, recursive=True))
                known = set(self.paths())
                continue
            if p in known or Path(p).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            item = QListWidgetItem(Path(p).name)
            item.setData(Qt.ItemDataRole.UserRole, p)
            item.setToolTip(p)
            self.addItem(item)
            known.add(p)
        self.changed.emit()

    def dragEnterEvent(self, event):  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event):  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event):  # noqa: N802
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.add(urls)
            event.acceptProposedAction()
        else:
            super().dropEvent(event)


class GeolocationDock(QgsDockWidget):
    def __init__(self, iface, parent=None):
        super().__init__(tr("GeoCLIP geolocation"), parent)
        self.setObjectName("GeoClipGeolocationDock")
        self.iface = iface
        self.task: Optional[EngineTask] = None
        self.layer: Optional[QgsVectorLayer] = None
        self.rows = 0
        self.failures: List[str] = []
        self.readable: List[str] = []  # photos that were decoded: the likelihood raster fuses these
        self._build()

    # ---- widgets ----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        v = QVBoxLayout(body)
        v.addWidget(QLabel(tr("Photos (drop files or folders here)")))
        self.photos = PhotoList()
        self.photos.setMaximumHeight(90)
        v.addWidget(self.photos)
        row = QHBoxLayout()
        self.add_files = QPushButton(tr("Add photos…"))
        self.add_folder = QPushButton(tr("Add folder…"))
        self.clear = QPushButton(tr("Clear"))
        for b in (self.add_files, self.add_folder, self.clear):
            row.addWidget(b)
        v.addLayout(row)
        self.query = QLineEdit()
        self.query.setPlaceholderText(tr("…or describe a place, e.g. snowy alpine village"))
        self.query.setClearButtonEnabled(True)
        v.addWidget(self.query)
        opts = QHBoxLayout()
        opts.addWidget(QLabel(tr("Top-k")))
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 1000)
        self.top_k.setValue(settings.get("top_k"))
        opts.addWidget(self.top_k)
        opts.addWidget(QLabel(tr("Device")))
        self.device = QComboBox()
        for value, label in (("auto", tr("Auto")), ("cpu", tr("CPU")), ("cuda:0", tr("CUDA"))):
            self.device.addItem(label, value)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.get("device"))))
        opts.addWidget(self.device)
        self.raster = QCheckBox(tr("Likelihood raster"))
        self.raster.setToolTip(tr("Also map the probability density (photos of one place are fused)"))
        opts.addWidget(self.raster)
        opts.addStretch(1)
        v.addLayout(opts)
        run_row = QHBoxLayout()
        self.run_button = QPushButton(QIcon(QgsApplication.iconPath("mActionStart.svg")), tr("Run"))
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.setEnabled(False)
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        v.addLayout(run_row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        v.addWidget(self.progress)
        self.status = QLabel(tr("Ready."))
        self.status.setWordWrap(True)
        v.addWidget(self.status)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([tr(c) if c else c for c in COLUMNS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setIconSize(QSize(48, 48))
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)  # long names must not push the numbers away
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(24)
        self.table.setColumnWidth(1, 130)
        v.addWidget(self.table, 1)
        self.setWidget(body)
        self.add_files.clicked.connect(self.pick_files)
        self.add_folder.clicked.connect(self.pick_folder)
        self.clear.clicked.connect(self.photos.clear)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.table.cellDoubleClicked.connect(self.zoom_to_row)
        self.query.returnPressed.connect(self.run)

    def pick_files(self) -> None:
        exts = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, tr("Photos to geolocate"), "", f"{tr('Photos')} ({exts})")
        self.photos.add(files)

    def pick_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, tr("Folder of photos"))
        if folder:
            self.photos.add([folder])

    # ---- running ----------------------------------------------------------------------------------------------
    def engine_options(self) -> Dict[str, Any]:
        opts = settings.engine_options()
        opts["device"] = self.device.currentData()
        return opts

    def run(self) -> None:
        if self.task is not None:
            return
        photos, text = self.photos.paths(), self.query.text().strip()
        if not photos and not text:
            self.status.setText(tr("Add photos or type a description first."))
            return
        self.table.setRowCount(0)
        self.rows, self.failures, self.readable = 0, [], []
        params = {"engine": self.engine_options(), "top_k": self.top_k.value()}
        if photos:
            op, params["paths"], title = "geolocate_images", photos, tr("GeoCLIP: {} photo(s)").format(len(photos))
        else:
            op, params["queries"], title = "geolocate_text", [text], tr("GeoCLIP: “{}”").format(text)
        self.layer = QgsVectorLayer("Point?crs=EPSG:4326", title.replace("GeoCLIP: ", "GeoCLIP "), "memory")
        self.layer.dataProvider().addAttributes(prediction_fields().toList())
        self.layer.updateFields()
        style_predictions(self.layer)
        QgsProject.instance().addMapLayer(self.layer)
        self._start(EngineTask(title, op, params), self.predictions_done)

    def _start(self, task: EngineTask, on_done) -> None:
        self.task = task
        task.rowReady.connect(self.add_row)
        task.progressText.connect(self.status.setText)
        task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        task.done.connect(on_done)
        task.failed.connect(self.task_failed)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(tr("Starting the engine…"))
        self.started_at = time.monotonic()
        QgsApplication.taskManager().addTask(task)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText(tr("Cancelling… finished rows are kept."))

    def _idle(self) -> None:
        self.task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def add_row(self, row: Dict[str, Any]) -> None:
        """Main thread: one finished photo/query -> table rows and map features (same code as Processing)."""
        if row.get("error"):
            self.failures.append(row["error"].get("message", row.get("source", "")))
            return
        if row.get("kind") == "image":
            self.readable.append(row["source"])
        home = QgsProject.instance().homePath() or None
        feats = prediction_features(row, self.layer.fields(), home)
        self.layer.dataProvider().addFeatures(feats)
        self.layer.updateExtents()
        self.layer.triggerRepaint()
        pix = thumbnail(row["source"]) if row.get("kind") == "image" else None
        gps = row.get("gps")
        for p in row["predictions"]:
            r = self.table.rowCount()
            self.table.insertRow(r)
            icon = QTableWidgetItem()
            if pix is not None:
                icon.setIcon(QIcon(pix))
            icon.setData(Qt.ItemDataRole.UserRole, (p["lat"], p["lon"]))
            self.table.setItem(r, 0, icon)
            dist = "" if not gps else f"{haversine_km(gps[0], gps[1], p['lat'], p['lon']):,.1f}"
            values = [Path(row["source"]).name if row.get("kind") == "image" else row["source"], str(p["rank"]),
                      f"{p['probability']:.4f}", f"{p['lat']:.5f}", f"{p['lon']:.5f}", dist]
            for c, text in enumerate(values, start=1):
                item = QTableWidgetItem(text)
                item.setToolTip(row["source"])
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
            self.table.setRowHeight(r, 52 if pix is not None else 24)
        self.rows += 1

    def predictions_done(self, result: Dict[str, Any]) -> None:
        cancelled = result.get("cancelled")
        kind = tr("photo(s)") if self.photos.paths() else tr("query")
        msg = tr("{} {} geolocated").format(self.rows, kind)
        if self.failures:
            msg += tr(", {} could not be read: {}").format(len(self.failures), "; ".join(self.failures[:3]))
            self.iface.messageBar().pushWarning("GeoCLIP", msg)
        if cancelled:
            msg += tr(" (cancelled; finished rows kept)")
        self.status.setText(msg + tr(" in {:.1f} s.").format(time.monotonic() - self.started_at))
        self.progress.setValue(100)
        self.task = None
        if self.layer is not None and self.layer.featureCount():
            self.zoom_to(self.layer.extent(), WGS84, buffer=2.0)
        if self.raster.isChecked() and not cancelled and self.rows:
            self.run_likelihood()
        else:
            self._idle()

    def run_likelihood(self) -> None:
        photos, text = self.readable, self.query.text().strip()
        out = settings.raster_output("likelihood")
        params = {"engine": self.engine_options(), "photos": [] if text and not photos else photos,
                  "text": "" if photos else text, "resolution": "auto", "out": out}
        self._start(EngineTask(tr("GeoCLIP likelihood raster"), "likelihood", params), self.raster_done)
        self.status.setText(tr("Mapping the likelihood…"))

    def raster_done(self, result: Dict[str, Any]) -> None:
        layer = QgsRasterLayer(result["path"], tr("GeoCLIP likelihood"))
        style_likelihood(layer)
        QgsProject.instance().addMapLayer(layer)
        self.status.setText(tr("Likelihood raster added; densest cell {:.4f}, {:.4f}.").format(
            result["best_lat"], result["best_lon"]))
        self.progress.setValue(100)
        self._idle()

    def task_failed(self, error: Dict[str, Any]) -> None:
        text = error.get("message", tr("failed"))
        if error.get("hint"):
            text += "\n" + error["hint"]
        self.status.setText(text)
        if error.get("code") != "cancelled":
            self.iface.messageBar().pushCritical("GeoCLIP", error.get("message", ""))
        self._idle()

    # ---- navigation -------------------------------------------------------------------------------------------
    def zoom_to_row(self, row: int, _col: int = 0) -> None:
        lat, lon = self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)
        point = QgsPointXY(lon, lat)
        self.zoom_to(QgsRectangle(lon - 0.05, lat - 0.05, lon + 0.05, lat + 0.05), WGS84)
        canvas = self.iface.mapCanvas()
        canvas.flashGeometries([QgsGeometry.fromPointXY(point)], WGS84)

    def zoom_to(self, rect: QgsRectangle, crs, buffer: float = 0.0) -> None:
        canvas = self.iface.mapCanvas()
        if buffer:
            rect = QgsRectangle(rect)
            rect.grow(buffer)
        xform = QgsCoordinateTransform(crs, canvas.mapSettings().destinationCrs(), QgsProject.instance())
        canvas.setExtent(xform.transformBoundingBox(rect))
        canvas.refresh()
