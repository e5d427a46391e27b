"""R-GCN training steps on MovieLens-100K with and without its knowledge graph.

Each side is one BPR training step on a batch of 2048 training pairs (forward,
backward, Adam), the model built by ``gnnrec.run.prepare`` from
``experiment=rgcn_ml100k`` (``encoder=none``: learnable item embeddings, so no text
model is loaded):

* ``kg``: the R-GCN step with the knowledge graph, the batch's supervision edges
  removed from message passing (the masked operator, the default training);
* ``kg_full``: the same model with ``mask_supervision=false`` (stored CSR values);
* ``kg_dropout``: supervision edges removed and ``edge_dropout=0.4``;
* ``no_kg``: ``model.use_kg=false``, masked supervision;
* ``pyg``: the reference, one PyG ``RGCNConv`` layer stack forward+backward on the
  same KG graph (``edge_index``/``edge_type``, its default path without pyg-lib).

Ratios are against ``pyg`` and ``kg_full`` measured in the same run (round-robin).

    python benchmarks/bench_rgcn.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torch.nn.functional as F

from benchmarks.common import CACHE_DIR, DATA_DIR, interleaved_medians
from gnnrec.config import compose_config
from gnnrec.models import BPRLoss
from gnnrec.run import prepare
from gnnrec.train import NegativeSampler


def build(*overrides: str):
    cfg = compose_config(
        [
            "experiment=rgcn_ml100k",
            "encoder=none",
            "tracker=none",
            f"paths.data_dir={DATA_DIR}",
            f"paths.cache_dir={CACHE_DIR}",
            *overrides,
        ]
    )
    torch.manual_seed(0)
    return prepare(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: single-threaded)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per side")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)

    variants = {
        "kg": (),
        "kg_full": ("model.mask_supervision=false",),
        "kg_dropout": ("model.edge_dropout=0.4",),
        "no_kg": ("model.use_kg=false",),
    }
    setups = {name: build(*o) for name, o in variants.items()}
    train = setups["kg"].train
    sampler = NegativeSampler(train.train_users, train.train_items, train.item_domain, seed=0)
    batches = sampler.epoch(2048)
    bpr = BPRLoss(l2=1e-4)

    def step_of(model):
        optimizer = torch.optim.Adam(model.parameter_groups(), lr=1e-3)
        model.train()

        def step() -> None:
            nonlocal batches
            try:
                batch = next(batches)
            except StopIteration:
                batches = sampler.epoch(2048)
                batch = next(batches)
            loss = bpr(model, *batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        return step

    fns = {name: step_of(s.model) for name, s in setups.items()}
    model = setups["kg"].model
    x0 = torch.cat(
        [model.user_embedding.weight, model.item_embedding.weight, model.node_embedding.weight]
    ).detach()

    def pyg_step() -> None:
        h = x0.requires_grad_()
        for layer, conv in enumerate(model.convs):
            h = conv(h, model.edge_index, model.edge_type)
            if layer < len(model.convs) - 1:
                h = F.relu(h)
        h.square().mean().backward()

    fns["pyg"] = pyg_step
    t = interleaved_medians(fns, repeats=args.repeats, warmup=1)
    print(f"ML-100K R-GCN, {model}; threads={args.threads}; {len(sampler)} training pairs")
    steps = -(-len(sampler) // 2048)
    for name in (*variants, "pyg"):
        print(
            f"  {name:<11} {t[name] * 1000:8.1f} ms/step  ({t[name] * steps:6.1f} s/epoch of "
            f"{steps} steps)  {t['pyg'] / t[name]:5.1f}x faster than pyg, "
            f"{t[name] / t['kg_full']:.2f}x kg_full"
        )


if __name__ == "__main__":
    main()
