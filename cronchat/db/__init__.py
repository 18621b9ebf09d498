"""The database layer: a thread-backed pool, transactions, dialects and migrations."""

from cronchat.db.database import (
    Database,
    Query,
    Row,
    Tx,
    UniqueViolation,
    in_list,
    pairs_match,
)

__all__ = ["Database", "Query", "Row", "Tx", "UniqueViolation", "in_list", "pairs_match"]
