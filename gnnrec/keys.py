"""The one place that names splits, user groups and metric keys.

Every number gnnrec writes (``metrics.json``, ``history.json``, W&B, reports) is keyed
``"<split>/<group>/<metric>@<k>"``, e.g. ``test/cold/ndcg@20``; the size of a group is
``"<split>/<group>/num_users"`` (0 for a group the split's settings call for that got no
user); a group that repeats another (the same users, held-out items and candidates, e.g.
``warm`` on single-domain data, where every user is warm) records
``"<split>/<group>/same_as"``, the name of that group. Build keys with :func:`metric_key`
and read them with :func:`parse_metric_key`; no other module spells a key out.

Groups:

* ``warm``: users with target-domain training history (leave-one-out items held out);
* ``cold``: cold-start users, whose every target interaction is held out;
* ``zero_shot``: users of a domain that is wholly held out (``data.zero_shot_domain``);
* ``all``: every evaluated user of the main task;
* ``cold_item``: users with a held-out positive that has no training interaction, ranked
  among *all* target items (how a deployed system meets new items);
* ``cold_item_only``: the same users and positives ranked among the *cold items only*
  (the item-cold-start convention: knowing which items are new is worth nothing there).

This module is a utility: every stage may import it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL",
    "COLD",
    "COLD_ITEM",
    "COLD_ITEM_ONLY",
    "FEW_USERS",
    "GROUPS",
    "HEADLINE_METRICS",
    "NUM_USERS",
    "SAME_AS",
    "SPLITS",
    "USER_GROUPS",
    "WARM",
    "ZERO_SHOT",
    "MetricKey",
    "metric_key",
    "parse_metric_key",
]

SPLITS = ("val", "test")
WARM, COLD, ZERO_SHOT, ALL = "warm", "cold", "zero_shot", "all"
COLD_ITEM, COLD_ITEM_ONLY = "cold_item", "cold_item_only"
USER_GROUPS = (WARM, COLD, ZERO_SHOT)
"""Groups a split assigns users to (a held-out row's ``group`` column)."""
GROUPS = (*USER_GROUPS, ALL, COLD_ITEM, COLD_ITEM_ONLY)
"""Every group a metric key may name, in the order tables show them."""
HEADLINE_METRICS = (("ndcg", 20), ("recall", 20))
"""``(metric, k)`` pairs tables and the demo show first."""
NUM_USERS = "num_users"
SAME_AS = "same_as"
FEW_USERS = 30
"""A group with fewer users is flagged: warned at run time, marked in the report's tests
(its mean rests on so few users that differences between runs are mostly noise)."""


@dataclass(frozen=True)
class MetricKey:
    """A parsed metric key: ``split/group/metric@k`` (``k`` is ``None`` for ``num_users``).

    ``prefix`` holds anything before the split (``curve/`` for learning-curve records).
    """

    split: str
    group: str
    metric: str
    k: int | None = None
    prefix: str = ""

    def __str__(self) -> str:
        return metric_key(self.split, self.group, self.metric, self.k, prefix=self.prefix)


def metric_key(split: str, group: str, metric: str, k: int | None = None, prefix: str = "") -> str:
    """``"<prefix><split>/<group>/<metric>@<k>"``, or without ``@<k>`` when ``k`` is ``None``.

    >>> metric_key("test", "cold", "ndcg", 20)
    'test/cold/ndcg@20'
    """
    tail = metric if k is None else f"{metric}@{int(k)}"
    return f"{prefix}{split}/{group}/{tail}"


def parse_metric_key(key: str) -> MetricKey | None:
    """The parts of a metric key, or ``None`` if ``key`` is not one (``time/train_s``)."""
    parts = key.split("/")
    for i, part in enumerate(parts):
        if part in SPLITS and len(parts) == i + 3:
            group, tail = parts[i + 1], parts[i + 2]
            metric, _, k = tail.partition("@")
            if k and not k.isdigit():
                return None
            prefix = "/".join(parts[:i]) + "/" if i else ""
            return MetricKey(parts[i], group, metric, int(k) if k else None, prefix)
    return None
