"""EMCDR and BiTGCF on tiny hand-made graphs, the shared sparse helpers, and a short fit."""

import pytest
import torch

from gnnrec.config import compose_config
from gnnrec.models import EMCDR, BiTGCF, BPRLoss, TrainingData
from gnnrec.nn import SymmetricSpMM, bipartite_adjacency
from gnnrec.run import build_model
from gnnrec.train.sampler import NegativeSampler

# Users 0..4; items 0..2 in the source domain (0), items 3..5 in the target domain (1).
# User 0: both domains (overlap); 1: source only (cold-start in the target);
# 2: target only; 3: both; 4: no interaction.
ITEM_DOMAIN = torch.tensor([0, 0, 0, 1, 1, 1])
TRAIN_USERS = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 0])
TRAIN_ITEMS = torch.tensor([0, 1, 3, 1, 2, 4, 2, 5, 3])  # (0, 3) twice
TINY = dict(
    num_users=5,
    num_items=6,
    item_domain=ITEM_DOMAIN,
    domains=("src", "tgt"),
    target_domain=1,
    train_users=TRAIN_USERS,
    train_items=TRAIN_ITEMS,
)


def emcdr(**kwargs) -> EMCDR:
    torch.manual_seed(0)
    return EMCDR(**TINY, **{"embedding_dim": 4, "hidden_dim": 6, **kwargs})


def bitgcf(**kwargs) -> BiTGCF:
    torch.manual_seed(0)
    return BiTGCF(**TINY, **{"embedding_dim": 4, "num_layers": 2, **kwargs})


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: p.grad for name, p in model.named_parameters()}


# ---------------------------------------------------------------- shared sparse helpers


def test_bipartite_adjacency_matches_dense_formula():
    users = torch.tensor([0, 0, 1, 1, 0])
    items = torch.tensor([0, 2, 2, 2, 0])  # duplicates (0, 0) and (1, 2); user 2, item 1 isolated
    adj = bipartite_adjacency(users, items, 3, 3, dtype=torch.float64)
    assert adj.layout == torch.sparse_csr and adj.shape == (6, 6)
    assert adj._nnz() == 6  # 3 distinct edges, both directions
    # degrees: u0 2, u1 1, u2 0, i0 1, i1 0, i2 2
    s = 2**-0.5
    expected = torch.zeros(6, 6, dtype=torch.float64)
    expected[0, 3] = expected[3, 0] = s  # 1/sqrt(2*1)
    expected[0, 5] = expected[5, 0] = 0.5  # 1/sqrt(2*2)
    expected[1, 5] = expected[5, 1] = s  # 1/sqrt(1*2)
    torch.testing.assert_close(adj.to_dense(), expected)
    assert adj.to_dense()[2].abs().sum() == 0 and adj.to_dense()[4].abs().sum() == 0


def test_bipartite_adjacency_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="items in \\[0, 2\\)"):
        bipartite_adjacency(torch.tensor([0]), torch.tensor([2]), 1, 2)


