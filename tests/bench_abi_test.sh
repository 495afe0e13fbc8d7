#!/usr/bin/env bash
# bench_abi_test.sh KVQ PLUGIN_DIR - `kvq bench --backend PATH.so` (study e, tools/bench/bench_abi.c):
# the example plugin of tests/plugin and the foreign-format plugin timed through the ABI at one tiny
# point; bench.json has a row per advertised operation and format with its statistics, the report
# and the plot render, --study e alone times ref, and a plugin that cannot load fails the study with
# its reason. Exit 77 when python3 is missing (the JSON checks need it).
set -euo pipefail
kvq=${1:?usage: bench_abi_test.sh KVQ PLUGIN_DIR}
dir=${2:?usage: bench_abi_test.sh KVQ PLUGIN_DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "bench_abi_test: FAIL: $*" >&2; exit 1; }
command -v python3 > /dev/null 2>&1 || { echo "bench_abi_test: skipped: no python3"; exit 77; }

run() { "$kvq" bench --quick --max-context 256 "$@" > "$work/log" 2>&1 || { cat "$work/log" >&2; fail "kvq bench $*"; }; }
run --backend "$dir/libkvq_plugin_example.so" --out "$work/example"
run --backend "$dir/libkvq_plugin_foreign.so" --out "$work/foreign"
run --study e --out "$work/ref"
"$kvq" bench report "$work/example" > "$work/report.md" || fail "kvq bench report failed"
for text in '## (e) A backend through the ABI' '- backend: example' '| attention_decode | int4 | 4 | 256 |' \
            '| peer_quantize | kivi4 | 4 | 256 |' 'backend_abi.svg'; do
    grep -qF -- "$text" "$work/report.md" || { cat "$work/report.md" >&2; fail "the report lacks '$text'"; }
done
set +e
"$kvq" bench --quick --backend "$dir/libkvq_plugin_no_entry.so" --out "$work/bad" > "$work/bad.log" 2>&1; rc=$?
set -e
[ "$rc" = 1 ] || fail "a plugin without kvq_backend_entry: exit $rc, not 1"
# Checkpoints: a finished run leaves no bench.partial.json; a run the plugin crashes (abort() in
# quantize_head at 2 bits) leaves no bench.json but a bench.partial.json that is a valid document.
[ ! -e "$work/example/bench.partial.json" ] || fail "a finished run left bench.partial.json"
set +e
"$kvq" bench --quick --max-context 256 --backend "$dir/libkvq_plugin_foreign_broken_crash.so" --out "$work/crash" \
    > "$work/crash.log" 2>&1; rc=$?
set -e
[ "$rc" != 0 ] || fail "a crashing plugin: exit 0"
[ ! -e "$work/crash/bench.json" ] || fail "a crashed run wrote bench.json"
[ -s "$work/crash/bench.partial.json" ] || { cat "$work/crash.log" >&2; fail "a crashed run left no bench.partial.json"; }
# The same crash after --keep carried a study over: the partial file has the kept study with its date
# (study_dates), and `kvq bench report` renders it, without a bench.json, as a stopped run.
mkdir -p "$work/crashkeep"
cat > "$work/crashkeep/bench.json" <<'JSON'
{"schema": "kvq-bench/1", "kvq_version": "1.0.0", "date": "2026-01-01T00:00:00Z", "host": "h", "quick": true,
 "runs": 20, "warmup": 3, "pytorch": "not available", "study_dates": {"attention_cuda": "2026-01-01T00:00:00Z"},
 "studies": {"attention_cuda": {"status": "ok", "device": "D", "driver": "V", "timed": "T",
  "columns": [{"field": "format", "title": "format"}, {"field": "context", "title": "tokens"}],
  "results": [{"label": "m int4", "shape": "m", "format": "int4", "kind": "kvq", "bits": 4, "context": 4096}]}}}
JSON
set +e
"$kvq" bench --quick --max-context 256 --keep --backend "$dir/libkvq_plugin_foreign_broken_crash.so" \
    --out "$work/crashkeep" > "$work/crashkeep.log" 2>&1; rc=$?
set -e
[ "$rc" != 0 ] || fail "a crashing plugin after --keep: exit 0"
mv "$work/crashkeep/bench.json" "$work/crashkeep.before.json"
"$kvq" bench report "$work/crashkeep" > "$work/crashkeep.md" 2>&1 || { cat "$work/crashkeep.md" >&2; fail "kvq bench report on a crashed run's bench.partial.json failed"; }
for text in '**This run was stopped before its end (bench.partial.json): ' "from \`$work/crashkeep/bench.partial.json\`" \
            '- measured (UTC): 2026-01-01T00:00:00Z' '| int4 | 4096 |' \
            'Not run (not selected, or not reached before the run stopped).'; do
    grep -qF -- "$text" "$work/crashkeep.md" || { cat "$work/crashkeep.md" >&2; fail "the crashed run's report lacks '$text'"; }
