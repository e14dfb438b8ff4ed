"""Results to QGIS layers and styles; the one GeoPackage policy."""
