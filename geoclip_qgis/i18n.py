"""One translation entry point for every user-visible string of the plugin."""

from qgis.PyQt.QtCore import QCoreApplication


def tr(text: str) -> str:
    return QCoreApplication.translate("GeoCLIP", text)
