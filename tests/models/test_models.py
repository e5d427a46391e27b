import numpy as np
import pandas as pd
import pytest
import torch

from gnnrec.data.graph import build_graph
from gnnrec.models import MF, BPRLoss, LightGCN, Popularity
from gnnrec.nn import normalized_adjacency


@pytest.fixture
def adj():
    train = pd.DataFrame(
        {
            "user_idx": [0, 0, 1, 2, 2, 3],
            "item_idx": [0, 1, 2, 2, 4, 3],
            "domain_idx": [0, 0, 1, 1, 1, 1],
        }
    )
    return normalized_adjacency(build_graph(4, np.array([0, 0, 1, 1, 1]), ["a", "b"], train))


def test_lightgcn_matches_dense_reference(adj):
    torch.manual_seed(0)
    model = LightGCN(4, 5, adj, embedding_dim=8, num_layers=2)
    users, items = model()
    assert users.shape == (4, 8) and items.shape == (5, 8)
    e0 = model.embedding.weight.detach()
    dense = adj.to_dense()
    ref = (e0 + dense @ e0 + dense @ dense @ e0) / 3
    torch.testing.assert_close(torch.cat([users, items]).detach(), ref)
    assert repr(model) == "LightGCN(4, 5, dim=8, num_layers=2)"


def test_lightgcn_zero_layers_is_mf_like(adj):
    model = LightGCN(4, 5, adj, embedding_dim=3, num_layers=0)
    u, i = model()
    torch.testing.assert_close(u, model.embedding.weight[:4])


def test_lightgcn_argument_errors(adj):
    with pytest.raises(ValueError, match="alpha needs num_layers \\+ 1 = 3"):
        LightGCN(4, 5, adj, num_layers=2, alpha=[0.5, 0.5])
    with pytest.raises(ValueError, match="adj must be \\[10, 10\\]"):
        LightGCN(5, 5, adj)


def test_reset_parameters_reinitialises():
    model = MF(3, 4, embedding_dim=2)
    before = model.user_embedding.weight.detach().clone()
    model.reset_parameters()
    assert not torch.equal(before, model.user_embedding.weight)


def test_mf_item_bias_adds_to_the_dot_product_and_is_not_regularised():
    torch.manual_seed(0)
    model = MF(2, 3, embedding_dim=2, item_bias=True)
    assert torch.count_nonzero(model.bias) == 0
    with torch.no_grad():
        model.user_embedding.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        model.item_embedding.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 2.0]]))
        model.bias.copy_(torch.tensor([0.25, -1.0, 3.0]))
    u, i = model()
    assert u.shape == (2, 3) and i.shape == (3, 3)
    # by hand: u.v + b_i
    expected = torch.tensor([[1.25, 0.5, 7.0], [0.25, -1.5, 1.0]])
    torch.testing.assert_close(u @ i.T, expected)
    # the L2 term sees the factors only: users (1+4), positive (1), negative (0.5)
    users, pos, neg = torch.tensor([0]), torch.tensor([0]), torch.tensor([1])
    diff = torch.tensor(1.25 - 0.5)
    expected_loss = torch.nn.functional.softplus(-diff) + 0.1 * 0.5 * (5.0 + 1.0 + 0.5)
    loss = BPRLoss(l2=0.1)(model, users, pos, neg)
    torch.testing.assert_close(loss, expected_loss)
    loss.backward()
    # d/db_pos = -sigmoid(-diff), d/db_neg = +sigmoid(-diff), the unseen item none
    g = torch.sigmoid(-diff).item()
    torch.testing.assert_close(model.bias.grad, torch.tensor([-g, g, 0.0]))
    model.reset_parameters()
    assert torch.count_nonzero(model.bias) == 0
    assert repr(model) == "MF(2, 3, dim=2, item_bias=True)"
    assert repr(MF(2, 3, embedding_dim=2)) == "MF(2, 3, dim=2)"
    assert MF(2, 3).item_bias is False and len(list(MF(2, 3).parameters())) == 2


