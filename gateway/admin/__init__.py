"""The admin panel's static files (``static/``), served by gateway/routes/admin.py at ``GET /admin``."""

from pathlib import Path

STATIC = Path(__file__).parent / "static"
