"""The geolocation dock: drop photos or type a description, run, and watch the places appear on the map."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
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
    QVBoxLayout,
    QWidget,
)

from ...client.engine_client import shared_client
from ...client.messages import bar_text, ran_on_parts
from ...layers.aoi import NoPolygon, aoi_geojson
from ...layers.results import (
    region_fields,
    style_likelihood,
)
from ...shared import defaults
from ...shared.photo_list import IMAGE_SUFFIXES
from .. import background
from .. import settings_dialog as settings
from ..map_tool import WORLD, clip_to_valid_area, visible_extent_4326
from ..report import start_from_dock
from ..settings_dialog import plural, tr
from ..tasks import EngineTask
from .case_options import CaseOptions
from .map_sync import MapSync
from .photo_list import PhotoList
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
    saliency_folder,
    unique_layer_name,
)
from .run_layers import RunLayers

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
REGION_RES = 1.0  # per-photo 90 % regions (summary layer) when the likelihood raster is asked for


class GeolocationDock(RunLayers, MapSync, QgsDockWidget):
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
        self.why = QCheckBox(tr("Why"))
        self.why.setToolTip(tr("Also map, on each photo, what drove its top place (shown in the photo viewer and "
                               "the report); about twice the time of a run"))
        opts.addWidget(self.why)
        opts.addStretch(1)
        v.addLayout(opts)
        trip_row = QHBoxLayout()
        self.trip = QCheckBox(tr("Photos are one trip"))
        self.trip.setToolTip(tr("Answer the photos together, in the order their EXIF times give (file order "
                                "without times): two photos taken an hour apart cannot be farther apart than the "
                                "speed allows; photos with GPS fix their neighbours. Adds a track layer."))
        trip_row.addWidget(self.trip)
        trip_row.addWidget(QLabel(tr("at most")))
        self.trip_speed = QSpinBox()
        self.trip_speed.setRange(1, 100_000)
        self.trip_speed.setSuffix(tr(" km/h"))
        self.trip_speed.setValue(settings.get("trip_speed_kmh"))
        self.trip_speed.setToolTip(tr("The fastest travel between two photos of the trip (900 km/h: an airliner; "
                                      "120 km/h: a car)"))
        self.trip_speed.setEnabled(False)
        self.trip.toggled.connect(self.trip_speed.setEnabled)
        trip_row.addWidget(self.trip_speed)
        trip_row.addStretch(1)
        v.addLayout(trip_row)
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
        self.case = CaseOptions(canvas=self.iface.mapCanvas())  # a hint, and where the photo must be
        v.addWidget(self.case)
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
        self.report_button = QPushButton(tr("Report (PDF)…"))
        self.report_button.setToolTip(tr("A PDF to hand on: a case page, then one page per photo (photo, what drove "
                                         "the answer, maps, places, EXIF, SHA-256, model)"))
        self.report_button.clicked.connect(lambda: start_from_dock(self))
        self.report_job = None
        view_row.addWidget(self.report_button)
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
            aoi = self.case.area(self.area_of_interest())
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
        hint = self.case.hint_params()
        params.update(hint)
        if photos:
            op, params["paths"] = "geolocate_images", photos
            self.run_state = Run("image", len(photos))
            title = plural(len(photos), "GeoCLIP: {} photo", "GeoCLIP: {} photos").format(len(photos))
            if self.raster.isChecked():
                params["region_res"] = self.region_res
            if self.trip.isChecked():
                params["trip"], params["trip_speed_kmh"] = True, float(self.trip_speed.value())
                settings.put("trip_speed_kmh", self.trip_speed.value())
            self.run_state.paths = list(photos)
            if self.why.isChecked():
                params["saliency"] = saliency_folder()
        else:
            op, params["queries"] = "geolocate_text", [text]
            self.run_state = Run("text", 1, text)
            title = tr("GeoCLIP: “{}”").format(text)
        self.run_state.aoi = aoi
        self.run_state.hint = hint
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
        trip_note = self.add_trip(result["trip"]) if result.get("trip") and not cancelled else ""
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
            said = next((r.get("constraint") for r in run.rows if r.get("constraint")), None)
            if said:
                msg += tr(" ({})").format(said)
        if run.rows and run.rows[0].get("hint"):
            msg += tr("; hint “{}”, weight {:g}").format(run.rows[0]["hint"], run.rows[0].get("hint_weight") or 0)
        if cancelled:
            done, total = self.task.last if self.task is not None else (0, 0)
            msg += tr(" (cancelled after {}/{}; finished rows kept)").format(done, total) if total else \
                tr(" (cancelled; finished rows kept)")
        if run.group is None:
            msg += tr("; no layer added")
        msg += tr(" in {:.1f} s.").format(time.monotonic() - self.started_at)
        device, precision, reason = ran_on_parts(result.get("ran_on"))
        if device:  # what ran it, and why that precision (issue 22): short on the line, whole in its tooltip
            msg = msg[:-1] + tr(" ({}, {}).").format(device, precision)
            self.status.setToolTip(tr("Ran on {} in {}: {}").format(device, precision, reason))
        if trip_note:
            msg += " " + trip_note
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
        params.update(getattr(run, "hint", None) or {})  # the map fuses the same hint
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
