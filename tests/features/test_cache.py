"""The embedding cache: keys, atomic writes, corrupt files and concurrent jobs."""

import hashlib
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnrec.config import compose_config
from gnnrec.features import (
    TextEncoder,
    cached_embeddings,
    embedding_cache_key,
    encode_cached,
    item_embeddings,
    item_texts,
    texts_sha256,
)

TEXTS = ["Heat", "", "Toy Story (1995)", "a much longer text about a film"]


class FakeEncoder:
    """Deterministic 4-d vectors from a text's hash; counts (and optionally logs) encodes."""

    def __init__(
        self, name: str = "fake", marker: Path | None = None, fail: bool = False, delay: float = 0
    ):
        self.name, self.marker, self.fail, self.delay = name, marker, fail, delay
        self.calls = 0

    def identity(self) -> dict:
        return {"model": self.name, "dim": 4}

    def encode(self, texts, progress=True, desc=None) -> torch.Tensor:
        self.calls += 1
        if self.marker is not None:
            with open(self.marker, "a") as f:
                f.write("encode\n")
            time.sleep(self.delay)  # widens the race window the lock must close
        if self.fail:
            raise RuntimeError("encoder crashed")
        rows = [list(hashlib.sha256(t.encode()).digest()[:4]) for t in texts]
        return torch.tensor(rows, dtype=torch.float32).reshape(len(texts), 4)


def cache_files(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in (cache_dir / "embeddings").iterdir() if p.suffix != ".lock")


def test_second_call_loads_without_encoding(tmp_path):
    encoder = FakeEncoder()
    first = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    assert first.computed and encoder.calls == 1
    assert first.path.name.startswith("items-") and len(first.path.stem) == len("items-") + 24

    def no_encode(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    encoder.encode = no_encode
    second = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    assert not second.computed and second.path == first.path
    torch.testing.assert_close(second.embeddings, first.embeddings, rtol=0, atol=0)
    assert second.embeddings.dtype == torch.float32 and second.embeddings.shape == (4, 4)

    array = np.load(first.path, allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (4, 4)
    meta = json.loads(first.path.with_suffix(".json").read_text())
    assert meta["identity"] == encoder.identity()
    assert (meta["num_texts"], meta["dim"], meta["kind"]) == (4, 4, "items")
    assert meta["created"]
    assert cache_files(tmp_path) == [first.path.with_suffix(".json").name, first.path.name]


def test_key_covers_texts_identity_and_kind(tmp_path):
    assert texts_sha256(["ab", "c"]) != texts_sha256(["a", "bc"])
    assert texts_sha256(["a"]) != texts_sha256(["a", ""])
    identity = FakeEncoder().identity()
    assert embedding_cache_key(identity, ["ab", "c"]) != embedding_cache_key(identity, ["a", "bc"])
    paths = {
        cached_embeddings(FakeEncoder(), ["ab", "c"], tmp_path, progress=False).path,
        cached_embeddings(FakeEncoder(), ["a", "bc"], tmp_path, progress=False).path,
        cached_embeddings(FakeEncoder("other"), ["a", "bc"], tmp_path, progress=False).path,
        cached_embeddings(FakeEncoder(), ["a", "bc"], tmp_path, kind="profiles").path,
    }
    assert len(paths) == 4
    with pytest.raises(ValueError, match="kind must match"):
        encode_cached(FakeEncoder(), TEXTS, tmp_path, kind="../items")


def test_failed_encode_or_write_leaves_no_file(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="encoder crashed"):
        encode_cached(FakeEncoder(fail=True), TEXTS, tmp_path)
    assert cache_files(tmp_path) == []

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        encode_cached(FakeEncoder(), TEXTS, tmp_path)
    assert cache_files(tmp_path) == []


@pytest.mark.parametrize("damage", ["garbage", "wrong_rows", "float64"])
def test_corrupt_or_wrong_shape_file_is_recomputed(damage, tmp_path):
    encoder = FakeEncoder()
    good = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    if damage == "garbage":
        good.path.write_bytes(b"not a numpy file")
    elif damage == "wrong_rows":
        np.save(good.path, np.zeros((len(TEXTS) + 1, 4), dtype=np.float32))
    else:
        np.save(good.path, np.zeros((len(TEXTS), 4), dtype=np.float64))
    with pytest.warns(UserWarning, match="recomputing"):
        again = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    assert again.computed and encoder.calls == 2
    torch.testing.assert_close(again.embeddings, good.embeddings)
    assert not cached_embeddings(encoder, TEXTS, tmp_path, progress=False).computed


def _encode_in_child(cache_dir: str, marker: str, barrier, out: str) -> None:
    barrier.wait()
    encoder = FakeEncoder(marker=Path(marker), delay=0.5)
    emb = encode_cached(encoder, TEXTS, cache_dir, progress=False)
    np.save(out, emb.numpy())


def test_two_processes_encode_a_key_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    marker, outs = tmp_path / "encodes.txt", [tmp_path / f"out{i}.npy" for i in range(2)]
    procs = [
        ctx.Process(
            target=_encode_in_child,
            args=(str(tmp_path / "cache"), str(marker), barrier, str(out)),
        )
        for out in outs
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)  # generous: both children import torch on a loaded machine
    assert [p.exitcode for p in procs] == [0, 0]
    assert marker.read_text().splitlines() == ["encode"]
    np.testing.assert_array_equal(np.load(outs[0]), np.load(outs[1]))


def test_cached_minilm_vectors_equal_a_direct_encode(tmp_path, offline_hub):
    encoder = TextEncoder("minilm", device="cpu")
    direct = encoder.encode(TEXTS, progress=False)
    cached = encode_cached(encoder, TEXTS, tmp_path, progress=False)
    torch.testing.assert_close(cached, direct, rtol=0, atol=0)
    loaded = encode_cached(TextEncoder("minilm", device="cpu"), TEXTS, tmp_path)
    torch.testing.assert_close(loaded, direct, rtol=0, atol=0)


def test_item_embeddings_follow_item_order(tmp_path, data_root):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gnnrec.data.preprocess import load_dataset

    cfg = compose_config(["data=ml100k", f"paths.cache_dir={tmp_path}"])
    data = load_dataset(
        instantiate(cfg.data.source),
        preprocess=OmegaConf.to_container(cfg.data.preprocess),
        cache_dir=tmp_path,
    )
    emb = item_embeddings(data, cfg.data.text.template, FakeEncoder(), tmp_path, progress=False)
    texts = item_texts(data.items, cfg.data.text.template)
    assert emb.shape == (data.num_items, 4) == (len(texts), 4)
    assert texts[0] == "Toy Story (1995). Genres: Animation Children's Comedy"
    torch.testing.assert_close(
        emb[[0, 7, -1]], FakeEncoder().encode([texts[i] for i in (0, 7, -1)])
    )
