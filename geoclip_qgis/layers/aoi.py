"""An area-of-interest layer -> the worker's `aoi` (a GeoJSON geometry in EPSG:4326): ONE conversion for the dock
and Processing. Before, the dock skipped makeValid and sent a self-intersecting polygon the engine then refused."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsGeometry,
    QgsWkbTypes,
)

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


class NoPolygon(ValueError):
    """The features hold no polygon to restrict the answer to."""


def aoi_geojson(features: Iterable, crs: QgsCoordinateReferenceSystem,
                transform_context: QgsCoordinateTransformContext) -> Dict[str, Any]:
    """The features' polygons, each made valid, transformed to EPSG:4326 with the project's transform context and
    unioned, as a GeoJSON geometry (8 decimals: ~1 mm)."""
    transform = None
    if crs.isValid() and crs != WGS84:
        transform = QgsCoordinateTransform(crs, WGS84, transform_context)
    geoms = []
    for feature in features:
        if not feature.hasGeometry():
            continue
        geom = QgsGeometry(feature.geometry())
        if geom.isEmpty() or QgsWkbTypes.geometryType(geom.wkbType()) != QgsWkbTypes.GeometryType.PolygonGeometry:
            continue
        if transform is not None:
            geom.transform(transform)
        geoms.append(geom.makeValid() if not geom.isGeosValid() else geom)
    union = QgsGeometry.unaryUnion(geoms) if geoms else QgsGeometry()
    if union.isEmpty():
        raise NoPolygon("the area of interest has no polygon")
    gj = json.loads(union.asJson(8))
    return {"type": gj["type"], "coordinates": gj["coordinates"]}
