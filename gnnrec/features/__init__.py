"""Features: item and user texts -> language-model embeddings, cached on disk."""

from gnnrec.features.cache import (
    CachedEmbeddings,
    cached_embeddings,
    cached_item_embeddings,
    embedding_cache_key,
    encode_cached,
    item_embeddings,
    texts_sha256,
)
from gnnrec.features.encoder import TextEncoder
from gnnrec.features.text import item_texts, template_fields, user_profiles

__all__ = [
    "CachedEmbeddings",
    "TextEncoder",
    "cached_embeddings",
    "cached_item_embeddings",
    "embedding_cache_key",
    "encode_cached",
    "item_embeddings",
    "item_texts",
    "template_fields",
    "texts_sha256",
    "user_profiles",
]
