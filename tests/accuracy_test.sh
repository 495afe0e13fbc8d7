#!/usr/bin/env bash
# accuracy_test.sh KVQ PLUGIN_DIR - `kvq accuracy` (docs/PLUGINS.md, "Formats kvq does not know"):
# a plugin of a foreign format (tests/plugin/foreign_absmax.c) is scored, its wrong-scale variant
# scores visibly worse and fails a threshold the good one meets (both derived from this run), a
# crash costs its width only, the ref backend through the ABI scores exactly as the in-process
# reference row, and files handed in are read and checked. Exit 77 when python3 is missing (the
# JSON checks need it).
set -euo pipefail
kvq=${1:?usage: accuracy_test.sh KVQ PLUGIN_DIR}
dir=${2:?usage: accuracy_test.sh KVQ PLUGIN_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "accuracy_test: FAIL: $*" >&2; exit 1; }
command -v python3 > /dev/null 2>&1 || { echo "accuracy_test: skipped: no python3"; exit 77; }
good=$dir/libkvq_plugin_foreign.so
broken=$dir/libkvq_plugin_foreign_broken_scale.so
crash=$dir/libkvq_plugin_foreign_broken_crash.so

# Built against the two headers alone, like every plugin of tests/plugin: no kvq_ symbol from outside.
for so in "$good" "$broken" "$crash"; do
    if "${NM:-nm}" -D --undefined-only "$so" | grep -q ' kvq_'; then fail "$so needs kvq_ symbols from outside"; fi
done

status() { set +e; "$@" > "$work/log" 2>&1; echo $?; set -e; }
# Usage errors: exit 2.
[ "$(status "$kvq" accuracy)" = 2 ] || fail "no source: not exit 2"
[ "$(status "$kvq" accuracy --backend "$good" --bits 5)" = 2 ] || fail "--bits 5 of a backend: not exit 2"
grep -q -- "--bits 5" "$work/log" || fail "the --bits message does not name the width"

# The foreign plugin is scored: an accuracy score, never a conformance verdict.
rc=$(status "$kvq" accuracy --backend "$good" --json "$work/good.json")
cp "$work/log" "$work/good.txt"
[ "$rc" = 0 ] || { cat "$work/good.txt" >&2; fail "the foreign plugin: exit $rc"; }
grep -q "This is an accuracy score, not conformance" "$work/good.txt" || fail "the text does not say it is not conformance"
grep -q "^result: scored" "$work/good.txt" || fail "no 'result: scored'"
if grep -q "PASS" "$work/good.txt"; then fail "the accuracy text says PASS"; fi
grep -q "llama.cpp's test-backend-ops passes flash attention at NMSE <= 0.0005" "$work/good.txt" || fail "no llama.cpp reference point"
rc=$(status "$kvq" accuracy --backend "$broken" --bits 4,8 --json "$work/broken.json")
[ "$rc" = 0 ] || fail "the wrong-scale plugin without a threshold: exit $rc (scores fail nothing)"
rc=$(status "$kvq" accuracy --backend "$crash" --bits 2,4 --json "$work/crash.json")
cp "$work/log" "$work/crash.txt"
[ "$rc" = 1 ] || fail "a plugin that crashes at 2 bits: exit $rc, not 1"
grep -q "crashed: the backend was killed by signal 6" "$work/crash.txt" || { cat "$work/crash.txt" >&2; fail "the crash is not reported"; }
rc=$(status "$kvq" accuracy --backend "$good" --bits 3)
[ "$rc" = 1 ] || fail "--bits 3 of a plugin that does not claim 3 bits: exit $rc, not 1"
grep -q "not claimed: caps.uniform_bits does not claim 3-bit codes" "$work/log" || fail "the unclaimed width is not named"
rc=$(status "$kvq" accuracy --backend ref --bits 4 --json "$work/ref.json")
[ "$rc" = 0 ] || fail "the ref backend: exit $rc"

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
def load(name):
    d = json.load(open(f"{w}/{name}.json"))
    assert d["schema"] == "kvq-accuracy/1" and d["kind"] == "accuracy score, not conformance", d["kind"]
    return d
def rows(d, source):
    return {r["bits"]: r for r in d["rows"] if r["source"] == source}
good, broken, crash, ref = load("good"), load("broken"), load("crash"), load("ref")
g, b = rows(good, "backend"), rows(broken, "backend")
assert sorted(g) == [2, 4, 8] and good["bits"] == [2, 4, 8], sorted(g)  # caps.uniform_bits
for bits in (2, 4, 8):
    assert g[bits]["status"] == "ok" and g[bits]["attention_by"] == "backend", g[bits]
    kvq_rows = [r for r in good["rows"] if r["source"] == "reference" and r["bits"] == bits and r["format"] == "kvq uniform asym"]
    assert len(kvq_rows) == 1, bits  # kvq's own format at the same width is a comparison row
    for p in g[bits]["points"]:
        for m in ("keys", "values", "attention", "attention_arith"):
            assert p[m]["nmse"] >= 0 and p[m]["max_rel"] >= 0, (bits, p)
        # its fp32 attention matches double attention over its own values (the arithmetic alone)
        assert p["attention_arith"]["nmse"] < 1e-9, p
