"""Processing's hint and named areas (issue 25): the same request fields as the dock's and the CLI's, as string and
number parameters. Nothing is parsed here: the engine reads the names and the circle (core/answers/aoi.py), so a
name it does not know fails the run with the closest names."""

from __future__ import annotations

from typing import Any, Dict, Optional

from qgis.core import QgsProcessingException, QgsProcessingParameterNumber, QgsProcessingParameterString

from ..i18n import tr
from ..shared.protocol import area_request

DEFAULT_HINT_WEIGHT = 1.0  # as the engine's (core/answers/hints.py)


def add_case_parameters(alg, hint: bool = True) -> None:
    """HINT and HINT_WEIGHT (photos), LIMIT_TO, NEAR and RADIUS_KM (every answer)."""
    if hint:
        alg.addParameter(QgsProcessingParameterString(
            "HINT", tr("Hint in words, fused with each photo (e.g. signs in Cyrillic)"), optional=True))
        alg.addParameter(QgsProcessingParameterNumber(
            "HINT_WEIGHT", tr("Hint weight (0: the photo alone; 1: as much as the photo)"),
            QgsProcessingParameterNumber.Type.Double, DEFAULT_HINT_WEIGHT, True, 0.0, 100.0))
    alg.addParameter(QgsProcessingParameterString(
        "LIMIT_TO", tr("Limit to countries or regions (names or ISO codes, separated by ;)"), optional=True))
    alg.addParameter(QgsProcessingParameterString("NEAR", tr("Near a point (lat, lon in degrees)"), optional=True))
    alg.addParameter(QgsProcessingParameterNumber(
        "RADIUS_KM", tr("Radius around the point (km)"), QgsProcessingParameterNumber.Type.Double, 0.0, True, 0.0,
        20000.0))


def case_request(alg, parameters, context, aoi: Optional[Any] = None) -> Dict[str, Any]:
    """The request's `aoi` (the AOI layer's polygons and the typed names and circle together: either counts),
    `hint` and `hint_weight`, as far as they are given."""
    def text(name: str) -> str:
        return alg.parameterAsString(parameters, name, context).strip() if alg.parameterDefinition(name) else ""

    out: Dict[str, Any] = {}
    radius = alg.parameterAsDouble(parameters, "RADIUS_KM", context) if alg.parameterDefinition("RADIUS_KM") else 0
    try:  # the one rule every front door joins its area fields by
        area = area_request(aoi, text("LIMIT_TO"), text("NEAR"), radius)
    except ValueError:
        raise QgsProcessingException(tr("Give both a point (lat, lon) and a radius to limit the answer near a "
                                        "point.")) from None
    if area is not None:
        out["aoi"] = area
    if text("HINT"):
        out["hint"] = text("HINT")
        out["hint_weight"] = float(alg.parameterAsDouble(parameters, "HINT_WEIGHT", context))
    return out
