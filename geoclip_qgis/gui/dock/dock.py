"""The geolocation dock: drop photos or type a description, run, and watch the places appear on the map."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import (
    Qgis,
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
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...client.engine_client import shared_client
from ...client.messages import bar_text
from ...layers.results import (
    place_features,
    place_fields,
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
from ...shared import defaults
from ...shared.photo_list import IMAGE_SUFFIXES
from .. import background
from .. import settings_dialog as settings
from ..map_tool import WORLD, clip_to_valid_area, transform, visible_extent_4326
from ..settings_dialog import plural, tr
from ..tasks import EngineTask
from .framing import points_view
from .photo_list import PhotoList, thumbnail
from .progress_line import ProgressLine
from .results_table import COLUMNS, ROLE_FEATURE, ROLE_POINT, ResultsTable, region_text  # noqa: F401 - re-exported
from .run import (  # noqa: F401 - re-exported (tests, callers of the one-file dock)
    STORE_GPKG,
    STORE_MEMORY,
    Run,
    error_text,
    keep_in_geopackage,
    results_gpkg,
    results_store,
    unique_layer_name,
)

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
REGION_RES = 1.0  # per-photo 90 % regions (summary layer) when the likelihood raster is asked for


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
        self._bar_items: List[Any] = []
        self._build()
        QgsProject.instance().layersWillBeRemoved.connect(self.layers_removed)

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
        self.line = ProgressLine(self.status, self.progress, self)
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
        self.table = ResultsTable()
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
            import json

            layer = self.iface.activeLayer()
            polygon = QgsWkbTypes.GeometryType.PolygonGeometry
            if not isinstance(layer, QgsVectorLayer) or layer.geometryType() != polygon:
                raise ValueError(tr("Select a polygon layer in the Layers panel for the area of interest."))
            feats = list(layer.getSelectedFeatures()) or list(layer.getFeatures())
            geom = QgsGeometry.unaryUnion([f.geometry() for f in feats if f.hasGeometry()])
            geom.transform(QgsCoordinateTransform(layer.crs(), WGS84, QgsProject.instance()))
            return json.loads(geom.asJson(6))
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
        self.table.clear_rows()
        self._clear_bar()
        self.failure_list.clear()
        self.failure_toggle.setVisible(False)
        self.failure_list.setVisible(False)
        params: Dict[str, Any] = {"engine": self.engine_options(), "top_k": self.top_k.value()}
        if aoi is not None:
            params["aoi"] = aoi
        if photos:
            op, params["paths"] = "geolocate_images", photos
            self.run_state = Run("image", len(photos))
            title = plural(len(photos), "GeoCLIP: {} photo", "GeoCLIP: {} photos").format(len(photos))
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
        task.progressText.connect(self.line.stage)
        task.counts.connect(self.line.counts)
        task.done.connect(on_done)
        task.failed.connect(self.task_failed)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.line.begin(tr("Sending the request to the engine…") if shared_client().alive
                        else tr("Starting the engine…"))
        self.started_at = time.monotonic()
        QgsApplication.taskManager().addTask(task)
        background.watch()  # the engine's start begins its background world fields: show them

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.line.stage(tr("Cancelling… finished rows are kept."))

    def _idle(self) -> None:
        task = self.task
        self.line.end(complete=task is not None and not task.isCanceled() and task.error is None)
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
        self.table.add_result(row, self.raw.isChecked(), row["_pix"])

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
        self.failure_toggle.setText(plural(n, "{} photo could not be read", "{} photos could not be read").format(n))
        self.failure_toggle.setVisible(True)

    def _show_failures(self, shown: bool) -> None:
        self.failure_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.failure_list.setVisible(shown)

    def refill_table(self, *_args) -> None:
        self.table.clear_rows()
        for row in self.run_state.rows if self.run_state else []:
            self.table.add_result(row, self.raw.isChecked(), row.get("_pix"))

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
                path = keep_in_geopackage(run, title, self._relink)
                notes.append(tr("Kept in {}.").format(path))
            except Exception as exc:  # the results stay as memory layers; say so
                notes.append(tr("Not saved ({}); the layers are memory layers.").format(exc))
        return notes

    def _relink(self, old: QgsVectorLayer, new: QgsVectorLayer) -> None:
        """A memory layer swapped for its GeoPackage copy: table/map selection follows the new one."""
        with contextlib.suppress(TypeError, RuntimeError):
            old.selectionChanged.disconnect(self.layer_selection_changed)
        if new.customProperty("geoclip/kind") in ("places", "ranks"):
            new.selectionChanged.connect(self.layer_selection_changed)

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
        msg = plural(len(run.rows), "{} query geolocated", "{} queries geolocated").format(len(run.rows))
        if run.kind == "image":
            msg = plural(run.n_inputs, "{} of {} photo geolocated", "{} of {} photos geolocated").format(
                len(run.rows), run.n_inputs)
        if run.failures:
            msg += tr(", {} could not be read").format(len(run.failures))
            n = len(run.failures)
            self._push(plural(n, "{} photo could not be read; see the GeoCLIP panel",
                              "{} photos could not be read; see the GeoCLIP panel").format(n),
                       Qgis.MessageLevel.Warning)
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
        self.zoom_to_results()
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
        crs = self.iface.mapCanvas().mapSettings().destinationCrs()
        world = clip_to_valid_area(list(WORLD), crs, world_only=True)  # Web Mercator: ±85°, no streaks
        if self.likelihood_extent is not None:
            params["extent"] = self.likelihood_extent
        elif world != WORLD:
            params["extent"] = world
        size = self.iface.mapCanvas().mapSettings().outputSize()
        params["view_px"] = [max(1, size.width()), max(1, size.height())]  # "auto": ~3 px a cell of the map
        if getattr(run, "aoi", None) is not None:
            params["aoi"] = run.aoi
        self._start(EngineTask(tr("GeoCLIP likelihood raster"), "likelihood", params), self.raster_done)
        self.line.stage(tr("Mapping the likelihood…"))

    def raster_done(self, result: Dict[str, Any]) -> None:
        run = self.run_state
        if self._was_cancelled(result):
            done, total = self.task.last if self.task is not None else (0, 0)
            notes = self._finish_layers()
            text = tr("Likelihood raster cancelled at step {}/{}; no raster added.").format(done, total) if total \
                else tr("Likelihood raster cancelled; no raster added.")
            if run.layers:  # the points of the finished step stay: say where, not "nothing added"
                text += " " + tr("The points stay.")
            self.status.setText(text + (" " + " ".join(notes) if notes else ""))
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
                parts.append(tr("90 % region: {}").format(region_text(reg)))
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
        if error.get("code") not in ("cancelled", "stopped"):
            details = str(error.get("details") or "")
            # One line that fits the bar (the fix included); the engine's own words behind "More".
            self.iface.messageBar().pushMessage("GeoCLIP", bar_text({"message": text.splitlines()[0],
                                                                      "hint": " ".join(text.splitlines()[1:2])}),
                                                details or text, Qgis.MessageLevel.Critical, 0)
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

    def zoom_to_results(self) -> None:
        """The run's points framed with room for their map tips (framing.py); nothing when there are none."""
        layer = self.run_state.layers.get("places") or self.run_state.layers.get("ranks") if self.run_state else None
        if layer is None or not layer.featureCount():
            return
        canvas = self.iface.mapCanvas()
        size = canvas.mapSettings().outputSize()
        view = points_view(layer.extent(), canvas.mapSettings().destinationCrs(), (size.width(), size.height()))
        if view is not None:
            canvas.setExtent(view)
            canvas.refresh()

    # ---- messages and removed layers ------------------------------------------------------------------------------
    def _push(self, text: str, level) -> None:
        """A message bar entry of this run, taken back when the next run starts (no stale warning stays)."""
        bar = self.iface.messageBar()
        item = bar.createMessage("GeoCLIP", text)
        self._bar_items.append(bar.pushWidget(item, level))

    def _clear_bar(self) -> None:
        bar = self.iface.messageBar()
        for item in self._bar_items:
            with contextlib.suppress(RuntimeError):  # closed by the user already
                bar.popWidget(item)
        self._bar_items = []

    def layers_removed(self, ids) -> None:
        """The user removed a layer of the run (or its group): its rows leave the table, its features are no
        longer selected from it."""
        run = self.run_state
        if run is None:
            return
        gone = [key for key, layer in run.layers.items() if layer.id() in set(ids)]
        for key in gone:
            del run.layers[key]
            for r in reversed(self.table.rows_of(key)):
                self.table.removeRow(r)
        if gone:
            self.table.fit_columns()

    def shutdown(self) -> None:
        """Unload: stop listening to the project."""
        with contextlib.suppress(TypeError, RuntimeError):
            QgsProject.instance().layersWillBeRemoved.disconnect(self.layers_removed)
        self._clear_bar()

    def zoom_to(self, rect: QgsRectangle, crs, buffer: float = 0.0) -> None:
        canvas = self.iface.mapCanvas()
        if buffer:
            rect = QgsRectangle(rect)
            rect.grow(buffer)
        xform = transform(crs, canvas.mapSettings().destinationCrs())
        canvas.setExtent(xform.transformBoundingBox(rect))
        canvas.refresh()
