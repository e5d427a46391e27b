"""The evaluation protocol as one object: tasks from split + catalogue, metrics, monitor key.

``conf/eval/default.yaml`` instantiates :class:`Protocol`. A run asks it for the tasks
of its split once (:meth:`Protocol.tasks`), then for the metrics of a model's
embeddings on a split (:meth:`Protocol.evaluate`), and for the validation key that
selects epochs and sweep trials (:meth:`Protocol.monitor_key`); :func:`flag_groups` names
the groups whose metrics are easy to misread (empty, a repeat of another group, or too
few users). What is ranked and
masked is defined in :mod:`gnnrec.evaluate.tasks`; how ties count in
:mod:`gnnrec.evaluate.metrics`; the whole contract in ``docs/protocol.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gnnrec.data.split import Split
from gnnrec.errors import ConfigError
from gnnrec.evaluate.evaluator import Evaluator, RankingTask
from gnnrec.evaluate.metrics import METRIC_NAMES
from gnnrec.evaluate.sampled import SAMPLED_NAMES
from gnnrec.evaluate.tasks import MAIN, TASKS, split_tasks
from gnnrec.keys import (
    ALL,
    FEW_USERS,
    GROUPS,
    NUM_USERS,
    SAME_AS,
    SPLITS,
    USER_GROUPS,
    metric_key,
    parse_metric_key,
)
from gnnrec.nn.scoring import Scorer

__all__ = ["AUTO", "GroupFlag", "Protocol", "flag_groups"]

AUTO = "auto"
_PREFERRED = ("ndcg", 20)


class Protocol:
    """Full-ranking (and optional sampled) evaluation of every task of a split.

    Args:
        ks: Cut-offs ``K`` of the full-ranking metrics.
        metrics: Full-ranking metric names (the table in :mod:`gnnrec.evaluate.metrics`).
        batch_size: Users scored at once.
        sampled_negatives: Negatives per held-out pair of the sampled protocol (0: off).
        sampled_ks: Cut-offs of the sampled metrics.
        seed: Seed of the sampled negatives (the same for every model).
        tasks: Tasks to evaluate, of ``main``, ``cold_item``, ``cold_item_only``.
    """

    def __init__(
        self,
        ks: Sequence[int] = (10, 20, 50),
        metrics: Sequence[str] = METRIC_NAMES,
        batch_size: int = 4096,
        sampled_negatives: int = 0,
        sampled_ks: Sequence[int] = (10,),
        seed: int = 0,
        tasks: Sequence[str] = TASKS,
    ) -> None:
        self.evaluator = Evaluator(
            ks=ks,
            metrics=metrics,
            batch_size=batch_size,
            sampled_negatives=sampled_negatives,
            sampled_ks=sampled_ks,
            seed=seed,
        )
        unknown = sorted(set(tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"eval.tasks has unknown task(s) {unknown}; choose from {TASKS}")
        if MAIN not in tasks:
            raise ValueError(f"eval.tasks must include {MAIN!r}, got {list(tasks)}")
        self.task_names = tuple(tasks)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.evaluator!r}, tasks={list(self.task_names)})"

    def metric_names(self) -> list[str]:
        """``"<metric>@<k>"`` of every value this protocol reports per group."""
        ev = self.evaluator
        names = [f"{m}@{k}" for m in ev.metrics for k in ev.ks]
        if ev.sampled_negatives:
            names += [f"{m}@{k}" for m in SAMPLED_NAMES for k in ev.sampled_ks]
        return names

    def tasks(self, split: Split, item_domain: np.ndarray) -> dict[str, dict[str, RankingTask]]:
        """``{"val": {task: RankingTask}, "test": {...}}`` over the whole target catalogue.

        Raises:
            ConfigError: With the sampled protocol on, a user of a task has no candidate
                left to draw negatives from (every candidate is held out or masked); the
                message names ``eval.sampled_negatives`` (and ``eval.tasks``).
        """
        built = split_tasks(split, item_domain)
        tasks = {s: {n: t for n, t in built[s].items() if n in self.task_names} for s in built}
        if self.evaluator.sampled_negatives:
            for split_name, named in tasks.items():
                for name, task in named.items():
                    self._check_sampled(split_name, name, task)
        return tasks

    def _check_sampled(self, split: str, name: str, task: RankingTask) -> None:
        empty = (task.num_negative_candidates() == 0).nonzero().flatten()
        if not empty.numel():
            return
        user = int(task.users[empty[0]])
        hint = f", or remove {name} from eval.tasks" if name != MAIN else ""
        raise ConfigError(
            f"eval.sampled_negatives={self.evaluator.sampled_negatives}: {empty.numel()} of "
            f"the {task.num_users} users of the {split} {name} task (e.g. user index {user}) "
            f"have no candidate to draw negatives from: each of the {task.num_candidates} "
            f"candidate items is held out or masked for them; set eval.sampled_negatives=0"
            f"{hint}"
        )

    def evaluate(
        self,
        split: str,
        tasks: dict[str, RankingTask],
        user_emb: Tensor | Scorer,
        item_emb: Tensor | None = None,
        per_user: list[pd.DataFrame] | None = None,
        prefix: str = "",
    ) -> dict[str, float]:
        """Metrics ``"<prefix><split>/<group>/<metric>@<k>"`` of every task of ``split``.

        ``user_emb, item_emb`` are what a model's ``forward`` returns: the two embedding
        tables, or one :class:`~gnnrec.nn.scoring.Scorer` (then ``item_emb`` is ``None``).

        The cold-item tasks report their own group only (their ``all`` would repeat it).
        With ``per_user``, one frame per task is appended: ``task``, ``user_idx``,
        ``group`` and one column per metric; group means of those rows equal the
        returned values.
        """
        out: dict[str, float] = {}
        for name, task in tasks.items():
            means, values = self.evaluator.evaluate(task, user_emb, item_emb, return_per_user=True)
            for key, value in means.items():
                group = key.split("/", 1)[0]
                if name != MAIN and group == ALL:
                    continue
                out[f"{prefix}{split}/{key}"] = float(value)
            if per_user is not None:
                per_user.append(_per_user_rows(name, task, values))
        return out

    def monitor_key(self, requested: str | None, has_validation: bool) -> str | None:
        """The validation key that selects epochs and sweep trials (``optimized_metric``).

        ``"auto"`` is ``val/all/ndcg@20`` when NDCG and K = 20 are configured, else the
        first configured metric and cut-off; without a validation split it is ``None``
        (train for ``trainer.max_epochs``, keep the last epoch, return nothing to a
        sweeper). An explicit key must be a validation key this protocol computes.

        Raises:
            ConfigError: naming ``optimized_metric`` and what is configured.
        """
        if requested is None:
            return None
        if requested == AUTO:
            if not has_validation:
                return None
            ev = self.evaluator
            metric = _PREFERRED[0] if _PREFERRED[0] in ev.metrics else ev.metrics[0]
            k = _PREFERRED[1] if _PREFERRED[1] in ev.ks else ev.ks[0]
            return metric_key("val", ALL, metric, k)
        key = parse_metric_key(requested)
        if key is None or key.prefix or key.k is None:
            raise ConfigError(
                f"optimized_metric={requested!r} is not a metric key; write "
                f"'<split>/<group>/<metric>@<k>', e.g. {metric_key('val', ALL, *_PREFERRED)!r}, "
                "or auto"
            )
        if key.split != SPLITS[0]:
            raise ConfigError(
                f"optimized_metric={requested!r} selects on the {key.split} split; model "
                "selection must use validation keys (val/...) so test numbers stay unseen"
            )
        if not has_validation:
            raise ConfigError(
                f"optimized_metric={requested!r}, but this data has no validation split "
                "(a fixed split without val rows); set optimized_metric=auto (the last epoch "
                "is kept) or optimized_metric=null"
            )
        if key.group not in GROUPS:
            raise ConfigError(
                f"optimized_metric={requested!r}: unknown group {key.group!r}; groups: "
                f"{list(GROUPS)}"
            )
        name = f"{key.metric}@{key.k}"
        if name not in self.metric_names():
            raise ConfigError(
                f"optimized_metric={requested!r} is not computed: eval.metrics and eval.ks "
                f"give {self.metric_names()}"
            )
        return requested


def _per_user_rows(name: str, task: RankingTask, values: dict[str, Tensor]) -> pd.DataFrame:
    """One row per user of ``task``: ``task``, ``user_idx``, ``group``, one column per metric."""
    group = np.full(task.num_users, "", dtype=object)
    for g, mask in task.groups.items():
        if g != ALL:
            group[mask.cpu().numpy()] = g
    frame = pd.DataFrame({"task": name, "user_idx": task.users.numpy(), "group": group})
    for key, value in values.items():
        frame[key] = torch.as_tensor(value).numpy()
    return frame


@dataclass(frozen=True)
class GroupFlag:
    """A user group whose metrics are easy to misread, found by :func:`flag_groups`.

    Attributes:
        split: ``"val"`` or ``"test"``.
        group: The group's name.
        num_users: Its users (0: a group the split's settings call for got none).
        same_as: The group it repeats (the same users, held-out items, masks and
            candidates), or ``None``.
        few_users: The threshold below which a group has few users.
    """

    split: str
    group: str
    num_users: int
    same_as: str | None = None
    few_users: int = FEW_USERS

    @property
    def few(self) -> bool:
        """``True`` for 1 to ``few_users - 1`` users."""
        return 0 < self.num_users < self.few_users

    def records(self) -> dict[str, int | str]:
        """What ``metrics.json`` records: ``num_users`` of an empty group, ``same_as``."""
        out: dict[str, int | str] = {}
        if self.num_users == 0:
            out[metric_key(self.split, self.group, NUM_USERS)] = 0
        if self.same_as is not None:
            out[metric_key(self.split, self.group, SAME_AS)] = self.same_as
        return out

    def message(self) -> str:
        """One warning line naming the group, its user count and what it means."""
        split, group, n = self.split, self.group, self.num_users
        if n == 0:
            return (
                f"{split} group {group!r} has 0 users, though the split's settings call for "
                f"it: it has no metrics (metrics.json records "
                f"{metric_key(split, group, NUM_USERS)}=0). Check data.split and the "
                "data.preprocess filters"
            )
        parts = []
        if self.same_as is not None:
            parts.append(
                f"is the same {n} users as {self.same_as!r}, with the same held-out items and "
                f"candidates: its metrics repeat {split}/{self.same_as}'s (metrics.json records "
                f"{metric_key(split, group, SAME_AS)}={self.same_as}); gnnrec-report tests "
                "them once"
            )
        if self.few:
            parts.append(
                f"has {n} user(s), fewer than {self.few_users}: too few to tell runs apart; "
                "gnnrec-report marks its tests"
            )
        return f"{split} group {group!r} " + "; ".join(parts)


def _same_task(a: RankingTask, b: RankingTask) -> bool:
    """Whether two tasks rank the same users against the same candidates, truth and masks."""
    fields = (
        "users",
        "candidates",
        "truth_indptr",
        "truth_indices",
        "exclude_indptr",
        "exclude_indices",
    )
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in fields)


def flag_groups(
    tasks: Mapping[str, RankingTask],
    split: str,
    expected: Sequence[str] = (),
    few_users: int = FEW_USERS,
) -> list[GroupFlag]:
    """The groups of one split's tasks whose metrics a reader could misread.

    * a group of ``expected`` (:attr:`gnnrec.data.split.Split.expected_groups`) with no
      user, e.g. ``cold`` when no user has both target and source history;
    * a group that repeats another: a main-task group holding every user of ``all``
      (``warm`` on single-domain data), or a task identical to an earlier one
      (``cold_item`` and ``cold_item_only`` on a zero-shot domain, where every target
      item is cold, repeat ``all``); ``same_as`` names ``all`` or the earlier task's group;
    * a group with fewer than ``few_users`` users (:data:`gnnrec.keys.FEW_USERS`; the
      two test users with a cold item on MovieLens-100K).

    Args:
        tasks: ``{task: RankingTask}`` of one split (:meth:`Protocol.tasks`).
        split: Its name, ``"val"`` or ``"test"``.
        expected: Groups the split's settings call for.
        few_users: Groups with 1 to ``few_users - 1`` users are flagged.

    Returns:
        The flags, main-task groups first (in :data:`gnnrec.keys.GROUPS` order).
    """
    main = tasks.get(MAIN)
    if main is None:
        return []
    flags = []
    for group in (*USER_GROUPS, ALL):
        mask = main.groups.get(group)
        n = 0 if mask is None else int(mask.sum())
        if n == 0:
            if group in expected:
                flags.append(GroupFlag(split, group, 0, None, few_users))
            continue
        same = ALL if group != ALL and n == main.num_users else None
        if same is not None or n < few_users:
            flags.append(GroupFlag(split, group, n, same, few_users))
    seen: list[tuple[str, RankingTask]] = [(ALL, main)]
    for name, task in tasks.items():
        if name == MAIN:
            continue
        group = next((g for g in task.groups if g != ALL), name)
        same = next((g for g, other in seen if _same_task(task, other)), None)
        seen.append((group, task))
        if same is not None or task.num_users < few_users:
            flags.append(GroupFlag(split, group, task.num_users, same, few_users))
    return flags
