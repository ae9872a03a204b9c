"""Hypothesis profiles: "dev" (fast, random) and "ci" (derandomised, no deadline, more
examples); "ci" is selected when the environment variable CI is set."""

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
