#!/usr/bin/env python3
"""Blind audit of `eval loops` outputs (docs/EVALUATION.md §2).

  tools/loops_audit.py sheet OUT_DIR [--method NAME]... [--prompts N] [--seed S]
                             [--prompt-file eval/open_prompts.txt]
      writes OUT_DIR/loops_audit_sheet.md (N prompts x the methods, shuffled, numbered, no
      method names) and OUT_DIR/loops_audit_key.json (number -> method, prompt)
  tools/loops_audit.py score OUT_DIR RATINGS.json
      RATINGS.json: {"1": {"quality": 1-5, "loops": true|false}, ...}, made by a reader who saw
      only the sheet; writes OUT_DIR/loops_audit.md: per method, mean quality and loops flagged,
      then every item with its method revealed.

Prompts are taken evenly over the prompt set (every k-th), so the sample is not chosen by how
any method did on them. Standard library only.
"""
import json
import random
import statistics
import sys
from pathlib import Path


def load(out):
    recs = [json.loads(l) for l in open(out / "loops.jsonl") if l.strip()]
    return {(r["method"], r["prompt"]): r for r in recs}


def sheet(out, methods, n, seed, prompt_file):
    recs = load(out)
    texts = [l.strip() for l in open(prompt_file) if l.strip()]
    prompts = sorted({p for (_, p) in recs})
    step = max(1, len(prompts) // n)
    chosen = prompts[::step][:n]
    items = [(m, p) for p in chosen for m in methods]
    missing = [i for i in items if i not in recs]
    if missing:
        sys.exit(f"no record for {missing[:3]}…")
    random.Random(seed).shuffle(items)
    key = {}
    lines = [
        "# Blind audit sheet\n",
        "Each item is a model's continuation of an open-ended prompt (160 tokens at most, cut "
        "mid-sentence when the budget ends). Rate each, not knowing how it was produced:\n",
        "- quality 1–5: 5 fluent, coherent, on topic, no repetition; 3 readable with flaws; "
        "1 broken, degenerate or off topic;",
        "- loops: true if it falls into repeating the same phrase or sentence pattern.\n",
    ]
    for k, (m, p) in enumerate(items, 1):
        key[str(k)] = {"method": m, "prompt": p}
        text = recs[(m, p)]["text"].strip().replace("\n", "\n> ")
        lines.append(f"## {k}\n\nPrompt: {texts[p]}\n\n> {text}\n")
    (out / "loops_audit_sheet.md").write_text("\n".join(lines))
    (out / "loops_audit_key.json").write_text(json.dumps(key, indent=1) + "\n")
    print(f"{len(items)} items -> {out / 'loops_audit_sheet.md'}")


def score(out, ratings_path):
    key = json.loads((out / "loops_audit_key.json").read_text())
    ratings = json.loads(Path(ratings_path).read_text())
    if set(ratings) != set(key):
        sys.exit("the ratings must cover exactly the sheet's items")
    by = {}
    for k, v in key.items():
        q, lp = ratings[k]["quality"], ratings[k]["loops"]
        if q not in (1, 2, 3, 4, 5) or not isinstance(lp, bool):
            sys.exit(f"item {k}: quality 1-5 and loops true/false")
        by.setdefault(v["method"], []).append((q, lp))
    md = [
        "Blind audit: a reader who saw only `loops_audit_sheet.md` (items shuffled, methods "
        "hidden) rated each output; the key was joined afterwards "
        "(`tools/loops_audit.py score`).\n",
        "| method | items | mean quality (1–5) | quality ≥ 4 | loops flagged |",
        "|---|---|---|---|---|",
    ]
    for m, rs in by.items():
        qs = [q for q, _ in rs]
        md.append(
            f"| {m} | {len(rs)} | {statistics.mean(qs):.2f} | {sum(q >= 4 for q in qs)} | "
            f"{sum(lp for _, lp in rs)} |"
        )
    md += ["", "| item | method | prompt | quality | loops |", "|---|---|---|---|---|"]
    for k in sorted(key, key=int):
        v, r = key[k], ratings[k]
        md.append(f"| {k} | {v['method']} | {v['prompt']} | {r['quality']} | {r['loops']} |")
    (out / "loops_audit.md").write_text("\n".join(md) + "\n")
    print("\n".join(md[:3 + len(by)]))


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "sheet" and len(a) % 2 == 0:
        # Method names hold commas, so each comes with its own --method (as `eval loops --only`).
        pairs = list(zip(a[2::2], a[3::2]))
        names = [v for k, v in pairs if k == "--method"] or [
            "greedy",
            "DRY",
            "escape (balanced, T = 0)",
        ]
        opts = dict(pairs)
        sheet(
            Path(a[1]),
            names,
            int(opts.get("--prompts", 10)),
            int(opts.get("--seed", 14)),
            opts.get("--prompt-file", "eval/open_prompts.txt"),
        )
    elif len(a) == 3 and a[0] == "score":
        score(Path(a[1]), a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
