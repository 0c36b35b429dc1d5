#!/bin/sh
# Build the Debian package (needs cargo-deb: cargo install cargo-deb): the release binary, its
# generated assets (dist/deb-assets.sh), then the package in target/debian/.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p imageguard
dist/deb-assets.sh target/release/imageguard
cargo deb -p imageguard --no-build --strip "$@"
