"""The plugin object: registers the Processing provider and the GUI, and stops the engine worker on unload."""

from __future__ import annotations

from qgis.core import QgsApplication


class GeoClipPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.gui = None

    def initProcessing(self) -> None:  # noqa: N802 - QGIS naming
        from .processing.provider import GeoClipProvider

        self.provider = GeoClipProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        try:
            from .gui.main import GeoClipGui
        except ImportError:  # the GUI module is optional; Processing works without it
            return
        self.gui = GeoClipGui(self.iface)
        self.gui.init()

    def unload(self) -> None:
        if self.gui is not None:
            self.gui.unload()
            self.gui = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        from .engine_client import shutdown_shared

        shutdown_shared()