done
cp "$work/crashkeep/bench.partial.json" "$work/crashkeep.partial.json"
# --keep with only bench.partial.json keeps its studies, dates included.
run --keep --backend "$dir/libkvq_plugin_example.so" --out "$work/crashkeep"
grep -qF -- "keeping the studies of $work/crashkeep/bench.partial.json" "$work/log" || { cat "$work/log" >&2; fail "--keep did not say it kept the partial file's studies"; }

python3 - "$work" <<'PY'
import json, sys, xml.etree.ElementTree as ET
w = sys.argv[1]
def study(name):
    doc = json.load(open(f"{w}/{name}/bench.json"))
    assert list(doc["studies"]) == ["backend_abi"], list(doc["studies"])  # only the study asked for
    s = doc["studies"]["backend_abi"]
    return doc, s
def check_rows(doc, s):
    assert s["status"] == "ok", s
    for r in s["results"]:
        t = r["time_ms"]
        assert t["runs"] == doc["runs"] >= 20 and 0 < t["min"] <= t["median"] <= t["max"], r
        assert r["context"] == 256 and r["head_dim"] == 128 and r["tokens_per_s"] > 0, r
    return {(r["op"], r["format"]) for r in s["results"]}
doc, s = study("example")
rows = check_rows(doc, s)
kvq_ops = {"quantize_head", "dequantize", "attention_decode"}
peer_ops = {"peer_quantize", "peer_dequantize", "peer_attention_decode"}
# tests/plugin/example_backend.c advertises uniform 2/3/4/8 bits with outliers and sinks, no NUQ, every peer
# format, and offers the benchmarking slots (example_timing.c): attention is also timed through
# time_attention_decode_batch, and the driver line is its device_info's
slot_op = "attention_decode (device clock)"
want = {(op, f) for op in kvq_ops | {slot_op} for f in ("int2", "int4")} | \
       {(op, f) for op in peer_ops for f in ("q8_0", "q4_0", "kivi4", "fp8_e4m3")}
assert rows == want, sorted(rows ^ want)
assert "CLOCK_MONOTONIC" in s["driver"], s["driver"]
assert "nuq4+outliers+sink: caps.nuq_bits lacks 4-bit codes" in s["notes"], s["notes"]
assert s["backend"] == "example" and s["plot"]["panel"] == "op"
root = ET.parse(f"{w}/example/backend_abi.svg").getroot()
texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
assert root.tag == "{http://www.w3.org/2000/svg}svg" and kvq_ops | peer_ops <= texts, texts  # a panel per operation
# the foreign plugin (foreign_absmax.c): uniform 2/4/8 bits, no outliers, no peer slots
doc, s = study("foreign")
assert check_rows(doc, s) == {(op, f) for op in kvq_ops for f in ("int2", "int4")}, s["results"]  # no timing slots
partial = json.load(open(f"{w}/crash/bench.partial.json"))  # what the run had written, closed
assert partial["schema"] == json.load(open(f"{w}/example/bench.json"))["schema"] and "studies" in partial, partial
assert partial["study_dates"] == {}, partial  # no study was complete when it crashed
partial = json.load(open(f"{w}/crashkeep.partial.json"))
assert list(partial["studies"]) == ["attention_cuda"], partial  # the kept study; backend_abi had no row yet
assert partial["study_dates"] == {"attention_cuda": "2026-01-01T00:00:00Z"}, partial["study_dates"]
kept = json.load(open(f"{w}/crashkeep/bench.json"))  # --keep from the partial file, then study e
assert list(kept["studies"]) == ["attention_cuda", "backend_abi"], list(kept["studies"])
assert kept["study_dates"] == {"attention_cuda": "2026-01-01T00:00:00Z", "backend_abi": kept["date"]}, kept["study_dates"]
assert kept["studies"]["attention_cuda"]["results"][0]["context"] == 4096
doc, s = study("ref")
assert s["backend"] == "ref" and ("attention_decode", "nuq4+outliers+sink") in check_rows(doc, s)
bad = json.load(open(f"{w}/bad/bench.json"))["studies"]["backend_abi"]
assert bad["status"] == "failed" and "kvq_backend_entry" in bad["reason"], bad
PY
echo "bench_abi_test: ok"
