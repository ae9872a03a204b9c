"""Toy problems with known optima: the paper's log-linear policy setting and quadratics."""

from toyopt.problems.base import Problem
from toyopt.problems.builtin import BUILTINS, get_problem, random_loglinear, random_quadratic
from toyopt.problems.io import ProblemFormatError, load_problem, problem_from_dict, save_problem
from toyopt.problems.loglinear import LogLinearProblem
from toyopt.problems.quadratic import QuadraticProblem

__all__ = [
    "BUILTINS",
    "LogLinearProblem",
    "Problem",
    "ProblemFormatError",
    "QuadraticProblem",
    "get_problem",
    "load_problem",
    "problem_from_dict",
    "random_loglinear",
    "random_quadratic",
    "save_problem",
]
