#!/usr/bin/env bash
# Installs the Debian packages the project needs and a fresh machine may lack (once).
# Used by the Makefile's targets, so `make run` and `make test` work on a new machine.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v curl >/dev/null || need+=(curl)
if [ "${1:-}" = "test" ]; then
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
  command -v promtool >/dev/null || need+=(prometheus)
  command -v go >/dev/null || need+=(golang-go)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "system: installing ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${need[@]}"
