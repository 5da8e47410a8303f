"""``file``: the file itself - unreadable, corrupt, truncated, not an image, unsupported, oversize,
or an extension that does not match the content."""

from __future__ import annotations

from pathlib import Path

from catalens.quality.context import QCImage
from catalens.quality.registry import Check, register_check
from catalens.quality.result import CheckResult

# Extensions that are fine for each sniffed format.
_EXTENSIONS = {
    "JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"},
    "PNG": {".png", ".apng"},
    "GIF": {".gif"},
    "WEBP": {".webp"},
    "BMP": {".bmp", ".dib"},
    "TIFF": {".tif", ".tiff"},
    "HEIF": {".heic", ".heif", ".hif"},
    "AVIF": {".avif"},
}


@register_check("file")
class FileCheck(Check):
    """Fails when the file cannot be used (the reason says why, ``details.kind`` is the error kind);
    warns on an extension that does not match the content or a file over ``warn_bytes``."""

    unit = "bytes"
    scope = "file"
    params = {"warn_bytes": 10 * 1024 * 1024, "extension_mismatch": "warn"}

    def run(self, img: QCImage) -> CheckResult:
        if img.error is not None:
            return CheckResult(
                "file", None, self.unit, "fail", img.error.reason, details={"kind": img.error.kind}
            )
        size = len(img.data) if img.data is not None else None
        problems: list[str] = []
        verdict = "pass"
        suffix = Path(img.source.split("?")[0]).suffix.lower()
        fmt = img.format or ""
        if suffix and fmt in _EXTENSIONS and suffix not in _EXTENSIONS[fmt] and self.p["extension_mismatch"]:
            problems.append(f"extension {suffix} but the content is {fmt}")
            verdict = str(self.p["extension_mismatch"])
        if size is not None and self.p["warn_bytes"] and size > int(self.p["warn_bytes"]):
            problems.append(f"file is {size / 1e6:.1f} MB, over {int(self.p['warn_bytes']) / 1e6:.1f} MB")
            verdict = "warn" if verdict == "pass" else verdict
        reason = "; ".join(problems) or f"{fmt} file reads cleanly"
        return CheckResult(
            "file",
            float(size) if size is not None else None,
            self.unit,
            verdict,  # type: ignore[arg-type]
            reason,
            details={"format": fmt, "suffix": suffix},
        )
