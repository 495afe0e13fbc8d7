#!/usr/bin/env bash
# conform_test.sh KVQ GOLDEN_DIR - the conformance runner (`kvq conform`, docs/CLI.md):
#  - the reference backend passes every level, golden and random cases, and its JSON and JUnit
#    reports parse and agree with the run;
#  - a random case replays from its name alone; --level and --case select;
#  - a golden copy with one flipped byte in a q_params file fails with a diagnostic naming the
#    case, the field, the element and the replay command;
#  - --check-outputs passes on a copy of the golden outputs, peer formats' (S17) included, and fails,
#    naming the file, field and element, on a damaged code (of kvq's format and of q4_0), a missing
#    file and an attention output outside its bound; it accepts a code moved across a decision boundary by a tie (S12.2) and counts it;
#  - repeated and comma-separated --case patterns select the union; --require-level and
#    --fail-on-skip gate the exit status; --check-outputs --only-present skips (and lists) the
#    cases not handed in, where without it they fail;
#  - the JSON and JUnit reports are rewritten as the run goes: a run stopped by SIGTERM leaves
#    both valid, marked incomplete;
#  - usage errors and unloadable backends exit 2; `kvq devices` lists the reference.
set -euo pipefail
kvq=$1
golden=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
    echo "conform_test: $*" >&2
    exit 1
}

# Runs kvq, expecting exit status $1; output in $work/out.txt.
expect_status() {
    local want=$1
    shift
    set +e
    "$kvq" "$@" > "$work/out.txt" 2>&1
    local got=$?
    set -e
    if [ "$got" -ne "$want" ]; then
        cat "$work/out.txt" >&2
        fail "kvq $* exited $got, expected $want"
    fi
}

expect_text() {
    grep -qF -- "$1" "$work/out.txt" || {
        cat "$work/out.txt" >&2
        fail "output lacks: $1"
    }
}

have_python=0
command -v python3 > /dev/null 2>&1 && have_python=1

# ---- the reference passes everything; reports parse -------------------------------------------
expect_status 0 conform --backend ref --golden "$golden" --seed 7 --random 3 --quiet \
    --json "$work/report.json" --junit "$work/report.xml"
expect_text "result: PASS"
for level in "L0 packing" "L1 uniform" "L2 NUQ" "L3 outliers, sinks, policy" "L4 decode attention" "L5 cache"; do
    expect_text "$level"
done
expect_text "reference-only (checked by kvq golden --verify)"
if [ "$have_python" = 1 ]; then
    python3 - "$work/report.json" "$work/report.xml" <<'EOF'
import json, sys, xml.dom.minidom
report = json.load(open(sys.argv[1]))
assert report["format"] == "kvq-conform-report" and report["passed"] is True, "report not passed"
assert report["backend"]["name"] == "ref" and report["seed"] == 7
assert [l["level"] for l in report["levels"]] == [0, 1, 2, 3, 4, 5]
cases = report["cases"]
assert all(c["outcome"] == "pass" for c in cases), [c["name"] for c in cases if c["outcome"] != "pass"]
assert sum(l["cases"] for l in report["levels"]) == len(cases)
names = {c["name"] for c in cases}
for needed in ("pack_3bit_d32", "uniform_asym_4bit", "nuq_normalfloat_3bit", "values_asym4_d128",
               "outlier_selection_ties.row2", "attention_d128_n300_half_gqa4.k", "attention_d128_n300_half_gqa4",
               "cache_append_attend", "abi_error_quantize_nan", "random_L4_s7_0", "random_L5_s7_2"):
    assert needed in names, needed
assert "fp16_narrow" in report["reference_only"]
dom = xml.dom.minidom.parse(sys.argv[2])
suites = dom.getElementsByTagName("testsuite")
assert len(suites) == 6, len(suites)
testcases = dom.getElementsByTagName("testcase")
assert len(testcases) == len(cases), (len(testcases), len(cases))
assert not dom.getElementsByTagName("failure")
assert dom.documentElement.getAttribute("failures") == "0"
EOF
fi

