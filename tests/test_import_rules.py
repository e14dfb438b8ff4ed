"""The house rules on imports: the engine never touches qgis/PyQt; the QGIS side never touches torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "geoclip_qgis"
QT_OR_QGIS = ("qgis", "PyQt5", "PyQt6", "PyQt", "sip")
# What the QGIS side may import of the engine: the standard-library-only modules.
STDLIB_CORE = ("geoclip_qgis.core.protocol", "geoclip_qgis.core.geodesy", "geoclip_qgis.core.fields")
HEAVY = ("torch", "transformers", "safetensors", "huggingface_hub", "rasterio", "pyogrio", "fiona", "numpy", "PIL",
         "pandas")


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            # `from .core import protocol` imports the module core.protocol: yield module.name for each name.
            for alias in node.names:
                yield node.lineno, ".".join(filter(None, [node.module, alias.name])), node.level


def test_core_never_imports_qgis_or_qt():
    bad = []
    for path in sorted((PLUGIN / "core").rglob("*.py")):
        for line, name, level in _imports(path):
            if level == 0 and name.split(".")[0] in QT_OR_QGIS:
                bad.append(f"{path.relative_to(PLUGIN)}:{line} imports {name}")
    assert not bad, "core/ must stay QGIS-free:\n" + "\n".join(bad)


def _qgis_side_files():
    return [p for p in sorted(PLUGIN.rglob("*.py")) if p.relative_to(PLUGIN).parts[0] != "core"]


def _absolute(path: Path, name: str, level: int) -> str:
    """Resolve `from ..x import y` in `path` to an absolute module name."""
    if level == 0:
        return name
    package = list(path.relative_to(PLUGIN.parent).with_suffix("").parts[:-1])
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def test_qgis_side_never_imports_torch_or_the_engine():
    """Outside core/, only the stdlib-only core modules (protocol, geodesy) may be imported; torch & co. never."""
    bad = []
    for path in _qgis_side_files():
        rel = path.relative_to(PLUGIN)
        for line, name, level in _imports(path):
            module = _absolute(path, name, level)
            if module.split(".")[0] in HEAVY:
                bad.append(f"{rel}:{line} imports {module}")
            allowed = any(module == m or module.startswith(m + ".") for m in STDLIB_CORE)
            if module.startswith("geoclip_qgis.core") and not allowed:
                bad.append(f"{rel}:{line} imports {module} (only {STDLIB_CORE} are allowed)")
    assert not bad, "the QGIS side talks to the engine through the worker only:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", STDLIB_CORE)
def test_core_modules_shared_with_qgis_are_stdlib_only(module):
    path = PLUGIN.parent / (module.replace(".", "/") + ".py")
    for line, name, level in _imports(path):
        assert level == 0 and name.split(".")[0] not in HEAVY + QT_OR_QGIS, f"{path.name}:{line} imports {name}"


def test_importing_the_engine_package_is_light():
    """`import geoclip_qgis.core` must not pull torch in (the worker and CLI start fast, QGIS stays light)."""
    code = "import sys, geoclip_qgis.core, geoclip_qgis.core.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PLUGIN.parent, check=True).stdout.strip()
    assert out == "False"


QGIS_SIDE_PROBE = r"""
import builtins, importlib, json, sys
HEAVY, BASELINE, MODS = json.loads(sys.argv[1])

# QGIS's own modules first: what they load is QGIS's business (3.40's qgis.core imports numpy, 3.22's does not).
for name in BASELINE:
    try:
        importlib.import_module(name)
    except ImportError:  # `from qgis.PyQt.QtCore import Qt` names a class, not a module
        importlib.import_module(name.rsplit(".", 1)[0])
before = set(sys.modules)

# Then the plugin's modules, with every import they make at import time watched (also of modules already loaded).
seen = []
real_import, real_import_module = builtins.__import__, importlib.import_module

def _watch(importer, name):
    if importer.startswith("geoclip_qgis") and name.split(".")[0] in HEAVY:
        seen.append(f"{importer} imports {name}")

def spy_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0:
        _watch((globals or {}).get("__name__", ""), name)
    return real_import(name, globals, locals, fromlist, level)

def spy_import_module(name, package=None):
    _watch(sys._getframe(1).f_globals.get("__name__", ""), name)
    return real_import_module(name, package)

builtins.__import__, importlib.import_module = spy_import, spy_import_module
for m in MODS:
    real_import_module(m)
builtins.__import__, importlib.import_module = real_import, real_import_module
new = sorted(m for m in set(sys.modules) - before
             if m.split(".")[0] in HEAVY or m.startswith("geoclip_qgis.core.engine"))
print(json.dumps({"count": len(MODS), "imports": seen, "loaded": new}))
"""


def test_qgis_side_modules_load_without_torch():
    """Import every QGIS-side module for real (with QGIS): none of them may import torch, numpy & co. or the engine,
    and none of those may be loaded by importing them. What QGIS itself loads (its own modules, imported first as the
    baseline) does not count: 3.40's `qgis.core` imports numpy, 3.22's does not."""
    files = _qgis_side_files()
    modules = sorted(
        ".".join(p.relative_to(PLUGIN.parent).with_suffix("").parts)
        for p in files if p.name != "__init__.py" or p.parent != PLUGIN
    )
    baseline = sorted({name for p in files for _, name, level in _imports(p)
                       if level == 0 and name.split(".")[0] in QT_OR_QGIS + ("processing",)})
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", QGIS_SIDE_PROBE, json.dumps([HEAVY, baseline, modules])],
                          capture_output=True, text=True, cwd=PLUGIN.parent, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["count"] >= 10, out
    assert out["imports"] == [], "QGIS-side modules import engine-only packages:\n" + "\n".join(out["imports"])
    assert out["loaded"] == [], f"importing the QGIS side loaded {out['loaded']}"


def test_the_probe_sees_a_heavy_import(tmp_path):
    """The probe above is not blind: a module that imports numpy under a geoclip_qgis name is caught, even when
    numpy is already loaded (as QGIS 3.40 has it)."""
    pkg = tmp_path / "geoclip_qgis_probe_check"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text("import numpy  # noqa\n")
    code = "import numpy\n" + QGIS_SIDE_PROBE
    proc = subprocess.run([sys.executable, "-c", code, json.dumps([HEAVY, [], ["geoclip_qgis_probe_check.bad"]])],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["imports"] == ["geoclip_qgis_probe_check.bad imports numpy"], out
