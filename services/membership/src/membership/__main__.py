"""`python -m membership [serve|migrate]`."""

from unionhub_runtime.cli import main

from . import bootstrap
from .settings import MembershipSettings


def run() -> None:
    main("membership", bootstrap.build, MembershipSettings, bootstrap.MIGRATIONS)


if __name__ == "__main__":
    run()
