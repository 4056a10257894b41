"""ganlab's built-in plugins. Each module is an entry point of the ``ganlab`` group,
loaded exactly as a third-party plugin is."""
