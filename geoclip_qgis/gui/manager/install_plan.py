"""What the engine install can promise before it starts: which Pythons it supports, and how the weights arrive.

The supported range is the one `scripts/engine_resolution.py` checks with pip for Linux, Windows and macOS
(tests/test_engine_resolution.py) and `resources/engine-requirements.txt` states; a QGIS whose Python is outside it
is told so before anything is created or downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ...client.engine_client import venv_python
from ...shared import weights_release
from ..settings_dialog import tr

REQUIREMENTS = Path(__file__).resolve().parents[2] / "resources" / "engine-requirements.txt"
TORCH_INDEX = {"cuda": "https://download.pytorch.org/whl/cu126", "cpu": "https://download.pytorch.org/whl/cpu"}

# (lowest, highest) Python the engine installs on: every install step resolves there on Linux, Windows and macOS.
SUPPORTED_PYTHONS: Tuple[Tuple[int, int], Tuple[int, int]] = ((3, 9), (3, 14))


def python_problem(version: Optional[Tuple[int, ...]] = None) -> Optional[str]:
    """Why the engine cannot be installed on this Python (QGIS's own, which the venv is made from), or None."""
    low, high = SUPPORTED_PYTHONS
    here = tuple((version or sys.version_info)[:2])
    if low <= here <= high:
        return None
    shown = ".".join(map(str, here))
    if here < low:
        return tr("QGIS runs Python {}, and the engine needs Python {}.{} to {}.{} (PyTorch and the other packages "
                  "have no release for older Pythons). Install a newer QGIS, or set an engine Python you installed "
                  "yourself in GeoCLIP > Settings.").format(shown, *low, *high)
    return tr("QGIS runs Python {}, newer than the {}.{} to {}.{} the engine is tested with (PyTorch may have no "
              "release for it yet). Set an engine Python {}.{} to {}.{} you installed yourself in GeoCLIP > "
              "Settings.").format(shown, *low, *high, *low, *high)


def weights_steps(py: str, cache_dir: Optional[Path] = None) -> List[Tuple[str, str, List[str]]]:
    """The weights' two steps: pip downloads the geoclip 1.3.0 wheel file (for Python 3.11 whatever the engine's
    Python: nothing is installed), then its data files are unpacked into the cache folder and checked."""
    dest = weights_release.weights_dir(cache_dir)
    wheels = dest.parent / "wheels"
    return [
        (tr("Downloading the GeoCLIP weights (the geoclip 1.3.0 wheel from PyPI, 40 MB)"), py,
         weights_release.pip_download_args(wheels)),
        (tr("Unpacking and checking the GeoCLIP weights"), py,
         ["-m", "geoclip_qgis.shared.weights_release", "unpack", str(wheels), str(dest)]),
    ]


def nvidia_driver() -> Optional[str]:
    """The NVIDIA driver version when nvidia-smi works, else None. It can take seconds (the driver wakes up), so it
    runs in DriverProbe, never on the GUI thread; on Windows it opens no console window."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, errors="replace", timeout=10,
                             creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


class DriverProbe(QgsTask):
    """nvidia_driver() on a QGIS worker thread; `found` carries the answer (a version or None) to the main thread."""

    found = pyqtSignal(object)

    def __init__(self):
        super().__init__(tr("GeoCLIP: looking for an NVIDIA driver"), QgsTask.Flag.CanCancel)
        self.driver: Optional[str] = None

    def run(self) -> bool:
        self.driver = nvidia_driver()
        return True

    def finished(self, ok: bool) -> None:  # main thread
        self.found.emit(self.driver)


def _python_candidates() -> Iterator[Path]:
    """Where QGIS's own Python is. sys.executable is QGIS itself inside QGIS (qgis-bin.exe on Windows, the QGIS
    binary in QGIS.app on macOS) and the interpreter only elsewhere (qgis_process, Linux builds, a venv)."""
    if Path(sys.executable).name.lower().startswith("python"):
        yield Path(sys.executable)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    prefixes = dict.fromkeys(filter(None, (sys.exec_prefix, sys.prefix, getattr(sys, "base_exec_prefix", ""),
                                           getattr(sys, "base_prefix", ""))))
    for prefix in map(Path, prefixes):
        if sys.platform == "win32":  # OSGeo4W and the standalone installer: <root>/apps/Python3xx/python.exe
            yield prefix / "python.exe"
        else:  # QGIS.app: Contents/Frameworks/Python.framework/Versions/3.x/bin or Contents/MacOS/bin; Linux: /usr
            yield from (prefix / "bin" / version, prefix / "bin" / "python3")
    if sys.platform != "win32":  # never a Windows PATH python: the Store's python.exe stub opens the Store
        found = shutil.which(version) or shutil.which("python3")
        if found:
            yield Path(found)


def base_python() -> str:
    """The Python to create the engine's venv from: QGIS's own, found from sys.prefix/sys.exec_prefix."""
    for candidate in _python_candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"no Python found to create the engine environment (looked in {sys.prefix})")


def torch_requirement() -> str:
    """The torch line of the engine requirements: one definition of the versions the engine supports."""
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        spec = line.split("#")[0].strip()
        if spec.split(";")[0].strip().startswith("torch") and spec[len("torch"):][:1] in ("", "=", "<", ">", "~", "!"):
            return spec
    return "torch"


def torch_build(system: str, driver: Optional[str]) -> Tuple[str, Optional[str]]:
    """(label, pip index URL or None for PyPI) for the torch build that suits this machine. macOS: PyPI's wheel,
    which has the Apple GPU (MPS) backend; Linux and Windows: the CUDA build when nvidia-smi shows a driver, else
    the CPU build (Linux's PyPI wheel would pull CUDA libraries no one uses)."""
    if system == "darwin":
        return tr("Apple GPU (MPS) / CPU"), None
    if driver:
        return "CUDA", TORCH_INDEX["cuda"]
    return "CPU", TORCH_INDEX["cpu"]


def install_steps(venv: Path, driver: Optional[str], system: str = sys.platform) -> List[Tuple[str, str, List[str]]]:
    """(title, program, arguments) for each step of the engine install, run in order by QProcess."""
    py = str(venv_python(venv))
    label, index = torch_build(system, driver)
    return [
        (tr("Creating the environment"), base_python(), ["-m", "venv", str(venv)]),
        (tr("Updating pip"), py, ["-m", "pip", "install", "-U", "pip"]),
        (tr("Installing PyTorch ({})").format(label), py,
         ["-m", "pip", "install", torch_requirement()] + (["--index-url", index] if index else [])),
        (tr("Installing transformers, rasterio and the rest"), py,
         ["-m", "pip", "install", "-r", str(REQUIREMENTS)]),
    ] + weights_steps(py)
