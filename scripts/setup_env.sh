#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: apt packages, a venv that sees Debian's QGIS bindings,
# pinned pip installs, the oracle (geoclip, without its deps) and the CLIP BPE vocabulary for tests.
# Re-running is cheap: each step is skipped when its stamp matches its inputs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${GEOCLIP_VENV:-$ROOT/.venv}
CACHE=$ROOT/.cache
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

APT_PKGS="python3-qgis qgis-providers python3-venv qgis xvfb xauth imagemagick"
missing=""
for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "setup: apt-get install$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV (with Debian's site-packages, for qgis)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.geoclip-setup"
want=$(cat "$ROOT/geoclip_qgis/resources/engine-requirements.txt" "$ROOT/requirements-dev.txt" "$0" | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: pip install (pinned) into $VENV"
  "$PY" -m pip install -q -U "pip>=24"
  # This machine's constraints (not the users': engine-requirements.txt stays open for Python 3.9-3.14):
  # - numpy<2: this venv sees Debian 12's python3-gdal, matplotlib and scipy (--system-site-packages, for qgis),
  #   which are built against numpy 1.x;
  # - torch==2.13.0: exactly the CPU build whose wheel lies on this machine's disk (PyPI's Linux torch is the CUDA
  #   build, gigabytes of downloads).
  # - pyarrow<21: Ray Data's pyarrow; 21 and later need numpy 2.
  printf 'numpy<2\ntorch==2.13.0\npyarrow<21\n' > "$VENV/constraints.txt"
  "$PY" -m pip install -q -c "$VENV/constraints.txt" -r "$ROOT/geoclip_qgis/resources/engine-requirements.txt" -r "$ROOT/requirements-dev.txt"
  # The oracle: --no-deps, because its torchvision pin resolves to a CUDA build that breaks transformers.
  "$PY" -m pip install -q --no-deps geoclip==1.3.0
  "$PY" -m pip install -q --no-deps -e "$ROOT"
  echo "$want" > "$stamp"
fi

# The real CLIP BPE vocabulary ships inside the open_clip_torch wheel; tests build a tokenizer from it.
[ -s "$CACHE/bpe_simple_vocab_16e6.txt.gz" ] || "$PY" "$ROOT/scripts/fetch_bpe_vocab.py" "$CACHE"
