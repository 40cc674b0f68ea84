#!/usr/bin/env python3
"""trace_check.py TRACE: read a MEMALLOC_TRACE file (docs/trace-format.md)
with a reader of its own, independent of memalloc report's, check that it
is well formed, and print what the tests compare, one fact per line:

  info=N end=0|1 cut=0|1        INFO records, END present, last record cut short
  pid=P ppid=Q exe=PATH args=A B ...   the last INFO (the program that ran last)
  end_allocs=N end_frees=N end_in_use=N end_peak=N   the END record
  sites_calls=N sites_bytes=N   the last SITES record, summed
  sizes_calls=N sizes_bytes=N   the last SIZES record, summed
  site CALLS BYTES              one line per call site of the last SITES
  sampled SIZE allocs=N frees=N temporary=N live=N   per sampled size
  heap=N classes=N regions=N    HEAP, CLASSES and REGIONS records
  arenas=N arenas_per_record=N  ARENAS records, and the arenas of the last
  stack_first_frame_is_site=0|1 every sampled ALLOC's stack starts at a site
  threads=N                     distinct thread ids of sampled ALLOCs
  aggregated CALLS samples=N weight=W temporary=T   samples only counted
                                (AGGREGATES), per call site (by the site's
                                calls in SITES, as "site" lines)
  aggregated_lifetimes=N        the AGGREGATES lifetime histogram, summed

Records before the last INFO (an earlier program of the same process,
before an exec) are checked, then set aside. Exits 1 with a message on
the first malformed record.
"""
import struct
import sys
from collections import defaultdict

NAMES = {1: "INFO", 2: "MAPS", 3: "STACK", 4: "ALLOC", 5: "FREE", 6: "HEAP", 7: "CLASSES",
         8: "REGIONS", 9: "SITES", 10: "SIZES", 11: "END", 12: "EVENTS", 13: "AGGREGATES",
         14: "ARENAS"}
MIN_LEN = {1: 44, 2: 8, 3: 8, 4: 48, 5: 32, 6: 88, 7: 16, 9: 16, 10: 16, 11: 48, 12: 16,
           13: 16, 14: 16}


def unzigzag(z):
    return (z >> 1) ^ -(z & 1)


def varint(p, o):
    """The varint at p[o]: (value, offset after it)."""
    v = shift = 0
    while True:
        if o >= len(p):
            fail("EVENTS: a varint runs past the record")
        b = p[o]
        o += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, o


def decode_events(p, interval):
    """An EVENTS record's ALLOC and FREE tuples, as the fixed records give them."""
    t, tid, count = struct.unpack_from("<QII", p)
    o, addr, seq, allocs, frees = 16, 0, 0, [], []
    for _ in range(count):
        if o >= len(p):
            fail("EVENTS: fewer events than its count")
        kind = p[o]
        o += 1
        dt, o = varint(p, o)
        za, o = varint(p, o)
        if kind & 4:  # signed: an ALLOC written late
            dt = unzigzag(dt)
        t += dt
        addr = (addr + unzigzag(za)) & (2**64 - 1)
        if kind & 1 == 0:
            size, o = varint(p, o)
            stack, o = varint(p, o)
        elif kind & 4:
            fail("EVENTS: a FREE with the signed flag")
        dseq, o = varint(p, o)
        seq += unzigzag(dseq) if kind & 4 else dseq
        if kind & 1 == 0:
            weight = size if interval <= 1 or size >= interval else interval
            allocs.append((t, addr, size, weight, stack, tid, seq))
        else:
            frees.append((t, addr, tid, (kind >> 1) & 1, seq))
    if o != len(p):
        fail(f"EVENTS: {len(p) - o} bytes after its {count} events")
    return allocs, frees