def test_symmetric_spmm_forward_and_gradcheck():
    adj = bipartite_adjacency(TRAIN_USERS, TRAIN_ITEMS, 5, 6, dtype=torch.float64)
    x = torch.randn(11, 3, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(SymmetricSpMM.apply(adj, x), adj.to_dense() @ x)
    assert torch.autograd.gradcheck(lambda t: SymmetricSpMM.apply(adj, t), (x,))


# ---------------------------------------------------------------- EMCDR


def test_emcdr_shapes_repr_and_user_groups():
    model = emcdr()
    users, items = model()
    assert users.shape == (5, 4) and items.shape == (6, 4)
    assert model.overlap_users.tolist() == [0, 3]
    assert model.mapped_users.tolist() == [1]
    assert repr(model) == "EMCDR(5, 6, dim=4, mapping=mlp, overlap_users=2)"
    assert isinstance(model.mapping[1], torch.nn.Tanh)


def test_emcdr_cold_user_gets_mapped_source_factor():
    model = emcdr()
    users, items = model()
    torch.testing.assert_close(users[1], model.mapping(model.source_user.weight[1]))
    # users with target interactions, or none at all, keep their target factor
    torch.testing.assert_close(users[[0, 2, 3, 4]], model.target_user.weight[[0, 2, 3, 4]])
    torch.testing.assert_close(items, model.item.weight)


def test_emcdr_mapping_loss_trains_only_the_mapping():
    model = emcdr(mapping_weight=2.0)
    loss = model.auxiliary_loss()
    source = model.source_user.weight[[0, 3]]
    target = model.target_user.weight[[0, 3]]
    expected = 2.0 * (model.mapping(source) - target).square().mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    g = grads(model)
    assert g["source_user.weight"] is None and g["target_user.weight"] is None
    assert g["item.weight"] is None
    assert all(g[n].abs().sum() > 0 for n in g if n.startswith("mapping."))


def test_emcdr_target_triple_touches_only_target_factors():
    model = emcdr()
    users, pos, neg = torch.tensor([0]), torch.tensor([3]), torch.tensor([5])
    s_pos = model.score(model.encode(), users, pos)
    torch.testing.assert_close(s_pos[0], model.target_user.weight[0] @ model.item.weight[3])
    # for target items, training scores are what the evaluator ranks by
    user_emb, item_emb = model()
    torch.testing.assert_close(s_pos[0], user_emb[0] @ item_emb[3])
    model.mapping_weight = 0.0
    BPRLoss(l2=0.1)(model, users, pos, neg).backward()
    g = grads(model)
    assert g["source_user.weight"].abs().sum() == 0
    assert g["target_user.weight"][0].abs().sum() > 0
    assert g["item.weight"][[0, 1, 2, 4]].abs().sum() == 0
    assert g["item.weight"][[3, 5]].abs().sum(1).gt(0).all()
    assert all(g[n].abs().sum() == 0 for n in g if n.startswith("mapping."))


def test_emcdr_source_triple_uses_source_factors():
    model = emcdr(mapping="linear")
    out = model.encode()
    s_pos = model.score(out, torch.tensor([1]), torch.tensor([2]))
    torch.testing.assert_close(s_pos[0], model.source_user.weight[1] @ model.item.weight[2])
    assert isinstance(model.mapping, torch.nn.Linear) and model.mapping.bias is None
    reg = model.regularization(out, torch.tensor([1]), torch.tensor([2]), torch.tensor([[0]]))
    w = model.source_user.weight[1], model.item.weight[2], model.item.weight[0]
    torch.testing.assert_close(reg, 0.5 * sum(v.square().sum() for v in w))


def test_emcdr_item_bias_adds_to_both_domains_scores_and_reaches_mapped_users():
    model = emcdr(item_bias=True)
    assert repr(model).endswith("overlap_users=2, item_bias=True)")
    assert model.bias.tolist() == [0.0] * 6  # zero-initialised
    with torch.no_grad():
        model.bias.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    out = model.encode()
    # source pair (user 1, item 2) and target pair (user 0, item 3), by hand
    s = model.score(out, torch.tensor([1, 0]), torch.tensor([2, 3]))
    expected = torch.stack(
        [
            model.source_user.weight[1] @ model.item.weight[2] + 0.3,
            model.target_user.weight[0] @ model.item.weight[3] + 0.4,
        ]
    )
    torch.testing.assert_close(s, expected)
    # [B, K] negatives get their own items' biases
    neg = model.score(out, torch.tensor([0]), torch.tensor([[4, 5]]))
    torch.testing.assert_close(
        neg[0], model.target_user.weight[0] @ model.item.weight[[4, 5]].T + torch.tensor([0.5, 0.6])
    )
    # what the evaluator ranks: the mapped cold user 1 and warm user 0, plus b_i
    users, items = model()
    assert users.shape == (5, 5) and items.shape == (6, 5)
    mapped = model.mapping(model.source_user.weight[1])
    torch.testing.assert_close(users[1] @ items[4], mapped @ model.item.weight[4] + 0.5)
    torch.testing.assert_close(users[0] @ items[3], expected[1])
    # L2 sees the factors only: the regularisation equals the no-bias model's
    plain = emcdr()
    args = (torch.tensor([0]), torch.tensor([3]), torch.tensor([[5]]))
    torch.testing.assert_close(
        model.regularization(out, *args), plain.regularization(plain.encode(), *args)
    )
    BPRLoss(l2=0.1)(model, *args).backward()
    assert model.bias.grad[[3, 5]].abs().gt(0).all()
    assert model.bias.grad[[0, 1, 2, 4]].abs().sum() == 0


def test_emcdr_mapping_l2_is_the_mapping_groups_weight_decay():
    model = emcdr(mapping_l2=0.3)
    groups = model.parameter_groups()
    mapping = {id(p) for p in model.mapping.parameters()}
    assert [g.get("weight_decay") for g in groups] == [None, 0.3]
    assert {id(p) for p in groups[1]["params"]} == mapping
    assert not mapping & {id(p) for p in groups[0]["params"]}
    opt = torch.optim.Adam(groups, lr=0.1, weight_decay=0.01)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.3]


