"""QGIS's side of the engine without widgets: the worker client, one settings store, logging."""
