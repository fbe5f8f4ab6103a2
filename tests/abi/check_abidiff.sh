#!/bin/sh
# Compares the freshly built libmpq.so against the committed ABI baseline (abi/libmpq.abi).
# Any difference abidiff reports fails: a removed or changed symbol, a changed signature, a struct
# whose layout moved — and also a struct grown at its end, which the size-field convention makes
# compatible but which must be a deliberate, reviewed change. Added functions are allowed (new
# nodes in lib/libmpq.map). The release procedure (docs/guide.md, "ABI") regenerates the
# baseline in the same commit as the change:
#   abidw --headers-dir include/mpq --out-file abi/libmpq.abi build/libmpq.so.X.Y.Z
set -u
baseline=$1
library=$2
headers=$3
if ! command -v abidiff >/dev/null 2>&1; then
  echo "abidiff not installed (Debian package abigail-tools): cannot check the ABI"
  exit 77
fi
if ! readelf -S "$library" 2>/dev/null | grep -q '\.debug_info'; then
  echo "$library has no debug information (buildtype=release?): abidiff cannot compare types"
  exit 77
fi
abidiff --no-added-syms --headers-dir2 "$headers" "$baseline" "$library"
rc=$?
# abidiff's exit code is a bit field: 1/2 = error, 4 = ABI change, 8 = incompatible ABI change.
if [ "$rc" -ne 0 ]; then
  echo "ABI differs from $baseline (abidiff exit $rc): if intended, regenerate the baseline in" \
       "this commit (see the comment at the top of tests/abi/check_abidiff.sh)"
  exit 1
fi
echo "ABI identical to $baseline (additions aside)"
exit 0
