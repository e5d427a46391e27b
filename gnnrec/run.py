"""One run, wired stage by stage: data -> graph -> model -> train -> evaluate -> track.

The command line (:mod:`gnnrec.cli`), tests and notebooks all call :func:`run`.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gnnrec.data.fingerprint import data_fingerprint, split_fingerprint
from gnnrec.data.graph import build_graph, normalized_adjacency
from gnnrec.data.knowledge import knowledge_graph
from gnnrec.data.preprocess import load_dataset
from gnnrec.data.schema import InteractionData
from gnnrec.data.split import Split, split_interactions
from gnnrec.evaluate.evaluator import Evaluator, RankingTask
from gnnrec.evaluate.tasks import COLD_ITEM, cold_item_tasks, ranking_tasks
from gnnrec.features import encode_cached, item_embeddings, user_profiles
from gnnrec.models.pop import item_counts
from gnnrec.track.examples import example_recommendations, item_titles
from gnnrec.train.sampler import BPRSampler
from gnnrec.utils.io import atomic_write, write_json
from gnnrec.utils.runtime import seed_everything, set_deterministic

__all__ = [
    "run",
    "prepare",
    "evaluate_tasks",
    "RunSetup",
    "build_model",
    "load_split",
    "TextFeatures",
    "per_user_frame",
]

log = logging.getLogger(__name__)


_MISSING_HINTS = {
    "item_text_emb": "encoder=none is selected; choose a text encoder, e.g. encoder=minilm",
    "knowledge_graph": "the data has no knowledge graph",
}


def build_model(model_cfg: DictConfig, resources: Mapping[str, Callable[[], Any]]) -> nn.Module:
    """Instantiate a ``_partial_`` model config, passing the run-time objects it asks for.

    ``resources`` maps constructor argument names (``num_users``, ``adj``, ...) to
    functions that build them; only the ones the constructor takes are built. A
    resource that is unavailable in this run (``None``, e.g. text embeddings with
    ``encoder=none``) is passed only to arguments that default to ``None``; a required
    one fails with the reason.
    """
    partial = instantiate(model_cfg)
    params = inspect.signature(partial.func).parameters
    kwargs = {
        name: make()
        for name, make in resources.items()
        if name in params and name not in partial.keywords
    }
    for name, value in kwargs.items():
        if value is None and params[name].default is inspect.Parameter.empty:
            hint = _MISSING_HINTS.get(name, "this run cannot provide it")
            raise ValueError(f"model {model_cfg.get('_target_')} needs {name!r}: {hint}")
    return partial(**kwargs)


def _prefixed(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{k}": float(v) for k, v in metrics.items()}


class TextFeatures:
    """Item and user-profile text embeddings for one run, encoded on first use.

    Args:
        cfg: The run's config (``encoder``, ``data.text``, ``paths.cache_dir``).
        data: The preprocessed data.
        split: The split; only its ``train`` table builds user profiles.
    """

    def __init__(self, cfg: DictConfig, data: InteractionData, split: Split) -> None:
        self.cfg, self.data, self.split = cfg, data, split
        self._encoder = None

    @property
    def enabled(self) -> bool:
        return self.cfg.get("encoder") is not None and self.cfg.encoder.get("_target_") is not None

    def encoder(self):
        if not self.enabled:
            raise ValueError(
                f"model {self.cfg.model.get('_target_')} needs text embeddings but encoder=none "
                "is selected; choose a text encoder, e.g. encoder=minilm"
            )
        if self._encoder is None:
            self._encoder = instantiate(self.cfg.encoder)
        return self._encoder

    def items(self) -> torch.Tensor:
        """``[num_items, d]`` item text embeddings (``data.text.template``)."""
        return item_embeddings(
            self.data, self.cfg.data.text.template, self.encoder(), self.cfg.paths.cache_dir
        )

    def profiles(self) -> torch.Tensor:
        """``[num_users, d]`` embeddings of the users' profile texts (training items only)."""
        text = self.cfg.data.text
        column = text.title_column
        if column not in self.data.items.columns:
            raise ValueError(
                f"data.text.title_column={column!r} is not an item column; available: "
                f"{list(self.data.items.columns)}"
            )
        titles = self.data.items[column].fillna("").astype(str).to_numpy()
        profiles = user_profiles(
            self.split.train, titles, self.data.num_users, max_items=text.profile_items
        )
        return encode_cached(self.encoder(), profiles, self.cfg.paths.cache_dir, kind="profiles")