# Finer codes score better (an ordering of this run's own numbers).
for m in ("keys", "values"):
    assert g[8]["worst"][m]["nmse"] < g[4]["worst"][m]["nmse"] < g[2]["worst"][m]["nmse"], m
# The wrong scale is visibly worse where clipping dominates the rounding error.
for bits in (4, 8):
    for m in ("keys", "values"):
        assert b[bits]["worst"][m]["nmse"] > 4 * g[bits]["worst"][m]["nmse"], (bits, m, b[bits]["worst"], g[bits]["worst"])
# A threshold the good plugin meets with room and the broken one does not: twice the good one's worst.
t = 2 * max(g[8]["worst"]["keys"]["nmse"], g[8]["worst"]["values"]["nmse"])
assert t < min(b[8]["worst"]["keys"]["nmse"], b[8]["worst"]["values"]["nmse"]), t
open(f"{w}/threshold", "w").write(repr(t))
# The crash costs its width only.
c = rows(crash, "backend")
assert c[2]["status"] == "crashed" and "signal 6" in c[2]["message"], c[2]
assert c[4]["status"] == "ok" and crash["result"] == "fail", crash["failures"]
# The ref backend through the ABI is the reference: its row equals the in-process kvq row exactly.
r = rows(ref, "backend")[4]
k = [x for x in ref["rows"] if x["source"] == "reference" and x["format"] == "kvq uniform asym"][0]
assert r["points"] == k["points"], (r["points"], k["points"])
PY
t=$(cat "$work/threshold")
rc=$(status "$kvq" accuracy --backend "$good" --bits 8 --max-nmse-kv "$t")
[ "$rc" = 0 ] || { cat "$work/log" >&2; fail "the foreign plugin fails --max-nmse-kv $t (twice its own worst)"; }
grep -q "within the thresholds given" "$work/log" || fail "no 'within the thresholds given'"
rc=$(status "$kvq" accuracy --backend "$broken" --bits 8 --max-nmse-kv "$t" --json "$work/broken8.json")
[ "$rc" = 1 ] || fail "the wrong-scale plugin passes --max-nmse-kv $t: exit $rc"
grep -q "^result: FAIL (keys at 8 bits: NMSE .* > --max-nmse-kv" "$work/log" || { cat "$work/log" >&2; fail "the threshold failure is not named"; }

# Files: the inputs handed back as the "dequantized" values score 0; a short file is refused by name.
"$kvq" accuracy --write-inputs "$work/in" > /dev/null || fail "--write-inputs failed"
python3 - "$work/in" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1] + "/inputs.json"))
for p in d["points"]:
    for k in ("keys", "values", "q"):
        f = p[k]
        assert os.path.getsize(os.path.join(sys.argv[1], f["file"])) == f["bytes"], f
PY
mkdir "$work/out"
point=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['points'][0]['name'])" "$work/in/inputs.json")
for p in $(python3 -c "import json,sys; print(' '.join(x['name'] for x in json.load(open(sys.argv[1]))['points']))" "$work/in/inputs.json"); do
    cp "$work/in/$p.keys.bin" "$work/out/$p.b16.keys.bin"
    cp "$work/in/$p.values.bin" "$work/out/$p.b16.values.bin"
done
rc=$(status "$kvq" accuracy --outputs "$work/out" --max-nmse 0 --max-nmse-kv 0 --json "$work/files.json")
[ "$rc" = 0 ] || { cat "$work/log" >&2; fail "the original values handed in as files: exit $rc"; }
python3 - "$work/files.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["bits"] == [16] and [r["source"] for r in d["rows"]] == ["files"], d["rows"]
for p in d["rows"][0]["points"]:
    assert p["keys"]["nmse"] == 0 and p["values"]["nmse"] == 0 and p["attention"]["nmse"] == 0, p
    assert p["attention_arith"] is None, p  # no out.bin: the attention is the reference's over the files
PY
head -c 100 "$work/in/$point.values.bin" > "$work/out/$point.b16.values.bin"
rc=$(status "$kvq" accuracy --outputs "$work/out")
[ "$rc" = 1 ] || fail "a truncated output file: exit $rc"
grep -q "$point.b16.values.bin: 100 bytes" "$work/log" || { cat "$work/log" >&2; fail "the truncated file is not named"; }
mkdir "$work/empty"
[ "$(status "$kvq" accuracy --outputs "$work/empty")" = 2 ] || fail "an empty --outputs directory: not exit 2"
echo "accuracy_test: ok"
