"""Brand tagging: brand names read by OCR and matched to the catalog's brands (``tagger.py``), a logo
head on stored embeddings, and brand taggers as classifier artefacts (``catalog_tagging.py``)."""