@pytest.mark.parametrize("cls", [EMCDR, BiTGCF])
def test_cross_domain_models_refuse_single_domain_data(cls):
    one = {**TINY, "item_domain": torch.zeros(6, dtype=torch.long), "domains": ("only",)}
    with pytest.raises(ValueError, match=f"model {cls.__name__} transfers .* one domain"):
        cls(**{**one, "target_domain": 0})
    # two domains, but no source-domain training edge at all
    target_only = {**TINY, "train_users": torch.tensor([2]), "train_items": torch.tensor([4])}
    with pytest.raises(ValueError, match="training interactions in the source domain"):
        cls(**target_only)


def test_emcdr_argument_errors():
    with pytest.raises(ValueError, match="model.mapping must be"):
        emcdr(mapping="gru")
    with pytest.raises(ValueError, match="model.activation must be"):
        emcdr(activation="relu6")
    with pytest.raises(ValueError, match="item_domain must have shape \\[6\\]"):
        EMCDR(**{**TINY, "item_domain": ITEM_DOMAIN[:5]})


# ---------------------------------------------------------------- BiTGCF


def test_bitgcf_shapes_repr_and_transfer_weights():
    model = bitgcf(specific_lambda=1.0)
    users, items = model()
    assert users.shape == (5, 4) and items.shape == (6, 4)
    assert repr(model) == "BiTGCF(5, 6, dim=4, num_layers=2)"
    # deduplicated counts (n_s, n_t): u0 (2, 1), u1 (2, 0), u2 (0, 1), u3 (1, 1), u4 (0, 0)
    # common users with lambda = 1: own weight (1 + n_own / (n_s + n_t)) / 2
    torch.testing.assert_close(
        model.source_weight.squeeze(1), torch.tensor([5 / 6, 1.0, 0.0, 0.75, 1.0])
    )
    torch.testing.assert_close(
        model.target_weight.squeeze(1), torch.tensor([4 / 6, 0.0, 1.0, 0.75, 1.0])
    )
    assert model.adj.shape == (16, 16) and model.adj._nnz() == 16


def test_bitgcf_matches_dense_reference():
    model = bitgcf(specific_lambda=0.5)
    adj = model.adj.to_dense()
    ws, wt = model.source_weight, model.target_weight

    def transfer(x):
        s, t, i = x[:5], x[5:10], x[10:]
        return torch.cat([ws * s + (1 - ws) * t, wt * t + (1 - wt) * s, i])

    x = transfer(torch.cat([model.source_user.weight, model.target_user.weight, model.item.weight]))
    layers = [x]
    for _ in range(2):
        layers.append(transfer(adj @ layers[-1]))
    ref = sum(layers) / 3
    users, items = model()
    torch.testing.assert_close(users, ref[5:10])
    torch.testing.assert_close(items, ref[10:])
    source, target, _ = model.propagate()
    out = model.encode()
    s_pos = model.score(out, torch.tensor([0, 0]), torch.tensor([0, 3]))
    s_neg = model.score(out, torch.tensor([0, 0]), torch.tensor([[2], [5]])).squeeze(1)
    torch.testing.assert_close(s_pos, torch.stack([source[0] @ items[0], target[0] @ items[3]]))
    torch.testing.assert_close(s_neg, torch.stack([source[0] @ items[2], target[0] @ items[5]]))


def test_bitgcf_cold_user_target_representation_comes_from_its_source_edges():
    model = bitgcf()
    source, target, _ = model.propagate()
    assert target[1].abs().sum() > 0
    torch.testing.assert_close(target[1], source[1])
    # same parameters, user 1's source interactions moved from items 1, 2 to item 0
    users = torch.cat([TRAIN_USERS[TRAIN_USERS != 1], torch.tensor([1])])
    items = torch.cat([TRAIN_ITEMS[TRAIN_USERS != 1], torch.tensor([0])])
    other = BiTGCF(
        **{**TINY, "train_users": users, "train_items": items},
        embedding_dim=4,
        num_layers=2,
        specific_lambda=model.specific_lambda,
    )
    other.load_state_dict(model.state_dict())
    assert not torch.allclose(other()[0][1], target[1])
    # the cold user's own (never trained) target embedding plays no part
    with torch.no_grad():
        model.target_user.weight[1] += 1.0
    torch.testing.assert_close(model()[0][1], target[1])


def test_bitgcf_gradients_cross_domains_only_through_common_users():
    model = bitgcf()
    # target triple of common user 0: reaches its source embedding via the transfer
    BPRLoss(l2=0.0)(model, torch.tensor([0]), torch.tensor([3]), torch.tensor([5])).backward()
    g = grads(model)
    assert g["source_user.weight"][0].abs().sum() > 0
    assert g["target_user.weight"][0].abs().sum() > 0
    model.zero_grad()
    # target triple of target-only user 2: its source embedding is never used
    reg = model.regularization(
        model.encode(), torch.tensor([2]), torch.tensor([4]), torch.tensor([[3]])
    )
    w = model.target_user.weight[2], model.item.weight[4], model.item.weight[3]
    torch.testing.assert_close(reg, 0.5 * sum(v.square().sum() for v in w))
    BPRLoss(l2=0.1)(model, torch.tensor([2]), torch.tensor([4]), torch.tensor([3])).backward()
    assert model.source_user.weight.grad[2].abs().sum() == 0
    assert model.target_user.weight.grad[1].abs().sum() == 0  # cold user's target row


