"""The case report as a QGIS print layout: the shipped template (case_report.qpt) loaded, an atlas over a report layer
made from the run's summary layer (a case page first, then one page per answered photo), its maps and table bound
to copies of the run's places and regions, exported to one PDF.

Nothing here reads a photo's pixels or hashes a file: the SHA-256 and the overlay path come from the summary layer
(the engine wrote them when it read the photo); only the EXIF time and camera are read here (QgsExifTools, a few
bytes per photo). Used by the dock's 'Report (PDF)…' (gui/report.py, exported in a QgsTask) and by Processing's
'Case report (PDF)' (processing/case_report.py): one builder for both."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsExifTools,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeedback,
    QgsField,
    QgsFields,
    QgsFillSymbol,
    QgsGeometry,
    QgsLayoutExporter,
    QgsLayoutTableColumn,
    QgsMarkerSymbol,
    QgsPalLayerSettings,
    QgsPointXY,
    QgsPrintLayout,
    QgsReadWriteContext,
    QgsRectangle,
    QgsRuleBasedRenderer,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QImageReader
from qgis.PyQt.QtXml import QDomDocument

from ...i18n import tr
from ...qt_compat import field_type
from ...shared import atomic

TEMPLATE = Path(__file__).with_name("case_report.qpt")
REPORT_FIELDS = ("source", "page_kind", "page_order", "title", "answer", "photo", "overlay", "context",
                 "fingerprint", "case_text")
HINT_KEYS = ("hint", "hint_weight", "constraint")
ON_PAGE = ("\"source\" = attribute(@atlas_feature, 'source') OR "
           "(attribute(@atlas_feature, 'page_kind') = 'case' AND \"rank\" = 1)")
MAX_CASE_LINES = 40
PAGE_PHOTO_SIDE = 1200  # pixels: a 90 mm picture at 300 dpi needs about 1,060


def _resolve(path: Any, home: str) -> str:
    if not path:
        return ""
    path = str(path)
    return path if os.path.isabs(path) or not home else os.path.join(home, path)


def _value(feature: QgsFeature, name: str) -> Any:
    """A field's value, None when the layer has no such field or it is NULL (hint and trip columns are optional)."""
    if feature.fields().indexOf(name) < 0:
        return None
    value = feature[name]
    return None if value is None or (hasattr(value, "isNull") and value.isNull()) or value == "" else value


def _pct(value: Any) -> str:
    return "" if value is None else f"{100 * float(value):.1f} %"


def _hash_lines(digest: Optional[str]) -> str:
    """A SHA-256 in two halves: 64 characters do not fit a column of a printed page on one line."""
    if not digest:
        return "not read"
    return f"{digest[:32]}\n  {digest[32:]}"


def exif_text(path: str) -> Tuple[str, str]:
    """(capture time, camera) from the photo's EXIF, '' when absent."""
    try:
        tags = QgsExifTools.readTags(path)
    except Exception:  # a damaged file costs these two lines, never the report
        return "", ""
    when = tags.get("Exif.Photo.DateTimeOriginal") or tags.get("Exif.Image.DateTime") or ""
    when = when.toString("yyyy-MM-dd HH:mm:ss") if hasattr(when, "toString") else str(when)
    offset = str(tags.get("Exif.Photo.OffsetTimeOriginal") or "")
    camera = " ".join(str(tags.get(k) or "").strip() for k in ("Exif.Image.Make", "Exif.Image.Model")).strip()
    return (f"{when} {offset}".strip(), camera)


def engine_meta(info: Dict[str, Any]) -> Dict[str, Any]:
    """The report's model lines from the worker's `info` answer (engine.info()); empty when the engine could not
    say (the report then names no weights rather than guessing)."""
    eng = info.get("engine") or {}
    precision = (eng.get("precision") or {}).get("precision", "")
    clip = eng.get("clip_path") or "openai/clip-vit-large-patch14"
    return {"version": eng.get("version", ""), "weights_sha256": eng.get("weights_sha256") or {},
            "model": f"CLIP {os.path.basename(clip.rstrip('/')) or clip} + GeoCLIP 1.3.0 weights, {precision}"}


