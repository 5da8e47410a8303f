"""Keeping a catalogue sound: ``catalens doctor`` (check and repair) and ``catalens backup`` / ``restore``."""
