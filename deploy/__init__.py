"""deploy: the Ray Serve application (the only package that imports ray.serve)."""

from .app import build, build_app
from .config import ServeConfig
from .schema import ScoreRequest, encode_windows

__all__ = ["build", "build_app", "ServeConfig", "ScoreRequest", "encode_windows"]
