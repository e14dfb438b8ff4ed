"""Result layers, shared by the Processing algorithms and the dock: fields, features from worker rows, styles.

Photo paths are stored relative to the project folder when the photo lies inside it (and absolute otherwise);
the map tip resolves them against @project_home, so moving a project folder together with its photos keeps the
thumbnails working.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from qgis.core import (
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .core.geodesy import haversine_km
from .qt_compat import field_type

STYLES = Path(__file__).resolve().parent / "resources" / "styles"

PREDICTION_FIELDS = [
    ("photo", "QString"), ("query", "QString"), ("rank", "Int"), ("probability", "Double"), ("lat", "Double"),
    ("lon", "Double"), ("gallery_index", "Int"), ("exif_lat", "Double"), ("exif_lon", "Double"), ("error_km", "Double"),
]
FAILED_FIELDS = [("photo", "QString"), ("reason", "QString"), ("code", "QString")]


def make_fields(spec) -> QgsFields:
    fields = QgsFields()
    for name, kind in spec:
        fields.append(QgsField(name, field_type(kind)))
    return fields


def prediction_fields() -> QgsFields:
    return make_fields(PREDICTION_FIELDS)


def failed_fields() -> QgsFields:
    return make_fields(FAILED_FIELDS)


def stored_path(path: str, project_home: Optional[str]) -> str:
    """Relative to the project folder when inside it, so the project can move with its photos."""
    if not project_home or not path or path.startswith("<"):
        return path
    try:
        rel = os.path.relpath(path, project_home)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


def prediction_features(row: Dict[str, Any], fields: QgsFields, project_home: Optional[str] = None) -> List[QgsFeature]:
    """Point features (EPSG:4326) for one worker row: one per predicted rank."""
    feats = []
    is_text = row.get("kind") == "text"
    gps = row.get("gps")
    for p in row.get("predictions", []):
        f = QgsFeature(fields)
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(p["lon"], p["lat"])))
        f["photo"] = None if is_text else stored_path(row["source"], project_home)
        f["query"] = row["source"] if is_text else None
        f["rank"], f["probability"] = int(p["rank"]), float(p["probability"])
        f["lat"], f["lon"], f["gallery_index"] = float(p["lat"]), float(p["lon"]), int(p["gallery_index"])
        if gps:
            f["exif_lat"], f["exif_lon"] = float(gps[0]), float(gps[1])
            f["error_km"] = haversine_km(gps[0], gps[1], p["lat"], p["lon"])
        feats.append(f)
    return feats


def failed_feature(row: Dict[str, Any], fields: QgsFields) -> QgsFeature:
    f = QgsFeature(fields)
    err = row.get("error") or {}
    f["photo"], f["reason"], f["code"] = row.get("source"), err.get("message", ""), err.get("code", "error")
    return f


def style_predictions(layer: QgsVectorLayer) -> None:
    """Graduated by probability, labelled by rank, with a photo thumbnail map tip."""
    layer.loadNamedStyle(str(STYLES / "predictions.qml"))
    layer.setMapTipTemplate(MAP_TIP)
    layer.triggerRepaint()


def style_likelihood(layer: QgsRasterLayer) -> None:
    """Colour ramp stretched over the density's 50-99.5% range: the less likely half of the extent is transparent,
    and the few spiky cells at the top (GeoCLIP's finest capsule) do not wash out the rest."""
    layer.loadNamedStyle(str(STYLES / "likelihood.qml"))
    renderer = layer.renderer()
    if renderer is None or not hasattr(renderer, "shader"):
        return
    lo, hi = layer.dataProvider().cumulativeCut(1, 0.5, 0.995, layer.extent(), 250000)
    if not hi > lo:
        return
    ramp = renderer.shader().rasterShaderFunction()
    items = ramp.colorRampItemList()
    for i, item in enumerate(items):
        item.value = lo + (hi - lo) * i / max(1, len(items) - 1)
    ramp.setColorRampItemList(items)
    ramp.setMinimumValue(lo)
    ramp.setMaximumValue(hi)
    ramp.setClip(False)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    layer.triggerRepaint()


def style_similarity(layer: QgsRasterLayer) -> None:
    layer.loadNamedStyle(str(STYLES / "similarity.qml"))
    layer.triggerRepaint()


# The photo's file:// URL, as QUrl.fromLocalFile gives it once backslashes are slashes: file:///home/a.jpg,
# file:///C:/a.jpg, and file://server/share/a.jpg for a Windows UNC path (\\server\share). Relative paths are
# resolved against the project folder (see stored_path). tests/test_processing.py compares it with QUrl.
PHOTO_URL = r"""with_variable('p', replace(CASE WHEN regexp_match("photo", '^(/|\\\\|[A-Za-z]:)') THEN "photo"
ELSE @project_home || '/' || "photo" END, '\\', '/'),
CASE WHEN left(@p, 2) = '//' THEN 'file:' || @p WHEN left(@p, 1) = '/' THEN 'file://' || @p
ELSE 'file:///' || @p END)"""

MAP_TIP = f"""<div style="max-width:340px">
[% CASE WHEN "photo" IS NOT NULL THEN
'<img src="' || {PHOTO_URL} || '" style="max-width:320px;max-height:240px"><br>' ELSE '' END %]
<b>[% coalesce("photo", "query") %]</b><br>
rank [% "rank" %] &middot; p = [% format_number("probability", 4) %]<br>
[% format_number("lat", 5) %], [% format_number("lon", 5) %]
[% CASE WHEN "error_km" IS NOT NULL THEN '<br>EXIF GPS is ' || format_number("error_km", 1) || ' km away' ELSE '' END %]
</div>"""


def iter_paths_from_layer(layer, field: str) -> Iterable[str]:
    for f in layer.getFeatures():
        value = f[field]
        if value:
            yield str(value)
