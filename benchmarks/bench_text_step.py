"""One text-LightGCN training step on Amazon Books+CDs -> Movies: the two ``model.order``s.

``project_then_propagate`` (AlphaRec, the default) runs the MLP on every node's text and
propagates the projections each step; ``propagate_then_project`` propagates the text once
(timed here too, as a one-off) and runs the MLP on the step's batch rows only. Both steps
are InfoNCE over the batch's shared negatives (``loss=softmax``, the text studies' loss),
``sampler=domain`` with one negative per pair, backward and Adam, at the studies' batch of
8,192 pairs, on the real split's graph. The text vectors are random unit vectors of
MiniLM's size (384): a step's cost does not depend on their values, and the benchmark
needs no encoder.

    python -m benchmarks.bench_text_step [--threads 1] [--repeats 5] [--hidden 256] [--shared M]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from benchmarks.common import interleaved_medians
from gnnrec.config import compose_config
from gnnrec.models import LightGCNText, SoftmaxLoss
from gnnrec.run import load_split, training_data
from gnnrec.train import NegativeSampler

ORDERS = ("project_then_propagate", "propagate_then_project")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per order")
    parser.add_argument("--batch", type=int, default=8192, help="pairs per step")
    parser.add_argument("--hidden", type=int, default=256, help="MLP hidden size")
    parser.add_argument(
        "--shared", type=int, default=None, help="loss.shared_negatives (default: all)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = compose_config(["data=amazon_bcm", "data.target_domain=movies", "encoder=none"])
    data, split = load_split(cfg)
    train = training_data(cfg, data, split)
    text = F.normalize(torch.randn(train.num_items, 384), dim=-1)
    sampler = NegativeSampler(
        train.train_users, train.train_items, train.item_domain, train.item_counts, seed=0
    )
    batches = sampler.epoch(args.batch)
    loss = SoftmaxLoss(temperature=0.2, shared_negatives=args.shared)
    steps, setup = {}, {}
    for order in ORDERS:
        t0 = time.perf_counter()
        model = LightGCNText(
            train.num_users,
            train.num_items,
            train.adj,
            text,
            train.train_users,
            train.train_items,
            item_counts=train.item_counts,
            hidden_dim=args.hidden,
            item_bias="logpop",
            bias_init=0.1,
            order=order,
        )
        setup[order] = time.perf_counter() - t0
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(model=model, opt=opt) -> None:
            value = loss(model, *next(batches))
            opt.zero_grad()
            value.backward()
            opt.step()

        steps[order] = step
    t = interleaved_medians(steps, repeats=args.repeats)
    nodes = train.num_users + train.num_items
    per_epoch = -(-len(sampler) // args.batch)
    print(
        f"Amazon Books+CDs -> Movies: {nodes} nodes, {len(sampler)} training pairs "
        f"({per_epoch} steps of {args.batch}); MLP 384-{args.hidden}-64; "
        f"shared negatives {args.shared or args.batch}; "
        f"threads={args.threads}"
    )
    for order in ORDERS:
        print(
            f"  {order:24s} step {t[order] * 1000:8.1f} ms   epoch ~{t[order] * per_epoch:6.1f} s"
            f"   model set-up {setup[order]:5.1f} s"
        )
    base, fast = ORDERS
    print(f"  speed-up per step: {t[base] / t[fast]:.1f}x")


if __name__ == "__main__":
    main()
