"""Zoom to a run's results so that every point and the map tip it shows on hover stay on the canvas.

A plain zoom to the layer's extent puts the outermost points on the canvas edge, half cut off, and their map tip
(drawn to the lower right of the cursor) off screen. The view is therefore framed in screen pixels: a margin on
the left and top, room for a map tip on the right and below, and the points centred in what is left.
"""

from __future__ import annotations

from typing import Optional, Tuple

from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle

MARGIN_PX = 40  # left and top: a point's symbol and label stay whole
TIP_PX = (260, 170)  # right and bottom: QGIS draws a map tip there (thumbnail and name)
MIN_SPAN_DEG = 2.0  # one point (or several at one place) gets a view this wide, not a 0-wide one


def framed_extent(bbox: QgsRectangle, size_px: Tuple[int, int], margin: int = MARGIN_PX,
                  tip: Tuple[int, int] = TIP_PX) -> QgsRectangle:
    """The map extent (same units as `bbox`) of a `size_px` canvas that shows `bbox` inside the margins: `margin` px
    on the left and top, `tip` px on the right and bottom, centred in the rest. A canvas too small for the tip's room
    gets a tenth of its size on each side instead."""
    width, height = max(1, int(size_px[0])), max(1, int(size_px[1]))
    left = top = margin
    right, bottom = tip
    if width - left - right < width * 0.4 or height - top - bottom < height * 0.4:
        left = right = width // 10
        top = bottom = height // 10
    inner_w, inner_h = width - left - right, height - top - bottom
    w, h = max(bbox.width(), 1e-9), max(bbox.height(), 1e-9)
    scale = max(w / inner_w, h / inner_h)  # map units per pixel, the same on both axes
    pad_x = (inner_w * scale - bbox.width()) / 2.0
    pad_y = (inner_h * scale - bbox.height()) / 2.0
    x0 = bbox.xMinimum() - pad_x - left * scale
    y1 = bbox.yMaximum() + pad_y + top * scale
    return QgsRectangle(x0, y1 - height * scale, x0 + width * scale, y1)


def points_view(bbox_4326: QgsRectangle, crs: QgsCoordinateReferenceSystem,
                size_px: Tuple[int, int]) -> Optional[QgsRectangle]:
    """The framed view, in `crs`, of points whose bounding box in degrees is `bbox_4326`. A degenerate box (one
    place) grows to MIN_SPAN_DEG; the box is clipped to the CRS's valid area first (a point beyond Web Mercator's
    ±85° cannot be framed in it). None when the box cannot be transformed."""
    box = QgsRectangle(bbox_4326)
    if box.width() < MIN_SPAN_DEG and box.height() < MIN_SPAN_DEG:
        c = box.center()
        half = MIN_SPAN_DEG / 2.0
        box = QgsRectangle(c.x() - half, c.y() - half, c.x() + half, c.y() + half)
    bounds = crs.bounds()
    if not bounds.isEmpty():
        clipped = box.intersect(bounds)
        if not clipped.isEmpty():
            box = clipped
    xform = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), crs, QgsProject.instance())
    xform.setBallparkTransformsAreAppropriate(True)  # a view, not a measurement: no "ballpark" warning bar
    try:
        box = xform.transformBoundingBox(box)
    except Exception:  # QgsCsException: outside what the CRS can show; leave the view alone
        return None
    return framed_extent(box, size_px)
