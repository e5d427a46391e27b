r"""Full-ranking (and optional sampled) top-K evaluation of user/item embeddings.

A :class:`RankingTask` holds, for ``n`` evaluated users, the ``m`` candidate items
they are ranked against, each user's ground-truth items and the items to mask
(training items, plus validation items at test time) as CSR matrices over local
candidate positions. :class:`Evaluator` scores
:math:`s_{ui} = \mathbf{e}_u^\top \mathbf{e}_i` in user chunks, sets masked
entries to :math:`-\infty`, takes the top :math:`K_{max}` and computes the metrics
of :mod:`gnnrec.evaluate.metrics` per user, then averages them per user group.

Ties: the order of equal scores is whatever :func:`torch.topk` returns (unspecified
by PyTorch, deterministic on CPU for a given row). A masked item always loses to an
unmasked one and never counts as a hit, even if it is also a ground-truth item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from gnnrec.evaluate.metrics import METRIC_NAMES, ranking_metrics

__all__ = ["Evaluator", "RankingTask"]

_SAMPLED_NAMES = ("sampled_hr", "sampled_ndcg")


def _as_long(values: object, name: str) -> Tensor:
    """A 1-D int64 CPU tensor from a numpy array, tensor or sequence of ids."""
    if isinstance(values, Tensor):
        tensor = values.detach().cpu()
    else:
        tensor = torch.tensor(np.asarray(values))
    if tensor.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(tensor.shape)}")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        if tensor.numel() == 0:
            return tensor.long()
        raise TypeError(f"{name} must hold integer ids, got dtype {tensor.dtype}")
    return tensor.long()


def _sorted_unique(values: Tensor) -> Tensor:
    """Sorted distinct values of a 1-D CPU int64 tensor (numpy's SIMD sort is much faster)."""
    out = np.sort(values.numpy())
    if out.size > 1:
        out = out[np.concatenate(([True], out[1:] != out[:-1]))]
    return torch.from_numpy(out)


def _csr_from_keys(keys: Tensor, num_rows: int, num_cols: int) -> tuple[Tensor, Tensor]:
    """CSR ``(indptr, indices)`` from sorted unique flat keys ``row * num_cols + col``."""
    rows = torch.div(keys, num_cols, rounding_mode="floor")
    counts = torch.bincount(rows, minlength=num_rows)
    indptr = torch.zeros(num_rows + 1, dtype=torch.long)
    torch.cumsum(counts, 0, out=indptr[1:])
    return indptr, keys - rows * num_cols


def _csr_rows(indptr: Tensor) -> Tensor:
    """Row index of every stored entry of a CSR matrix."""
    num_rows = indptr.numel() - 1
    return torch.repeat_interleave(torch.arange(num_rows, device=indptr.device), indptr.diff())


@dataclass
class RankingTask:
    """One evaluation: users to rank for, candidate items, truth and masks.

    Attributes:
        users: ``[n]`` global user ids evaluated (rows of the CSR matrices).
        candidates: ``[m]`` distinct global item ids ranked, e.g. all target-domain
            items. Columns of the CSR matrices are *local* positions ``0..m-1``.
        truth_indptr: ``[n + 1]`` CSR row pointer of the ground truth; every user
            needs at least one ground-truth item.
        truth_indices: Local candidate positions of the ground-truth items.
        exclude_indptr: ``[n + 1]`` CSR row pointer of the masked items.
        exclude_indices: Local candidate positions to mask (the user's training
            items, plus validation items at test time).
        groups: Group name -> ``[n]`` boolean mask over ``users``
            (e.g. ``{"warm": ..., "cold": ...}``). ``"all"`` (every user) is added
            unless present.
    """

    users: Tensor
    candidates: Tensor
    truth_indptr: Tensor
    truth_indices: Tensor
    exclude_indptr: Tensor
    exclude_indices: Tensor
    groups: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m = self.users.numel(), self.candidates.numel()
        if m == 0:
            raise ValueError("RankingTask needs at least one candidate item")
        for name in ("truth", "exclude"):
            indptr: Tensor = getattr(self, f"{name}_indptr")
            indices: Tensor = getattr(self, f"{name}_indices")
            if indptr.numel() != n + 1 or int(indptr[0]) != 0:
                raise ValueError(
                    f"{name}_indptr must have n + 1 = {n + 1} entries starting at 0, got "
                    f"{indptr.numel()} entries"
                )
            if int(indptr[-1]) != indices.numel() or bool((indptr.diff() < 0).any()):
                raise ValueError(
                    f"{name}_indptr must be non-decreasing and end at "
                    f"len({name}_indices) = {indices.numel()}"
                )
            if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= m):
                raise ValueError(
                    f"{name}_indices must be local candidate positions in [0, {m}), got "
                    f"range [{int(indices.min())}, {int(indices.max())}]"
                )
        empty = (self.truth_indptr.diff() == 0).nonzero().flatten()
        if empty.numel():
            raise ValueError(
                f"user {int(self.users[empty[0]])} (row {int(empty[0])}) has no ground-truth "
                f"item; {empty.numel()} such rows. Drop users without truth "
                "(RankingTask.from_pairs does)."
            )
        self.groups = dict(self.groups)
        for name, mask in self.groups.items():
            if mask.dtype != torch.bool or mask.shape != (n,):
                raise ValueError(
                    f"group {name!r} must be a bool mask of shape ({n},), got "
                    f"{mask.dtype} {tuple(mask.shape)}"
                )
        self.groups.setdefault("all", torch.ones(n, dtype=torch.bool, device=self.users.device))

    @property
    def num_users(self) -> int:
        """Number of evaluated users ``n``."""
        return self.users.numel()

    @property
    def num_candidates(self) -> int:
        """Number of candidate items ``m``."""
        return self.candidates.numel()

    @property
    def num_truth(self) -> Tensor:
        """``[n]`` number of ground-truth items of every user."""
        return self.truth_indptr.diff()

    @classmethod
    def from_pairs(
        cls,
        users_of_truth: Tensor | np.ndarray,
        items_of_truth: Tensor | np.ndarray,
        candidates: Tensor | np.ndarray,
        exclude_users: Tensor | np.ndarray | None = None,
        exclude_items: Tensor | np.ndarray | None = None,
        groups_by_user: Mapping[str, Tensor | np.ndarray] | None = None,
    ) -> RankingTask:
        """Builds a task from global-id ``(user, item)`` pair arrays.

        Rows are the sorted unique users with at least one ground-truth item;
        duplicate pairs count once.

        Args:
            users_of_truth: ``[p]`` global user id of every ground-truth pair.
            items_of_truth: ``[p]`` global item id of every ground-truth pair; each
                must be a candidate.
            candidates: ``[m]`` distinct global item ids to rank.
            exclude_users: ``[q]`` global user id of every pair to mask.
            exclude_items: ``[q]`` global item id of every pair to mask. Pairs whose
                user is not evaluated or whose item is not a candidate are ignored.
            groups_by_user: Group name -> global user ids in the group; ids of users
                that are not evaluated are ignored.

        Returns:
            The task, with CSR columns sorted within each row.

        Raises:
            ValueError: Mismatched pair lengths, duplicate candidates, or a
                ground-truth item that is not a candidate (named in the message).
        """
        t_users = _as_long(users_of_truth, "users_of_truth")
        t_items = _as_long(items_of_truth, "items_of_truth")
        cands = _as_long(candidates, "candidates")
        e_users = _as_long([] if exclude_users is None else exclude_users, "exclude_users")
        e_items = _as_long([] if exclude_items is None else exclude_items, "exclude_items")
        if t_users.numel() != t_items.numel():
            raise ValueError(
                f"users_of_truth and items_of_truth differ in length: {t_users.numel()} vs "
                f"{t_items.numel()}"
            )
        if e_users.numel() != e_items.numel():
            raise ValueError(
                f"exclude_users and exclude_items differ in length: {e_users.numel()} vs "
                f"{e_items.numel()}"
            )
        m = cands.numel()
        if m == 0:
            raise ValueError("candidates is empty; pass the global ids of the items to rank")
        sorted_cands, perm = cands.sort()
        dup = (sorted_cands[1:] == sorted_cands[:-1]).nonzero().flatten()
        if dup.numel():
            raise ValueError(
                f"candidates must be distinct; item {int(sorted_cands[dup[0]])} repeats"
            )

        def local(items: Tensor) -> tuple[Tensor, Tensor]:
            pos = torch.searchsorted(sorted_cands, items).clamp_(max=m - 1)
            return perm[pos], sorted_cands[pos] == items

        users = _sorted_unique(t_users)
        n = users.numel()
        t_local, t_found = local(t_items)
        if not bool(t_found.all()):
            bad = (~t_found).nonzero().flatten()
            raise ValueError(
                f"truth item {int(t_items[bad[0]])} (user {int(t_users[bad[0]])}) is not among "
                f"the {m} candidates ({bad.numel()} truth pairs affected); add it to "
                "candidates or drop those pairs"
            )
        t_rows = torch.searchsorted(users, t_users)
        truth_indptr, truth_indices = _csr_from_keys(_sorted_unique(t_rows * m + t_local), n, m)

        e_local, e_found = local(e_items)
        e_rows = torch.searchsorted(users, e_users).clamp_(max=max(n - 1, 0))
        keep = e_found & (users[e_rows] == e_users) if n else e_found & False
        e_keys = _sorted_unique(e_rows[keep] * m + e_local[keep])
        exclude_indptr, exclude_indices = _csr_from_keys(e_keys, n, m)

        groups = {
            name: torch.isin(users, _as_long(ids, f"groups_by_user[{name!r}]"))
            for name, ids in (groups_by_user or {}).items()
        }
        return cls(
            users=users,
            candidates=cands,
            truth_indptr=truth_indptr,
            truth_indices=truth_indices,
            exclude_indptr=exclude_indptr,
            exclude_indices=exclude_indices,
            groups=groups,
        )


