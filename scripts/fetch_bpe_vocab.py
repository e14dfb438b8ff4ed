#!/usr/bin/env python3
"""Extract CLIP's BPE merges file (bpe_simple_vocab_16e6.txt.gz) from the open_clip_torch wheel on PyPI.

    python scripts/fetch_bpe_vocab.py CACHE_DIR

The tests build a real CLIP tokenizer from it (geoclip_qgis/core/random_clip.py looks in <checkout>/.cache).
Skipped when the file is already there. Uses this Python's pip to download the wheel (no dependencies)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "open_clip_torch==3.3.0"
MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"


def main() -> int:
    cache = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / ".cache")
    target = cache / "bpe_simple_vocab_16e6.txt.gz"
    if target.is_file() and target.stat().st_size > 0:
        return 0
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("open_clip_torch-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data = z.read(MEMBER)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    print(f"{target} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
