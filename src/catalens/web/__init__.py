"""The web page served by the API at ``/``: plain HTML, CSS and JavaScript modules in ``static/``
(no build step)."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