def test_mf_item_bias_learns_popularity_the_factors_cannot():
    """With one factor fixed at zero, only the bias can rank; BPR makes it rank by count."""
    torch.manual_seed(0)
    model = MF(20, 5, embedding_dim=1, item_bias=True)
    with torch.no_grad():
        model.user_embedding.weight.zero_()
    model.user_embedding.weight.requires_grad_(False)
    model.item_embedding.weight.requires_grad_(False)
    counts = [8, 1, 5, 0, 3]  # item 0 most interacted, then 2, 4, 1; item 3 never
    pos = torch.tensor([i for i, c in enumerate(counts) for _ in range(c)])
    users = torch.arange(len(pos)) % 20
    opt = torch.optim.SGD([model.bias], lr=1.0)  # plain gradients: Adam rescales them
    loss = BPRLoss()
    for _ in range(100):
        neg = torch.randint(0, 5, (len(pos),))
        opt.zero_grad()
        loss(model, users, pos, neg).backward()
        opt.step()
    assert model.bias.argsort(descending=True).tolist() == [0, 2, 4, 1, 3]


def test_popularity_scores_are_training_counts():
    counts = torch.bincount(torch.tensor([0, 2, 2, 2, 1]), minlength=4)
    assert counts.tolist() == [1, 1, 3, 0]
    model = Popularity(2, counts)
    u, i = model()
    scores = u @ i.T
    assert scores.dtype == torch.float64
    # counts plus a tie-break below one that favours smaller item indices
    assert scores.floor().tolist() == [[1, 1, 3, 0], [1, 1, 3, 0]]
    assert scores[0].argsort(descending=True).tolist() == [2, 0, 1, 3]
    assert not list(model.parameters())


def test_bpr_loss_hand_computed():
    model = MF(1, 2, embedding_dim=1)
    with torch.no_grad():
        model.user_embedding.weight.fill_(2.0)
        model.item_embedding.weight.copy_(torch.tensor([[1.0], [0.5]]))
    users, pos, neg = torch.tensor([0]), torch.tensor([0]), torch.tensor([1])
    # -ln sigmoid(2*1 - 2*0.5) = softplus(-1); L2: 0.5 * (4 + 1 + 0.25) / 1
    expected = torch.nn.functional.softplus(torch.tensor(-1.0)) + 0.1 * 0.5 * 5.25
    torch.testing.assert_close(BPRLoss(l2=0.1)(model, users, pos, neg), expected)


def test_training_lightgcn_lowers_bpr_loss(adj):
    torch.manual_seed(0)
    model = LightGCN(4, 5, adj, embedding_dim=8, num_layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 2, 4]), torch.tensor([1, 3, 3])
    loss = BPRLoss(l2=0.0)
    first = loss(model, users, pos, neg).item()
    for _ in range(50):
        opt.zero_grad()
        loss(model, users, pos, neg).backward()
        opt.step()
    assert loss(model, users, pos, neg).item() < first * 0.5


def test_scoring_gather_gives_the_rows_and_accumulates_repeated_rows_gradients():
    from gnnrec.models.base import _gather

    table = torch.arange(12.0).reshape(4, 3).requires_grad_()
    index = torch.tensor([[1, 3], [1, 1]])
    rows = _gather(table, index)
    assert rows.shape == (2, 2, 3)
    assert torch.equal(rows[0, 1], table[3].detach()) and torch.equal(rows[1, 0], table[1].detach())
    rows.sum().backward()
    # row 1 is drawn three times, row 3 once, rows 0 and 2 never
    assert table.grad[:, 0].tolist() == [0.0, 3.0, 0.0, 1.0]


def test_squared_row_norms_counts_repeats_like_the_gathered_rows():
    from gnnrec.models.base import squared_row_norms

    table = torch.tensor([[1.0, 2.0], [0.0, 3.0], [2.0, 2.0]], requires_grad=True)
    short = torch.tensor([2, 0])  # fewer entries than rows: gathered
    assert squared_row_norms(table, short).item() == 8.0 + 5.0
    long = torch.tensor([[1, 1], [1, 0], [0, 1]])  # more entries than rows: counted
    # rows 1 (x4: 9 each) and 0 (x2: 5 each)
    got = squared_row_norms(table, long)
    assert got.item() == 4 * 9.0 + 2 * 5.0
    got.backward()
    grad = table.grad.clone()
    table.grad = None
    table[long.reshape(-1)].square().sum().backward()
    assert torch.equal(grad, table.grad)
    assert grad[2].tolist() == [0.0, 0.0]


def test_pair_scores_of_k_items_are_the_dot_products():
    from gnnrec.models.base import pair_scores

    torch.manual_seed(0)
    u, v = torch.randn(3, 4), torch.randn(3, 5, 4)
    want = torch.stack([v[b] @ u[b] for b in range(3)])
    torch.testing.assert_close(pair_scores(u, v), want)
    torch.testing.assert_close(pair_scores(u, v[:, 0]), want[:, 0])
