"""The plugin's GUI: toolbar, menu, docks, map tool and dialogs."""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon

from ..qt_compat import QAction
from .settings_dialog import tr

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ICON = RESOURCES / "icon.svg"
# One icon per entry: the panel (a photo and a pin), the map tool (a click among similar places), the manager (a
# chip with a download arrow), the settings (a gear).
ICONS = {"panel": RESOURCES / "panel.svg", "tool": RESOURCES / "places_like_here.svg",
         "manager": RESOURCES / "manager.svg", "settings": RESOURCES / "settings.svg"}
MENU = "&GeoCLIP"  # under Plugins: Plugins › GeoCLIP › … (README, "In QGIS")


class GeoClipGui:
    def __init__(self, iface):
        self.iface = iface
        self.actions = []
        self.dock = None
        self.viewer = None
        self.tool = None
        self.toolbar = None
        self.manager = None  # one manager dialog, kept while it runs something in the background
        self.settings_dialog = None

    def init(self) -> None:
        self.toolbar = self.iface.addToolBar(tr("GeoCLIP"))
        self.toolbar.setObjectName("GeoClipToolbar")
        self.dock_action = self._action(tr("GeoCLIP geolocation panel"), self.toggle_dock, "panel", checkable=True)
        self.tool_action = self._action(tr("Places like here (click the map)"), self.activate_tool, "tool",
                                        checkable=True)
        self.manager_action = self._action(tr("Engine and models…"), self.open_manager, "manager", toolbar=False)
        self.settings_action = self._action(tr("Settings…"), self.open_settings, "settings", toolbar=False)

    def _action(self, text, slot, icon: str, checkable=False, toolbar=True) -> QAction:
        action = QAction(QIcon(str(ICONS[icon])), text, self.iface.mainWindow())
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.iface.addPluginToMenu(MENU, action)
        if toolbar:
            self.toolbar.addAction(action)
        self.actions.append(action)
        return action

    def toggle_dock(self, checked: bool = True) -> None:
        from .dock.dock import GeolocationDock
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
        """One manager at a time, not modal: reopening it while it installs or downloads in the background shows
        the same dialog with its log; closed with nothing running, it is deleted (WA_DeleteOnClose)."""
        from .manager.dialog import ManagerDialog

        if self.manager is None:
            self.manager = ManagerDialog(self.iface.mainWindow())
            self.manager.destroyed.connect(self._manager_gone)
        self.manager.show()
        self.manager.raise_()
        self.manager.activateWindow()

    def _manager_gone(self, *_args) -> None:
        self.manager = None

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        if self.settings_dialog is None:  # not modal: the map, the dock and the manager stay usable meanwhile
            dialog = SettingsDialog(self.iface.mainWindow())
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.settings_dialog = dialog
            dialog.destroyed.connect(self._settings_gone)
        self.settings_dialog.show()
        self.settings_dialog.raise_()
        self.settings_dialog.activateWindow()

    def _settings_gone(self, *_args) -> None:
        self.settings_dialog = None

    def unload(self) -> None:
        from . import background

        background.unload()
        for dialog in (self.manager, self.settings_dialog):
            if dialog is not None:
                if hasattr(dialog, "shutdown"):
                    dialog.shutdown()  # cancels what it runs, cuts its slots from the tasks
                dialog.close()
                dialog.deleteLater()
        self.manager = self.settings_dialog = None
        if self.tool is not None and self.iface.mapCanvas().mapTool() is self.tool:
            self.iface.mapCanvas().unsetMapTool(self.tool)
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        if self.dock is not None:
            self.dock.shutdown()
        for dock in (self.dock, self.viewer):
            if dock is not None:
                self.iface.removeDockWidget(dock)
                dock.deleteLater()
        if self.toolbar is not None:
            self.toolbar.deleteLater()
        self.actions = []
