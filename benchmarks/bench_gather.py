"""Scoring sampled negatives, forward and backward: how the item rows are gathered.

A sampled-softmax step scores every training pair against its own K negatives, so it
gathers ``B x K`` item rows from the item table and, in the backward pass, adds ``B x K``
gradient rows back into it. Three torch spellings of that gather are timed on Gowalla's
sizes (40,981 items, 64 dimensions, batch 8,192, K = 64): advanced indexing
``table[index]`` (backward: ``index_put_`` with accumulation), ``torch.index_select``
(backward: ``index_add_``) and ``torch.nn.functional.embedding`` (backward: its dense
embedding kernel). All three give the same scores and gradients (checked here).

    python -m benchmarks.bench_gather [--threads 1] [--repeats 10] [--negatives 64]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.common import interleaved_medians, report_speeds, step_arguments


def main() -> None:
    args = step_arguments(__doc__, 10)
    num_users, num_items, dim = 29_858, 40_981, 64
    users_t = torch.randn(num_users, dim, requires_grad=True)
    items_t = torch.randn(num_items, dim, requires_grad=True)
    users = torch.randint(num_users, (args.batch,))
    neg = torch.randint(num_items, (args.batch, args.negatives))

    def indexing(table, index):
        return table[index.reshape(-1)].reshape(*index.shape, dim)

    def index_select(table, index):
        return table.index_select(0, index.reshape(-1)).reshape(*index.shape, dim)

    def embedding(table, index):
        return F.embedding(index, table)

    spellings = {"indexing": indexing, "index_select": index_select, "embedding": embedding}

    def step(gather):
        u = gather(users_t, users)
        v = gather(items_t, neg)
        scores = (u.unsqueeze(1) * v).sum(-1)
        loss = torch.logsumexp(scores, dim=1).mean()
        users_t.grad = items_t.grad = None
        loss.backward()
        return scores.detach(), items_t.grad.clone(), users_t.grad.clone()

    reference = step(indexing)
    for name, gather in spellings.items():
        for got, want in zip(step(gather), reference, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)
    times = interleaved_medians(
        {name: (lambda g=g: step(g)) for name, g in spellings.items()}, args.repeats
    )
    report_speeds(args, dim, times, "indexing")


if __name__ == "__main__":
    main()
