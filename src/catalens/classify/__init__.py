"""catalens.classify: classification, tagging, colour, brand, evaluation."""
