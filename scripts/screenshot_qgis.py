#!/usr/bin/env python3
"""Real-window check: start the QGIS desktop under Xvfb with the plugin installed from the release zip, run a
geolocation from the dock, and save a screenshot of the window with the result layer on the map.

    python scripts/screenshot_qgis.py --out out/screenshot.png --clip-path FOLDER [--query "snowy alpine village"]

Writes the PNG and a JSON status next to it (layer added? how many features and table rows?). Needs the Debian
packages qgis, xvfb and imagemagick (scripts/setup_env.sh installs them) and the engine's Python (this one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

STARTUP = r'''
import json, os, time
from qgis.core import QgsApplication, QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

OUT, STATUS, QUERY = os.environ["GEOCLIP_SHOT"], os.environ["GEOCLIP_SHOT_STATUS"], os.environ["GEOCLIP_SHOT_QUERY"]
state = {"started": time.time()}

def write(**kw):
    state.update(kw)
    with open(STATUS, "w") as f:
        json.dump(state, f)

def begin():
    plugin = plugins.get("geoclip_qgis")
    if plugin is None:
        write(error="plugin not loaded"); QgsApplication.exit(3); return
    world = "/usr/share/qgis/resources/data/world_map.gpkg"
    if os.path.exists(world):
        base = QgsVectorLayer(world + "|layername=countries", "World", "ogr")
        if base.isValid():
            sym = base.renderer().symbol()
            sym.setColor(sym.color().fromRgb(238, 232, 213))
            sym.symbolLayer(0).setStrokeColor(sym.color().fromRgb(170, 160, 140))
            QgsProject.instance().addMapLayer(base)
    iface.mainWindow().showMaximized()
    plugin.gui.toggle_dock(True)
    dock = plugin.gui.dock
    dock.query.setText(QUERY)
    dock.top_k.setValue(25)
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    dock.run()
    state["dock"] = dock
    poll()

def poll():
    dock = state["dock"]
    if dock.task is not None and time.time() - state["started"] < 240:
        QTimer.singleShot(300, poll); return
    layers = [l for l in QgsProject.instance().mapLayers().values() if l.name().startswith("GeoCLIP")]
    if layers:
        iface.setActiveLayer(layers[0])
        canvas = iface.mapCanvas(); canvas.zoomToFullExtent(); canvas.refresh()
    state.pop("dock")
    write(layer_added=bool(layers), features=layers[0].featureCount() if layers else 0,
          table_rows=dock.table.rowCount(), status=dock.status.text())
    QTimer.singleShot(2500, shoot)

def shoot():
    iface.mainWindow().grab().save(OUT)
    write(screenshot=OUT)
    QTimer.singleShot(200, leave)

def leave():
    import qgis.utils
    write(unloaded=qgis.utils.unloadPlugin("geoclip_qgis"))
    QgsProject.instance().clear()
    QTimer.singleShot(300, lambda: QgsApplication.exit(0))

QTimer.singleShot(1500, begin)
'''


def free_display() -> int:
    for n in range(90, 140):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise SystemExit("no free X display number")


def make_profile(root: Path, settings: dict) -> Path:
    from package_plugin import build

    zip_path = build(root / "dist")
    plugins = root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(plugins)
    ini = root / "profiles" / "default" / "QGIS"
    ini.mkdir(parents=True)
    lines = ["[PythonPlugins]", "geoclip_qgis=true", "", "[qgis]", "showTips322=false", "checkVersion=false",
             "", "[geoclip]"] + [f"{k}={v}" for k, v in settings.items()]
    (ini / "QGIS3.ini").write_text("\n".join(lines) + "\n")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "out" / "qgis_window.png"))
    ap.add_argument("--clip-path", required=True)
    ap.add_argument("--query", default="snowy alpine village")
    ap.add_argument("--gallery", default="default")
    ap.add_argument("--timeout", type=int, default=300)
    args = ap.parse_args()
    for tool in ("Xvfb", "qgis"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run scripts/setup_env.sh (it installs qgis, xvfb, imagemagick)")
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    status = out.with_suffix(".json")
    status.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="geoclip-shot-"))
    profile = make_profile(work / "config", {"engine_python": sys.executable, "clip_path": args.clip_path,
                                              "device": "cpu", "gallery": args.gallery})
    (work / "startup.py").write_text(STARTUP)
    display = free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "PYTHONPATH")}
    env.update(DISPLAY=f":{display}", GEOCLIP_SHOT=str(out), GEOCLIP_SHOT_STATUS=str(status),
               GEOCLIP_SHOT_QUERY=args.query, GEOCLIP_ENGINE_PYTHON=sys.executable, HF_HUB_OFFLINE="1")
    try:
        qgis = subprocess.Popen(["qgis", "--profiles-path", str(profile), "--nologo", "--noversioncheck",
                                 "--code", str(work / "startup.py")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _, stderr = qgis.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            qgis.kill()
            _, stderr = qgis.communicate()
        if shutil.which("import") and not out.exists():  # fall back to a screen grab of the whole display
            subprocess.run(["import", "-display", f":{display}", "-window", "root", str(out)], check=False)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)  # the throw-away QGIS profile: nothing of it is kept
    info = json.loads(status.read_text()) if status.exists() else {"error": "no status written"}
    info["qgis_exit"] = qgis.returncode
    info["qgis_stderr_tail"] = [ln for ln in stderr.splitlines() if ln.strip()][-6:]
    print(json.dumps(info, indent=1))
    if not out.exists() or not info.get("layer_added"):
        sys.stderr.write(stderr[-3000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
