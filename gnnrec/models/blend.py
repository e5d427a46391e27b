r"""Late fusion: other models' scores, standardised per user, summed with per-group weights."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from gnnrec.models.base import Recommender
from gnnrec.nn.scoring import BlockScores, Scorer, ranking_inputs

__all__ = ["Blend", "BlendScorer"]

log = logging.getLogger(__name__)

NORMALIZE = ("zscore", "none")


class Blend(Recommender):
    r"""A weighted sum of other models' scores, with one set of weights for cold users.

    .. math::
        \hat{y}_{ui} = \sum_c w_c(u)\, \frac{s^c_{ui} - \mu^c_u}{\sigma^c_u}

    where :math:`s^c_{ui}` is component :math:`c`'s score, :math:`\mu^c_u` and
    :math:`\sigma^c_u` its mean and (population) standard deviation over the target
    domain's items for user :math:`u` (the catalogue the evaluator ranks, whichever items
    a caller asks about, so that a pair's score does not depend on the other items asked
    for and no held-out item is singled out; a constant row standardises to zeros), and :math:`w_c(u)` is
    ``weights[c]`` for a user with training interactions in the target domain and
    ``cold_weights[c]`` for one without (the split's cold users, known from training
    rows alone). ``normalize="none"`` sums the raw scores.

    The components are models of finished runs (a run folder: the model is rebuilt on
    this run's data and split and given its checkpoint's weights; a run of other data or
    another split is refused) or model configs fitted here (item-KNN, EASE, GF-CF, Pop),
    through :attr:`~gnnrec.models.base.TrainingData.load_model`. Nothing is trained:
    the weights are hyperparameters, chosen on validation like any other
    (``hparams_search=blend_optuna``). A degree gate between a text model (for cold
    users) and a neighbourhood model (for warm ones) is the intended use.

    Args:
        components: ``name -> run folder`` or ``name -> _partial_ model constructor``.
        weights: ``name -> weight`` (finite, ``>= 0``, not all 0) for warm users; every
            component needs one.
        load_model: Passed in by the run.
        num_users: Passed in by the run.
        item_domain: ``[num_items]``, passed in by the run.
        target_domain: Passed in by the run.
        train_users: Passed in by the run.
        train_items: Passed in by the run.
        cold_weights: As ``weights``, for users without target-domain training
            interactions; ``None``: ``weights``.
        normalize: ``zscore`` (per user, over the target domain's items) or ``none``.

    Shapes:
        forward: ``() -> Scorer`` of ``[num_users, num_items]`` scores
    """

    trains = False

    def __init__(
        self,
        components: Mapping[str, Any],
        weights: Mapping[str, float],
        load_model: Callable[[Any], Recommender],
        num_users: int,
        item_domain: Tensor,
        target_domain: int,
        train_users: Tensor,
        train_items: Tensor,
        cold_weights: Mapping[str, float] | None = None,
        normalize: str = "zscore",
    ) -> None:
        super().__init__()
        names = list(components)
        if not names:
            raise ValueError("components is empty: name at least one run folder or model config")
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize={normalize!r}: expected one of {', '.join(NORMALIZE)}")
        warm_w = _weights(weights, names, "weights")
        cold_w = warm_w if cold_weights is None else _weights(cold_weights, names, "cold_weights")
        self.names = names
        self.normalize = normalize
        # a list, not a ModuleDict: a component may be called "pop" or "items"
        self.parts = torch.nn.ModuleList(load_model(components[name]) for name in names)
        for p in self.parts.parameters():
            p.requires_grad_(False)
        in_target = item_domain[train_items] == target_domain
        warm = torch.zeros(num_users, dtype=torch.bool)
        warm[train_users[in_target]] = True
        self.register_buffer("warm", warm, persistent=False)
        self.register_buffer(
            "warm_weights", torch.tensor(warm_w, dtype=torch.float64), persistent=False
        )
        self.register_buffer(
            "cold_weights", torch.tensor(cold_w, dtype=torch.float64), persistent=False
        )
        self.num_items = int(item_domain.numel())
        reference = torch.nonzero(item_domain == target_domain).flatten()
        self.register_buffer("reference", reference, persistent=False)

    def forward(self) -> BlendScorer:
        with torch.no_grad():
            outputs = [ranking_inputs(part()) for part in self.parts]
        return BlendScorer(
            outputs,
            self.warm,
            self.warm_weights,
            self.cold_weights,
            self.reference,
            self.num_items,
            self.normalize,
        )

    def extra_repr(self) -> str:
        pairs = ", ".join(
            f"{n}: {w:g}/{c:g}"
            for n, w, c in zip(
                self.names, self.warm_weights.tolist(), self.cold_weights.tolist(), strict=True
            )
        )
        return f"weights warm/cold {{{pairs}}}, normalize={self.normalize}"


def _weights(given: Mapping[str, float], names: list[str], key: str) -> list[float]:
    missing = [n for n in names if n not in given]
    extra = [n for n in given if n not in names]
    if missing or extra:
        raise ValueError(
            f"{key} must give one weight per component ({', '.join(names)}): "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(map(str, extra))}" if extra else "",
                )
                if part
            )
        )
    out = []
    for name in names:
        value = float(given[name])
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{key}.{name}={given[name]!r}: expected a finite weight >= 0")
        out.append(value)
    if not any(out):
        raise ValueError(f"{key}: every weight is 0; give at least one component a weight > 0")
    return out


class BlendScorer(Scorer):
    """Blocks of the weighted sum of components' standardised scores (see :class:`Blend`).

    Args:
        outputs: Per component, its :func:`~gnnrec.nn.scoring.ranking_inputs`:
            ``(user_emb, item_emb)`` tables or ``(scorer, None)``.
        warm: ``[num_users]`` bool, users weighted with ``warm_weights``.
        warm_weights: ``[C]`` float64.
        cold_weights: ``[C]`` float64, for the other users.
        reference: ``[R]`` items over which each user's mean and standard deviation are
            taken (the target domain's), whatever items are asked for.
        num_items: Items of the catalogue.
        normalize: ``zscore`` or ``none``.
    """

    def __init__(
        self,
        outputs: list[tuple[Tensor | Scorer, Tensor | None]],
        warm: Tensor,
        warm_weights: Tensor,
        cold_weights: Tensor,
        reference: Tensor,
        num_items: int,
        normalize: str = "zscore",
    ) -> None:
        super().__init__(warm.numel(), num_items, "cpu", torch.float64)
        self.outputs = outputs
        self.reference = reference.cpu()
        self.warm = warm.cpu()
        self.weights = torch.stack([cold_weights.cpu(), warm_weights.cpu()])  # [2, C]
        self.normalize = normalize

    def against(self, items: Tensor) -> BlockScores:
        items = items.cpu()
        # Every component scores the reference items (for the per-user statistics); the
        # requested ones are picked out of them when they are all reference items.
        slot = torch.full((self.num_items,), -1, dtype=torch.long)
        slot[self.reference] = torch.arange(self.reference.numel())
        picked = slot[items]
        inside = bool((picked >= 0).all())
        ref_blocks = [self._block(out, self.reference) for out in self.outputs]
        item_blocks = None if inside else [self._block(out, items) for out in self.outputs]

        def scores(users: Tensor) -> Tensor:
            users = users.cpu()
            weight = self.weights[self.warm[users].long()]  # [B, C]
            total = torch.zeros(users.numel(), items.numel(), dtype=torch.float64)
            for c in range(len(self.outputs)):
                w = weight[:, c : c + 1]
                if not torch.any(w):
                    continue  # no user of this block weights it: skip its scores
                ref = ref_blocks[c](users).to("cpu", torch.float64)
                s = ref[:, picked] if inside else item_blocks[c](users).to("cpu", torch.float64)
                if self.normalize == "zscore":
                    mean = ref.mean(dim=1, keepdim=True)
                    std = (ref - mean).pow(2).mean(dim=1, keepdim=True).sqrt()
                    s = torch.where(std > 0, (s - mean) / torch.where(std > 0, std, 1.0), 0.0)
                total += w * s
            return total

        return scores

    @staticmethod
    def _block(output: tuple[Tensor | Scorer, Tensor | None], items: Tensor) -> BlockScores:
        first, second = output
        if isinstance(first, Scorer):
            return first.against(items)
        table = second[items.to(second.device)]

        def block(users: Tensor) -> Tensor:
            return first[users.to(first.device)] @ table.T

        return block
