"""Every error contextd expects, in one tree.

    ContextdError                 a known failure; its message says what to do next
     ├── ConfigError              a setting is invalid
     ├── SourceError              a source is unknown, duplicated or not a directory
     ├── ModelUnavailable         the embedding model cannot be loaded
     ├── StoreError               the vector store or catalog cannot be used
     │    ├── StoreMismatch       the index was built with another model or chunker
 │    │    └── ChunkerMismatch  the same model, chunks cut by another contextd version
     │    ├── StoreUnavailable    the Chroma server cannot be reached, or refuses the token
     │    ├── NamespaceTaken      another contextd's index already uses this namespace
     │    ├── CatalogLocked       another process holds the catalog's lock past the timeout
     │    └── DiskFull            the data dir's disk has no room for a write
     ├── IndexingError            an index run could not complete
     └── DaemonError              the daemon cannot start, or does not answer

Anything that is not a ContextdError is a bug: the CLI logs its traceback and says where.
"""

from __future__ import annotations


class ContextdError(Exception):
    """A failure the user can act on. The message names the next command to run."""


class ConfigError(ContextdError):
    pass


class SourceError(ContextdError):
    pass


class NotARepository(SourceError):
    """A folder that git says is in no repository."""


class ModelUnavailable(ContextdError):
    pass


class StoreError(ContextdError):
    pass


class StoreMismatch(StoreError):
    pass


class ChunkerMismatch(StoreMismatch):
    """The keyword index still answers (its chunks' text is sound) until a reindex."""


class StoreUnavailable(StoreError):
    pass


class NamespaceTaken(StoreError):
    pass


class StoreGone(StoreError):
    """The store's collection vanished while in use (a wiped or restored server, another
    data dir taking the namespace over, the chroma folder deleted)."""


class CatalogLocked(StoreError):
    pass


class DiskFull(StoreError):
    pass


class IndexingError(ContextdError):
    pass


class DaemonError(ContextdError):
    pass


# The store cannot take or give vectors now, while the catalog and its keyword index work:
# indexing goes on by keyword, searches answer by keyword (marked), the store catches up.
STORE_NOT_NOW: tuple[type[StoreError], ...] = (StoreUnavailable, ChunkerMismatch)
