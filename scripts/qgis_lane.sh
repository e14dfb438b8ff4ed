#!/usr/bin/env bash
# A test lane on another Debian's QGIS, in a debootstrap chroot built from Debian's archive.
#
#   bash scripts/qgis_lane.sh trixie-backports [PYTEST ARGS...]   QGIS 3.44 LTR (trixie-backports), Python 3.13, numpy 2
#   bash scripts/qgis_lane.sh trixie [PYTEST ARGS...]             QGIS 3.40 (the previous LTR), same Debian otherwise
# Both lanes are Debian 13 "trixie" with Debian's torch (python3-torch 2.6, CPU) for the engine; trixie-backports
# only takes qgis, python3-qgis and qgis-providers (and what they need) from the backports suite.
#
# Idempotent: every step leaves a stamp (under ROOT/.geoclip-lane/) made of its inputs and is skipped when the stamp
# matches, so a reused machine goes straight to the tests and a fresh CI machine builds everything from nothing.
# The chroot does not depend on the checkout, so it lives outside it ($GEOCLIP_CHROOT_BASE, default
# /var/cache/geoclip-qgis/chroot-SUITE); the checkout is bind-mounted at /src inside it. One lane per chroot runs at
# a time (flock). proc, sys, dev, dev/pts, dev/shm and /src are mounted for the run and unmounted on any exit.
# Needs root (re-runs itself with sudo otherwise). Commands in the chroot run with a clean environment (env -i).
# Each failure is printed when it happens (scripts/pytest_lane_report.py), so a crash at teardown loses none; the
# last line is "LANE qgis-X.Y (chroot SUITE): <pytest's counts> ; suite N s, lane N s".
set -euo pipefail
# The whole lane is one function, parsed before it runs: editing this file during a run cannot change the run.
main() {
  SUITE=${1:-trixie-backports}
  shift || true
  case "$SUITE" in
    trixie|trixie-backports) DIST=trixie ;;
    *) echo "usage: $0 trixie-backports|trixie [pytest args]" >&2; exit 2 ;;
  esac
  if [ "$(id -u)" != 0 ]; then exec sudo -E bash "$0" "$SUITE" "$@"; fi

  REPO=$(cd "$(dirname "$0")/.." && pwd)
  BASE=${GEOCLIP_CHROOT_BASE:-/var/cache/geoclip-qgis}
  ROOT=$BASE/chroot-$SUITE
  MIRROR=${GEOCLIP_DEBIAN_MIRROR:-http://deb.debian.org/debian}
  STAMPS=$ROOT/.geoclip-lane
  VENV=/opt/geoclip-venv                      # inside the chroot
  export DEBIAN_FRONTEND=noninteractive
  T0=$(date +%s)
  say() { printf '[%s lane %s +%ss] %s\n' "$SUITE" "$(date -u +%H:%M:%S)" "$(( $(date +%s) - T0 ))" "$*"; }
  key() { cat "$@" | sha256sum | cut -c1-16; }   # a stamp value: the hash of a step's inputs
  done_() { [ "$(cat "$STAMPS/$1" 2>/dev/null)" = "$2" ]; }
  mark() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

  # What the chroot needs: QGIS desktop (the real-window test), Xvfb, and the engine's torch from Debian
  # (python3-torch 2.6 CPU, ~160 MB with OpenBLAS; PyPI's torch for Python 3.13 is the CUDA build, 2.6 GB download,
  # ~5 GB venv). libopenblas0-pthread: without it torch falls back to the reference BLAS and is ~9x slower.
  # trixie-backports: first everything else from trixie, then QGIS itself (3.44 LTR) with `-t trixie-backports`, the
  # way Debian documents backports (apt then takes QGIS's exact-version dependencies from there too; naming
  # qgis/trixie-backports alone leaves qgis-common at trixie's 3.40 and apt refuses).
  QGIS_PKGS="qgis python3-qgis qgis-providers"
  BASE_PKGS="python3-venv xvfb xauth ca-certificates python3-torch libopenblas0-pthread"
  APT_TARGET=()
  [ "$SUITE" = trixie-backports ] && APT_TARGET=(-t trixie-backports)
  PKGS="$(echo $BASE_PKGS) + ${APT_TARGET[*]} $QGIS_PKGS"   # the apt step's stamp

  # --- the host: debootstrap -----------------------------------------------------------------------------------------
  if ! command -v debootstrap >/dev/null; then
    say "apt-get install debootstrap (host)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  mkdir -p "$BASE"
  exec 9>"$BASE/chroot-$SUITE.lock"
  flock 9                                     # one lane per chroot at a time (the mounts are shared)

  # --- mounts, undone on any exit ------------------------------------------------------------------------------------
  mounts_under_root() { awk -v r="$ROOT/" '{ gsub(/\\040/, " ", $2); if (index($2 "/", r) == 1) print $2 }' /proc/mounts; }
  unmount_all() {
    # deepest first; a lazy unmount as the fallback so a busy mount never survives the lane
    local m
    for m in $(mounts_under_root | sort -r); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  }
  cleanup() {
    local rc=$?
    unmount_all
    if [ -n "$(mounts_under_root)" ]; then echo "qgis_lane: mounts left under $ROOT:" >&2; mounts_under_root >&2; fi
    exit $rc
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM HUP
  mnt() {  # mnt TARGET mount-args... (skips a target that is already a mount point)
    local target=$ROOT$1; shift
    mkdir -p "$target"
    mountpoint -q "$target" || mount "$@" "$target"
  }
  mount_all() {
    unmount_all                               # leftovers of a run killed with SIGKILL
    mnt /proc -t proc proc
    mnt /sys -t sysfs sysfs
    mnt /dev --bind /dev
    mnt /dev/pts -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts
    mnt /dev/shm -t tmpfs -o mode=1777 shm
    mnt /src --bind "$REPO"
  }
  # A clean environment in the chroot; proxies and pip index settings of the host travel, nothing else.
  PASS_ENV=()
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
           PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT GEOCLIP_E2E_INSTALL GEOCLIP_E2E_TORCH_INDEX; do
    [ -n "${!v:-}" ] && PASS_ENV+=("$v=${!v}")
  done
  in_root() {
    chroot "$ROOT" /usr/bin/env -i HOME=/root LC_ALL=C.UTF-8 LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
      PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PIP_DISABLE_PIP_VERSION_CHECK=1 \
      PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen "${PASS_ENV[@]}" "$@"
  }

  # --- 1. debootstrap ------------------------------------------------------------------------------------------------
  if ! done_ debootstrap "$DIST $MIRROR"; then
    if [ -e "$ROOT" ]; then                   # an interrupted build: start over, never crossing into a mount
      unmount_all
      [ -z "$(mounts_under_root)" ] || { echo "qgis_lane: refusing to delete $ROOT: mounts remain" >&2; exit 1; }
      say "removing an unfinished chroot"
      rm -rf --one-file-system "$ROOT"
    fi
    say "debootstrap --variant=minbase $DIST (about 70 s)"
    s=$(date +%s)
    debootstrap --variant=minbase "$DIST" "$ROOT" "$MIRROR" > "$BASE/debootstrap-$SUITE.log" 2>&1 \
      || { tail -20 "$BASE/debootstrap-$SUITE.log" >&2; exit 1; }
    mark debootstrap "$DIST $MIRROR"
    say "debootstrap done in $(( $(date +%s) - s )) s"
  fi
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
  mount_all

  # --- 2. CA certificates (and pip's configuration) for downloads through this network -------------------------------
  # pip in the chroot fails with CERTIFICATE_VERIFY_FAILED unless the host's extra CAs are trusted there too. The
  # host's pip configuration travels as one /etc/pip.conf with what reaches an index (index URLs, proxy, certificate,
  # timeouts); local wheel folders and file:// indexes do not exist in the chroot and stay behind.
  cas=$(ls /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
  pipconfs=$(ls /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf" \
             ${PIP_CONFIG_FILE:-} 2>/dev/null || true)
  if ! done_ certs "$(key /dev/null $cas $pipconfs)"; then
    say "CA certificates and pip configuration from the host"
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    [ -z "$cas" ] || cp $cas "$ROOT/usr/local/share/ca-certificates/"
    rm -rf "$ROOT/etc/xdg/pip" "$ROOT/root/.config/pip" "$ROOT/root/.pip"   # the chroot's pip reads /etc/pip.conf only
    python3 - "$ROOT/etc/pip.conf" $pipconfs <<'PYEOF'
import configparser, sys
keep = ("index-url", "extra-index-url", "trusted-host", "proxy", "cert", "timeout", "default-timeout", "retries")
merged = {}
for path in sys.argv[2:]:
    cp = configparser.RawConfigParser()
    cp.read(path)
    for section in ("global", "install", "download"):
        if cp.has_section(section):
            merged.update({k: v for k, v in cp.items(section) if k in keep})
for k in ("index-url", "extra-index-url"):
    urls = [u for u in merged.pop(k, "").split() if u.startswith(("http://", "https://"))]
    if urls:
        merged[k] = " ".join(urls)
if "cert" in merged:
    merged["cert"] = "/etc/ssl/certs/ca-certificates.crt"  # the chroot's bundle, with the host's CAs added
with open(sys.argv[1], "w") as f:
    f.write("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(merged.items())))
PYEOF
    mark certs "$(key /dev/null $cas $pipconfs)"
    rm -f "$STAMPS/apt"                       # update-ca-certificates runs after ca-certificates is installed
  fi

  # An archive snapshot or a slow mirror can serve a Release past its Valid-Until (a week): apt then refuses it.
  # The packages are still checked against the signed Release; only its age is not.
  echo 'Acquire::Check-Valid-Until "false";' > "$ROOT/etc/apt/apt.conf.d/99geoclip-lane"
  # The backports suite (apt never installs from it unless asked: NotAutomatic/ButAutomaticUpgrades).
  if [ "$SUITE" = trixie-backports ]; then
    echo "deb $MIRROR trixie-backports main" > "$ROOT/etc/apt/sources.list.d/trixie-backports.list"
  else
    rm -f "$ROOT/etc/apt/sources.list.d/trixie-backports.list"
  fi

  # --- 3. QGIS and the rest from Debian ------------------------------------------------------------------------------
  if ! done_ apt "$PKGS"; then
    say "apt-get install $PKGS"
    s=$(date +%s)
    in_root dpkg --configure -a             # finishes an install that a killed run left half done
    in_root apt-get update -qq
    { in_root apt-get install -y -qq --no-install-recommends $BASE_PKGS \
        && in_root apt-get install -y -qq --no-install-recommends "${APT_TARGET[@]}" $QGIS_PKGS; } \
      > "$BASE/apt-$SUITE.log" 2>&1 || { tail -30 "$BASE/apt-$SUITE.log" >&2; exit 1; }
    in_root update-ca-certificates >/dev/null
    in_root apt-get clean
    mark apt "$PKGS"
    say "apt done in $(( $(date +%s) - s )) s: $(in_root dpkg-query -W -f '${Version}' qgis-providers) QGIS," \
        "$(in_root python3 -c 'import sys; print(sys.version.split()[0])') Python"
  fi

  # --- 4. the engine's environment: a venv on Debian's torch/numpy/QGIS + the engine requirements ----------------------
  ENGINE_REQ=$REPO/geoclip_qgis/resources/engine-requirements.txt
  DEV_REQ=$REPO/requirements-dev.txt
  venv_key=$(key "$ENGINE_REQ" "$DEV_REQ" "$0")
  if ! done_ venv "$venv_key"; then
    say "venv $VENV on Debian's QGIS/numpy/torch: the requirements"
    s=$(date +%s)
    [ -x "$ROOT$VENV/bin/python" ] || in_root python3 -m venv --system-site-packages "$VENV"
    # Keep Debian's torch and numpy (QGIS, GDAL and python3-torch are built against them): the lane's constraints.
    in_root python - > "$ROOT$VENV/lane-constraints.txt" <<'PYEOF'
import importlib.metadata as m
for name in ("torch", "numpy"):
    try:
        print(f"{name}=={m.version(name)}")
    except m.PackageNotFoundError:
        pass
PYEOF
    in_root pip install -q -c "$VENV/lane-constraints.txt" -r /src/geoclip_qgis/resources/engine-requirements.txt \
      -r /src/requirements-dev.txt
    in_root pip install -q --no-deps geoclip==1.3.0       # the oracle (its torchvision pin is not wanted)
    # The checkout on the engine's path (the worker is `python -m geoclip_qgis.core.service.worker`), as `pip install -e` would.
    in_root python -c 'import site; open(site.getsitepackages()[0] + "/geoclip-src.pth", "w").write("/src\n")'
    mark venv "$venv_key"
    say "venv done in $(( $(date +%s) - s )) s"
  fi

  # The CLIP BPE vocabulary the tests' tokenizer is built from, shared with the host lane through the checkout.
  if [ ! -s "$REPO/.cache/bpe_simple_vocab_16e6.txt.gz" ]; then
    say "CLIP BPE vocabulary"
    in_root python /src/scripts/fetch_bpe_vocab.py /src/.cache
  fi

  # --- 5. the suite ----------------------------------------------------------------------------------------------------
  versions=$(in_root python - <<'PYEOF'
import sys, numpy
from qgis.core import Qgis
try:
    import torch
    t = "torch " + torch.__version__
except ImportError:
    t = "no torch"
print(f"QGIS {Qgis.QGIS_VERSION}, Python {sys.version.split()[0]}, numpy {numpy.__version__}, {t}")
PYEOF
)
  say "$versions"
  QGIS_VER=$(echo "$versions" | sed -E 's/^QGIS ([0-9]+\.[0-9]+).*/\1/')
  say "pytest $*"
  s=$(date +%s)
  set +e
  rm -f "$ROOT/tmp/lane-outcomes.log"
  in_root env PYTHONPATH=/src/scripts GEOCLIP_LANE_LOG=/tmp/lane-outcomes.log \
    bash -c 'cd /src && exec python -m pytest -p no:cacheprovider -p pytest_lane_report "$@"' pytest "$@" 2>&1 \
    | tee "$BASE/pytest-$SUITE.log"
  rc=${PIPESTATUS[0]}
  set -e
  summary=$(grep -E '(passed|failed|error).* in [0-9.]+s' "$BASE/pytest-$SUITE.log" | tail -1 | tr -d '=' | xargs)
  if [ -z "$summary" ] && [ -s "$ROOT/tmp/lane-outcomes.log" ]; then   # pytest died before its summary
    summary="pytest died (exit $rc) after: $(awk '{ n[tolower($1)]++ } END { for (k in n) printf "%d %s, ", n[k], k }' \
      "$ROOT/tmp/lane-outcomes.log" | sed 's/, $//')"
  fi
  echo "LANE qgis-$QGIS_VER (chroot $SUITE): ${summary:-no summary: pytest ended without one (a crash?) FAILED} ; suite $(( $(date +%s) - s )) s, lane $(( $(date +%s) - T0 )) s"
  exit $rc
}
main "$@"
