#!/usr/bin/env bash
# Leave-one-relation-out transfer of the calibrated void score (docs/EVALUATION.md §1b): for
# each relation R of the bank, fit the calibration on the other relations (eval qa --relations)
# and score it on R (eval qa --calibration), reusing the model's answers of one full `eval qa`
# run in OUT (qa.jsonl; run first if missing). Prints each relation's table rows.
#
#   scripts/eval-qa-transfer.sh OUT [BANK] [-- EXTRA EVAL ARGS, e.g. --model smollm2-135m]
set -euo pipefail
out="${1:?usage: scripts/eval-qa-transfer.sh OUT [BANK] [-- eval args]}"; shift
bank="eval/qa_bank_wide.jsonl"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then bank="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
cd "$(dirname "$0")/.."
bin=(cargo run --release --quiet --)
[ -s "$out/qa.jsonl" ] || "${bin[@]}" eval qa --bank "$bank" --out "$out" "$@" >/dev/null
rels=$(python3 -c 'import json,sys; seen=[]
for l in open(sys.argv[1]):
    r = json.loads(l)["relation"] if l.strip() else None
    if r and r not in seen: seen.append(r)
print(" ".join(seen))' "$bank")
for r in $rels; do
  others=$(printf '%s\n' $rels | grep -vx "$r" | paste -sd, -)
  for d in fit test; do mkdir -p "$out/transfer/$r-$d" && cp "$out/qa.jsonl" "$out/transfer/$r-$d/"; done
  "${bin[@]}" eval qa --bank "$bank" --relations "$others" --out "$out/transfer/$r-fit" "$@" >/dev/null
  "${bin[@]}" eval qa --bank "$bank" --relations "$r" --calibration "$out/transfer/$r-fit/calibration.json" \
    --out "$out/transfer/$r-test" "$@" >/dev/null
  echo "== $r: calibration fitted on $others (columns: AUROC on $r, then pooled — the same items)"
  grep -E '^\| (\*\*void score, given calibration\*\*|mean token entropy|−mean log-probability|1 − min token probability|entropy, first token) \| [0-9.]+ \[' \
    "$out/transfer/$r-test/qa.md"
done
