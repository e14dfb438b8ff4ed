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

from ..qt_compat import field_type
from ..shared.geodesy import haversine_km
from ..shared.schema import (  # noqa: F401 - one definition
    LAYER_MARK,
    PLACE_FIELDS,
    REGION_FIELDS,
    SUMMARY_FIELDS,
    TRIP_FIELDS,
)

STYLES = Path(__file__).resolve().parents[1] / "resources" / "styles"

PREDICTION_FIELDS = [
    ("photo", "QString"), ("query", "QString"), ("rank", "Int"), ("probability", "Double"), ("lat", "Double"),
    ("lon", "Double"), ("gallery_index", "Int"), ("exif_lat", "Double"), ("exif_lon", "Double"), ("error_km", "Double"),
    ("country", "QString"), ("region", "QString"), ("place", "QString"), ("place_km", "Double"),
]
FAILED_FIELDS = [("photo", "QString"), ("reason", "QString"), ("code", "QString")]

QT_TYPES = {"str": "QString", "int": "Int", "float": "Double"}


def make_fields(spec) -> QgsFields:
    fields = QgsFields()
    for name, kind in spec:
        fields.append(QgsField(name, field_type(QT_TYPES.get(kind, kind))))
    return fields


def place_fields() -> QgsFields:
    return make_fields(PLACE_FIELDS)


def summary_fields() -> QgsFields:
    return make_fields(SUMMARY_FIELDS)


def region_fields() -> QgsFields:
    return make_fields(REGION_FIELDS)


def trip_fields() -> QgsFields:
    return make_fields(TRIP_FIELDS)


TRIP_COLUMNS = ("trip_order", "taken_at", "trip_lat", "trip_lon", "trip_probability", "trip_region90_km2",
                "trip_note")


def trip_values(photo: Dict[str, Any]) -> Dict[str, Any]:
    """A photo's trip columns of the summary (shared/schema.SUMMARY_FIELDS) from the worker's trip answer."""
    return {k: photo.get(k) for k in TRIP_COLUMNS}


def trip_feature(trip: Dict[str, Any], fields: QgsFields) -> Optional[QgsFeature]:
    """The track: one line through the trip's joint best places in time order (None under two points)."""
    track = trip.get("track") or []
    if len(track) < 2:
        return None
    from ..shared.geodesy import haversine_km as km

    f = QgsFeature(fields)
    f.setGeometry(QgsGeometry.fromPolylineXY([QgsPointXY(t[1], t[0]) for t in track]))
    s = trip.get("summary") or {}
    f["photos"] = len(track)
    f["length_km"] = sum(km(a[0], a[1], b[0], b[1]) for a, b in zip(track, track[1:]))
    for key in ("start", "end", "speed_kmh", "slack_km", "note"):
        _set(f, key, s.get(key))
    return f


def _place(marker_line, where: str) -> None:
    """A marker line's placement: Qgis.MarkerLinePlacement flags from QGIS 3.24, the class's enum before."""
    from qgis.core import Qgis

    flags = getattr(Qgis, "MarkerLinePlacement", None)
    if flags is not None and hasattr(marker_line, "setPlacements"):
        marker_line.setPlacements(getattr(flags, where))  # an enum member stands for its flags (PyQt5 and 6)
    else:
        marker_line.setPlacement(getattr(type(marker_line).Placement, where))


def style_trip(layer: QgsVectorLayer) -> None:
    """The track: a line with an arrowhead on each leg, pointing the way time goes, and a dot on each photo."""
    from qgis.core import QgsLineSymbol, QgsMarkerLineSymbolLayer, QgsMarkerSymbol, QgsSingleSymbolRenderer

    colour = "25,90,190"
    sym = QgsLineSymbol.createSimple({"color": colour, "width": "0.7", "capstyle": "round"})
    arrows = QgsMarkerLineSymbolLayer(True, 10.0)
    _place(arrows, "SegmentCenter")
    arrows.setSubSymbol(QgsMarkerSymbol.createSimple({"name": "filled_arrowhead", "color": colour, "size": "4",
                                                      "outline_style": "no"}))
    sym.appendSymbolLayer(arrows)
    photos = QgsMarkerLineSymbolLayer(False, 10.0)  # each photo's joint answer: a dot on every vertex
    _place(photos, "Vertex")
    photos.setSubSymbol(QgsMarkerSymbol.createSimple({"name": "circle", "color": "255,255,255", "size": "2.4",
                                                      "outline_color": colour, "outline_width": "0.5"}))
    sym.appendSymbolLayer(photos)
    layer.setRenderer(QgsSingleSymbolRenderer(sym))
    layer.setMapTipTemplate("[% 'photos: ' || \"photos\" || '<br>' || coalesce(\"start\", '') || ' → ' || "
                            "coalesce(\"end\", '') || '<br>' || round(\"length_km\") || ' km' %]")
    layer.triggerRepaint()


