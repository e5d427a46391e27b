import numpy as np
import pandas as pd
import pytest
import torch

from gnnrec.data.graph import build_graph, interaction_edges
from gnnrec.nn import LayerMeanPropagation, normalized_adjacency


@pytest.fixture
def tiny():
    # users 0..2, items 0..3; items 0,1 in domain "a", 2,3 in domain "b"; (0, 1) twice.
    train = pd.DataFrame(
        {
            "user_idx": [0, 0, 0, 1, 2, 2],
            "item_idx": [0, 1, 1, 2, 2, 3],
            "domain_idx": [0, 0, 0, 1, 1, 1],
        }
    )
    return build_graph(3, np.array([0, 0, 1, 1]), ["a", "b"], train)


def test_hetero_graph_has_one_relation_per_domain_and_reverse(tiny):
    assert set(tiny.node_types) == {"user", "item", "domain"}
    assert ("user", "interacts_a", "item") in tiny.edge_types
    assert ("item", "rev_interacts_b", "user") in tiny.edge_types
    assert tiny["user", "interacts_b", "item"].edge_index.tolist() == [[1, 2, 2], [2, 2, 3]]
    rev = tiny["item", "rev_interacts_b", "user"].edge_index
    assert rev.tolist() == [[2, 2, 3], [1, 2, 2]]
    assert tiny["item", "in_domain", "domain"].edge_index[1].tolist() == [0, 0, 1, 1]
    assert interaction_edges(tiny).shape == (2, 6)


def test_normalized_adjacency_matches_dense_formula(tiny):
    adj = normalized_adjacency(tiny)
    assert adj.layout == torch.sparse_csr
    r = torch.zeros(3, 4)
    r[[0, 0, 1, 2, 2], [0, 1, 2, 2, 3]] = 1.0  # deduplicated
    a = torch.zeros(7, 7)
    a[:3, 3:] = r
    a[3:, :3] = r.T
    d = a.sum(1).pow(-0.5)
    expected = d[:, None] * a * d[None, :]
    torch.testing.assert_close(adj.to_dense(), expected)
    assert adj._nnz() == 10


def test_isolated_nodes_get_zero_rows():
    train = pd.DataFrame({"user_idx": [0], "item_idx": [0], "domain_idx": [0]})
    adj = normalized_adjacency(build_graph(2, np.array([0, 0]), ["a"], train)).to_dense()
    assert torch.isfinite(adj).all()
    assert adj[1].abs().sum() == 0 and adj[3].abs().sum() == 0


def test_fused_propagation_forward_and_gradient_match_dense(tiny):
    adj = normalized_adjacency(tiny)
    dense = adj.to_dense()
    alpha = (0.1, 0.2, 0.3, 0.4)
    x = torch.randn(7, 5, dtype=torch.float32, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = LayerMeanPropagation.apply(adj, x, alpha)
    layers, h = [x_ref], x_ref
    for _ in range(3):
        h = dense @ h
        layers.append(h)
    ref = sum(a * layer for a, layer in zip(alpha, layers, strict=True))
    torch.testing.assert_close(out, ref)
    w = torch.randn(7, 5)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)


def test_fused_propagation_gradcheck(tiny):
    adj = normalized_adjacency(tiny, dtype=torch.float64)
    x = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    alpha = (0.25, 0.25, 0.25, 0.25)
    assert torch.autograd.gradcheck(lambda t: LayerMeanPropagation.apply(adj, t, alpha), (x,))
