"""The one-click engine install, for real: the manager's own steps (QProcess, pip) into a fresh venv, then the new
engine imports its packages and loads GeoCLIP's weights from the unpacked wheel data. Downloads PyTorch (1-3 GB):
run on request only, e.g. in the 3.44 lane:

    GEOCLIP_E2E_INSTALL=1 bash scripts/qgis_lane.sh trixie-backports -q -s tests/test_engine_install_e2e.py

GEOCLIP_E2E_TORCH_INDEX replaces PyTorch's CPU/CUDA index where that one cannot be reached (e.g. PyPI's
https://pypi.org/simple, whose Linux torch is the CUDA build)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(os.environ.get("GEOCLIP_E2E_INSTALL") != "1",
                                reason="downloads PyTorch (GBs) from the network: set GEOCLIP_E2E_INSTALL=1")

CHECK = r"""
import json, sys, importlib.metadata as md
import torch, transformers, rasterio, pyogrio, shapely, scipy, numpy
from geoclip_qgis.core.model.weights import load_weights
w = load_weights()
print("RESULT " + json.dumps({"python": sys.version.split()[0], "torch": torch.__version__,
      "numpy": numpy.__version__, "transformers": transformers.__version__, "weights": w.source,
      "geoclip_installed": any(d.metadata["Name"] == "geoclip" for d in md.distributions())}))
"""


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def test_one_click_install_end_to_end(qgis_iface, monkeypatch, tmp_path):
    from geoclip_qgis.gui.manager import dialog as manager

    venv, cache = tmp_path / "engine-venv", tmp_path / "cache"
    monkeypatch.setattr(manager, "managed_env_dir", lambda: venv)
    monkeypatch.setenv("GEOCLIP_QGIS_CACHE", str(cache))
    index = os.environ.get("GEOCLIP_E2E_TORCH_INDEX")
    if index:
        monkeypatch.setitem(manager.TORCH_INDEX, "cpu", index)
        monkeypatch.setitem(manager.TORCH_INDEX, "cuda", index)
    monkeypatch.setattr(manager.ManagerDialog, "refresh", lambda self: None)
    dlg = manager.ManagerDialog()
    dlg.driver_known, dlg.driver = True, None
    started = time.monotonic()
    dlg.start_install()
    log = dlg.log.toPlainText
    wait_for(lambda: "Engine installed." in log() or "Step failed" in log() or "engine needs" in log(), 3600)
    took = time.monotonic() - started
    print(f"\ninstall: {took:.0f} s, venv {_du(venv) / 1e9:.2f} GB, weights {_du(cache) / 1e6:.0f} MB")
    assert "Engine installed." in log(), log()[-4000:]
    python = manager.venv_python(venv)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    env.update(PYTHONPATH=str(ROOT), GEOCLIP_QGIS_CACHE=str(cache))
    proc = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, env=env, timeout=600)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    out = json.loads(line[0][7:])
    print("engine:", out)
    assert out["weights"] == str(cache / "weights" / "geoclip-1.3.0") and not out["geoclip_installed"]
    dlg.shutdown()
    dlg.deleteLater()
