#!/usr/bin/env bash
# golden_test.sh KVQ GOLDEN_DIR - the committed golden set is exactly what the
# reference writes (S16.5), and `kvq golden --verify` notices a changed,
# missing or extra file (so the check can fail).
set -euo pipefail
kvq=$1
golden=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$kvq" golden --verify "$golden"

# The manifest must be valid JSON (a truncated parameter string once made it invalid).
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); assert m["n_cases"] == len(m["cases"])' \
        "$golden/manifest.json"
fi

cp -r "$golden" "$work/set"
printf '\x01' | dd of="$work/set/pack_3bit_d32.packed.bin" bs=1 seek=5 conv=notrunc status=none
if "$kvq" golden --verify "$work/set" > "$work/out.txt"; then
    echo "golden_test: a changed byte was not detected" >&2
    exit 1
fi
grep -q '^differs:  pack_3bit_d32.packed.bin (first difference at byte 5)' "$work/out.txt"

cp "$golden/pack_3bit_d32.packed.bin" "$work/set/"
rm "$work/set/prng.normal.bin"
touch "$work/set/stray.bin"
if "$kvq" golden --verify "$work/set" > "$work/out.txt"; then
    echo "golden_test: a missing and an extra file were not detected" >&2
    exit 1
fi
grep -q '^missing:  prng.normal.bin' "$work/out.txt"
grep -q '^extra:    stray.bin' "$work/out.txt"
grep -q '1 missing, 1 extra: MISMATCH' "$work/out.txt"
echo "golden_test: verify passes on the committed set and fails on changed, missing and extra files"
