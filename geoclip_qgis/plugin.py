"""The plugin object: installs the translation, registers the Processing provider and the GUI, and stops the engine
worker on unload."""

from __future__ import annotations

import traceback

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import QCoreApplication

from .client.log import LOG_TAG
from .i18n import install_translator, tr


class GeoClipPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.gui = None
        self.translator = install_translator()

    def initProcessing(self) -> None:  # noqa: N802 - QGIS naming
        from .processing.provider import GeoClipProvider

        registry = QgsApplication.processingRegistry()
        provider = GeoClipProvider()
        stale = registry.providerById(provider.id())
        if stale is not None:  # left by an earlier load (a reload, a crashed unload): ours replaces it
            registry.removeProvider(stale)
        # The registry owns a provider it accepts and deletes one it refuses: keep ours only when accepted, so
        # unload never touches a deleted object.
        self.provider = provider if registry.addProvider(provider) else None

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        try:
            from .gui.toolbar import GeoClipGui

            self.gui = GeoClipGui(self.iface)
            self.gui.init()
        except Exception as exc:  # a GUI that fails to load must say so, not vanish; Processing still works
            self.gui = None
            self.report_gui_failure(exc)

    def report_gui_failure(self, exc: BaseException) -> None:
        """The reason in the message bar, the traceback in the log (View > Panels > Log Messages, GeoCLIP tab)."""
        QgsMessageLog.logMessage(tr("The GeoCLIP panel could not be loaded:\n{}").format(traceback.format_exc()),
                                 LOG_TAG, Qgis.MessageLevel.Critical)
        self.iface.messageBar().pushMessage(
            LOG_TAG, tr("The panel could not be loaded ({}: {}); Processing algorithms still work. Details are in "
                        "the GeoCLIP log.").format(type(exc).__name__, exc), Qgis.MessageLevel.Critical, 0)

    def unload(self) -> None:
        """Never blocks the GUI: our running tasks are cancelled first, the GUI's slots are cut from them, and the
        worker is stopped in the background (it also exits by itself when QGIS is gone)."""
        cancel_geoclip_tasks()
        if self.gui is not None:
            self.gui.unload()
            self.gui = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.translator is not None:
            QCoreApplication.removeTranslator(self.translator)
            self.translator = None
        from .client.engine_client import shutdown_shared

        shutdown_shared(wait=False)
        forget_subpackages(__package__)


def forget_subpackages(package: str) -> None:
    """Let QGIS's unload drop our sub-packages too. It forgets the modules it saw imported, but a relative import
    (`from .gui.toolbar import …`) shows it the module only, never its parent package: `geoclip_qgis.gui` and
    `geoclip_qgis.processing` stayed in sys.modules after an uninstall, and an upgrade ran the old package's
    __init__ with the new files. Only when QGIS loaded us (qgis.utils tracks us): tests that call unload() directly
    keep their modules."""
    import sys

    import qgis.utils

    tracked = getattr(qgis.utils, "_plugin_modules", {}).get(package)
    if tracked is not None:
        tracked.update(name for name in list(sys.modules) if name.startswith(package + "."))


def cancel_geoclip_tasks() -> int:
    """Cancel every running GeoCLIP task (ours are described "GeoCLIP…" or are EngineTasks); returns how many."""
    n = 0
    for task in QgsApplication.taskManager().activeTasks():
        if task.description().startswith("GeoCLIP") or type(task).__name__ in ("EngineTask", "DownloadTask"):
            task.cancel()
            n += 1
    return n
