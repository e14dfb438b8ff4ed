#!/usr/bin/env python3
"""Screenshot of QGIS's real Plugin Manager listing GeoCLIP from this build's plugin repository.

    python scripts/screenshot_plugin_manager.py --out docs/screenshots/issue23-plugin-manager.png

Builds the zip and plugins.xml (scripts/package_plugin.py), serves them on 127.0.0.1, starts the QGIS desktop under
Xvfb with a fresh profile, adds the repository the way Settings > Plugin Repositories > Add does, opens
Plugins > Manage and Install Plugins on "All" with GeoCLIP selected, and grabs the screen. Writes the PNG and a JSON
status next to it (what the installer listed). Needs qgis, xvfb and imagemagick (scripts/setup_env.sh).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

STARTUP = r'''
import json, os
from qgis.core import QgsSettings
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QLineEdit, QListView
from qgis.utils import iface

STATUS, URL, NAME = os.environ["GEOCLIP_SHOT_STATUS"], os.environ["GEOCLIP_SHOT_REPO"], "GeoCLIP (this build)"
state = {}


def write(**kw):
    state.update(kw)
    with open(STATUS, "w") as f:
        json.dump(state, f)


def begin():
    try:
        s = QgsSettings()
        s.setValue("app/plugin_repositories/QGIS Official Plugin Repository/url",
                   "https://plugins.qgis.org/plugins/plugins.xml")
        s.setValue("app/plugin_repositories/QGIS Official Plugin Repository/enabled", False)  # no network here
        s.setValue(f"app/plugin_repositories/{NAME}/url", URL)
        s.setValue(f"app/plugin_repositories/{NAME}/enabled", True)
        s.setValue("app/plugin_installer/allowExperimental", True)  # QGIS < 3.34
        try:
            from qgis.core import QgsSettingsTree
            node = QgsSettingsTree.node("plugin-manager")
            if node is not None:
                node.childSetting("allow-experimental").setVariantValue(True)
        except ImportError:
            pass
        import pyplugin_installer
        from pyplugin_installer.installer_data import plugins
        inst = pyplugin_installer.instance()
        inst.fetchAvailablePlugins(reloadMode=True)
        p = plugins.all().get("geoclip_qgis") or {}
        write(listed={k: p.get(k) for k in ("name", "version_available", "status_exp", "zip_repository",
                                            "download_url")})
        QTimer.singleShot(500, select)
        inst.exportRepositoriesToManager()
        inst.exportPluginsToManager()
        iface.pluginManagerInterface().showPluginManager(0)
    except Exception:
        import traceback
        write(error=traceback.format_exc()[-2000:])


def select():
    try:
        win = [w for w in QApplication.topLevelWidgets() if w.isVisible() and type(w).__name__ == "QgsPluginManager"
               or w.objectName() == "QgsPluginManagerBase"]
        if not win:
            QTimer.singleShot(500, select)
            return
        win = win[0]
        screen = QApplication.primaryScreen().availableGeometry()
        win.setGeometry(screen.adjusted(20, 20, -20, -20))
        edit = win.findChild(QLineEdit, "leFilter")
        if edit is not None:
            edit.setText("GeoCLIP")
        view = win.findChild(QListView, "vwPlugins")
        if view is not None and view.model().rowCount() > 0:
            view.setCurrentIndex(view.model().index(0, 0))
            view.clicked.emit(view.model().index(0, 0))
        write(window=win.objectName(), rows=view.model().rowCount() if view is not None else -1)
        QTimer.singleShot(2500, lambda: write(ready=True))
    except Exception:
        import traceback
        write(error=traceback.format_exc()[-2000:])


QTimer.singleShot(1500, begin)
'''


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots" / "issue23-plugin-manager.png"))
    ap.add_argument("--size", default="1400x900")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    for tool in ("Xvfb", "qgis", "import"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run scripts/setup_env.sh (qgis, xvfb, imagemagick)")
    from package_plugin import build, write_repository
    from screenshot_qgis import free_display

    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    status = out.with_suffix(".json")
    status.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="geoclip-repo-shot-"))
    served = work / "repo"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    write_repository([build(served)], served, url)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = work / "config"
    ini = profile / "profiles" / "default" / "QGIS"
    ini.mkdir(parents=True)
    (ini / "QGIS3.ini").write_text("[qgis]\nshowTips322=false\ncheckVersion=false\n")
    (work / "startup.py").write_text(STARTUP)
    display = free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", f"{args.size}x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "PYTHONPATH")}
    env.update(DISPLAY=f":{display}", GEOCLIP_SHOT_STATUS=str(status), GEOCLIP_SHOT_REPO=url + "plugins.xml",
               no_proxy="127.0.0.1,localhost")
    info: dict = {}
    try:
        with open(work / "qgis.log", "w") as log:
            qgis = subprocess.Popen(["qgis", "--profiles-path", str(profile), "--nologo", "--noversioncheck",
                                     "--code", str(work / "startup.py")], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            deadline = time.monotonic() + args.timeout
            while qgis.poll() is None and time.monotonic() < deadline:
                time.sleep(1.0)
                try:
                    info = json.loads(status.read_text()) if status.exists() else {}
                except ValueError:
                    continue
                if info.get("ready") or info.get("error"):
                    break
            if info.get("ready"):
                subprocess.run(["import", "-display", f":{display}", "-window", "root", str(out)], check=False)
            if qgis.poll() is None:
                qgis.kill()
                qgis.wait()
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
        server.shutdown()
    info["screenshot"] = str(out) if out.exists() else None
    status.write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))
    return 0 if info.get("screenshot") else 1


if __name__ == "__main__":
    sys.exit(main())
