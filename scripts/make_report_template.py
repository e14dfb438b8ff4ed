#!/usr/bin/env python3
"""Write geoclip_qgis/layers/report/case_report.qpt, the print layout template the plugin ships, from
layers/report/design.py (run it after changing the design; the .qpt is what QGIS and analysts edit)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    from qgis.core import QgsApplication, QgsPrintLayout, QgsProject, QgsReadWriteContext

    app = QgsApplication([], False)
    app.initQgis()
    from geoclip_qgis.layers.report.design import design
    from geoclip_qgis.layers.report.layout import TEMPLATE

    layout = QgsPrintLayout(QgsProject.instance())
    layout.initializeDefaults()
    design(layout)
    if not layout.saveAsTemplate(str(TEMPLATE), QgsReadWriteContext()):
        raise SystemExit(f"cannot write {TEMPLATE}")
    print(TEMPLATE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
