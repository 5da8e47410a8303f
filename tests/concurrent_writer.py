"""A writer process for the concurrent-writer tests: ingests one manifest into a shared catalog
with the tests' fake encoder (``python tests/concurrent_writer.py HOME MANIFEST [BATCH]``), prints
the job report as JSON. The database comes from ``CATALENS_DB_URL`` when set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FakeEncoder  # noqa: E402


def main() -> None:
    import catalens.models as models

    enc = FakeEncoder()
    models.load_image_encoder = lambda name, **kw: enc  # type: ignore[assignment]
    from catalens import Catalog

    home, manifest = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with Catalog.open(home, batch_size=batch, workers=1) as cat:
        report = cat.ingest(manifest, id_col="id", text_col="title")
    print(json.dumps(report.to_dict()))


if __name__ == "__main__":
    main()
