#!/usr/bin/env bats
# The check modes on the misuse programs of tests/misuse: check_misuse
# KIND SIZE (C) and check_misuse_cxx KIND SIZE (the C++ operators) each
# misuse one block of SIZE bytes in one way, print the block's address
# and size first ("block=0x... size=N", and "bad=0x..." for the address
# they hand to free), and "went through" right after the misuse if they
# still run. Every kind runs at three sizes (24 bytes, 3000 bytes and
# 1 MiB + 24: in default mode, objects of two size classes and a mapped
# block) under MEMALLOC_CHECK=1 ("c1"), MEMALLOC_CHECK=2 ("c2"),
# and MEMALLOC_CHECK=2 MEMALLOC_CHECK_UNDER=1 ("c2u") where the layout of
# a guard slot matters (accesses out of bounds, blocks of 0 bytes, frees
# of addresses near a block); each run must end as the check mode
# promises (docs: src/debug.h, src/debug.c):
#   - the exit status: 134 (SIGABRT: an error found inside a call), 139
#     (SIGSEGV: a fault on a guard page, level 2), or 0 where the mode by
#     design does not see the misuse (said case by case below);
#   - the exact first line of stderr, its address computed from what the
#     program printed: "memalloc: ERROR: BUG on address 0x... in WHO()" or
#     "... (a write)" / "(a read)" for a fault;
#   - whether "went through" was printed (a report at exit comes after it);
#   - the stacks: the current call's (frame #0: the program's function
#     that called free, or that faulted), "allocated by:" naming
#     alloc_site, "freed by:" naming free_site (the programs are built at
#     -O0 with those functions not inlined).
# The quarantine has a fixed size (MEMALLOC_CHECK_QUARANTINE, see cm_exec)
# that holds every block the programs free.
#
# Cases whose misuse overwrote the block's header, where its allocation
# stack was (HEADER_LOST below): the report is checked in full but for
# the "allocated by:" stack, which must be absent (nothing made up).
# shellcheck disable=SC2154 # cm_* are set by cm_run and expect_for

load helpers

SIZES=(24 3000 1048600)

setup() {
    memalloc_setup
    CM_C=$MEMALLOC_BUILD/misuse/check_misuse
    CM_CXX=$MEMALLOC_BUILD/misuse/check_misuse_cxx
    [[ -x $CM_C ]] || fail "misuse program $CM_C not built (cmake --build $MEMALLOC_BUILD)"
    CM_ENV=() # more VAR=VALUE for cm_run
}

# "MODE KIND SIZE" of the cases whose misuse overwrote the block's
# header before memalloc could see it:
HEADER_LOST=(
    # an underflow of 32 bytes or more, found on free() where the guard
    # page is after the block: the header is the first thing it wrote over
    "c1 underflow-32 24" "c1 underflow-32 3000" "c1 underflow-32 1048600"
    "c1 underflow-memcpy-32 24" "c1 underflow-memcpy-32 3000" "c1 underflow-memcpy-32 1048600"
    "c2 underflow-32 24" "c2 underflow-32 3000" "c2 underflow-32 1048600"
    "c2 underflow-memcpy-32 24" "c2 underflow-memcpy-32 3000" "c2 underflow-memcpy-32 1048600"
    # with the guard page before the block, its header is at the end of
    # its slot: an overflow that runs to the end of the slot wrote over it
    # before it faulted
    "c2u overflow-1m 24" "c2u overflow-1m 3000" "c2u overflow-1m 1048600"
    "c2u overflow-memset-1m 24" "c2u overflow-memset-1m 3000" "c2u overflow-memset-1m 1048600"
)

header_lost() {
    local c
    for c in "${HEADER_LOST[@]}"; do [[ $c == "$*" ]] && return 0; done
    return 1
}

# cm_run MODE PROG KIND SIZE: run PROG KIND SIZE under MODE (c0: the
# library in default mode, c1, c2, c2u) and CM_ENV (more VAR=VALUE), and
# load what it did (cm_load). cm_exec and cm_load are its halves, so that
# check_kinds can run several cases at once.
cm_run() {
    cm_exec 0 "$@"
    cm_load 0 "$@"
}

