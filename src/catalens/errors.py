"""Typed errors shared by every catalens module.

Every error carries a human-readable message; errors about a file name the file.
The CLI maps :class:`CatalensError` to a clean message and a non-zero exit.
"""

from __future__ import annotations


class CatalensError(Exception):
    """Base class of every error catalens raises on purpose."""

    exit_code: int = 2


class ConfigError(CatalensError):
    """A bad option, setting or configuration file."""


class ImageError(CatalensError):
    """An image could not be used. ``source`` names the file or URL, ``reason`` says why."""

    kind = "image"

    def __init__(self, source: str, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class UnreadableError(ImageError):
    kind = "unreadable"


class EmptyFileError(ImageError):
    kind = "empty"


class NotAnImageError(ImageError):
    kind = "not-an-image"


class UnsupportedFormatError(ImageError):
    kind = "unsupported"


class TruncatedImageError(ImageError):
    kind = "truncated"


class DecompressionBombError(ImageError):
    kind = "too-many-pixels"


class BadDimensionsError(ImageError):
    kind = "bad-dimensions"


class TooLargeError(ImageError):
    kind = "too-large"


class FetchError(ImageError):
    kind = "fetch"


class BlockedAddressError(FetchError):
    kind = "blocked-address"


class ModelError(CatalensError):
    """A model could not be resolved, loaded or run."""


class WeightsUnavailableError(ModelError):
    """Weights are not available offline; the message says how to provide them."""


class ManifestError(CatalensError):
    """A manifest (CSV / JSONL / Parquet) is malformed or misses a column."""


class NotFoundError(CatalensError):
    """An id, product, image, model or artefact that does not exist."""


class EmptyCatalogError(CatalensError):
    """The operation needs images or embeddings and the catalog has none."""


class IndexCorruptError(CatalensError):
    """A vector index on disk is damaged or does not match its data (it is rebuilt from the vectors)."""


class IndexUnavailableError(CatalensError):
    """A vector index server (Milvus) cannot be reached or does not answer in time; the message names its URI."""


class FilterSyntaxError(CatalensError):
    """A malformed ``--where`` filter expression; the message points at the position."""


class UnknownFieldError(FilterSyntaxError):
    """A ``--where`` filter names a field that no product of the catalog has; the message lists the
    known fields."""


class EmptyInputError(ConfigError):
    """A folder, manifest or URL list holds no image (nothing to do); ``--allow-empty`` makes it a warning."""


class CatalensWarning(UserWarning):
    """A result that is probably not what was meant (an empty input under ``allow_empty``, a
    ``--where`` value no product has). The CLI prints it as ``warning: ...`` on stderr."""


class TextSearchUnavailableError(CatalensError):
    """Text search was asked for a model without a text tower and no text projection is trained."""


class NoGradientPathError(ModelError):
    """An explanation needs gradients and the model (ONNX-only, non-torch head) has none."""


class UnknownLabelError(NotFoundError):
    """A label (class) the classifier does not have; the message lists the known ones."""


class DatabaseUnavailableError(CatalensError):
    """The catalog database cannot be reached or dropped the connection (server down, restarted,
    refused the login). ``database`` names it (password hidden); what was committed before is kept."""

    def __init__(self, database: str, reason: str) -> None:
        self.database = database
        self.reason = reason
        super().__init__(f"database {database}: {reason}")


class ClusterError(CatalensError):
    """The Ray cluster cannot be reached, or lost every worker of a job; the message names the address.
    What was committed before is kept: run the same command again to resume."""


class CatalogCorruptError(CatalensError):
    """A catalog file (SQLite database, vector file, index) is damaged; the message names the file
    and says what to do (``catalens doctor``, ``catalens restore``)."""


class DiskFullError(CatalensError):
    """The disk holding the catalog (or a file it writes) is full; the message names the disk.
    Whole batches written before are kept: free space and run the same command again."""


class ReadOnlyHomeError(CatalensError):
    """The catalog home cannot be written (read-only file system or no permission); refused
    before any work is done."""


# ---- classification (``catalens.classify``) ------------------------------------------------------
class ClassifierError(CatalensError):
    """A classifier could not be trained, saved, loaded or applied."""


class LabelsError(ManifestError):
    """A labels CSV is unusable: missing columns, unknown images, empty fields, too few examples."""


class TaxonomyError(ConfigError):
    """A taxonomy YAML is malformed or contradicts itself."""


class TrainOverlapError(ClassifierError):
    """``eval`` was given label rows the classifier was trained on (its score would be optimistic);
    the message says how many and how to evaluate honestly."""
