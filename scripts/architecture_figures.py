"""The layout's figures for docs/architecture.md, from a checkout or from any commit (`--rev`): modules per folder,
import circles, imports that run back up (against the folder rule of tests/test_import_rules.py), largest files.

    .venv/bin/python scripts/architecture_figures.py            # the working tree
    .venv/bin/python scripts/architecture_figures.py --rev 36cb90e   # before the layout (issue 21)

Every import counts, also one inside a function (it still ties the two modules together)."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[1]
# who may import whom, by top folder ('top' = the package's own modules; plugin.py is QGIS's entry and sees all)
ROOMS = {"shared": set(), "core": {"top"}, "client": {"top"}, "layers": {"top", "client"},
         "gui": {"top", "client", "layers"}, "processing": {"top", "client", "layers"}, "top": {"client"}}


def sources(rev: str) -> Dict[str, str]:
    """path -> text of every geoclip_qgis/*.py at `rev` ('' = the working tree)."""
    if not rev:
        return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in (ROOT / "geoclip_qgis").rglob("*.py")}
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "-r", "--name-only", rev, "geoclip_qgis"],
                           capture_output=True, text=True, check=True).stdout.split()
    return {n: subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{n}"], capture_output=True, text=True,
                              check=True).stdout for n in names if n.endswith(".py")}


def module_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def graph(files: Dict[str, str]) -> Dict[str, Set[str]]:
    mods = {module_name(p): p for p in files}
    edges: Dict[str, Set[str]] = defaultdict(set)
    for path, text in files.items():
        me = module_name(path)
        package = me.split(".") if path.endswith("__init__.py") else me.split(".")[:-1]
        for node in ast.walk(ast.parse(text)):
            names: List[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - (node.level - 1)] if node.level else []
                stem = ".".join(base + ([node.module] if node.module else []))
                names = [f"{stem}.{a.name}" for a in node.names] + [stem]
            for name in names:
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != me and name != "geoclip_qgis":
                    edges[me].add(name)
    return edges


def room(module: str) -> str:
    parts = module.split(".")[1:]
    if len(parts) == 1 and parts[0] in ROOMS:  # the package of a room itself (`from . import x` inside it)
        return parts[0]
    return "top" if len(parts) <= 1 else parts[0]


def circles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rev", default="", help="a commit (default: the working tree)")
    args = ap.parse_args()
    files = sources(args.rev)
    edges = graph(files)
    folders = Counter(str(Path(p).parent.relative_to("geoclip_qgis")) for p in files if not p.endswith("__init__.py"))
    up = sorted(f"{a} -> {b}" for a, bs in edges.items() for b in bs
                if not a.endswith(".plugin") and room(b) not in (room(a), "shared") and room(b) not in ROOMS.get(
                    room(a), set()))
    sizes = sorted(((len(t.splitlines()), p) for p, t in files.items()), reverse=True)
    print(f"# {args.rev or 'working tree'}: {sum(folders.values())} modules, {sum(s for s, _ in sizes)} lines")
    print("modules per folder: " + ", ".join(f"{k}/ {v}" for k, v in sorted(folders.items())))
    cyc = circles(edges)
    print(f"import circles: {len(cyc)}" + "".join(f"\n  {' <-> '.join(c)}" for c in cyc))
    print(f"imports that run back up: {len(up)}" + "".join(f"\n  {u}" for u in up))
    print("largest files: " + ", ".join(f"{p.removeprefix('geoclip_qgis/')} {n}" for n, p in sizes[:5]))
    print(f"files over 500 lines: {sum(n > 500 for n, _ in sizes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
