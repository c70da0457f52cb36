"""L8: `ldmkit serve`: the HTTP API with its job queue, store and worker, and the web page."""

from ldmkit.serve.app import create_app
from ldmkit.serve.config import Limits, ServeConfig

__all__ = ["Limits", "ServeConfig", "create_app"]
