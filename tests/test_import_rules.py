"""The house rules on imports, as folder rules: two wings and a hinge.

- `shared/` is the hinge: standard library only, imported by both wings, importing nothing of ours outside itself.
- `core/` is the engine wing (torch side): never qgis/Qt, never the QGIS wing.
- Everything else is the QGIS wing: of the engine it imports `shared/` only, and torch & co. never.
- No arrow runs back up: client < layers < gui / processing (gui and processing never import each other); only the
  plugin's entry (`plugin.py`, QGIS's classFactory) sees them all. No import circles anywhere.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "geoclip_qgis"
QT_OR_QGIS = ("qgis", "PyQt5", "PyQt6", "PyQt", "sip")
HEAVY = ("torch", "transformers", "safetensors", "huggingface_hub", "rasterio", "pyogrio", "fiona", "numpy", "PIL",
         "pandas")
# A room may import the rooms listed for it (besides itself and shared/); the top-level modules are the hinge's
# plumbing (metadata, Qt compatibility, translation) except plugin.py, which is QGIS's entry.
ROOMS = {
    "shared": set(),
    "core": {"top"},
    "client": {"top"},
    "layers": {"top", "client"},
    "gui": {"top", "client", "layers"},
    "processing": {"top", "client", "layers"},
    "top": {"client"},
}


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


def _absolute(path: Path, name: str, level: int) -> str:
    """Resolve `from ..x import y` in `path` to an absolute module name."""
    if level == 0:
        return name
    package = list(path.relative_to(PLUGIN.parent).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = list(path.relative_to(PLUGIN.parent).parts[:-1])
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _room(module_or_path) -> str:
    if isinstance(module_or_path, Path):
        p = module_or_path
        parts = (p.relative_to(PLUGIN) if p.is_absolute() else p).parts
    else:
        parts = module_or_path.split(".")[1:]
    if len(parts) <= 1:
        return "top"
    return parts[0]


def _ours(path: Path):
    """(line, absolute module, room) of each import of ours in `path`; a name that is a class, not a module, maps
    to its module."""
    return _resolve_ours(path, _imports(path))


def _resolve_ours(path: Path, imports):
    for line, name, level in imports:
        module = _absolute(path, name, level)
        if module.split(".")[0] != "geoclip_qgis" or module == "geoclip_qgis":
            continue
        while module.count(".") > 0 and not _module_file(module):
            module = module.rsplit(".", 1)[0]
        if module != "geoclip_qgis":
            yield line, module, _room(module)


def _module_file(module: str):
    base = PLUGIN.parent / module.replace(".", "/")
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def _qgis_side_files():
    return [p for p in sorted(PLUGIN.rglob("*.py")) if p.relative_to(PLUGIN).parts[0] not in ("core", "shared")]


def test_core_never_imports_qgis_or_qt():
    bad = []
    for path in sorted((PLUGIN / "core").rglob("*.py")):
        for line, name, level in _imports(path):
            if level == 0 and name.split(".")[0] in QT_OR_QGIS:
                bad.append(f"{path.relative_to(PLUGIN)}:{line} imports {name}")
    assert not bad, "core/ must stay QGIS-free:\n" + "\n".join(bad)


def test_shared_is_stdlib_only_and_imports_nothing_of_ours_outside_it():
    files = sorted((PLUGIN / "shared").rglob("*.py"))
    assert len(files) >= 5, files
    bad = []
    stdlib = getattr(sys, "stdlib_module_names", None)
    for path in files:
        for line, name, level in _imports(path):
            module = _absolute(path, name, level)
            top = module.split(".")[0]
            if top == "geoclip_qgis":
                if not (module.startswith("geoclip_qgis.shared") or module == "geoclip_qgis.__version__"):
                    bad.append(f"{path.name}:{line} imports {module}")
            elif top in HEAVY + QT_OR_QGIS or (stdlib is not None and top not in stdlib and top != "__future__"):
                bad.append(f"{path.name}:{line} imports {module} (not the standard library)")
    assert not bad, "shared/ is the hinge, standard library only:\n" + "\n".join(bad)


def test_qgis_side_never_imports_torch_or_the_engine():
    """Outside core/ and shared/, of the engine only shared/ may be imported; torch & co. never."""
    bad = []
    for path in _qgis_side_files():
        rel = path.relative_to(PLUGIN)
        for line, name, level in _imports(path):
            module = _absolute(path, name, level)
            if module.split(".")[0] in HEAVY:
                bad.append(f"{rel}:{line} imports {module}")
            if module.startswith("geoclip_qgis.core"):
                bad.append(f"{rel}:{line} imports {module} (only geoclip_qgis.shared is the engine's hinge)")
    assert not bad, "the QGIS side talks to the engine through the worker only:\n" + "\n".join(bad)


def test_no_arrow_runs_back_up():
    """Each room imports only the rooms below it (ROOMS); plugin.py, QGIS's entry, is the one exception."""
    bad = []
    for path in sorted(PLUGIN.rglob("*.py")):
        rel = path.relative_to(PLUGIN)
        if rel.as_posix() in ("plugin.py", "__init__.py"):
            continue
        here = _room(rel)
        for line, module, room in _ours(path):
            if room not in (here, "shared") and room not in ROOMS[here]:
                bad.append(f"{rel}:{line} ({here}) imports {module} ({room})")
    assert not bad, "an import runs back up:\n" + "\n".join(bad)


def test_no_import_circles():
    """Module-level imports only (an import inside a function runs late and cannot deadlock the start-up)."""
    graph = defaultdict(set)
    for path in sorted(PLUGIN.rglob("*.py")):
        me = ".".join(path.relative_to(PLUGIN.parent).with_suffix("").parts)
        if path.name == "__init__.py":
            me = me[: -len(".__init__")]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for _line, module, _r in _ours_node(path, node):
                    if module != me:
                        graph[me].add(module)
    cycles = []
    state = {}

    def visit(n, stack):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m):] + [m]) if m in stack else f"{n} -> {m}")
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    # a package's __init__ importing its own submodule is not a circle we care about
    cycles = [c for c in cycles if c.count("->") > 1 or not any(x.endswith("__init__") for x in c.split(" -> "))]
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def _ours_node(path: Path, node):
    names = []
    if isinstance(node, ast.Import):
        names = [(node.lineno, a.name, 0) for a in node.names]
    else:
        names = [(node.lineno, ".".join(filter(None, [node.module, a.name])), node.level) for a in node.names]
    return _resolve_ours(path, names)


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
             if m.split(".")[0] in HEAVY or m.startswith("geoclip_qgis.core.model.engine"))
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
