#!/usr/bin/env bash
# Installs the Debian packages the project needs and a fresh machine may lack (once).
# Used by the Makefile's targets, so `make run` and `make test` work on a new machine.
set -euo pipefail
# `ensure.sh npm`: npm alone, for the AsyncAPI schema's package (deploy/asyncapi/fetch.sh).
need=()
if [ "${1:-}" = "npm" ]; then
  command -v npm >/dev/null || need+=(npm)
else
  command -v java >/dev/null || need+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || need+=(maven)
  command -v curl >/dev/null || need+=(curl)
fi
if [ "${1:-}" = "test" ]; then
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
  command -v promtool >/dev/null || need+=(prometheus)
  command -v go >/dev/null || need+=(golang-go)
fi
[ ${#need[@]} -eq 0 ] && exit 0
missing() {
  echo "system: missing ${need[*]} (Debian packages); $1" >&2
  exit 1
}
command -v apt-get >/dev/null || missing "no apt-get here: install them with this system's package manager"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || missing "run make as root, or install them: apt-get install ${need[*]}"
  sudo="sudo"
fi
echo "system: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${need[@]}"
