"""Our link scanner (``engagequeue._links.find_links`` + the IANA snapshot) against linkify-it-py.

Prints one JSON object: for each item of a hostile-answer corpus (one disguised foreign link
each: fullwidth and mathematical letters, odd dots, invisible characters, IP hosts in every
spelling, bracketed IPv6, javascript:/data:/tel:... URIs, Markdown targets) the links each
scanner finds and whether it caught the foreign one; totals; and the time per call on
texts of 1 KB to 1 MB. linkify-it-py runs in a throw-away venv under /tmp (it is not a
project dependency), once as configured by default and once with ``fuzzy_ip`` and our TLD list.

    .venv/bin/python benchmarks/linkify_eval.py [--items 300] [--seed 14]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from engagequeue._links import find_links  # noqa: E402
from engagequeue._tlds import TLDS  # noqa: E402
from link_oracle import (  # noqa: E402
    _FOREIGN_HOSTS,
    _GLUE_AROUND,
    _PATHS,
    _SCHEME_PREFIXES,
    _URIS,
    LINKS,
    disguise_with,
    spell_ipv4,
)

VENV = Path("/tmp/engagequeue-linkify-venv")  # noqa: S108 - throw-away, by design
SIZES = [1_000, 10_000, 100_000, 1_000_000]

WORKER = r"""
import json, sys, time
from linkify_it import LinkifyIt
request = json.load(sys.stdin)
default = LinkifyIt()
tuned = LinkifyIt(options={"fuzzy_ip": True}).tlds(request["tlds"], True)
out = {"items": [], "timing": []}
for text in request["items"]:
    row = {}
    for name, scanner in (("default", default), ("tuned", tuned)):
        row[name] = [[m.index, m.last_index, m.raw] for m in (scanner.match(text) or [])]
    out["items"].append(row)
for text in request["timing"]:
    row = {}
    for name, scanner in (("default", default), ("tuned", tuned)):
        start = time.perf_counter()
        scanner.match(text)
        row[name] = time.perf_counter() - start
    out["timing"].append(row)
json.dump(out, sys.stdout)
"""


def _plain(rng: random.Random) -> str:
    kind = rng.choice(["host", "ipv4", "ipv6", "uri"])
    if kind == "uri":
        return rng.choice(_URIS)
    if kind == "host":
        host = rng.choice(_FOREIGN_HOSTS)
    elif kind == "ipv4":
        host = spell_ipv4(rng.getrandbits(32), rng.choice)
    else:
        host = rng.choice(["[::1]", "[::ffff:127.0.0.1]", "[2001:db8::1]", "[fe80::1%25eth0]"])
    return rng.choice(_SCHEME_PREFIXES) + host + rng.choice(_PATHS)


def corpus(count: int, seed: int) -> list[dict[str, object]]:
    """``count`` answers, each hiding one foreign link at ``start:end``; every other disguised."""
    rng = random.Random(seed)
    items = []
    for index in range(count):
        plain = _plain(rng)
        link = plain if index % 2 == 0 else disguise_with(plain, rng.choice)
        left, right = rng.choice(_GLUE_AROUND), rng.choice(_GLUE_AROUND)
        if rng.random() < 0.25:
            left, right = left + "[Deal](", ")" + right
        head = "Spring sale!" + left
        text = head + link + right + f"Up to 40% off {LINKS[0]}"
        items.append({"text": text, "start": len(head), "end": len(head) + len(link),
                      "plain": plain, "disguised": index % 2 == 1})  # fmt: skip
    return items


def _linkify(items: list[str], timing: list[str]) -> dict[str, list[dict[str, object]]]:
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "linkify-it-py"], check=True)
    request = json.dumps({"items": items, "timing": timing, "tlds": sorted(TLDS)})
    result = subprocess.run(
        [str(python), "-c", WORKER], input=request, capture_output=True, text=True, check=True
    )
    version = subprocess.run(
        [str(python), "-m", "pip", "show", "linkify-it-py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out: dict[str, object] = json.loads(result.stdout)
    out["version"] = next(
        (line.split()[1] for line in version.splitlines() if line.startswith("Version")), "?"
    )
    return out  # type: ignore[return-value]


def _caught(spans: list[list[object]], start: int, end: int) -> bool:
    return any(int(s) < end and start < int(e) for s, e, *_ in spans)  # type: ignore[call-overload]


def _timing_texts(items: list[dict[str, object]]) -> list[str]:
    joined = " ".join(str(item["text"]) for item in items)
    texts = []
    for size in SIZES:
        text = (joined * (size // len(joined) + 1))[:size]
        texts.append(text)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    items = corpus(args.items, args.seed)
    timing_texts = _timing_texts(items)
    theirs = _linkify([str(item["text"]) for item in items], timing_texts)
    rows = []
    totals = {"ours": 0, "linkify_default": 0, "linkify_tuned": 0}
    by_form = {name: {"plain": 0, "disguised": 0} for name in totals}
    for item, other in zip(items, theirs["items"], strict=True):
        start, end = int(item["start"]), int(item["end"])  # type: ignore[call-overload]
        ours = [
            [f.start, f.end, f.raw]
            for f in find_links(str(item["text"]), LINKS)
            if f.target is None
        ]
        found = {"ours": ours, "linkify_default": other["default"], "linkify_tuned": other["tuned"]}
        caught = {name: _caught(spans, start, end) for name, spans in found.items()}  # type: ignore[arg-type]
        form = "disguised" if item["disguised"] else "plain"
        for name, hit in caught.items():
            totals[name] += hit
            by_form[name][form] += hit
        rows.append({"text": item["text"], "foreign": str(item["text"])[start:end],
                     "found": found, "caught": caught})  # fmt: skip
    timing = []
    for size, text, other in zip(SIZES, timing_texts, theirs["timing"], strict=True):
        begin = time.perf_counter()
        find_links(text, LINKS)
        ours_s = time.perf_counter() - begin
        timing.append({"bytes": size, "ours_s": round(ours_s, 4),
                       "linkify_default_s": round(other["default"], 4),  # type: ignore[index]
                       "linkify_tuned_s": round(other["tuned"], 4),  # type: ignore[index]
                       "ours_us_per_kb": round(ours_s / size * 1e9, 1)})  # fmt: skip
    print(json.dumps({
        "linkify_it_py": theirs["version"],
        "items": len(items),
        "caught": totals,
        "caught_by_form": by_form,
        "timing": timing,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_1min": [load_start, os.getloadavg()[0]]},
        "corpus": rows,
    }, indent=1, ensure_ascii=True))  # fmt: skip


if __name__ == "__main__":
    main()
