"""Shared fixtures: a tiny random CLIP saved and loaded through the real code, the real GeoCLIP weights,
a private cache folder, and photos made on the spot. No network is ever used."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GEOCLIP_PYRAMID"] = "0"  # no background world fields in tests (tests/test_worker_protocol.py turns it on)
os.environ.pop("GEOCLIP_CLIP_PATH", None)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _temporary_qgis_profile() -> Path:
    """The tests' own QGIS profile, in a temporary folder removed at exit. pytest-qgis starts QGIS on
    <rootdir>/.qgis-settings before this file is read (that folder is git-ignored and holds nothing of ours); every
    setting the tests write goes here instead, and subprocesses (qgis_process, QGIS itself) are pointed here too."""
    from qgis.PyQt.QtCore import QSettings

    root = Path(tempfile.mkdtemp(prefix="geoclip-qgis-profile-"))
    profile = root / "profiles" / "default"
    (profile / "QGIS").mkdir(parents=True)
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = str(root)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(profile))
    atexit.register(shutil.rmtree, root, True)
    return root


QGIS_PROFILE = _temporary_qgis_profile()


@pytest.fixture(autouse=True)
def _map_canvas_idle_after_a_test(request):
    """A test that zoomed the map (the dock does) may leave the canvas rendering its layers on worker threads; the
    next test's reset (pytest-qgis newProject) deletes those layers. Stop the render first: one CI run under load
    crashed (SIGSEGV) inside newProject's removeAllMapLayers, right after a test that kept its layers in a
    GeoPackage; a render still reading them is the likely cause (not proven)."""
    yield
    if "qgis_iface" in request.fixturenames:
        request.getfixturevalue("qgis_iface").mapCanvas().stopRendering()


# The suite runs in fp32 (bit-for-bit the oracle) on every machine, AMX or not, workers included; the precision
# tests (tests/test_precision.py) lift this pin.
os.environ["GEOCLIP_PRECISION"] = "fp32"


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    from support.random_clip import make_random_clip

    return str(make_random_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", "tiny", seed=0))


@pytest.fixture(scope="session")
def weights():
    from geoclip_qgis.core.model.weights import load_weights

    return load_weights()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["GEOCLIP_QGIS_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def small_gallery(weights) -> np.ndarray:
    """The first 2,000 points of GeoCLIP's real gallery: same distribution, a fiftieth of the cost."""
    from geoclip_qgis.core.model.gallery import read_coordinates_csv

    return read_coordinates_csv(weights.gallery_csv)[:2000]


@pytest.fixture(scope="session")
def engine(weights, tiny_clip, small_gallery, cache_dir):
    from geoclip_qgis.core.model.engine import GeoClipEngine

    return GeoClipEngine(weights=weights, clip_path=tiny_clip, device="cpu", gallery=small_gallery,
                         cache_dir=cache_dir)


def wait_for(predicate, timeout: float) -> None:
    """Run QGIS's event loop until `predicate()` holds (queued signals of tasks are delivered meanwhile); fail the
    test after `timeout` seconds. Imports QGIS only when called: the engine's tests never do."""
    from qgis.core import QgsApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        QgsApplication.processEvents()
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the GUI")
        time.sleep(0.02)


def make_photo(path: Path, seed: int = 0, size=(320, 240), mode: str = "RGB", exif=None) -> Path:
    """A random-texture photo; `exif` is a PIL Exif to embed (orientation, GPS)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    # Smooth it so JPEG stays small and CLIP sees structure rather than pure noise.
    arr = (arr.astype(np.float32) * 0.3 + np.linspace(0, 180, size[0])[None, :, None]).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"exif": exif} if exif is not None else {}
    im.save(path, **kwargs)
    return path


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp("photos")
    return [str(make_photo(folder / f"photo_{i}.jpg", seed=i, size=(320 + 40 * i, 240))) for i in range(3)]


_PROVIDERS: list = []  # the provider's Python object must outlive every test: QGIS's registry keeps a bare pointer


@pytest.fixture(scope="module")
def geoclip_provider(qgis_processing):
    """GeoCLIP's Processing provider in QGIS's registry for this module (the one place tests register it). Checked
    per module, because a test may take it away (the plugin's unload, the plugin manager's uninstall); every
    provider made here is kept alive for the session: a provider made in a module's fixture and freed with it left
    the registry pointing at nothing for the next module ("algorithm not found")."""
    from qgis.core import QgsApplication

    from geoclip_qgis.processing.provider import GeoClipProvider

    os.environ["GEOCLIP_ENGINE_PYTHON"] = sys.executable
    registry = QgsApplication.processingRegistry()
    prov = registry.providerById("geoclip")
    if prov is None:
        prov = GeoClipProvider()
        registry.addProvider(prov)
    _PROVIDERS.append(prov)
    return prov


@pytest.fixture(scope="module")
def gui_settings(tiny_clip, cache_dir):
    """The plugin's settings for a module of dock and window tests: the tiny CLIP, a small gallery, the CPU, the
    test cache and this Python as the engine's; the shared worker is stopped and the settings removed after."""
    from qgis.core import QgsSettings

    from geoclip_qgis.client.engine_client import shutdown_shared
    from geoclip_qgis.gui import settings_dialog as settings

    os.environ["GEOCLIP_ENGINE_PYTHON"] = sys.executable
    values = {"clip_path": tiny_clip, "gallery": "fibonacci:3000", "device": "cpu", "cache_dir": str(cache_dir),
              "engine_python": sys.executable, "weights": ""}
    for k, v in values.items():
        settings.put(k, v)
    yield values
    shutdown_shared()
    QgsSettings().remove("geoclip")