def test_bitgcf_argument_errors():
    with pytest.raises(ValueError, match="model.specific_lambda must be in \\[0, 1\\]"):
        bitgcf(specific_lambda=1.5)
    with pytest.raises(ValueError, match="model.num_layers must be >= 0"):
        bitgcf(num_layers=-1)


# ---------------------------------------------------------------- configs and a real fit


@pytest.mark.parametrize("name", ["emcdr", "bitgcf"])
def test_model_config_builds_from_run_resources(name, tmp_path):
    cfg = compose_config([f"model={name}", f"paths.cache_dir={tmp_path}"])
    data = TrainingData(**{k: v for k, v in TINY.items() if k != "num_items"}, num_items=6)
    model = build_model(cfg.model, data)  # the fields the run passes by name
    assert model()[0].shape == (5, 64)


def planted_two_domains(seed: int = 0):
    """4 user clusters, each liking its own source and target items; 20% cold users.

    Returns the training pairs, item domains and held-out target pairs of warm and of
    cold users.
    """
    g = torch.Generator().manual_seed(seed)
    clusters, per_cluster, n_src, n_tgt = 4, 30, 20, 15
    num_users = clusters * per_cluster
    item_domain = torch.cat(
        [
            torch.zeros(clusters * n_src, dtype=torch.long),
            torch.ones(clusters * n_tgt, dtype=torch.long),
        ]
    )
    train, warm_test, cold_test = [], [], []
    for u in range(num_users):
        c = u // per_cluster
        src = c * n_src + torch.randperm(n_src, generator=g)[:8]
        tgt = clusters * n_src + c * n_tgt + torch.randperm(n_tgt, generator=g)[:6]
        noise = torch.randint(0, clusters * n_src, (1,), generator=g)
        train += [(u, int(i)) for i in torch.cat([src, noise])]
        if u % per_cluster < per_cluster // 5:  # cold-start: all target pairs held out
            cold_test += [(u, int(i)) for i in tgt[:3]]
        else:
            train += [(u, int(i)) for i in tgt[1:]]
            warm_test.append((u, int(tgt[0])))
    train = torch.tensor(train)
    return num_users, item_domain, train[:, 0], train[:, 1], warm_test, cold_test


def held_out_auc(user_emb, item_emb, pairs, item_domain, train_users, train_items):
    """Mean fraction of non-positive target items scored below each held-out pair."""
    target_items = (item_domain == 1).nonzero().squeeze(1)
    seen = set(zip(train_users.tolist(), train_items.tolist(), strict=True)) | set(pairs)
    aucs = []
    for u, i in pairs:
        scores = item_emb[target_items] @ user_emb[u]
        neg = [k for k, j in enumerate(target_items.tolist()) if (u, j) not in seen]
        aucs.append((scores[neg] < user_emb[u] @ item_emb[i]).float().mean())
    return float(torch.stack(aucs).mean())


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [(EMCDR, {"hidden_dim": 32}), (BiTGCF, {"num_layers": 2})],
    ids=["emcdr", "bitgcf"],
)
def test_short_bpr_fit_beats_random_on_warm_and_cold_users(cls, kwargs):
    torch.manual_seed(0)
    num_users, item_domain, users, items, warm, cold = planted_two_domains()
    model = cls(
        num_users,
        len(item_domain),
        item_domain,
        ("src", "tgt"),
        1,
        users,
        items,
        embedding_dim=16,
        **kwargs,
    )
    sampler = NegativeSampler(users, items, item_domain, seed=0)
    loss_fn = BPRLoss(l2=1e-4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    steps = 0
    while steps < 300:
        for batch in sampler.epoch(256):
            opt.zero_grad()
            loss_fn(model, *batch).backward()
            opt.step()
            steps += 1
    with torch.no_grad():
        user_emb, item_emb = model()
    warm_auc = held_out_auc(user_emb, item_emb, warm, item_domain, users, items)
    cold_auc = held_out_auc(user_emb, item_emb, cold, item_domain, users, items)
    # random ranking gives 0.5; within-cluster ranking at best about 0.87
    print(cls.__name__, warm_auc, cold_auc)
    assert warm_auc > 0.7, warm_auc
    assert cold_auc > 0.7, cold_auc
