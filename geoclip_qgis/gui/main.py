"""The plugin's GUI: toolbar, menu, docks, map tool and dialogs."""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon

from ..qt_compat import QAction
from .settings import tr

ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"
MENU = "&GeoCLIP"


class GeoClipGui:
    def __init__(self, iface):
        self.iface = iface
        self.actions = []
        self.dock = None
        self.viewer = None
        self.tool = None
        self.toolbar = None

    def init(self) -> None:
        self.toolbar = self.iface.addToolBar(tr("GeoCLIP"))
        self.toolbar.setObjectName("GeoClipToolbar")
        self.dock_action = self._action(tr("GeoCLIP geolocation panel"), self.toggle_dock, checkable=True)
        self.tool_action = self._action(tr("Places like here (click the map)"), self.activate_tool, checkable=True)
        self._action(tr("Engine and models…"), self.open_manager, toolbar=False)
        self._action(tr("Settings…"), self.open_settings, toolbar=False)

    def _action(self, text, slot, checkable=False, toolbar=True) -> QAction:
        action = QAction(QIcon(str(ICON)), text, self.iface.mainWindow())
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.iface.addPluginToMenu(MENU, action)
        if toolbar:
            self.toolbar.addAction(action)
        self.actions.append(action)
        return action

    def toggle_dock(self, checked: bool = True) -> None:
        from .dock import GeolocationDock
        from .photo_viewer import PhotoViewer

        if self.dock is None:
            self.dock = GeolocationDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.dock.visibilityChanged.connect(self.dock_action.setChecked)
            self.viewer = PhotoViewer(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.viewer)
            # Tabbed, not stacked: the results table keeps the panel's full height.
            self.iface.mainWindow().tabifyDockWidget(self.dock, self.viewer)
        self.dock.setVisible(checked)
        self.viewer.setVisible(checked)
        if checked:
            self.dock.raise_()

    def activate_tool(self) -> None:
        from .map_tool import PlacesLikeHereTool

        if self.tool is None:
            self.tool = PlacesLikeHereTool(self.iface)
            self.tool.setAction(self.tool_action)
        self.iface.mapCanvas().setMapTool(self.tool)

    def open_manager(self) -> None:
        from .manager import ManagerDialog

        ManagerDialog(self.iface.mainWindow()).exec()

    def open_settings(self) -> None:
        from .settings import SettingsDialog

        SettingsDialog(self.iface.mainWindow()).exec()

    def unload(self) -> None:
        if self.tool is not None and self.iface.mapCanvas().mapTool() is self.tool:
            self.iface.mapCanvas().unsetMapTool(self.tool)
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        for dock in (self.dock, self.viewer):
            if dock is not None:
                self.iface.removeDockWidget(dock)
                dock.deleteLater()
        if self.toolbar is not None:
            self.toolbar.deleteLater()
        self.actions = []