# ---- replay and selection ----------------------------------------------------------------------
expect_status 0 conform --backend ref --golden "$golden" --case random_L3_s7_2 --json "$work/one.json"
expect_text "total                               1       1"
if [ "$have_python" = 1 ]; then
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert [c["name"] for c in r["cases"]] == ["random_L3_s7_2"], r["cases"]; assert r["seed"] == 7' "$work/one.json"
fi
expect_status 0 conform --backend ref --golden "$golden" --level 1-1 --random 0 --json "$work/l1.json"
if [ "$have_python" = 1 ]; then
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["levels_selected"] == [1, 1]; assert r["cases"] and all(c["level"] == 1 for c in r["cases"])' "$work/l1.json"
fi
# "L2" is L0..L2: of the keys_* cases only keys_online_asym3_b4_d32 (uniform, plain) is below L3
expect_status 0 conform --backend ref --golden "$golden" --level L2 --case 'keys_*' --random 0
expect_text "total                               1       1"
if grep -q "^L3 " "$work/out.txt"; then fail "--level L2 reported L3"; fi
expect_status 2 conform --backend ref --golden "$golden" --level L2-L2 --case 'keys_*' --random 0
expect_text "no case matches --case 'keys_*' at levels 2-2"

# several patterns: repeated and comma-separated --case select the union, each case once
expect_status 0 conform --backend ref --golden "$golden" --random 0 --case 'pack_2bit_*' \
    --case 'pack_3bit_d64,pack_2bit_d32' --case 'uniform_sym_*' --json "$work/union.json"
if [ "$have_python" = 1 ]; then
    python3 - "$work/union.json" "$golden/manifest.json" <<'EOF'
import fnmatch, json, sys
names = [c["name"] for c in json.load(open(sys.argv[1]))["cases"]]
golden = [c["case"] for c in json.load(open(sys.argv[2]))["cases"]]
want = [g for g in golden if fnmatch.fnmatch(g, "pack_2bit_*") or g == "pack_3bit_d64" or fnmatch.fnmatch(g, "uniform_sym_*")]
assert len(want) >= 4 and sorted(names) == sorted(want), (names, want)
EOF
fi
expect_status 2 conform --backend ref --golden "$golden" --case 'pack_*,'
expect_text "has an empty pattern"

# ---- requirements: --require-level and --fail-on-skip --------------------------------------------
expect_status 0 conform --backend ref --golden "$golden" --random 1 --seed 3 --require-level 5 --fail-on-skip --quiet
expect_text "required level L5 reached"
expect_status 2 conform --backend ref --golden "$golden" --level 2-5 --require-level 3
expect_text "--require-level 3 needs levels L0-L3 selected"

# ---- reports written as the run goes: SIGTERM leaves valid, incomplete reports -----------------
set +e
"$kvq" conform --backend ref --golden "$golden" --seed 5 --random 400 --quiet --json "$work/partial.json" \
    --junit "$work/partial.xml" > "$work/partial.txt" 2>&1 &
pid=$!
for _ in $(seq 100); do # until some cases have run
    grep -q '"name": "pack_' "$work/partial.json" 2>/dev/null && break
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
got=$?
set -e
[ "$got" -eq 130 ] || { cat "$work/partial.txt" >&2; fail "a run stopped by SIGTERM exited $got, expected 130"; }
grep -q "^interrupted: [0-9]* of [0-9]* selected cases ran" "$work/partial.txt" || fail "no interrupted line"
if [ "$have_python" = 1 ]; then
    python3 - "$work/partial.json" "$work/partial.xml" <<'EOF'
