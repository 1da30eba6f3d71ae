"""The images' entrypoint (deploy/docker/Dockerfile): runs the service the image was built for.

    entrypoint.py [serve|migrate] [--migrate]   runs `python -m <service>` with those arguments
    entrypoint.py healthz                       exits 0 when the running service answers /healthz

The service is `UNIONHUB_SERVICE` (the build argument SERVICE). The rest comes from the
service's own settings class, so the Dockerfile names no service: in a container the
service listens on every interface unless `<SERVICE>_HTTP_HOST` says otherwise, on its own
port (`<SERVICE>_HTTP_PORT`, else its settings' default), which `healthz` reads the same way.
"""

from __future__ import annotations

import importlib
import os
import sys
import urllib.request
from collections.abc import Mapping
from typing import Any

CONTAINER_HOST = "0.0.0.0"


def settings_class(service: str) -> Any:
    """`membership` -> `membership.settings.MembershipSettings` (every service's layout)."""
    return getattr(importlib.import_module(f"{service}.settings"), f"{service.capitalize()}Settings")


def container_environment(service: str, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ`, with the service listening on every interface unless it says otherwise."""
    prefix = settings_class(service).model_config["env_prefix"]
    return {f"{prefix}HTTP_HOST": CONTAINER_HOST, **environ}


def healthz(service: str) -> bool:
    """The running service answers 200 on /healthz, on the port its settings give."""
    port = settings_class(service)().http_port
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:  # refused, timed out, or an HTTP error status
        return False


def main(argv: list[str]) -> None:
    service = os.environ["UNIONHUB_SERVICE"]
    if argv == ["healthz"]:
        sys.exit(0 if healthz(service) else 1)
    command = [sys.executable, "-m", service, *argv]
    os.execve(command[0], command, container_environment(service, os.environ))


if __name__ == "__main__":
    main(sys.argv[1:])
