"""One run, wired stage by stage: data -> graph -> model -> train -> evaluate -> track.

The command line (:mod:`gnnrec.cli`), tests and notebooks all call :func:`run`.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gnnrec.data.graph import build_graph, normalized_adjacency
from gnnrec.data.preprocess import load_dataset
from gnnrec.data.split import split_interactions
from gnnrec.evaluate.tasks import ranking_tasks
from gnnrec.models.pop import item_counts
from gnnrec.train.sampler import BPRSampler
from gnnrec.utils.io import write_json
from gnnrec.utils.runtime import seed_everything, set_deterministic

__all__ = ["run", "build_model"]

log = logging.getLogger(__name__)


def build_model(model_cfg: DictConfig, resources: Mapping[str, Callable[[], Any]]) -> nn.Module:
    """Instantiate a ``_partial_`` model config, passing the run-time objects it asks for.

    ``resources`` maps constructor argument names (``num_users``, ``adj``, ...) to
    functions that build them; only the ones the constructor takes are built.
    """
    partial = instantiate(model_cfg)
    params = inspect.signature(partial.func).parameters
    kwargs = {
        name: make()
        for name, make in resources.items()
        if name in params and name not in partial.keywords
    }
    return partial(**kwargs)


def _prefixed(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{k}": float(v) for k, v in metrics.items()}


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> dict[str, float]:
    """Train and evaluate one configuration; write ``metrics.json`` into ``output_dir``.

    Args:
        cfg: A composed config (``conf/train.yaml``).
        output_dir: The run folder; defaults to ``cfg.paths.output_dir`` (Hydra's).

    Returns:
        Flat metrics ``"<split>/<group>/<metric>@<k>"`` plus ``best_epoch`` and timings.
    """
    t_start = time.perf_counter()
    out = Path(output_dir if output_dir is not None else cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    set_deterministic(cfg.deterministic)

    source = instantiate(cfg.data.source)
    data = load_dataset(
        source,
        preprocess=OmegaConf.to_container(cfg.data.preprocess),
        cache_dir=cfg.paths.cache_dir,
    )
    split = split_interactions(
        data, cfg.data.target_domain, seed=cfg.seed, **OmegaConf.to_container(cfg.data.split)
    )
    log.info("split %s", split.summary())
    graph = build_graph(data.num_users, data.item_domain, data.domains, split.train)
    train_users = torch.tensor(split.train["user_idx"].to_numpy(), dtype=torch.long)
    train_items = torch.tensor(split.train["item_idx"].to_numpy(), dtype=torch.long)
    t_data = time.perf_counter() - t_start

    trainer = instantiate(cfg.trainer)
    resources = {
        "num_users": lambda: data.num_users,
        "num_items": lambda: data.num_items,
        "adj": lambda: normalized_adjacency(graph),
        "item_counts": lambda: item_counts(train_items, data.num_items),
    }
    model = build_model(cfg.model, resources).to(trainer.device)
    evaluator = instantiate(cfg.eval)
    val_task, test_task = ranking_tasks(split, data.item_domain)

    def scores_of(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return m()

    def validate(m: nn.Module) -> dict[str, float]:
        return _prefixed(evaluator.evaluate(val_task, *scores_of(m)), "val")

    def on_epoch(record: dict[str, float], history: list[dict[str, float]]) -> None:
        every = cfg.test_curve_every
        if every and (record["epoch"] + 1) % every == 0:
            # Learning-curve monitoring only: never used for model selection.
            curve = evaluator.evaluate(test_task, *scores_of(model))
            record.update(_prefixed(curve, "curve/test"))
        tracker.log(record, step=int(record["epoch"]))
        write_json(out / "history.json", history)

    tracker = instantiate(cfg.tracker)
    tracker.start(OmegaConf.to_container(cfg, resolve=False), out)
    try:
        metrics: dict[str, float] = {"best_epoch": 0, "time/train_s": 0.0, "time/val_s": 0.0}
        if any(p.requires_grad for p in model.parameters()):
            fit = trainer.fit(
                model,
                instantiate(cfg.loss),
                BPRSampler(train_users, train_items, torch.tensor(data.item_domain), seed=cfg.seed),
                instantiate(cfg.optimizer)(model.parameters()),
                validate=validate if val_task is not None else None,
                checkpoint_dir=out / "checkpoints",
                on_epoch=on_epoch,
            )
            metrics.update(
                {
                    "best_epoch": fit.best_epoch,
                    "epochs": len(fit.history),
                    "stopped_early": float(fit.stopped_early),
                    "time/train_s": fit.train_time_s,
                    "time/val_s": fit.eval_time_s,
                    "time/epoch_s": fit.train_time_s / max(len(fit.history), 1),
                }
            )
        model.eval()
        t0 = time.perf_counter()
        emb = scores_of(model)
        if val_task is not None:
            metrics.update(_prefixed(evaluator.evaluate(val_task, *emb), "val"))
        metrics.update(_prefixed(evaluator.evaluate(test_task, *emb), "test"))
        metrics["time/test_s"] = time.perf_counter() - t0
        metrics["time/data_s"] = t_data
        metrics["time/total_s"] = time.perf_counter() - t_start
        write_json(out / "metrics.json", metrics)
        tracker.finish(summary=metrics)
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    return metrics
