r"""Full-ranking (and optional sampled) top-K evaluation of user/item embeddings.

A :class:`RankingTask` holds, for ``n`` evaluated users, the ``m`` candidate items
they are ranked against, each user's ground-truth items and the items to mask
(training items, plus validation items at test time) as CSR matrices over local
candidate positions. :class:`Evaluator` scores
:math:`s_{ui} = \mathbf{e}_u^\top \mathbf{e}_i` in user chunks (or asks a model's
:class:`~gnnrec.nn.scoring.Scorer` for each chunk's ``[chunk, m]`` block, for models
whose scores are not a dot product), sets masked entries to :math:`-\infty`, takes the
top :math:`K_{max}` and computes the metrics of :mod:`gnnrec.evaluate.metrics` per user,
then averages them per user group. Everything after the scores (masks, ties, the
sampled protocol) is the same for both.

**Ties.** Items with equal scores are ranked in uniformly random order and every metric
is its exact expectation over that order (:mod:`gnnrec.evaluate.metrics` gives the
formulas), so the result does not depend on :func:`torch.topk`'s order of equal values,
on the device or on item ids; a model whose scores are all equal gets the random level,
e.g. Recall@K = K / m' with m' the user's unmasked candidates. The tied block that the
cut at :math:`K_{max}` splits is counted in full: for a user whose
:math:`(K_{max}+1)`-th score equals the :math:`K_{max}`-th score ``v``, the evaluator
counts the unmasked candidates scoring ``v`` and the ground-truth items among them.

**Masks and non-finite scores.** A masked item scores :math:`-\infty`, ranks after every
unmasked item and never counts as a hit, even if it is also a ground-truth item (it still
counts in :math:`|T|`). An unmasked item the model scores :math:`-\infty` is treated like a
masked one. A NaN score raises :class:`ValueError` naming the user: it means the model's
embeddings are not finite. Users with fewer unmasked candidates than ``K`` get misses at the
missing positions.

The sampled protocol lives in :mod:`gnnrec.evaluate.sampled`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from gnnrec.evaluate.metrics import METRIC_NAMES, Ranking, ranking_metrics
from gnnrec.evaluate.sampled import SAMPLED_NAMES, NegativeSampler
from gnnrec.nn.scoring import Scorer

__all__ = ["Evaluator", "RankingTask"]


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


def _count_equal(scores: Tensor, level: Tensor) -> Tensor:
    """``[r]`` number of entries of each row of ``scores [r, m]`` equal to ``level [r, 1]``.

    Overwrites ``scores``: the 0/1 comparison is written in place and summed by a
    matrix-vector product, several times faster than reducing a boolean tensor (exact for
    float32 and float64 while ``m < 2**24``).
    """
    if scores.dtype in (torch.float32, torch.float64) and scores.size(1) < 2**24:
        torch.eq(scores, level, out=scores)
        ones = torch.ones(scores.size(1), dtype=scores.dtype, device=scores.device)
        return torch.mv(scores, ones).round_().long()
    return (scores == level).sum(1)


def _fill_block(scores: Tensor, block: Tensor, scorer: Scorer) -> None:
    """Copy a scorer's block into the evaluator's buffer, checking its shape."""
    if block.shape != scores.shape:
        raise ValueError(
            f"{type(scorer).__name__} returned a block of shape {tuple(block.shape)} for "
            f"{scores.size(0)} users and {scores.size(1)} candidates; Scorer.against must "
            "return [users, candidates] scores"
        )
    scores.copy_(block)


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

    def num_negative_candidates(self) -> Tensor:
        """``[n]`` candidates of every user that are neither truth nor masked.

        The pool the sampled protocol draws negatives from; a user with 0 has none.
        """
        m = self.num_candidates
        keys = torch.cat(
            [
                _csr_rows(self.truth_indptr) * m + self.truth_indices,
                _csr_rows(self.exclude_indptr) * m + self.exclude_indices,
            ]
        )
        rows = torch.div(_sorted_unique(keys), m, rounding_mode="floor")
        return m - torch.bincount(rows, minlength=self.num_users)

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
    r"""Top-K evaluation of dot-product (or :class:`~gnnrec.nn.scoring.Scorer`) scores.

    Full ranking: for every chunk of ``batch_size`` users the scores against all
    candidates are computed on the embeddings' device, masked items are set to
    :math:`-\infty`, and the top :math:`K_{max}` with their tied blocks decide the
    expected hits; metrics follow :data:`gnnrec.evaluate.metrics.METRICS`, with equal
    scores at their expected cost over a random order (see :mod:`gnnrec.evaluate.evaluator`).

    Sampled protocol (``sampled_negatives > 0``): every (user, truth item) pair is
    ranked against ``sampled_negatives`` negatives drawn uniformly, with replacement,
    from the candidates that are neither in the user's truth nor exclude sets; ties with
    negatives cost their expectation too (:mod:`gnnrec.evaluate.sampled` defines
    ``sampled_hr`` and ``sampled_ndcg``). Values are averaged over the user's pairs, then
    over users. Negatives come from a :class:`torch.Generator` seeded from ``seed`` and a
    fixed block of pairs, so every call draws the same negatives whatever ``batch_size``.

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
            raise ValueError(
                f"eval.metrics has unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)} "
                "(gnnrec.evaluate.metrics.METRICS)"
            )
        if not self.ks or min(self.ks) <= 0:
            raise ValueError(f"eval.ks must be positive integers, got {list(ks)}")
        if self.batch_size <= 0:
            raise ValueError(f"eval.batch_size must be positive, got {batch_size}")
        if self.sampled_negatives < 0:
            raise ValueError(f"eval.sampled_negatives must be >= 0, got {sampled_negatives}")
        if self.sampled_negatives and (not self.sampled_ks or min(self.sampled_ks) <= 0):
            raise ValueError(f"eval.sampled_ks must be positive integers, got {list(sampled_ks)}")

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
        user_emb: Tensor | Scorer,
        item_emb: Tensor | None = None,
        return_per_user: bool = False,
    ) -> dict[str, float] | tuple[dict[str, float], dict[str, Tensor]]:
        """Evaluates ``user_emb @ item_emb.T`` (or a :class:`Scorer`'s scores) on ``task``.

        Args:
            task: Users, candidates, truth, masks and groups.
            user_emb: ``[num_users, d]`` embeddings indexed by global user id, or a
                :class:`~gnnrec.nn.scoring.Scorer` (what an item-item model's
                ``forward`` returns), prepared once for ``task.candidates`` and asked
                for one ``[batch_size, m]`` block per chunk of users.
            item_emb: ``[num_items, d]`` embeddings indexed by global item id, on
                the same device (any ``d``, e.g. ``d = 1`` for popularity); ``None``
                with a scorer.
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

    def _per_user(
        self, task: RankingTask, user_emb: Tensor | Scorer, item_emb: Tensor | None
    ) -> dict[str, Tensor]:
        """Per-user metric values (CPU float64) for every metric and cut-off."""
        scorer = user_emb if isinstance(user_emb, Scorer) else None
        if scorer is not None:
            if item_emb is not None:
                raise ValueError(
                    f"got a {type(scorer).__name__} and item embeddings; a scorer ranks alone "
                    "(pass item_emb=None)"
                )
        elif item_emb is None:
            raise ValueError("item_emb is missing: pass user and item embeddings, or a Scorer")
        elif user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.size(1) != item_emb.size(1):
            raise ValueError(
                f"expected user_emb [num_users, d] and item_emb [num_items, d], got "
                f"{tuple(user_emb.shape)} and {tuple(item_emb.shape)}"
            )
        elif user_emb.device != item_emb.device:
            raise ValueError(
                f"embeddings on different devices: {user_emb.device}, {item_emb.device}"
            )
        n, m = task.num_users, task.num_candidates
        if n == 0:
            empty = torch.empty(0, dtype=torch.float64)
            names = [f"{name}@{k}" for name in self.metrics for k in self.ks]
            if self.sampled_negatives:
                names += [f"{name}@{k}" for name in SAMPLED_NAMES for k in self.sampled_ks]
            return dict.fromkeys(names, empty)
        max_user, max_item = int(task.users.max()), int(task.candidates.max())
        rows_u, rows_i = (
            (scorer.num_users, scorer.num_items)
            if scorer is not None
            else (user_emb.size(0), item_emb.size(0))
        )
        if max_user >= rows_u or max_item >= rows_i:
            raise ValueError(
                f"task ids exceed the embeddings: max user {max_user} vs {rows_u} "
                f"rows, max candidate {max_item} vs {rows_i} rows"
            )
        if scorer is not None:
            device, dtype = scorer.device, scorer.dtype
            score_block = scorer.against(task.candidates.to(device))
        else:
            device = user_emb.device
            dtype = torch.promote_types(user_emb.dtype, item_emb.dtype)
            if not dtype.is_floating_point:
                dtype = torch.get_default_dtype()
            items_t = item_emb[task.candidates.to(device)].to(dtype).t()
        users = task.users.to(device)
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
            NegativeSampler(
                task.users,
                m,
                truth_keys.cpu(),
                excl_keys.cpu(),
                self.sampled_negatives,
                self.sampled_ks,
                self.seed,
            )
            if self.sampled_negatives
            else None
        )
        sampled_sums = {
            f"{name}@{k}": torch.zeros(n, dtype=torch.float64, device=device)
            for name in SAMPLED_NAMES
            for k in self.sampled_ks
        }

        # The loop does what a bare dense evaluation must (score, mask, top-k) plus one
        # extra column: where the (k_top + 1)-th score equals the k_top-th, the last tied
        # block runs past the cut, and only those rows are scanned for its full size.
        chunk = min(self.batch_size, n)
        k_fetch = min(k_top + 1, m)
        scores_buf = torch.empty(chunk, m, dtype=dtype, device=device)
        fetch_values = torch.empty(chunk, k_fetch, dtype=dtype, device=device)
        fetch_index = torch.empty(chunk, k_fetch, dtype=torch.long, device=device)
        top_values = torch.empty(n, k_top, dtype=dtype, device=device)
        top_index = torch.empty(n, k_top, dtype=torch.long, device=device)
        tail_size = torch.zeros(n, dtype=torch.long, device=device)
        tail_truth = torch.zeros(n, dtype=torch.long, device=device)
        truth_rows = torch.div(truth_keys, m, rounding_mode="floor")
        for start in range(0, n, chunk):
            end = min(start + chunk, n)
            scores = scores_buf[: end - start]
            if scorer is None:
                torch.mm(user_emb[users[start:end]].to(dtype), items_t, out=scores)
            else:
                _fill_block(scores, score_block(users[start:end]), scorer)
            flat = scores.view(-1)
            flat.index_fill_(0, excl_keys[e_ptr[start] : e_ptr[end]] - start * m, float("-inf"))
            if sampler is not None:
                sampler.accumulate(flat, start, t_ptr[start], t_ptr[end], sampled_sums)
            values = fetch_values[: end - start]
            torch.topk(scores, k_fetch, dim=1, out=(values, fetch_index[: end - start]))
            top_values[start:end] = values[:, :k_top]
            top_index[start:end] = fetch_index[: end - start, :k_top]
            if bool(torch.isnan(values[:, 0]).any()):  # topk puts NaN first
                row = start + int(torch.isnan(values[:, 0]).nonzero()[0])
                raise ValueError(
                    f"the model scores NaN for user {int(task.users[row])} (row {row}): "
                    "user_emb or item_emb (or the scorer) holds non-finite values"
                )
            if k_fetch > k_top:
                last = values[:, k_top - 1]
                split = (values[:, k_top] == last) & (last != float("-inf"))
                if bool(split.any()):
                    rows = split.nonzero().flatten()
                    # Truth items scoring the level (those inside are subtracted later).
                    t_lo, t_hi = t_ptr[start], t_ptr[end]
                    pair_rows = truth_rows[t_lo:t_hi] - start
                    at_level = flat[truth_keys[t_lo:t_hi] - start * m] == last[pair_rows]
                    counts = torch.bincount(pair_rows[at_level], minlength=end - start)
                    tail_truth[start + rows] = counts[rows]
                    # Tied items beyond the cut: all tied items minus those in the top list.
                    inside = (values[rows, :k_top] == values[rows, k_top - 1 : k_top]).sum(1)
                    if 2 * rows.numel() > end - start:  # most rows: count in place
                        tied = _count_equal(scores, last.unsqueeze(1))[rows]
                    else:
                        tied = _count_equal(scores.index_select(0, rows), last[rows].unsqueeze(1))
                    tail_size[start + rows] = tied - inside
        del scores_buf

        values = top_values
        query = top_index.add_(torch.arange(0, n * m, m, device=device).unsqueeze(1))
        pos = torch.searchsorted(truth_keys, query).clamp_(max=truth_keys.numel() - 1)
        hits = truth_keys[pos] == query
        hits &= values != float("-inf")
        if bool(tail_size.any()):
            inside_truth = (hits & (values == values[:, -1:])).sum(1)
            tail_truth = torch.where(tail_size > 0, tail_truth - inside_truth, 0)
        else:
            tail_size = tail_truth = None

        num_truth = task.num_truth.to(device)
        ranking = Ranking.from_top(values, hits, num_truth, tail_size, tail_truth)
        out = ranking_metrics(ranking, self.ks, self.metrics)
        if sampler is not None:
            out.update({key: value / num_truth for key, value in sampled_sums.items()})
        return {key: value.cpu() for key, value in out.items()}
