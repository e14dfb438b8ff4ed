"""The two places where QGIS 3 (Qt5/PyQt5) and QGIS 4 (Qt6/PyQt6) differ for this plugin, decided once.

Everything else uses forms that exist on both: scoped enums (`Qt.ItemDataRole.UserRole`), `exec()`, `qgis.PyQt`.
tests/test_qt6_ready.py checks that against PyQt6 and the QGIS bindings.
"""

from __future__ import annotations

from qgis.core import Qgis
from qgis.PyQt.QtCore import QMetaType

try:  # Qt6 moved QAction to QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5: QtWidgets
    from qgis.PyQt.QtWidgets import QAction

__all__ = ["QAction", "field_type"]

# From 3.38 QgsField takes a QMetaType.Type (the only kind Qt6 has); before, a QVariant.Type, which has the same
# number for these types, so the plain int is read as the right QVariant.Type and QVariant is never imported.
_META_TYPES = Qgis.QGIS_VERSION_INT >= 33800


def field_type(name: str):
    """The QgsField type for a QMetaType.Type name ('QString', 'Int', 'Double', ...) on this QGIS."""
    meta = getattr(QMetaType.Type, name)
    return meta if _META_TYPES else int(meta)
