#!/usr/bin/env bash
# The AsyncAPI 3.0 JSON Schema that tests/contract checks each service's `/asyncapi` document
# against: the specification's own schema files, published on npm as @asyncapi/specs. The
# package is pinned by version and by the sha512 of its tarball (npm's dist.integrity, in hex),
# fetched once with `npm pack` and unpacked into deploy/asyncapi/.cache/.
#
#   fetch.sh    fetch when the cache is missing or from another pin; prints nothing otherwise
#
# npm is needed the first time only; deploy/system/ensure.sh installs Debian's when missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache="$here/.cache"
package="@asyncapi/specs"
version="6.11.1"
# = sha512-A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ==
sha512="0375812ea00a1a8276fba15616da63065090d6814272ce06c45ef3b081af36aa7f9251941e3940dda01c67d5cc3292c613cccf7980f3db1f4598ee834ae2ab69"
schema="package/schemas/3.0.0.json"
wanted="$package@$version $sha512"

if [ "$(cat "$cache/.complete" 2>/dev/null)" = "$wanted" ] && [ -s "$cache/3.0.0.json" ]; then exit 0; fi
command -v npm >/dev/null || "$repo/deploy/system/ensure.sh" npm
echo "asyncapi: fetching $package@$version from the npm registry (first time only)" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$(cd "$work" && npm pack --silent --ignore-scripts "$package@$version" | tail -n 1)
actual=$(sha512sum "$work/$tarball" | cut -d' ' -f1)
if [ "$actual" != "$sha512" ]; then
  echo "asyncapi: $tarball has sha512 $actual, pinned $sha512: not used" >&2
  exit 1
fi
tar -xzf "$work/$tarball" -C "$work" "$schema" package/LICENSE
rm -rf "$cache"
mkdir -p "$cache"
mv "$work/$schema" "$cache/3.0.0.json"
mv "$work/package/LICENSE" "$cache/LICENSE"
echo "$wanted" > "$cache/.complete"
echo "asyncapi: $cache/3.0.0.json" >&2
