"""The geolocation dock: drop photos or type a description, run, and watch the places appear on the map."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsLayerTreeGroup,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
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
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...client.engine_client import shared_client
from ...layers.aoi import NoPolygon, aoi_geojson
from ...layers.results import (
    place_features,
    place_fields,
    place_label,
    prediction_features,
    prediction_fields,
    region_fields,
    style_likelihood,
    style_places,
    style_predictions,
    style_regions,
    summary_feature,
    summary_fields,
)
from ...shared import defaults, geopackage, photo_list
from ...shared.geodesy import haversine_km
from ...shared.photo_list import IMAGE_SUFFIXES
from .. import settings_dialog as settings
from ..map_tool import visible_extent_4326
from ..settings_dialog import tr, tr_noop
from ..tasks import EngineTask

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
COLUMNS = ["", tr_noop("Photo / query"), tr_noop("Rank"), tr_noop("Place"), tr_noop("Probability"),
           tr_noop("EXIF GPS (km)"), tr_noop("90 % region")]
STORE_GPKG, STORE_MEMORY = "gpkg", "memory"
REGION_RES = 1.0  # per-photo 90 % regions (summary layer) when the likelihood raster is asked for
ROLE_POINT = Qt.ItemDataRole.UserRole
ROLE_FEATURE = Qt.ItemDataRole.UserRole + 1


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
        """Files as given, folders listed recursively, each file once however it is spelled: the one photo-list
        rule (shared/photo_list.collect), as the CLI and Processing read the same folder."""
        known = {photo_list.identity(p) for p in self.paths()}
        dropped = [p for p in paths if os.path.isdir(p) or photo_list.is_photo_name(p)]
        for p in photo_list.collect(dropped, recursive=True):
            key = photo_list.identity(p)
            if key in known:
                continue
            item = QListWidgetItem(Path(p).name)
            item.setData(Qt.ItemDataRole.UserRole, p)
            item.setToolTip(p)
            self.addItem(item)
            known.add(key)
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


def error_text(error: Dict[str, Any]) -> str:
    """What the status line says about a failed job: the message, then its hint once; a missing engine or torch
    points at the manager; a crash without printed details does not promise any."""
    message = str(error.get("message") or tr("failed"))
    hint = str(error.get("hint") or "")
    blob = (message + " " + hint).lower()
    if error.get("code") == "not_installed" or "no module named 'torch'" in blob or "no module named torch" in blob:
        return tr("The engine is not installed — open GeoCLIP › Engine and models.")
    if error.get("code") == "crashed":
        head, _, details = hint.partition("details:")
        details = details.strip()
        hint = head.strip().rstrip(";,") + (("\n" + tr("Details:") + "\n" + details) if details
                                            else " " + tr("(the engine printed no details)"))
    if hint and hint.strip() not in message:
        return f"{message}\n{hint.strip()}"
    return message


def results_store() -> str:
    value = settings.get("results_store")
    return value if value in (STORE_GPKG, STORE_MEMORY) else STORE_GPKG


def results_gpkg() -> str:
    """Where kept results go: next to the project when it is saved, else in the cache folder."""
    home = QgsProject.instance().absolutePath()
    if home:
        return str(Path(home) / "geoclip_results.gpkg")
    folder = Path(settings.engine_options()["cache_dir"]) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "geoclip_results.gpkg")


def unique_layer_name(name: str, own=None) -> str:
    """`name`, or `name (2)`, (3)… when a layer or group has it already (`own`: the run's group, not counted)."""
    root = QgsProject.instance().layerTreeRoot()
    groups = [g for g in root.findGroups(True) if g is not own]
    skip = {n.layerId() for n in own.findLayers()} if own is not None else set()
    taken = {lyr.name().rsplit(" · ", 1)[0] if lyr.id() not in skip else ""
             for lyr in QgsProject.instance().mapLayers().values()}
    taken |= {lyr.name() for lyr in QgsProject.instance().mapLayers().values() if lyr.id() not in skip}
    taken |= {g.name() for g in groups}
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


class Run:
    """One press of Run: its layers (made when their first row exists), rows, failures and its layer-tree group."""

    def __init__(self, kind: str, n_inputs: int, text: str = ""):
        self.kind, self.n_inputs, self.text = kind, n_inputs, text
        self.rows: List[Dict[str, Any]] = []
        self.failures: List[Dict[str, str]] = []
        self.layers: Dict[str, QgsVectorLayer] = {}
        self.group: Optional[QgsLayerTreeGroup] = None
        self.pending_summary: List[Dict[str, Any]] = []

    def title(self, final: bool = False) -> str:
        if self.kind == "text":
            return tr("GeoCLIP · “{}”").format(self.text if len(self.text) <= 40 else self.text[:39] + "…")
        ok = len(self.rows)
        if final:
            return tr("GeoCLIP · {} of {} photos").format(ok, self.n_inputs) if ok != self.n_inputs \
                else tr("GeoCLIP · {} photos").format(ok)
        return tr("GeoCLIP · {} photos (running)").format(self.n_inputs)


class GeolocationDock(QgsDockWidget):
    def __init__(self, iface, parent=None):
        super().__init__(tr("GeoCLIP geolocation"), parent)
        self.setObjectName("GeoClipGeolocationDock")
        self.iface = iface
        self.task: Optional[EngineTask] = None
        self.run_state: Optional[Run] = None
        self.last_task: Optional[EngineTask] = None
        self.started_at = time.monotonic()
        self._syncing = False
        self.likelihood_resolution: Any = "auto"  # sized to the map view by the engine (view_px)
        self.likelihood_extent: Optional[List[float]] = None  # the world
        self.region_res = REGION_RES
        self._build()

    # compatibility with callers of the single-layer dock
    @property
    def layer(self) -> Optional[QgsVectorLayer]:
        return self.run_state.layers.get("places") if self.run_state else None

    @property
    def rows(self) -> int:
        return len(self.run_state.rows) if self.run_state else 0

    @property
    def failures(self) -> List[str]:
        return [f"{Path(f['source']).name}: {f['message']}" for f in self.run_state.failures] if self.run_state else []

    @property
    def readable(self) -> List[str]:
        return [r["source"] for r in self.run_state.rows if r.get("kind") == "image"] if self.run_state else []

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
        for value, label in settings.device_choices():  # the one device list, as Settings and Processing
            self.device.addItem(label, value)
        current = defaults.canonical_device(str(settings.get("device") or "auto"))
        if self.device.findData(current) < 0:
            self.device.addItem(current.upper(), current)
        self.device.setCurrentIndex(max(0, self.device.findData(current)))
        opts.addWidget(self.device)
        self.raster = QCheckBox(tr("Likelihood raster"))
        self.raster.setToolTip(tr("Also map the probability density and its 50 % / 90 % confidence regions "
                                  "(photos of one place are fused)"))
        opts.addWidget(self.raster)
        opts.addStretch(1)
        v.addLayout(opts)
        where = QHBoxLayout()
        where.addWidget(QLabel(tr("Area of interest")))
        self.aoi = QComboBox()
        self.aoi.addItem(tr("Anywhere"), "")
        self.aoi.addItem(tr("The map extent"), "extent")
        self.aoi.addItem(tr("The active polygon layer"), "layer")
        self.aoi.setToolTip(tr("Restrict the answer to where the photo must be; the share of the probability that "
                               "fell outside is reported"))
        where.addWidget(self.aoi, 1)
        where.addWidget(QLabel(tr("Keep results")))
        self.store = QComboBox()
        self.store.addItem(tr("in a GeoPackage next to the project"), STORE_GPKG)
        self.store.addItem(tr("as memory layers (lost on exit)"), STORE_MEMORY)
        self.store.setCurrentIndex(max(0, self.store.findData(results_store())))
        self.store.currentIndexChanged.connect(lambda _i: settings.put("results_store", self.store.currentData()))
        where.addWidget(self.store, 1)
        v.addLayout(where)
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
        fail_row = QHBoxLayout()
        self.failure_toggle = QToolButton()
        self.failure_toggle.setCheckable(True)
        self.failure_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.failure_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.failure_toggle.setAutoRaise(True)
        self.failure_toggle.setVisible(False)
        self.failure_toggle.toggled.connect(self._show_failures)
        fail_row.addWidget(self.failure_toggle)
        fail_row.addStretch(1)
        v.addLayout(fail_row)
        self.failure_list = QTreeWidget()
        self.failure_list.setHeaderLabels([tr("Photo"), tr("Why")])
        self.failure_list.setRootIsDecorated(False)
        self.failure_list.setMaximumHeight(110)
        self.failure_list.setVisible(False)
        v.addWidget(self.failure_list)
        view_row = QHBoxLayout()
        self.raw = QCheckBox(tr("Raw top-k (gallery points) instead of places"))
        self.raw.toggled.connect(self.refill_table)
        view_row.addWidget(self.raw)
        view_row.addStretch(1)
        v.addLayout(view_row)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([tr(c) if c else c for c in COLUMNS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setIconSize(QSize(48, 48))
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)  # long names must not push the numbers away
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)  # the place's name gets the room
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        self.table.setColumnWidth(1, 120)
        self.table.setColumnWidth(3, 150)
        v.addWidget(self.table, 1)
        self.setWidget(body)
        self.add_files.clicked.connect(self.pick_files)
        self.add_folder.clicked.connect(self.pick_folder)
        self.clear.clicked.connect(self.photos.clear)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.table.cellDoubleClicked.connect(self.zoom_to_row)
        self.table.itemSelectionChanged.connect(self.table_selection_changed)
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

    def area_of_interest(self) -> Any:
        """The request's `aoi`: the map extent as [W, S, E, N] in degrees, or the active polygon layer's geometry
        as GeoJSON (EPSG:4326), or None."""
        mode = self.aoi.currentData()
        if mode == "extent":
            canvas = self.iface.mapCanvas()
            return visible_extent_4326(canvas.extent(), canvas.mapSettings().destinationCrs())
        if mode == "layer":
            layer = self.iface.activeLayer()
            polygon = QgsWkbTypes.GeometryType.PolygonGeometry
            if not isinstance(layer, QgsVectorLayer) or layer.geometryType() != polygon:
                raise ValueError(tr("Select a polygon layer in the Layers panel for the area of interest."))
            feats = list(layer.getSelectedFeatures()) or list(layer.getFeatures())
            try:  # the one conversion (layers/aoi.py), as Processing's
                return aoi_geojson(feats, layer.crs(), QgsProject.instance().transformContext())
            except NoPolygon:
                raise ValueError(tr("The selected layer has no polygon for the area of interest.")) from None
        return None

    def run(self) -> None:
        if self.task is not None:
            return
        photos, text = self.photos.paths(), self.query.text().strip()
        if not photos and not text:
            self.status.setText(tr("Add photos or type a description first."))
            return
        try:
            aoi = self.area_of_interest()
        except ValueError as exc:
            self.status.setText(str(exc))
            return
        self.table.setRowCount(0)
        self.failure_list.clear()
        self.failure_toggle.setVisible(False)
        self.failure_list.setVisible(False)
        params: Dict[str, Any] = {"engine": self.engine_options(), "top_k": self.top_k.value()}
        if aoi is not None:
            params["aoi"] = aoi
        if photos:
            op, params["paths"] = "geolocate_images", photos
            self.run_state = Run("image", len(photos))
            title = tr("GeoCLIP: {} photo(s)").format(len(photos))
            if self.raster.isChecked():
                params["region_res"] = self.region_res
        else:
            op, params["queries"] = "geolocate_text", [text]
            self.run_state = Run("text", 1, text)
            title = tr("GeoCLIP: “{}”").format(text)
        self.run_state.aoi = aoi
        self._start(EngineTask(title, op, params), self.predictions_done)

    def _start(self, task: EngineTask, on_done) -> None:
        self.task = task
        task.rowReady.connect(self.add_row)
        task.progressText.connect(self.status.setText)
        task.counts.connect(self._counts)
        task.done.connect(on_done)
        task.failed.connect(self.task_failed)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        if shared_client().alive:
            self.status.setText(tr("Sending the request to the engine…"))
        else:
            self.status.setText(tr("Starting the engine…"))
        self.started_at = time.monotonic()
        QgsApplication.taskManager().addTask(task)

    def _counts(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress.setFormat("%v/%m")

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText(tr("Cancelling… finished rows are kept."))

    def _idle(self) -> None:
        self.last_task, self.task = self.task, None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    # ---- layers -------------------------------------------------------------------------------------------------
    def _group(self) -> QgsLayerTreeGroup:
        run = self.run_state
        if run.group is None:
            root = QgsProject.instance().layerTreeRoot()
            run.group = root.insertGroup(0, unique_layer_name(run.title()))
        return run.group

    def _layer(self, key: str) -> QgsVectorLayer:
        """The run's layer `key` (places, ranks, summary, regions), made and added when its first row exists.
        Order in the run's group, top to bottom: places, summary, raw top-k (unticked), regions, likelihood."""
        run = self.run_state
        if key in run.layers:
            return run.layers[key]
        spec = {"places": ("Point", place_fields(), tr("places"), style_places),
                "summary": ("Point", summary_fields(), tr("summary, one row per photo"), style_places),
                "ranks": ("Point", prediction_fields(), tr("raw top-k"), style_predictions),
                "regions": ("MultiPolygon", region_fields(), tr("confidence regions"), style_regions)}[key]
        group = self._group()
        layer = QgsVectorLayer(f"{spec[0]}?crs=EPSG:4326", f"{group.name()} · {spec[2]}", "memory")
        layer.dataProvider().addAttributes(spec[1].toList())
        layer.updateFields()
        spec[3](layer)
        layer.setCustomProperty("geoclip/kind", key)
        QgsProject.instance().addMapLayer(layer, False)
        order = ["places", "summary", "ranks", "regions", "likelihood"]
        index = sum(1 for k in order[:order.index(key)] if k in run.layers)
        node = group.insertLayer(index, layer)
        if key == "ranks":
            node.setItemVisibilityChecked(False)
        run.layers[key] = layer
        if key in ("places", "ranks"):
            layer.selectionChanged.connect(self.layer_selection_changed)
        return layer

    def _add(self, key: str, feats) -> List[int]:
        if not feats:
            return []
        layer = self._layer(key)
        ok, added = layer.dataProvider().addFeatures(feats)
        layer.updateExtents()
        layer.triggerRepaint()
        return [f.id() for f in added] if ok else []

    def add_row(self, row: Dict[str, Any]) -> None:
        """Main thread: one finished photo/query -> places, raw top-k and summary features, and table rows."""
        run = self.run_state
        if run is None:
            return
        home = QgsProject.instance().homePath() or None
        if row.get("error"):
            err = row["error"] or {}
            run.failures.append({"source": row.get("source", ""), "message": err.get("message", "")})
            self._failure_shown(row.get("source", ""), err.get("message", ""))
            if run.kind == "image":
                run.pending_summary.append(row)
                if "summary" in run.layers:
                    self._flush_summary(home)
            return
        run.rows.append(row)
        row["_place_fids"] = self._add("places", place_features(row, place_fields(), home))
        row["_rank_fids"] = self._add("ranks", prediction_features(row, prediction_fields(), home))
        if run.kind == "image":
            run.pending_summary.append(row)
            self._flush_summary(home)
        row["_pix"] = thumbnail(row["source"]) if row.get("kind") == "image" else None
        self._table_rows(row)

    def _flush_summary(self, home) -> None:
        run = self.run_state
        feats = [summary_feature(r, summary_fields(), home) for r in run.pending_summary]
        run.pending_summary = []
        self._add("summary", feats)

    def _failure_shown(self, source: str, message: str) -> None:
        """One row of the failure table: the file's name, and why (the engine's message without the path it starts
        with; the tooltips hold both in full)."""
        reason = message[len(source) + 2:] if source and message.startswith(source + ": ") else message
        item = QTreeWidgetItem([Path(source).name, reason])
        item.setToolTip(0, source)
        item.setToolTip(1, message)
        self.failure_list.addTopLevelItem(item)
        n = self.failure_list.topLevelItemCount()
        self.failure_toggle.setText(tr("{} photo(s) could not be read").format(n))
        self.failure_toggle.setVisible(True)

    def _show_failures(self, shown: bool) -> None:
        self.failure_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.failure_list.setVisible(shown)

    def refill_table(self, *_args) -> None:
        self.table.setRowCount(0)
        for row in self.run_state.rows if self.run_state else []:
            self._table_rows(row)

    def _table_rows(self, row: Dict[str, Any]) -> None:
        raw = self.raw.isChecked()
        items = row.get("predictions", []) if raw or not row.get("places") else row["places"]
        fids = row.get("_rank_fids") if raw or not row.get("places") else row.get("_place_fids")
        key = "ranks" if raw or not row.get("places") else "places"
        pix = row.get("_pix")
        gps = row.get("gps")
        region = row.get("region") or {}
        name = Path(row["source"]).name if row.get("kind") == "image" else row["source"]
        self.table.setSortingEnabled(False)
        for i, p in enumerate(items):
            r = self.table.rowCount()
            self.table.insertRow(r)
            icon = QTableWidgetItem()
            if pix is not None:
                icon.setIcon(QIcon(pix))
            icon.setData(ROLE_POINT, (p["lat"], p["lon"]))
            icon.setData(ROLE_FEATURE, (key, fids[i] if fids and i < len(fids) else None))
            self.table.setItem(r, 0, icon)
            dist = "" if not gps else f"{haversine_km(gps[0], gps[1], p['lat'], p['lon']):,.1f}"
            area = ""
            if i == 0 and region.get("area_km2") is not None:
                area = tr("{:,.0f} km² in {} part(s)").format(region["area_km2"], region.get("parts", 1))
            values = [name, str(p["rank"]), place_label(p), f"{p['probability']:.4f}", dist, area]
            for c, text in enumerate(values, start=1):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{row['source']}\n{p['lat']:.5f}, {p['lon']:.5f}")
                if c in (2, 4, 5):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
            self.table.setRowHeight(r, 52 if pix is not None else 24)

    def _finish_layers(self, final: bool = True) -> List[str]:
        """Honest names for the run's group and layers; then, when results are kept, the memory layers are written
        to the GeoPackage (new layers of our own, marked as ours) and replaced by them. Returns notes for the
        status line."""
        run = self.run_state
        notes: List[str] = []
        if run is None or run.group is None:
            return notes
        title = unique_layer_name(run.title(final=True), own=run.group)
        run.group.setName(title)
        suffix = {"places": tr("places"), "summary": tr("summary, one row per photo"), "ranks": tr("raw top-k"),
                  "regions": tr("confidence regions")}
        for key, layer in run.layers.items():
            if key in suffix:
                layer.setName(f"{title} · {suffix[key]}")
        if self.store.currentData() == STORE_GPKG:
            try:
                path = self._keep(run, title)
                notes.append(tr("Kept in {}.").format(path))
            except Exception as exc:  # the results stay as memory layers; say so
                notes.append(tr("Not saved ({}); the layers are memory layers.").format(exc))
        return notes

    def _keep(self, run: Run, title: str) -> str:
        """Write each memory layer of the run to the results GeoPackage under a new layer name (never one that is
        there: a user's layer is never replaced) and swap it in, same place in the tree, same style."""
        import re

        from osgeo import ogr

        path = results_gpkg()
        existing = set()
        if os.path.exists(path):
            ds = ogr.Open(path)
            if ds is not None:
                existing = {ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())}
                ds = None
        stamp = time.strftime("%Y%m%d_%H%M%S")
        for key, layer in list(run.layers.items()):
            if layer.providerType() != "memory":
                continue
            base = re.sub(r"[^A-Za-z0-9_]+", "_", f"geoclip_{stamp}_{key}").strip("_")
            name, n = base, 2
            while name in existing:
                name, n = f"{base}_{n}", n + 1
            opts = QgsVectorFileWriter.SaveVectorOptions()
            opts.driverName = "GPKG"
            opts.layerName = name
            opts.fileEncoding = "UTF-8"
            opts.actionOnExistingFile = (QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
                                         if os.path.exists(path) else
                                         QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteFile)
            write = getattr(QgsVectorFileWriter, "writeAsVectorFormatV3", None) or \
                QgsVectorFileWriter.writeAsVectorFormatV2  # V3 from QGIS 3.20
            res = write(layer, path, QgsProject.instance().transformContext(), opts)
            if res[0] != QgsVectorFileWriter.WriterError.NoError:
                raise OSError(res[1] or "GeoPackage write failed")
            existing.add(name)
            geopackage.mark(path, name)  # the one GeoPackage policy (shared/geopackage.py)
            kept = QgsVectorLayer(f"{path}|layername={name}", layer.name(), "ogr")
            if not kept.isValid():
                raise OSError(tr("cannot read back {}").format(name))
            kept.setRenderer(layer.renderer().clone())
            kept.setMapTipTemplate(layer.mapTipTemplate())
            kept.setCustomProperty("geoclip/kind", key)
            node = run.group.findLayer(layer.id())
            index = run.group.children().index(node) if node is not None else 0
            visible = node.itemVisibilityChecked() if node is not None else True
            QgsProject.instance().addMapLayer(kept, False)
            new_node = run.group.insertLayer(index, kept)
            new_node.setItemVisibilityChecked(visible)
            with contextlib.suppress(TypeError, RuntimeError):
                layer.selectionChanged.disconnect(self.layer_selection_changed)
            QgsProject.instance().removeMapLayer(layer.id())
            run.layers[key] = kept
            if key in ("places", "ranks"):
                kept.selectionChanged.connect(self.layer_selection_changed)
        return path

    # ---- results ------------------------------------------------------------------------------------------------
    def _was_cancelled(self, result: Dict[str, Any]) -> bool:
        return bool(result.get("cancelled")) or (self.task is not None and self.task.isCanceled())

    def predictions_done(self, result: Dict[str, Any]) -> None:
        run = self.run_state
        cancelled = self._was_cancelled(result)
        if cancelled and result.get("started") is False and not run.rows:  # cancelled while it waited
            self._finish_layers()
            self.status.setText(tr("Cancelled while waiting; nothing ran, nothing added."))
            self._idle()
            return
        if run.pending_summary and "summary" in run.layers:
            self._flush_summary(QgsProject.instance().homePath() or None)
        kind = tr("photo(s)") if run.kind == "image" else tr("query")
        msg = tr("{} {} geolocated").format(len(run.rows), kind)
        if run.kind == "image":
            msg = tr("{} of {} photo(s) geolocated").format(len(run.rows), run.n_inputs)
        if run.failures:
            msg += tr(", {} could not be read").format(len(run.failures))
            self.iface.messageBar().pushWarning("GeoCLIP", tr("{} photo(s) could not be read; see the GeoCLIP panel")
                                                .format(len(run.failures)))
        outside = [r.get("aoi_outside") for r in run.rows if r.get("aoi_outside") is not None]
        if outside:
            msg += tr("; {:.0%} of the probability fell outside the area of interest").format(
                sum(outside) / len(outside))
        if cancelled:
            done, total = self.task.last if self.task is not None else (0, 0)
            msg += tr(" (cancelled after {}/{}; finished rows kept)").format(done, total) if total else \
                tr(" (cancelled; finished rows kept)")
        if run.group is None:
            msg += tr("; no layer added")
        msg += tr(" in {:.1f} s.").format(time.monotonic() - self.started_at)
        notes = self._finish_layers() if not (self.raster.isChecked() and not cancelled and run.rows) else []
        if notes:
            msg += " " + " ".join(notes)
        self.status.setText(msg)
        if not cancelled and self.progress.maximum() <= 100 and self.progress.format() == "%p%":
            self.progress.setValue(self.progress.maximum())
        places = run.layers.get("places")
        if places is not None and places.featureCount():
            self.zoom_to(places.extent(), WGS84, buffer=2.0)
        if self.raster.isChecked() and not cancelled and run.rows:
            self.task = None
            self.run_likelihood()
        else:
            self._idle()

    def run_likelihood(self) -> None:
        run = self.run_state
        photos, text = self.readable, run.text
        out = settings.raster_output("likelihood")
        params = {"engine": self.engine_options(), "photos": photos if run.kind == "image" else [],
                  "text": text if run.kind == "text" else "", "resolution": self.likelihood_resolution, "out": out,
                  "regions_out": out[:-4] + "_regions.geojson", "levels": [0.5, 0.9]}
        if self.likelihood_extent is not None:
            params["extent"] = self.likelihood_extent
        size = self.iface.mapCanvas().mapSettings().outputSize()
        params["view_px"] = [max(1, size.width()), max(1, size.height())]  # "auto": ~3 px a cell of the map
        if getattr(run, "aoi", None) is not None:
            params["aoi"] = run.aoi
        self._start(EngineTask(tr("GeoCLIP likelihood raster"), "likelihood", params), self.raster_done)
        self.status.setText(tr("Mapping the likelihood…"))

    def raster_done(self, result: Dict[str, Any]) -> None:
        run = self.run_state
        if self._was_cancelled(result):
            done, total = self.task.last if self.task is not None else (0, 0)
            notes = self._finish_layers()
            self.status.setText(tr("Likelihood raster cancelled at step {}/{}; nothing added.").format(done, total)
                                + (" " + " ".join(notes) if notes else ""))
            self._idle()
            return
        parts = []
        if result.get("regions_path") and os.path.exists(result["regions_path"]):
            src = QgsVectorLayer(result["regions_path"], "regions", "ogr")
            if src.isValid() and src.featureCount():
                feats = []
                for f in src.getFeatures():
                    g = QgsFeature(region_fields())
                    g.setGeometry(f.geometry())
                    for name in ("source", "level", "area_km2", "parts", "mass", "summary"):
                        if src.fields().indexOf(name) >= 0:
                            g[name] = f[name]
                    feats.append(g)
                self._add("regions", feats)
        for reg in result.get("regions") or []:
            if abs(float(reg.get("level", 0)) - 0.9) < 1e-6:
                parts.append(tr("90 % region: {:,.0f} km² in {} part(s)").format(reg["area_km2"], reg["parts"]))
        notes = self._finish_layers()  # final names first, so the raster is named like its run
        layer = QgsRasterLayer(result["path"], f"{self._group().name()} · {tr('likelihood')}")
        style_likelihood(layer)
        layer.setCustomProperty("geoclip/kind", "likelihood")
        QgsProject.instance().addMapLayer(layer, False)
        self._group().addLayer(layer)  # the bottom of the run's group: under the points and regions
        run.raster = layer
        text = tr("Likelihood raster added; densest cell {:.4f}, {:.4f}.").format(result["best_lat"],
                                                                                    result["best_lon"])
        if parts:
            text += " " + "; ".join(parts) + "."
        if result.get("aoi_outside") is not None:
            text += " " + tr("{:.0%} of the probability fell outside the area of interest.").format(
                result["aoi_outside"])
        if notes:
            text += " " + " ".join(notes)
        self.status.setText(text)
        self.progress.setRange(0, 100)
        self.progress.setFormat("%p%")
        self.progress.setValue(100)
        self._idle()

    def task_failed(self, error: Dict[str, Any]) -> None:
        text = error_text(error)
        if self.run_state is not None and self.run_state.group is not None:
            notes = self._finish_layers()
            if notes:
                text += "\n" + " ".join(notes)
        self.status.setText(text)
        if error.get("code") != "cancelled":
            self.iface.messageBar().pushCritical("GeoCLIP", text.splitlines()[0])
        self._idle()

    # ---- navigation and selection -------------------------------------------------------------------------------
    def table_selection_changed(self) -> None:
        """A table row selected -> its point selected on the map (and the layer made current: the photo tab
        follows)."""
        if self._syncing or self.run_state is None:
            return
        rows = sorted({i.row() for i in self.table.selectedItems()})
        by_key: Dict[str, List[int]] = {}
        for r in rows:
            item = self.table.item(r, 0)
            key, fid = item.data(ROLE_FEATURE) if item is not None and item.data(ROLE_FEATURE) else (None, None)
            if key is not None and fid is not None:
                by_key.setdefault(key, []).append(fid)
        self._syncing = True
        try:
            for key, layer in self.run_state.layers.items():
                if key in ("places", "ranks"):
                    ids = by_key.get(key, [])
                    if ids and self.iface.activeLayer() is not layer:
                        self.iface.setActiveLayer(layer)
                    layer.selectByIds(ids)
        finally:
            self._syncing = False

    def layer_selection_changed(self, *_args) -> None:
        """Points selected on the map -> their rows selected in the table."""
        if self._syncing or self.run_state is None:
            return
        layer = self.sender()
        key = layer.customProperty("geoclip/kind") if layer is not None else None
        selected = set(layer.selectedFeatureIds()) if layer is not None else set()
        self._syncing = True
        try:
            self.table.clearSelection()
            mode = self.table.selectionMode()
            self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
            first = None
            for r in range(self.table.rowCount()):
                item = self.table.item(r, 0)
                data = item.data(ROLE_FEATURE) if item is not None else None
                if data and data[0] == key and data[1] in selected:
                    self.table.selectRow(r)
                    first = r if first is None else first
            self.table.setSelectionMode(mode)
            if first is not None:
                self.table.scrollToItem(self.table.item(first, 0))
        finally:
            self._syncing = False

    def zoom_to_row(self, row: int, _col: int = 0) -> None:
        lat, lon = self.table.item(row, 0).data(ROLE_POINT)
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
