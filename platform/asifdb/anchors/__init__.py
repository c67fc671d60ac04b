"""The live model: usable pairs in memory (exact path) or in pgvector HNSW (ANN path)."""
