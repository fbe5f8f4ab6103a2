#!/bin/sh
# Compares the freshly built libmpq.so against the committed ABI baseline (abi/libmpq.abi, made by
# `abidw` on the release). Additions are allowed while the soname stays; an incompatible change
# (removed symbol, changed signature or struct layout) fails. Update the baseline together with
# lib/libmpq.map in the same commit: abidw --headers-dir include/mpq --out-file abi/libmpq.abi \
#   build/libmpq.so.0.1.0
set -u
baseline=$1
library=$2
headers=$3
if ! command -v abidiff >/dev/null 2>&1; then
  echo "abidiff not installed (Debian package abigail-tools): cannot check the ABI"
  exit 77
fi
abidiff --no-added-syms --headers-dir2 "$headers" "$baseline" "$library"
rc=$?
# abidiff's exit code is a bit field: 4 = ABI change, 8 = incompatible ABI change, 1/2 = error.
if [ $((rc & 8)) -ne 0 ] || [ $((rc & 3)) -ne 0 ]; then
  echo "incompatible ABI change against $baseline (abidiff exit $rc)"
  exit 1
fi
echo "ABI compatible with $baseline"
exit 0
