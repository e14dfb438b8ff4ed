"""What the analyst already knows, sent with each run: a hint in words (fused with every photo, weighted) and where
the photo must be (countries or regions by name or ISO code, and a point with a radius).

The panel only collects text: the engine reads it (core/answers/aoi.AreaOfInterest.parse, the one reader of areas;
core/answers/hints.py for the hint), so a name it does not know comes back as the run's error with the closest
names. The names' completer lists QGIS's own world map (resources/data/world_map.gpkg: the same Natural Earth
countries the engine ships), read once, lazily.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProject,
    QgsVectorLayer,
)
from qgis.gui import QgsMapToolEmitPoint
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QCompleter,
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QWidget,
)

from ...shared.protocol import area_request
from ..settings_dialog import tr

DEFAULT_HINT_WEIGHT = 1.0  # as the engine's (core/answers/hints.py): the hint counts as much as the photo


def country_names() -> List[str]:
    """Country names from QGIS's bundled world map, sorted; empty when this QGIS has none."""
    path = os.path.join(QgsApplication.pkgDataPath(), "resources", "data", "world_map.gpkg")
    if not os.path.isfile(path):
        return []
    layer = QgsVectorLayer(f"{path}|layername=countries", "countries", "ogr")
    if not layer.isValid():
        return []
    field = "NAME" if layer.fields().indexOf("NAME") >= 0 else layer.fields().at(0).name()
    return sorted({str(f[field]) for f in layer.getFeatures() if f[field]})


class CaseOptions(QWidget):
    """Hint + weight, 'Limit to' names, and 'Near' lat, lon + radius: the request's `hint`, `hint_weight` and the
    parts of its `aoi`."""

    def __init__(self, parent: Optional[QWidget] = None, canvas=None):
        super().__init__(parent)
        self.canvas = canvas
        self._tool = None
        self._previous_tool = None
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.hint = QLineEdit()
        self.hint.setPlaceholderText(tr("what you know, e.g. signs in Cyrillic, a snowy pass"))
        self.hint.setClearButtonEnabled(True)
        self.hint.setToolTip(tr("Words fused with each photo: the photo's answer times the words' answer, raised to "
                                "the weight. Weight 0 gives the photo's answer alone."))
        self.hint_weight = QDoubleSpinBox()
        self.hint_weight.setRange(0.0, 100.0)
        self.hint_weight.setSingleStep(0.25)
        self.hint_weight.setValue(DEFAULT_HINT_WEIGHT)
        self.hint_weight.setToolTip(tr("How much the hint counts against the photo (1: as much)"))
        grid.addWidget(QLabel(tr("Hint")), 0, 0)
        grid.addWidget(self.hint, 0, 1, 1, 3)
        grid.addWidget(QLabel(tr("weight")), 0, 4)
        grid.addWidget(self.hint_weight, 0, 5)
        self.limit = QLineEdit()
        self.limit.setPlaceholderText(tr("countries or regions, e.g. Chile; Argentina, or FR, DE-BY"))
        self.limit.setClearButtonEnabled(True)
        self.limit.setToolTip(tr("Only places inside these countries or first-level regions (names or ISO codes, "
                                 "separated by ;). The share of the probability that fell outside is reported."))
        grid.addWidget(QLabel(tr("Limit to")), 1, 0)
        grid.addWidget(self.limit, 1, 1, 1, 5)
        self.near = QLineEdit()
        self.near.setPlaceholderText(tr("lat, lon"))
        self.near.setClearButtonEnabled(True)
        self.near.setToolTip(tr("Only places within the radius of this point (latitude, longitude in degrees)"))
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.0, 20000.0)
        self.radius.setDecimals(1)
        self.radius.setSuffix(" km")
        self.radius.setSpecialValueText(tr("no radius"))
        grid.addWidget(QLabel(tr("Near")), 2, 0)
        grid.addWidget(self.near, 2, 1, 1, 2)
        self.pick = QToolButton()
        self.pick.setIcon(QIcon(QgsApplication.iconPath("mActionCapturePoint.svg")))
        self.pick.setToolTip(tr("Click the map to set the point"))
        self.pick.setEnabled(canvas is not None)
        self.pick.clicked.connect(self.pick_on_map)
        grid.addWidget(self.pick, 2, 3)
        grid.addWidget(QLabel(tr("radius")), 2, 4)
        grid.addWidget(self.radius, 2, 5)
        self._completer_ready = False
        self.limit.textEdited.connect(self._ensure_completer)

    def _ensure_completer(self, _text: str = "") -> None:
        if self._completer_ready:
            return
        self._completer_ready = True
        names = country_names()
        if names:
            completer = QCompleter(names, self.limit)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            self.limit.setCompleter(completer)

    def pick_on_map(self) -> None:
        """The next click on the map sets the point (in degrees, whatever the map's CRS); the map tool in use before
        comes back after it."""
        if self.canvas is None:
            return
        self._previous_tool = self.canvas.mapTool()
        self._tool = QgsMapToolEmitPoint(self.canvas)
        self._tool.canvasClicked.connect(self.clicked)
        self.canvas.setMapTool(self._tool)

    def clicked(self, point: QgsPointXY, _button=None) -> None:
        xf = QgsCoordinateTransform(self.canvas.mapSettings().destinationCrs(),
                                    QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
        p = xf.transform(point)
        self.set_near(p.y(), p.x())
        if self._previous_tool is not None:
            self.canvas.setMapTool(self._previous_tool)
        else:
            self.canvas.unsetMapTool(self._tool)

    def set_near(self, lat: float, lon: float) -> None:
        """The point (e.g. from the map), typed as the analyst would."""
        self.near.setText(f"{lat:.5f}, {lon:.5f}")

    def hint_params(self) -> Dict[str, Any]:
        """The request's `hint` and `hint_weight`, or nothing when no hint is typed."""
        text = self.hint.text().strip()
        return {"hint": text, "hint_weight": float(self.hint_weight.value())} if text else {}

    def area(self, base: Any = None) -> Any:
        """The request's `aoi`: the panel's area (extent or layer) and the names and circle typed here, joined by
        the one rule every front door uses (shared/protocol.area_request). A point without a radius, or a radius
        without a point, is said here, before any run."""
        try:
            return area_request(base, self.limit.text(), self.near.text(), float(self.radius.value()))
        except ValueError:
            raise ValueError(tr("Give both a point (lat, lon) and a radius to limit the answer near a point.")
                             ) from None
