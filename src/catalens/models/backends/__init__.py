"""Model backends: each turns a :class:`~catalens.models.spec.ModelSpec` into a torch model.

Imported lazily (they import torch and the backend library).
"""