class Evaluator:
    r"""Top-K evaluation of dot-product scores over a :class:`RankingTask`.

    Full ranking: for every chunk of ``batch_size`` users the scores against all
    candidates are computed on the embeddings' device, masked items are set to
    :math:`-\infty`, and the top :math:`K_{max}` decide the hits; metrics follow
    :func:`gnnrec.evaluate.metrics.ranking_metrics`. Equal scores are ordered as
    :func:`torch.topk` returns them (unspecified; stable per row on CPU), so models
    with many ties (popularity) can rank tied items differently across devices.

    Sampled protocol (``sampled_negatives > 0``): every (user, truth item) pair is
    ranked against ``sampled_negatives`` negatives drawn uniformly, with
    replacement, from the candidates that are neither in the user's truth nor
    exclude sets. The positive's rank is ``1 +`` the number of negatives scoring
    *strictly* higher (ties go to the positive). Then
    :math:`\text{HR@}K = [\text{rank} \le K]` and
    :math:`\text{NDCG@}K = [\text{rank} \le K] / \log_2(\text{rank} + 1)`, averaged
    over the user's pairs, then over users. Negatives come from a
    :class:`torch.Generator` seeded from ``seed`` and a fixed block of pairs, so every
    call draws the same negatives whatever ``batch_size``.

    Args:
        ks: Cut-offs of the full-ranking metrics.
        metrics: Full-ranking metrics, any of ``"recall"``, ``"ndcg"``, ``"hit"``,
            ``"mrr"``, ``"precision"``.
        batch_size: Users scored at once; memory is ``batch_size x m`` scores.
        sampled_negatives: Negatives per truth pair; ``0`` disables the sampled
            protocol.
        sampled_ks: Cut-offs of the sampled metrics.
        seed: Seed of the negative sampler.
    """

    def __init__(
        self,
        ks: Sequence[int] = (10, 20, 50),
        metrics: Sequence[str] = METRIC_NAMES,
        batch_size: int = 4096,
        sampled_negatives: int = 0,
        sampled_ks: Sequence[int] = (10,),
        seed: int = 0,
    ) -> None:
        self.ks = tuple(int(k) for k in ks)
        self.metrics = tuple(metrics)
        self.batch_size = int(batch_size)
        self.sampled_negatives = int(sampled_negatives)
        self.sampled_ks = tuple(int(k) for k in sampled_ks)
        self.seed = int(seed)
        unknown = [name for name in self.metrics if name not in METRIC_NAMES]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
        if not self.ks or min(self.ks) <= 0:
            raise ValueError(f"ks must be positive integers, got {list(ks)}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if self.sampled_negatives < 0:
            raise ValueError(f"sampled_negatives must be >= 0, got {sampled_negatives}")
        if self.sampled_negatives and (not self.sampled_ks or min(self.sampled_ks) <= 0):
            raise ValueError(f"sampled_ks must be positive integers, got {list(sampled_ks)}")

    def __repr__(self) -> str:
        sampled = (
            f", sampled_negatives={self.sampled_negatives}, sampled_ks={list(self.sampled_ks)}, "
            f"seed={self.seed}"
            if self.sampled_negatives
            else ""
        )
        return (
            f"{type(self).__name__}(ks={list(self.ks)}, metrics={list(self.metrics)}, "
            f"batch_size={self.batch_size}{sampled})"
        )

    @torch.no_grad()
    def evaluate(
        self,
        task: RankingTask,
        user_emb: Tensor,
        item_emb: Tensor,
        return_per_user: bool = False,
    ) -> dict[str, float] | tuple[dict[str, float], dict[str, Tensor]]:
        """Evaluates ``user_emb @ item_emb.T`` on ``task``.

        Args:
            task: Users, candidates, truth, masks and groups.
            user_emb: ``[num_users, d]`` embeddings indexed by global user id.
            item_emb: ``[num_items, d]`` embeddings indexed by global item id, on
                the same device (any ``d``, e.g. ``d = 1`` for popularity).
            return_per_user: Also return the per-user values.

        Returns:
            ``{"<group>/<metric>@<k>": mean, "<group>/num_users": count}`` for every
            group with at least one user (sampled metrics as
            ``"<group>/sampled_hr@<k>"``, ``"<group>/sampled_ndcg@<k>"``); with
            ``return_per_user`` also ``{"<metric>@<k>": Tensor[n]}`` on CPU, aligned
            with ``task.users``.
        """
        per_user = self._per_user(task, user_emb, item_emb)
        names = [name for name, mask in task.groups.items() if bool(mask.any())]
        results: dict[str, float] = {}
        if not names:
            return (results, per_user) if return_per_user else results
        # One matmul for every group mean: [groups, n] @ [n, metrics].
        masks = torch.stack([task.groups[name].cpu() for name in names]).to(torch.float64)
        counts = masks.sum(1)
        means = ((masks @ torch.stack(list(per_user.values()), dim=1)) / counts[:, None]).tolist()
        for name, count, row in zip(names, counts.tolist(), means, strict=True):
            results[f"{name}/num_users"] = int(count)
            results.update(
                {f"{name}/{key}": value for key, value in zip(per_user, row, strict=True)}
            )
        if return_per_user:
            return results, per_user
        return results

    def _per_user(self, task: RankingTask, user_emb: Tensor, item_emb: Tensor) -> dict[str, Tensor]:
        """Per-user metric values (CPU float64) for every metric and cut-off."""
        if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.size(1) != item_emb.size(1):
            raise ValueError(
                f"expected user_emb [num_users, d] and item_emb [num_items, d], got "
                f"{tuple(user_emb.shape)} and {tuple(item_emb.shape)}"
            )
        if user_emb.device != item_emb.device:
            raise ValueError(
                f"embeddings on different devices: {user_emb.device}, {item_emb.device}"
            )
        n, m = task.num_users, task.num_candidates
        if n == 0:
            empty = torch.empty(0, dtype=torch.float64)
            names = [f"{name}@{k}" for name in self.metrics for k in self.ks]
            if self.sampled_negatives:
                names += [f"{name}@{k}" for name in _SAMPLED_NAMES for k in self.sampled_ks]
            return dict.fromkeys(names, empty)
        max_user, max_item = int(task.users.max()), int(task.candidates.max())
        if max_user >= user_emb.size(0) or max_item >= item_emb.size(0):
            raise ValueError(
                f"task ids exceed the embeddings: max user {max_user} vs {user_emb.size(0)} "
                f"rows, max candidate {max_item} vs {item_emb.size(0)} rows"
            )
        device = user_emb.device
        dtype = torch.promote_types(user_emb.dtype, item_emb.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        users = task.users.to(device)
        items_t = item_emb[task.candidates.to(device)].to(dtype).t()
        k_top = min(max(self.ks), m)

        # Flat keys row * m + col: truth sorted for searchsorted, exclude for index_fill.
        truth_keys = (_csr_rows(task.truth_indptr) * m + task.truth_indices).to(device)
        if not bool((truth_keys.diff() > 0).all()):  # from_pairs gives sorted columns
            truth_keys = truth_keys.sort()[0]
            if bool((truth_keys.diff() == 0).any()):
                raise ValueError("a user lists the same ground-truth item twice in the task")
        excl_keys = (_csr_rows(task.exclude_indptr) * m + task.exclude_indices).to(device)
        t_ptr = task.truth_indptr.tolist()
        e_ptr = task.exclude_indptr.tolist()

        sampler = (
            _NegativeSampler(task, truth_keys.cpu(), excl_keys.cpu(), self)
            if self.sampled_negatives
            else None
        )
        sampled_sums = {
            f"{name}@{k}": torch.zeros(n, dtype=torch.float64, device=device)
            for name in _SAMPLED_NAMES
            for k in self.sampled_ks
        }

        # The loop does only what a bare dense evaluation must (score, mask, top-k);
        # hits are found once for all users afterwards.
        chunk = min(self.batch_size, n)
        scores_buf = torch.empty(chunk, m, dtype=dtype, device=device)
        top_values = torch.empty(n, k_top, dtype=dtype, device=device)
        top_index = torch.empty(n, k_top, dtype=torch.long, device=device)
        for start in range(0, n, chunk):
            end = min(start + chunk, n)
            scores = scores_buf[: end - start]
            torch.mm(user_emb[users[start:end]].to(dtype), items_t, out=scores)
            flat = scores.view(-1)
            flat.index_fill_(0, excl_keys[e_ptr[start] : e_ptr[end]] - start * m, float("-inf"))
            if sampler is not None:
                sampler.accumulate(flat, start, t_ptr[start], t_ptr[end], sampled_sums)
            torch.topk(scores, k_top, dim=1, out=(top_values[start:end], top_index[start:end]))
        del scores_buf

        query = top_index.add_(torch.arange(0, n * m, m, device=device).unsqueeze(1))
        pos = torch.searchsorted(truth_keys, query).clamp_(max=truth_keys.numel() - 1)
        hits = truth_keys[pos] == query
        hits &= top_values != float("-inf")

        num_truth = task.num_truth.to(device)
        out = ranking_metrics(hits, num_truth, self.ks, self.metrics)
        if sampler is not None:
            out.update({key: value / num_truth for key, value in sampled_sums.items()})
        return {key: value.cpu() for key, value in out.items()}


class _NegativeSampler:
    """Deterministic uniform negatives per (user, truth item) pair, drawn in blocks.

    Pairs are ordered by (row, local item). Block ``b`` holds pairs
    ``[b * S, (b + 1) * S)`` and is drawn with a generator seeded from
    ``(seed, b)``, so negatives do not depend on how users are chunked. A draw is
    exact (no rejection): with the user's forbidden positions ``f_0 < f_1 < ...``
    (truth and exclude), the ``r``-th allowed position is
    ``r + #{j : f_j - j <= r}``, found with one ``searchsorted``.
    """

    def __init__(
        self, task: RankingTask, truth_keys: Tensor, excl_keys: Tensor, evaluator: Evaluator
    ) -> None:
        m = task.num_candidates
        self.m = m
        self.num_negatives = evaluator.sampled_negatives
        self.ks = evaluator.sampled_ks
        self.seed = evaluator.seed
        self.block = max(1, 2**20 // self.num_negatives)
        self.pair_rows = torch.div(truth_keys, m, rounding_mode="floor")
        self.pair_cols = truth_keys - self.pair_rows * m
        forbidden = _sorted_unique(torch.cat([truth_keys, excl_keys]))
        f_rows = torch.div(forbidden, m, rounding_mode="floor")
        f_ptr = torch.zeros(task.num_users + 1, dtype=torch.long)
        torch.cumsum(torch.bincount(f_rows, minlength=task.num_users), 0, out=f_ptr[1:])
        self.allowed = m - f_ptr.diff()
        if bool((self.allowed == 0).any()):
            row = int((self.allowed == 0).nonzero()[0])
            raise ValueError(
                f"user {int(task.users[row])} has no candidate outside its truth and exclude "
                "sets to sample negatives from"
            )
        within = torch.arange(forbidden.numel()) - f_ptr[f_rows]
        self.adjusted_keys = forbidden - within  # row * m + (f_j - j), sorted
        self.f_ptr = f_ptr
        self._cached: tuple[int, Tensor] | None = None

    def _draw(self, b: int) -> Tensor:
        """Local candidate positions ``[pairs in block b, num_negatives]``."""
        if self._cached is not None and self._cached[0] == b:
            return self._cached[1]
        lo = b * self.block
        rows = self.pair_rows[lo : lo + self.block]
        state = np.random.SeedSequence([self.seed, b]).generate_state(1, dtype=np.uint64)[0]
        gen = torch.Generator().manual_seed(int(state))
        uniform = torch.rand(rows.numel(), self.num_negatives, dtype=torch.float64, generator=gen)
        allowed = self.allowed[rows].unsqueeze(1)
        r = (uniform * allowed).long().clamp_(max=allowed - 1)
        # r + #{j : f_j - j <= r}: count this row's adjusted keys up to row * m + r.
        row_base = rows.unsqueeze(1) * self.m
        count = torch.searchsorted(self.adjusted_keys, row_base + r, right=True)
        negatives = r.add_(count).sub_(self.f_ptr[rows].unsqueeze(1))
        self._cached = (b, negatives)
        return negatives

    def accumulate(
        self, flat_scores: Tensor, start: int, p0: int, p1: int, sums: dict[str, Tensor]
    ) -> None:
        """Adds per-pair HR/NDCG of pairs ``[p0, p1)`` (rows from ``start``) to ``sums``."""
        device = flat_scores.device
        for b in range(p0 // self.block, (p1 - 1) // self.block + 1):
            lo, hi = max(p0, b * self.block), min(p1, (b + 1) * self.block)
            negatives = self._draw(b)[lo - b * self.block : hi - b * self.block].to(device)
            rows = self.pair_rows[lo:hi].to(device)
            base = (rows - start) * self.m
            positive = flat_scores[base + self.pair_cols[lo:hi].to(device)]
            negative = flat_scores[base.unsqueeze(1) + negatives]
            rank = 1 + (negative > positive.unsqueeze(1)).sum(1)
            rank = rank.to(torch.float64)
            for k in self.ks:
                inside = rank <= k
                sums[f"sampled_hr@{k}"].index_add_(0, rows, inside.to(torch.float64))
                ndcg = torch.where(inside, 1.0 / torch.log2(rank + 1.0), 0.0)
                sums[f"sampled_ndcg@{k}"].index_add_(0, rows, ndcg)