def meta_text(meta: Dict[str, Any]) -> str:
    """The model, the weights' SHA-256, the software version and the date: every page's fingerprint block."""
    lines = [tr("Model: {}").format(meta.get("model") or "CLIP ViT-L/14 + GeoCLIP"), tr("Weights SHA-256:")]
    for name, digest in (meta.get("weights_sha256") or {}).items():
        lines.append(f" {name}\n  {_hash_lines(digest)}")
    lines.append(tr("GeoCLIP for QGIS {} · made {}").format(meta.get("version", ""), meta.get("made", "")))
    return "\n".join(lines)


def _context(f: QgsFeature, photo: str) -> str:
    when, camera = exif_text(photo) if photo else ("", "")
    when = str(_value(f, "taken_at") or when or tr("none"))
    lines = [tr("EXIF time: {} · camera: {}").format(when, camera or tr("none"))]
    lat, lon = _value(f, "exif_lat"), _value(f, "exif_lon")
    if lat is not None and lon is not None:
        km = _value(f, "error_km")
        lines.append(tr("EXIF GPS: {}").format(f"{float(lat):.5f}, {float(lon):.5f}") +
                     ("" if km is None else tr(" — {} km from the answer").format(f"{float(km):,.1f}")))
    else:
        lines.append(tr("EXIF GPS: {}").format(_value(f, "exif_problem") or tr("none")))
    mass = _value(f, "places_mass")
    if mass is not None:
        lines.append(tr("The places hold {} of the probability; elsewhere {}").format(_pct(mass),
                                                                                     _pct(1 - float(mass))))
    area = _value(f, "region90_km2")
    if area is not None:
        lines.append(tr("90 % confidence region: {} km² in {} part(s)").format(
            f"{float(area):,.0f}", _value(f, "region90_parts") or 1))
    hints = [f"{k.replace('_', ' ')}: {_value(f, k)}" for k in HINT_KEYS if _value(f, k) is not None]
    outside = _value(f, "aoi_outside")
    if outside is not None:
        hints.append(tr("area of interest: {} of the probability fell outside").format(_pct(outside)))
    lines.append(tr("Hints and constraints: {}").format("; ".join(hints) if hints else tr("none, the pixels alone")))
    trip = [f"{n.replace('_', ' ')}: {_value(f, n)}" for n in f.fields().names()
            if (n.startswith("trip_") or n == "trip_note") and _value(f, n) is not None]
    if trip:
        lines.append(tr("Trip: {}").format("; ".join(trip)))
    lines.append(tr("Maps: the places in red, numbered as in the table; the EXIF position as a blue cross."))
    return "\n".join(lines)


def _frame(points: List[QgsPointXY], min_w: float = 6.0, min_h: float = 4.0) -> QgsGeometry:
    """A rectangle around the points (at least min_w x min_h degrees): the extent a page's map fits. A polygon, not
    the points: the atlas fits its maps to a polygon, while a point coverage only centres them."""
    rect = QgsRectangle(points[0], points[0]) if points else QgsRectangle(-180, -90, 180, 90)
    for p in points[1:]:
        rect.combineExtentWith(p)
    cx, cy = rect.center().x(), rect.center().y()
    w, h = max(rect.width() * 1.15, min_w), max(rect.height() * 1.15, min_h)
    return QgsGeometry.fromRect(QgsRectangle(max(cx - w / 2, -180), max(cy - h / 2, -85),
                                             min(cx + w / 2, 180), min(cy + h / 2, 85)))


def _points_by_source(places: Optional[QgsVectorLayer]) -> Dict[str, List[QgsPointXY]]:
    out: Dict[str, List[QgsPointXY]] = {}
    if places is not None and places.isValid() and "source" in places.fields().names():
        for f in places.getFeatures():
            if f.hasGeometry():
                out.setdefault(str(f["source"]), []).append(f.geometry().asPoint())
    return out


