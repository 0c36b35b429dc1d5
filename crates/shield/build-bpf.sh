#!/bin/sh
# Build the shield's BPF programs (src/bpf/*.bpf.c) into the objects committed beside them, with
# Debian's clang (apt-get install clang libbpf-dev). `--check`: build into a temporary folder and
# fail when an object differs from the committed one (what .ci/run does).
set -eu
cd "$(dirname "$0")/src/bpf"
out=.
if [ "${1:-}" = --check ]; then
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
for src in *.bpf.c; do
    obj="$out/${src%.c}.o"
    # BTF names the source file by its full path: map the checkout's folder to `.` so the object
    # is the same whichever folder the repository was cloned into.
    clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -fdebug-prefix-map="$PWD"=. \
        -I. -I/usr/include/x86_64-linux-gnu -c "$src" -o "$obj"
    # Debug sections other than BTF name this machine's paths too: drop them (BTF stays: CO-RE
    # needs it).
    llvm-strip -g "$obj"
    if [ "$out" != . ] && ! cmp -s "$obj" "${src%.c}.o"; then
        echo "build-bpf: $src does not build into the committed ${src%.c}.o (rebuild with crates/shield/build-bpf.sh)" >&2
        exit 1
    fi
done
