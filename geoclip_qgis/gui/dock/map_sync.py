"""The dock and the map in step: table rows select their points and points their rows, zooms, the message bar
entries of a run, and layers the user removes."""

from __future__ import annotations

import contextlib
from typing import Dict, List

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
)
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
)

from ..map_tool import transform
from .framing import points_view
from .results_table import ROLE_FEATURE, ROLE_POINT

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


class MapSync:
    """Mixin of GeolocationDock: selection both ways, zooms, message bar entries, removed layers."""

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
        bar.pushMessage("GeoCLIP", text, level, 0)  # the bar makes and owns the item (C++)
        item = bar.currentItem()
        if item is None:
            return
        items = self._bar_items
        item.destroyed.connect(lambda *_a, i=item: i in items and items.remove(i))  # closed by the user
        items.append(item)

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