import json, sys, xml.dom.minidom
r = json.load(open(sys.argv[1]))
assert r["complete"] is False and r["interrupted"] is True and r["passed"] is False, r
assert 0 < r["cases_run"] == len(r["cases"]) < r["cases_selected"], (r["cases_run"], r["cases_selected"])
d = xml.dom.minidom.parse(sys.argv[2])
assert len(d.getElementsByTagName("testcase")) == r["cases_run"]
props = {p.getAttribute("name"): p.getAttribute("value") for p in d.getElementsByTagName("property")}
assert props["complete"] == "false", props
EOF
fi

# ---- a damaged golden copy fails with a precise diagnostic -------------------------------------
cp -r "$golden" "$work/golden"
printf '\x01' | dd of="$work/golden/values_asym4_d128.q_params.bin" bs=1 seek=9 conv=notrunc status=none
expect_status 1 conform --backend ref --golden "$work/golden" --random 0 --level 3-3
expect_text "FAIL L3 values_asym4_d128: q_params [token 2, channels 0-127]: got a=0x0000 (0) b=0x0000 (0), expected a=0x0100"
expect_text "golden file values_asym4_d128.q_params.bin does not match its manifest sha256"
expect_text "replay:   kvq conform --backend ref --golden $work/golden --case values_asym4_d128"
expect_text "result: FAIL (1 of"

# ---- --check-outputs ---------------------------------------------------------------------------
# every file of the golden set: the output files are judged, the others ignored
cp -r "$golden" "$work/outputs"
expect_status 0 conform --check-outputs "$work/outputs" --golden "$golden" --quiet --junit "$work/files.xml"
expect_text "result: PASS"
# the peer formats' files (S17): the golden copy passes; a q4_0 byte whose two nibbles both move by 7
# fails on the code of element 0 (low nibble of byte 0, S17.3)
expect_status 0 conform --check-outputs "$work/outputs" --golden "$golden" --format q8_0,q4_0,kivi,fp8_e4m3 --quiet
expect_text "L1 peer quantize "
expect_text "result: PASS"
cp -r "$golden" "$work/peer_outputs"
byte=$(od -An -tu1 -j2 -N1 "$golden/peer_q4_0_values_d128_n48.data.bin")
printf "\\$(printf '%03o' $((byte ^ 0x77)))" |
    dd of="$work/peer_outputs/peer_q4_0_values_d128_n48.data.bin" bs=1 seek=2 conv=notrunc status=none
expect_status 1 conform --check-outputs "$work/peer_outputs" --golden "$golden" --format q4_0
expect_text "FAIL L1 peer_q4_0_values_d128_n48: data.code [token 0, channel 0]"
expect_text "result: FAIL (1 of"
if [ "$have_python" = 1 ]; then
    python3 -c 'import sys, xml.dom.minidom; d = xml.dom.minidom.parse(sys.argv[1]); assert not d.getElementsByTagName("failure")' "$work/files.xml"

    # A tie moved down by one code (what a dividing encoder may do, S12.2): find an element of
    # uniform_asym_4bit that sits exactly on its threshold T_k, give it code k-1 and its decoded value.
    cp -r "$golden" "$work/ties"
    python3 - "$work/ties" <<'EOF'
