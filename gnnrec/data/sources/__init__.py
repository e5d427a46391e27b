"""Readers that turn each on-disk dataset format into canonical :class:`RawTables`.

One format per file, each class built from plain typed arguments so Hydra can
instantiate it (``_target_: gnnrec.data.FolderSource``):

* :class:`FolderSource` (``folder.py``): one ``<domain>.inter.csv`` /
  ``<domain>.item.csv`` pair (or ``.parquet``) per domain.
* :class:`SequenceFoodKitchenSource` (``sequence.py``): the LLMCDSR food-kitchen
  sequence files.
* :class:`LightGCNSource` (``lightgcn.py``): the LightGCN ``train.txt`` / ``test.txt``
  split.
* :class:`AtomicSource` (``atomic.py``): RecBole atomic files (``.inter``, ``.item``,
  ``.user``, ``.kg``, ``.link``).

:class:`Source` and the readers and checks they share are in ``base.py``. Adding a
format is one file here plus one ``conf/data/<name>.yaml``; ``docs/data.md`` shows how.
"""

from gnnrec.data.sources.atomic import AtomicSource
from gnnrec.data.sources.base import Source
from gnnrec.data.sources.folder import FolderSource
from gnnrec.data.sources.lightgcn import LightGCNSource
from gnnrec.data.sources.sequence import SequenceFoodKitchenSource

__all__ = [
    "Source",
    "FolderSource",
    "SequenceFoodKitchenSource",
    "LightGCNSource",
    "AtomicSource",
]
