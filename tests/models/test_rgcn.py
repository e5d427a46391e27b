import numpy as np
import pandas as pd
import pytest
import torch

from gnnrec.data import knowledge_graph
from gnnrec.data.graph import build_graph, interaction_edges
from gnnrec.models import RGCN, BPRLoss
from gnnrec.nn.relational import relational_conv as _relational_conv
from gnnrec.train.sampler import NegativeSampler

NUM_USERS, NUM_ITEMS = 4, 6
COLD_ITEM = 5  # no training edge


@pytest.fixture
def graph():
    train = pd.DataFrame(
        {
            "user_idx": [0, 0, 1, 2, 2, 3, 3],
            "item_idx": [0, 1, 2, 2, 4, 3, 1],
            "domain_idx": [0, 0, 1, 1, 1, 1, 0],
        }
    )
    return build_graph(NUM_USERS, np.array([0, 0, 1, 1, 1, 1]), ["a", "b"], train)


@pytest.fixture
def kg():
    triples = pd.DataFrame(
        {
            "head": ["m0", "m1", "m5", "m5", "p"],
            "relation": ["genre", "genre", "genre", "actor", "born_in"],
            "tail": ["g", "g", "h", "p", "c"],
        }
    )
    links = pd.DataFrame({"item_idx": [0, 1, 5], "entity": ["m0", "m1", "m5"]})
    return knowledge_graph(triples, links, NUM_ITEMS)


@pytest.fixture
def text():
    return torch.randn(NUM_ITEMS, 12, generator=torch.Generator().manual_seed(1))


def make(graph, kg=None, text=None, **kwargs):
    torch.manual_seed(0)
    kwargs.setdefault("embedding_dim", 8)
    kwargs.setdefault("num_bases", 2)
    return RGCN(NUM_USERS, NUM_ITEMS, graph, kg, item_text_emb=text, **kwargs)


def test_shapes_and_repr(graph, kg, text):
    model = make(graph, kg, text)
    users, items = model()
    assert users.shape == (NUM_USERS, 8) and items.shape == (NUM_ITEMS, 8)
    assert repr(model) == (
        "RGCN(4, 6, dim=8, num_layers=2, num_nodes=19, num_relations=14, num_bases=2, "
        "decoder=dot, text=True)"
    )
    user0, item0 = model.ego_embeddings()
    assert user0.shape == (NUM_USERS, 8) and item0.shape == (NUM_ITEMS, 8)
    torch.testing.assert_close(item0, model.item_projection(text))


def test_bpr_loss_projects_the_text_once_and_matches_separate_passes(graph, kg, text):
    from gnnrec.models import BPRLoss

    model = make(graph, kg, text, dropout=0.0, mask_supervision=False)
    passes = []
    model.item_projection.register_forward_hook(lambda *_: passes.append(1))
    batch = (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([5, 4]))
    value = BPRLoss(l2=0.5)(model, *batch)
    assert len(passes) == 1
    users, items = model()
    user0, item0 = model.ego_embeddings()
    u, p_, n = users[batch[0]], items[batch[1]], items[batch[2]]
    reg = user0[batch[0]].square().sum() + item0[batch[1]].square().sum()
    reg = reg + item0[batch[2]].square().sum()
    ref = torch.nn.functional.softplus((u * n).sum(-1) - (u * p_).sum(-1)).mean() + 0.5 * reg / 4
    torch.testing.assert_close(value, ref)


@pytest.mark.parametrize(
    "weights",
    [
        {"num_bases": 3},
        {"num_bases": None, "num_blocks": 4},
        {"num_bases": None},
        {"num_bases": 2, "root_weight": False},
    ],
)
def test_sparse_operator_matches_pyg_rgcnconv(graph, kg, weights):
    model = make(graph, kg, **weights)
    conv = model.convs[0]
    if "num_blocks" in weights:
        assert conv.weight.shape == (model.num_relations, 4, 2, 2)
    elif weights["num_bases"]:
        assert conv.weight.shape == (weights["num_bases"], 8, 8)
        assert conv.comp.shape == (model.num_relations, weights["num_bases"])
    x = torch.randn(model.num_nodes, 8)
    reference = conv(x, model.edge_index, model.edge_type)
    torch.testing.assert_close(_relational_conv(conv, x, model.hidden_operator), reference)
    num_out = NUM_USERS + NUM_ITEMS
    out = _relational_conv(conv, x, model.output_operator)
    torch.testing.assert_close(out, reference[:num_out])


