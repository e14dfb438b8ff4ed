"""The dock's results table: one row per place (or raw prediction), sized to its content within the dock's width.

Why a widget of its own: Qt's ResizeToContents and Stretch modes fight each other once a long column (the 90 %
region) has text, squeezing the place's name to a few pixels behind a horizontal scrollbar. Here every column is
measured from the rows it holds and the text columns share what the dock has left; long names are elided in the
middle (both the start and the end of a place name say something) and keep their full text in a tooltip. The widths
are computed again for every run and every resize, so a narrow column never carries over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ...layers.results import place_label
from ...shared.geodesy import haversine_km
from ..settings_dialog import plural, tr, tr_noop

COLUMNS = ["", tr_noop("Photo / query"), tr_noop("Rank"), tr_noop("Place"), tr_noop("Probability"),
           tr_noop("EXIF GPS (km)"), tr_noop("90 % region"), tr_noop("Trip (joint answer)")]
ROLE_POINT = Qt.ItemDataRole.UserRole
ROLE_FEATURE = Qt.ItemDataRole.UserRole + 1
TEXT_COLUMNS = (1, 3, 6, 7)  # elastic: they share the room the numbers leave, and elide
NUMBER_COLUMNS = (2, 4, 5)
OPTIONAL_COLUMNS = (5, 6, 7)  # hidden while no row has a value: no empty column takes room
MIN_TEXT = 48  # px: below this an elided name says nothing
READABLE = 90  # px: the text columns' share below which the number columns give up their headers' width
WEIGHTS = {1: 1, 3: 2, 6: 1, 7: 1}  # the place's name gets twice the share of the photo's name and the region


def region_text(region: Dict[str, Any]) -> str:
    """'12,300 km², 2 parts' (a million and more: '121.6 M km²'), with the plural right."""
    parts = int(region.get("parts", 1) or 1)
    area = float(region["area_km2"])
    size = tr("{:,.1f} M km²").format(area / 1e6) if area >= 1e6 else tr("{:,.0f} km²").format(area)
    return plural(parts, "{}, {} part", "{}, {} parts").format(size, parts)


def trip_text(trip: Dict[str, Any]) -> str:
    """'#2 · 45.76, 4.84 · 93%' (the photo's place in time order and its joint answer), or why it is alone."""
    if trip.get("trip_lat") is None:
        return str(trip.get("trip_note") or "")
    where = f"{trip['trip_lat']:.2f}, {trip['trip_lon']:.2f}"
    prob = "" if trip.get("trip_probability") is None else f" · {trip['trip_probability']:.0%}"
    if trip.get("trip_order") is None:
        return tr("alone: {}").format(where + prob)
    return f"#{trip['trip_order']} · {where}{prob}"


class ResultsTable(QTableWidget):
    """Rows of places or raw predictions; see the module docstring for how the columns are sized."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([tr(c) if c else c for c in COLUMNS])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setIconSize(QSize(48, 48))
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.verticalHeader().setVisible(False)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        header.setTextElideMode(Qt.TextElideMode.ElideRight)
        for c, name in enumerate(COLUMNS):
            if name:
                self.horizontalHeaderItem(c).setToolTip(tr(name))
        self.fit_columns()

    # ---- rows -------------------------------------------------------------------------------------------------
    def clear_rows(self) -> None:
        """A new run: no rows, and widths measured afresh (nothing of the last run's layout stays)."""
        self.setRowCount(0)
        self.fit_columns()

    def add_result(self, row: Dict[str, Any], raw: bool, pix=None) -> None:
        """The table rows of one worker row: its places (or its raw top-k when `raw` or it has no places)."""
        use_raw = raw or not row.get("places")
        items = row.get("predictions", []) if use_raw else row["places"]
        fids = row.get("_rank_fids") if use_raw else row.get("_place_fids")
        key = "ranks" if use_raw else "places"
        gps = row.get("gps")
        region = row.get("region") or {}
        name = Path(row["source"]).name if row.get("kind") == "image" else row["source"]
        self.setSortingEnabled(False)
        for i, p in enumerate(items):
            r = self.rowCount()
            self.insertRow(r)
            icon = QTableWidgetItem()
            if pix is not None:
                icon.setIcon(QIcon(pix))
            icon.setData(ROLE_POINT, (p["lat"], p["lon"]))
            icon.setData(ROLE_FEATURE, (key, fids[i] if fids and i < len(fids) else None))
            icon.setToolTip(row["source"])
            self.setItem(r, 0, icon)
            dist = "" if not gps else f"{haversine_km(gps[0], gps[1], p['lat'], p['lon']):,.1f}"
            area = region_text(region) if i == 0 and region.get("area_km2") is not None else ""
            trip = trip_text(row["trip"]) if i == 0 and row.get("trip") else ""
            values = [name, str(p["rank"]), place_label(p), f"{p['probability']:.4f}", dist, area, trip]
            where = f"{p['lat']:.5f}, {p['lon']:.5f}"
            for c, text in enumerate(values, start=1):
                item = QTableWidgetItem(text)
                # the full text first: an elided cell shows it on hover
                if c == 7 and text:
                    text = f"{text}\n{row['trip'].get('trip_note') or ''}".strip()
                item.setToolTip(f"{text}\n{row['source']}\n{where}" if c == 3 else
                                f"{row['source']}\n{where}" if c == 1 else f"{text}\n{row['source']}")
                if c in NUMBER_COLUMNS:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(r, c, item)
            self.setRowHeight(r, 52 if pix is not None else 24)
        self.fit_columns()

    def rows_of(self, key: str) -> List[int]:
        """Table rows that show a feature of the layer kind `key` (places or ranks)."""
        out = []
        for r in range(self.rowCount()):
            data = self.item(r, 0).data(ROLE_FEATURE) if self.item(r, 0) is not None else None
            if data and data[0] == key:
                out.append(r)
        return out

    # ---- widths -----------------------------------------------------------------------------------------------
    def _has_text(self, column: int) -> bool:
        return any(self.item(r, column) is not None and self.item(r, column).text()
                   for r in range(self.rowCount()))

    def _natural(self, column: int, header: bool = True) -> int:
        """The width the column's content asks for, and its header's too when `header`."""
        if column == 0:
            icons = any(self.item(r, 0) is not None and not self.item(r, 0).icon().isNull()
                        for r in range(self.rowCount()))
            return self.iconSize().width() + 8 if icons else 28
        content = self.sizeHintForColumn(column) if self.rowCount() else 0
        head = self.horizontalHeader().sectionSizeHint(column)
        if column in NUMBER_COLUMNS:
            return max(content, head if header else 36)
        return max(content, min(head, 90))

    def fit_columns(self) -> None:
        """Every column sized to its content (and header). When the whole does not fit the viewport, the number
        columns drop to their values' width (the header elides; its tooltip names it) and the text columns share
        the rest: each at least MIN_TEXT, none more than it needs."""
        for c in OPTIONAL_COLUMNS:
            self.setColumnHidden(c, not self._has_text(c))
        shown = [c for c in range(self.columnCount()) if not self.isColumnHidden(c)]
        text = [c for c in TEXT_COLUMNS if c in shown]
        room = max(0, self.viewport().width())
        widths = {c: self._natural(c) for c in shown}

        def text_share() -> Dict[int, int]:
            rest = room - sum(widths[c] for c in shown if c not in text)
            return share(rest, {c: widths[c] for c in text}, MIN_TEXT, WEIGHTS)

        if sum(widths.values()) > room and text and min(text_share().values()) < READABLE:
            widths.update({c: self._natural(c, header=False) for c in shown if c in NUMBER_COLUMNS})
        total = sum(widths.values())
        if total > room and text:
            widths.update(text_share())
        elif total < room and 3 in shown:
            widths[3] += room - total  # the place's name takes what is left
        for c in shown:
            self.setColumnWidth(c, widths[c])

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self.fit_columns()

    def columns_width(self) -> int:
        return sum(self.columnWidth(c) for c in range(self.columnCount()) if not self.isColumnHidden(c))


def share(room: int, wants: Dict[int, int], floor: int, weights: Optional[Dict[int, int]] = None) -> Dict[int, int]:
    """Split `room` px among columns wanting `wants` px: wants below their weighted share are met in full, the
    others share what is left by weight (never below `floor`). Water-filling: no column gets more than it needs."""
    out: Dict[int, int] = {}
    left = dict(wants)
    weight = {c: (weights or {}).get(c, 1) for c in wants}
    room = total = max(room, floor * len(wants))
    while left:
        unit = room / sum(weight[c] for c in left)
        small = {c: w for c, w in left.items() if w <= unit * weight[c]}
        if not small:
            for c in left:
                out[c] = max(floor, int(unit * weight[c]))
            break
        for c, w in small.items():
            out[c] = max(floor, w)
            room -= out[c]
            del left[c]
    excess = sum(out.values()) - total  # floors lifted some: take it back from the widest
    for c in sorted(out, key=out.get, reverse=True):
        give = min(excess, out[c] - floor)
        if give > 0:
            out[c] -= give
            excess -= give
    return out

