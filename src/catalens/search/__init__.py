"""catalens.search: visual search, the vector index and duplicates."""
