#!/usr/bin/env python3
"""Does every step of the engine install resolve, for every Python and OS the engine claims? Asks pip itself, for
another Python and platform, without installing anything.

    python scripts/engine_resolution.py [--python 3.9 ...] [--os linux ...] [--json out.json]

Each cell runs the install's pip steps as `pip install --dry-run --ignore-installed --only-binary=:all:
--python-version X --platform P --report`, with the environment markers of that target (pip would otherwise judge
`; python_version < "3.13"` and `; platform_system == "Linux"` by the Python running it):
  pip           `pip install -U pip` in the new venv
  torch         the torch line of engine-requirements.txt, alone (--no-deps: the installer takes torch from
                PyTorch's CPU/CUDA index on Linux and Windows, whose wheels carry no CUDA packages; PyPI's does)
  requirements  engine-requirements.txt without torch, with all dependencies
  weights       the geoclip==1.3.0 wheel, as the installer fetches it: --python-version 3.11 whatever the engine's
                Python, because only its data files are unpacked (geoclip_qgis/resources/engine-requirements.txt)
The answer per cell is "ok" with what would be installed, or pip's reason. Needs PyPI (or the index pip is set up
for); wheels are downloaded into pip's cache where the index serves no separate metadata (PEP 658).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "geoclip_qgis" / "resources" / "engine-requirements.txt"
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
# (pip --platform tags, marker environment) per OS: x86_64 Linux (manylinux) and Windows, Apple-silicon macOS
# (PyTorch publishes no Intel-mac wheels since 2.3). pip widens macosx_14_0 to older macOS versions itself.
OSES: Dict[str, Tuple[List[str], Dict[str, str]]] = {
    "linux": (["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
               "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"],
              {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}),
    "windows": (["win_amd64"],
                {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"}),
    "macos": (["macosx_14_0_arm64"],
              {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"}),
}
WEIGHTS_REQUIREMENT = "geoclip==1.3.0"
WEIGHTS_PYTHON = "3.11"  # geoclip 1.3.0 declares Requires-Python >=3.11; only its data files are used

# pip run with the target's environment markers: pip's vendored `packaging` judges markers by default_environment().
PIP_AS_TARGET = r"""
import json, os, sys
import pip._vendor.packaging.markers as markers
env = json.loads(os.environ["GEOCLIP_TARGET_MARKERS"])
real = markers.default_environment
markers.default_environment = lambda: {**real(), **env}
from pip._internal.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def requirement_lines() -> List[str]:
    return [ln.split("#")[0].strip() for ln in REQUIREMENTS.read_text(encoding="utf-8").splitlines()
            if ln.split("#")[0].strip()]


def torch_line() -> str:
    return next(ln for ln in requirement_lines() if re.match(r"torch\b", ln))


def markers_for(os_name: str, python: str) -> Dict[str, str]:
    env = dict(OSES[os_name][1])
    env.update(python_version=python, python_full_version=f"{python}.0", implementation_name="cpython",
               platform_python_implementation="CPython", implementation_version=f"{python}.0")
    return env


def steps(os_name: str, python: str, folder: Path) -> List[Tuple[str, str, List[str]]]:
    """(step, target Python, pip arguments) for one cell."""
    rest = folder / "requirements-without-torch.txt"
    rest.write_text("\n".join(ln for ln in requirement_lines() if not re.match(r"torch\b", ln)) + "\n")
    return [("pip", python, ["pip"]),
            ("torch", python, ["--no-deps", torch_line()]),
            ("requirements", python, ["-r", str(rest)]),
            ("weights", WEIGHTS_PYTHON, ["--no-deps", WEIGHTS_REQUIREMENT])]


def resolve(os_name: str, python: str, args: List[str], cache: Optional[Path]) -> Dict[str, object]:
    """One pip dry run for one target: {"ok": bool, "install": [name==version, ...], "error": last lines}."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-c", PIP_AS_TARGET, "install", "--dry-run", "--ignore-installed", "--quiet",
               "--only-binary=:all:", "--python-version", python, "--implementation", "cp", "--report", str(report)]
        for tag in OSES[os_name][0]:
            cmd += ["--platform", tag]
        cmd += ["--cache-dir", str(cache)] if cache else ["--no-cache-dir"]
        env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV")}
        env.update(GEOCLIP_TARGET_MARKERS=json.dumps(markers_for(os_name, python)), PIP_CONSTRAINT="",
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        proc = subprocess.run(cmd + args, capture_output=True, text=True, env=env, timeout=1800)
        if proc.returncode != 0 or not report.exists():
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines()
                     if ln.strip() and "is ignored: it is neither a file nor a directory" not in ln]
            return {"ok": False, "install": [], "error": "\n".join(lines[-6:])}
        data = json.loads(report.read_text())
    return {"ok": True, "error": "",
            "install": sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in data["install"])}


def matrix(pythons=PYTHONS, oses=tuple(OSES), cache: Optional[Path] = None, jobs: int = 3) -> Dict[str, dict]:
    """{"linux/3.9": {"torch": {...}, ...}, ...} for every cell."""
    cells = [(o, p) for o in oses for p in pythons]
    with tempfile.TemporaryDirectory() as tmp:
        work = [(o, p, step, py, args) for o, p in cells for step, py, args in steps(o, p, Path(tmp))]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            answers = list(pool.map(lambda w: resolve(w[0], w[3], w[4], cache), work))
    out: Dict[str, dict] = {f"{o}/{p}": {} for o, p in cells}
    for (o, p, step, _py, _args), answer in zip(work, answers):
        out[f"{o}/{p}"][step] = answer
    return out


def version_of(answer: dict, name: str) -> str:
    return next((s.split("==")[1] for s in answer["install"] if s.split("==")[0].lower() == name), "?")


def table(result: Dict[str, dict]) -> str:
    """The matrix as text: one row per OS, one column per Python; a cell is "ok torch X" or which step failed."""
    oses = sorted({k.split("/")[0] for k in result}, key=list(OSES).index)
    pythons = sorted({k.split("/")[1] for k in result}, key=lambda v: tuple(map(int, v.split("."))))
    rows = [["", *pythons]]
    for o in oses:
        row = [o]
        for p in pythons:
            cell = result[f"{o}/{p}"]
            failed = [s for s, a in cell.items() if not a["ok"]]
            row.append(f"FAIL {','.join(failed)}" if failed else f"ok torch {version_of(cell['torch'], 'torch')}, "
                       f"numpy {version_of(cell['requirements'], 'numpy')}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", choices=PYTHONS)
    ap.add_argument("--os", action="append", choices=tuple(OSES))
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "pip-resolution",
                    help="pip cache for the wheels pip must download to read their metadata")
    ap.add_argument("--jobs", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    result = matrix(tuple(a.python or PYTHONS), tuple(a.os or OSES), a.cache, a.jobs)
    print(table(result))
    for key, cell in result.items():
        for step, answer in cell.items():
            if not answer["ok"]:
                print(f"\n{key} {step}:\n{answer['error']}")
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0 if all(a["ok"] for c in result.values() for a in c.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