def _set(f: QgsFeature, key: str, value: Any) -> None:
    if value is not None and f.fields().indexOf(key) >= 0:
        f[key] = value


def _exif(f: QgsFeature, gps, lat: Optional[float], lon: Optional[float]) -> None:
    if gps and lat is not None and lon is not None:
        f["exif_lat"], f["exif_lon"] = float(gps[0]), float(gps[1])
        f["error_km"] = haversine_km(gps[0], gps[1], lat, lon)


def place_features(row: Dict[str, Any], fields: QgsFields, project_home: Optional[str] = None) -> List[QgsFeature]:
    """One point per distinct place of a worker row (issue 14: places, with their offline names)."""
    feats = []
    source = row["source"] if row.get("kind") == "text" else stored_path(row["source"], project_home)
    for pl in row.get("places") or []:
        f = QgsFeature(fields)
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(pl["lon"], pl["lat"])))
        f["source"], f["kind"] = source, row.get("kind")
        for key, _ in PLACE_FIELDS[2:15]:
            _set(f, key, pl.get(key))
        _exif(f, row.get("gps"), pl.get("lat"), pl.get("lon"))
        feats.append(f)
    return feats


def place_label(pl: Dict[str, Any]) -> str:
    """A place's name as the table shows it: the engine's label, else place, region, country."""
    if pl.get("label"):
        return str(pl["label"])
    parts = [str(pl[k]) for k in ("place", "region", "country") if pl.get(k)]
    return ", ".join(parts) if parts else f"{pl['lat']:.3f}, {pl['lon']:.3f}"


def summary_feature(row: Dict[str, Any], fields: QgsFields, project_home: Optional[str] = None,
                    region: Optional[Dict[str, Any]] = None) -> QgsFeature:
    """The one row per photo or text (failed photos too, without a geometry): best place, its name, probability,
    the 90 % region's area when known, the EXIF distance and the error state."""
    f = QgsFeature(fields)
    kind = row.get("kind")
    f["source"] = row["source"] if kind == "text" else stored_path(row.get("source", ""), project_home)
    f["kind"] = kind
    _set(f, "sha256", row.get("sha256"))  # hashed by the engine when it read the photo (the report cites it)
    if row.get("error"):
        f["status"], f["message"] = "failed", (row["error"] or {}).get("message", "")
        return f
    if row.get("saliency"):
        f["saliency"] = stored_path(row["saliency"], project_home)
    f["status"] = "ok"
    places = row.get("places") or []
    best = places[0] if places else None
    if best is not None:
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(best["lon"], best["lat"])))
        for key in ("probability", "lat", "lon", "country", "region", "place"):
            _set(f, key, best.get(key))
        _set(f, "label", place_label(best))
        _exif(f, row.get("gps"), best.get("lat"), best.get("lon"))
    if row.get("remaining") is not None:
        f["places_mass"] = 1.0 - float(row["remaining"])
    _set(f, "aoi_outside", row.get("aoi_outside"))
    _set(f, "exif_problem", row.get("exif_problem"))
    for key in ("hint", "hint_weight", "constraint"):  # what the answer was given besides the photo
        _set(f, key, row.get(key))
    region = region or row.get("region")
    if region:
        _set(f, "region90_km2", region.get("area_km2"))
        _set(f, "region90_parts", region.get("parts"))
    for key, value in trip_values(row.get("trip") or {}).items():  # a trip's joint answer, when known
        _set(f, key, value)
    return f


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
        for key in ("country", "region", "place", "place_km"):
            _set(f, key, p.get(key))
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


def style_places(layer: QgsVectorLayer) -> None:
    """Places and summary points: the predictions' look (graduated by probability, labelled by rank) and a map tip
    with the photo, the place's name and its probability."""
    layer.loadNamedStyle(str(STYLES / "predictions.qml"))
    layer.setMapTipTemplate(PLACE_TIP)
    layer.triggerRepaint()


def style_regions(layer: QgsVectorLayer) -> None:
    """Confidence regions: 90 % light, 50 % darker (drawn on top), outlined."""
    from qgis.core import QgsCategorizedSymbolRenderer, QgsFillSymbol, QgsRendererCategory

    cats = []
    for level, fill, alpha, outline in ((0.9, "255,200,140", 70, "200,120,60,120"),
                                        (0.5, "215,95,35", 140, "150,55,20,160")):
        sym = QgsFillSymbol.createSimple({"color": f"{fill},{alpha}", "outline_color": outline,
                                          "outline_width": "0.1"})
        cats.append(QgsRendererCategory(level, sym, f"{round(level * 100)} % region"))
    renderer = QgsCategorizedSymbolRenderer("level", cats)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def _number(v: float) -> str:
    return f"{v:.3g}"


