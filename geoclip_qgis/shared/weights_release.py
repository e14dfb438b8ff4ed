"""GeoCLIP's trained weights, taken from the geoclip 1.3.0 wheel without installing it.

The weights (location encoder, image MLP, logit scale) and the 100K GPS gallery ship only inside PyPI's
`geoclip-1.3.0-py3-none-any.whl` (40 MB). That wheel declares Requires-Python >=3.11, so `pip install geoclip` fails
on the Python 3.9/3.10 that QGIS 3.22-3.28 bundle on Windows and macOS. The wheel file itself is the same on every
Python, so the installer downloads it (`pip download --python-version 3.11`, the user's pip settings and proxy apply)
and unpacks only its data files into the cache folder, each checked against its known sha256. Standard library only:
the QGIS side (the manager) and the engine (CLI, weight loader) both use it.

    python -m geoclip_qgis.shared.weights_release unpack WHEEL_OR_FOLDER [DEST]
    python -m geoclip_qgis.shared.weights_release download [DEST]     # pip download + unpack, with this Python
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

from . import atomic
from .defaults import default_cache_dir

REQUIREMENT = "geoclip==1.3.0"
WHEEL = "geoclip-1.3.0-py3-none-any.whl"
WHEEL_SHA256 = "08a93791166a279d52b95c466a952c75f17f654cc61bdf6ab20355325b564dec"  # PyPI's, 2026-12
WHEEL_BYTES = 40_292_198
WHEEL_URL = ("https://files.pythonhosted.org/packages/1c/07/d2253a204731ef8d1b2f9d6acdeb66ae7a0ea2fee8b274626b2b29f7"
             "3119/geoclip-1.3.0-py3-none-any.whl")
TARGET_PYTHON = "3.11"  # the wheel's Requires-Python floor: pip download must ask for a Python it accepts
# wheel member -> (path under the weights folder, sha256). The folder has the wheel's `geoclip/model` layout, which
# core/model/weights.py reads.
DATA_FILES: Dict[str, tuple] = {
    "geoclip/model/weights/location_encoder_weights.pth":
        ("weights/location_encoder_weights.pth", "94b80ae3af89fca78539e129dd2929d321247f5ceeeb0a31bc2c31041a253394"),
    "geoclip/model/weights/image_encoder_mlp_weights.pth":
        ("weights/image_encoder_mlp_weights.pth", "5342c391eec961796d04d02f2bd670bfa97b34ce32c656d0e0676581103c2c14"),
    "geoclip/model/weights/logit_scale_weights.pth":
        ("weights/logit_scale_weights.pth", "9568e2e09dd19083082bf285b2c0c126867e40dbd275a8ee8c621888b861904e"),
    "geoclip/model/gps_gallery/coordinates_100K.csv":
        ("gps_gallery/coordinates_100K.csv", "3a00b1ba58f13443db726533b6399b39609e292df09d4e58792fa5949d1838b1"),
}
LICENSE_MEMBER = "geoclip-1.3.0.dist-info/licenses/LICENSE"  # MIT, kept next to the weights


class WeightsReleaseError(Exception):
    """A download or unpack that did not give the known files (wrong wheel, damaged file, disk)."""


def weights_dir(cache_dir: Optional[os.PathLike] = None) -> Path:
    """Where the unpacked weights live: <cache folder>/weights/geoclip-1.3.0 (the cache rule of shared/defaults)."""
    return Path(cache_dir or default_cache_dir()) / "weights" / "geoclip-1.3.0"


def is_unpacked(folder: Optional[os.PathLike] = None) -> bool:
    """All data files present at their known sizes (their sha256 is checked when the engine loads them)."""
    folder = Path(folder) if folder else weights_dir()
    try:
        return all((folder / rel).is_file() for rel, _ in DATA_FILES.values())
    except OSError:  # a cache folder that cannot be read: as if not unpacked (the wheel's weights are tried next)
        return False


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_wheel(path: os.PathLike) -> Path:
    """The wheel itself, or the one wheel in a folder (pip download's --dest)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("geoclip-1.3.0-*.whl"))
        if not found:
            raise WeightsReleaseError(f"no {WHEEL} in {path}")
        path = found[0]
    return path


def unpack(wheel: os.PathLike, dest: Optional[os.PathLike] = None) -> Path:
    """Check the wheel's sha256, extract its data files (and LICENSE) into `dest`, check each file's sha256; the
    folder appears complete or not at all (built next to it, then renamed)."""
    wheel = find_wheel(wheel)
    dest = Path(dest) if dest else weights_dir()
    got = sha256_of(wheel)
    if got != WHEEL_SHA256:
        raise WeightsReleaseError(f"{wheel.name} has sha256 {got}, not PyPI's {WHEEL_SHA256}: not the geoclip 1.3.0 "
                                  "wheel, or damaged")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".geoclip-weights-", dir=dest.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member, (rel, sha) in DATA_FILES.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())  # on disk before the folder's rename makes it the weights (atomic.py)
                if sha256_of(target) != sha:
                    raise WeightsReleaseError(f"{member} in {wheel.name} does not match its known sha256")
            (tmp / "LICENSE-geoclip.txt").write_bytes(zf.read(LICENSE_MEMBER))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        atomic.fsync_dir(dest.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def pip_download_args(dest: os.PathLike) -> List[str]:
    """`python -m pip` arguments that fetch the wheel file whatever the running Python (nothing is installed)."""
    return ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", TARGET_PYTHON,
            "--dest", str(dest), REQUIREMENT]


def download(dest: Optional[os.PathLike] = None, python: str = sys.executable) -> Path:
    """pip download + unpack: what `geoclip-qgis download weights` and the manager's install run."""
    with tempfile.TemporaryDirectory(prefix="geoclip-wheel-") as tmp:
        proc = subprocess.run([python, *pip_download_args(tmp)])
        if proc.returncode != 0:
            raise WeightsReleaseError(f"pip download {REQUIREMENT} failed (exit code {proc.returncode})")
        return unpack(tmp, dest)


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(args) in (2, 3) and args[0] == "unpack":
            print(unpack(args[1], args[2] if len(args) == 3 else None))
        elif len(args) in (1, 2) and args[0] == "download":
            print(download(args[1] if len(args) == 2 else None))
        else:
            print("usage: python -m geoclip_qgis.shared.weights_release unpack WHEEL_OR_FOLDER [DEST] | "
                  "download [DEST]", file=sys.stderr)
            return 2
    except (WeightsReleaseError, OSError, zipfile.BadZipFile, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