def report_layer(summary: QgsVectorLayer, meta: Dict[str, Any], home: str = "",
                 places: Optional[QgsVectorLayer] = None) -> QgsVectorLayer:
    """The atlas's coverage: a case feature (all answered photos' points) then one feature per answered photo, each
    a rectangle around what its page's map must show (its places and EXIF position)."""
    fields = QgsFields()
    for name in REPORT_FIELDS:
        fields.append(QgsField(name, field_type("Int" if name == "page_order" else "QString")))
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "GeoCLIP case report", "memory")
    layer.dataProvider().addAttributes(fields.toList())
    layer.updateFields()
    fingerprint = meta_text(meta)
    near = _points_by_source(places)
    pages, points, lines, failed = [], [], [], 0
    for f in summary.getFeatures():
        if _value(f, "status") != "ok" or _value(f, "kind") == "text" or not f.hasGeometry():
            failed += _value(f, "status") == "failed"
            continue
        photo = _resolve(_value(f, "source"), home)
        name = os.path.basename(photo)
        label = _value(f, "label") or ""
        answer = tr("Answer: {} — {}").format(label, _pct(_value(f, "probability")))
        page = QgsFeature(layer.fields())
        page.setAttributes([str(_value(f, "source")), "photo", len(pages) + 1, f"{len(pages) + 1}. {name}", answer,
                            photo, _resolve(_value(f, "saliency"), home), _context(f, photo),
                            tr("File SHA-256:") + f"\n  {_hash_lines(_value(f, 'sha256'))}\n{fingerprint}", ""])
        shown = [f.geometry().asPoint()] + near.get(str(_value(f, "source")), [])
        lat, lon = _value(f, "exif_lat"), _value(f, "exif_lon")
        if lat is not None and lon is not None:
            shown.append(QgsPointXY(float(lon), float(lat)))
        page.setGeometry(_frame(shown))
        pages.append(page)
        points.append(f.geometry().asPoint())
        if len(lines) < MAX_CASE_LINES:
            lines.append(f"{len(pages)}. {name} — {label} ({_pct(_value(f, 'probability'))})")
    more = len(pages) - len(lines)
    case_text = "\n".join([tr("{} photo(s) answered, {} could not be read.").format(len(pages), failed), ""] +
                          lines + ([tr("… and {} more (one page each)").format(more)] if more > 0 else []))
    case = QgsFeature(layer.fields())
    case.setAttributes(["", "case", 0, tr("GeoCLIP case report"),
                        tr("{} photo(s) · made {}").format(len(pages), meta.get("made", "")),
                        "", "", "", fingerprint, case_text])
    case.setGeometry(_frame(points, 20.0, 12.0))
    layer.dataProvider().addFeatures([case] + pages)
    layer.updateExtents()
    return layer


def _copy(source: Optional[QgsVectorLayer], name: str) -> Optional[QgsVectorLayer]:
    """A memory copy of a run layer, drawn only on its photo's page (and the case page's top places)."""
    if source is None or not source.isValid():
        return None
    kind = QgsWkbTypes.displayString(source.wkbType())
    layer = QgsVectorLayer(f"{kind}?crs={source.crs().authid() or 'EPSG:4326'}", name, "memory")
    layer.dataProvider().addAttributes(source.fields().toList())
    layer.updateFields()
    layer.dataProvider().addFeatures(list(source.getFeatures()))
    polygon = layer.geometryType() == QgsWkbTypes.GeometryType.PolygonGeometry
    symbol = QgsFillSymbol.createSimple({"color": "230,60,40,40", "outline_color": "200,30,20",
                                         "outline_width": "0.4"}) if polygon else \
        QgsMarkerSymbol.createSimple({"name": "circle", "color": "220,40,30", "size": "2.6",
                                      "outline_color": "0,0,0", "outline_width": "0.3"})
    rule = ON_PAGE if "rank" in layer.fields().names() else "\"source\" = attribute(@atlas_feature, 'source')"
    root = QgsRuleBasedRenderer.Rule(None)
    root.appendChild(QgsRuleBasedRenderer.Rule(symbol, filterExp=rule))
    layer.setRenderer(QgsRuleBasedRenderer(root))
    if "rank" in layer.fields().names():  # the places' numbers, as in the table (photo pages only)
        labels = QgsPalLayerSettings()
        labels.fieldName = "if(\"source\" = attribute(@atlas_feature, 'source'), \"rank\", '')"
        labels.isExpression = True
        layer.setLabeling(QgsVectorLayerSimpleLabeling(labels))
        layer.setLabelsEnabled(True)
    return layer


