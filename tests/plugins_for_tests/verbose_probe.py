"""Test plugin: writes what GANLAB_VERBOSE is when it is imported, and in a child process at run start.

The file is named by GANLAB_TEST_RECORD.
"""

import json
import os
import subprocess
import sys
from typing import Any

from ganlab import hookimpl


def note(event: str, value: Any) -> None:
    with open(os.environ["GANLAB_TEST_RECORD"], "a") as handle:
        handle.write(json.dumps({"event": event, "GANLAB_VERBOSE": value}) + "\n")


note("import", os.environ.get("GANLAB_VERBOSE"))


@hookimpl
def on_run_start(ctx: Any) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('GANLAB_VERBOSE'))"],
                           capture_output=True, text=True, check=True)
    note("child", child.stdout.strip())
