"""holmes: the HOLMES composer (ensembles chosen under a latency budget), latency model and run-time policy."""

from .compose import EnsembleSpec, Plan, ZooTable, compose
from .policy import Choice, SlackPolicy
from .queueing import LatencyModel, Load, latency_at_load

__all__ = ["EnsembleSpec", "Plan", "ZooTable", "compose", "Choice", "SlackPolicy", "LatencyModel", "Load", "latency_at_load"]
