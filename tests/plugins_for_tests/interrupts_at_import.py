"""Test plugin: raises KeyboardInterrupt while it is imported (taken as the user's Ctrl-C)."""

raise KeyboardInterrupt
