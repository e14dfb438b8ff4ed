#!/usr/bin/env python3
"""Write the plugin's QML styles with the QGIS API (run once; the .qml files are committed)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STYLES = ROOT / "geoclip_qgis" / "resources" / "styles"


def main() -> int:
    import numpy as np
    from qgis.core import (
        QgsApplication,
        QgsColorRampShader,
        QgsMarkerSymbol,
        QgsProperty,
        QgsRasterLayer,
        QgsRasterShader,
        QgsSingleBandPseudoColorRenderer,
        QgsSingleSymbolRenderer,
        QgsSymbolLayer,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtGui import QColor

    from geoclip_qgis.layers.results import MAP_TIP, PREDICTION_FIELDS

    app = QgsApplication([], False)
    app.initQgis()
    STYLES.mkdir(parents=True, exist_ok=True)

    fields = "&".join(f"field={n}:{'string' if k == 10 else 'double' if k == 6 else 'integer'}"
                      for n, k in PREDICTION_FIELDS)
    points = QgsVectorLayer(f"Point?crs=EPSG:4326&{fields}", "predictions", "memory")
    symbol = QgsMarkerSymbol.createSimple({"name": "circle", "color": "228,87,46,220", "outline_color": "40,20,10",
                                           "outline_width": "0.3"})
    marker = symbol.symbolLayer(0)
    marker.setDataDefinedProperty(QgsSymbolLayer.PropertySize, QgsProperty.fromExpression(
        'scale_exp("probability", 0, maximum("probability"), 1.8, 7.5, 0.6)'))
    marker.setDataDefinedProperty(QgsSymbolLayer.PropertyFillColor, QgsProperty.fromExpression(
        "ramp_color('Magma', scale_linear(\"probability\", 0, maximum(\"probability\"), 0.25, 0.95))"))
    points.setRenderer(QgsSingleSymbolRenderer(symbol))
    points.setMapTipTemplate(MAP_TIP)
    points.setDisplayExpression('coalesce("photo", "query") || \' #\' || "rank"')
    points.saveNamedStyle(str(STYLES / "predictions.qml"))

    def pseudocolor(path: Path, stops, vmin: float, vmax: float, name: str) -> None:
        tif = Path(tempfile.mkdtemp()) / "x.tif"
        import rasterio
        from rasterio.transform import from_origin

        with rasterio.open(tif, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                           crs="EPSG:4326", transform=from_origin(0, 4, 1, 1)) as ds:
            ds.write(np.linspace(vmin, vmax, 16, dtype=np.float32).reshape(1, 4, 4))
        layer = QgsRasterLayer(str(tif), name)
        ramp = QgsColorRampShader(vmin, vmax)
        ramp.setColorRampType(QgsColorRampShader.Interpolated)
        ramp.setColorRampItemList([QgsColorRampShader.ColorRampItem(vmin + t * (vmax - vmin), QColor(*rgba), "")
                                   for t, rgba in stops])
        shader = QgsRasterShader()
        shader.setRasterShaderFunction(ramp)
        renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
        renderer.setClassificationMin(vmin)
        renderer.setClassificationMax(vmax)
        layer.setRenderer(renderer)
        layer.saveNamedStyle(str(path))

    magma = [(0.0, (0, 0, 4, 0)), (0.05, (40, 11, 84, 120)), (0.2, (101, 21, 110, 190)), (0.4, (159, 42, 99, 220)),
             (0.6, (212, 72, 66, 235)), (0.8, (245, 125, 21, 245)), (1.0, (252, 255, 164, 255))]
    pseudocolor(STYLES / "likelihood.qml", magma, 0.0, 1.0, "likelihood")
    # the less similar half transparent (layers.style_similarity stretches 0 … 1 onto the 50-99.8 % range)
    viridis = [(0.0, (68, 1, 84, 0)), (0.1, (68, 1, 84, 110)), (0.25, (59, 82, 139, 190)),
               (0.5, (33, 145, 140, 230)), (0.75, (94, 201, 98, 245)), (1.0, (253, 231, 37, 255))]
    pseudocolor(STYLES / "similarity.qml", viridis, 0.0, 1.0, "similarity")
    print("wrote", sorted(p.name for p in STYLES.glob("*.qml")))
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
