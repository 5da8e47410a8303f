"""catalens.quality: quality and compliance checks."""