def test_forward_is_the_stacked_layers(graph, kg):
    model = make(graph, kg, residual=False)
    x0 = torch.cat(
        [model.user_embedding.weight, model.item_embedding.weight, model.node_embedding.weight]
    )
    h = torch.relu(model.convs[0](x0, model.edge_index, model.edge_type))
    h = model.convs[1](h, model.edge_index, model.edge_type)
    users, items = model()
    torch.testing.assert_close(torch.cat([users, items]), h[: NUM_USERS + NUM_ITEMS])
    residual = make(graph, kg, residual=True)
    users_r, _ = residual()
    torch.testing.assert_close(users_r, users + model.user_embedding.weight)


def test_distmult_folds_relation_into_users(graph):
    dot, distmult = make(graph), make(graph, decoder="distmult")
    torch.testing.assert_close(dot()[0], distmult()[0])  # relation starts at ones
    with torch.no_grad():
        distmult.relation.copy_(torch.arange(8.0))
    users, items = distmult()
    torch.testing.assert_close(users, dot()[0] * torch.arange(8.0))
    scores = users @ items.T
    u, i = dot()
    torch.testing.assert_close(scores, (u * torch.arange(8.0)) @ i.T)
    assert "decoder=distmult" in repr(distmult)


def test_gradients_reach_text_projection_and_all_parameters(graph, kg, text):
    model = make(graph, kg, text, decoder="distmult")
    users, pos, neg = torch.tensor([0, 2]), torch.tensor([1, 4]), torch.tensor([2, 3])
    BPRLoss(l2=1e-4)(model, users, pos, neg).backward()
    assert model.item_projection.weight.grad.abs().sum() > 0
    assert model.relation.grad.abs().sum() > 0
    for conv in model.convs:
        assert conv.comp.grad.abs().sum() > 0 and conv.root.grad.abs().sum() > 0
    assert not model.item_text.requires_grad


def test_cold_item_is_scored_from_its_text(graph, text):
    model = make(graph, text=text)
    assert COLD_ITEM not in interaction_edges(graph)[1]
    model.eval()
    users, items = model()
    assert items[COLD_ITEM].abs().sum() > 0
    before = (users @ items[COLD_ITEM]).detach()
    with torch.no_grad():
        model.item_text[COLD_ITEM] += 1.0
    users_after, items_after = model()
    after = (users_after @ items_after[COLD_ITEM]).detach()
    assert not torch.allclose(before, after)
    # the other items' scores do not move: the cold item sends messages only to its
    # domain node, which reaches users two hops later (not within two layers)
    torch.testing.assert_close(users_after, users)


def test_use_kg_switches_entity_nodes(graph, kg):
    with_kg, without = make(graph, kg), make(graph, kg, use_kg=False)
    assert with_kg.num_nodes == NUM_USERS + NUM_ITEMS + 2 + kg.num_entities
    assert without.num_nodes == NUM_USERS + NUM_ITEMS + 2
    assert with_kg.num_relations == 6 + 2 * kg.num_relations + 2 and without.num_relations == 6
    assert without.node_embedding.num_embeddings == 2
    assert make(graph).num_nodes == without.num_nodes


