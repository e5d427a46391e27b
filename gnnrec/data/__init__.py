"""Data: raw sources -> canonical tables -> preprocessed interactions."""

from gnnrec.data.cache import cache_key, code_files, load_dataset
from gnnrec.data.knowledge import KnowledgeGraph, RelationalGraph, knowledge_graph, relational_graph
from gnnrec.data.preprocess import preprocess
from gnnrec.data.schema import (
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    SPLIT_VALUES,
    DataError,
    InteractionData,
    RawTables,
    check_timestamps,
    missing_item_error,
    missing_item_mask,
    validate_tables,
)
from gnnrec.data.sources import (
    AtomicSource,
    FolderSource,
    LightGCNSource,
    SequenceFoodKitchenSource,
    Source,
)

__all__ = [
    "DataError",
    "RawTables",
    "InteractionData",
    "INTERACTION_COLUMNS",
    "ITEM_COLUMNS",
    "SPLIT_VALUES",
    "validate_tables",
    "check_timestamps",
    "missing_item_mask",
    "missing_item_error",
    "Source",
    "FolderSource",
    "SequenceFoodKitchenSource",
    "LightGCNSource",
    "AtomicSource",
    "KnowledgeGraph",
    "knowledge_graph",
    "RelationalGraph",
    "relational_graph",
    "preprocess",
    "load_dataset",
    "cache_key",
    "code_files",
]
