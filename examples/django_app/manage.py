"""Django's command-line utility for the example project."""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the examples directory
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.app")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
