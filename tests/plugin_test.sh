#!/usr/bin/env bash
# plugin_test.sh KVQ DIR - the example third-party plugin (tests/plugin/) and its broken variants
# under `kvq conform --backend DIR/libkvq_plugin_*.so`:
#   - no module needs libkvq: none has an undefined kvq_ symbol (nm -D --undefined-only);
#   - the correct plugin passes (exit 0) and the level it does not advertise (L2 NUQ) is reported
#     as skipped, never as passed;
#   - each broken variant fails (exit 1) at the levels and field its bug belongs to, and nowhere else
#     (variants 5-15 are the bugs kvq conform was blind to before spec 1.2.0, issue 11);
#   - variants that crash (abort, SIGSEGV) or hang cost their cases only: each such case is an ERROR
#     (JUnit <error>) with the signal or the timeout, its name and its replay command, the run goes
#     on and its JSON and JUnit reports are complete; under --isolation worker a new worker takes
#     over after each crash; with --isolation none the runner dies but names the case;
#   - --require-level and --fail-on-skip: the example reaches L1 but not L3 (L2 is skipped);
#   - a module without kvq_backend_entry, and one with another ABI version, are refused (exit 2)
#     with the reason.
# Uses a fixed seed so that a failure replays exactly (the runner prints the command).
set -euo pipefail
kvq=$1
dir=$2
nm=${NM:-nm}
seed=20240601
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
    echo "plugin_test: $*" >&2
    exit 1
}

module() { echo "$dir/libkvq_plugin_$1.so"; }

# conform NAME [ARGS...]: runs the runner on module NAME; output in $work/NAME.txt, exit status in $status.
conform() {
    local name=$1
    shift
    status=0
    "$kvq" conform --backend "$(module "$name")" --seed "$seed" "$@" > "$work/$name.txt" 2>&1 || status=$?
}

# expect_line NAME REGEX WHY: the output of NAME has a line matching the extended regex.
expect_line() {
    if ! grep -Eq -- "$2" "$work/$1.txt"; then
        cat "$work/$1.txt" >&2
        fail "$1: no line matches '$2' ($3)"
    fi
}

# level_counts NAME LEVEL: "cases passed failed skipped errors" of the summary table's row of LEVEL
# (e.g. L3): the first line that starts with LEVEL and has five numbers in a row after the title.
level_counts() {
    awk -v level="$2" '$1 == level {
        for (i = 2; i + 4 <= NF; i++)
            if ($i ~ /^[0-9]+$/ && $(i + 1) ~ /^[0-9]+$/ && $(i + 2) ~ /^[0-9]+$/ && $(i + 3) ~ /^[0-9]+$/ &&
                $(i + 4) ~ /^[0-9]+$/) {
                print $i, $(i + 1), $(i + 2), $(i + 3), $(i + 4)
                exit
            }
    }' "$work/$1.txt"
}

# erroring_levels NAME: the levels whose summary row has errors > 0 (cases that did not finish).
erroring_levels() {
    local levels="" level
    for level in L0 L1 L2 L3 L4 L5; do
        read -r _ _ _ _ errors <<< "$(level_counts "$1" "$level")"
        [[ ${errors:-0} -gt 0 ]] && levels="$levels $level"
    done
    echo "${levels# }"
}

# failing_levels NAME: the levels whose summary row has failed > 0, e.g. "L1 L3".
failing_levels() {
    local levels="" level
    for level in L0 L1 L2 L3 L4 L5; do
        read -r _ _ failed _ <<< "$(level_counts "$1" "$level")"
        [[ ${failed:-0} -gt 0 ]] && levels="$levels $level"
    done
    echo "${levels# }"
}

# ---- built against the headers alone -------------------------------------------------------
broken=(broken_ties broken_outlier broken_sink broken_rope broken_fp16_rows broken_outlier_values broken_asym_min
        broken_one_rounding broken_outlier_count broken_block_count broken_clamp broken_key_outlier
        broken_weights_fp16 broken_wide_rope broken_positions broken_crash broken_hang broken_segv
        broken_q8_0_scale broken_q4_0_nibbles broken_kivi_scale broken_kivi_residual broken_fp8_nan broken_fp8_k_scale
        broken_timed_work)
for name in example "${broken[@]}" no_entry wrong_abi; do
    so=$(module "$name")
    [[ -f $so ]] || fail "missing module $so"
    if "$nm" -D --undefined-only "$so" | grep -q ' kvq_'; then
        "$nm" -D --undefined-only "$so" | grep ' kvq_' >&2
        fail "$so needs kvq_ symbols from outside: a plugin must not link libkvq"
    fi
done
for name in example "${broken[@]}"; do
    exported=$("$nm" -D --defined-only "$(module "$name")" | awk '$2 == "T" { print $3 }')
    [[ $exported == kvq_backend_entry ]] || fail "$name exports '$exported', expected only kvq_backend_entry"
