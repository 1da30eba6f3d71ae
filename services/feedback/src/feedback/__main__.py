"""`python -m feedback [serve|migrate]`."""

from unionhub_runtime.cli import main

from . import bootstrap
from .settings import FeedbackSettings


def run() -> None:
    main("feedback", bootstrap.build, FeedbackSettings, bootstrap.MIGRATIONS)


if __name__ == "__main__":
    run()
