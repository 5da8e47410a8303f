"""catalens.explain: heatmaps and explanations."""