done

# ---- the correct plugin ----------------------------------------------------------------------
# kvq's format and every peer format (S17): the example implements them all
conform example --format all
[[ $status -eq 0 ]] || { cat "$work/example.txt" >&2; fail "example: exit status $status, expected 0"; }
expect_line example '^result: PASS' "the summary"
[[ -z $(failing_levels example) ]] || fail "example: failures at $(failing_levels example)"
for level in L2; do # not advertised (nuq_bits = 0): every case skipped, none passed
    read -r cases passed failed skipped _ <<< "$(level_counts example "$level")"
    [[ ${cases:-0} -gt 0 && $passed -eq 0 && $failed -eq 0 && $skipped -eq $cases ]] ||
        fail "example: $level should be all skipped, got cases=$cases passed=$passed failed=$failed skipped=$skipped"
done
expect_line example 'caps\.nuq_bits lacks' "NUQ skips name the caps field"
expect_line example '^L1 uniform, peer quantize ' "peer formats share L1"
expect_line example '^L4 attention, peer attention ' "and L4"
for level in L0 L1 L3 L4 L5; do # advertised: something really ran and passed
    read -r cases passed failed skipped _ <<< "$(level_counts example "$level")"
    [[ ${passed:-0} -gt 0 ]] || fail "example: nothing passed at $level"
done
[[ -z $(erroring_levels example) ]] || fail "example: errors at $(erroring_levels example)"

# ---- requirements: a CI can demand a level ---------------------------------------------------
status=0
"$kvq" conform --backend "$(module example)" --seed "$seed" --random 2 --require-level 1 > "$work/req1.txt" 2>&1 ||
    status=$?
[[ $status -eq 0 ]] || { cat "$work/req1.txt" >&2; fail "example --require-level 1: exit $status, expected 0"; }
expect_line req1 '^required level L1 reached' "L0 and L1 are implemented in full"
status=0
"$kvq" conform --backend "$(module example)" --seed "$seed" --random 2 --require-level 3 > "$work/req3.txt" 2>&1 ||
    status=$?
[[ $status -eq 1 ]] || { cat "$work/req3.txt" >&2; fail "example --require-level 3: exit $status, expected 1"; }
expect_line req3 '^not met: --require-level 3: L2 NUQ has [0-9]+ of [0-9]+ cases not passed \(0 failed, 0 errors, [0-9]+ skipped, e\.g\. caps\.nuq_bits lacks' \
    "the level that is not reached, and why"
expect_line req3 '^result: FAIL \([0-9]+ cases passed, [0-9]+ skipped; a requirement is not met\)' "the summary"
status=0
"$kvq" conform --backend "$(module example)" --seed "$seed" --random 2 --fail-on-skip > "$work/skip.txt" 2>&1 ||
    status=$?
[[ $status -eq 1 ]] || { cat "$work/skip.txt" >&2; fail "example --fail-on-skip: exit $status, expected 1"; }
expect_line skip '^not met: --fail-on-skip: L[0-9] [^ ]+ was skipped \(caps\.' "the skipped case and why"

# ---- the broken variants: exit 1, the right level and field, and nothing else --------------
# name | levels that must fail | a failure line of that level and field | a sentence of the diagnostic
# [| conform arguments, e.g. --format kivi]
check_broken() {
    local name=$1 levels=$2 line=$3 why=$4
    shift 4
    conform "$name" "$@"
    [[ $status -eq 1 ]] || { cat "$work/$name.txt" >&2; fail "$name: exit status $status, expected 1"; }
    [[ $(failing_levels "$name") == "$levels" ]] ||
        fail "$name: failures at '$(failing_levels "$name")', expected exactly '$levels'"
    [[ -z $(erroring_levels "$name") ]] || {
        cat "$work/$name.txt" >&2
        fail "$name: cases that did not finish at $(erroring_levels "$name"): a planted bug must be a FAIL, not a case that did not finish"
    }
    expect_line "$name" "$line" "the failing level and field"
    expect_line "$name" "$why" "the diagnostic says why"
    expect_line "$name" '^result: FAIL' "the summary"
}
check_broken broken_ties "L1 L3 L5" '^FAIL L1 [^ ]+: (q_)?codes \[token [0-9]+, channel [0-9]+\]' \
    'class B \(S12\.2\).*is not at their boundary'
check_broken broken_outlier "L3 L5" \
    '^FAIL L3 [^ ]+: [a-z0-9]*_?outlier_index \[token [0-9]+, channel [0-9]+\]: got not an outlier' \
    'the backend lost it'
check_broken broken_sink "L3 L5" '^FAIL L3 [^ ]+: [a-z]_precision \[token 0\]: got 0 \(QUANTIZED\), expected 1 \(SINK\)' \
    'S8: the first n_sinks tokens are attention sinks'
