"""The embedding cache: keys, atomic writes, corrupt files and concurrent jobs."""

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnrec.config import compose_config
from gnnrec.errors import GnnrecError
from gnnrec.features import (
    TextEncoder,
    cached_embeddings,
    embedding_cache_key,
    encode_cached,
    item_embeddings,
    item_texts,
    texts_sha256,
)
from tests.processes import kill_when_writing, run_together

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
    assert meta["size"] == first.path.stat().st_size == 128 + 4 * 4 * 4
    assert meta["sha256"] == hashlib.sha256(first.path.read_bytes()).hexdigest()
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


def _sidecar(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


@pytest.mark.parametrize("damage", ["nan_row", "inf_value", "overwritten_row", "flipped_bit"])
def test_changed_values_are_found_by_the_checksum_and_recomputed(damage, tmp_path):
    encoder = FakeEncoder()
    good = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    array = np.load(good.path)
    if damage == "nan_row":
        array[2] = np.nan
    elif damage == "inf_value":
        array[1, 3] = np.inf
    elif damage == "overwritten_row":
        array[0] = array[3]
    else:
        array.view(np.uint32)[3, 0] ^= 1
    np.save(good.path, array)  # a valid .npy of the right shape and dtype: only values differ
    assert np.load(good.path).shape == (4, 4)
    with pytest.warns(UserWarning) as record:
        again = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    recorded = _sidecar(good.path)["sha256"]  # the rebuilt file's: the first file's bytes
    assert recorded == hashlib.sha256(good.path.read_bytes()).hexdigest()
    (message,) = [str(w.message) for w in record]
    assert message.startswith(
        f"embedding cache {good.path} is damaged: the file has 192 bytes and SHA-256 "
    )
    assert message.endswith(
        f", its sidecar records 192 bytes and {recorded[:16]}...; recomputing it"
    )
    assert again.computed and encoder.calls == 2
    torch.testing.assert_close(again.embeddings, good.embeddings, rtol=0, atol=0)
    assert not cached_embeddings(encoder, TEXTS, tmp_path, progress=False).computed


def test_missing_sidecar_is_recomputed(tmp_path):
    encoder = FakeEncoder()
    good = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    good.path.with_suffix(".json").unlink()
    with pytest.warns(UserWarning) as record:
        again = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    assert [str(w.message) for w in record] == [
        f"embedding cache {good.path} is damaged: its sidecar "
        f"{good.path.with_suffix('.json').name} is missing; recomputing it"
    ]
    assert again.computed and _sidecar(good.path)["sha256"]


def _without_checksum(path: Path) -> None:
    """Make the sidecar look like one written before sidecars carried a checksum."""
    meta = _sidecar(path)
    del meta["size"], meta["sha256"]
    path.with_suffix(".json").write_text(json.dumps(meta))


def test_file_without_checksum_is_checked_and_its_checksum_recorded(tmp_path, caplog):
    encoder = FakeEncoder()
    good = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    recorded = _sidecar(good.path)
    _without_checksum(good.path)
    with caplog.at_level("WARNING", logger="gnnrec.features.cache"):
        loaded = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    assert not loaded.computed and encoder.calls == 1
    assert caplog.messages == [
        f"embedding cache {good.path} had no checksum; its values check out, recorded it"
    ]
    assert _sidecar(good.path) == recorded
    torch.testing.assert_close(loaded.embeddings, good.embeddings, rtol=0, atol=0)


def test_file_without_checksum_with_a_nan_row_is_recomputed(tmp_path):
    encoder = FakeEncoder()
    good = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    array = np.load(good.path)
    array[1:3] = np.nan
    np.save(good.path, array)
    _without_checksum(good.path)
    with pytest.warns(UserWarning) as record:
        again = cached_embeddings(encoder, TEXTS, tmp_path, progress=False)
    assert [str(w.message) for w in record] == [
        f"embedding cache {good.path} is damaged: 2 row(s) hold NaN or infinite values, "
        "e.g. row 1; recomputing it"
    ]
    assert again.computed
    torch.testing.assert_close(again.embeddings, good.embeddings, rtol=0, atol=0)


class NanEncoder(FakeEncoder):
    """Half-precision overflow stand-in: the third text's vector is NaN."""

    def encode(self, texts, progress=True, desc=None) -> torch.Tensor:
        out = super().encode(texts, progress, desc)
        out[2] = float("nan")
        return out

    def __repr__(self) -> str:
        return "NanEncoder()"


def test_encoder_producing_nan_raises_and_caches_nothing(tmp_path):
    with pytest.raises(GnnrecError) as info:
        cached_embeddings(NanEncoder(), TEXTS, tmp_path, progress=False)
    assert str(info.value) == (
        "text encoder NanEncoder() produced NaN or infinite vectors for 1 of 4 texts "
        "(rows [2], e.g. text 'Toy Story (1995)'); nothing was cached. With "
        "encoder.dtype=float16 try bfloat16 or float32."
    )
    assert cache_files(tmp_path) == []


def test_leftover_array_and_sidecar_temporaries_are_removed_by_the_next_encode(tmp_path):
    encoder = FakeEncoder()
    path = cached_embeddings(encoder, TEXTS, tmp_path, progress=False).path
    path.unlink()
    left = [
        path.with_name(f".{path.name}.0123456789abcdef.tmp"),
        path.with_name(f".{path.with_suffix('.json').name}.abcdefgh.tmp"),
    ]
    for tmp in left:
        tmp.write_bytes(b"half")
    assert cached_embeddings(encoder, TEXTS, tmp_path, progress=False).computed
    assert cache_files(tmp_path) == [path.with_suffix(".json").name, path.name]


def _save_then_hang(cache_dir: str, marker: str) -> None:
    """Encode, write half of the array file, then hang (killed by the test)."""

    def slow_save(file, array, allow_pickle=True):
        file.write(b"\x93NUMPY" + b"\0" * 50)
        file.flush()
        Path(marker).write_text(file.name)
        time.sleep(600)

    np.save = slow_save
    encode_cached(FakeEncoder(), TEXTS, cache_dir, progress=False)


def test_encode_killed_mid_write_is_cleaned_and_recomputed(tmp_path):
    cache, marker = tmp_path / "cache", tmp_path / "writing.txt"
    half = kill_when_writing(_save_then_hang, (str(cache), str(marker)), marker)
    assert cache_files(cache) == [half.name]
    again = cached_embeddings(FakeEncoder(), TEXTS, cache, progress=False)
    assert again.computed
    assert cache_files(cache) == [again.path.with_suffix(".json").name, again.path.name]
    torch.testing.assert_close(again.embeddings, FakeEncoder().encode(TEXTS), rtol=0, atol=0)


def _encode_in_child(cache_dir: str, marker: str, out: str, barrier) -> None:
    barrier.wait()
    encoder = FakeEncoder(marker=Path(marker), delay=0.5)
    emb = encode_cached(encoder, TEXTS, cache_dir, progress=False)
    np.save(out, emb.numpy())


def test_two_processes_encode_a_key_once(tmp_path):
    marker, outs = tmp_path / "encodes.txt", [tmp_path / f"out{i}.npy" for i in range(2)]
    args = [(str(tmp_path / "cache"), str(marker), str(out)) for out in outs]
    # generous timeout: both children import torch on a loaded machine
    procs = run_together(_encode_in_child, args, method="spawn", timeout=600)
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

    from gnnrec.data.cache import load_dataset

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
