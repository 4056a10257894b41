"""Test plugin: calls sys.exit(0) while it is imported (it must not end ganlab silently)."""

import sys

sys.exit(0)
