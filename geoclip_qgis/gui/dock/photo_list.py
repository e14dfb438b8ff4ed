"""The dock's photo list: dropped photos and folders (folders expanded, duplicates ignored), and thumbnails."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from qgis.PyQt.QtCore import QSize, Qt, pyqtSignal
from qgis.PyQt.QtGui import QImageReader, QPixmap
from qgis.PyQt.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem

from ...shared import photo_list
from ..settings_dialog import tr


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