check_broken broken_rope "L4 L5" '^FAIL L4 attention_[^ ]+: out \[query head [0-9]+, channel [0-9]+\]' \
    'the backend seems to rotate the wrong channel pairs'
# The bugs of issue 11, each caught by the cases made for it (golden names in the patterns) and by
# random cases of the same kind.
check_broken broken_fp16_rows "L3 L5" '^FAIL L3 [a-z0-9_]+_inexact: q_fp16_rows \[row [0-9]+ \(token [0-9]+, SINK\)' \
    'an unquantized token is stored as fp16\(x\), rounded to nearest even'
check_broken broken_outlier_values "L3 L5" '^FAIL L3 [a-z0-9_]+_inexact: q_outlier_value \[token [0-9]+, channel' \
    'an outlier stores fp16\(x\) rounded to nearest even \(S7\.4\)'
check_broken broken_asym_min "L1 L3 L5" '^FAIL L1 uniform_asym_[0-9]bit: params \[token (3|7|11|15|19|23|27|31|35|39),' \
    'group parameter a differs \(S3\.2 asym a = fp16_down\(min\)'
check_broken broken_one_rounding "L1 L3" '^FAIL L1 uniform_asym_4bit: params \[token 42, .*got a=0x8002 .* b=0x3C01 .*expected a=0x8002 .* b=0x3C00' \
    'group parameter b differs'
check_broken broken_outlier_count "L3 L5" '^FAIL L3 values_asym4_d128: q_params \[token [0-9]+' \
    'the dense range excludes outliers'
check_broken broken_block_count "L3" '^FAIL L3 keys_online_partial_outliers_b64_d128: q_params \[key block 0 ' \
    'the dense range excludes outliers'
check_broken broken_clamp "L3" '^FAIL L3 keys_calibrated_clamp_asym4_d128: q_outlier_index .*expected not an outlier' \
    'the backend stores an outlier the reference does not'
check_broken broken_key_outlier "L4 L5" '^FAIL L4 attention_prod_[a-z0-9_]+: out \[query head [0-9]+, channel' \
    'class A \(S12\.3\)'
check_broken broken_weights_fp16 "L4 L5" '^FAIL L4 attention_prod_[a-z0-9_]+_uniform: out \[query head [0-9]+, channel' \
    'class A \(S12\.3\)'
check_broken broken_wide_rope "L4" '^FAIL L4 attention_d1024_n24_interleaved: out \[query head 0, channel' \
    'class A \(S12\.3\)'
check_broken broken_positions "L5" '^FAIL L5 cache_positions_s15_5: out\[step 2\]' \
    'After append 2 of 3: 5 tokens, q_position 52'

# The peer formats' bugs (S17), each judged in its own format.
check_broken broken_q8_0_scale "L1" '^FAIL L1 peer_q8_0_[a-z0-9_]+: data\.code \[token [0-9]+, channel [0-9]+\]' \
    'Hint: the code is x divided by the stored fp16 scale' --format q8_0
check_broken broken_q4_0_nibbles "L1" '^FAIL L1 peer_q4_0_[a-z0-9_]+: data\.code \[token [0-9]+, channel [0-9]+\]' \
    'the nibbles seem to hold elements 2i and 2i \+ 1' --format q4_0
check_broken broken_kivi_scale "L1" '^FAIL L1 peer_kivi_[a-z0-9_]+: data\.scale \[(channel|token) [0-9]+' \
    'Hint: the scale equals fp16\(fl32\(mx - mn\) / [0-9]+\), the range subtracted in fp32' --format kivi
check_broken broken_kivi_residual "L1 L4" '^FAIL L1 peer_kivi_keys_[a-z0-9_]+: data \[past the end of the tensor\]' \
    'keys keep the newest n mod R tokens in fp16' --format kivi
check_broken broken_fp8_nan "L1" '^FAIL L1 peer_fp8_e4m3_[a-z0-9_]+: data\.code \[token [0-9]+, channel [0-9]+\]: got 0x[7F]F \(e4m3 nan\)' \
    'vLLM.s conversion saturates to \+-448' --format fp8_e4m3
check_broken broken_fp8_k_scale "L4" '^FAIL L4 peer_attention_fp8_e4m3_[a-z0-9_]+: out \[query head [0-9]+, channel' \
    'Hint: the output matches attention with the key scale left out' --format fp8_e4m3

# A benchmarking slot that times other work than it claims (kvq_backend.h): judged with the batch.
check_broken broken_timed_work "L4" \
    '^FAIL L4 random_L4_s[0-9]+_batch[0-9]+: out \(time_attention_decode_batch\) \[other bits than attention_decode_batch\]' \
    'A timing slot must run attention_decode_batch.s work on the same inputs'

