"""What the engine install can promise before it starts: which Pythons it supports, and how the weights arrive.

The supported range is the one `scripts/engine_resolution.py` checks with pip for Linux, Windows and macOS
(tests/test_engine_resolution.py) and `resources/engine-requirements.txt` states; a QGIS whose Python is outside it
is told so before anything is created or downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Tuple

from ...shared import weights_release
from ..settings_dialog import tr

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