# cm_exec ID MODE PROG KIND SIZE: the run, its output and exit status in
# $MA_OUT/cm.ID.{out,err,rc}.
cm_exec() {
    local id=$1 mode=$2 prog=$3 kind=$4 size=$5 rc=0
    local -a envs=("LD_PRELOAD=$MEMALLOC_LIB")
    case $mode in
    c0) ;;
    c1) envs+=(MEMALLOC_CHECK=1) ;;
    c2) envs+=(MEMALLOC_CHECK=2) ;;
    c2u) envs+=(MEMALLOC_CHECK=2 MEMALLOC_CHECK_UNDER=1) ;;
    *) envs+=("MEMALLOC_CHECK=bad mode $mode") ;; # cm_load fails it
    esac
    # A quarantine of a fixed size, that holds every block the programs
    # free (the largest, 1 MiB + 24 bytes, a few times over): what is
    # checked here is what the check modes find while a block is in
    # quarantine, not the policy that sizes it by default.
    [[ $mode == c0 ]] || envs+=(MEMALLOC_CHECK_QUARANTINE=16m)
    envs+=("${CM_ENV[@]}")
    # (a subshell that waits for the program: the shell's notice of its
    # signal goes to the subshell's stderr)
    (
        unset MEMALLOC_CHECK MEMALLOC_CHECK_UNDER MEMALLOC_CHECK_STACK MEMALLOC_CHECK_LEAKS \
            MEMALLOC_CHECK_QUARANTINE
        export "${envs[@]}"
        timeout -k 5 "$MA_TIMEOUT" "$prog" "$kind" "$size" \
            </dev/null >"$MA_OUT/cm.$id.out" 2>"$MA_OUT/cm.$id.err"
        exit $?
    ) 2>/dev/null || rc=$?
    echo "$rc" >"$MA_OUT/cm.$id.rc"
}

# cm_load ID MODE PROG KIND SIZE: sets cm_rc, cm_out, cm_err, cm_first
# (stderr's first line), cm_p and cm_n (the block), cm_bad, cm_other (as
# the program printed them; 0 if not), cm_what (for messages). Bash only:
# the file has some 300 cases.
cm_load() {
    local id=$1 mode=$2 prog=$3 kind=$4 size=$5 line
    cm_what="$mode: ${prog##*/} $kind $size${CM_ENV[*]:+ (${CM_ENV[*]})}"
    [[ $mode == c[012] || $mode == c2u ]] || fail "cm_run: bad mode $mode" || return
    read -r cm_rc <"$MA_OUT/cm.$id.rc"
    IFS= read -r -d '' cm_out <"$MA_OUT/cm.$id.out" || true
    IFS= read -r -d '' cm_err <"$MA_OUT/cm.$id.err" || true
    cm_out=${cm_out%$'\n'} cm_err=${cm_err%$'\n'}
    cm_first=${cm_err%%$'\n'*}
    cm_p=0 cm_n=0 cm_bad=0 cm_other=0
    while IFS= read -r line; do
        if [[ $line =~ ^block=(0x[0-9a-f]+)\ size=([0-9]+)$ ]]; then
            cm_p=${BASH_REMATCH[1]} cm_n=${BASH_REMATCH[2]}
        elif [[ $line =~ ^bad=(0x[0-9a-f]+)$ ]]; then
            cm_bad=${BASH_REMATCH[1]}
        elif [[ $line =~ ^other=(0x[0-9a-f]+) ]]; then
            cm_other=${BASH_REMATCH[1]}
        fi
    done <<<"$cm_out"
    if ((cm_rc == 124 || cm_rc == 137)); then
        fail "$cm_what: timed out"
        return
    fi
    if ((cm_rc == 2 || cm_rc == 3)); then
        fail "$cm_what: the program could not set up its misuse (exit $cm_rc):" "$cm_err"
        return
    fi
}

hex() { printf '0x%x' "$1"; }

