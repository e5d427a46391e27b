"""Pop on the LightGCN Gowalla split, against a computation that shares no gnnrec code.

The reference reads train.txt/test.txt with plain Python, ranks items by training count
(ties: smaller item id first, as documented for gnnrec's Popularity), skips each user's
training items, and computes Recall@20 and NDCG@20 as defined in the LightGCN paper.
"""

import math
from collections import Counter

import pytest

from gnnrec.config import compose_config
from gnnrec.run import run


def read_lists(path):
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts:
            out[int(parts[0])] = [int(x) for x in parts[1:]]
    return out


def independent_pop(folder, k=20):
    train, test = read_lists(folder / "train.txt"), read_lists(folder / "test.txt")
    counts = Counter(i for items in train.values() for i in items)
    all_items = set(counts) | {i for items in test.values() for i in items}
    ranking = sorted(all_items, key=lambda i: (-counts[i], i))
    recalls, ndcgs = [], []
    for user, truth in test.items():
        if not truth:
            continue
        seen, truth = set(train.get(user, [])), set(truth)
        top = []
        for item in ranking:
            if item not in seen:
                top.append(item)
                if len(top) == k:
                    break
        hits = [item in truth for item in top]
        recalls.append(sum(hits) / len(truth))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(truth), k)))
        ndcgs.append(dcg / idcg)
    return sum(recalls) / len(recalls), sum(ndcgs) / len(ndcgs), len(recalls)


def test_gowalla_pop_matches_independent_computation(data_root, tmp_path):
    recall, ndcg, n_users = independent_pop(data_root / "gowalla-lightgcn")
    cfg = compose_config(
        [
            "data=gowalla",
            "model=pop",
            "tracker=none",
            "eval.sampled_negatives=0",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.data_dir={data_root}",
            "optimized_metric=null",
        ]
    )
    metrics = run(cfg, output_dir=tmp_path / "run")
    assert metrics["test/all/num_users"] == n_users == 29858
    assert metrics["test/all/recall@20"] == pytest.approx(recall, rel=1e-6)
    assert metrics["test/all/ndcg@20"] == pytest.approx(ndcg, rel=1e-6)
