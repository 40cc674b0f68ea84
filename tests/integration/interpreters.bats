#!/usr/bin/env bats
# Interpreters that allocate a lot of small, short-lived objects: bash, perl
# and python3 (with PYTHONMALLOC=malloc so that every object goes to malloc).

load helpers

setup() {
    memalloc_setup
    T=$BATS_TEST_TMPDIR
}

@test "bash: loops over arrays, associative arrays and string operations" {
    cat >"$T/script.bash" <<'EOF'
declare -a words=()
declare -A count=()
s=""
for ((i = 0; i < 6000; i++)); do
    w="w$(( (i * 7919) % 613 ))_${i:0:2}"
    words+=("$w")
    count[$w]=$(( ${count[$w]:-0} + 1 ))
    s+="${w^^}"
    if (( ${#s} > 5000 )); then
        s="${s:2500}"
        s="${s//W/v}"
    fi
done
echo "words: ${#words[@]} distinct: ${#count[@]} tail: ${s: -40}"
# Sort the keys and fold the counts into a checksum.
sum=0
for k in $(printf '%s\n' "${!count[@]}" | sort); do
    sum=$(( (sum * 31 + count[$k] + ${#k}) % 1000000007 ))
done
echo "checksum: $sum"
joined=$(IFS=,; echo "${words[*]:100:20}")
echo "slice: $joined"
unset 'words[5]' 'words[50]'
words=("${words[@]}")
echo "after unset: ${#words[@]} ${words[5]} ${words[49]}"
read -ra parts <<<"$(printf '%s ' {1..2000})"
echo "parts: ${#parts[@]} ${parts[1999]}"
EOF
    compare_run bash_script bash "$T/script.bash"
    grep -q '^words: 6000 distinct: ' "$MA_OUT/bash_script.pre.out"
    grep -q '^parts: 2000 2000$' "$MA_OUT/bash_script.pre.out"
}

@test "perl: hashes, regular expressions, sort and join" {
    cat >"$T/script.pl" <<'EOF'
use strict;
use warnings;
my (%h, @list);
my $seed = 42;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed >> 16; }
for my $i (1 .. 100000) {
    my $k = join('', map { chr(97 + rnd() % 26) } 1 .. 1 + rnd() % 6);
    $h{$k} .= "$i,";
    push @list, $k if $i % 3 == 0;
}
my ($vowels, $runs) = (0, 0);
for my $k (keys %h) {
    $vowels++ if $k =~ /^[aeiou]/;
    $runs++ if $k =~ /(.)\1/;
    my @ids = split /,/, $h{$k};
    $h{$k} = scalar @ids;
}
my @sorted = sort { $h{$b} <=> $h{$a} || $a cmp $b } keys %h;
print "keys: ", scalar(keys %h), " vowels: $vowels runs: $runs\n";
print "top: @sorted[0 .. 9]\n";
my $text = join(' ', @list);
(my $copy = $text) =~ s/([aeiou])([^aeiou ]*)/\U$1\E$2/g;
my @caps = $copy =~ /\b([A-Z][a-z]{3})\b/g;
print "list: ", scalar(@list), " caps: ", scalar(@caps), " len: ", length($copy), "\n";
print "checksum: ", unpack('%32C*', $copy), "\n";
delete @h{ grep { length($_) > 3 } keys %h };
print "left: ", scalar(keys %h), "\n";
EOF
    compare_run perl_script /usr/bin/perl "$T/script.pl"
    grep -q '^keys: [0-9]' "$MA_OUT/perl_script.pre.out"
    grep -q '^checksum: [0-9]' "$MA_OUT/perl_script.pre.out"
}

@test "python3 (PYTHONMALLOC=malloc): dicts, lists, strings, threads" {
    cat >"$T/script.py" <<'EOF'
import threading
import zlib

seed = 7
def rnd():
    global seed
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed >> 16

d = {}
for i in range(150000):
    k = "".join(chr(97 + rnd() % 26) for _ in range(1 + rnd() % 5))
    d.setdefault(k, []).append(i)
print("keys:", len(d), "biggest:", max(len(v) for v in d.values()))
words = sorted(d, key=lambda k: (-len(d[k]), k))
print("top:", " ".join(words[:10]))
text = "\n".join("%s=%s" % (k, ",".join(map(str, d[k][:5]))) for k in words)
print("text:", len(text), "crc:", zlib.crc32(text.encode()))
parts = text.upper().replace("=", " := ").split()
print("parts:", len(parts), "crc:", zlib.crc32(" ".join(reversed(parts)).encode()))
for k in words[::2]:
    del d[k]
print("left:", len(d))

# Threads allocating at the same time (they take turns on the GIL, but
# their objects interleave in the heap).
results = [None] * 4
def work(n):
    acc = []
    for i in range(30000):
        acc.append(("t%d-%d" % (n, i)) * (1 + i % 7))
        if len(acc) > 500:
            acc = acc[250:]
    results[n] = sum(len(s) for s in acc)
threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threads:", results)
big = [bytes(range(256)) * (1 << k) for k in range(14)]
print("big:", sum(len(b) for b in big), zlib.crc32(b"".join(big)))
EOF
    export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
    compare_run python_script /usr/bin/python3 -s "$T/script.py"
    grep -q '^keys: [0-9]' "$MA_OUT/python_script.pre.out"
    grep -q '^threads: \[' "$MA_OUT/python_script.pre.out"
}
