#!/usr/bin/env bats
# Larger programs under the preload: git, gcc and sqlite3.

load helpers

setup() {
    memalloc_setup
    T=$BATS_TEST_TMPDIR
}

@test "git: init, commits, log, gc, fsck" {
    # Fixed identities and dates: commit ids are the same in every run.
    cat >"$T/git.sh" <<'EOF'
set -e
repo=$1
export HOME=$repo.home GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.invalid
export GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.invalid
mkdir -p "$HOME" "$repo"
cd "$repo"
git init -q -b main .
git config gc.autoDetach false
git config maintenance.auto false
for i in $(seq 1 40); do
    export GIT_AUTHOR_DATE="@$((1700000000 + i * 60)) +0000" GIT_COMMITTER_DATE="@$((1700000000 + i * 60)) +0000"
    mkdir -p "dir$((i % 5))"
    seq "$i" $((i * 37)) >"dir$((i % 5))/file$((i % 7)).txt"
    printf 'commit %d\n' "$i" >>log.txt
    if ((i % 10 == 0)); then rm -f "dir$(((i + 1) % 5))"/file[0-3].txt; fi
    git add -A
    git commit -q -m "change number $i"
    if ((i % 13 == 0)); then git tag "v$i"; fi
done
git log --format='%H %s'
git log --stat --format='%h %an %ad' --date=iso -n 5
git diff --stat v13 v39
git gc -q
git fsck --full --strict
git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
git rev-list --all --objects | sort | git hash-object --stdin
git status --porcelain
EOF
    compare_run git bash "$T/git.sh" "$T/repo.@MODE@"
    [[ $(ma_rc git pre) == 0 ]] || fail "git script failed"
    [[ $(grep -c '^[0-9a-f]\{40\} change number' "$MA_OUT/git.pre.out") == 40 ]]
    grep -q '^in-pack: [1-9]' "$MA_OUT/git.pre.out"
}

@test "gcc: compiles the engine sources with -O2" {
    local src f mode count
    local -a files=()
    for src in "$MA_ROOT"/src/*.c; do files+=("$src"); done
    ((${#files[@]} > 0)) || fail "no sources in $MA_ROOT/src"
    mkdir "$T/obj.base" "$T/obj.pre" "$T/obj.stats"
    # One driver compiles them all (cc1 and as run once per file).
    compare_run gcc env -C "$T/obj.@MODE@" gcc -O2 -g0 -c -I "$MA_ROOT/include" \
        -I "$MA_ROOT/src" "${files[@]}"
    [[ $(ma_rc gcc base) == 0 ]] || fail "gcc fails without the preload" "$(cat "$MA_OUT/gcc.base.err")"
    [[ ! -s $MA_OUT/gcc.pre.err ]] || fail "gcc wrote to stderr under the preload"
    # Each run produced one non-empty object file per source, and no other.
    for mode in base pre stats; do
        count=$(find "$T/obj.$mode" -type f -name '*.o' -size +0 | wc -l)
        ((count == ${#files[@]})) ||
            fail "gcc ($mode) left $count object files for ${#files[@]} sources" \
                "$(ls -l "$T/obj.$mode")"
        count=$(find "$T/obj.$mode" -mindepth 1 | wc -l)
        ((count == ${#files[@]})) || fail "gcc ($mode) left other files:" "$(ls -l "$T/obj.$mode")"
    done
    for src in "${files[@]}"; do
        f=$(basename "${src%.c}").o
        # gcc output does not depend on addresses: the objects are identical.
        cmp "$T/obj.base/$f" "$T/obj.pre/$f" || fail "$f differs with the preload"
        cmp "$T/obj.base/$f" "$T/obj.stats/$f" || fail "$f differs with MEMALLOC_STATS=1"
    done
}

@test "sqlite3: 50k rows from a recursive CTE, indexes and aggregates" {
    cat >"$T/script.sql" <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 50000)
INSERT INTO t SELECT i, (i * 7919) % 97, printf('name-%05d-%s', i, hex(i * 31)), (i % 1000) / 7.0 FROM seq;
CREATE INDEX t_grp ON t(grp, val);
SELECT count(*), sum(grp), printf('%.4f', avg(val)), min(name), max(name) FROM t;
SELECT grp, count(*), printf('%.3f', sum(val)) FROM t GROUP BY grp ORDER BY sum(val) DESC LIMIT 10;
SELECT length(group_concat(name, ',')) FROM t WHERE grp < 10;
SELECT a.grp, count(*) FROM t a JOIN t b ON a.id = b.id + 97 AND a.grp = b.grp GROUP BY a.grp LIMIT 5;
UPDATE t SET name = upper(name) || '/' || name WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(name)) FROM t;
SELECT name FROM t ORDER BY val DESC, name LIMIT 3 OFFSET 1000;
VACUUM;
PRAGMA integrity_check;
EOF
    MA_STDIN=$T/script.sql compare_run sqlite sqlite3 -batch "$T/@MODE@.db"
    [[ $(ma_rc sqlite pre) == 0 ]] || fail "sqlite3 failed" "$(cat "$MA_OUT/sqlite.pre.err")"
    head -n 1 "$MA_OUT/sqlite.pre.out" | grep -q '^50000|'
    tail -n 1 "$MA_OUT/sqlite.pre.out" | grep -qx ok
    # The in-memory database too.
    MA_STDIN=$T/script.sql compare_run sqlite_mem sqlite3 -batch :memory:
}
