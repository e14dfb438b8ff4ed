"""The dock's run on the map and in the table: its layer group and layers (made when their first row exists),
features and table rows from worker rows, the failure list, and the final names and GeoPackage copy."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Dict, List

from qgis.core import (
    QgsLayerTreeGroup,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QTreeWidgetItem,
)

from ...layers.results import (
    place_features,
    place_fields,
    prediction_features,
    prediction_fields,
    region_fields,
    stored_path,
    style_places,
    style_predictions,
    style_regions,
    style_trip,
    summary_feature,
    summary_fields,
    trip_feature,
    trip_fields,
    trip_values,
)
from ..settings_dialog import plural, tr
from .photo_list import thumbnail
from .run import STORE_GPKG, keep_in_geopackage, unique_layer_name


class RunLayers:
    """Mixin of GeolocationDock: what a run adds to the project and the table."""

    # ---- layers -------------------------------------------------------------------------------------------------
    def _group(self) -> QgsLayerTreeGroup:
        run = self.run_state
        if run.group is None:
            root = QgsProject.instance().layerTreeRoot()
            run.group = root.insertGroup(0, unique_layer_name(run.title()))
        return run.group

    def _layer(self, key: str) -> QgsVectorLayer:
        """The run's layer `key` (places, ranks, summary, regions), made and added when its first row exists.
        Order in the run's group, top to bottom: trip track, places, summary, raw top-k (unticked), regions,
        likelihood."""
        run = self.run_state
        if key in run.layers:
            return run.layers[key]
        spec = {"places": ("Point", place_fields(), tr("places"), style_places),
                "summary": ("Point", summary_fields(), tr("summary, one row per photo"), style_places),
                "ranks": ("Point", prediction_fields(), tr("raw top-k"), style_predictions),
                "regions": ("MultiPolygon", region_fields(), tr("confidence regions"), style_regions),
                "trip": ("LineString", trip_fields(), tr("trip track"), style_trip)}[key]
        group = self._group()
        layer = QgsVectorLayer(f"{spec[0]}?crs=EPSG:4326", f"{group.name()} · {spec[2]}", "memory")
        layer.dataProvider().addAttributes(spec[1].toList())
        layer.updateFields()
        spec[3](layer)
        layer.setCustomProperty("geoclip/kind", key)
        QgsProject.instance().addMapLayer(layer, False)
        order = ["trip", "places", "summary", "ranks", "regions", "likelihood"]
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

    def add_trip(self, trip: Dict[str, Any]) -> str:
        """The trip's joint answer (the worker's result, photos by position in the request): its columns into the
        summary layer and the table's rows, its track as a line layer on top of the run's group. Returns the
        status line's words."""
        run = self.run_state
        by_source = {run.paths[p["index"]]: p for p in trip.get("photos") or [] if 0 <= p["index"] < len(run.paths)}
        for row in run.rows:
            if row.get("source") in by_source:
                row["trip"] = by_source[row["source"]]
        layer = run.layers.get("summary")
        if layer is not None:
            home = QgsProject.instance().homePath() or None
            stored = {stored_path(src, home): trip_values(p) for src, p in by_source.items()}
            fields = layer.fields()
            changes = {}
            for f in layer.getFeatures():
                values = stored.get(f["source"])
                if values:
                    changes[f.id()] = {fields.indexOf(k): v for k, v in values.items()
                                       if v is not None and fields.indexOf(k) >= 0}
            layer.dataProvider().changeAttributeValues(changes)
            layer.triggerRepaint()
        track = trip_feature(trip, trip_fields())
        if track is not None:
            self._add("trip", [track])
        self.refill_table()
        alone = sum(1 for p in by_source.values() if p.get("trip_order") is None)
        text = plural(len(trip.get("track") or []), "Trip: {} photo in time order", "Trip: {} photos in time order"
                      ).format(len(trip.get("track") or []))
        if alone:
            text += plural(alone, ", {} without a time answered alone", ", {} without a time answered alone"
                           ).format(alone)
        note = (trip.get("summary") or {}).get("note")
        return text + (f" ({note})." if note else ".")

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
                  "regions": tr("confidence regions"), "trip": tr("trip track")}
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
