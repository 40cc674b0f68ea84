#!/usr/bin/env bats
# stress-ng's malloc stressor under the preload (its workers are forked
# children, which inherit LD_PRELOAD). --verify makes it check the contents
# of its blocks. The operation counts are small enough to finish in a second
# or two with glibc's malloc; the 20 s timeout is a generous ceiling, and a
# run that hits it (fewer bogo ops than asked) fails the test.

load helpers

setup() {
    memalloc_setup
    command -v stress-ng >/dev/null || fail "stress-ng not installed"
}

# stress_run NAME OPS ARGS...: run the malloc stressor with OPS bogo ops.
stress_run() {
    local name=$1 ops=$2 done_ops
    shift 2
    ma_exec stats "$name" stress-ng --malloc 2 --malloc-ops "$ops" "$@" \
        --verify --timeout 20s --metrics-brief || return
    local out=$MA_OUT/$name.stats
    cat "$out.out" "$out.err" >"$out.all"
    if [[ $(ma_rc "$name" stats) != 0 ]]; then
        fail "stress-ng exited $(ma_rc "$name" stats)" "$(tail -n 20 "$out.all")"
        return
    fi
    if grep -i fail "$out.all" >&2; then
        fail "stress-ng reported a failure"
        return
    fi
    grep -q 'successful run completed' "$out.all" || fail "no 'successful run completed'" || return
    done_ops=$(awk '$2 == "metrc:" && $4 == "malloc" { print $5 }' "$out.all")
    if [[ -z $done_ops ]] || ((done_ops < ops)); then
        fail "stress-ng did $done_ops of $ops bogo ops within its 20 s timeout" "$(cat "$out.all")"
        return
    fi
    # The parent exits normally: it prints memalloc's summary.
    assert_stats_line "$out.err"
}

@test "stress-ng: malloc stressor, 2 workers x 2 pthreads" {
    stress_run threads 100000 --malloc-pthreads 2
}

@test "stress-ng: malloc stressor, mmap threshold 4 KiB, touch and zero-on-free" {
    stress_run thresh 50000 --malloc-thresh 4096 --malloc-touch --malloc-zerofree
}

@test "stress-ng: malloc stressor, up to 1 MiB blocks" {
    stress_run big 20000 --malloc-bytes 1M --malloc-max 256
}
