#!/bin/sh
# The package's generated assets, from the release binary BIN into target/deb-assets: the manual
# page, shell completions, the default configuration and the Debian changelog.
set -eu
cd "$(dirname "$0")/.."
bin=${1:-target/release/imageguard}
out=target/deb-assets
mkdir -p "$out"
"$bin" generate man | gzip -9n > "$out/imageguard.8.gz"
"$bin" generate completions bash > "$out/imageguard.bash"
"$bin" generate completions zsh > "$out/_imageguard"
"$bin" generate completions fish > "$out/imageguard.fish"
"$bin" generate config > "$out/imageguard.toml"
