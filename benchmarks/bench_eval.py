"""Full-ranking evaluation of all Gowalla test users: gnnrec's Evaluator vs a dense reference.

The reference is the plainest fast code: ``scores = U @ I.T`` in user chunks, training
items set to ``-inf``, ``topk``, then Recall@20 and NDCG@20 from the hits, vectorised;
its masks and truth matrices are built before the clock starts (gnnrec's are not). Both sides
rank the same seeded random 64-d embeddings; the metrics must be identical (these scores have
no ties, so gnnrec's expected cost of ties changes nothing, but gnnrec still pays for finding
out: one extra top-k column per user, and a scan of the rows whose tied block crosses the cut).
A last, untimed-against-anything line runs the worst case for ties, a constant-score model
(every row's tied block crosses the cut), and checks it gets the random level
mean(20 / m'), m' = a user's unmasked candidates.

    python benchmarks/bench_eval.py [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import torch

from benchmarks.common import gowalla_split, interleaved_medians
from gnnrec.evaluate import Evaluator
from gnnrec.evaluate.tasks import ranking_tasks


def prepare_reference(train_csr, test_csr, num_items, chunk=4096):
    """Per chunk: mask indices, a dense truth matrix and truth counts (built untimed)."""
    chunks = []
    n_users = len(train_csr)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        lens = [len(train_csr[u]) for u in range(start, stop)]
        rows = torch.from_numpy(np.repeat(np.arange(stop - start), lens))
        cols = torch.from_numpy(np.concatenate(train_csr[start:stop]))
        truth = torch.zeros(stop - start, num_items, dtype=torch.bool)
        t_lens = [len(test_csr[u]) for u in range(start, stop)]
        truth[
            torch.from_numpy(np.repeat(np.arange(stop - start), t_lens)),
            torch.from_numpy(np.concatenate(test_csr[start:stop])),
        ] = True
        chunks.append((start, stop, rows, cols, truth, torch.tensor(t_lens)))
    return chunks


def dense_reference(user_emb, item_emb, chunks, k=20):
    """Recall@k and NDCG@k (LightGCN definitions), averaged over users with test items."""
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32))
    ideal = torch.cumsum(discounts, 0)
    recall, ndcg = [], []
    for start, stop, rows, cols, truth, n_truth in chunks:
        scores = user_emb[start:stop] @ item_emb.T
        scores[rows, cols] = -math.inf
        top = torch.topk(scores, k).indices
        hits = truth.gather(1, top).float()
        has = n_truth > 0
        recall.append((hits.sum(1) / n_truth.clamp(min=1))[has])
        ndcg.append(((hits * discounts).sum(1) / ideal[(n_truth.clamp(1, k) - 1)])[has])
    return torch.cat(recall).mean().item(), torch.cat(ndcg).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)

    data, split = gowalla_split()
    _, task = ranking_tasks(split, data.item_domain)
    gen = torch.Generator().manual_seed(0)
    user_emb = torch.randn(data.num_users, 64, generator=gen)
    item_emb = torch.randn(data.num_items, 64, generator=gen)

    def by_user(rows):
        order = np.argsort(rows["user_idx"].to_numpy(), kind="stable")
        users = rows["user_idx"].to_numpy()[order]
        items = rows["item_idx"].to_numpy()[order]
        bounds = np.searchsorted(users, np.arange(data.num_users + 1))
        return [items[bounds[u] : bounds[u + 1]] for u in range(data.num_users)]

    chunks = prepare_reference(by_user(split.train), by_user(split.test), data.num_items)
    evaluator = Evaluator(ks=(20,), metrics=("recall", "ndcg"), sampled_negatives=0)
    results = {}

    def ours():
        results["gnnrec"] = evaluator.evaluate(task, user_emb, item_emb)

    def reference():
        results["dense"] = dense_reference(user_emb, item_emb, chunks)

    t = interleaved_medians({"gnnrec": ours, "dense": reference}, repeats=args.repeats, warmup=1)
    got = (results["gnnrec"]["all/recall@20"], results["gnnrec"]["all/ndcg@20"])
    print(
        f"Gowalla test: {task.num_users} users x {task.num_candidates} items; threads={args.threads}"
    )
    print(
        f"  gnnrec Evaluator (recall/ndcg@20): {t['gnnrec']:6.2f} s  -> {got[0]:.6f} / {got[1]:.6f}"
    )
    print(
        f"  dense reference:                   {t['dense']:6.2f} s  -> "
        f"{results['dense'][0]:.6f} / {results['dense'][1]:.6f}"
    )
    print(f"  time ratio gnnrec / dense: {t['gnnrec'] / t['dense']:.2f}  (ceiling: 1.2)")
    same = np.allclose(got, results["dense"], rtol=1e-5, atol=0)
    print(f"  identical metrics: {same}")
    if not same:
        raise SystemExit("metrics differ from the dense reference")

    ones_u, ones_i = torch.ones(data.num_users, 64), torch.ones(data.num_items, 64)
    t0 = time.perf_counter()
    constant = evaluator.evaluate(task, ones_u, ones_i)["all/recall@20"]
    t_const = time.perf_counter() - t0
    level = (20 / (task.num_candidates - task.exclude_indptr.diff()).double()).mean().item()
    print(
        f"  constant scores (all tied):        {t_const:6.2f} s  -> recall@20 {constant:.8f} "
        f"(random level {level:.8f})"
    )
    if not math.isclose(constant, level, rel_tol=1e-9):
        raise SystemExit("a constant-score model is not at the random level")


if __name__ == "__main__":
    main()
