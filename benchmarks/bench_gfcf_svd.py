"""GF-CF's top-k SVD: ARPACK against the Gram-matrix eigensolver on real data.

GF-CF's ideal low-pass filter needs the top ``k`` right singular vectors of the
normalised user x item matrix. ARPACK (``scipy.sparse.linalg.svds``) iterates on the
sparse matrix and slows down as ``k`` grows; the Gram solver forms the dense Gram matrix
of the smaller side and takes its top ``k`` eigenpairs (LAPACK ``syevr``), at a cost set
by that side. Both are timed on the same matrix in the same run, one thread each, and
compared: the sum of their squared singular values (``||R~ v||^2``; the top-k subspace
has the largest, so the larger sum is the better answer), how many singular values 1
each holds against the graph's connected components (each component with an edge gives
one; an independent count by ``scipy.sparse.csgraph``), the largest sine of the
principal angles between the two subspaces and the largest gap between their sorted
singular values.

    python -m benchmarks.bench_gfcf_svd [--data movies] [--k 256] [--gram-k 1024 2048]

``--data movies`` is the Amazon Movies target's training matrix (every domain's
training interactions, as GF-CF is fitted in ``experiment=cdr_amazon_movies``);
``--data gowalla`` the LightGCN Gowalla split. ``--gram-k`` times the Gram solver alone
at larger ``k`` (ARPACK took about 67 min for ``k = 1024`` on Movies).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gnnrec.models.gfcf import GFCF, graph_components, top_right_singular_vectors


def normalised_matrix(data: str):
    """The normalised training matrix R~ GF-CF factorises."""
    if data == "gowalla":
        from benchmarks.common import gowalla_split

        data, split = gowalla_split()
        users = torch.as_tensor(split.train["user_idx"].to_numpy())
        items = torch.as_tensor(split.train["item_idx"].to_numpy())
        return GFCF(data.num_users, data.num_items, users, items, alpha=0.0).norm
    from gnnrec.config import compose_config
    from gnnrec.run import prepare

    cfg = compose_config(
        ["experiment=cdr_amazon_movies", "encoder=none", "model=gfcf", "model.alpha=0"]
    )
    return prepare(cfg).model.norm


def timed(matrix, k: int, solver: str) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    v = top_right_singular_vectors(matrix, k, seed=0, solver=solver)
    return v, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["movies", "gowalla"], default="movies")
    parser.add_argument("--k", type=int, default=256, help="k timed with both solvers")
    parser.add_argument("--gram-k", type=int, nargs="*", default=[1024, 2048], help="Gram alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    matrix = normalised_matrix(args.data)
    rows, cols = matrix.shape
    print(f"{args.data}: R~ {rows} x {cols}, {matrix.nnz} nonzeros; one thread")
    arpack, t_arpack = timed(matrix, args.k, "arpack")
    gram, t_gram = timed(matrix, args.k, "gram")
    cosines = np.linalg.svd(arpack.T @ gram, compute_uv=False)
    sine = float(np.sqrt(max(0.0, 1.0 - cosines.min() ** 2)))
    s_arpack = np.sort(np.linalg.norm(matrix @ arpack, axis=0))[::-1]
    s_gram = np.sort(np.linalg.norm(matrix @ gram, axis=0))[::-1]
    print(f"k = {args.k}: arpack {t_arpack:8.1f} s   gram {t_gram:8.1f} s")
    print(f"  gram is {t_arpack / t_gram:.2f}x arpack's speed")
    print(
        f"  connected components with an edge (singular values 1 due): {graph_components(matrix)}"
    )
    for name, s in (("arpack", s_arpack), ("gram", s_gram)):
        print(
            f"  {name:6s} sum of sigma^2 {np.sum(s**2):.6f}, singular values 1: "
            f"{int((s > 1 - 1e-9).sum())}, sigma_k {s[-1]:.6f}"
        )
    print(f"  largest principal-angle sine between the subspaces: {sine:.2e}")
    print(
        f"  largest gap between the sorted singular values: {np.abs(s_arpack - s_gram).max():.2e}"
    )
    for k in args.gram_k:
        v, seconds = timed(matrix, k, "gram")
        sigma_k = np.linalg.norm(matrix @ v[:, -1])
        print(
            f"k = {k}: gram {seconds:8.1f} s ({seconds / t_arpack:.2f} x arpack at "
            f"k = {args.k}), sigma_k = {sigma_k:.6f}"
        )


if __name__ == "__main__":
    main()