# has_line TEXT LINE: TEXT has LINE as one of its lines.
has_line() { [[ $'\n'$1$'\n' == *$'\n'"$2"$'\n'* ]]; }

# stack_after LABEL: cm_stack gets the frames' function names (one a
# line; "?" for a frame without one) of the stack printed after the line
# LABEL of stderr (e.g. "freed by:"), or nothing.
stack_after() {
    local line found=0 re='^    #[0-9]+ 0x[0-9a-f]+( in ([^ ]+))? '
    cm_stack=""
    while IFS= read -r line; do
        if ((found)); then
            [[ $line =~ $re ]] || break
            cm_stack+="${BASH_REMATCH[2]:-?}"$'\n'
        elif [[ $line == "$1" ]]; then
            found=1
        fi
    done <<<"$cm_err"
    cm_stack=${cm_stack%$'\n'}
}

# expect_for MODE PROG KIND: what the check mode promises for the case
# just run (cm_*): e_status, e_bug ("" for no report), e_addr, e_who (the
# function named, for an error found in a call) or e_access ("write" or
# "read", for a fault), e_went (1: "went through" is printed: the mode
# sees nothing at the misuse, or reports it later, at exit), e_now (the
# function of the current stack's frame #0, or ""), e_alloc (the function
# that "allocated by:" names, or ""), e_free (the one "freed by:" names,
# or ""), e_crash_ok (1: a bare SIGSEGV before the misuse is complete,
# exit status 139 and no report, is right too: a wild write that may or
# may not meet unmapped memory first).
expect_for() {
    local mode=$1 prog=$2 kind=$3
    local p=$cm_p n=$cm_n
    e_status=134 e_bug="" e_extra="" e_addr="" e_who="" e_access="" e_went=0 e_now="" e_alloc=alloc_site
    e_free="" e_crash_ok=0
    # helpers: a report at a call, a fault, nothing
    call() { e_status=134 e_bug=$1 e_addr=$2 e_who=$3 e_now=${4:-}; }
    fault() { e_status=139 e_bug=$1 e_addr=$2 e_access=$3 e_now=${4:-}; }
    unseen() { e_status=0 e_bug="" e_went=1 e_alloc=""; }
    crash() { e_status=139 e_bug="" e_alloc=""; }
    # a report at exit, after "went through": the quarantine is verified
    at_exit() { e_status=134 e_bug=$1 e_addr=$2 e_who=exit e_went=1; }

    if [[ ${prog##*/} == check_misuse_cxx ]]; then
        case $kind in
        new-array-delete | new-array-free | delete-array-uaf) e_alloc=alloc_site_new_array ;;
        malloc-delete) e_alloc=alloc_site_malloc ;;
        *) e_alloc=alloc_site_new ;;
        esac
        local mis=alloc-dealloc-mismatch
        case $kind in
        new-array-delete)
            call $mis "$p" "operator delete" free_site_delete
            e_extra="(operator new [] vs operator delete)"
            ;;
        new-delete-array)
            call $mis "$p" "operator delete[]" free_site_delete_array
            e_extra="(operator new vs operator delete [])"
            ;;
        malloc-delete)
            call $mis "$p" "operator delete" free_site_delete
            e_extra="(malloc vs operator delete)"
            ;;
        new-free)
            call $mis "$p" free free_site_free
            e_extra="(operator new vs free)"
            ;;
        new-array-free)
            call $mis "$p" free free_site_free
            e_extra="(operator new [] vs free)"
            ;;
        sized-delete-wrong) call new-delete-type-mismatch "$p" "operator delete" free_site_delete_sized ;;
        delete-twice)
            call double-free "$p" "operator delete" free_site_delete_sized
            e_free=free_site_delete_sized
            ;;
        delete-array-uaf)
            e_free=free_site_delete_array
            if [[ $mode == c1 ]]; then at_exit heap-use-after-free "$p"; else fault heap-use-after-free "$p" write write_byte; fi
            ;;
        *) fail "expect_for: unknown kind $kind" ;;
        esac
        return 0
    fi

    local end=$((p + n)) ps=4096
    case $kind in
    overflow-1 | overflow-32 | overflow-memset-1 | overflow-memcpy-32 | overflow-1m | overflow-memset-1m)
        local now=free_site fnow=write_up
        [[ $kind == *mem* ]] && fnow="" # the fault is in libc's memset or memcpy
        case $mode in
        c1)
            call heap-buffer-overflow "$end" free $now
            # A mapped block: the write runs past the end of its mapping
            # where, as the process's mappings lie, it may fault before
            # free(); level 1 has no fault handler: a bare SIGSEGV.
            [[ $kind == *-1m && $n -gt 65536 ]] && e_crash_ok=1
            ;;
        c2) fault heap-buffer-overflow "$end" write $fnow ;;
        c2u)
            if [[ $kind == *-1m ]]; then
                # past the canary and the header: the end of the slot
                # (the block starts it: its size and header, rounded up
                # to pages), where the next pages of the guard stretch are
                local slot_end=$((p + (n + 32 + ps - 1) / ps * ps))
                fault heap-buffer-overflow "$slot_end" write $fnow
            else
                # the guard page is before the block: the canary after it
                # is checked by free()
                call heap-buffer-overflow "$end" free $now
            fi
            ;;
        esac
        ;;
    underflow-1 | underflow-memset-1 | underflow-32 | underflow-memcpy-32)
        # the first byte written: p - 1 (downwards), p - 32 (memcpy);
        # found on free() (the header is damaged) where the guard page is
        # after the block: the lowest damaged byte of the header
        local first=$((p - 1)) low=$((p - 1)) fnow=write_down
        [[ $kind == *-32 ]] && low=$((p - 16))
        [[ $kind == underflow-memcpy-32 ]] && first=$((p - 32))
        [[ $kind == *mem* ]] && fnow=""
        if [[ $mode == c2u ]]; then
            fault heap-buffer-underflow "$first" write $fnow
        else
            call heap-buffer-underflow "$low" free free_site
        fi
        ;;
    underflow-1m | underflow-memset-1m)
        if [[ $mode == c2u && $kind == underflow-1m ]]; then
            fault heap-buffer-underflow $((p - 1)) write write_down
        else
            # Level 1 and the guard after: the write runs down off the
            # heap region, the mapping, or the guard stretch (the block is
            # its first slot) before free() is reached; memset starts 1
            # MiB below the block, below the stretch: a fault in memory
            # that is not the allocator's, a bare SIGSEGV.
            crash
        fi
        ;;
    overread-1)
        # level 1 checks writes only; with the guard before, the byte
        # after the block is its canary
        case $mode in
        c2) fault heap-buffer-overflow "$end" read read_byte ;;
        *) unseen ;;
        esac
        ;;
    underread-1)
        # the byte before the block is its header, but with the guard before
        case $mode in
        c2u) fault heap-buffer-underflow $((p - 1)) read read_byte ;;
        *) unseen ;;
        esac
        ;;
    uaf-write | uaf-write-then-malloc | uaf-malloc-then-write | uaf-memset)
        e_free=free_site
        local fnow=write_up
        [[ $kind == uaf-memset ]] && fnow=""
        if [[ $mode == c1 && $kind == uaf-write-then-malloc ]]; then
            # the thread's next allocation looks at the first bytes of
            # the block it freed last
            call heap-use-after-free "$p" malloc alloc_site
        elif [[ $mode == c1 ]]; then
            # level 1 finds the write when the block leaves quarantine,
            # here at exit
            at_exit heap-use-after-free "$p"
        else
            fault heap-use-after-free "$p" write $fnow
        fi
        ;;
    uaf-read | uaf-read-reuse)
        e_free=free_site
        if [[ $mode == c1 ]]; then
            unseen # a read leaves the free fill as it is
        else
            fault heap-use-after-free "$p" read read_byte
        fi
        ;;
    zero-write | zero-read | zero-write-after-free | zero-read-after-free)
        # a block of 0 bytes: its byte 0 is past its end (its canary, or
        # the guard page after it), freed or not; with the guard before,
        # a freed block's slot is inaccessible
        local access=write fnow=write_up
        [[ $kind == zero-read* ]] && access=read fnow=read_byte
        case $mode.$kind in
        c1.zero-write) call heap-buffer-overflow "$p" free free_site ;;
        c1.zero-write-after-free) at_exit heap-buffer-overflow "$p" ;;
        c1.*) unseen ;;
        c2.*) fault heap-buffer-overflow "$p" $access $fnow ;;
        c2u.zero-write) call heap-buffer-overflow "$p" free free_site ;;
        c2u.zero-read) unseen ;;
        c2u.*)
            fault heap-use-after-free "$p" $access $fnow
            e_free=free_site
            ;;
        esac
        ;;
    double-free*)
        call double-free "$p" free free_site
        e_free=free_site
        ;;
    free-stack | free-alloca | free-global | free-far | free-near | free-unaligned | free-interior)
        call bad-free "$cm_bad" free free_site
        e_alloc=""
        ;;
    realloc-freed)
        call double-free "$p" realloc realloc_site
        e_free=free_site
        ;;
    usable-size-freed)
        call double-free "$p" malloc_usable_size run
        e_free=free_site
        ;;
    realloc-stale-shrink | realloc-stale-grow)
        # a check mode's realloc always moves: the old block is freed
        # (by realloc) and in quarantine
        e_free=realloc_site
        if [[ $mode == c1 ]]; then at_exit heap-use-after-free "$p"; else fault heap-use-after-free "$p" write write_up; fi
        ;;
    secret-visible | malloc-max | malloc-ptrdiff | calloc-overflow | realloc-max | memalign-huge)
        # refused: the program prints nothing of "went through"
        e_status=0 e_alloc=""
        ;;
    *) fail "expect_for: unknown kind $kind" ;;
    esac
    return 0
}

