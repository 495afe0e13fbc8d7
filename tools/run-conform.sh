#!/usr/bin/env bash
# tools/run-conform.sh LIST - runs a committed list of conformance runs, conformance/runs/LIST.csv
# (quick: CI's main job; full: every backend and path at length; gpu: the GPU machine's), so that
# anyone reproduces the project's own runs with one name. Each line is one `kvq conform` run:
# name, environment (VAR=VALUE ...), arguments. Reports go to $KVQ_CONFORM_OUT/<name>.json and
# <name>.junit.xml (default build/conformance/LIST). A line whose built-in backend is compiled in
# but has no device here (CUDA without a GPU) is reported as SKIPPED, never as passed; a backend
# that is not compiled in at all is SKIPPED too, saying so.
# Environment: KVQ (default build/tools/kvq) is the binary; KVQ_CONFORM_ARGS adds arguments to
# every run (e.g. "--seed 7"); KVQ_CONFORM_ONLY="a b" runs only the lines of those names.
# Exit status: the number of runs that failed (0: every run passed or was skipped).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
list=${1:?usage: tools/run-conform.sh quick|full|gpu|PATH.csv}
file=$list
[[ -f $file ]] || file=conformance/runs/$list.csv
[[ -f $file ]] || { echo "run-conform: no run list $list (conformance/runs/: $(ls conformance/runs))" >&2; exit 2; }
kvq=${KVQ:-build/tools/kvq}
name_of_list=$(basename "$file" .csv)
out=${KVQ_CONFORM_OUT:-build/conformance/$name_of_list}
mkdir -p "$out"
devices=$("$kvq" devices) || { echo "run-conform: $kvq devices failed" >&2; exit 2; }

passed=() failed=() skipped=()
while IFS=, read -r name environment arguments; do
    [[ -z ${name// /} || $name == \#* ]] && continue
    if [[ -n ${KVQ_CONFORM_ONLY:-} && " $KVQ_CONFORM_ONLY " != *" $name "* ]]; then continue; fi
    # the backend of the line: built-in names are checked against `kvq devices` first
    read -r -a words <<< "$arguments"
    backend=
    for ((i = 0; i < ${#words[@]}; i++)); do
        [[ ${words[i]} == --backend ]] && backend=${words[i + 1]:-}
    done
    if [[ -n $backend && $backend != */* && $backend != *.so ]]; then
        line=$(awk -v b="$backend" '$1 == b { print; exit }' <<< "$devices")
        if [[ -z $line ]]; then
            echo "== $name: SKIPPED (backend $backend is not compiled into this build)"
            skipped+=("$name")
            continue
        fi
        if [[ $(awk '{ print $2 }' <<< "$line") == - ]]; then
            echo "== $name: SKIPPED (backend $backend has no device here: ${line#"$backend"})"
            skipped+=("$name")
            continue
        fi
    fi
    echo "== $name: ${environment:+$environment }kvq conform $arguments ${KVQ_CONFORM_ARGS:-}"
    # shellcheck disable=SC2086 # environment and arguments are lists of words
    if env $environment "$kvq" conform $arguments ${KVQ_CONFORM_ARGS:-} --quiet \
        --json "$out/$name.json" --junit "$out/$name.junit.xml" < /dev/null; then
        passed+=("$name")
    else
        failed+=("$name")
    fi
done < "$file"

echo "== run list $name_of_list: passed: ${passed[*]:-none}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
echo "   reports: $out/"
exit "${#failed[@]}"
