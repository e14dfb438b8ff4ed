"""Every step of the engine install resolves for Python 3.9-3.14 on Linux, Windows and macOS: asked of pip itself
(scripts/engine_resolution.py: `pip install --dry-run --ignore-installed --report` for another Python and
platform, nothing installed). Skipped, with the reason, when the package index cannot be reached."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import engine_resolution  # noqa: E402


def _index_reachable() -> str:
    """'' when pip can read the index it is set up for, else why not."""
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "geoclip", "--python-version",
                               "3.11", "--only-binary=:all:"], capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        return "pip index timed out after 90 s"
    return "" if proc.returncode == 0 and "1.3.0" in proc.stdout else (proc.stderr.strip().splitlines() or ["?"])[-1]


@pytest.fixture(scope="module")
def matrix():
    why = _index_reachable()
    if why:
        pytest.skip(f"PyPI (the package index) is not reachable: {why}")
    return engine_resolution.matrix(cache=ROOT / ".cache" / "pip-resolution", jobs=3)


def test_every_install_step_resolves_on_every_supported_python_and_os(matrix, capsys):
    from geoclip_qgis.gui.manager.install_plan import SUPPORTED_PYTHONS

    table = engine_resolution.table(matrix)
    (ROOT / ".cache").mkdir(exist_ok=True)
    (ROOT / ".cache" / "engine-resolution.txt").write_text(table + "\n")
    with capsys.disabled():
        print("\nengine install resolution (pip --dry-run per Python/OS; torch from PyPI, --no-deps):\n" + table)
    low, high = SUPPORTED_PYTHONS
    claimed = [p for p in engine_resolution.PYTHONS if low <= tuple(map(int, p.split("."))) <= high]
    assert claimed == list(engine_resolution.PYTHONS), "the matrix covers exactly the Pythons the manager accepts"
    failed = {f"{cell} {step}": a["error"] for cell, steps in matrix.items() for step, a in steps.items()
              if not a["ok"]}
    assert not failed, failed
    assert set(matrix) == {f"{o}/{p}" for o in ("linux", "windows", "macos") for p in engine_resolution.PYTHONS}
    for cell, steps in matrix.items():
        assert steps["weights"]["install"] == ["geoclip==1.3.0"], cell  # the wheel file, whatever the Python
        assert any(s.startswith("torch==2.") for s in steps["torch"]["install"]), cell
        names = {s.split("==")[0].lower().replace("_", "-") for s in steps["requirements"]["install"]}
        assert {"numpy", "rasterio", "transformers", "pyogrio", "shapely", "scipy"} <= names, cell
        assert "geoclip" not in names and "torch" not in names, cell
    numpy_313 = engine_resolution.version_of(matrix["windows/3.13"]["requirements"], "numpy")
    assert int(numpy_313.split(".")[0]) >= 2, "numpy 1.x has no wheel for 3.13"
