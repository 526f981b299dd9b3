"""How fast entries become events: `normalize` over a large pass, against parsing its JSON.

    .venv/bin/python bench/normalize_speed.py [--entries 100000]

Prints entries per second for `normalize` and for `json.loads` of the same entries (the
baseline every pass pays anyway), and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from relaybox.core.normalize import Index, IndexedObject, normalize


def workload(n: int) -> tuple[list[IndexedObject], list[dict[str, Any]]]:
    """An index of n files in 100 folders, and a pass that edits, moves, deletes and adds."""
    folders = [IndexedObject(f"id:d{d}", f"/d{d}", f"/d{d}", "folder") for d in range(100)]
    files = [
        IndexedObject(f"id:f{i}", f"/d{i % 100}/f{i}.txt", f"/d{i % 100}/f{i}.txt", "file", "1" * 9)
        for i in range(n)
    ]
    entries: list[dict[str, Any]] = []
    for i in range(n):
        path = f"/d{i % 100}/f{i}.txt"
        kind = i % 4
        if kind == 0:
            entries.append(
                {
                    ".tag": "file",
                    "id": f"id:f{i}",
                    "path_lower": path,
                    "path_display": path,
                    "rev": "2" * 9,
                }
            )
        elif kind == 1:
            entries.append({".tag": "deleted", "path_lower": path, "path_display": path})
            moved = path.replace(".txt", "-moved.txt")
            entries.append(
                {
                    ".tag": "file",
                    "id": f"id:f{i}",
                    "path_lower": moved,
                    "path_display": moved,
                    "rev": "1" * 9,
                }
            )
        elif kind == 2:
            entries.append({".tag": "deleted", "path_lower": path, "path_display": path})
        else:
            new = f"/d{i % 100}/new{i}.txt"
            entries.append(
                {
                    ".tag": "file",
                    "id": f"id:n{i}",
                    "path_lower": new,
                    "path_display": new,
                    "rev": "1" * 9,
                }
            )
    return folders + files, entries


def best_of(runs: int, fn: Any) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    objects, entries = workload(args.entries)
    raw = json.dumps({"entries": entries})
    events = len(normalize(entries, Index(objects)).events)
    normalize_s = best_of(args.runs, lambda: normalize(entries, Index(objects)))
    parse_s = best_of(args.runs, lambda: json.loads(raw))
    print(f"entries: {len(entries)}, events: {events}")
    print(
        f"normalize:  {len(entries) / normalize_s:12,.0f} entries/s ({normalize_s * 1000:.1f} ms)"
    )
    print(f"json.loads: {len(entries) / parse_s:12,.0f} entries/s ({parse_s * 1000:.1f} ms)")
    print(f"ratio normalize/json.loads time: {normalize_s / parse_s:.2f}")


if __name__ == "__main__":
    main()
