#!/bin/sh
# Builds hello_mpq.c against an installed libmpq, the way a user's project would:
#   cc hello_mpq.c $(pkg-config --cflags --libs libmpq)
# PKG_CONFIG_PATH / LD_LIBRARY_PATH point at the install prefix when it is not a system one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -std=c11 -Wall -Wextra -Werror "$here/hello_mpq.c" -o "$out/hello_mpq" $(pkg-config --cflags --libs libmpq)
"$out/hello_mpq"
