"""The plugin repository (`make repo`: dist/plugins.xml next to the zip) works with QGIS's own Plugin Manager code.

A loopback HTTP server (127.0.0.1 only) serves the repository; a fresh QGIS profile gets it the way the Plugin
Manager's settings dialog stores one (app/plugin_repositories/<name>/url, enabled); then QGIS's `pyplugin_installer`
(the code behind Plugins › Manage and Install Plugins) fetches it, lists GeoCLIP, installs, loads, upgrades (the
user's settings survive) and uninstalls it. The older version is the same tree built with an older version number
(package_plugin.build(version=...)): what QGIS compares and replaces is the zip and its metadata.txt.
"""

from __future__ import annotations

import configparser
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import pytest

from geoclip_qgis.processing.provider import ALGORITHMS  # the count the installed plugin must show

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import package_plugin  # noqa: E402

OLD_VERSION = "0.1.9"
REPO_NAME = "GeoCLIP test repository"

# Runs in a fresh QGIS (a subprocess: QGIS's installer keeps module-level state, and `iface` must exist before
# pyplugin_installer is imported). argv: profile root, repository URL, the repository folder on disk.
DRIVER = r'''
import json, os, shutil, sys, time
from unittest.mock import MagicMock
from pytest_qgis.mock_qgis_classes import MockMessageBar
from pytest_qgis.qgis_interface import QgisInterface
from qgis.core import QgsApplication, QgsSettings
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtWidgets import QMainWindow, QToolBar

app = QgsApplication([], True)
app.initQgis()
import qgis.utils

REPO_URL, REPO_DIR, NEW_XML, REPO_NAME = sys.argv[1:5]
out = {"settings_dir": QgsApplication.qgisSettingsDirPath()}


class Iface(QgisInterface):
    """pytest-qgis's stub iface, plus what QGIS's installer and the plugin's unload use: the Plugin Manager
    interface (its messages recorded) and a plugin menu that really forgets removed actions."""

    def __init__(self, *a):
        super().__init__(*a)
        self.menu = []
        self.manager = MagicMock(name="pluginManagerInterface")

    def pluginManagerInterface(self):  # noqa: N802
        return self.manager

    def addPluginToMenu(self, name, action):  # noqa: N802
        self.menu.append((name, action.text()))

    def removePluginMenu(self, name, action):  # noqa: N802
        self.menu = [m for m in self.menu if m != (name, action.text())]


window = QMainWindow()
iface = Iface(QgsMapCanvas(window), MockMessageBar(), window)
qgis.utils.iface = iface
plugins_dir = os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "plugins")
os.makedirs(plugins_dir, exist_ok=True)
qgis.utils.home_plugin_path = qgis.utils.HOME_PLUGIN_PATH = plugins_dir  # what QGIS's Python start-up sets
qgis.utils.plugin_paths[:] = [plugins_dir]
sys.path.insert(0, plugins_dir)

# QGIS >= 3.34 keeps the Plugin Manager's own settings in a settings-tree node that the QGIS application (not the
# library) creates; the installer reads it. Created here as the app does (QGIS's own installer tests do the same).
try:
    from qgis.core import (QgsSettingsEntryBool, QgsSettingsEntryString, QgsSettingsEntryStringList,
                           QgsSettingsEntryVariant, QgsSettingsTree)
except ImportError:  # QGIS 3.22: plain QgsSettings keys
    QgsSettingsTree = None
manager_settings = []
if QgsSettingsTree is not None and QgsSettingsTree.node("plugin-manager") is None:
    node = QgsSettingsTree.treeRoot().createChildNode("plugin-manager")
    manager_settings = [node] + [cls(name, node, default) for name, cls, default in (
        ("automatically-check-for-updates", QgsSettingsEntryBool, True),
        ("allow-experimental", QgsSettingsEntryBool, False), ("allow-deprecated", QgsSettingsEntryBool, False),
        ("check-on-start-last-date", QgsSettingsEntryVariant, None), ("seen-plugins", QgsSettingsEntryStringList, []),
        ("last-zip-directory", QgsSettingsEntryString, ""))]

# The repository as the Plugin Manager's "Add repository" dialog stores it; the official one off (no network here);
# experimental plugins shown (Settings tab: "Show also experimental plugins"), as GeoCLIP 0.x is experimental.
s = QgsSettings()
s.setValue("app/plugin_repositories/QGIS Official Plugin Repository/url", "https://plugins.qgis.org/plugins/plugins.xml")
s.setValue("app/plugin_repositories/QGIS Official Plugin Repository/enabled", False)
s.setValue(f"app/plugin_repositories/{REPO_NAME}/url", REPO_URL)
s.setValue(f"app/plugin_repositories/{REPO_NAME}/authcfg", "")
s.setValue(f"app/plugin_repositories/{REPO_NAME}/enabled", True)
s.setValue("app/plugin_installer/allowExperimental", True)      # QGIS < 3.34
if QgsSettingsTree is not None:                                    # QGIS >= 3.34
    QgsSettingsTree.node("plugin-manager").childSetting("allow-experimental").setVariantValue(True)
    QgsSettingsTree.node("plugin-manager").childSetting("automatically-check-for-updates").setVariantValue(False)
s.setValue("app/plugin_installer/checkOnStart", False)
s.sync()

sys.path.append(os.path.join(QgsApplication.pkgDataPath(), "python"))  # where QGIS keeps pyplugin_installer
import pyplugin_installer
from pyplugin_installer.installer_data import plugins, repositories

installer = pyplugin_installer.instance()


def listed():
    installer.fetchAvailablePlugins(reloadMode=True)
    repo = repositories.all()[REPO_NAME]
    p = dict(plugins.all().get("geoclip_qgis") or {})
    return {"repo_state": repo["state"], "repo_error": repo["error"],
            "plugin": {k: v for k, v in p.items() if isinstance(v, (str, bool, int, type(None)))}}


def settle():
    for _ in range(3):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()


def loaded_state():
    import geoclip_qgis
    prov = QgsApplication.processingRegistry().providerById("geoclip")
    settle()
    return {"active": "geoclip_qgis" in qgis.utils.active_plugins, "version": geoclip_qgis.__version__,
            "from": geoclip_qgis.__file__, "algorithms": len(prov.algorithms()) if prov else 0,
            "toolbars": [t.windowTitle() for t in window.findChildren(QToolBar)], "menu": list(iface.menu),
            "enabled_setting": s.value("PythonPlugins/geoclip_qgis", False, type=bool),
            "messages": [str(c.args[0]) for c in iface.manager.pushMessage.call_args_list]}


# 1. The repository lists the older version; install it.
out["old_listing"] = listed()
installer.installPlugin("geoclip_qgis", quiet=True, stable=False)
out["old_installed"] = loaded_state()
s.setValue("geoclip/device", "cpu")                 # the user's own settings, which an upgrade must keep
s.setValue("geoclip/top_k", 7)

# 2. The repository now serves the current version: QGIS offers it as an upgrade and installs it over the old one.
shutil.copyfile(NEW_XML, os.path.join(REPO_DIR, "plugins.xml"))
out["new_listing"] = listed()
installer.installPlugin("geoclip_qgis", quiet=True, stable=False)
out["upgraded"] = loaded_state()
out["settings_after_upgrade"] = {"device": s.value("geoclip/device"), "top_k": str(s.value("geoclip/top_k"))}
out["status_after_upgrade"] = plugins.all()["geoclip_qgis"]["status_exp"]

# 3. A worker started by the installed plugin (the engine client it ships), then uninstall.
client_mod = [m for n, m in sys.modules.items() if n.startswith("geoclip_qgis.") and n.endswith(".engine_client")
              or n == "geoclip_qgis.engine_client"][0]
client = client_mod.shared_client()
client.start()
worker = client.proc
time.sleep(1.0)
out["worker_started"] = worker.poll() is None
installer.uninstallPlugin("geoclip_qgis", quiet=True)
settle()
try:
    worker.wait(timeout=20)
    out["worker_gone"] = True
except Exception:
    out["worker_gone"] = False
    worker.kill()
out["after_uninstall"] = {
    "folder_exists": os.path.exists(os.path.join(plugins_dir, "geoclip_qgis")),
    "active": "geoclip_qgis" in qgis.utils.active_plugins,
    "provider": QgsApplication.processingRegistry().providerById("geoclip") is not None,
    "toolbars": [t.windowTitle() for t in window.findChildren(QToolBar)],
    "menu": list(iface.menu),
    "modules": sorted(n for n in sys.modules if n == "geoclip_qgis" or n.startswith("geoclip_qgis.")),
    "enabled_setting_left": s.contains("PythonPlugins/geoclip_qgis"),
    "listed_status": (plugins.all().get("geoclip_qgis") or {}).get("status_exp"),
}
print("RESULT " + json.dumps(out, default=str))
sys.stdout.flush()
os._exit(0)  # QGIS's exit can crash after a plugin unload in a stub iface; the result is out
'''


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output to the failures
        pass