def fail(msg):
    print(f"trace_check: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    data = open(sys.argv[1], "rb").read()
    if data[:8] != b"MEMTRC01":
        fail("bad magic")
    off, cut, infos = 8, 0, 0
    seg = None

    def new_segment():
        return {"stacks": {}, "allocs": [], "frees": [], "sites": None, "sizes": None,
                "end": None, "heap": 0, "classes": 0, "regions": 0, "info": None,
                "aggregates": None, "arenas": 0, "arenas_last": 0}

    while off < len(data):
        if off + 8 > len(data):
            cut = 1
            break
        rtype, reserved, length = struct.unpack_from("<HHI", data, off)
        if off + 8 + length > len(data):
            cut = 1
            break
        p = data[off + 8:off + 8 + length]
        off += 8 + length
        if reserved != 0:
            fail(f"record at {off - 8 - length}: reserved field {reserved}")
        if rtype in MIN_LEN and length < MIN_LEN[rtype]:
            fail(f"{NAMES[rtype]} record of {length} bytes")
        if rtype == 1:
            infos += 1
            seg = new_segment()
            ver, pid, ppid, page, sample, real, mono, n = struct.unpack_from("<IIIIQQQI", p)
            strings = p[44:].split(b"\0")[:n]
            if ver not in (1, 2) or page == 0 or sample == 0 or len(strings) != n:
                fail(f"bad INFO {ver} {page} {sample} {len(strings)}/{n}")
            seg["info"] = (pid, ppid, [s.decode(errors="replace") for s in strings])
            seg["interval"] = sample
            continue
        if seg is None:
            fail(f"{NAMES.get(rtype, rtype)} before any INFO")
        if rtype == 3:
            sid, depth = struct.unpack_from("<II", p)
            if length != 8 + 8 * depth or sid == 0:
                fail(f"STACK {sid} of depth {depth} in {length} bytes")
            seg["stacks"][sid] = struct.unpack_from(f"<{depth}Q", p, 8)
        elif rtype == 4:
            seg["allocs"].append(struct.unpack_from("<QQQQIIQ", p))
        elif rtype == 5:
            seg["frees"].append(struct.unpack_from("<QQIIQ", p))
        elif rtype == 12:
            a, f = decode_events(p, seg["interval"])
            seg["allocs"] += a
            seg["frees"] += f
        elif rtype == 6:
            seg["heap"] += 1
        elif rtype == 7:
            t, count = struct.unpack_from("<QI", p)
            if length != 16 + 32 * count:
                fail(f"CLASSES of {count} in {length} bytes")
            seg["classes"] += 1
        elif rtype == 8:
            t, count, granule = struct.unpack_from("<QII", p)
            o = 16
            for _ in range(count):
                if o + 16 > length:
                    fail("REGIONS cut inside a region")
                base, n, _ = struct.unpack_from("<QII", p, o)
                o += (16 + 3 * n + 7) & ~7
                g = p[o - ((16 + 3 * n + 7) & ~7) + 16:][:3 * n]
                if any(g[i] + g[i + 1] + g[i + 2] > 255 + 2 for i in range(0, 3 * n, 3)):
                    fail(f"REGIONS: a granule of {base:#x} over 255")
            if o != length or granule == 0:
                fail(f"REGIONS of {count} regions in {length} bytes, {o} read")
            seg["regions"] += 1
        elif rtype == 9:
            t, count = struct.unpack_from("<QI", p)
            if length != 16 + 24 * count:
                fail(f"SITES of {count} in {length} bytes")
            seg["sites"] = [struct.unpack_from("<QQQ", p, 16 + 24 * i) for i in range(count)]
        elif rtype == 10:
            t, count = struct.unpack_from("<QI", p)
            if count != 49 or length != 16 + 16 * count:
                fail(f"SIZES of {count} in {length} bytes")
            seg["sizes"] = [struct.unpack_from("<QQ", p, 16 + 16 * i) for i in range(count)]
        elif rtype == 11:
            seg["end"] = struct.unpack_from("<QQQQQQ", p)
        elif rtype == 14:
            t, count = struct.unpack_from("<QI", p)
            if length != 16 + 32 * count or count == 0:
                fail(f"ARENAS of {count} in {length} bytes")
            for i in range(count):
                mapped, free_chunks, free_objects, threads = struct.unpack_from("<QQQQ", p, 16 + 32 * i)
                if free_chunks + free_objects > mapped:
                    fail(f"ARENAS: arena {i} has {free_chunks + free_objects} free of {mapped}")
            seg["arenas"] += 1
            seg["arenas_last"] = count
        elif rtype == 13:
            t, count, nlife = struct.unpack_from("<QII", p)
            if length != 16 + 8 * nlife + 40 * count:
                fail(f"AGGREGATES of {count} and {nlife} lifetimes in {length} bytes")
            life = struct.unpack_from(f"<{nlife}Q", p, 16)
            rows = [struct.unpack_from("<IIQQQQ", p, 16 + 8 * nlife + 40 * i) for i in range(count)]
            if seg["aggregates"] is None or t >= seg["aggregates"][0]:
                seg["aggregates"] = (t, life, rows)

    if seg is None:
        fail("no INFO record")
    pid, ppid, strings = seg["info"]
    print(f"info={infos} end={int(seg['end'] is not None)} cut={cut}")
    print(f"pid={pid} ppid={ppid} exe={strings[0]} args={' '.join(strings[1:])}")
    if seg["end"]:
        _, a, f, peak, _, in_use = seg["end"]
        print(f"end_allocs={a} end_frees={f} end_in_use={in_use} end_peak={peak}")
    sites = seg["sites"] or []
    print(f"sites_calls={sum(s[1] for s in sites)} sites_bytes={sum(s[2] for s in sites)}")
    sizes = seg["sizes"] or []
    print(f"sizes_calls={sum(s[0] for s in sizes)} sizes_bytes={sum(s[1] for s in sizes)}")
    for ra, calls, nbytes in sorted(sites):
        print(f"site {calls} {nbytes}")
    # sampled blocks: match each FREE with the ALLOC of its address before it
    events = [(a[0], 0, a) for a in seg["allocs"]] + [(f[0], 1, f) for f in seg["frees"]]
    events.sort(key=lambda e: (e[0], e[1]))
    live = {}
    per = defaultdict(lambda: [0, 0, 0])
    for _, kind, e in events:
        if kind == 0:
            live[e[1]] = e
            per[e[2]][0] += 1
        else:
            a = live.pop(e[1], None)
            if a is None:
                fail(f"FREE of {e[1]:#x} with no ALLOC before it")
            per[a[2]][1] += 1
            per[a[2]][2] += e[3] & 1
    for size in sorted(per):
        n, freed, temp = per[size]
        print(f"sampled {size} allocs={n} frees={freed} temporary={temp} live={n - freed}")
    site_ras = {s[0] for s in sites}
    ok = all(a[4] in seg["stacks"] and seg["stacks"][a[4]][0] in site_ras for a in seg["allocs"])
    print(f"stack_first_frame_is_site={int(ok)}")
    print(f"threads={len({a[5] for a in seg['allocs']})}")
    print(f"heap={seg['heap']} classes={seg['classes']} regions={seg['regions']}")
    print(f"arenas={seg['arenas']} arenas_per_record={seg['arenas_last']}")
    if seg["aggregates"]:
        _, life, rows = seg["aggregates"]
        calls_of = {ra: calls for ra, calls, _ in sites}
        per_site = defaultdict(lambda: [0, 0, 0])
        for stack, _, samples, weight, temps, _ in rows:
            if stack and stack not in seg["stacks"]:
                fail(f"AGGREGATES names stack {stack}, which no STACK record gives")
            frames = seg["stacks"].get(stack)
            key = calls_of.get(frames[0], "?") if frames else "?"
            for i, v in enumerate((samples, weight, temps)):
                per_site[key][i] += v
        for key in sorted(per_site, key=str):
            n, w, temp = per_site[key]
            print(f"aggregated {key} samples={n} weight={w} temporary={temp}")
        print(f"aggregated_lifetimes={sum(life)}")


if __name__ == "__main__":
    main()