import struct, sys
d = sys.argv[1]
x = struct.unpack("<1536f", open(d + "/uniform_asym_4bit.x.bin", "rb").read())
params = struct.unpack("<96H", open(d + "/uniform_asym_4bit.params.bin", "rb").read())
codes = bytearray(open(d + "/uniform_asym_4bit.codes.bin", "rb").read())
decoded = bytearray(open(d + "/uniform_asym_4bit.decoded.bin", "rb").read())
f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
f16 = lambda h: struct.unpack("<e", struct.pack("<H", h))[0]
for i in range(1536):
    a, b = f16(params[2 * (i // 32)]), f16(params[2 * (i // 32) + 1])
    k = codes[i]
    if k > 0 and b > 0 and x[i] == f32(a + (k - 0.5) * b):  # S3.4: T_k = fl32(a + (k - 1/2) b), exact in double
        codes[i] = k - 1
        decoded[4 * i:4 * i + 4] = struct.pack("<f", f32(a + (k - 1) * b))  # S3.5
        break
else:
    sys.exit("no tie found in uniform_asym_4bit")
open(d + "/uniform_asym_4bit.codes.bin", "wb").write(codes)
open(d + "/uniform_asym_4bit.decoded.bin", "wb").write(decoded)
EOF
    expect_status 0 conform --check-outputs "$work/ties" --golden "$golden" --case uniform_asym_4bit
    expect_text "L1 uniform                          1       1       0        0       0               1"
fi

printf '\x00' | dd of="$work/outputs/values_asym4_d128.q_codes.bin" bs=1 seek=700 conv=notrunc status=none
rm "$work/outputs/pack_3bit_d64.packed.bin"
printf '\x00\x00\x20\x41' | dd of="$work/outputs/attention_d64_n97_interleaved.out.bin" bs=1 seek=0 conv=notrunc status=none
expect_status 1 conform --check-outputs "$work/outputs" --golden "$golden"
expect_text "FAIL L3 values_asym4_d128: q_codes [token 10, channel 120]: got code 0, expected code 7"
expect_text "The codes are 7 steps apart; S12.2 accepts only a neighbouring code at a decision boundary."
expect_text "FAIL L0 pack_3bit_d64: missing files"
expect_text "Not found: pack_3bit_d64.packed.bin"
expect_text "FAIL L4 attention_d64_n97_interleaved: out [query head 0, channel 0]: got 10 (0x41200000)"
expect_text "replay:   kvq conform --check-outputs $work/outputs --golden $golden --case pack_3bit_d64"
expect_text "result: FAIL (3 of"
# a missing file outside the selected cases does not count
expect_status 0 conform --check-outputs "$work/outputs" --golden "$golden" --case 'pack_2bit_*'

# an attention-only kernel hands in the out files alone: without --only-present the cases whose
# files are absent fail (the k_/v_ tensors are L3 cases of their own); with it they are skipped and
# listed, and the attention outputs are judged
mkdir "$work/attention_only"
cp "$golden"/attention_*.out.bin "$work/attention_only/"
expect_status 1 conform --check-outputs "$work/attention_only" --golden "$golden" --level 3-4 --quiet
expect_status 0 conform --check-outputs "$work/attention_only" --golden "$golden" --level 3-4 --only-present \
    --json "$work/only.json"
expect_text "not handed in: none of the case's output files is in the directory (--only-present)"
expect_text "cases: values_asym4_d128, "
if [ "$have_python" = 1 ]; then
    python3 - "$work/only.json" <<'EOF'
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
att = [c for c in cases if c["level"] == 4]
assert att and all(c["outcome"] == "pass" for c in att), att
l3 = [c for c in cases if c["level"] == 3]
assert l3 and all(c["outcome"] == "skip" and c["skip_reason"].startswith("not handed in") for c in l3)
EOF
fi
expect_status 1 conform --check-outputs "$work/attention_only" --golden "$golden" --level 3-4 --only-present \
    --fail-on-skip --quiet
expect_text "not met: --fail-on-skip"
expect_status 2 conform --backend ref --only-present

# ---- usage errors, unloadable backends, devices -------------------------------------------------
expect_status 2 conform
expect_text "missing --backend"
expect_status 2 conform --backend ref --level 9
expect_text "--level '9'"
expect_status 2 conform --backend no-such-backend --golden "$golden"
expect_text "no backend named \"no-such-backend\""
expect_status 2 conform --backend "$work/missing.so" --golden "$golden"
expect_text "cannot open shared object file"
expect_status 2 conform --backend ref --golden "$work/nowhere"
expect_text "cannot read the golden set"
expect_status 2 conform --backend ref --golden "$golden" --case 'no_such_case*'
expect_text "no case matches"
expect_status 2 conform --check-outputs "$work/outputs" --seed 1
expect_status 0 devices
expect_text "host CPU (scalar C reference)"
echo "conform_test: ok"