@pytest.fixture()
def repository(tmp_path) -> Iterator[dict]:
    """The repository folder served on 127.0.0.1: first the older version's plugins.xml (and both zips), plus the
    current version's plugins.xml aside, to be put in place for the upgrade."""
    served = tmp_path / "repo"
    served.mkdir()
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    old_zip = package_plugin.build(served, version=OLD_VERSION)
    new_zip = package_plugin.build(served)
    package_plugin.write_repository([new_zip], served, url)
    new_xml = tmp_path / "plugins-new.xml"
    (served / "plugins.xml").rename(new_xml)
    package_plugin.write_repository([old_zip], served, url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": url + "plugins.xml", "dir": served, "new_xml": new_xml, "new_zip": new_zip}
    finally:
        server.shutdown()
        server.server_close()


def _metadata() -> configparser.SectionProxy:
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(ROOT / "geoclip_qgis" / "metadata.txt", encoding="utf-8")
    return meta["general"]


def test_plugins_xml_describes_the_zip(tmp_path):
    """`make repo`'s layout: plugins.xml next to geoclip_qgis.<version>.zip, every field from metadata.txt."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "package_plugin.py"), "--out", str(tmp_path),
                           "--repo-url", "https://example.org/geoclip"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    meta = _metadata()
    version = meta["version"]
    assert (tmp_path / f"geoclip_qgis.{version}.zip").is_file() and (tmp_path / "geoclip_qgis.svg").is_file()
    root = ET.parse(tmp_path / "plugins.xml").getroot()
    (node,) = root.findall("pyqgis_plugin")
    assert root.tag == "plugins"
    assert node.get("name") == meta["name"] and node.get("version") == version and node.get("plugin_id")
    text = {child.tag: (child.text or "") for child in node}
    assert text["version"] == version
    assert text["file_name"] == f"geoclip_qgis.{version}.zip"  # QGIS's folder name: file_name up to its first dot
    assert text["download_url"] == f"https://example.org/geoclip/geoclip_qgis.{version}.zip"
    assert text["qgis_minimum_version"] == meta["qgisMinimumVersion"] == "3.22"
    assert text["qgis_maximum_version"] == meta["qgisMaximumVersion"] == "4.99"
    for tag, key in (("description", "description"), ("author_name", "author"), ("homepage", "homepage"),
                     ("tracker", "tracker"), ("repository", "repository"), ("tags", "tags")):
        assert text[tag] == " ".join(meta[key].split()), tag
    assert text["about"] == " ".join(meta["about"].split())
    assert text["experimental"] == meta["experimental"] and text["deprecated"] == meta["deprecated"]
    assert text["uploaded_by"] and text["create_date"] and text["update_date"] and text["server"] == "False"


def test_qgis_plugin_manager_lists_installs_upgrades_and_uninstalls(repository, tmp_path):
    profile = tmp_path / "qgis-config"
    profile.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and "proxy" not in k.lower()}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile),
               GEOCLIP_ENGINE_PYTHON=sys.executable, no_proxy="127.0.0.1,localhost")
    proc = subprocess.run([sys.executable, "-c", DRIVER, repository["url"], str(repository["dir"]),
                           str(repository["new_xml"]), REPO_NAME],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(line[0][7:])
    version = _metadata()["version"]
    installed_root = str(Path(out["settings_dir"]) / "python" / "plugins" / "geoclip_qgis")

    # Listed from the repository, with the repository's metadata.
    old = out["old_listing"]
    assert old["repo_state"] == 2, old["repo_error"]  # Repositories.STATE_LOADED
    p = old["plugin"]
    assert p["name"] == "GeoCLIP" and p["version_available"] == OLD_VERSION and p["zip_repository"] == REPO_NAME
    assert p["status_exp"] == "not installed" and p["experimental"] is True and not p["installed"]
    assert p["description"] == _metadata()["description"] and p["author_name"] == _metadata()["author"]
    assert p["code_repository"] == _metadata()["repository"] and p["tracker"] == _metadata()["tracker"]
    assert p["download_url"].startswith("http://127.0.0.1:") and p["filename"] == f"geoclip_qgis.{OLD_VERSION}.zip"

    # Installed, loaded and started: provider, toolbar and menu there, the plugin enabled in the profile.
    first = out["old_installed"]
    assert first["active"] and first["version"] == OLD_VERSION and first["from"].startswith(installed_root), first
    assert first["algorithms"] == len(ALGORITHMS) and first["toolbars"] == ["GeoCLIP"] and first["menu"], first
    assert first["enabled_setting"] and not first["messages"], first  # quiet install: messages are errors

    # The upgrade: offered as upgradeable, installed over the old one, reloaded; the user's settings kept.
    assert out["new_listing"]["plugin"]["version_available"] == version
    assert out["new_listing"]["plugin"]["status_exp"] == "upgradeable"
    up = out["upgraded"]
    assert up["active"] and up["version"] == version and up["from"].startswith(installed_root), up
    assert up["algorithms"] == len(ALGORITHMS) and up["toolbars"] == ["GeoCLIP"], \
        "one toolbar: the old one went with the reload"
    assert len(up["menu"]) == len(first["menu"]), up["menu"]
    assert out["status_after_upgrade"] == "installed"
    assert out["settings_after_upgrade"] == {"device": "cpu", "top_k": "7"}

    # Uninstalled: nothing of the plugin is left in QGIS, and its worker process is gone.
    assert out["worker_started"] and out["worker_gone"]
    gone = out["after_uninstall"]
    assert gone == {"folder_exists": False, "active": False, "provider": False, "toolbars": [], "menu": [],
                    "modules": [], "enabled_setting_left": False, "listed_status": "not installed"}, gone
