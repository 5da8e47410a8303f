"""Built-in quality checks; importing this package registers them (one module per check family)."""

from catalens.quality.checks import (  # noqa: F401
    background,
    border,
    duplicates,
    exposure,
    file,
    geometry,
    lowcontent,
    nsfw,
    overlay,
    sharpness,
    text,
)
