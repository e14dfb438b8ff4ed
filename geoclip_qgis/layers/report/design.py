"""The case report's page, item by item (A4 landscape): what scripts/make_report_template.py saves as
case_report.qpt, the template the plugin ships. An analyst may edit the .qpt in the layout designer; the plugin
finds the items by their ids (ITEM_IDS) and binds only the layers (layers/report/layout.py).

Every item reads the report layer's fields (layout.py REPORT_FIELDS) through expressions, so a page is one atlas
feature: the first feature is the case summary ("page_kind" = 'case'), the others one photo each; items of the other
kind are excluded from that page's export (a data-defined 'exclude from exports')."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsLayoutFrame,
    QgsLayoutItemAttributeTable,
    QgsLayoutItemLabel,
    QgsLayoutItemMap,
    QgsLayoutItemPicture,
    QgsLayoutObject,
    QgsLayoutSize,
    QgsProperty,
    QgsRectangle,
    QgsUnitTypes,
)
from qgis.PyQt.QtCore import QRectF
from qgis.PyQt.QtGui import QFont

PHOTO_ONLY = "\"page_kind\" <> 'photo'"  # the exclusion expression of items only a photo page shows
CASE_ONLY = "\"page_kind\" <> 'case'"
ITEM_IDS = ("title", "answer", "photo", "why", "why_caption", "photo_caption", "detail_map", "world_map",
            "places", "context", "fingerprint", "case_text", "footer")


def _place(item, x: float, y: float, w: float, h: float, item_id: str, exclude: str = "") -> None:
    item.attemptSetSceneRect(QRectF(x, y, w, h))
    item.setId(item_id)
    if exclude:
        item.dataDefinedProperties().setProperty(QgsLayoutObject.DataDefinedProperty.ExcludeFromExports,
                                                 QgsProperty.fromExpression(exclude))


def _label(layout, text: str, rect, item_id: str, size: float = 8.0, bold: bool = False, exclude: str = ""):
    label = QgsLayoutItemLabel(layout)
    label.setText(text)
    font = QFont("Sans Serif")
    font.setPointSizeF(size)
    font.setBold(bold)
    label.setFont(font)
    layout.addLayoutItem(label)
    _place(label, *rect, item_id, exclude)
    return label


def _picture(layout, field: str, rect, item_id: str):
    pic = QgsLayoutItemPicture(layout)
    pic.setResizeMode(QgsLayoutItemPicture.ResizeMode.Zoom)
    pic.dataDefinedProperties().setProperty(QgsLayoutObject.DataDefinedProperty.PictureSource,
                                            QgsProperty.fromField(field))
    layout.addLayoutItem(pic)
    _place(pic, *rect, item_id, f"{PHOTO_ONLY} OR \"{field}\" IS NULL OR \"{field}\" = ''")
    return pic


def design(layout) -> None:
    """Add the page's items to an empty print layout (one A4 landscape page)."""
    page = layout.pageCollection().page(0)
    page.setPageSize(QgsLayoutSize(297, 210, QgsUnitTypes.LayoutUnit.LayoutMillimeters))
    _label(layout, '[% "title" %]', (10, 6, 277, 9), "title", 14, True)
    _label(layout, '[% "answer" %]', (10, 15, 277, 7), "answer", 10)
    _picture(layout, "photo", (10, 24, 90, 66), "photo")
    _label(layout, "The photo", (10, 90, 90, 4), "photo_caption", 7, exclude=PHOTO_ONLY)
    _picture(layout, "overlay", (104, 24, 90, 66), "why")
    _label(layout, "What drove the answer (gradient × input to the top place; the sides the model does not see "
           "are dimmed)", (104, 90, 90, 6), "why_caption", 7,
           exclude=f"{PHOTO_ONLY} OR \"overlay\" IS NULL OR \"overlay\" = ''")
    detail = QgsLayoutItemMap(layout)
    detail.setAtlasDriven(True)
    detail.setAtlasScalingMode(QgsLayoutItemMap.AtlasScalingMode.Auto)
    detail.setAtlasMargin(0.6)
    detail.setFrameEnabled(True)
    layout.addLayoutItem(detail)
    _place(detail, 198, 24, 89, 66, "detail_map")
    detail.setCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    detail.zoomToExtent(QgsRectangle(-15, -11, 15, 11))  # a saved map without an extent loads with a NaN height
    world = QgsLayoutItemMap(layout)
    world.setFrameEnabled(True)
    layout.addLayoutItem(world)
    _place(world, 198, 94, 89, 45, "world_map")
    world.setCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    world.zoomToExtent(QgsRectangle(-180, -90, 180, 90))
    table = QgsLayoutItemAttributeTable.create(layout)
    frame = QgsLayoutFrame(layout, table)
    table.addFrame(frame)
    layout.addMultiFrame(table)
    _place(frame, 10, 96, 184, 45, "places", PHOTO_ONLY)
    _label(layout, '[% "context" %]', (10, 143, 184, 52), "context", 8, exclude=PHOTO_ONLY)
    _label(layout, '[% "fingerprint" %]', (198, 143, 89, 52), "fingerprint", 6.5)
    _label(layout, '[% "case_text" %]', (10, 24, 184, 170), "case_text", 8, exclude=CASE_ONLY)
    _label(layout, "GeoCLIP for QGIS case report · page [% @atlas_featurenumber %] of [% @atlas_totalfeatures %]",
           (10, 200, 277, 5), "footer", 7)