def style_likelihood(layer: QgsRasterLayer) -> None:
    """Colour ramp stretched over the density's 50-99.5% range: the less likely half of the extent is transparent,
    and the few spiky cells at the top (GeoCLIP's finest capsule) do not wash out the rest."""
    _stretched(layer, "likelihood.qml", 0.5, 0.995, scientific=True)


def style_similarity(layer: QgsRasterLayer) -> None:
    """Colour ramp stretched over the similarity's 50-99.8% range, the less similar half transparent. Cosine
    similarity of location features is ~1 only at the clicked point and lies in about -0.2 … 0.4 elsewhere, so a
    fixed 0 … 1 ramp paints the whole world one dark colour; the stretch shows where is most like the place."""
    _stretched(layer, "similarity.qml", 0.5, 0.998, scientific=False)


def _stretched(layer: QgsRasterLayer, qml: str, lower: float, upper: float, scientific: bool) -> None:
    """Load the style file, then move its ramp onto the raster's [lower, upper] cumulative cut. The ramp's labels
    carry the stretched values and the legend is refreshed, so it shows that range (not the style file's 0 … 1)."""
    layer.loadNamedStyle(str(STYLES / qml))
    renderer = layer.renderer()
    if renderer is None or not hasattr(renderer, "shader"):
        return
    lo, hi = layer.dataProvider().cumulativeCut(1, lower, upper, layer.extent(), 250000)
    if not hi > lo:
        stats = layer.dataProvider().bandStatistics(1)
        lo, hi = stats.minimumValue, stats.maximumValue
    if not hi > lo:
        return
    renderer = renderer.clone()
    ramp = renderer.shader().rasterShaderFunction()
    items = ramp.colorRampItemList()
    for i, item in enumerate(items):
        item.value = lo + (hi - lo) * i / max(1, len(items) - 1)
        item.label = _number(item.value)
    ramp.setColorRampItemList(items)
    ramp.setMinimumValue(lo)
    ramp.setMaximumValue(hi)
    ramp.setClip(False)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    if scientific:
        _legend_numbers(ramp)
    layer.setRenderer(renderer)  # emits rendererChanged: the layer tree rebuilds the legend from these values
    layer.emitStyleChanged()
    layer.triggerRepaint()


def _legend_numbers(ramp) -> None:
    """Densities per km² are tiny (1e-7): the continuous legend's default format rounds them to "0 … 0"; three
    significant digits in scientific notation show the stretched range."""
    try:
        from qgis.core import QgsColorRampLegendNodeSettings, QgsScientificNumericFormat
    except ImportError:  # QGIS < 3.18: the legend lists the ramp items' labels, set above
        return
    settings = ramp.legendSettings() if hasattr(ramp, "legendSettings") else None
    settings = QgsColorRampLegendNodeSettings(settings) if settings is not None else QgsColorRampLegendNodeSettings()
    fmt = QgsScientificNumericFormat()
    fmt.setNumberDecimalPlaces(2)
    settings.setNumericFormat(fmt)
    ramp.setLegendSettings(settings)


def legend_labels(layer) -> List[str]:
    """What the layer's legend shows: the continuous legend's minimum and maximum as its number format writes them
    (QGIS >= 3.18), else the ramp items' labels. The tests check the stretched range."""
    renderer = layer.renderer()
    if renderer is None:
        return []
    shader = renderer.shader() if hasattr(renderer, "shader") else None
    ramp = shader.rasterShaderFunction() if shader is not None else None
    settings = ramp.legendSettings() if ramp is not None and hasattr(ramp, "legendSettings") else None
    if settings is not None and settings.useContinuousLegend() and settings.numericFormat() is not None:
        from qgis.core import QgsNumericFormatContext

        ctx = QgsNumericFormatContext()
        return [settings.numericFormat().formatDouble(v, ctx)
                for v in (renderer.classificationMin(), renderer.classificationMax())]
    return [label for label, _ in renderer.legendSymbologyItems()]


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


PLACE_TIP = f"""<div style="max-width:340px">
[% CASE WHEN "kind" = 'image' THEN
'<img src="' || {PHOTO_URL.replace('"photo"', '"source"')} || '" style="max-width:320px;max-height:240px"><br>'
ELSE '' END %]
<b>[% "source" %]</b><br>
[% coalesce("label", '') %]<br>
p = [% format_number("probability", 4) %]
[% CASE WHEN "error_km" IS NOT NULL THEN '<br>EXIF GPS is ' || format_number("error_km", 1) || ' km away' ELSE '' END %]
</div>"""


def iter_paths_from_layer(layer, field: str) -> Iterable[str]:
    for f in layer.getFeatures():
        value = f[field]
        if value:
            yield str(value)
