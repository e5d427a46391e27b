"""Text embeddings cached on disk, keyed by the encoder's identity and the texts.

``<cache_dir>/embeddings/<kind>-<key[:24]>.npy`` holds a ``[num_texts, dim]`` float32
array (read with ``allow_pickle=False``) and a ``.json`` sidecar describes it, with the
array file's size and SHA-256. The key is a SHA-256 over
:meth:`~gnnrec.features.encoder.TextEncoder.identity` and the texts, so a change of
model, weights, pooling, length, precision, model code (with ``trust_remote_code``) or
any text gives a new file.

The file is built once by :func:`gnnrec.utils.cache.cached_file`: encoded into a
temporary file in the same folder and renamed into place, so a failed encode leaves
nothing behind, under a lock on ``<file>.lock``, so concurrent jobs of a sweep encode a
key once; the lock holder first removes the temporaries of a killed write of the array
or the sidecar. The sidecar is written just before the array is renamed into place.

Every load checks the array against the sidecar's size and SHA-256, its shape and
dtype, and that every value is finite. An array that fails any check (flipped bytes,
an overwritten or NaN row, a missing or unreadable sidecar) is re-encoded with a
warning naming the file and what is wrong. An encoder that produces NaN or infinite
vectors raises instead of storing them. An array written before the sidecar carried a
checksum is checked for shape, dtype and finite values and its checksum recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gnnrec.data.schema import InteractionData
from gnnrec.errors import GnnrecError
from gnnrec.features.encoder import TextEncoder
from gnnrec.features.text import item_texts
from gnnrec.utils.cache import cached_file, file_sha256, remove_leftover_temporaries
from gnnrec.utils.io import atomic_write

__all__ = [
    "CachedEmbeddings",
    "cached_embeddings",
    "cached_item_embeddings",
    "embedding_cache_key",
    "encode_cached",
    "item_embeddings",
    "texts_sha256",
]

CACHE_FORMAT_VERSION = "gnnrec-embeddings-v1"
_KIND = re.compile(r"[A-Za-z0-9_.-]+")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedEmbeddings:
    """Embeddings and where they came from.

    Args:
        embeddings: ``[num_texts, dim]`` float32 CPU tensor.
        path: The ``.npy`` cache file.
        computed: ``True`` if this call encoded the texts, ``False`` if it loaded them.
        seconds: Wall time of the call.
    """

    embeddings: torch.Tensor
    path: Path
    computed: bool
    seconds: float


def texts_sha256(texts: Sequence[str]) -> str:
    """SHA-256 of a list of texts, each length-prefixed (``["ab", "c"] != ["a", "bc"]``)."""
    digest = hashlib.sha256(len(texts).to_bytes(8, "little"))
    for text in texts:
        data = str(text).encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def embedding_cache_key(identity: dict, texts: Sequence[str]) -> str:
    """The cache key: SHA-256 over the encoder identity (as JSON) and :func:`texts_sha256`."""
    payload = {
        "format": CACHE_FORMAT_VERSION,
        "identity": identity,
        "texts_sha256": texts_sha256(texts),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _damaged(path: Path, problem: str) -> None:
    warnings.warn(f"embedding cache {path} is damaged: {problem}; recomputing it", stacklevel=5)


def _nonfinite_rows(array: np.ndarray) -> np.ndarray:
    """Indices of the rows with a NaN or infinite value."""
    return np.flatnonzero(~np.isfinite(array).all(axis=1))


def _read_sidecar(path: Path) -> dict | str:
    """The sidecar of ``path`` as a dict, or what is wrong with it."""
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"its sidecar {sidecar.name} is missing"
    except (OSError, ValueError) as err:
        return f"its sidecar {sidecar.name} is unreadable ({type(err).__name__}: {err})"
    if not isinstance(meta, dict):
        return f"its sidecar {sidecar.name} is not a JSON object"
    return meta


def _load(path: Path, num_texts: int) -> torch.Tensor | None:
    """The cached array if it is whole and checks out, else ``None`` (with a warning).

    Checks, in order: the sidecar's size and SHA-256 of the array file, that the file
    reads as a ``[num_texts, dim]`` float32 array, and that every value is finite.
    """
    if not path.is_file():
        return None
    meta = _read_sidecar(path)
    if isinstance(meta, str):
        _damaged(path, meta)
        return None
    recorded = meta.get("sha256")
    if recorded is not None:
        size, sha256 = path.stat().st_size, file_sha256(path)
        if size != meta.get("size") or sha256 != recorded:
            _damaged(
                path,
                f"the file has {size} bytes and SHA-256 {sha256[:16]}..., its sidecar records "
                f"{meta.get('size')} bytes and {str(recorded)[:16]}...",
            )
            return None
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        _damaged(path, f"it is unreadable ({type(err).__name__}: {err})")
        return None
    if array.ndim != 2 or array.shape[0] != num_texts or array.dtype != np.float32:
        _damaged(
            path,
            f"it has shape {array.shape} and dtype {array.dtype}, expected "
            f"({num_texts}, dim) float32",
        )
        return None
    bad = _nonfinite_rows(array)
    if len(bad):
        _damaged(path, f"{len(bad)} row(s) hold NaN or infinite values, e.g. row {bad[0]}")
        return None
    if recorded is None:  # written before sidecars carried a checksum: record it now
        _write_meta(path.with_suffix(".json"), {**meta, **_checksum(path)})
        log.warning("embedding cache %s had no checksum; its values check out, recorded it", path)
    return torch.from_numpy(array)


def _checksum(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


def _check_finite(array: np.ndarray, texts: list[str], encoder: TextEncoder) -> None:
    """Raise if the encoder produced NaN or infinite vectors (nothing is stored)."""
    bad = _nonfinite_rows(array)
    if len(bad):
        raise GnnrecError(
            f"text encoder {encoder!r} produced NaN or infinite vectors for {len(bad)} of "
            f"{len(texts)} texts (rows {bad[:5].tolist()}, e.g. text {texts[bad[0]][:80]!r}); "
            "nothing was cached. With encoder.dtype=float16 try bfloat16 or float32."
        )


def _write_array(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def _write_meta(path: Path, meta: dict) -> None:
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def cached_embeddings(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache_dir: str | Path,
    *,
    kind: str = "items",
    progress: bool = True,
) -> CachedEmbeddings:
    """Load the embeddings of ``texts`` from the cache, or encode and store them.

    Args:
        encoder: The text encoder (its :meth:`~TextEncoder.identity` is part of the key).
        texts: The texts, in the order of the returned rows.
        cache_dir: Cache root (``paths.cache_dir``); files go to ``<cache_dir>/embeddings/``.
        kind: File name prefix: ``items``, ``profiles``, ... (letters, digits, ``_.-``).
        progress: Show the encoder's progress bar when encoding.

    Returns:
        The embeddings, the cache file and whether they were computed.

    Raises:
        ValueError: ``kind`` is not a plain file name prefix.
        GnnrecError: The encoder produced NaN or infinite vectors (nothing is cached).
    """
    if not _KIND.fullmatch(kind):
        raise ValueError(f"embedding cache kind must match {_KIND.pattern}, got {kind!r}")
    t0 = time.perf_counter()
    texts = [str(t) for t in texts]
    identity = encoder.identity()
    key = embedding_cache_key(identity, texts)
    folder = Path(cache_dir).expanduser() / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{key[:24]}.npy"

    def build(tmp: Path) -> torch.Tensor:
        remove_leftover_temporaries(path.with_suffix(".json"))  # under the lock of ``path``
        emb = encoder.encode(texts, progress=progress, desc=f"encoding {len(texts)} {kind}")
        array = np.ascontiguousarray(emb.detach().cpu().numpy(), dtype=np.float32)
        _check_finite(array, texts, encoder)
        _write_array(tmp, array)
        _write_meta(
            path.with_suffix(".json"),
            {
                **_checksum(tmp),
                "format": CACHE_FORMAT_VERSION,
                "key": key,
                "kind": kind,
                "identity": identity,
                "texts_sha256": texts_sha256(texts),
                "num_texts": len(texts),
                "dim": int(array.shape[1]),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
        return torch.from_numpy(array)

    entry = cached_file(path, build, lambda p: _load(p, len(texts)))
    return CachedEmbeddings(entry.value, path, entry.computed, time.perf_counter() - t0)


def encode_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache_dir: str | Path,
    *,
    kind: str = "items",
    progress: bool = True,
) -> torch.Tensor:
    """``[len(texts), dim]`` float32 embeddings, from the cache or encoded once and stored.

    See :func:`cached_embeddings` for the arguments.
    """
    return cached_embeddings(encoder, texts, cache_dir, kind=kind, progress=progress).embeddings


def cached_item_embeddings(
    data: InteractionData,
    template: str,
    encoder: TextEncoder,
    cache_dir: str | Path,
    progress: bool = True,
) -> CachedEmbeddings:
    """Item texts from ``template`` (:func:`~gnnrec.features.text.item_texts`), embedded and cached.

    Args:
        data: The preprocessed data; ``data.items`` is in item index order.
        template: ``data.text.template``.
        encoder: The text encoder.
        cache_dir: Cache root (``paths.cache_dir``).
        progress: Show a progress bar when encoding.

    Returns:
        ``[num_items, dim]`` embeddings with their cache file.
    """
    texts = item_texts(data.items, template)
    return cached_embeddings(encoder, texts, cache_dir, kind="items", progress=progress)


def item_embeddings(
    data: InteractionData,
    template: str,
    encoder: TextEncoder,
    cache_dir: str | Path,
    progress: bool = True,
) -> torch.Tensor:
    """``[num_items, dim]`` item text embeddings; see :func:`cached_item_embeddings`."""
    return cached_item_embeddings(data, template, encoder, cache_dir, progress).embeddings
