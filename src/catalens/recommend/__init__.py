"""catalens.recommend: events and recommendations."""