def test_buffers_move_with_the_module_and_are_not_saved(graph, kg, text):
    model = make(graph, kg, text)
    buffers = dict(model.named_buffers())
    assert {"edge_index", "edge_type", "item_text", "hidden_operator.gather_crow"} <= set(buffers)
    assert not any(
        p.data_ptr() == b.data_ptr() for p in model.parameters() for b in buffers.values()
    )
    assert set(model.state_dict()).isdisjoint(buffers)
    model.to("meta")
    assert all(b.device.type == "meta" for b in model.buffers())
    double = make(graph, kg, text).double()
    assert double()[1].dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_and_backward_on_cuda(graph, kg, text):
    model = make(graph, kg, text).cuda()
    users, items = model()
    assert users.is_cuda
    cpu_users, _ = make(graph, kg, text)()
    torch.testing.assert_close(users.cpu(), cpu_users, atol=1e-5, rtol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = BPRLoss()(
            model, torch.tensor([0]).cuda(), torch.tensor([1]).cuda(), torch.tensor([2]).cuda()
        )
    loss.backward()
    assert model.item_projection.weight.grad is not None


def test_reset_parameters_and_argument_errors(graph, kg):
    model = make(graph, kg)
    before = model.convs[0].comp.detach().clone()
    model.reset_parameters()
    assert not torch.equal(before, model.convs[0].comp)
    with pytest.raises(ValueError, match="decoder must be one of"):
        make(graph, decoder="mlp")
    with pytest.raises(ValueError, match="at most one of num_bases and num_blocks"):
        make(graph, num_blocks=2)
    with pytest.raises(ValueError, match="num_blocks=3 must divide embedding_dim=8"):
        make(graph, num_bases=None, num_blocks=3)
    with pytest.raises(ValueError, match="graph has 4 users and 6 items, expected 5 and 6"):
        RGCN(5, NUM_ITEMS, graph)
    with pytest.raises(ValueError, match="item_text_emb must have num_items = 6 rows"):
        make(graph, text=torch.zeros(5, 3))


@pytest.fixture
def one_thread():
    # Tiny sparse products pay a large OpenMP hand-off cost on a busy 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_beats_random_ranking(one_thread):
    """Users of three taste clusters; held-out items of the user's cluster rank high."""
    gen = np.random.default_rng(0)
    num_users, num_items, clusters = 60, 30, 3
    user_cluster = np.arange(num_users) % clusters
    item_cluster = np.arange(num_items) % clusters
    rows = []
    for u in range(num_users):
        liked = np.flatnonzero(item_cluster == user_cluster[u])
        rows += [(u, int(i)) for i in gen.choice(liked, size=6, replace=False)]
    inter = pd.DataFrame(rows, columns=["user_idx", "item_idx"])
    inter["domain_idx"] = (inter["item_idx"] >= num_items // 2).astype(int)
    test = inter.groupby("user_idx").tail(1)
    train = inter.drop(test.index)
    item_domain = (np.arange(num_items) >= num_items // 2).astype(np.int64)
    graph = build_graph(num_users, item_domain, ["a", "b"], train)
    torch.manual_seed(0)
    model = RGCN(num_users, num_items, graph, embedding_dim=16, num_bases=2)
    users, items = (torch.tensor(train[c].to_numpy()) for c in ("user_idx", "item_idx"))
    sampler = NegativeSampler(users, items, torch.tensor(item_domain), seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = BPRLoss(l2=1e-4)
    steps = 0
    while steps < 300:
        for batch in sampler.epoch(batch_size=128):
            optimizer.zero_grad()
            loss_fn(model, *batch).backward()
            optimizer.step()
            steps += 1
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = model()
        scores = user_emb @ item_emb.T
    seen = torch.zeros(num_users, num_items, dtype=torch.bool)
    seen[users, items] = True
    auc = []
    for u, i in zip(test["user_idx"], test["item_idx"], strict=True):
        candidates = ~seen[u] & (torch.tensor(item_domain) == item_domain[i])
        candidates[i] = False
        auc.append((scores[u, i] > scores[u, candidates]).float().mean().item())
    assert np.mean(auc) > 0.8  # random ranking: 0.5


def test_supervision_edges_are_out_of_the_step_propagation(graph):
    """User 0 is supervised on item 1: its step representation must not see item 1."""
    model = make(graph)
    users, pos = torch.tensor([0]), torch.tensor([1])

    def user0_step_and_full():
        model.train()
        step = model.encode(users, pos).final[0][0].detach().clone()
        model.eval()
        return step, model()[0][0].detach().clone()

    step, full = user0_step_and_full()
    with torch.no_grad():
        model.item_embedding.weight[1] += 1.0
    step_after, full_after = user0_step_and_full()
    torch.testing.assert_close(step_after, step)
    assert not torch.allclose(full_after, full)  # through the full graph it does
    # item 1 keeps its other user (3), so it still receives messages; item 0 stays
    with torch.no_grad():
        model.item_embedding.weight[0] += 1.0
    step_item0, _ = user0_step_and_full()
    assert not torch.allclose(step_item0, step_after)


def test_edge_mask_removes_both_directions_of_the_pairs_only(graph, kg):
    model = make(graph, kg).train()
    keep = model.edge_mask(torch.tensor([0, 2]), torch.tensor([1, 4]))
    src, dst = model.edge_index
    removed = {(int(s), int(d)) for s, d in zip(src[~keep], dst[~keep], strict=True)}
    u, i = NUM_USERS + 1, NUM_USERS + 4
    assert removed == {(0, u), (u, 0), (2, i), (i, 2)}
    # a pair without a training edge (user 1 never saw item 0; user 3, item 5) removes nothing
    assert model.edge_mask(torch.tensor([1, 3]), torch.tensor([0, 5])).all()
    assert model.eval().edge_mask(torch.tensor([0]), torch.tensor([1])) is None
    assert make(graph, mask_supervision=False).train().edge_mask(users=None) is None


@pytest.mark.parametrize("weights", [{"num_bases": 3}, {"num_bases": None, "num_blocks": 4}])
def test_masked_operator_equals_the_operator_of_the_reduced_graph(graph, kg, weights):
    from dataclasses import replace

    from gnnrec.data.knowledge import relational_graph
    from gnnrec.nn.relational import RelationalOperator

    model = make(graph, kg, **weights)
    conv = model.convs[0]
    x = torch.randn(model.num_nodes, 8)
    gen = torch.Generator().manual_seed(3)
    keep = torch.rand(model.edge_type.numel(), generator=gen) > 0.4
    assert 0 < int(keep.sum()) < keep.numel()
    rel = relational_graph(graph, kg)
    reduced = replace(rel, edge_index=rel.edge_index[:, keep], edge_type=rel.edge_type[keep])
    reference = conv(x, reduced.edge_index, reduced.edge_type)
    for op, rows in ((model.hidden_operator, model.num_nodes), (model.output_operator, 10)):
        masked = _relational_conv(conv, x, op, op.masked_values(keep))
        torch.testing.assert_close(masked, reference[:rows])
        rebuilt = RelationalOperator(reduced, op.num_targets)
        torch.testing.assert_close(masked, _relational_conv(conv, x, rebuilt))
    # all kept: the stored values
    every = model.hidden_operator.masked_values(torch.ones_like(keep))
    torch.testing.assert_close(every["gather"], model.hidden_operator.gather_value)
    torch.testing.assert_close(every["scatter_t"], model.hidden_operator.scatter_t_value)


def test_eval_forward_uses_every_training_edge(graph, kg, text):
    model = make(graph, kg, text, edge_dropout=0.5, self_loop_dropout=0.3, dropout=0.2)
    model.eval()
    users, items = model()
    step = model.encode(torch.tensor([0, 2]), torch.tensor([1, 4])).final
    torch.testing.assert_close(step[0], users)
    torch.testing.assert_close(step[1], items)
    plain = make(graph, kg, text).eval()
    torch.testing.assert_close(plain()[0], users)  # the training options change no weights


def test_edge_dropout_is_seeded_and_drops_pairs(graph, kg):
    model = make(graph, kg, edge_dropout=0.5, mask_supervision=False).train()
    masks = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        masks.append(model.edge_mask())
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    keep = masks[0]
    assert keep[model.pair_key < 0].all()  # domain and KG edges are never dropped
    for key in model.pair_key[~keep].unique():
        assert not keep[model.pair_key == key].any()  # both directions together
    torch.manual_seed(7)
    a = model.encode().final[0]
    torch.manual_seed(7)
    torch.testing.assert_close(model.encode().final[0], a)


def test_weight_decay_goes_to_the_rgcn_layers(graph, text):
    model = make(graph, text=text, weight_decay=0.01, decoder="distmult")
    decayed, rest = model.parameter_groups()
    assert decayed["weight_decay"] == 0.01 and "weight_decay" not in rest
    conv_ids = {id(p) for p in model.convs.parameters()} | {id(model.relation)}
    assert {id(p) for p in decayed["params"]} == conv_ids
    all_ids = [id(p) for g in (decayed, rest) for p in g["params"]]
    assert sorted(all_ids) == sorted(id(p) for p in model.parameters())
    assert len(make(graph).parameter_groups()) == 1
    with pytest.raises(ValueError, match="edge_dropout must be in"):
        make(graph, edge_dropout=1.0)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        make(graph, weight_decay=-1.0)