def load_split(cfg: DictConfig) -> tuple[InteractionData, Split]:
    """Load the configured data and split it (``data.target_domain``/``zero_shot_domain``)."""
    source = instantiate(cfg.data.source)
    data = load_dataset(
        source,
        preprocess=OmegaConf.to_container(cfg.data.preprocess, resolve=True),
        cache_dir=cfg.paths.cache_dir,
    )
    zero_shot = cfg.data.get("zero_shot_domain")
    target = zero_shot or cfg.data.target_domain
    split = split_interactions(
        data,
        target,
        zero_shot=bool(zero_shot),
        **OmegaConf.to_container(cfg.data.split, resolve=True),
    )
    if not cfg.data.get("source_edges", True):
        # Ablation: the same held-out rows, but only target-domain training edges.
        keep = split.train["domain_idx"] == split.target_domain_idx
        split.train = split.train[keep].reset_index(drop=True)
    return data, split


def evaluate_tasks(
    evaluator: Evaluator,
    main: RankingTask,
    cold_items: RankingTask | None,
    emb,
    per_user: list[pd.DataFrame] | None = None,
) -> dict[str, float]:
    """Group means of ``main`` plus the ``cold_item`` group; optionally per-user rows."""
    out: dict[str, float] = {}
    for name, task in (("main", main), (COLD_ITEM, cold_items)):
        if task is None:
            continue
        means, values = evaluator.evaluate(task, *emb, return_per_user=True)
        if name == COLD_ITEM:
            means = {k: v for k, v in means.items() if k.startswith(f"{COLD_ITEM}/")}
        out.update(means)
        if per_user is not None:
            per_user.append(_per_user_rows(name, task, values))
    return out


def _per_user_rows(name: str, task: RankingTask, values: Mapping[str, torch.Tensor]):
    """One row per user of ``task``: ``task``, ``user_idx``, ``group``, one column per metric.

    ``group`` is the user's group in that task (``warm``, ``cold``, ``zero_shot`` or
    ``cold_item``); group means of these rows equal the ``metrics.json`` values.
    """
    group = np.full(task.num_users, "", dtype=object)
    for g, mask in task.groups.items():
        if g != "all":
            group[mask.cpu().numpy()] = g
    frame = pd.DataFrame({"task": name, "user_idx": task.users.numpy(), "group": group})
    for key, value in values.items():
        frame[key] = value.numpy()
    return frame


def per_user_frame(rows: list[pd.DataFrame], data: InteractionData, split: Split) -> pd.DataFrame:
    """The ``per_user.parquet`` table: per-user rows plus raw user ids and fingerprints.

    ``user_id`` is the raw id of the data files, so runs whose preprocessing numbers
    users differently still pair the same people; ``data_fingerprint`` and
    ``split_fingerprint`` say whether two runs saw the same data and held-out rows.
    """
    frame = pd.concat(rows, ignore_index=True)
    frame.insert(2, "user_id", data.users["user"].astype(str).to_numpy()[frame["user_idx"]])
    frame["data_fingerprint"] = data_fingerprint(data)
    frame["split_fingerprint"] = split_fingerprint(data, split)
    return frame


@dataclass
class RunSetup:
    """Everything a run builds before training: data, split, model, evaluator, tasks.

    ``time_s`` is the seconds this took (data, graph, text features, model): the run's
    ``time/data_s``.
    """

    data: InteractionData
    split: Split
    model: nn.Module
    evaluator: Evaluator
    train_users: torch.Tensor
    train_items: torch.Tensor
    tasks: tuple[RankingTask | None, RankingTask, RankingTask | None, RankingTask | None]
    time_s: float


