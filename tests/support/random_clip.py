"""Random-weights CLIP folders with the real tokenizer, for tests, benchmarks and offline demos.

No hub is reachable here, so ViT-L/14's weights cannot be had; its architecture and its BPE vocabulary can.
The vocabulary is rebuilt from the `bpe_simple_vocab_16e6.txt.gz` merges file that the open_clip_torch wheel
ships (the byte-level BPE construction of CLIP's tokenizer), and the folder is written with `save_pretrained`
so that everything downstream goes through the real `from_pretrained` loading code.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Dict, List

N_MERGES = 49152 - 256 - 2  # CLIP keeps this many merges: 256 bytes + 256 end-of-word bytes + merges + 2 = 49408


def _bytes_to_unicode() -> Dict[int, str]:
    """Byte -> printable unicode character, the reversible map byte-level BPE uses."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, (chr(c) for c in chars)))


def write_tokenizer_files(bpe_gz: os.PathLike, folder: os.PathLike) -> None:
    """vocab.json and merges.txt in Hugging Face's CLIPTokenizer format, from open_clip's merges file."""
    with gzip.open(bpe_gz, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:N_MERGES + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    tokens: List[str] = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", "utf-8")


def find_bpe_vocab() -> Path:
    """The merges file: $GEOCLIP_BPE_VOCAB, the project's .cache, or an installed open_clip package."""
    env = os.environ.get("GEOCLIP_BPE_VOCAB")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / ".cache" / "bpe_simple_vocab_16e6.txt.gz")
    try:
        from importlib import metadata

        candidates.append(Path(str(metadata.distribution("open_clip_torch").locate_file(
            "open_clip/bpe_simple_vocab_16e6.txt.gz"))))
    except Exception:
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        "bpe_simple_vocab_16e6.txt.gz not found: run scripts/setup_env.sh (it extracts it from the "
        "open_clip_torch wheel) or set GEOCLIP_BPE_VOCAB"
    )


def make_random_clip(folder: os.PathLike, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random CLIP (projection_dim 768, patch 14) at `folder`: 'tiny' for tests, 'vit-l-14' full size."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # transformers 4.x
        from transformers import CLIPImageProcessor as ImageProcessor

    out = Path(folder)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    if size == "tiny":
        text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    elif size == "vit-l-14":
        text = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
        vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16)
    else:
        raise ValueError(f"unknown size {size!r}")
    config = CLIPConfig(
        projection_dim=768,
        text_config=dict(vocab_size=49408, max_position_embeddings=77, projection_dim=768,
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, **text),
        vision_config=dict(image_size=224, patch_size=14, projection_dim=768, **vision),
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    tmp = out.with_name(out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    write_tokenizer_files(find_bpe_vocab(), tmp)
    tokenizer = CLIPTokenizer(str(tmp / "vocab.json"), str(tmp / "merges.txt"))
    processor = CLIPProcessor(image_processor=ImageProcessor(), tokenizer=tokenizer)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    tmp.rename(out)
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--size", choices=["tiny", "vit-l-14"], default="tiny")
    args = ap.parse_args()
    print(make_random_clip(args.folder, args.size))
