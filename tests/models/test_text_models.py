import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from gnnrec.data.graph import build_graph
from gnnrec.models import (
    BPRLoss,
    LightGCNText,
    Recommender,
    SoftmaxLoss,
    TextZeroShot,
    mean_item_embedding,
)
from gnnrec.nn import normalized_adjacency


def _toy(num_users=4, num_items=6, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(num_items, dim, generator=g)
    train = pd.DataFrame(
        {"user_idx": [0, 0, 1, 2, 2, 3], "item_idx": [0, 1, 1, 2, 3, 0], "domain_idx": 0}
    )
    graph = build_graph(num_users, np.zeros(num_items, dtype=np.int64), ["d"], train)
    users = torch.tensor(train["user_idx"].to_numpy())
    items = torch.tensor(train["item_idx"].to_numpy())
    return text, normalized_adjacency(graph), users, items


def test_mean_item_embedding_by_hand():
    emb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    users = torch.tensor([0, 0, 0, 2])
    items = torch.tensor([0, 1, 1, 2])  # duplicate (0, 1) counts once
    out = mean_item_embedding(emb, users, items, num_users=3)
    assert torch.allclose(out, torch.tensor([[0.5, 1.0], [0.0, 0.0], [4.0, 4.0]]))


def test_lightgcn_text_shapes_repr_and_unit_outputs():
    text, adj, users, items = _toy()
    model = LightGCNText(4, 6, adj, text, users, items, embedding_dim=5, hidden_dim=7)
    u, i = model()
    assert u.shape == (4, 5) and i.shape == (6, 5)
    assert torch.allclose(u.norm(dim=1), torch.ones(4), atol=1e-5)
    assert "LightGCNText(4, 6, text_dim=8, dim=5, hidden=7" in repr(model)
    assert "users=mean" in repr(model)


def test_cold_item_is_scored_from_its_text():
    text, adj, users, items = _toy()
    # items 4 and 5 have no training edge: their representation is the projected text.
    model = LightGCNText(4, 6, adj, text, users, items, normalize=False, hidden_dim=0)
    _, item_emb = model()
    expected = model.alpha[0] * model.mlp(text[4])
    assert torch.allclose(item_emb[4], expected, atol=1e-6)
    changed = text.clone()
    changed[4] = -changed[4]
    other = LightGCNText(4, 6, adj, changed, users, items, normalize=False, hidden_dim=0)
    other.load_state_dict(model.state_dict())
    assert not torch.allclose(other()[1][4], item_emb[4])
    assert torch.allclose(other()[1][:4], item_emb[:4], atol=1e-6)  # edges unchanged


def test_profile_input_replaces_the_mean_and_is_required():
    text, adj, users, items = _toy()
    with pytest.raises(ValueError, match="needs profile-text embeddings"):
        LightGCNText(4, 6, adj, text, users, items, user_input="profile")
    profile = torch.randn(4, 8)
    calls = []

    def profiles():
        calls.append(1)
        return profile

    model = LightGCNText(
        4, 6, adj, text, users, items, user_profiles=profiles, user_input="profile"
    )
    assert torch.equal(model.text[:4], profile)
    # mean users never encode profiles, even when they are available
    mean = LightGCNText(4, 6, adj, text, users, items, user_profiles=profiles)
    assert torch.allclose(mean.text[:4], mean_item_embedding(text, users, items, 4))
    assert calls == [1]
    with pytest.raises(ValueError, match="must be \\[4, 8\\]"):
        LightGCNText(4, 6, adj, text, users, items, lambda: profile[:3], user_input="profile")


@pytest.mark.parametrize("loss", [BPRLoss(l2=1e-4), SoftmaxLoss(temperature=0.2)])
def test_gradients_reach_the_projection_and_id_embeddings(loss):
    text, adj, users, items = _toy()
    model = LightGCNText(4, 6, adj, text, users, items, id_embedding=True)
    value = loss(model, torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([5, 4]))
    value.backward()
    assert model.mlp[0].weight.grad.abs().sum() > 0
    assert model.id_embedding.weight.grad.abs().sum() > 0
    assert model.text.grad is None  # frozen text


def test_loss_makes_one_mlp_pass_and_matches_two_separate_passes():
    text, adj, users, items = _toy()
    model = LightGCNText(4, 6, adj, text, users, items, id_embedding=True)
    fresh = LightGCNText(4, 6, adj, text, users, items, id_embedding=True)
    fresh.load_state_dict(model.state_dict())
    passes = []
    model.mlp.register_forward_hook(lambda *_: passes.append(1))
    batch = (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([5, 4]))
    loss = BPRLoss(l2=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(3):
        optimizer.zero_grad()
        loss(model, *batch).backward()
        assert len(passes) == step + 1  # scores and the L2 term share one layer-0 pass
        fresh.zero_grad()
        u, i = fresh()
        u0, i0 = fresh.ego_embeddings()  # a second, separate MLP pass
        pos, neg = (u[batch[0]] * i[batch[1]]).sum(-1), (u[batch[0]] * i[batch[2]]).sum(-1)
        reg = (
            u0[batch[0]].square().sum() + i0[batch[1]].square().sum() + i0[batch[2]].square().sum()
        )
        ref = -F.logsigmoid(pos - neg).mean() + 0.5 * 0.5 * reg / 2
        ref.backward()
        for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
            assert torch.allclose(a.grad, b.grad, atol=1e-6)
        optimizer.step()
        fresh.load_state_dict(model.state_dict())
    (u, i), (u0, i0) = model.encode().final, model.encode().ego
    torch.testing.assert_close(torch.cat([u, i]), torch.cat(model()))
    torch.testing.assert_close(torch.cat([u0, i0]), torch.cat(model.ego_embeddings()))


def test_softmax_loss_by_hand():
    class Fixed(Recommender):
        def forward(self):  # unit vectors: scores are cosines, as lightgcn_text's
            items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
            return torch.tensor([[1.0, 0.0]]), F.normalize(items, dim=1)

    loss = SoftmaxLoss(temperature=0.5)
    # user 0, pos item 0, batch negatives {1, 0}: negative 0 equals the positive -> masked.
    value = loss(Fixed(), torch.tensor([0, 0]), torch.tensor([0, 2]), torch.tensor([1, 0]))
    # row 0: logits pos cos=1, negs: item1 cos=0, item0 masked -> -log(e^2 / (e^2 + e^0))
    row0 = -torch.log(torch.exp(torch.tensor(2.0)) / (torch.exp(torch.tensor(2.0)) + 1))
    # row 1: pos item 2 cos=1/sqrt2, negs item1 cos 0, item0 cos 1
    c = 1 / 2**0.5
    row1 = -torch.log(
        torch.exp(torch.tensor(2 * c))
        / (torch.exp(torch.tensor(2 * c)) + 1 + torch.exp(torch.tensor(2.0)))
    )
    assert value.item() == pytest.approx(((row0 + row1) / 2).item(), rel=1e-6)
    # Own negatives only (two per row): row 0 sees items 1 and 2, row 1 items 1 and 0.
    own = SoftmaxLoss(temperature=0.5, in_batch_negatives=False)
    value = own(Fixed(), torch.tensor([0, 0]), torch.tensor([0, 2]), torch.tensor([[1, 2], [1, 0]]))
    e = torch.exp
    row0 = -torch.log(e(torch.tensor(2.0)) / (e(torch.tensor(2.0)) + 1 + e(torch.tensor(2 * c))))
    assert value.item() == pytest.approx(((row0 + row1) / 2).item(), rel=1e-6)
    # At most one shared negative: both rows see item 1 only (item 0 is cut, not masked).
    capped = SoftmaxLoss(temperature=0.5, shared_negatives=1)
    value = capped(Fixed(), torch.tensor([0, 0]), torch.tensor([0, 2]), torch.tensor([1, 0]))
    row0 = -torch.log(e(torch.tensor(2.0)) / (e(torch.tensor(2.0)) + 1))
    row1 = -torch.log(e(torch.tensor(2 * c)) / (e(torch.tensor(2 * c)) + 1))
    assert value.item() == pytest.approx(((row0 + row1) / 2).item(), rel=1e-6)
    # a cap above the list's length is the whole list
    wide = SoftmaxLoss(temperature=0.5, shared_negatives=5)
    full = SoftmaxLoss(temperature=0.5)
    batch = (torch.tensor([0, 0]), torch.tensor([0, 2]), torch.tensor([1, 0]))
    assert wide(Fixed(), *batch).item() == full(Fixed(), *batch).item()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shared_negatives": 0}, "loss.shared_negatives must be at least 1 .* got 0"),
        (
            {"shared_negatives": 8, "in_batch_negatives": False},
            "loss.shared_negatives=8 caps .* loss.in_batch_negatives=false shares none",
        ),
    ],
)
def test_bad_shared_negatives_fail_naming_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        SoftmaxLoss(**options)


def test_text_zeroshot_is_cosine_of_texts():
    text, _, users, items = _toy()
    profile = torch.randn(4, 8)
    model = TextZeroShot(4, text, users, items, user_profiles=lambda: profile, user_input="profile")
    u, i = model()
    expected = F.cosine_similarity(profile[:, None], text[None], dim=-1)
    assert torch.allclose(u @ i.t(), expected, atol=1e-6)
    assert not any(p.requires_grad for p in model.parameters())
    mean = TextZeroShot(4, text, users, items)
    assert torch.allclose(mean()[0], F.normalize(mean_item_embedding(text, users, items, 4)))
