"""QGIS 4 (Qt6/PyQt6) readiness, checked without a QGIS 4 build.

An AST walk over the plugin's QGIS-side modules (everything outside core/) collects each name imported from
qgis.PyQt and every attribute chain hung on one (`Qt.ItemDataRole.UserRole`, `QHeaderView.ResizeMode.Stretch`,
`QFileDialog.getOpenFileNames`). The chains are resolved against PyQt6 itself, installed from PyPI into a side venv
under .cache/ (made once, reused). PyQt6 has only scoped enums, so `Qt.UserRole` does not resolve there. PyQt5-only
API that resolution cannot see (`x.exec_()` on an instance, QVariant types) is flagged by name.

QGIS's own enums get the same treatment against the QGIS bindings installed here (3.22): every chain must resolve,
and an enum member must be reached through its enum (`QgsTask.Flag.CanCancel`, not `QgsTask.CanCancel`). That is the
form QGIS 4 keeps: where an enum moved to `Qgis` (e.g. `QgsProcessing.SourceType` -> `Qgis.ProcessingSourceType`),
its Qt6 bindings alias the old enum and its old member names onto the new one.
"""

from __future__ import annotations

import ast
import enum
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "geoclip_qgis"
PYQT6_VENV = ROOT / ".cache" / "pyqt6-venv"
PYQT6_SPEC = "PyQt6>=6.5"

# API that exists in PyQt5 but not in PyQt6, and that resolving names cannot catch (methods on instances, types
# whose class still exists in PyQt6).
PYQT5_ONLY_ATTRIBUTES = {"exec_": "use exec()", "print_": "use print()"}
PYQT5_ONLY_NAMES = {"QVariant": "use qt_compat.field_type (QMetaType.Type) for field types",
                    "QRegExp": "use QRegularExpression", "QDesktopWidget": "use QScreen"}
QGIS_MODULES = ("qgis.core", "qgis.gui", "qgis.analysis")

RESOLVE_PYQT6 = r"""
import importlib, json, sys
problems = []
for module, chain in json.load(sys.stdin):
    try:
        obj = importlib.import_module("PyQt6." + module)
    except ImportError as exc:
        problems.append([module, chain, f"no module PyQt6.{module} ({exc})"])
        continue
    for depth, name in enumerate(chain):
        if not hasattr(obj, name):
            hint = ""
            if depth:  # an unscoped enum member? name the enum that holds it
                scopes = [k for k, v in vars(obj).items() if isinstance(v, type) and hasattr(v, "__members__")
                          and name in v.__members__]
                if scopes:
                    hint = f" (scoped: {'.'.join(chain[:depth])}.{scopes[0]}.{name})"
            problems.append([module, chain, f"{'.'.join(chain[:depth + 1])} does not exist in PyQt6{hint}"])
            break
        obj = getattr(obj, name)
print(json.dumps(problems))
"""


@dataclass
class QtUses:
    """What one module uses: Qt imports (alternatives grouped), attribute chains, and PyQt5-only spots."""

    imports: List[Tuple[str, str, Optional[int], int]] = field(default_factory=list)  # module, name, group, line
    qt_chains: List[Tuple[str, List[str], int]] = field(default_factory=list)  # module, [name, attr...], line
    qgis_chains: List[Tuple[str, List[str], int]] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)


def _chain(node: ast.Attribute) -> Optional[List[str]]:
    """['Qt', 'ItemDataRole', 'UserRole'] for Qt.ItemDataRole.UserRole; None when the root is not a plain name."""
    parts = []
    cur: ast.AST = node
    while isinstance(cur, ast.Attribute):
        parts.append(cur.attr)
        cur = cur.value
    return [cur.id, *reversed(parts)] if isinstance(cur, ast.Name) else None


def _import_groups(tree: ast.Module) -> Dict[int, int]:
    """id(ImportFrom) -> group for imports that are alternatives (a try/except ImportError block)."""
    groups = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            for part in [*node.body, *[s for h in node.handlers for s in h.body]]:
                if isinstance(part, ast.ImportFrom):
                    groups[id(part)] = node.lineno
    return groups


