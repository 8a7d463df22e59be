"""Serving: an OpenAI-compatible HTTP API with continuous batching, and a web playground.

    tinylm serve runs/shakespeare/best --port 8000

Files: scheduler (the one thread that owns the model and runs a continuous batch,
tinylm.generation.continuous), schemas (request validation), limits (body size),
structured (grammar/regex/JSON-schema processors), app (the FastAPI routes, and the
TaskServer through which each task plug-in adds its own, e.g. tasks/code2/serve.py),
static/ (the playground: plain HTML, CSS and JavaScript; it opens on the view of the
served model's task). docs/serving.md has the design and the measured figures.
"""

from tinylm.serve.app import create_app
from tinylm.serve.scheduler import Scheduler

__all__ = ["create_app", "Scheduler"]
