"""Text encoding throughput: gnnrec's TextEncoder vs a bare transformers loop, and cache reloads.

Both sides embed the same real Amazon Movies item texts (``data.text.template`` of
``conf/data/amazon_bcm.yaml``) with all-MiniLM-L6-v2 on the same torch threads. The bare
reference is the plainest transformers code: tokenize + ``AutoModel`` forward + mean
pooling + L2 normalisation, in batches of the same texts gnnrec puts together (its
length-sorted order); a second reference keeps the texts' own order, to show what the
sorting gains. The vectors must agree. Then ``encode_cached``'s reload of the stored
file is timed against the encoding it replaces.

    python -m benchmarks.bench_encode [--count 2000] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import CACHE_DIR, DATA_DIR, interleaved_medians
from gnnrec.config import compose_config
from gnnrec.data import FolderSource, load_dataset
from gnnrec.features import TextEncoder, encode_cached, item_texts
from gnnrec.features.encoder import minilm_path


def movie_texts(count: int, seed: int = 0) -> list[str]:
    """A seeded sample of ``count`` Amazon Movies item texts."""
    template = compose_config(["data=amazon_bcm"]).data.text.template
    data = load_dataset(
        FolderSource(DATA_DIR / "amazon-books-cds-movies", domains=["movies"]),
        preprocess={},
        cache_dir=CACHE_DIR,
    )
    texts = item_texts(data.items, template)
    pick = np.random.default_rng(seed).choice(
        len(texts), size=min(count, len(texts)), replace=False
    )
    return [texts[i] for i in pick]


def bare_encode(tokenizer, model, texts: list[str], batch_size: int, max_length: int):
    """Tokenize + forward + mean pooling + L2 normalisation, batch by batch in the given order."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(F.normalize(mean, dim=-1))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="item texts to encode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: single-threaded)")
    parser.add_argument("--repeats", type=int, default=3, help="timed encodes per side")
    parser.add_argument("--batch-size", type=int, default=256, help="texts per forward pass")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    from transformers import AutoModel, AutoTokenizer

    texts = movie_texts(args.count)
    encoder = TextEncoder("minilm", device="cpu", batch_size=args.batch_size)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = AutoModel.from_pretrained(minilm_path()).eval()
    max_length = encoder.max_length
    by_length = sorted(texts, key=len, reverse=True)  # the batches gnnrec forms

    ours = encoder.encode(texts, progress=False)
    ref = bare_encode(tokenizer, model, texts, args.batch_size, max_length)
    diff = (ours - ref).abs().max().item()
    assert diff < 1e-4, f"gnnrec and the bare loop disagree by {diff}"

    t = interleaved_medians(
        {
            "gnnrec": lambda: encoder.encode(texts, progress=False),
            "bare_sorted": lambda: bare_encode(
                tokenizer, model, by_length, args.batch_size, max_length
            ),
            "bare_unsorted": lambda: bare_encode(
                tokenizer, model, texts, args.batch_size, max_length
            ),
        },
        repeats=args.repeats,
        warmup=0,
    )
    rate = {name: len(texts) / s for name, s in t.items()}

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        encode_cached(encoder, texts, cache, progress=False)
        t_first = time.perf_counter() - t0
        reloads = []
        for _ in range(max(args.repeats, 3)):
            t0 = time.perf_counter()
            encode_cached(encoder, texts, cache, progress=False)
            reloads.append(time.perf_counter() - t0)
        t_reload = statistics.median(reloads)

    chars = statistics.mean(len(s) for s in texts)
    print(
        f"Amazon Movies item texts: {len(texts)} (mean {chars:.0f} chars), all-MiniLM-L6-v2, "
        f"batch {args.batch_size}, max_length {max_length}, threads={args.threads}"
    )
    print(f"  gnnrec TextEncoder.encode:              {rate['gnnrec']:8.1f} texts/s")
    print(f"  bare transformers, same sorted batches: {rate['bare_sorted']:8.1f} texts/s")
    print(f"  bare transformers, texts' own order:    {rate['bare_unsorted']:8.1f} texts/s")
    print(
        f"  ratio gnnrec / bare (same batches): {rate['gnnrec'] / rate['bare_sorted']:.2f}  (floor: 0.9)"
    )
    print(f"  ratio gnnrec / bare (unsorted):     {rate['gnnrec'] / rate['bare_unsorted']:.2f}")
    print(f"  max |gnnrec - bare| = {diff:.1e}")
    print(
        f"  encode_cached: first call {t_first:.2f} s, reload {t_reload * 1000:.1f} ms "
        f"({t_first / t_reload:.0f}x faster)"
    )


if __name__ == "__main__":
    main()
