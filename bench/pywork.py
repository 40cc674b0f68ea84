"""pywork.py: the python workload of bench/run.py.

Run with PYTHONMALLOC=malloc, so that every object comes from the allocator
under test: builds a vocabulary and a text, counts words in a dict, makes
records (dicts holding lists), groups and sorts them, formats a report, and
churns short-lived tuples, sets and strings. Deterministic (fixed seed);
prints one checksum line, which run.py compares across allocators.

    PYTHONMALLOC=malloc python3 bench/pywork.py [scale]     (default 1)
"""
import random
import sys
import zlib

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    rng = random.Random(2024)
    crc = 0

    words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 10))) for _ in range(20000)]
    text = " ".join(rng.choice(words) for _ in range(50000 * scale))
    freq = {}
    for w in text.split():
        freq[w] = freq.get(w, 0) + 1
    top = sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:100]
    crc = zlib.crc32(repr(top).encode(), crc)

    records = []
    for i in range(50000 * scale):
        tags = [rng.choice(words) for _ in range(rng.randint(0, 5))]
        records.append({"id": i, "name": rng.choice(words), "score": rng.randint(0, 10**6), "tags": tags})
    groups = {}
    for r in records:
        groups.setdefault(r["name"][:2], []).append(r)
    for g in groups.values():
        g.sort(key=lambda r: (r["score"], r["id"]))
    lines = []
    for key in sorted(groups):
        g = groups[key]
        tagset = set()
        for r in g:
            tagset.update(r["tags"])
        lines.append("%s:%d:%d:%s" % (key, len(g), len(tagset), ",".join(str(r["id"]) for r in g[:20])))
    crc = zlib.crc32("\n".join(lines).encode(), crc)
    del records, groups

    acc = 0
    for i in range(150000 * scale):
        t = (i, str(i), words[i % len(words)] * 2)
        s = {t[1], t[2], i % 97}
        acc = (acc + len(t[2]) + len(s)) % 1000003
    crc = zlib.crc32(str(acc).encode(), crc)

    print("pywork: checksum=%08x words=%d" % (crc, len(freq)))


if __name__ == "__main__":
    main()