def exif_layer(summary: QgsVectorLayer) -> Optional[QgsVectorLayer]:
    """The photos' EXIF GPS positions (a blue cross), each drawn on its own page only."""
    names = summary.fields().names()
    if not {"exif_lat", "exif_lon", "source"} <= set(names):
        return None
    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=source:string", "EXIF position", "memory")
    feats = []
    for f in summary.getFeatures():
        lat, lon = _value(f, "exif_lat"), _value(f, "exif_lon")
        if lat is not None and lon is not None:
            g = QgsFeature(layer.fields())
            g["source"] = str(f["source"])
            g.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float(lon), float(lat))))
            feats.append(g)
    if not feats:
        return None
    layer.dataProvider().addFeatures(feats)
    symbol = QgsMarkerSymbol.createSimple({"name": "cross2", "color": "20,90,220", "outline_color": "20,90,220",
                                           "size": "4", "outline_width": "0.8"})
    root = QgsRuleBasedRenderer.Rule(None)
    root.appendChild(QgsRuleBasedRenderer.Rule(symbol, filterExp="\"source\" = attribute(@atlas_feature, 'source')"))
    layer.setRenderer(QgsRuleBasedRenderer(root))
    return layer


def world_layer(tolerance: float = 0.1) -> Optional[QgsVectorLayer]:
    """QGIS's own offline world map (countries), grey, simplified to what a 90 mm map shows (no internet tiles).
    Simplified once, in memory: the full-detail borders cost three quarters of an export's time and half its
    bytes, drawn twice on every page."""
    path = os.path.join(QgsApplication.pkgDataPath(), "resources", "data", "world_map.gpkg")
    if not os.path.isfile(path):
        return None
    source = QgsVectorLayer(f"{path}|layername=countries", "countries", "ogr")
    if not source.isValid():
        return None
    layer = QgsVectorLayer(f"MultiPolygon?crs={source.crs().authid()}", "countries", "memory")
    feats = []
    for f in source.getFeatures(QgsFeatureRequest().setNoAttributes()):
        g = QgsFeature()
        g.setGeometry(f.geometry().simplify(tolerance))
        feats.append(g)
    layer.dataProvider().addFeatures(feats)
    layer.setRenderer(layer.renderer().defaultRenderer(layer.geometryType()))
    layer.renderer().setSymbol(QgsFillSymbol.createSimple({"color": "232,232,226", "outline_color": "160,160,160",
                                                           "outline_width": "0.1"}))
    return layer


