"""Map tool: click a place, get a 'places like here' similarity raster over the visible extent."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt

from ..layers import style_similarity
from . import settings
from .settings import tr
from .tasks import EngineTask

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def raster_request(extent4326, target_width: int = 480) -> dict:
    """The visible extent (clamped to the globe) at a resolution giving about `target_width` columns."""
    w, s = max(-180.0, extent4326.xMinimum()), max(-90.0, extent4326.yMinimum())
    e, n = min(180.0, extent4326.xMaximum()), min(90.0, extent4326.yMaximum())
    res = max(0.002, (e - w) / target_width)
    return {"extent": [w, s, e, n], "resolution": round(res, 6)}


class PlacesLikeHereTool(QgsMapToolEmitPoint):
    def __init__(self, iface):
        super().__init__(iface.mapCanvas())
        self.iface = iface
        self.task = None
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.canvasClicked.connect(self.clicked)

    def clicked(self, point, _button) -> None:
        if self.task is not None:
            self.iface.messageBar().pushInfo("GeoCLIP", tr("Still computing the previous click…"))
            return
        canvas = self.iface.mapCanvas()
        to_wgs = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), WGS84, QgsProject.instance())
        p = to_wgs.transform(point)
        req = raster_request(to_wgs.transformBoundingBox(canvas.extent()))
        out = settings.raster_output(f"like_{p.y():.4f}_{p.x():.4f}")
        self.task = EngineTask(tr("GeoCLIP: places like here"), "similar",
                               {"lat": p.y(), "lon": p.x(), "out": out, "engine": settings.engine_options(), **req})
        self.task.done.connect(lambda res: self.done(res, p))
        self.task.failed.connect(self.failed)
        from qgis.core import QgsApplication

        QgsApplication.taskManager().addTask(self.task)
        self.iface.messageBar().pushInfo("GeoCLIP", tr("Finding places like {:.4f}, {:.4f}…").format(p.y(), p.x()))

    def done(self, result, point) -> None:
        self.task = None
        layer = QgsRasterLayer(result["path"], tr("Places like {:.3f}, {:.3f}").format(point.y(), point.x()))
        style_similarity(layer)
        QgsProject.instance().addMapLayer(layer)

    def failed(self, error) -> None:
        self.task = None
        self.iface.messageBar().pushCritical("GeoCLIP", error.get("message", tr("failed")))