# check_expected [status-only]: the case just run (cm_*) against
# expect_for's e_*.
check_expected() {
    local what=$cm_what line
    if ((e_crash_ok && cm_rc == 139)) && [[ -z $cm_err && $'\n'$cm_out != *$'\nwent through'* ]]; then
        return 0 # the crash that may come first
    fi
    if [[ $cm_rc != "$e_status" ]]; then
        fail "$what: exit status $cm_rc, expected $e_status" "stdout: $cm_out" "stderr:" "$cm_err"
        return
    fi
    if ((e_went)); then
        has_line "$cm_out" "went through" || fail "$what: no 'went through' on stdout:" "$cm_out" || return
    else
        ! has_line "$cm_out" "went through" || fail "$what: 'went through' on stdout" "$cm_err" || return
    fi
    if [[ -z $e_bug ]]; then
        [[ $'\n'$cm_err != *$'\nmemalloc: '* ]] || fail "$what: a report where none was expected:" "$cm_err" || return
        return 0
    fi
    line="memalloc: ERROR: $e_bug${e_extra:+ $e_extra} on address $(hex "$e_addr")"
    if [[ -n $e_who ]]; then line+=" in $e_who()"; else line+=" (a $e_access)"; fi
    if [[ $cm_first != "$line" ]]; then
        fail "$what: first line of stderr:" "  $cm_first" "expected:" "  $line" \
            "(block $cm_p, $cm_n bytes; bad $cm_bad)" "$cm_err"
        return
    fi
    has_line "$cm_err" "SUMMARY: memalloc: $e_bug${e_who:+ in $e_who()}" ||
        fail "$what: no SUMMARY line for $e_bug:" "$cm_err" || return
    if [[ -n $e_now ]]; then
        # the current stack: the lines after the first
        local rest=${cm_err#*$'\n'} re='^    #0 0x[0-9a-f]+ in ([^ ]+) '
        [[ ${rest%%$'\n'*} =~ $re && ${BASH_REMATCH[1]} == "$e_now" ]] ||
            fail "$what: the current stack does not start in $e_now:" "$cm_err" || return
    fi
    if [[ ${1:-} == header-lost ]]; then
        [[ $'\n'$cm_err != *$'\nallocated by:'* ]] ||
            fail "$what: an 'allocated by:' stack from a header the misuse overwrote:" "$cm_err" ||
            return
    elif [[ -n $e_alloc ]]; then
        stack_after "allocated by:"
        [[ -n $cm_stack ]] || stack_after "previously allocated by:"
        [[ ${cm_stack%%$'\n'*} == "$e_alloc" ]] ||
            fail "$what: 'allocated by:' does not name $e_alloc:" "$cm_err" || return
    fi
    if [[ -n $e_free ]]; then
        stack_after "freed by:"
        [[ ${cm_stack%%$'\n'*} == "$e_free" ]] ||
            fail "$what: 'freed by:' does not name $e_free:" "$cm_err" || return
    fi
    return 0
}

# untraced CMD...: run CMD in a subshell without bats' DEBUG trap, which
# runs at every command and would make the loops over the cases several
# times slower than the programs they run (CMD reports its failures).
untraced() {
    (
        trap - DEBUG
        "$@"
    )
}

# check_kinds PROG MODES KIND...: every kind at every size (sized kinds;
# 0 for the others) under every mode (a space-separated list).
check_kinds() {
    untraced check_kinds_untraced "$@"
}
check_kinds_untraced() {
    local prog=$1 modes=$2 kind mode size sized c i
    shift 2
    local -a cases=()
    for kind in "$@"; do
        sized=$("$prog" --list | awk -v k="$kind" '$1 == k { print $2 }')
        [[ -n $sized ]] || fail "${prog##*/} has no kind $kind" || return
        local -a sizes=(0)
        [[ $sized == sized ]] && sizes=("${SIZES[@]}")
        for size in "${sizes[@]}"; do
            for mode in $modes; do cases+=("$mode $kind $size"); done
        done
    done
    # the runs, CM_JOBS (default: the number of CPUs) at a time
    local jobs=0 max=${CM_JOBS:-$(nproc)}
    for i in "${!cases[@]}"; do
        read -r mode kind size <<<"${cases[i]}"
        cm_exec "$i" "$mode" "$prog" "$kind" "$size" &
        if ((++jobs >= max)); then
            wait -n || true
            jobs=$((jobs - 1))
        fi
    done
    wait
    # the checks
    for i in "${!cases[@]}"; do
        read -r mode kind size <<<"${cases[i]}"
        cm_load "$i" "$mode" "$prog" "$kind" "$size" || return
        if is_standin; then
            continue # only that the program sets up its misuse
        fi
        expect_for "$mode" "$prog" "$kind" || return
        if header_lost "$mode" "$kind" "$size"; then
            check_expected header-lost || return
        else
            check_expected || return
        fi
    done
}

@test "check modes: overflows by 1 byte, by direct write and memset" {
    check_kinds "$CM_C" "c1 c2 c2u" overflow-1 overflow-memset-1
}

@test "check modes: overflows by 32 bytes, by direct writes and memcpy" {
    check_kinds "$CM_C" "c1 c2 c2u" overflow-32 overflow-memcpy-32
}

@test "check modes: overflows by 1 MiB, by direct writes and memset" {
    check_kinds "$CM_C" "c1 c2 c2u" overflow-1m overflow-memset-1m
}

@test "check modes: underflows by 1 and 32 bytes" {
    check_kinds "$CM_C" "c1 c2 c2u" underflow-1 underflow-memset-1 underflow-32 underflow-memcpy-32
}

@test "check modes: underflows by 1 MiB" {
    check_kinds "$CM_C" "c1 c2 c2u" underflow-1m underflow-memset-1m
}

@test "check modes: reads of the byte after and before a block" {
    check_kinds "$CM_C" "c1 c2 c2u" overread-1 underread-1
}

@test "check modes: writes after free, the block's size allocated again before or after" {
    check_kinds "$CM_C" "c1 c2" uaf-write uaf-write-then-malloc uaf-malloc-then-write uaf-memset
    is_standin && return 0
    # the quarantine keeps the freed block: the malloc of its size got another
    local mode
    for mode in c1 c2; do
        cm_run "$mode" "$CM_C" uaf-malloc-then-write 24
        [[ $cm_other != 0 && $cm_other != "$cm_p" ]] ||
            fail "$mode: the freed block was handed out again at once:" "$cm_out"
    done
}

@test "check modes: reads after free" {
    check_kinds "$CM_C" "c1 c2" uaf-read uaf-read-reuse
}

@test "check modes: blocks of 0 bytes, before and after free" {
    check_kinds "$CM_C" "c1 c2 c2u" zero-write zero-read zero-write-after-free zero-read-after-free
}

@test "check modes: double frees: immediate, delayed, interleaved, after a malloc of the size" {
    check_kinds "$CM_C" "c1 c2" double-free double-free-delayed double-free-interleaved \
        double-free-reuse
}

@test "check modes: free() of the stack, alloca, a global, a far address" {
    check_kinds "$CM_C" "c1 c2" free-stack free-alloca free-global free-far
}

@test "check modes: free() of p - 16, p + 1, p + 16" {
    check_kinds "$CM_C" "c1 c2 c2u" free-near free-unaligned free-interior
}

@test "check modes: realloc() and malloc_usable_size() of a freed block" {
    check_kinds "$CM_C" "c1 c2" realloc-freed usable-size-freed
}

@test "check modes: a stale pointer to a block realloc() shrank or grew" {
    check_kinds "$CM_C" "c1 c2" realloc-stale-shrink realloc-stale-grow
    is_standin && return 0
    # the check modes' realloc always moves
    local mode kind
    for mode in c1 c2; do
        for kind in realloc-stale-shrink realloc-stale-grow; do
            cm_run "$mode" "$CM_C" "$kind" 3000
            grep -q '^other=0x[0-9a-f]* moved$' <<<"$cm_out" ||
                fail "$mode $kind: realloc did not move the block:" "$cm_out"
        done
    done
}

@test "check modes: a freed block's bytes are not seen by the next malloc of its size" {
    # new blocks are filled (0xa5): nothing of the secret shows through
    check_kinds "$CM_C" "c1 c2" secret-visible
}

@test "impossible requests fail with ENOMEM, in default mode and the check modes" {
    check_kinds "$CM_C" "c0 c1 c2" malloc-max malloc-ptrdiff calloc-overflow realloc-max memalign-huge
}

@test "check modes: C++ new/delete mismatches and sized delete of a wrong size" {
    [[ -x $CM_CXX ]] || skip "no C++ program (built where CMake finds a C++ compiler)"
    check_kinds "$CM_CXX" "c1 c2" new-array-delete new-delete-array malloc-delete new-free \
        new-array-free sized-delete-wrong
}

@test "check modes: C++ delete twice, and a write after delete[]" {
    [[ -x $CM_CXX ]] || skip "no C++ program (built where CMake finds a C++ compiler)"
    check_kinds "$CM_CXX" "c1 c2" delete-twice delete-array-uaf
}

# Every kind of the programs is in some check_kinds command of this file.
kinds_covered() {
    local calls prog kind
    # the check_kinds commands, their continued lines joined
    calls=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$BATS_TEST_FILENAME" | grep -E '^ *check_kinds ')
    for prog in "$CM_C" "$CM_CXX"; do
        [[ -x $prog ]] || continue
        while read -r kind _; do
            [[ $calls =~ [[:space:]]$kind([[:space:]]|$) ]] ||
                fail "kind $kind of ${prog##*/} is in no test" || return
        done < <("$prog" --list)
    done
}

@test "check modes: every kind of both programs is covered by a test" {
    # a kind added to a program and to no test would go unchecked
    untraced kinds_covered
}

@test "check modes: MEMALLOC_CHECK_STACK=8: the stacks go up to main" {
    is_standin && skip "stand-in library: memalloc's reports not expected"
    [[ -e /usr/lib/x86_64-linux-gnu/libunwind.so.8 ]] || ls /usr/lib/*/libunwind.so.8 >/dev/null 2>&1 ||
        fail "libunwind.so.8 not installed (scripts/install-deps.sh installs it)"
    local mode
    for mode in c1 c2; do
        CM_ENV=(MEMALLOC_CHECK_STACK=8)
        cm_run "$mode" "$CM_C" double-free 3000
        CM_ENV=()
        expect_for "$mode" "$CM_C" double-free
        check_expected || return
        # allocated in alloc_site, called by new_block, by run, by main
        stack_after "previously allocated by:"
        [[ $cm_stack == $'alloc_site\nnew_block\nrun\nmain\n'* ]] ||
            fail "$mode: allocated by:" "$cm_stack" "expected alloc_site, new_block, run, main, ...:" "$cm_err"
        stack_after "freed by:"
        [[ $cm_stack == $'free_site\nrun\nmain\n'* ]] ||
            fail "$mode: freed by:" "$cm_stack" "expected free_site, run, main, ...:" "$cm_err"
    done
}

# check_leak_report LEVEL [VAR=VALUE...]: check_leaks, under
# MEMALLOC_CHECK=LEVEL, MEMALLOC_CHECK_LEAKS=1 and the variables, reports
# its leaks, largest first, with their stacks, and nothing else.
check_leak_report() {
    local level=$1 prog=$MEMALLOC_BUILD/misuse/check_leaks rc=0 err got want what
    shift
    what="level $level${*:+ ($*)}"
    [[ -x $prog ]] || fail "misuse program $prog not built" || return
    env -u MEMALLOC_CHECK_STACK -u MEMALLOC_CHECK_QUARANTINE LD_PRELOAD="$MEMALLOC_LIB" \
        MEMALLOC_CHECK="$level" MEMALLOC_CHECK_LEAKS=1 "$@" \
        "$prog" >"$MA_OUT/leaks.out" 2>"$MA_OUT/leaks.err" || rc=$?
    err=$(<"$MA_OUT/leaks.err")
    # leaks are reported, they are no error: the exit status is the program's
    [[ $rc == 0 ]] || fail "$what: exit status $rc" "$err" || return
    [[ $(<"$MA_OUT/leaks.out") == "done" ]] || fail "$what: stdout:" "$(<"$MA_OUT/leaks.out")" || return
    # the program's blocks only: it writes with write(2), and stdio's
    # buffer is never allocated
    [[ $(head -n 1 <<<"$err") == "memalloc: LEAKS: 5300 byte(s) in 4 block(s) not freed at exit, from 2 call stack(s)" ]] ||
        fail "$what: first line:" "$err" || return
    [[ $(tail -n 1 <<<"$err") == "SUMMARY: memalloc: 5300 byte(s) leaked in 4 allocation(s)." ]] ||
        fail "$what: last line:" "$err" || return
    # largest first, each followed by its stack, whose frame #0 is the
    # function that called malloc
    want=$(printf '%s\n' "Leak of 5000 byte(s) in 1 block(s) allocated from:" "leak_big" \
        "Leak of 300 byte(s) in 3 block(s) allocated from:" "leak_small")
    got=$(grep -v '^$' <<<"$err" | sed -n -e '/^Leak of/p' \
        -e 's/^    #0 0x[0-9a-f]* in \([^ ]*\) (.*check_leaks+0x[0-9a-f]*)$/\1/p')
    [[ $got == "$want" ]] || fail "$what: the leaks:" "$got" "expected:" "$want" "$err" || return
    ! grep -q not_leaked <<<"$err" || fail "$what: a freed block reported:" "$err" || return
}

@test "check modes: MEMALLOC_CHECK_LEAKS=1 reports the leaks, largest first, with their stacks" {
    is_standin && skip "stand-in library: memalloc's leak report not expected"
    check_leak_report 1
    check_leak_report 2
}

@test "check modes: the leak report with stacks of several frames lists no block of libunwind's loading" {
    is_standin && skip "stand-in library"
    # With stacks of more than one frame, the library opens libunwind at
    # start-up (dlopen): the dynamic loader's blocks for it are not the
    # program's, and must not be reported as its leaks.
    check_leak_report 1 MEMALLOC_CHECK_STACK=4
}