def prepare(cfg: DictConfig, device: torch.device | str = "cpu") -> RunSetup:
    """Load and split the data, build the graph and the model, and the ranking tasks.

    ``tasks`` is ``(val, test, val_cold_item, test_cold_item)``; the model is on
    ``device`` with its initial weights (seeded by ``cfg.seed``).
    """
    t_start = time.perf_counter()
    data, split = load_split(cfg)
    log.info("split %s", split.summary())
    graph = build_graph(data.num_users, data.item_domain, data.domains, split.train)
    train_users = torch.tensor(split.train["user_idx"].to_numpy(), dtype=torch.long)
    train_items = torch.tensor(split.train["item_idx"].to_numpy(), dtype=torch.long)
    text = TextFeatures(cfg, data, split)
    user_input = cfg.model.get("user_input", "mean")
    resources = {
        "num_users": lambda: data.num_users,
        "num_items": lambda: data.num_items,
        "adj": lambda: normalized_adjacency(graph),
        "item_counts": lambda: item_counts(train_items, data.num_items),
        "item_domain": lambda: torch.tensor(data.item_domain, dtype=torch.long),
        "target_domain": lambda: split.target_domain_idx,
        "train_users": lambda: train_users,
        "train_items": lambda: train_items,
        "graph": lambda: graph,
        "knowledge_graph": lambda: knowledge_graph(data.kg, data.item_entity, data.num_items),
        "item_text_emb": lambda: text.items() if text.enabled else None,
        "user_text_emb": lambda: text.profiles() if user_input == "profile" else None,
    }
    if user_input not in ("mean", "profile"):
        raise ValueError(f"model.user_input must be 'mean' or 'profile', got {user_input!r}")
    model = build_model(cfg.model, resources).to(device)
    log.info("model %s", model)
    val_task, test_task = ranking_tasks(split, data.item_domain)
    val_cold, test_cold = cold_item_tasks(split, data.item_domain)
    return RunSetup(
        data=data,
        split=split,
        model=model,
        evaluator=instantiate(cfg.eval),
        train_users=train_users,
        train_items=train_items,
        tasks=(val_task, test_task, val_cold, test_cold),
        time_s=time.perf_counter() - t_start,
    )


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

    trainer = instantiate(cfg.trainer)
    setup = prepare(cfg, trainer.device)
    data, model, evaluator = setup.data, setup.model, setup.evaluator
    train_users, train_items = setup.train_users, setup.train_items
    val_task, test_task, val_cold, test_cold = setup.tasks
    t_data = setup.time_s

    def scores_of(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return m()

    def validate(m: nn.Module) -> dict[str, float]:
        return _prefixed(evaluate_tasks(evaluator, val_task, val_cold, scores_of(m)), "val")

    def on_epoch(record: dict[str, float], history: list[dict[str, float]]) -> None:
        every = cfg.test_curve_every
        if every and (record["epoch"] + 1) % every == 0:
            # Learning-curve monitoring only: never used for model selection.
            curve = evaluate_tasks(evaluator, test_task, test_cold, scores_of(model))
            record.update(_prefixed(curve, "curve/test"))
        tracker.log(record, step=int(record["epoch"]))
        write_json(out / "history.json", history)

    tracker = instantiate(cfg.tracker)
    tracker.start(cfg, out)
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
                    "stopped_on_time": float(fit.stopped_on_time),
                    "time/train_s": fit.train_time_s,
                    "time/val_s": fit.eval_time_s,
                    "time/epoch_s": fit.train_time_s / max(len(fit.history), 1),
                }
            )
        model.eval()
        t0 = time.perf_counter()
        emb = scores_of(model)
        if val_task is not None:
            metrics.update(_prefixed(evaluate_tasks(evaluator, val_task, val_cold, emb), "val"))
        rows: list[pd.DataFrame] = []
        metrics.update(
            _prefixed(evaluate_tasks(evaluator, test_task, test_cold, emb, rows), "test")
        )
        metrics["time/test_s"] = time.perf_counter() - t0
        # Test metrics per user, for paired significance tests (gnnrec-report).
        per_user = per_user_frame(rows, data, setup.split)
        atomic_write(out / "per_user.parquet", lambda tmp: per_user.to_parquet(tmp, index=False))
        tracker.save(out / "per_user.parquet")
        # A qualitative look: a few test users' top-10 with titles (examples.csv, W&B table).
        titles = item_titles(data.items, OmegaConf.select(cfg, "data.text.title_column"))
        examples = example_recommendations(
            *emb, test_task, titles, seed=cfg.seed, user_names=data.users["user"].to_numpy()
        )
        atomic_write(out / "examples.csv", lambda tmp: examples.to_csv(tmp, index=False))
        tracker.log_table("examples", examples)
        metrics["time/data_s"] = t_data
        metrics["time/total_s"] = time.perf_counter() - t_start
        write_json(out / "metrics.json", metrics)
        tracker.finish(summary=metrics)
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    return metrics
