"""The release zip installs into a fresh QGIS profile, loads (classFactory, initGui, unload), and its provider
runs under qgis_process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from geoclip_qgis.processing.provider import ALGORITHMS  # the count the installed plugin must show

ROOT = Path(__file__).resolve().parents[1]

LOAD_SCRIPT = r"""
import json, sys
from pytest_qgis.mock_qgis_classes import MockMessageBar  # pytest-qgis's stub iface, imported as pytest-qgis does
from pytest_qgis.qgis_interface import QgisInterface
from qgis.core import QgsApplication
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtWidgets import QMainWindow
app = QgsApplication([], True)
app.initQgis()
import qgis.utils
window = QMainWindow()
canvas = QgsMapCanvas(window)
iface = QgisInterface(canvas, MockMessageBar(), window)
qgis.utils.iface = iface
plugins = sys.argv[1]
sys.path.insert(0, plugins)
qgis.utils.plugin_paths = [plugins]
qgis.utils.updateAvailablePlugins()
out = {"available": "geoclip_qgis" in qgis.utils.available_plugins}
out["loaded"] = qgis.utils.loadPlugin("geoclip_qgis")
out["started"] = qgis.utils.startPlugin("geoclip_qgis")
import geoclip_qgis
out["from"] = geoclip_qgis.__file__
prov = QgsApplication.processingRegistry().providerById("geoclip")
out["algorithms"] = sorted(a.id() for a in prov.algorithms()) if prov else []
out["torch_loaded"] = "torch" in sys.modules
out["unloaded"] = qgis.utils.unloadPlugin("geoclip_qgis")
out["provider_after_unload"] = QgsApplication.processingRegistry().providerById("geoclip") is not None
print("RESULT " + json.dumps(out))
app.exitQgis()
"""


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    """A fresh QGIS config folder with the plugin installed from the release zip and enabled."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "package_plugin.py"), "--out", str(dist), "--no-repo"],
                   check=True, capture_output=True)
    zips = list(dist.glob("geoclip_qgis.*.zip"))
    assert len(zips) == 1
    with zipfile.ZipFile(zips[0]) as zf:
        tops = {n.split("/")[0] for n in zf.namelist()}
        assert tops == {"geoclip_qgis"}, "the zip must hold exactly one folder"
        names = zf.namelist()
        assert "geoclip_qgis/metadata.txt" in names and not any("__pycache__" in n for n in names)
        assert zf.read("geoclip_qgis/LICENSE") == (ROOT / "LICENSE").read_bytes()
        assert "geoclip_qgis/i18n/geoclip_qgis_fr.qm" in names and not any(n.endswith(".ts") for n in names)
        root = tmp_path_factory.mktemp("qgis-config")
        plugins = root / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True)
        zf.extractall(plugins)
    ini = root / "profiles" / "default" / "QGIS"
    ini.mkdir(parents=True)
    (ini / "QGIS3.ini").write_text("[PythonPlugins]\ngeoclip_qgis=true\n")
    return root


def _env(profile: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile), GEOCLIP_ENGINE_PYTHON=sys.executable)
    return env


def test_zip_installs_and_loads_in_qgis(profile, tmp_path):
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(plugins)], capture_output=True, text=True,
                          cwd=tmp_path, env=_env(profile), timeout=180)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    out = json.loads(line[0][7:])
    assert out["available"] and out["loaded"] and out["started"] and out["unloaded"], out
    assert out["from"].startswith(str(plugins)), "must be the installed copy, not the checkout"
    assert len(out["algorithms"]) == len(ALGORITHMS) and not out["provider_after_unload"]
    assert not out["torch_loaded"]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def _qgis_process() -> str:
    # Debian's /usr/bin/qgis_process wrapper adds --noversioncheck, which 3.22's binary refuses: call the binary.
    for name in ("qgis_process.bin", "qgis_process"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("qgis_process not found: scripts/setup_env.sh installs QGIS")


def test_qgis_process_runs_an_algorithm(profile, tmp_path, cache_dir):
    out = tmp_path / "like here.tif"
    proc = subprocess.run(
        [_qgis_process(), "run", "geoclip:places_like_here", "--", "POINT=2.35,48.85 [EPSG:4326]",
         "EXTENT=-10,20,40,60 [EPSG:4326]", "RESOLUTION=1", f"OUTPUT={out}"],
        capture_output=True, text=True, cwd=tmp_path, env=_env(profile), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    import rasterio

    with rasterio.open(out) as ds:
        assert (ds.width, ds.height) == (30, 20) and ds.crs.to_epsg() == 4326


def test_one_version_everywhere():
    """metadata.txt holds the version; the package, pyproject (dynamic) and the engine report that one."""
    import configparser

    import geoclip_qgis
    import geoclip_qgis.core

    meta = configparser.ConfigParser(interpolation=None)
    meta.read(ROOT / "geoclip_qgis" / "metadata.txt", encoding="utf-8")
    version = meta.get("general", "version")
    assert geoclip_qgis.__version__ == version
    assert geoclip_qgis.core.__version__ == version, "core/__init__.py should read geoclip_qgis.__version__"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject and 'attr = "geoclip_qgis.__version__"' in pyproject
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_license_is_the_gpl_the_project_declares():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 2, June 1991" in text and len(text) > 15000
    assert "license=GPL-2.0-or-later" in (ROOT / "geoclip_qgis" / "metadata.txt").read_text(encoding="utf-8")


def test_translations_are_extracted_and_compiled(tmp_path):
    """Every tr()/tr_noop() string is in the French .ts, tr() is only given literals (or marked strings), and the
    shipped .qm is compiled from the .ts."""
    import ast
    import xml.etree.ElementTree as ET

    sys.path.insert(0, str(ROOT / "scripts"))
    import update_translations

    strings = update_translations.extract()
    ts = ROOT / "geoclip_qgis" / "i18n" / "geoclip_qgis_fr.ts"
    current = {m.findtext("source") for m in ET.parse(ts).getroot().iter("message")
               if m.find("translation").get("type") != "obsolete"}
    assert current == set(strings), "run scripts/update_translations.py"
    dynamic = []
    for path in update_translations.sources():
        for call in update_translations.marked_calls(ast.parse(path.read_text(encoding="utf-8"))):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            texts = call.args[1:3] if name == "plural" else call.args[:1]  # plural(n, one, many)
            if not all(isinstance(a, ast.Constant) for a in texts):
                dynamic.append(f"{path.name}:{ast.unparse(call)}")
    # tr() of a variable is fine only where the variable holds tr_noop-marked strings.
    assert sorted(dynamic) == ["base.py:tr(GROUPS.get(self._group, ''))", "base.py:tr(d)", "base.py:tr(p)",
                               "base.py:tr(self._display)",
                               "base.py:tr(self._help)", "base.py:tr(text)", "progress_line.py:tr(WORDS[message])",
                               "results_table.py:tr(c)", "results_table.py:tr(name)", "settings_dialog.py:tr(label)",
                               "settings_dialog.py:tr(label)"], dynamic
    qm = ts.with_suffix(".qm")
    assert qm.stat().st_size > 1000 and qm.read_bytes()[:16] == bytes.fromhex("3cb86418caef9c95cd211cbf60a1bddd")
    lrelease = shutil.which("lrelease")
    if lrelease:  # where Qt's tools are installed, the .qm must be what the .ts compiles to
        fresh = tmp_path / "fr.qm"
        subprocess.run([lrelease, "-silent", str(ts), "-qm", str(fresh)], check=True)
        assert fresh.read_bytes() == qm.read_bytes(), "run scripts/update_translations.py"
