"""Errors of the classify package (subclasses of :class:`catalens.errors.CatalensError`)."""

from __future__ import annotations

from catalens.errors import CatalensError, ConfigError, ManifestError


class ClassifierError(CatalensError):
    """A classifier could not be trained, saved, loaded or applied."""


class LabelsError(ManifestError):
    """A labels CSV is unusable: missing columns, unknown images, empty fields, too few examples."""


class TaxonomyError(ConfigError):
    """A taxonomy YAML is malformed or contradicts itself."""


class TrainOverlapError(ClassifierError):
    """``eval`` was given label rows the classifier was trained on (its score would be optimistic);
    the message says how many and how to evaluate honestly."""
