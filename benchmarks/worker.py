"""``python -m benchmarks.worker MODULE JSON``: run ``benchmarks.MODULE.worker(**JSON)`` and print
its result as one JSON line (the last line of stdout)."""

from __future__ import annotations

import importlib
import json
import sys

if __name__ == "__main__":
    module, kwargs = sys.argv[1], json.loads(sys.argv[2])
    result = importlib.import_module(f"benchmarks.{module}").worker(**kwargs)
    print(json.dumps(result))
