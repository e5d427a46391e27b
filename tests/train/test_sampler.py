import pytest
import torch
from hydra.utils import instantiate

from gnnrec.config import compose_config
from gnnrec.models import EMCDR, BPRLoss, LightGCN, SoftmaxLoss
from gnnrec.train import InBatchSampler, NegativeSampler, check_training


def make_sampler(seed=0, **kwargs):
    # items 0-4 domain 0, items 5-9 domain 1 (interleaved order would work too).
    item_domain = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    users = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    items = torch.tensor([0, 2, 1, 3, 4, 5, 6, 7, 9])
    counts = torch.bincount(items, minlength=10)
    sampler = NegativeSampler(users, items, item_domain, counts, seed=seed, **kwargs)
    return sampler, users, items, item_domain


@pytest.mark.parametrize("k", [1, 3])
def test_negatives_come_from_the_positive_domain_and_are_not_positives(k):
    # user 2 has 3 of domain 1's 5 items: many redraws, so allow enough rounds
    sampler, users, items, item_domain = make_sampler(num_negatives=k, max_rounds=60)
    positives = set(zip(users.tolist(), items.tolist(), strict=True))
    for _ in range(50):
        for u, p, n in sampler.epoch(batch_size=4):
            assert n.shape == (u.numel(), k)
            assert torch.equal(item_domain[n], item_domain[p].unsqueeze(1).expand(-1, k))
            for uu, row in zip(u.tolist(), n.tolist(), strict=True):
                assert not any((uu, nn) in positives for nn in row)


def test_scope_all_draws_from_every_domain():
    sampler, users, items, item_domain = make_sampler(scope="all")
    neg = sampler.negatives(torch.full((4000,), 1), torch.full((4000,), 3))
    # user 1's positives are 3 and 4; all 8 other items of both domains are drawn, evenly
    counts = torch.bincount(neg.flatten(), minlength=10)
    assert counts[3] == 0 and counts[4] == 0
    others = counts[[0, 1, 2, 5, 6, 7, 8, 9]].float() / 4000
    assert (others - 1 / 8).abs().max() < 0.025


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
    sampler = NegativeSampler(
        torch.zeros(1, dtype=torch.long), torch.tensor([0]), item_domain, seed=0
    )
    neg = sampler.negatives(
        torch.zeros(30000, dtype=torch.long), torch.zeros(30000, dtype=torch.long)
    ).squeeze(1)
    counts = torch.bincount(neg, minlength=10)
    assert counts[0] == 0 and counts[4:].sum() == 0
    assert (counts[1:4].float() / 30000 - 1 / 3).abs().max() < 0.02


def test_popularity_weighted_negatives_follow_count_to_the_alpha():
    item_domain = torch.tensor([0] * 4 + [1] * 2 + [2] * 2)
    # training counts of items 1, 2, 3: 1, 4, 9 (item 0 is the user's positive)
    users = torch.tensor([0] + [1] * 1 + [2] * 4 + [3] * 9 + [4])
    items = torch.tensor([0] + [1] * 1 + [2] * 4 + [3] * 9 + [5])
    counts = torch.bincount(items, minlength=8)
    sampler = NegativeSampler(users, items, item_domain, counts, popularity_alpha=0.5, seed=0)
    neg = sampler.negatives(
        torch.zeros(60000, dtype=torch.long), torch.zeros(60000, dtype=torch.long)
    )
    freq = torch.bincount(neg.flatten(), minlength=8).float() / 60000
    # weights sqrt(count) = 1, 2, 3 over items 1..3 (item 0 rejected, item 4 has count 0)
    torch.testing.assert_close(
        freq[:4], torch.tensor([0.0, 1 / 6, 2 / 6, 3 / 6]), atol=0.01, rtol=0
    )
    assert freq[4:].sum() == 0
    # domain 2 has no counted item: it is drawn uniformly (as a pool for item 6)
    neg = sampler.negatives(torch.zeros(4000, dtype=torch.long), torch.full((4000,), 6))
    freq = torch.bincount(neg.flatten(), minlength=8).float() / 4000
    assert freq[:6].sum() == 0 and abs(freq[6] - 0.5) < 0.03


def test_in_batch_sampler_draws_no_negatives():
    sampler = InBatchSampler(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), seed=0)
    ((users, pos, neg),) = list(sampler.epoch(8))
    assert neg.shape == (3, 0) and sorted(pos.tolist()) == [3, 4, 5]


def test_bad_sampler_settings_name_the_key():
    with pytest.raises(ValueError, match="sampler.num_negatives must be >= 1"):
        make_sampler(num_negatives=0)
    with pytest.raises(ValueError, match="sampler.scope must be one of"):
        make_sampler(scope="global")


def _partial(name):
    return instantiate(compose_config([f"sampler={name}"]).sampler)


def test_impossible_combinations_fail_naming_both_parts():
    # BPR needs a negative per pair; the in-batch sampler draws none.
    with pytest.raises(ValueError, match="loss BPRLoss needs sampled negatives.*InBatchSampler"):
        check_training(LightGCN, BPRLoss(), _partial("in_batch"))
    # EMCDR scores each domain with its own user factor: no in-batch negatives ...
    with pytest.raises(ValueError, match="loss SoftmaxLoss with in-batch .* model EMCDR"):
        check_training(EMCDR, SoftmaxLoss(), _partial("domain"))
    # ... and no negatives from other domains.
    with pytest.raises(ValueError, match="sampler NegativeSampler draws negatives from every"):
        check_training(EMCDR, BPRLoss(), _partial("uniform"))
    # what can work passes
    check_training(EMCDR, BPRLoss(), _partial("popularity"))
    check_training(EMCDR, SoftmaxLoss(in_batch_negatives=False), _partial("domain"))
    check_training(LightGCN, SoftmaxLoss(), _partial("in_batch"))
    check_training(LightGCN, BPRLoss(), _partial("uniform"))
