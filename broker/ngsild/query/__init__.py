"""Entity queries: parameters → one query model, and a pure evaluator over documents."""

from broker.ngsild.query.model import EntityQuery, compile_pattern, matches

__all__ = ["EntityQuery", "compile_pattern", "matches"]
