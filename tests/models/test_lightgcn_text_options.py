"""LightGCNText's cold-start options: item bias, gated ID fusion, ID-text alignment."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gnnrec.config import compose_config
from gnnrec.errors import ConfigError
from gnnrec.models import BPRLoss, LightGCNText, SoftmaxLoss
from gnnrec.models.lightgcn_text import info_nce
from gnnrec.nn import LayerMeanPropagation
from gnnrec.run import build_model, check_config
from tests.models.test_contract import TRAIN, tiny_data

USERS = torch.tensor([0, 1, 2, 3, 0])
POS = torch.tensor([4, 5, 6, 7, 4])
NEG = torch.tensor([[8], [0], [5], [8], [1]])


def text_model(**options) -> LightGCNText:
    data = tiny_data()
    torch.manual_seed(0)
    return LightGCNText(
        data.num_users,
        data.num_items,
        data.adj,
        data.item_text_emb,
        data.train_users,
        data.train_items,
        item_counts=data.item_counts,
        **{"embedding_dim": 4, "hidden_dim": 8, **options},
    )


def counts() -> np.ndarray:
    """Training interactions per item, from the table itself."""
    return TRAIN["item_idx"].value_counts().reindex(range(9), fill_value=0).to_numpy()


def degrees() -> tuple[np.ndarray, np.ndarray]:
    """Distinct training neighbours of every user and item, from the table itself."""
    pairs = TRAIN[["user_idx", "item_idx"]].drop_duplicates()
    users = pairs["user_idx"].value_counts().reindex(range(6), fill_value=0).to_numpy()
    items = pairs["item_idx"].value_counts().reindex(range(9), fill_value=0).to_numpy()
    return users, items


def dot_scores(model: LightGCNText) -> torch.Tensor:
    user_emb, item_emb = model()
    return user_emb @ item_emb.t()


# ------------------------------------------------------------------------ defaults


def test_defaults_are_the_text_only_and_the_added_id_model_as_before():
    for options, keys in (
        ({}, ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"]),
        ({"id_embedding": True}, ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"]),
    ):
        model = text_model(**options)
        if options:
            keys = [*keys, "id_embedding.weight"]
        assert list(model.state_dict()) == keys  # no new parameter: old checkpoints load
        x0 = model.mlp(model.text)
        if options:
            x0 = x0 + model.id_embedding.weight
        expected = F.normalize(LayerMeanPropagation.apply(model.adj, x0, model.alpha), dim=-1)
        user_emb, item_emb = model()
        assert user_emb.shape == (6, 4) and item_emb.shape == (9, 4)  # no bias column
        torch.testing.assert_close(torch.cat([user_emb, item_emb]), expected, rtol=0, atol=0)
        # the same, propagated by dense powers of the adjacency
        a = model.adj.to_dense()
        dense = sum(w * torch.linalg.matrix_power(a, k) @ x0 for k, w in enumerate(model.alpha))
        torch.testing.assert_close(torch.cat(model()), F.normalize(dense, dim=-1))
        out = model.encode(USERS, POS)
        assert model.auxiliary_loss(out, USERS, POS, NEG) == 0.0


def test_the_option_values_select_the_parts():
    assert text_model().fusion == "none" and text_model(id_embedding=False).id_embedding is None
    assert text_model(id_embedding=True).fusion == "add"
    assert text_model(id_embedding="add").fusion == "add"
    model = text_model(id_embedding="gate", item_bias="logpop", align_weight=0.1)
    assert repr(model).endswith(
        "id_embedding=gate, item_bias=logpop, align_weight=0.1, order=project_then_propagate, "
        "cold_view=0.0)"
    )


# ------------------------------------------------------------------------ item bias


def test_logpop_scores_are_the_cosines_plus_beta_log_count():
    model = text_model(item_bias="logpop", bias_init=0.7)
    plain = text_model()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and unexpected == ["beta"]
    bias = 0.7 * np.log1p(counts())
    assert bias[8] == 0.0  # item 8 has no training interaction
    expected = dot_scores(plain) + torch.tensor(bias, dtype=torch.float32)
    torch.testing.assert_close(dot_scores(model), expected)
    user_emb, item_emb = model()
    assert user_emb.shape == (6, 5) and torch.equal(user_emb[:, -1], torch.ones(6))
    assert (user_emb[:, :4].norm(dim=1) - 1).abs().max() < 1e-5  # the cosine part is kept
    # counted from train_items when the run does not pass item_counts
    data = tiny_data()
    own = LightGCNText(6, 9, data.adj, data.item_text_emb, data.train_users, data.train_items,
                       item_bias="logpop", bias_init=0.7)  # fmt: skip
    torch.testing.assert_close(own.item_bias_values(), torch.tensor(bias, dtype=torch.float32))


def test_learned_bias_starts_at_zero_and_adds_to_the_scores():
    model = text_model(item_bias="learned")
    plain = text_model()
    plain.load_state_dict(model.state_dict(), strict=False)
    assert torch.count_nonzero(model.bias) == 0
    # equal up to rounding: the bias rides as an extra column, so BLAS sums one more term
    torch.testing.assert_close(dot_scores(model), dot_scores(plain), rtol=1e-6, atol=1e-7)
    bias = torch.linspace(-1, 1, 9)
    with torch.no_grad():
        model.bias.copy_(bias)
    torch.testing.assert_close(dot_scores(model), dot_scores(plain) + bias)


@pytest.mark.parametrize("loss", [BPRLoss(l2=1e-4), SoftmaxLoss(temperature=0.2)])
def test_gradients_reach_the_bias_and_gate_parameters(loss):
    for options, names in (
        ({"item_bias": "logpop", "bias_init": 0.5}, ["beta"]),
        ({"item_bias": "learned"}, ["bias"]),
        ({"id_embedding": "gate"}, ["user_gate", "item_gate", "id_embedding.weight"]),
    ):
        model = text_model(**options)
        loss(model, USERS, POS, NEG).backward()
        grads = dict(model.named_parameters())
        for name in names:
            assert grads[name].grad is not None and grads[name].grad.abs().sum() > 0, name
        if options.get("item_bias") == "learned":  # only the batch's items have scores
            touched = torch.zeros(9, dtype=torch.bool)
            touched[POS] = touched[NEG.reshape(-1)] = True
            assert (model.bias.grad[~touched] == 0).all()


# ----------------------------------------------------------------------------- gate


def test_gate_follows_the_degree_and_cold_items_lean_on_text():
    model = text_model(id_embedding="gate", gate_init=[0.5, -1.0])
    with torch.no_grad():
        model.item_gate.copy_(torch.tensor([2.0, -3.0]))  # items: their own pair
    user_degree, item_degree = degrees()
    assert item_degree[8] == 0
    g_user = 1 / (1 + np.exp(-(0.5 * np.log1p(user_degree) - 1.0)))
    g_item = 1 / (1 + np.exp(-(2.0 * np.log1p(item_degree) - 3.0)))
    g = torch.tensor(np.concatenate([g_user, g_item]), dtype=torch.float32)[:, None]
    torch.testing.assert_close(model.gate(), g)
    assert model.gate()[6 + 8].item() == pytest.approx(1 / (1 + math.exp(3.0)))  # sigmoid(b)
    ids, text = model.id_embedding.weight, model.mlp(model.text)
    torch.testing.assert_close(model.layer0(), g * ids + (1 - g) * text)
    torch.testing.assert_close(torch.cat(model.encode().ego), g * ids + (1 - g) * text)


def test_gate_counts_a_repeated_interaction_once():
    data = tiny_data()
    users = torch.cat([data.train_users, torch.tensor([0, 0])])
    items = torch.cat([data.train_items, torch.tensor([4, 4])])  # (0, 4) twice more
    model = LightGCNText(6, 9, data.adj, data.item_text_emb, users, items, id_embedding="gate")
    user_degree, item_degree = degrees()
    expected = np.log1p(np.concatenate([user_degree, item_degree]))
    torch.testing.assert_close(model.log_degree, torch.tensor(expected, dtype=torch.float32))


# ------------------------------------------------------------------------ alignment


def test_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cos: s00 = 1, s01 = 1/sqrt2, s10 = 0, s11 = 1/sqrt2; logits 2s (tau = 0.5)
    e, c = math.exp, 2 / 2**0.5
    rows = [-math.log(e(2) / (e(2) + e(c))), -math.log(e(c) / (1 + e(c)))]
    cols = [-math.log(e(2) / (e(2) + 1)), math.log(2)]  # column 1: two equal cosines
    expected = 0.5 * (sum(rows) / 2 + sum(cols) / 2)
    assert info_nce(a, p, 0.5).item() == pytest.approx(expected, rel=1e-6)
    assert info_nce(a[:1], p[:1], 0.5).item() == 0.0  # one row: nothing to contrast


def reference_alignment(ids, text, nodes, temperature):
    """Symmetric InfoNCE over ``nodes`` in float64 loops."""
    a = [ids[n] / np.linalg.norm(ids[n]) for n in nodes]
    p = [text[n] / np.linalg.norm(text[n]) for n in nodes]
    s = np.array([[ai @ pj for pj in p] for ai in a]) / temperature
    total = 0.0
    for n in range(len(nodes)):
        total -= s[n, n] - np.log(np.exp(s[n]).sum())
        total -= s[n, n] - np.log(np.exp(s[:, n]).sum())
    return total / (2 * len(nodes))


@pytest.mark.parametrize("fusion", ["add", "gate"])
def test_alignment_is_an_infonce_of_the_batch_nodes(fusion):
    model = text_model(id_embedding=fusion, align_weight=0.3, align_temperature=0.25)
    out = model.encode(USERS, POS)
    ids = model.id_embedding.weight.detach().double().numpy()
    text = model.mlp(model.text).detach().double().numpy()
    users = [0, 1, 2, 3]  # distinct; user 0 is twice in the batch
    items = [6 + i for i in (4, 5, 6, 7)]
    expected = (
        0.3
        * 0.5
        * (
            reference_alignment(ids, text, users, 0.25)
            + reference_alignment(ids, text, items, 0.25)
        )
    )
    value = model.auxiliary_loss(out, USERS, POS, NEG)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    # the losses add it to the ranking term with the step's batch
    without = text_model(id_embedding=fusion)
    without.load_state_dict(model.state_dict())
    for loss in (BPRLoss(l2=1e-4), SoftmaxLoss(temperature=0.2)):
        total = loss(model, USERS, POS, NEG) - loss(without, USERS, POS, NEG)
        assert total.item() == pytest.approx(expected, rel=1e-4)
    value.backward()  # it trains the ID embeddings of the batch's nodes and the MLP
    grad = model.id_embedding.weight.grad.abs().sum(1)
    assert (grad[users + items] > 0).all() and (grad[[4, 5, 6 + 8]] == 0).all()
    assert model.mlp[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="auxiliary_loss\\(out, users, pos, neg\\)"):
        model.auxiliary_loss()


# ------------------------------------------------------------------ refused values


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"id_embedding": "gat"}, "model.id_embedding must be false, true .* got 'gat'"),
        ({"id_embedding": 1}, "model.id_embedding must be .* got 1"),
        ({"item_bias": "pop"}, "model.item_bias must be one of .* got 'pop'"),
        ({"align_weight": 0.1}, "model.align_weight=0.1 .* model.id_embedding=false has none"),
        ({"id_embedding": "add", "align_weight": -1.0}, "model.align_weight must be >= 0"),
        ({"id_embedding": "add", "align_temperature": 0.0}, "align_temperature must be positive"),
        ({"id_embedding": "gate", "gate_init": [1.0]}, "model.gate_init must be two numbers"),
        ({"order": "propagate"}, "model.order must be one of .* got 'propagate'"),
    ],
)
def test_bad_values_fail_naming_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        text_model(**options)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.id_embedding=gat"], "model.id_embedding=gat: expected true, false, 'add' or"),
        (["model.item_bias=pop"], "model.item_bias=pop: expected one of 'none', 'learned'"),
        (["model.align_weight=0.5"], "LightGCNText: model.align_weight=0.5 aligns ID"),
        (["model.id_embedding=gate", "model.gate_init=[1]"], "LightGCNText: model.gate_init"),
        (["model.order=propagate"], "model.order=propagate: expected one of 'project_then_propag"),
    ],
)
def test_bad_values_fail_at_start_before_data_is_loaded(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_config(compose_config(["model=lightgcn_text", "loss=softmax", *overrides]))


# ----------------------------------------------------------- every combination, by config

COMBOS = [
    (bias, fusion, align, user, order)
    for bias, fusion, align, user, order in itertools.product(
        ["none", "learned", "logpop"],
        ["false", "true", "add", "gate"],
        [0.0, 0.1],
        ["mean", "profile"],
        ["project_then_propagate", "propagate_then_project"],
    )
    if not (align and fusion == "false")
]


@pytest.mark.parametrize(("bias", "fusion", "align", "user", "order"), COMBOS)
def test_every_option_combination_keeps_the_model_contract(bias, fusion, align, user, order):
    cfg = compose_config(
        [
            f"model.order={order}",
            "model=lightgcn_text",
            "loss=softmax",
            "model.embedding_dim=8",
            "model.hidden_dim=8",
            f"model.item_bias={bias}",
            "model.bias_init=0.5",
            f"model.id_embedding={fusion}",
            f"model.align_weight={align}",
            f"model.user_input={user}",
        ]
    )
    check_config(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.model, tiny_data())
    user_emb, item_emb = model()
    out = model.encode(USERS, POS)
    targets = torch.tensor([[4, 5], [6, 7], [8, 4], [5, 8], [7, 6]])
    expected = (user_emb[USERS].unsqueeze(1) * item_emb[targets]).sum(-1)
    torch.testing.assert_close(model.score(out, USERS, targets), expected)
    torch.testing.assert_close(model.score(out, USERS, targets[:, 0]), expected[:, 0])
    candidates = torch.tensor([4, 5, 6, 7, 8])
    torch.testing.assert_close(
        model.score_matrix(out, USERS, candidates), user_emb[USERS] @ item_emb[candidates].t()
    )
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(model.parameter_groups(), lr=0.05)
    before = {n: p.detach().clone() for n, p in params.items()}
    value = SoftmaxLoss(temperature=0.15, l2=0.1)(model, USERS, POS, NEG)
    assert torch.isfinite(value)
    value.backward()
    opt.step()
    assert all(not torch.equal(before[n], p) for n, p in params.items()), [
        n for n, p in params.items() if torch.equal(before[n], p)
    ]


# ------------------------------------------------------ propagate_then_project (decoupled)

DECOUPLED = {"order": "propagate_then_project"}


def test_decoupled_rows_are_the_mlp_of_the_unit_norm_propagated_text():
    model = text_model(**DECOUPLED)
    plain = text_model()
    a = plain.adj.to_dense()
    propagated = sum(
        w * torch.linalg.matrix_power(a, k) @ plain.text for k, w in enumerate(plain.alpha)
    )
    torch.testing.assert_close(model.text, F.normalize(propagated, dim=-1))
    # item 8 has no edge: its row is its own text, scaled to unit norm
    torch.testing.assert_close(model.text[6 + 8], F.normalize(plain.text[6 + 8], dim=0))
    user_emb, item_emb = model()
    torch.testing.assert_close(
        torch.cat([user_emb, item_emb]), F.normalize(model.mlp(model.text), dim=-1)
    )


def test_with_a_linear_map_the_two_orders_give_the_same_scores():
    models = []
    for order in ("project_then_propagate", "propagate_then_project"):
        model = text_model(hidden_dim=0, order=order)
        with torch.no_grad():
            model.mlp[0].bias.zero_()  # the bias does not commute with propagation
        models.append(model)
    first, second = (dot_scores(m) for m in models)
    torch.testing.assert_close(first, second)
    # the bias (like a nonlinear MLP) does not commute: two models
    with torch.no_grad():
        for m in models:
            m.mlp[0].bias.fill_(0.5)
    assert not torch.allclose(dot_scores(models[0]), dot_scores(models[1]), atol=1e-3)


@pytest.mark.parametrize("fusion", [False, "gate"])
def test_a_decoupled_step_projects_each_batch_node_once_and_no_other(fusion):
    model = text_model(**DECOUPLED, id_embedding=fusion, align_weight=0.1 if fusion else 0.0)
    seen: list[int] = []
    model.mlp.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[0]))
    users, pos, neg = (
        torch.tensor([0, 1, 0]),
        torch.tensor([4, 5, 4]),
        torch.tensor([[5], [6], [4]]),
    )
    loss = SoftmaxLoss(temperature=0.2, l2=0.1, in_batch_negatives=False)
    value = loss(model, users, pos, neg)
    value.backward()
    # users 0 and 1, items 4, 5 and 6: five nodes, each through the MLP once
    assert sum(seen) == 5
    # and the loss is the one of the full tables' scores
    user_emb, item_emb = model()
    scores = user_emb[users] @ item_emb.t()
    logits = torch.stack([scores[range(3), pos], scores[range(3), neg[:, 0]]], 1) / 0.2
    ego = model.layer0()
    l2 = 0.5 * sum(ego[n].square().sum() for n in [*users, *(pos + 6), *(neg[:, 0] + 6)]) / 3
    expected = -logits.log_softmax(1)[:, 0].mean() + 0.1 * l2
    expected = expected + model.auxiliary_loss(model.encode(users, pos), users, pos, neg)
    torch.testing.assert_close(value, expected)


# ------------------------------------------------- cold_view: the source-only user rows


def cold_view_model(p: float, **options) -> LightGCNText:
    data = tiny_data()
    return text_model(
        **DECOUPLED,
        cold_view=p,
        item_domain=data.item_domain,
        target_domain=data.target_domain,
        **options,
    )


def test_cold_view_rows_are_those_of_the_model_trained_on_source_edges_only():
    data = tiny_data()
    source = (data.item_domain[data.train_items] != data.target_domain).numpy()
    src_users, src_items = data.train_users[source], data.train_items[source]
    from gnnrec.nn import bipartite_adjacency

    # an independent path: the decoupled model built on the source-domain edges alone
    torch.manual_seed(0)
    src_model = LightGCNText(
        6,
        9,
        bipartite_adjacency(src_users, src_items, 6, 9),
        data.item_text_emb,
        src_users,
        src_items,
        embedding_dim=4,
        hidden_dim=8,
        order="propagate_then_project",
    )
    model = cold_view_model(0.5)
    torch.testing.assert_close(model.cold_text, src_model.text[:6])
    # users 0-3 and 5 have target-domain training edges; user 4 is cold (source only)
    assert model.swappable.tolist() == [True, True, True, True, False, True]
    # a cold user's source view is its own row (one layer of it at least: same items)
    one = cold_view_model(0.5, num_layers=1)
    torch.testing.assert_close(one.cold_text[4], one.text[4])
    assert not torch.allclose(one.cold_text[0], one.text[0])


def test_cold_view_swaps_warm_users_in_training_only():
    model = cold_view_model(1.0)
    users = torch.tensor([0, 4, 5])
    items = torch.tensor([4, 4, 5])
    model.train()
    rows = model.encode(users, items).final
    # p = 1: every warm user is its source view, the cold user 4 its own row, items theirs
    expected_users = F.normalize(
        model.mlp(torch.stack([model.cold_text[0], model.text[4], model.cold_text[5]])), dim=-1
    )
    torch.testing.assert_close(rows.final(users), expected_users)
    torch.testing.assert_close(
        rows.final(items + 6), F.normalize(model.mlp(model.text[items + 6]), dim=-1)
    )
    # evaluation (and forward) never swaps
    model.eval()
    user_emb, _ = model()
    torch.testing.assert_close(user_emb, F.normalize(model.mlp(model.text[:6]), dim=-1))
    torch.testing.assert_close(model.encode(users, items).final.final(users), user_emb[users])


def test_cold_view_draws_each_warm_user_with_probability_p():
    model = cold_view_model(0.25)
    model.train()
    torch.manual_seed(0)
    draws = torch.stack([model._swapped() for _ in range(4000)]).float().mean(0)
    assert draws[4] == 0  # cold: never
    # five warm users, 4000 draws each: the share within 4 binomial s.d. of 0.25
    assert (draws[model.swappable] - 0.25).abs().max() < 4 * math.sqrt(0.25 * 0.75 / 4000)
    off = text_model(**DECOUPLED)
    off.train()
    assert off._swapped() is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cold_view": 1.5}, r"model.cold_view is a probability in \[0, 1\], got 1.5"),
        ({"cold_view": 0.5, "order": "project_then_propagate"}, "set model.order=propagate_th"),
        ({"cold_view": 0.5, "user_input": "profile"}, "model.user_input='profile' has no such"),
    ],
)
def test_cold_view_bad_values_fail_naming_the_key(options, message):
    data = tiny_data()
    with pytest.raises(ValueError, match=message):
        text_model(
            **{"order": "propagate_then_project", **options},
            user_profiles=data.user_profiles,
            item_domain=data.item_domain,
            target_domain=data.target_domain,
        )
    overrides = [f"model.{k}={v}" for k, v in {**DECOUPLED, **options}.items()]
    with pytest.raises(ConfigError, match=message.replace("model.cold_view is", "cold_view is")):
        check_config(compose_config(["model=lightgcn_text", "loss=softmax", *overrides]))


def test_cold_view_trains_through_the_run_builder():
    cfg = compose_config(
        [
            "model=lightgcn_text",
            "loss=softmax",
            "model.order=propagate_then_project",
            "model.cold_view=0.5",
            "model.embedding_dim=8",
            "model.hidden_dim=8",
        ]
    )
    model = build_model(cfg.model, tiny_data())
    assert model.cold_view == 0.5 and model.swappable.sum() == 5
    model.train()
    loss = SoftmaxLoss(temperature=0.2)(model, USERS, POS, NEG)
    loss.backward()
    assert model.mlp[0].weight.grad.abs().sum() > 0
