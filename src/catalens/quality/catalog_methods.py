"""``Catalog`` methods for quality and compliance checks (mixed into :class:`catalens.core.Catalog`).

Keep these thin: each method calls the functions of this package with the catalog's
database, settings and stored vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from catalens.catalog_base import CatalogParts

if TYPE_CHECKING:
    from catalens.core import Catalog
    from catalens.quality.runner import QCReport

ProgressFactory = Callable[[str, int | None], Callable[[int], None]]


class QualityMixin(CatalogParts):
    """Methods for quality and compliance checks."""

    def qc(
        self,
        paths: Sequence[str | Path] | None = None,
        *,
        all_images: bool = False,
        profile: str = "general",
        store: bool = True,
        progress: ProgressFactory | None = None,
        workers: int | None = None,
        ray: str | None = None,
        allow_empty: bool = False,
        exceptions: bool = True,
    ) -> QCReport:
        """Check files/folders (``paths``) and/or every catalog image (``all_images``) against a profile.

        Returns a :class:`catalens.quality.runner.QCReport`; results are stored in the catalog
        (table ``quality_results``) unless ``store=False``. ``ray``: decode and check on the Ray
        cluster at that address ("auto": the running one); the batch checks and storing run here.
        A folder without images raises :class:`catalens.errors.EmptyInputError` (a warning with
        ``allow_empty=True``). Accepted exceptions (``catalens qc dismiss``) apply to the report
        unless ``exceptions=False``: a dismissed check's warn or fail reads ``pass`` with
        ``dismissed`` (counts, gate and outputs follow); stored rows keep the checks' own verdicts.

        >>> report = cat.qc(["photos/"], profile="marketplace-main-image")
        >>> report.exit_code("error"), report.counts

        ``progress``: a factory ``(stage, total) -> tick(n)`` for progress bars; ``workers``: threads
        checking photos (default: the configured number).

        ``profile``: a profile name or YAML path; ``store``, ``allow_empty`` and ``exceptions``: see
        above.
        """
        from catalens.quality.collect import collect_items
        from catalens.quality.profiles import load_profile
        from catalens.quality.runner import run_checks
        from catalens.quality.store import save_results

        prof = load_profile(profile, self.settings.home)
        db = self.db
        items, failed = collect_items(db, paths or [], all_images, allow_empty=allow_empty)
        tick = progress("qc", len(items)) if progress else None
        map_items = None
        if ray is not None:
            from catalens.quality.ray_qc import ray_items_map

            map_items = ray_items_map(ray or "auto", prof, self.settings)
        report = run_checks(
            items,
            prof,
            self.settings,
            on_progress=tick,
            workers=workers,
            map_items=map_items,
        )
        if (
            all_images
            and "duplicates" in prof.checks
            and prof.checks["duplicates"].get("method", "auto") == "auto"
        ):
            from catalens.quality.dedup_bridge import apply_catalog_dedup

            report.duplicates_method = apply_catalog_dedup(  # a mixin of Catalog: its dedup
                cast("Catalog", self), report.images, prof.checks["duplicates"].get("verdict", "warn")
            )
        for qc in failed:
            qc.profile = prof.name
        report.images.extend(failed)
        if store:
            save_results(self.db, report.images, prof.name)
        if exceptions:
            from catalens.quality.exceptions import apply_to_images, dismissed_pairs

            apply_to_images(report.images, dismissed_pairs(db))
        return report

    def qc_results(self, profile: str | None = None, verdict: str | None = None) -> list[dict[str, Any]]:
        """Stored quality results (latest per image and profile).

        ``verdict``: only results with this verdict (pass | warn | fail | error).

        ``profile``: only results of this profile."""
        from catalens.quality.store import load_results

        return load_results(self.db, profile, verdict)

    def qc_stored(self, shas: Sequence[str], profile: str | None = None) -> list[dict[str, Any]]:
        """Every stored result of these images (or of ``profile`` only), accepted exceptions applied.

        ``shas``: the images' SHA-256s."""
        from catalens.quality.summary import stored_results

        return stored_results(self.db, list(shas), profile)

    def quality_profiles(self) -> list[str]:
        """Profile names this catalog can use: the shipped ones and ``<home>/profiles/*.yaml``."""
        from catalens.quality.summary import profile_names

        return profile_names(self.settings.home)

    def qc_summary(
        self, profile: str | None = None, worst: int = 24, offset: int = 0, check: str | None = None
    ) -> dict[str, Any]:
        """The quality dashboard of the stored results of one ``profile`` (default: the one run on most
        images): counts by verdict and by issue, a page (``offset``, ``worst`` rows) of the worst images
        with reasons and products (only those with ``check`` not passing when given), the profiles that
        have results and those available. See :func:`catalens.quality.summary.summarise`.

        >>> cat.qc_summary("marketplace-main-image", worst=10)["verdicts"]
        """
        from catalens.quality.summary import summarise

        return summarise(
            self.db,
            self.qc_results(),
            profile=profile,
            worst=worst,
            offset=offset,
            check=check,
            available=self.quality_profiles(),
        )
