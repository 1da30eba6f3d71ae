"""`python -m evaluation [serve|migrate]`."""

from unionhub_runtime.cli import main

from . import bootstrap
from .settings import EvaluationSettings


def run() -> None:
    main("evaluation", bootstrap.build, EvaluationSettings, bootstrap.MIGRATIONS)


if __name__ == "__main__":
    run()