def scan(source: str, filename: str = "<snippet>") -> QtUses:
    """Collect the Qt and QGIS names a module uses, and flag the PyQt5-only API it uses."""
    tree = ast.parse(source, filename)
    groups = _import_groups(tree)
    uses = QtUses()
    qt_names: Dict[str, str] = {}
    qgis_names: Dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qgis.PyQt"):
            sub = node.module[len("qgis.PyQt"):].lstrip(".")
            for alias in node.names:
                module, name = (sub, alias.name) if sub else (alias.name, "")
                uses.imports.append((module, name, groups.get(id(node)), node.lineno))
                if name:
                    qt_names[alias.asname or name] = module
                if name in PYQT5_ONLY_NAMES:
                    uses.problems.append(f"{filename}:{node.lineno} imports {name}: {PYQT5_ONLY_NAMES[name]}")
        elif isinstance(node, ast.ImportFrom) and node.module in QGIS_MODULES:
            for alias in node.names:
                qgis_names[alias.asname or alias.name] = node.module
    parents = {id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        if node.attr in PYQT5_ONLY_ATTRIBUTES:
            uses.problems.append(f"{filename}:{node.lineno} .{node.attr}: {PYQT5_ONLY_ATTRIBUTES[node.attr]}")
        parent = parents.get(id(node))
        if isinstance(parent, ast.Attribute) and parent.value is node:
            continue  # only whole chains
        chain = _chain(node)
        if chain is None:
            continue
        if chain[0] in qt_names:
            uses.qt_chains.append((qt_names[chain[0]], chain, node.lineno))
        elif chain[0] in qgis_names:
            uses.qgis_chains.append((qgis_names[chain[0]], chain, node.lineno))
    return uses


def plugin_sources() -> List[Path]:
    """The QGIS side of the plugin: core/ never imports Qt (tests/test_import_rules.py)."""
    return sorted(p for p in PLUGIN.rglob("*.py") if "core" not in p.relative_to(PLUGIN).parts)


def resolve_in_pyqt6(python: str, wanted: List[Tuple[str, List[str]]]) -> List[Tuple[str, List[str], str]]:
    proc = subprocess.run([python, "-c", RESOLVE_PYQT6], input=json.dumps(wanted), capture_output=True, text=True,
                          timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [(m, c, why) for m, c, why in json.loads(proc.stdout)]


def qt6_problems(python: str, sources: Dict[str, str]) -> List[str]:
    """Everything in `sources` (name -> code) that would fail under PyQt6."""
    problems: List[str] = []
    wanted: Dict[Tuple[str, Tuple[str, ...]], List[str]] = {}
    alternatives: Dict[Tuple[str, int], List[Tuple[str, str, int]]] = {}
    for name, code in sources.items():
        uses = scan(code, name)
        problems += uses.problems
        for module, imported, group, line in uses.imports:
            key = (module, (imported,) if imported else ())
            if group is None:
                wanted.setdefault(key, []).append(f"{name}:{line}")
            else:
                alternatives.setdefault((name, group), []).append((module, imported, line))
        for module, chain, line in uses.qt_chains:
            wanted.setdefault((module, tuple(chain)), []).append(f"{name}:{line}")
    alt_list = [(m, [i] if i else []) for alts in alternatives.values() for m, i, _ in alts]
    failed = resolve_in_pyqt6(python, [(m, list(c)) for m, c in wanted] + alt_list)
    failed_keys = {(m, tuple(c)) for m, c, _ in failed}
    for module, chain, why in failed:
        where = wanted.get((module, tuple(chain)))
        if where:
            problems.append(f"{', '.join(where)}: {why}")
    for (name, group), alts in alternatives.items():
        if all((m, (i,) if i else ()) in failed_keys for m, i, _ in alts):
            problems.append(f"{name}:{group}: none of the alternative imports {[f'{m}.{i}' for m, i, _ in alts]} "
                            "exists in PyQt6")
    return problems


def qgis_enum_problems(sources: Dict[str, str]) -> List[str]:
    """QGIS chains that do not resolve on the QGIS here, or reach an enum member without naming its enum."""
    import importlib

    problems = []
    for name, code in sources.items():
        for module, chain, line in scan(code, name).qgis_chains:
            obj = importlib.import_module(module)
            for depth, part in enumerate(chain):
                if not hasattr(obj, part):
                    problems.append(f"{name}:{line}: {'.'.join(chain[:depth + 1])} does not exist in QGIS here")
                    break
                obj = getattr(obj, part)
            else:
                is_member = isinstance(obj, enum.Enum) or type(type(obj)).__name__ == "enumtype"
                if is_member and len(chain) == 2:
                    enum_name = type(obj).__name__
                    problems.append(f"{name}:{line}: {'.'.join(chain)} is an unscoped enum member "
                                    f"(scoped: {chain[0]}.{enum_name}.{chain[1]})")
    return problems


@pytest.fixture(scope="session")
def pyqt6_python() -> str:
    """A Python with PyQt6 from PyPI, in .cache/pyqt6-venv: made on the first run (~25 s), reused after."""
    python = PYQT6_VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    check = [str(python), "-c", "import PyQt6.QtCore, PyQt6.QtGui, PyQt6.QtWidgets"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(PYQT6_VENV)], check=True, capture_output=True, timeout=300)
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", PYQT6_SPEC],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, f"could not install {PYQT6_SPEC} from PyPI:\n{pip.stderr[-3000:]}"
    done = subprocess.run(check, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return str(python)


def _plugin() -> Dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in plugin_sources()}


def test_the_scan_sees_the_whole_qt_side():
    uses = [scan(code, name) for name, code in _plugin().items()]
    chains = {".".join(c) for u in uses for _, c, _ in u.qt_chains}
    assert {"Qt.ItemDataRole.UserRole", "QHeaderView.ResizeMode.Interactive"} <= chains
    assert any(i[1] == "QAction" for u in uses for i in u.imports)
    assert len(plugin_sources()) >= 20 and not any("core" in str(p.relative_to(PLUGIN)) for p in plugin_sources())


def test_every_qt_name_the_plugin_uses_exists_in_pyqt6(pyqt6_python):
    problems = qt6_problems(pyqt6_python, _plugin())
    assert not problems, "\n".join(problems)


def test_the_check_catches_pyqt5_only_code(pyqt6_python):
    """The same check on code written the PyQt5 way: every Qt5-ism is reported, the scoped forms are not."""
    bad = ("from qgis.PyQt.QtCore import Qt, QVariant\n"
           "from qgis.PyQt.QtWidgets import QAction, QHeaderView\n"
           "role = Qt.UserRole\n"
           "mode = QHeaderView.ResizeToContents\n"
           "kind = QVariant.String\n"
           "dialog.exec_()\n")
    problems = "\n".join(qt6_problems(pyqt6_python, {"bad.py": bad}))
    assert "Qt.UserRole does not exist in PyQt6 (scoped: Qt.ItemDataRole.UserRole)" in problems, problems
    assert "QHeaderView.ResizeToContents does not exist in PyQt6 (scoped: QHeaderView.ResizeMode" in problems
    assert "QAction does not exist in PyQt6" in problems
    assert "bad.py:1 imports QVariant" in problems and "bad.py:6 .exec_" in problems
    good = ("try:\n    from qgis.PyQt.QtGui import QAction\nexcept ImportError:\n"
            "    from qgis.PyQt.QtWidgets import QAction\n"
            "from qgis.PyQt.QtCore import Qt\nfrom qgis.PyQt.QtWidgets import QHeaderView\n"
            "role, mode = Qt.ItemDataRole.UserRole, QHeaderView.ResizeMode.ResizeToContents\ndialog.exec()\n")
    assert qt6_problems(pyqt6_python, {"good.py": good}) == []


def test_an_unscoped_enum_fails_the_check(pyqt6_python):
    problems = qt6_problems(pyqt6_python, {"snippet.py": "from qgis.PyQt.QtCore import Qt\nx = Qt.UserRole\n"})
    assert problems == ["snippet.py:2: Qt.UserRole does not exist in PyQt6 (scoped: Qt.ItemDataRole.UserRole)"]


def test_qgis_enums_are_scoped_and_exist():
    problems = qgis_enum_problems(_plugin())
    assert not problems, "\n".join(problems)
    caught = qgis_enum_problems({"s.py": "from qgis.core import QgsTask, QgsWkbTypes\n"
                                         "a = QgsTask.CanCancel\nb = QgsWkbTypes.Type.Point\nc = QgsTask.Nope\n"})
    assert caught == ["s.py:2: QgsTask.CanCancel is an unscoped enum member (scoped: QgsTask.Flag.CanCancel)",
                      "s.py:4: QgsTask.Nope does not exist in QGIS here"], caught


def test_qgis_field_types_without_qvariant():
    """layers/results.py names QMetaType types; on QGIS 3.22 QgsField gets the QVariant.Type with the same number."""
    from geoclip_qgis.layers.results import failed_fields, prediction_fields

    kinds = {f.name(): int(f.type()) for f in prediction_fields()}
    assert (kinds["photo"], kinds["rank"], kinds["probability"]) == (10, 2, 6)  # QString, Int, Double
    assert [int(f.type()) for f in failed_fields()] == [10, 10, 10]


def test_metadata_declares_qt6_and_qgis4():
    import configparser

    meta = configparser.ConfigParser(interpolation=None)
    meta.read(PLUGIN / "metadata.txt", encoding="utf-8")
    assert meta.get("general", "qgisMaximumVersion") == "4.99"  # what QGIS 4 and plugins.qgis.org read
    assert not meta.has_option("general", "supportsQt6"), "deprecated: QGIS 4 no longer reads it"
