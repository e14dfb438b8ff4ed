"""GeoCLIP for QGIS."""


def classFactory(iface):  # noqa: N802 - QGIS plugin entry point
    from .plugin import GeoClipPlugin

    return GeoClipPlugin(iface)
