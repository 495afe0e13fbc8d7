#!/usr/bin/env bash
# tests/cli_test.sh - end-to-end test of the `kvq` tool (docs/CLI.md).
#
# Usage: tests/cli_test.sh PATH/TO/kvq
# Runs real commands on small synthetic data in a temporary directory and
# checks exit statuses, messages and the numbers the tool reports. Registered
# with CTest as "cli" by tools/CMakeLists.txt.
set -euo pipefail

KVQ=${1:?usage: cli_test.sh PATH/TO/kvq}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvq-cli-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

checks=0
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect STATUS PATTERN CMD...: CMD exits with STATUS and its output (stdout and
# stderr together) matches the extended regex PATTERN ("" = anything).
expect() {
    local want=$1 pattern=$2
    shift 2
    local got=0
    "$@" >out.txt 2>&1 || got=$?
    if [ "$got" -ne "$want" ]; then
        cat out.txt >&2
        fail "'$*' exited $got, expected $want"
    fi
    if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" out.txt; then
        cat out.txt >&2
        fail "'$*': output does not match /$pattern/"
    fi
    checks=$((checks + 1))
}

# check_errors QZ ORIGINAL: inspect --against reports no S3.8 violation and a
# worst error of at most half a step (plus the bound's 2^-20 slack).
check_errors() {
    expect 0 '^overall: rmse' "$KVQ" inspect "$1" --against "$2"
    local line steps violations
    line=$(grep '^overall:' out.txt)
    steps=$(echo "$line" | sed -E 's/.*max error in steps ([0-9.eE+-]+).*/\1/')
    violations=$(echo "$line" | sed -E 's/.*step bound violations ([0-9]+).*/\1/')
    [ "$violations" = 0 ] || fail "$1: $violations elements outside the S3.8 bound"
    awk -v s="$steps" 'BEGIN { exit !(s <= 0.5000005) }' || fail "$1: max error $steps steps > 0.5"
    # The bound is approached: 4-bit and coarser groups of random data come close to half a step.
    awk -v s="$steps" 'BEGIN { exit !(s > 0.3) }' || fail "$1: max error $steps steps is implausibly small"
    checks=$((checks + 1))
}

# ---- version and help ---------------------------------------------------------
expect 0 'spec 1\.3\.0' "$KVQ" --version
expect 0 '^usage: kvq COMMAND' "$KVQ" help
expect 0 'usage: kvq quantize IN\.kvt' "$KVQ" help quantize
expect 0 'usage: kvq inspect FILE' "$KVQ" inspect --help
expect 2 'unknown command' "$KVQ" frobnicate
expect 2 '^usage: kvq COMMAND' "$KVQ"
expect 2 "unknown command 'nope'" "$KVQ" help nope

# ---- synth --------------------------------------------------------------------
SYNTH=(--layers 2 --heads 2 --tokens 96 --head-dim 32 --outlier-channels 2 --image-run 24 --text-run 8)
expect 0 'wrote a\.kvt: 2 layers x 2 heads x 96 tokens x 32 channels, fp16' \
    "$KVQ" synth -o a.kvt "${SYNTH[@]}" --seed 7
expect 0 '' "$KVQ" synth -o a2.kvt "${SYNTH[@]}" --seed 7
cmp -s a.kvt a2.kvt || fail "synth is not deterministic"
expect 0 '' "$KVQ" synth -o b.kvt "${SYNTH[@]}" --seed 8
! cmp -s a.kvt b.kvt || fail "synth ignores --seed"
expect 0 'fp32' "$KVQ" synth -o f32.kvt "${SYNTH[@]}" --seed 7 --dtype fp32
expect 0 '' "$KVQ" synth -o small.kvt --layers 1 --heads 1 --tokens 16 --head-dim 32 --seed 1
# S14.6: the realistic profile is another stream; the default stays the stress profile
expect 0 '' "$KVQ" synth -o r.kvt "${SYNTH[@]}" --seed 7 --profile realistic
! cmp -s a.kvt r.kvt || fail "synth --profile realistic is the stress profile"
expect 0 '' "$KVQ" synth -o s.kvt "${SYNTH[@]}" --seed 7 --profile stress
cmp -s a.kvt s.kvt || fail "synth --profile stress is not the default"
expect 2 "--profile 'other' is not one of" "$KVQ" synth -o x.kvt "${SYNTH[@]}" --seed 7 --profile other
checks=$((checks + 4))

# ---- inspect .kvt ----------------------------------------------------------------
expect 0 'modality: text [0-9]+, image [0-9]+' "$KVQ" inspect a.kvt
grep -q 'keys histogram' out.txt || fail "inspect a.kvt: no keys histogram"
grep -q 'values histogram' out.txt || fail "inspect a.kvt: no values histogram"
grep -Eq 'layer 1 head 1: median .* outlier channels: [0-9]' out.txt || fail "inspect: no outlier channels found"
expect 0 '^\{"kind": "kvt"' "$KVQ" inspect a.kvt --json
if command -v python3 >/dev/null 2>&1; then
    python3 -m json.tool out.txt >/dev/null || fail "inspect --json (kvt) is not valid JSON"
    checks=$((checks + 1))
fi

# ---- quantize -> dequantize -> inspect --against ---------------------------------
# 5% outliers: one in each tail of a group of 16 (S7.1 rounds 0.4 up to 1).
expect 0 'wrote q4\.kvqz: .*fp16 token rows [1-9][0-9]* of 768 .*; outliers [1-9][0-9]* of 24576 .*ratio [0-9.]+x' \
    "$KVQ" quantize a.kvt -o q4.kvqz --bits 4 --key-block 16 --value-group 16 --outliers 5
expect 0 'wrote d4\.kvt: 2 layers x 2 heads x 96 tokens x 32 channels, fp32' "$KVQ" dequantize q4.kvqz -o d4.kvt
expect 0 'fp16' "$KVQ" dequantize q4.kvqz -o d4h.kvt --dtype fp16
expect 0 'quantized KV file' "$KVQ" inspect q4.kvqz
grep -Eq '^total: token rows quantized [0-9]+, sink [1-9]' out.txt || fail "inspect q4.kvqz: no sink tokens"
expect 0 '"kind": "kvqz"' "$KVQ" inspect q4.kvqz --against a.kvt --json
if command -v python3 >/dev/null 2>&1; then
    python3 -m json.tool out.txt >/dev/null || fail "inspect --json (kvqz) is not valid JSON"
    checks=$((checks + 1))
fi
check_errors q4.kvqz a.kvt
# The dequantized file is itself a valid .kvt.
expect 0 'KV tensor file' "$KVQ" inspect d4.kvt

expect 0 '' "$KVQ" quantize a.kvt -o q2.kvqz --bits 2 --scheme sym --key-block 32 --outliers 0.5 \
    --policy quantize-all --sinks 2 --recent-window 8
check_errors q2.kvqz a.kvt
expect 0 'window [1-9]' "$KVQ" inspect q2.kvqz
expect 0 '' "$KVQ" quantize f32.kvt -o q8.kvqz --key-bits 8 --value-bits 3 --key-block 8 --policy image-centric \
    --budget 20 --outlier-ppm 0
check_errors q8.kvqz f32.kvt
# q8's outlier count is 0 by --outlier-ppm 0.
expect 0 'outliers: 0 of' "$KVQ" inspect q8.kvqz
expect 0 'keys nuq 3-bit online, values nuq 3-bit' "$KVQ" quantize a.kvt -o qn.kvqz --scheme nuq --bits 3 --key-block 16
expect 0 'codebook: -1 ' "$KVQ" inspect qn.kvqz --against a.kvt

# Fewer bits, more error: the 2-bit file's rmse exceeds the 4-bit one's.
rmse() { "$KVQ" inspect "$1" --against a.kvt | sed -nE 's/^overall: rmse ([0-9.eE+-]+),.*/\1/p'; }
awk -v a="$(rmse q2.kvqz)" -v b="$(rmse q4.kvqz)" 'BEGIN { exit !(a > b) }' || fail "2-bit rmse not above 4-bit"
checks=$((checks + 1))

# ---- calibrate -> quantize --calibration ----------------------------------------
expect 0 'key ranges for 2 layers x 2 heads x 32 channels \(10000 ppm' "$KVQ" calibrate a.kvt -o c.kvc
expect 0 'calibration file' "$KVQ" inspect c.kvc
# S7.3 --beyond-range clamp (below): the same keys without a single key outlier; the values keep theirs.
outliers_in() { sed -nE 's/.*; outliers ([0-9]+) of .*/\1/p' out.txt; }
expect 0 'keys asym 4-bit calibrated,' "$KVQ" quantize a.kvt -o qc.kvqz --calibration c.kvc
with_outliers=$(outliers_in)
check_errors qc.kvqz a.kvt
expect 0 'keys asym 4-bit calibrated \(clamped\)' "$KVQ" quantize a.kvt -o qcc.kvqz --calibration c.kvc \
    --beyond-range clamp
clamped=$(outliers_in)
[ "$clamped" -gt 0 ] && [ "$clamped" -lt "$with_outliers" ] ||
    fail "clamped keys: $clamped outliers, expected fewer than $with_outliers but some (the values')"
expect 0 'quantized KV file' "$KVQ" inspect qcc.kvqz
key_outliers=$(awk '$3 == "keys" { sum += $13 } END { print sum + 0 }' out.txt)
[ "$key_outliers" = 0 ] || fail "inspect qcc.kvqz: $key_outliers key outliers with --beyond-range clamp"
expect 0 '' "$KVQ" quantize a.kvt -o qco.kvqz --calibration c.kvc --beyond-range outliers
cmp -s qc.kvqz qco.kvqz || fail "--beyond-range outliers is not the default"
checks=$((checks + 2))
expect 0 'codebooks per layer' "$KVQ" calibrate a.kvt -o ck.kvc --codebook kmeans --bits 3 --iterations 5 --q-norm
expect 0 'key codebook \(3 bits\)' "$KVQ" inspect ck.kvc
expect 0 'keys nuq 3-bit calibrated' "$KVQ" quantize a.kvt -o qck.kvqz --scheme nuq --bits 3 --calibration ck.kvc
expect 0 '' "$KVQ" dequantize qck.kvqz -o dck.kvt
expect 0 '' "$KVQ" quantize a.kvt -o qcko.kvqz --scheme nuq --bits 3 --key-mode online --calibration ck.kvc
expect 1 'KVQ_ERR_BAD_CODEBOOK' "$KVQ" quantize a.kvt -o x.kvqz --scheme nuq --bits 4 --calibration ck.kvc
expect 1 'KVQ_ERR_SIZE_MISMATCH' "$KVQ" quantize small.kvt -o x.kvqz --calibration c.kvc
# Fisher weights must be >= 0; synthetic KV has negative values, so used as weights it is refused.
expect 1 'KVQ_ERR_BAD_ARGUMENT|KVQ_ERR_NONFINITE_INPUT' \
    "$KVQ" calibrate a.kvt -o x.kvc --codebook kmeans --fisher b.kvt
expect 1 'KVQ_ERR_SIZE_MISMATCH' "$KVQ" calibrate a.kvt -o x.kvc --codebook kmeans --fisher small.kvt
[ ! -e x.kvc ] && [ ! -e x.kvqz ] || fail "a failed command left an output file"
checks=$((checks + 1))

# ---- usage errors (exit 2, the message names the option) --------------------------
expect 2 '--bits 5 is not one of 2, 3, 4, 8' "$KVQ" quantize a.kvt -o x.kvqz --bits 5
expect 2 "--bits 'four' is not an unsigned integer" "$KVQ" quantize a.kvt -o x.kvqz --bits four
expect 2 "--scheme 'fancy' is not one of: asym, sym, nuq" "$KVQ" quantize a.kvt -o x.kvqz --scheme fancy
expect 2 "unknown option '--frobnicate'" "$KVQ" quantize a.kvt -o x.kvqz --frobnicate
expect 2 "unknown option '-x'" "$KVQ" dequantize q4.kvqz -x
expect 2 'option -o needs an argument' "$KVQ" quantize a.kvt -o
expect 2 'option --bits needs an argument' "$KVQ" quantize a.kvt -o x.kvqz --bits
expect 2 'missing -o OUT\.kvqz' "$KVQ" quantize a.kvt
expect 2 'missing the input file' "$KVQ" quantize -o x.kvqz
expect 2 '--key-mode calibrated needs --calibration' "$KVQ" quantize a.kvt -o x.kvqz --key-mode calibrated
expect 2 '--beyond-range applies to calibrated keys' "$KVQ" quantize a.kvt -o x.kvqz --beyond-range clamp
expect 2 "--beyond-range 'wrap' is not one of: outliers, clamp" "$KVQ" quantize a.kvt -o x.kvqz \
    --calibration c.kvc --beyond-range wrap
expect 2 '--outliers 120 is not a percentage' "$KVQ" quantize a.kvt -o x.kvqz --outliers 120
expect 2 '--budget .* is not a decimal number' "$KVQ" quantize a.kvt -o x.kvqz --budget nan
expect 2 '--tokens 0 is out of range' "$KVQ" synth -o x.kvt --layers 1 --heads 1 --tokens 0 --head-dim 32 --seed 1
expect 2 '--tail-probability 2 is out of range' "$KVQ" synth -o x.kvt "${SYNTH[@]}" --seed 1 --tail-probability 2
expect 2 'missing --seed' "$KVQ" synth -o x.kvt "${SYNTH[@]}"
expect 2 '--image-run and --text-run go together' "$KVQ" synth -o x.kvt --layers 1 --heads 1 --tokens 8 \
    --head-dim 32 --seed 1 --image-run 4
expect 2 "--dtype 'bf16' is not one of" "$KVQ" dequantize q4.kvqz -o x.kvt --dtype bf16
expect 2 '--fisher needs --codebook kmeans' "$KVQ" calibrate a.kvt -o x.kvc --fisher a.kvt
expect 2 'option --scheme is not used by calibrate' "$KVQ" calibrate a.kvt -o x.kvc --scheme asym
expect 2 '--against applies to a \.kvqz file only' "$KVQ" inspect a.kvt --against a.kvt
expect 2 "unexpected argument 'extra'" "$KVQ" inspect a.kvt extra

# ---- operation failures (exit 1, KVQ_ERR_ name) -----------------------------------
expect 1 'kvq quantize: error: KVQ_ERR_BAD_GROUP_SIZE' "$KVQ" quantize a.kvt -o x.kvqz --value-group 5
expect 1 'kvq quantize: error: KVQ_ERR_UNSUPPORTED_BITS' "$KVQ" quantize a.kvt -o x.kvqz --scheme nuq --bits 8
expect 1 'kvq quantize: error: KVQ_ERR_IO' "$KVQ" quantize missing.kvt -o x.kvqz
expect 1 'kvq inspect: error: KVQ_ERR_SIZE_MISMATCH' "$KVQ" inspect q4.kvqz --against small.kvt
# Corrupt one byte in the middle: the checksum (S16.1) catches it.
cp q4.kvqz bad.kvqz
size=$(wc -c <bad.kvqz)
printf '\xA5' | dd of=bad.kvqz bs=1 seek=$((size / 2)) conv=notrunc status=none
cmp -s q4.kvqz bad.kvqz && fail "corruption did not change the file"
expect 1 'kvq inspect: error: KVQ_ERR_FILE_CORRUPT' "$KVQ" inspect bad.kvqz
expect 1 'kvq dequantize: error: KVQ_ERR_FILE_CORRUPT' "$KVQ" dequantize bad.kvqz -o x.kvt
head -c $((size - 40)) q4.kvqz >short.kvqz
expect 1 'KVQ_ERR_FILE_TRUNCATED|KVQ_ERR_FILE_CORRUPT' "$KVQ" inspect short.kvqz
printf 'JUNKJUNKJUNK' >junk.bin
expect 1 'KVQ_ERR_FILE_CORRUPT' "$KVQ" inspect junk.bin
cp a.kvt bad.kvt
size=$(wc -c <bad.kvt)
printf '\x5A' | dd of=bad.kvt bs=1 seek=$((size / 3)) conv=notrunc status=none
expect 1 'kvq quantize: error: KVQ_ERR_FILE_CORRUPT' "$KVQ" quantize bad.kvt -o x.kvqz
[ ! -e x.kvt ] && [ ! -e x.kvqz ] || fail "a failed command left an output file"

echo "cli_test: $checks checks passed"
