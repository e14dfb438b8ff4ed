"""The case report in QGIS: the shipped layout template and the atlas built on a run's summary layer."""
