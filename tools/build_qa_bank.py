#!/usr/bin/env python3
"""Build the closed-book QA bank of the evaluation (eval/qa_bank.jsonl) from the PyPI package
`countryinfo` (MIT licence; 250 countries and territories with capital, region, subregion).

    python tools/build_qa_bank.py COUNTRYINFO_WHEEL_OR_DIR > eval/qa_bank.jsonl

Two relations, one item each per country (duplicates by name dropped, empty answers skipped):
- capital: "What is the capital of X?", answer stem "The capital of X is";
- region:  "Which continent is X in?", answer stem "X is in".
Accepted answers: the package's capital plus the spelling variants in CAPITAL_ALIASES below
(written for this bank: other transliterations, former or co-capitals a model may fairly
name); for regions, the package's region mapped to continent names by REGION_ANSWERS (by
subregion for the Americas). Grading (src/eval/qa.rs) folds case and accents and looks for an
accepted answer as whole words in the answer's first clause.
The output is deterministic: rerunning on the same wheel gives the same bytes.
"""
import glob
import json
import os
import sys
import tempfile
import zipfile

CAPITAL_ALIASES = {
    "Kyiv": ["Kiev"],
    "Washington D.C.": ["Washington"],
    "Nur-Sultan": ["Astana"],
    "Sana'a": ["Sanaa"],
    "Ulaanbaatar": ["Ulan Bator"],
    "Hagåtña": ["Agana"],
    "Papeetē": ["Papeete"],
    "Sucre": ["La Paz"],
    "Colombo": ["Sri Jayawardenepura Kotte", "Kotte"],
    "Naypyidaw": ["Nay Pyi Taw", "Naypyitaw"],
    "Lobamba": ["Mbabane"],
    "Ngerulmud": ["Melekeok"],
    "City of San Marino": ["San Marino"],
    "City of Victoria": ["Victoria"],
    "South Tarawa": ["Tarawa"],
    "Vatican City State": ["Vatican City"],
    "Ramallah": ["East Jerusalem", "Jerusalem"],
    "El Aaiún": ["Laayoune", "El Aaiun"],
    "St. George's": ["Saint George's"],
    "St. Peter Port": ["Saint Peter Port"],
    "Saint John's": ["St. John's"],
    "Port of Spain": ["Port-of-Spain"],
    "Mexico City": ["Ciudad de Mexico"],
}

# Entries left out: a non-English name for a dissolved territory, a dissolved state, and
# second records of a country already present under another name.
EXCLUDE = {"Antilles néerlandaises", "Serbia and Montenegro", "Palestine, State of",
           "Holy See (Vatican City State)"}

# The continent names a correct answer may use, by region (and by subregion in the Americas).
REGION_ANSWERS = {
    "Africa": ["Africa", "African"],
    "Europe": ["Europe", "European"],
    "Asia": ["Asia", "Asian", "Middle East", "Eurasia"],
    "Oceania": ["Oceania", "Australia", "Australasia", "Pacific", "Polynesia", "Melanesia",
                "Micronesia"],
}
AMERICAS = {
    "Northern America": ["North America", "Americas"],
    "South America": ["South America", "Latin America", "Americas"],
    "Central America": ["North America", "Central America", "Latin America", "Americas"],
    "Caribbean": ["North America", "Caribbean", "Latin America", "West Indies", "Americas"],
}


def load(src):
    if os.path.isdir(src):
        root = src
    else:
        root = tempfile.mkdtemp()
        zipfile.ZipFile(src).extractall(root)
    files = sorted(glob.glob(os.path.join(root, "countryinfo", "data", "*.json")))
    if not files:
        sys.exit(f"{src}: no countryinfo/data/*.json inside")
    return [json.load(open(f, encoding="utf-8")) for f in files]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    seen, items = set(), []
    for d in load(sys.argv[1]):
        name = d.get("name")
        if not name or name in seen or name in EXCLUDE:
            continue
        seen.add(name)
        cap = d.get("capital")
        if isinstance(cap, list):
            cap = cap[0] if cap else None
        if cap and "/" not in cap:
            items.append({
                "relation": "capital", "subject": name,
                "question": f"What is the capital of {name}?",
                "stem": f"The capital of {name} is",
                "answers": [cap] + CAPITAL_ALIASES.get(cap, []),
            })
        region, sub = d.get("region") or "", d.get("subregion") or ""
        inter = d.get("intermediateregion") or ""
        if region == "Americas":
            answers = AMERICAS.get(sub) or AMERICAS.get(inter)
        else:
            answers = REGION_ANSWERS.get(region)
        if answers:
            items.append({
                "relation": "region", "subject": name,
                "question": f"Which continent is {name} in?",
                "stem": f"{name} is in",
                "answers": answers,
            })
    items.sort(key=lambda it: (it["relation"], it["subject"]))
    for i, it in enumerate(items):
        print(json.dumps({"id": i, **it}, ensure_ascii=False))


if __name__ == "__main__":
    main()
