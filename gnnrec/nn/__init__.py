"""Graph operators the models propagate with: normalised adjacencies and sparse products.

They run on torch's sparse CSR tensors (no pyg-lib, torch-scatter or torch-sparse
needed); ``benchmarks/bench_lightgcn.py`` compares them with PyG's edge-index path.
"""

from gnnrec.nn.propagation import (
    LayerMeanPropagation,
    SparseMatmul,
    SymmetricSpMM,
    bipartite_adjacency,
    normalized_adjacency,
    spmm,
)

__all__ = [
    "LayerMeanPropagation",
    "SparseMatmul",
    "SymmetricSpMM",
    "bipartite_adjacency",
    "normalized_adjacency",
    "spmm",
]
