"""Map tool: click a place, get a 'places like here' similarity raster over the visible extent.

The visible extent is turned into a latitude/longitude box by transforming a dense lattice of points of the view
(not its four corners): a projected view (EPSG:3857, EPSG:3035) then yields the box that covers exactly what is
visible, clipped to valid latitudes and longitudes, with a pole or the whole world taken in when the view holds them.
The job runs as a task (progress and Cancel in QGIS's task manager and the message bar); a cancelled job adds nothing.
"""

from __future__ import annotations

import contextlib
import math
from typing import List, Optional, Tuple

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.gui import QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QProgressBar, QPushButton

from ..client.messages import bar_text
from ..layers.results import style_similarity
from . import background
from . import settings_dialog as settings
from .settings_dialog import tr
from .tasks import EngineTask

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
WORLD = [-180.0, -90.0, 180.0, 90.0]
DENSIFY = 40  # points per side of the view sampled for the transform


def transform(src: QgsCoordinateReferenceSystem, dst: QgsCoordinateReferenceSystem) -> QgsCoordinateTransform:
    """The project's transform (its transform context: the datum operations the user chose), marked as one for a
    view: QGIS then never raises its yellow "Used a ballpark transform" bar for a point outside the operation's
    area (a lattice of the view samples such points on purpose)."""
    xf = QgsCoordinateTransform(src, dst, QgsProject.instance())
    xf.setBallparkTransformsAreAppropriate(True)
    return xf


def valid_area(crs: QgsCoordinateReferenceSystem) -> Optional[List[float]]:
    """The CRS's area of use [W, S, E, N] in degrees (Web Mercator: ±85.06°), or None (geographic or unknown)."""
    if not crs.isValid() or crs.isGeographic():
        return None
    b = crs.bounds()
    if b.isEmpty() or b.width() <= 0 or b.height() <= 0:
        return None
    return [max(-180.0, b.xMinimum()), max(-90.0, b.yMinimum()), min(180.0, b.xMaximum()), min(90.0, b.yMaximum())]


def clip_to_valid_area(ext: List[float], crs: QgsCoordinateReferenceSystem, world_only: bool = False) -> List[float]:
    """`ext` [W, S, E, N] cut to what `crs` can draw, so a raster has no streaks beyond Web Mercator's ±85° and
    no cells outside a regional CRS's area. `world_only`: cut only a CRS that spans every longitude (its latitude
    limits); a regional CRS keeps the extent. An extent wholly outside is kept as it is (nothing better to do)."""
    area = valid_area(crs)
    if area is None or (world_only and area[2] - area[0] < 359.0):
        return list(ext)
    w, s, e, n = max(ext[0], area[0]), max(ext[1], area[1]), min(ext[2], area[2]), min(ext[3], area[3])
    return [w, s, e, n] if e > w and n > s else list(ext)


def _finite(p: QgsPointXY) -> bool:
    return math.isfinite(p.x()) and math.isfinite(p.y())


def visible_extent_4326(extent: QgsRectangle, crs: QgsCoordinateReferenceSystem,
                        densify: int = DENSIFY) -> List[float]:
    """[W, S, E, N] in degrees covering the visible `extent` of a view in `crs`: a (densify+1)² lattice of the view
    transformed point by point (points outside the projection's domain dropped), clipped to ±180/±90; the poles
    (and every longitude) when a pole is visible; every longitude when the view crosses the antimeridian; the world
    when the view holds the whole of the CRS's domain."""
    if crs.isGeographic() and crs.authid() == "EPSG:4326":
        w, s = max(-180.0, extent.xMinimum()), max(-90.0, extent.yMinimum())
        e, n = min(180.0, extent.xMaximum()), min(90.0, extent.yMaximum())
        return [w, s, e, n] if e > w and n > s else list(WORLD)
    to_wgs, from_wgs = transform(crs, WGS84), transform(WGS84, crs)
    lons, lats = [], []
    for i in range(densify + 1):
        for j in range(densify + 1):
            x = extent.xMinimum() + extent.width() * i / densify
            y = extent.yMinimum() + extent.height() * j / densify
            try:
                p = to_wgs.transform(QgsPointXY(x, y))
            except Exception:  # QgsCsException: outside the projection's domain
                continue
            if _finite(p) and -180.0001 <= p.x() <= 180.0001 and -90.0001 <= p.y() <= 90.0001:
                lons.append(min(180.0, max(-180.0, p.x())))
                lats.append(min(90.0, max(-90.0, p.y())))
    if not lons:
        return list(WORLD)
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    # A visible pole: all longitudes meet there.
    for pole in (90.0, -90.0):
        try:
            q = from_wgs.transform(QgsPointXY(0.0, pole))
        except Exception:
            continue
        if _finite(q) and extent.contains(q):
            w, e = -180.0, 180.0
            s, n = min(s, pole), max(n, pole)
    # The antimeridian inside the view: neighbouring samples jump by ~360°; take every longitude (a superset).
    if e - w > 300 and _crosses_antimeridian(lons, densify):
        w, e = -180.0, 180.0
    # The whole domain of the CRS visible: the world.
    bounds = crs.bounds()  # the CRS's area of use, in degrees
    if not bounds.isEmpty():
        try:
            dom = from_wgs.transformBoundingBox(bounds)
            if extent.contains(dom):
                return list(WORLD)
        except Exception:
            pass
    return [w, s, e, n]


