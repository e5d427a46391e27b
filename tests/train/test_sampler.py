import torch

from gnnrec.train.sampler import BPRSampler


def make_sampler(seed=0):
    # items 0-4 domain 0, items 5-9 domain 1 (interleaved order would work too).
    item_domain = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    users = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    items = torch.tensor([0, 2, 1, 3, 4, 5, 6, 7, 9])
    return BPRSampler(users, items, item_domain, seed=seed), users, items, item_domain


def test_negatives_come_from_the_positive_domain_and_are_not_positives():
    sampler, users, items, item_domain = make_sampler()
    positives = set(zip(users.tolist(), items.tolist(), strict=True))
    for _ in range(50):
        for u, p, n in sampler.epoch(batch_size=4):
            assert torch.equal(item_domain[n], item_domain[p])
            for uu, nn in zip(u.tolist(), n.tolist(), strict=True):
                assert (uu, nn) not in positives


def test_epoch_covers_every_pair_once():
    sampler, users, items, _ = make_sampler()
    seen = [
        (u, p)
        for bu, bp, _ in sampler.epoch(batch_size=2)
        for u, p in zip(bu.tolist(), bp.tolist(), strict=True)
    ]
    assert sorted(seen) == sorted(zip(users.tolist(), items.tolist(), strict=True))
    assert len(list(sampler.epoch(batch_size=2, limit_batches=3))) == 3


def test_sampler_is_seeded_and_resumable():
    a, *_ = make_sampler(seed=3)
    b, *_ = make_sampler(seed=3)
    first = [t.tolist() for batch in a.epoch(4) for t in batch]
    assert first == [t.tolist() for batch in b.epoch(4) for t in batch]
    state = a.state_dict()
    nxt = [t.tolist() for batch in a.epoch(4) for t in batch]
    b.load_state_dict(state)
    assert nxt == [t.tolist() for batch in b.epoch(4) for t in batch]


def test_negative_distribution_is_uniform_over_the_domain():
    item_domain = torch.tensor([0] * 4 + [1] * 6)
    sampler = BPRSampler(torch.zeros(1, dtype=torch.long), torch.tensor([0]), item_domain, seed=0)
    neg = sampler.negatives(
        torch.zeros(30000, dtype=torch.long), torch.zeros(30000, dtype=torch.long)
    )
    counts = torch.bincount(neg, minlength=10)
    assert counts[0] == 0 and counts[4:].sum() == 0
    assert (counts[1:4].float() / 30000 - 1 / 3).abs().max() < 0.02