class CaseLayout:
    """The loaded template, its atlas and the layers it draws (kept alive as long as the layout is)."""

    def __init__(self, project, summary: QgsVectorLayer, places: Optional[QgsVectorLayer] = None,
                 regions: Optional[QgsVectorLayer] = None, meta: Optional[Dict[str, Any]] = None,
                 likelihood=None):
        """`likelihood`: the run's likelihood raster layer, when it made one (drawn under the places)."""
        meta = dict(meta or {})
        self.likelihood = likelihood
        meta.setdefault("made", _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat())
        self.coverage = report_layer(summary, meta, project.absolutePath(), places)
        self.places = _copy(places, "places")
        self.regions = _copy(regions, "regions")
        self.world = world_layer()
        self.exif = exif_layer(summary)
        self.layout = QgsPrintLayout(project)
        doc = QDomDocument()
        doc.setContent(TEMPLATE.read_text(encoding="utf-8"))
        _items, ok = self.layout.loadFromTemplate(doc, QgsReadWriteContext())
        if not ok:
            raise ValueError(f"the report template cannot be read: {TEMPLATE}")
        self.layout.setName("GeoCLIP case report")
        self._bind()

    @property
    def pages(self) -> int:
        return self.coverage.featureCount()

    def _bind(self) -> None:
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        drawn = [x for x in (self.exif, self.places, self.regions, self.likelihood, self.world) if x is not None]
        for item_id, extent in (("detail_map", QgsRectangle(-15, -10, 15, 10)),
                                ("world_map", QgsRectangle(-180, -90, 180, 90))):
            item = self.layout.itemById(item_id)
            item.setCrs(wgs84)
            item.setLayers(drawn)
            item.setKeepLayerSet(True)
            item.zoomToExtent(extent)
        frame = self.layout.itemById("places")
        table = frame.multiFrame() if frame is not None else None
        if table is not None and self.places is not None:
            table.setVectorLayer(self.places)
            table.setFilterFeatures(True)
            table.setFeatureFilter("\"source\" = attribute(@atlas_feature, 'source')")
            table.setMaximumNumberOfFeatures(8)
            columns = []
            for heading, expression in (("#", '"rank"'), ("place", '"label"'),
                                        ("probability", "format_number(100 * \"probability\", 1) || ' %'"),
                                        ("lat", "format_number(\"lat\", 4)"), ("lon", "format_number(\"lon\", 4)"),
                                        ("gallery points", '"n_points"')):
                col = QgsLayoutTableColumn(heading)
                col.setAttribute(expression)
                columns.append(col)
            table.setColumns(columns)
        atlas = self.layout.atlas()
        atlas.setCoverageLayer(self.coverage)
        atlas.setEnabled(True)
        atlas.setSortFeatures(True)
        atlas.setSortExpression('"page_order"')
        atlas.setFilenameExpression("'geoclip_case'")

    def reduce_photos(self, folder: str, feedback: Optional[QgsFeedback] = None, max_side: int = PAGE_PHOTO_SIDE
                      ) -> None:
        """Point each page at upright JPEG copies of its photo and overlay no larger than a printed page needs
        (decoded at a reduced scale): a 12 MP photo would otherwise go into the PDF whole, megabytes per page, and
        QGIS's picture item would ignore its EXIF orientation. Runs where the export runs (the task's thread)."""
        fields = self.coverage.fields()
        changes: Dict[int, Dict[int, str]] = {}
        jobs = [(f.id(), fields.indexOf(name), f[name], f"{name}-{n:05d}.jpg")
                for n, f in enumerate(self.coverage.getFeatures()) for name in ("photo", "overlay") if f[name]]
        for fid, index, path, name in jobs:
            if feedback is not None and feedback.isCanceled():
                return
            reader = QImageReader(str(path))
            reader.setAutoTransform(True)
            size = reader.size()
            if size.isValid() and max(size.width(), size.height()) > max_side:
                reader.setScaledSize(size.scaled(max_side, max_side, Qt.AspectRatioMode.KeepAspectRatio))
            image = reader.read()
            if image.isNull():
                continue  # the picture item says the file is missing; the page is still made
            out = os.path.join(folder, name)
            if image.save(out, "JPEG", 85):
                changes.setdefault(fid, {})[index] = out
        self.coverage.dataProvider().changeAttributeValues(changes)

    def export_pdf(self, path: str, feedback: Optional[QgsFeedback] = None, dpi: int = 150) -> Tuple[bool, str]:
        """Every page into one PDF (QgsLayoutExporter over the atlas), the photos reduced first; (ok, error). The
        PDF is written under our own temporary name beside `path` and renamed over it only when complete and not
        cancelled (shared/atomic.py, the one atomic writer, for the dock and Processing alike): a cancelled,
        failed or killed export leaves the analyst's earlier file as it was, and no file of theirs is touched."""
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="geoclip-report-")
        try:
            with atomic.atomic_path(path, "report-pdf") as tmp:
                self.reduce_photos(folder, feedback)
                settings = QgsLayoutExporter.PdfExportSettings()
                settings.dpi = dpi
                settings.rasterizeWholeImage = False
                settings.appendGeoreference = False
                settings.exportMetadata = True
                result, error = QgsLayoutExporter.exportToPdf(self.layout.atlas(), str(tmp), settings, feedback)
                if feedback is not None and feedback.isCanceled():
                    raise _NotExported(tr("cancelled"))
                if result != QgsLayoutExporter.ExportResult.Success:
                    raise _NotExported(error or tr("the layout could not be exported"))
        except (_NotExported, OSError) as exc:  # the temporary file is gone, `path` untouched
            return False, str(exc)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return True, ""


class _NotExported(Exception):
    """The exporter failed or was cancelled: nothing replaces the earlier file."""
