"""Graph operators the models propagate with: normalised adjacencies and sparse products.

They run on torch's sparse CSR tensors (no pyg-lib, torch-scatter or torch-sparse
needed); ``benchmarks/bench_lightgcn.py`` compares them with PyG's edge-index path.
:mod:`gnnrec.nn.scoring` holds the :class:`Scorer` contract of models whose scores are
not a dot product of two tables (item-item models), shared by models and the evaluator.
"""

from gnnrec.nn.propagation import (
    LayerMeanPropagation,
    SparseMatmul,
    SymmetricSpMM,
    bipartite_adjacency,
    normalized_adjacency,
    spmm,
)
from gnnrec.nn.scoring import InteractionScorer, Scorer, interaction_matrix, ranking_inputs

__all__ = [
    "InteractionScorer",
    "LayerMeanPropagation",
    "SparseMatmul",
    "Scorer",
    "SymmetricSpMM",
    "bipartite_adjacency",
    "interaction_matrix",
    "normalized_adjacency",
    "ranking_inputs",
    "spmm",
]
