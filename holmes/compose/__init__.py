"""HOLMES composer: choose the most accurate ensemble of the zoo whose latency at a load fits a budget."""

from .composer import METHODS, compose, latency_fn, search
from .genetic import genetic
from .plan import EnsembleSpec, Plan
from .scoring import Evaluator, batch_auroc, ensemble_prob, nested_score
from .search import SearchResult, exhaustive, greedy_accuracy, greedy_latency, random_search
from .table import ZooTable

__all__ = [
    "METHODS", "compose", "latency_fn", "search", "genetic", "EnsembleSpec", "Plan", "Evaluator", "batch_auroc",
    "ensemble_prob", "nested_score", "SearchResult", "exhaustive", "greedy_accuracy", "greedy_latency",
    "random_search", "ZooTable",
]
