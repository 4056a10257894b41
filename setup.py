"""Package discovery, the one part of the build that pyproject.toml cannot express.

[tool.setuptools.packages.find] names each package after its folder, and the built-in plugins
live in plugins/ but install as ganlab_plugins (package-dir in pyproject.toml). A list kept by
hand misses the next subpackage (it once missed ganlab.studies and ganlab.train.population, so a
wheel was not a whole ganlab): both trees are discovered here instead. Everything else is in
pyproject.toml.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
# plugins/examples is a separate distribution (its own pyproject.toml), with its own tests.
_NOT_PLUGINS = ["examples", "examples.*", "tests", "tests.*", "*.tests", "*.tests.*"]


def packages() -> list[str]:
    """Every package the distribution installs (tests/test_example_plugin.py reads it too)."""
    return [
        *find_packages(str(ROOT), include=["ganlab", "ganlab.*"]),
        "ganlab_plugins",
        *(f"ganlab_plugins.{name}" for name in find_packages(str(ROOT / "plugins"), exclude=_NOT_PLUGINS)),
    ]


if __name__ == "__main__":  # as setuptools' build backend runs this file; importing it builds nothing
    setup(packages=packages())
