#!/usr/bin/env python3
"""Update the plugin's translations: collect every string passed to tr() / tr_noop() on the QGIS side, merge them
into geoclip_qgis/i18n/geoclip_qgis_<lang>.ts (translations already made are kept, strings no longer used are marked
obsolete), and compile the .qm files with lrelease when it is installed (Debian: qttools5-dev-tools).

    python scripts/update_translations.py [--lang fr] [--no-compile]

Our tr() translates in one context, "GeoCLIP", whichever module calls it, so pylupdate's per-class contexts do not
apply; this reads the code with ast instead.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "geoclip_qgis"
I18N = PLUGIN / "i18n"
CONTEXT = "GeoCLIP"  # geoclip_qgis.i18n.CONTEXT (not imported: that module needs QGIS)
MARKERS = ("tr", "tr_noop", "plural")  # plural(n, one, many): its two forms


def sources() -> List[Path]:
    return sorted(p for p in PLUGIN.rglob("*.py") if "core" not in p.relative_to(PLUGIN).parts)


def marked_calls(tree: ast.AST):
    """Calls to tr(...), self.tr(...) and tr_noop(...)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in MARKERS:
                yield node


def extract() -> Dict[str, List[str]]:
    """Each translatable string -> where it is used (file:line), in order of first use."""
    found: Dict[str, List[str]] = {}
    for path in sources():
        for call in marked_calls(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            for arg in call.args[1:3] if name == "plural" else call.args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
                    found.setdefault(arg.value, []).append(f"{path.relative_to(ROOT).as_posix()}:{call.lineno}")
    return found


def merge(ts: Path, language: str, strings: Dict[str, List[str]]) -> ET.ElementTree:
    """The .ts for `language` with exactly `strings` current; old translations are kept."""
    old: Dict[str, ET.Element] = {}
    if ts.is_file():
        for message in ET.parse(ts).getroot().iter("message"):
            old[message.findtext("source") or ""] = message.find("translation")
    root = ET.Element("TS", version="2.1", language=language)
    context = ET.SubElement(root, "context")
    ET.SubElement(context, "name").text = CONTEXT
    for source, places in strings.items():
        message = ET.SubElement(context, "message")
        for file in dict.fromkeys(place.rsplit(":", 1)[0] for place in places):  # no line: edits would churn it
            ET.SubElement(message, "location", filename=f"../../{file}")
        ET.SubElement(message, "source").text = source
        translation = ET.SubElement(message, "translation")
        previous = old.pop(source, None)
        if previous is not None and (previous.text or "").strip():
            translation.text = previous.text
            if previous.get("type") == "unfinished":
                translation.set("type", "unfinished")
        else:
            translation.set("type", "unfinished")
    for source, previous in old.items():  # kept for translators, never compiled
        if previous is not None and (previous.text or "").strip():
            message = ET.SubElement(context, "message")
            ET.SubElement(message, "source").text = source
            ET.SubElement(message, "translation", type="obsolete").text = previous.text
    tree = ET.ElementTree(root)
    ET.indent(tree, space="    ")
    return tree


def write_ts(tree: ET.ElementTree, ts: Path) -> None:
    body = ET.tostring(tree.getroot(), encoding="unicode")
    ts.write_text('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n' + body + "\n", encoding="utf-8")


def compile_qm(ts: Path) -> Path:
    lrelease = shutil.which("lrelease") or shutil.which("lrelease-qt5") or shutil.which("lrelease-qt6")
    if not lrelease:
        raise SystemExit("lrelease not found: install qttools5-dev-tools (Debian) or Qt's linguist tools")
    qm = ts.with_suffix(".qm")
    subprocess.run([lrelease, "-silent", str(ts), "-qm", str(qm)], check=True)
    return qm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lang", action="append", help="language code(s) to update (default: every .ts there is)")
    ap.add_argument("--no-compile", action="store_true", help="update the .ts files only")
    args = ap.parse_args()
    I18N.mkdir(exist_ok=True)
    languages = args.lang or sorted(p.stem.rsplit("_", 1)[1] for p in I18N.glob("geoclip_qgis_*.ts"))
    strings = extract()
    for lang in languages:
        ts = I18N / f"geoclip_qgis_{lang}.ts"
        write_ts(merge(ts, lang, strings), ts)
        done = sum(1 for m in ET.parse(ts).getroot().iter("message")
                   if m.find("translation").get("type") is None)
        print(f"{ts.relative_to(ROOT)}: {len(strings)} strings, {done} translated")
        if not args.no_compile:
            print(compile_qm(ts).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