# ---- backends that crash or hang: each case that does not finish is an error, the run goes on --
# check_unfinished NAME LEVELS CASE TYPE [ARGS...]: exit 1, errors exactly at LEVELS, CASE named as
# an ERROR of TYPE (crash, timeout) on stdout and stderr, and complete JSON / JUnit reports holding
# it with its replay command.
check_unfinished() {
    local name=$1 levels=$2 case=$3 type=$4
    shift 4
    status=0
    "$kvq" conform --backend "$(module "$name")" --seed "$seed" --quiet --json "$work/$name.json" \
        --junit "$work/$name.xml" "$@" > "$work/$name.txt" 2>&1 || status=$?
    [[ $status -eq 1 ]] || { cat "$work/$name.txt" >&2; fail "$name $*: exit status $status, expected 1"; }
    [[ $(erroring_levels "$name") == "$levels" ]] ||
        fail "$name $*: errors at '$(erroring_levels "$name")', expected exactly '$levels'"
    [[ -z $(failing_levels "$name") ]] || fail "$name $*: failures at $(failing_levels "$name"), expected none"
    expect_line "$name" "^kvq conform: case L[0-9] $case did not finish: .* \\($type\\); the run goes on\$" \
        "the case is named even with --quiet"
    expect_line "$name" "^  replay:   kvq conform --backend [^ ]+libkvq_plugin_$name\\.so .*--case $case\$" "replay"
    expect_line "$name" '^result: FAIL \(0 of [0-9]+ cases failed, [0-9]+ errors' "the summary"
    python3 - "$work/$name.json" "$work/$name.xml" "$case" "$type" <<'EOF' || fail "$name $*: reports"
import json, sys, xml.dom.minidom
report, case, kind = json.load(open(sys.argv[1])), sys.argv[3], sys.argv[4]
assert report["complete"] is True and report["cases_run"] == report["cases_selected"], "incomplete report"
errors = {c["name"]: c for c in report["cases"] if c["outcome"] == "error"}
assert case in errors and errors[case]["failure"]["field"] == kind, sorted(errors)
assert "--case " + case in errors[case]["replay"]
assert sum(l["errors"] for l in report["levels"]) == len(errors)
dom = xml.dom.minidom.parse(sys.argv[2])
named = [e for e in dom.getElementsByTagName("error") if e.parentNode.getAttribute("name") == case]
assert named and named[0].getAttribute("type") == kind, case
assert dom.documentElement.getAttribute("errors") == str(len(errors))
EOF
}
check_unfinished broken_crash "L1 L3" values_asym4_d512 crash
expect_line broken_crash 'signal 6 \(SIGABRT' "the signal"
check_unfinished broken_hang "L4" attention_d64_n97_interleaved timeout --timeout 5
expect_line broken_hang 'no result within 5 s' "the timeout"
# Under AddressSanitizer (the asan preset) ASan's own SIGSEGV handler would report the fault and exit(1),
# so the case would end as an "exit" instead of dying by the signal a porter's crash sends: let it die.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_segv=0" \
    check_unfinished broken_segv "L5" cache_append_attend crash --isolation worker
expect_line broken_segv 'signal 11 \(SIGSEGV' "the signal"
expect_line broken_segv 'in a new worker that opened the backend again' "a new worker after each crash"

# with --isolation none the runner shares the backend's fate, but still names the case
status=0
"$kvq" conform --backend "$(module broken_crash)" --seed "$seed" --quiet --isolation none > "$work/inprocess.txt" 2>&1 ||
    status=$?
[[ $status -ne 0 && $status -ne 1 && $status -ne 2 ]] ||
    { cat "$work/inprocess.txt" >&2; fail "broken_crash --isolation none: exit status $status, expected a signal"; }
expect_line inprocess '^kvq conform: fatal signal while running case L3 values_asym4_d512$' \
    "the case that aborted is named, even with --quiet"

# ---- modules the loader must refuse ---------------------------------------------------------
conform no_entry
[[ $status -eq 2 ]] || { cat "$work/no_entry.txt" >&2; fail "no_entry: exit status $status, expected 2"; }
expect_line no_entry 'no exported symbol kvq_backend_entry' "the reason"
conform wrong_abi
[[ $status -eq 2 ]] || { cat "$work/wrong_abi.txt" >&2; fail "wrong_abi: exit status $status, expected 2"; }
expect_line wrong_abi 'backend ABI version 2 \(this build speaks 1\)' "the reason"
if grep -q '^level ' "$work/no_entry.txt" "$work/wrong_abi.txt"; then
    fail "a refused module was run"
fi

echo "plugin_test: example passes (L2 skipped, so it reaches --require-level 1, not 3); ${#broken[@]} broken" \
     "variants are caught at their levels (crashes and a hang are errors of their cases, the runs go on);" \
     "modules without the entry symbol or with ABI 2 are refused"
