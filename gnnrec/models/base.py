"""The model contract: what a run hands a model, and what it asks of one.

:class:`TrainingData` is built once per run from the split (and the text features); a
model's constructor names the fields it needs and :func:`build_from_data` passes exactly
those, failing with the list of available fields for any other. Models never see the
config or the dataset object.

:class:`Recommender` is the small base class the trainer, the losses and the evaluator
talk to:

* ``forward() -> (user_emb, item_emb)``: the representations the evaluator ranks by
  dot product; or ``forward() -> Scorer`` (:class:`gnnrec.nn.scoring.Scorer`) for a model
  whose scores are not a dot product of two tables that fit in memory (item-item models:
  item-KNN, EASE, GF-CF score ``x_u S`` from the user's sparse training row). The
  evaluator prepares the scorer once per candidate list (``Scorer.against(items)``) and
  asks it for one dense ``[chunk, num_candidates]`` block per chunk of users; masks, ties
  and the sampled protocol then work on that block as on a dot-product block. Such models
  have nothing to train (``trains = False``); ``score`` and ``score_matrix`` below ask the
  scorer, so the contract test holds for them too;
* ``encode(users, pos)``: everything one training step needs from one pass (by default
  the :meth:`forward` output and the layer-0 embeddings of :meth:`ego_embeddings`);
  ``(users, pos)`` are the step's supervision pairs, so a graph encoder can keep them
  out of its message passing (R-GCN's link-prediction training); others ignore them;
* ``score(out, users, items)`` / ``score_matrix(out, users, items)``: scores of pairs
  and of every user against a shared item list, by default dot products of ``out``;
  the losses score only through these, so a model with its own scoring (EMCDR, BiTGCF)
  is trained on the scores it ranks with;
* ``regularization(out, users, pos, neg)``: the L2 term of the batch's layer-0 rows;
* ``auxiliary_loss(out, users, pos, neg)``: an extra objective added as is, given the
  step's :meth:`encode` output and batch as the L2 term is (EMCDR's mapping loss ignores
  them; LightGCNText's ID-text alignment uses the batch's nodes and the text projection
  its ``encode`` leaves in ``out.extra``); every argument defaults to ``None``, so a
  batch-free term can be called as ``auxiliary_loss()``;
* ``parameter_groups()``: optimiser parameter groups (EMCDR puts its own L2 on the
  mapping there; groups without ``weight_decay`` take the optimiser's).

Capabilities a loss or sampler may depend on are class attributes
(:attr:`Recommender.domain_specific_scores`), checked at start, as are the model's own
option values that need no data (:meth:`Recommender.check_options`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gnnrec.nn.scoring import Scorer

__all__ = ["Recommender", "StepOutputs", "TrainingData", "build_from_data"]


@dataclass
class TrainingData:
    """What a run knows at training time, built once from the split.

    Everything here comes from training rows only (``split.train``) or from item and user
    side information; no held-out pair reaches it (``tests/test_leakage.py``). Costly
    fields are built on first access, so a model that does not name them never pays.

    Attributes:
        num_users: Number of users.
        num_items: Number of items of every domain (the whole catalogue).
        domains: Domain names; ``item_domain`` indexes this tuple.
        item_domain: ``[num_items]`` domain index of every item.
        target_domain: Index of the evaluated domain.
        train_users: ``[E]`` user of every training interaction (all domains).
        train_items: ``[E]`` item of every training interaction.
        graph: The training :class:`~torch_geometric.data.HeteroData` (built on first use).
        adj: ``[num_users + num_items]^2`` symmetric normalised CSR adjacency of the
            training edges, users first (:func:`gnnrec.nn.bipartite_adjacency`).
        item_counts: ``[num_items]`` training interactions per item.
        domain_masks: ``[num_domains, num_items]`` bool, item ``i`` in domain ``d``.
        knowledge_graph: The data's :class:`~gnnrec.data.knowledge.KnowledgeGraph`, or
            ``None``.
        item_text_emb: ``[num_items, d]`` item text embeddings, or ``None`` with
            ``encoder=none``.
        user_profiles: A function returning ``[num_users, d]`` embeddings of the users'
            profile texts (their most recent *training* items), encoded on the first call;
            ``None`` with ``encoder=none``. A function, because encoding profiles is costly
            and only models set to use them should call it.
        load_model: A function of a run folder or a ``_partial_`` model constructor that
            returns that model built on this run's training data, trained weights
            loaded, frozen, in eval mode (:class:`gnnrec.run.ModelLoader`: a run of other
            data or another split is refused); for models made of other models.
    """

    num_users: int
    num_items: int
    domains: tuple[str, ...]
    item_domain: Tensor
    target_domain: int
    train_users: Tensor
    train_items: Tensor
    builders: Mapping[str, Callable[[], Any]] = field(default_factory=dict, repr=False)

    LAZY: ClassVar[tuple[str, ...]] = (
        "graph",
        "adj",
        "item_counts",
        "domain_masks",
        "knowledge_graph",
        "item_text_emb",
        "user_profiles",
        "load_model",
    )
    """Fields built on first access, from ``builders`` or by the defaults below."""

    @classmethod
    def field_names(cls) -> list[str]:
        """Every name a constructor may ask for."""
        eager = [f.name for f in fields(cls) if f.name != "builders"]
        return [*eager, *cls.LAZY]

    @property
    def num_domains(self) -> int:
        return len(self.domains)

    def _build(self, name: str, default: Callable[[], Any] | None = None) -> Any:
        make = self.builders.get(name, default)
        return None if make is None else make()

    @cached_property
    def graph(self):
        return self._build("graph")

    @cached_property
    def adj(self) -> Tensor:
        from gnnrec.nn import bipartite_adjacency

        return self._build(
            "adj",
            lambda: bipartite_adjacency(
                self.train_users, self.train_items, self.num_users, self.num_items
            ),
        )

    @cached_property
    def item_counts(self) -> Tensor:
        return torch.bincount(self.train_items, minlength=self.num_items)

    @cached_property
    def domain_masks(self) -> Tensor:
        return self.item_domain.unsqueeze(0) == torch.arange(self.num_domains).unsqueeze(1)

    @cached_property
    def knowledge_graph(self):
        return self._build("knowledge_graph")

    @cached_property
    def item_text_emb(self) -> Tensor | None:
        return self._build("item_text_emb")

    @cached_property
    def user_profiles(self) -> Callable[[], Tensor] | None:
        make = self.builders.get("user_profiles")
        if make is None:
            return None
        cache: list[Tensor] = []

        def profiles() -> Tensor:
            if not cache:
                cache.append(make())
            return cache[0]

        return profiles

    @cached_property
    def load_model(self) -> Callable[[Any], Any] | None:
        return self._build("load_model")


_MISSING_HINTS = {
    "item_text_emb": "encoder=none is selected; choose a text encoder, e.g. encoder=minilm",
    "user_profiles": "encoder=none is selected; choose a text encoder, e.g. encoder=minilm",
    "knowledge_graph": "the data has no knowledge graph",
    "graph": "this run builds no training graph",
    "load_model": "this training data was built outside a run (gnnrec.run.training_data)",
}


def build_from_data(partial: Callable[..., Any], data: TrainingData, what: str = "model") -> Any:
    """Call a ``_partial_`` constructor with the :class:`TrainingData` fields it names.

    Arguments already set by the config are kept. A required argument that is neither
    set nor a field fails listing the fields; a field that is ``None`` in this run
    (text embeddings with ``encoder=none``) goes only to arguments that default to
    ``None``.

    Args:
        partial: ``hydra.utils.instantiate`` of a ``_partial_: true`` config.
        data: The run's training data.
        what: ``"model"`` or ``"sampler"``, for messages.
    """
    func = getattr(partial, "func", partial)
    preset = getattr(partial, "keywords", {})
    name = getattr(func, "__qualname__", repr(func))
    params = inspect.signature(func).parameters
    available = TrainingData.field_names()
    kwargs: dict[str, Any] = {}
    for arg, param in params.items():
        if arg in preset or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        required = param.default is inspect.Parameter.empty
        if arg not in available:
            if required:
                raise ValueError(
                    f"{what} {name} needs {arg!r}, which is neither set in its config nor "
                    f"training data; training data has {available}"
                )
            continue
        value = getattr(data, arg)
        if value is None:
            if required:
                hint = _MISSING_HINTS.get(arg, "this run cannot provide it")
                raise ValueError(f"{what} {name} needs {arg!r}: {hint}")
            continue
        kwargs[arg] = value
    return partial(**kwargs)


class StepOutputs:
    """What one training step computed from the model: ``final`` and ``ego`` pairs.

    ``final`` is what :meth:`Recommender.forward` returns: ``(user_emb, item_emb)``, or a
    :class:`~gnnrec.nn.scoring.Scorer`;
    ``ego`` the layer-0 ``(user_0, item_0)`` the L2 term applies to (``None``: nothing
    to regularise). Models may attach more (``extra``) for their own :meth:`score` or
    :meth:`auxiliary_loss`.
    """

    def __init__(
        self,
        final: tuple[Tensor, Tensor] | Scorer,
        ego: tuple[Tensor, Tensor] | None = None,
        extra: Any = None,
    ) -> None:
        self.final, self.ego, self.extra = final, ego, extra


def _gather(table: Tensor, index: Tensor) -> Tensor:
    """``table`` rows at ``index`` of any shape: ``[*index.shape, dim]``.

    ``index_select`` rather than ``table[index]``: its backward (``index_add_``) is 1.6x
    faster at a sampled-softmax step's ``8192 x 64`` rows (``benchmarks/bench_gather.py``).
    """
    return table.index_select(0, index.reshape(-1)).reshape(*index.shape, table.size(-1))


def squared_row_norms(table: Tensor, index: Tensor) -> Tensor:
    """``sum_{i in index} ||table[i]||^2``, repeated rows counted each time.

    When ``index`` has more entries than ``table`` has rows (``K`` negatives per pair),
    it weights every row's squared norm by its count instead of gathering the rows: the
    same sum (up to rounding) and gradient, at ``rows x dim`` instead of
    ``len(index) x dim`` (``benchmarks/bench_sampled_step.py``).
    """
    index = index.reshape(-1)
    if index.numel() <= table.size(0):
        return table.index_select(0, index).square().sum()
    counts = torch.bincount(index, minlength=table.size(0)).to(table.dtype)
    return (counts * table.square().sum(-1)).sum()


def with_item_bias(users: Tensor, items: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """``users [U, d]`` and ``items [I, d]`` with one more column, ``1`` and ``bias [I]``,
    so that their dot products are the scores plus the item bias."""
    ones = users.new_ones(users.size(0), 1)
    return torch.cat([users, ones], dim=1), torch.cat([items, bias.to(items.dtype)[:, None]], dim=1)


def pair_scores(u: Tensor, v: Tensor) -> Tensor:
    """Dot products of ``u [B, d]`` with ``v [B, d]`` (``[B]``) or ``v [B, K, d]``
    (``[B, K]``, a batched matrix product: no ``[B, K, d]`` product tensor)."""
    if v.dim() == 2:
        return (u * v).sum(-1)
    return torch.bmm(v, u.unsqueeze(-1)).squeeze(-1)


class Recommender(nn.Module):
    """Base class of every gnnrec model; see the module docstring for the contract.

    Subclasses implement :meth:`forward`, and :meth:`ego_embeddings` when they have
    layer-0 parameters to regularise, or :meth:`encode` when one pass gives both more
    cheaply (a text projection, a graph encoder).
    """

    trains: ClassVar[bool] = True
    """False for models with nothing to train (popularity, zero-shot text, random): the
    run only evaluates them, and the loss and sampler settings do not apply."""

    domain_specific_scores: ClassVar[bool] = False
    """True when a user's score of an item depends on the item's domain beyond the
    item's embedding (a user factor per domain): then scores of items of different
    domains are not comparable, and losses or samplers that rank a positive against
    items of other domains cannot train the model."""

    @classmethod
    def check_options(cls, **options: Any) -> None:
        """Raise ``ValueError`` for option values that cannot work, before data is loaded.

        ``options`` are the keys the model's config sets (without ``_target_``). The run
        calls this at start (:func:`gnnrec.run.check_config`), so a combination the
        constructor would refuse fails before data is loaded and text is encoded; the
        constructor still checks. Default: nothing to check.
        """

    def forward(self) -> tuple[Tensor, Tensor] | Scorer:
        """``([num_users, d], [num_items, d])``: what the evaluator ranks by dot product.

        Or a :class:`~gnnrec.nn.scoring.Scorer` that the evaluator asks for blocks of
        scores (item-item models; see the module docstring).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def ego_embeddings(self) -> tuple[Tensor, Tensor] | None:
        """Layer-0 ``(user_0, item_0)`` the L2 term applies to; ``None``: none."""
        return None

    def encode(self, users: Tensor | None = None, pos: Tensor | None = None) -> StepOutputs:
        """One pass for a training step: ``forward()`` and ``ego_embeddings()``."""
        return StepOutputs(self(), self.ego_embeddings())

    def score(self, out: StepOutputs, users: Tensor, items: Tensor) -> Tensor:
        """Scores of ``users[b]`` with ``items[b, ...]``: ``[B]`` or ``[B, K]`` items.

        The default is the dot product of ``out.final``; for target-domain items it must
        equal what :meth:`forward` ranks by (``tests/models`` checks every model).
        """
        if isinstance(out.final, Scorer):
            return out.final.pairs(users, items)
        user_emb, item_emb = out.final
        u = user_emb[users]
        return pair_scores(u, _gather(item_emb, items))

    def score_matrix(self, out: StepOutputs, users: Tensor, items: Tensor) -> Tensor:
        """``[B, N]`` scores of every user in ``users`` with every item of ``items``."""
        if isinstance(out.final, Scorer):
            return out.final.matrix(users, items)
        user_emb, item_emb = out.final
        return user_emb[users] @ item_emb[items].t()

    def regularization(
        self, out: StepOutputs, users: Tensor, pos: Tensor, neg: Tensor
    ) -> Tensor | float:
        r"""``\frac{1}{2|B|}\sum (\|e^{(0)}_u\|^2 + \|e^{(0)}_i\|^2 + \sum_j \|e^{(0)}_j\|^2)``.

        Over the batch's users, positives and every negative (``neg`` is ``[B, K]``).
        """
        if out.ego is None:
            return 0.0
        user0, item0 = out.ego
        total = user0[users].square().sum() + item0[pos].square().sum()
        if neg.numel():
            total = total + squared_row_norms(item0, neg)
        return 0.5 * total / users.numel()

    def auxiliary_loss(
        self,
        out: StepOutputs | None = None,
        users: Tensor | None = None,
        pos: Tensor | None = None,
        neg: Tensor | None = None,
    ) -> Tensor | float:
        """An extra objective term added to the loss as is (default: none).

        The losses pass the step's :meth:`encode` output and batch, as to
        :meth:`regularization`; a term that does not depend on the batch may ignore them.
        """
        return 0.0

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups; a group without ``weight_decay`` takes the optimiser's."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params}] if params else []

    @property
    def trainable(self) -> bool:
        """Whether the model has parameters to train (else the run only evaluates it)."""
        return any(p.requires_grad for p in self.parameters())
