"""One sampled-softmax training step of MF with K negatives and L2: how the step is spelt.

A step with ``K`` negatives per pair scores ``B x K`` (user, item) pairs and, with L2 on
the batch's layer-0 rows, regularises the ``B x K`` negative rows too. Two spellings of
the same step (same loss and gradients, checked here) are timed on the Amazon
Books + CDs + Movies sizes (9,333 users, 86,423 items, batch 8,192, K = 64, dim 128):

* ``gather``: the scores as ``(u[:, None] * v).sum(-1)``, the L2 of the negatives by
  gathering their rows (``table[neg].square().sum()``), as before;
* ``counts``: the scores as a batched matrix product (``gnnrec.models.base.pair_scores``)
  and the L2 as every row's squared norm weighted by how often the batch drew it
  (``gnnrec.models.base.squared_row_norms``).

    python -m benchmarks.bench_sampled_step [--threads 1] [--repeats 5] [--dim 128]
"""

from __future__ import annotations

import torch

from benchmarks.common import interleaved_medians, report_speeds, step_arguments
from gnnrec.models.base import _gather, pair_scores, squared_row_norms


def main() -> None:
    args = step_arguments(__doc__, 5, dim=128)
    num_users, num_items, dim = 9_333, 86_423, args.dim
    user_t = (0.1 * torch.randn(num_users, dim)).requires_grad_()
    item_t = (0.1 * torch.randn(num_items, dim)).requires_grad_()
    users = torch.randint(num_users, (args.batch,))
    pos = torch.randint(num_items, (args.batch,))
    neg = torch.randint(num_items, (args.batch, args.negatives))
    l2 = 1e-3

    def gather_step():
        u, p, v = user_t[users], item_t[pos], item_t[neg.reshape(-1)].view(*neg.shape, dim)
        logits = torch.cat([(u * p).sum(-1, keepdim=True), (u.unsqueeze(1) * v).sum(-1)], 1)
        reg = u.square().sum() + p.square().sum() + v.square().sum()
        return logits, reg

    def counts_step():
        u, p = user_t[users], item_t[pos]
        logits = torch.cat([pair_scores(u, p)[:, None], pair_scores(u, _gather(item_t, neg))], 1)
        reg = u.square().sum() + p.square().sum() + squared_row_norms(item_t, neg)
        return logits, reg

    def step(spelling):
        logits, reg = spelling()
        loss = -logits.log_softmax(1)[:, 0].mean() + l2 * 0.5 * reg / args.batch
        user_t.grad = item_t.grad = None
        loss.backward()
        return loss.detach(), user_t.grad.clone(), item_t.grad.clone()

    spellings = {"gather": gather_step, "counts": counts_step}
    reference = step(gather_step)
    for got, want in zip(step(counts_step), reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    times = interleaved_medians(
        {name: (lambda s=s: step(s)) for name, s in spellings.items()}, args.repeats
    )
    report_speeds(args, dim, times, "gather")


if __name__ == "__main__":
    main()