def _crosses_antimeridian(lons: List[float], densify: int) -> bool:
    return any(abs(a - b) > 180 for a, b in zip(lons, lons[1:]))


def raster_request(extent, crs: Optional[QgsCoordinateReferenceSystem] = None,
                   view_px: Tuple[int, int] = (1800, 900)) -> dict:
    """The visible extent (see visible_extent_4326) cut to the CRS's valid area, and the view's size in pixels: the
    engine picks the resolution by its one rule (core/maps/field_choice.py `choose_resolution`: ~3 screen pixels
    a cell, the finest built field covering the view, the encoder only where none does), as Processing's "auto"."""
    ext = clip_to_valid_area(visible_extent_4326(extent, crs or WGS84), crs or WGS84)
    return {"extent": [round(v, 6) for v in ext], "resolution": "auto",
            "view_px": [max(1, int(view_px[0])), max(1, int(view_px[1]))]}


class PlacesLikeHereTool(QgsMapToolEmitPoint):
    def __init__(self, iface):
        super().__init__(iface.mapCanvas())
        self.iface = iface
        self.task: Optional[EngineTask] = None
        self.bar_item = None
        self.last_result: Optional[dict] = None
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.canvasClicked.connect(self.clicked)

    def clicked(self, point, _button) -> None:
        if self.task is not None:
            self.iface.messageBar().pushInfo("GeoCLIP", tr("Still computing the previous click…"))
            return
        canvas = self.iface.mapCanvas()
        crs = canvas.mapSettings().destinationCrs()
        p = transform(crs, WGS84).transform(point)
        size = canvas.mapSettings().outputSize()
        req = raster_request(canvas.extent(), crs, (size.width(), size.height()))
        out = settings.raster_output(f"like_{p.y():.4f}_{p.x():.4f}")
        self.task = EngineTask(tr("GeoCLIP: places like here"), "similar",
                               {"lat": p.y(), "lon": p.x(), "out": out, "engine": settings.engine_options(), **req})
        self.task.done.connect(lambda res, p=p: self.done(res, p))
        self.task.failed.connect(self.failed)
        self._show_progress(p)
        QgsApplication.taskManager().addTask(self.task)
        background.watch()

    def _show_progress(self, p) -> None:
        bar = self.iface.messageBar()
        item = bar.createMessage("GeoCLIP", tr("Finding places like {:.4f}, {:.4f}…").format(p.y(), p.x()), bar)
        progress = QProgressBar()
        progress.setRange(0, 100)
        progress.setMaximumWidth(200)
        cancel = QPushButton(tr("Cancel"))
        cancel.clicked.connect(self.cancel)
        item.layout().addWidget(progress)
        item.layout().addWidget(cancel)
        self.task.progressChanged.connect(lambda v, bar_=progress: bar_.setValue(int(v)))
        self.task.progressText.connect(item.setText)
        self.progress_bar = progress
        item.destroyed.connect(self._bar_item_gone)  # closed by the user: never popped twice
        self.bar_item = bar.pushWidget(item, Qgis.MessageLevel.Info)

    def _bar_item_gone(self, *_args) -> None:
        self.bar_item = None

    def _clear_progress(self) -> None:
        if self.bar_item is not None:
            with contextlib.suppress(RuntimeError):  # already closed by the user
                self.iface.messageBar().popWidget(self.bar_item)
            self.bar_item = None

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def done(self, result, point) -> None:
        self.last_result = result
        cancelled = result.get("cancelled") or (self.task is not None and self.task.isCanceled())
        self.task = None
        self._clear_progress()
        if cancelled:
            self.iface.messageBar().pushInfo("GeoCLIP", tr("Places like here cancelled; nothing added."))
            return
        layer = QgsRasterLayer(result["path"], tr("Places like {:.3f}, {:.3f}").format(point.y(), point.x()))
        style_similarity(layer)
        QgsProject.instance().addMapLayer(layer)

    def failed(self, error) -> None:
        self.task = None
        self._clear_progress()
        if error.get("code") in ("cancelled", "stopped"):
            return
        # One line with the fix (client/messages.py); the engine's own words behind "More".
        self.iface.messageBar().pushMessage("GeoCLIP", bar_text(error) or tr("failed"),
                                            str(error.get("details") or error.get("message") or ""),
                                            Qgis.MessageLevel.Critical, 0)
