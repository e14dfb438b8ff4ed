"""The house rules on imports: the engine never touches qgis/PyQt; the QGIS side never touches torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "geoclip_qgis"
QT_OR_QGIS = ("qgis", "PyQt5", "PyQt6", "PyQt", "sip")
STDLIB_CORE = ("geoclip_qgis.core.protocol", "geoclip_qgis.core.geodesy")  # what the QGIS side may import
HEAVY = ("torch", "transformers", "safetensors", "huggingface_hub", "rasterio", "fiona", "numpy", "PIL", "pandas")


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


def test_qgis_side_modules_load_without_torch():
    """Import every QGIS-side module for real (with QGIS): torch and the engine must stay out of the process."""
    modules = sorted(
        ".".join(p.relative_to(PLUGIN.parent).with_suffix("").parts)
        for p in _qgis_side_files() if p.name != "__init__.py" or p.parent != PLUGIN
    )
    code = (
        "import sys, importlib\n"
        f"mods = {modules!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy', 'geoclip_qgis.core.engine') if m in sys.modules]\n"
        "print(len(mods), heavy)\n"
    )
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PLUGIN.parent,
                         env=env, check=True).stdout.strip().splitlines()[-1]
    count, heavy = out.split(" ", 1)
    assert int(count) >= 10 and heavy == "[]", out
