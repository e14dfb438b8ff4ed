#!/usr/bin/env python3
"""Run the GeoCLIP engine's command line from a checkout (installed, it is the `geoclip-qgis` command)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geoclip_qgis.core.service.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
