"""The dock's results table: one row per place (or raw prediction), sized to its content within the dock's width.

Why a widget of its own: Qt's ResizeToContents and Stretch modes fight each other once a long column (the 90 %
region) has text, squeezing the place's name to a few pixels behind a horizontal scrollbar. Here every column is
measured from the rows it holds and the text columns share what the dock has left; long names are elided in the
middle (both the start and the end of a place name say something) and keep their full text in a tooltip. The widths
are computed again for every run and every resize, so a narrow column never carries over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from ...layers.results import place_label
from ...shared.geodesy import haversine_km
from ..settings_dialog import tr, tr_noop

COLUMNS = ["", tr_noop("Photo / query"), tr_noop("Rank"), tr_noop("Place"), tr_noop("Probability"),
           tr_noop("EXIF GPS (km)"), tr_noop("90 % region")]
ROLE_POINT = Qt.ItemDataRole.UserRole
ROLE_FEATURE = Qt.ItemDataRole.UserRole + 1
TEXT_COLUMNS = (1, 3, 6)  # elastic: they share the room the numbers leave, and elide
NUMBER_COLUMNS = (2, 4, 5)
OPTIONAL_COLUMNS = (5, 6)  # hidden while no row has a value: no empty column takes room
MIN_TEXT = 48  # px: below this an elided name says nothing


def region_text(region: Dict[str, Any]) -> str:
    """'12,300 km², 2 parts' with the plural right."""
    parts = int(region.get("parts", 1) or 1)
    words = tr("{:,.0f} km², {} part") if parts == 1 else tr("{:,.0f} km², {} parts")
    return words.format(region["area_km2"], parts)


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
            values = [name, str(p["rank"]), place_label(p), f"{p['probability']:.4f}", dist, area]
            where = f"{p['lat']:.5f}, {p['lon']:.5f}"
            for c, text in enumerate(values, start=1):
                item = QTableWidgetItem(text)
                # the full text first: an elided cell shows it on hover
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
            return max(28, self.iconSize().width() + 8) if self.rowCount() else 28
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
        if sum(widths.values()) > room:
            widths.update({c: self._natural(c, header=False) for c in shown if c in NUMBER_COLUMNS})
        total = sum(widths.values())
        if total > room and text:
            rest = room - sum(widths[c] for c in shown if c not in text)
            widths.update(share(rest, {c: widths[c] for c in text}, MIN_TEXT))
        elif total < room and 3 in shown:
            widths[3] += room - total  # the place's name takes what is left
        for c in shown:
            self.setColumnWidth(c, widths[c])

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self.fit_columns()

    def columns_width(self) -> int:
        return sum(self.columnWidth(c) for c in range(self.columnCount()) if not self.isColumnHidden(c))


def share(room: int, wants: Dict[int, int], floor: int) -> Dict[int, int]:
    """Split `room` px among columns wanting `wants` px: the smallest wants are met in full, the others get equal
    shares of what is left (never below `floor`). Water-filling: no column gets more than it needs."""
    out: Dict[int, int] = {}
    left = dict(wants)
    room = max(room, floor * len(wants))
    while left:
        fair = room // len(left)
        small = {c: w for c, w in left.items() if w <= fair}
        if not small:
            for c in left:
                out[c] = max(floor, fair)
            break
        for c, w in small.items():
            out[c] = max(floor, w)
            room -= out[c]
            del left[c]
    return out

