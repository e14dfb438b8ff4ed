"""The real QGIS desktop under Xvfb: plugin installed from the zip, a text geolocation run from the dock, and a
screenshot of the window with the result layer on the map (scripts/screenshot_qgis.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dock_run_in_a_real_qgis_window(tmp_path, tiny_clip, cache_dir):
    shot = tmp_path / "window.png"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "screenshot_qgis.py"), "--out", str(shot),
                           "--clip-path", tiny_clip, "--gallery", "fibonacci:3000", "--timeout", "240"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    status = json.loads(shot.with_suffix(".json").read_text())
    assert status["layer_added"] and status["features"] == 25 and status["table_rows"] == 25, status
    assert status["unloaded"] is True
    from PIL import Image

    with Image.open(shot) as im:
        assert im.width >= 1000 and im.height >= 700
        colours = len(im.convert("RGB").resize((200, 120)).getcolors(maxcolors=24000) or [])
    assert colours > 50, "the screenshot shows a rendered window, not a blank screen"
