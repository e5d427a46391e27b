"""``gnnrec-embed``: encode a dataset's item texts into the embedding cache ahead of training.

It composes the same config as ``gnnrec-train`` and fills the same cache file that a
run later loads, e.g. before a sweep::

    gnnrec-embed data=amazon_bcm encoder=minilm
    gnnrec-embed data=ml100k encoder=hf encoder.model=/models/bge-small device=cuda

The command writes no run folder: ``hydra.output_subdir=null`` and logging to stdout
are added to the command line unless it sets them itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gnnrec.config import CONFIG_DIR, register_resolvers
from gnnrec.features.cache import CachedEmbeddings

__all__ = ["embed", "main"]

register_resolvers()

# No run folder, .hydra/ copy or log file for a command that only fills a cache.
_QUIET = {
    "hydra.output_subdir": "null",
    "hydra/job_logging": "stdout",
    "hydra.run.dir": ".",
}


def embed(cfg: DictConfig, progress: bool = True) -> CachedEmbeddings:
    """Load the configured dataset and return its cached item text embeddings.

    The data are loaded as :func:`gnnrec.run.load_split` loads them and the embeddings
    come from :func:`gnnrec.features.cached_item_embeddings`, the function behind the
    run's ``item_text_emb``, so the run finds the file this writes.

    Args:
        cfg: A composed ``conf/train.yaml`` config.
        progress: Show the encoder's progress bar.

    Returns:
        The embeddings, their cache file and whether they were computed now.

    Raises:
        ValueError: ``encoder=none`` is selected.
    """
    from gnnrec.data.cache import load_dataset
    from gnnrec.features import cached_item_embeddings

    if cfg.get("encoder") is None or cfg.encoder.get("_target_") is None:
        raise ValueError(
            "gnnrec-embed needs a text encoder but encoder=none is selected; "
            "choose one, e.g. encoder=minilm or encoder=hf encoder.model=/path/to/model"
        )
    source = instantiate(cfg.data.source)
    data = load_dataset(
        source,
        preprocess=OmegaConf.to_container(cfg.data.preprocess),
        cache_dir=cfg.paths.cache_dir,
    )
    encoder = instantiate(cfg.encoder)
    return cached_item_embeddings(
        data, cfg.data.text.template, encoder, cfg.paths.cache_dir, progress=progress
    )


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _main(cfg: DictConfig) -> None:
    result = embed(cfg)
    rows, dim = result.embeddings.shape
    status = "computed" if result.computed else "loaded"
    print(f"{cfg.data.name} items: {rows} x {dim} embeddings {status} in {result.seconds:.1f} s")
    print(f"cache file: {result.path}")
    print(f"metadata:   {Path(result.path).with_suffix('.json')}")


def main() -> None:
    """Entry point of ``gnnrec-embed`` (Hydra overrides on the command line)."""
    args = sys.argv[1:]
    overrides = [i for i, a in enumerate(args) if "=" in a and not a.startswith("-")]
    given = {args[i].split("=", 1)[0].lstrip("+~") for i in overrides}
    quiet = [f"{k}={v}" for k, v in _QUIET.items() if k not in given]
    at = overrides[0] if overrides else len(args)  # beside the user's overrides, for argparse
    sys.argv[1:] = args[:at] + quiet + args[at:]
    _main()


if __name__ == "__main__":
    main()
