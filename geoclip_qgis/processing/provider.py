"""The 'GeoCLIP' Processing provider."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICON
from .build_location_field import BuildLocationField
from .case_report import CaseReport
from .geolocate_photos import GeolocatePhotos
from .geolocate_text import GeolocateText
from .likelihood_raster import LikelihoodRaster
from .location_features import LocationFeatures
from .places_like_here import PlacesLikeHere

ALGORITHMS = (GeolocatePhotos, GeolocateText, LikelihoodRaster, LocationFeatures, PlacesLikeHere, BuildLocationField,
              CaseReport)


class GeoClipProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "geoclip"

    def name(self) -> str:
        return "GeoCLIP"

    def longName(self) -> str:  # noqa: N802
        return "GeoCLIP photo and text geolocation"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802
        for alg in ALGORITHMS:
            self.addAlgorithm(alg())
