#!/usr/bin/env bats
# memalloc as a dependency: `cmake --install` into a temporary prefix, then
# tests/consumer built against it through pkg-config (memalloc.pc) and
# through CMake (find_package(memalloc), memalloc::memalloc), run, and
# checked to be served by the installed libmemalloc.so. Nothing is
# installed outside $BATS_TEST_TMPDIR.

load helpers

setup() {
    memalloc_setup
    is_standin && skip "stand-in library: the package is memalloc's build"
    T=$BATS_TEST_TMPDIR
    CONSUMER=$MA_ROOT/tests/consumer
    MA_VERSION=$(sed -n 's/^project(memalloc VERSION \([0-9.]*\).*/\1/p' "$MA_ROOT/CMakeLists.txt")
    [[ -n $MA_VERSION ]] || fail "no project version in $MA_ROOT/CMakeLists.txt"
    command -v pkg-config >/dev/null ||
        fail "pkg-config not installed (scripts/install-deps.sh installs it)"
    unset PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR CMAKE_PREFIX_PATH DESTDIR
}

# cache_var BUILD NAME: the value of NAME in BUILD's CMakeCache.txt.
cache_var() { sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt"; }

# pkg_install BUILD PREFIX [ARGS...]: cmake --install BUILD ARGS..., where
# PREFIX is where the files land; sets LIBDIR and INCDIR there. The build's
# install directories must be relative, so that nothing lands outside.
pkg_install() {
    local build=$1 prefix=$2 libdir incdir
    shift 2
    libdir=$(cache_var "$build" CMAKE_INSTALL_LIBDIR)
    incdir=$(cache_var "$build" CMAKE_INSTALL_INCLUDEDIR)
    [[ -n $libdir && $libdir != /* && -n $incdir && $incdir != /* ]] ||
        fail "$build installs to absolute directories ($libdir, $incdir): not under a test prefix" ||
        return
    run cmake --install "$build" "$@"
    [[ $status -eq 0 ]] || fail "cmake --install $build $* failed:" "$output" || return
    LIBDIR=$prefix/$libdir
    INCDIR=$prefix/$incdir
}

# assert_consumer OUTPUT LIBDIR: the consumer's output says that it was
# served by LIBDIR's libmemalloc.so (its memalloc() and its malloc()) and
# that its checks passed.
assert_consumer() {
    local out=$1 lib api malloc
    local -a lines
    lib=$(realpath "$2/libmemalloc.so")
    mapfile -t lines <<<"$out"
    [[ ${#lines[@]} -eq 4 && ${lines[0]} == "memalloc: "* && ${lines[1]} == "malloc: "* &&
        ${lines[2]} =~ ^engine:\ ([0-9]+)\ allocations,\ ([0-9]+)\ frees,\ 0\ violations$ &&
        ${lines[3]} == "consumer: ok" ]] || fail "unexpected consumer output:" "$out" || return
    ((BASH_REMATCH[1] > 64 && BASH_REMATCH[2] > 64)) ||
        fail "the engine counted too few calls:" "$out" || return
    api=${lines[0]#memalloc: }
    malloc=${lines[1]#malloc: }
    [[ $(realpath "$api") == "$lib" ]] ||
        fail "memalloc() came from $api, not the installed $lib" || return
    [[ $(realpath "$malloc") == "$lib" ]] ||
        fail "malloc() came from $malloc, not the installed $lib"
}

# assert_linked PROGRAM LIBDIR: ldd resolves PROGRAM's libmemalloc to LIBDIR's.
assert_linked() {
    local soname
    soname=$(readelf -d "$2/libmemalloc.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    run ldd "$1"
    [[ $status -eq 0 ]] || fail "ldd $1 failed:" "$output" || return
    grep -qF "$soname => $2/$soname " <<<"$output" ||
        fail "$1 does not load $2/$soname:" "$output"
}

# build_with_pkg_config OUT [CC ARGS...]: compile tests/consumer/main.c with
# the flags pkg-config gives for memalloc (PKG_CONFIG_PATH set by the caller).
build_with_pkg_config() {
    local out=$1 flags
    shift
    flags=$(pkg-config --cflags --libs memalloc) || fail "pkg-config --cflags --libs failed" || return
    # shellcheck disable=SC2086 # flags: pkg-config's words
    run "${CC:-cc}" -Wall -Wextra -Werror -o "$out" "$CONSUMER/main.c" $flags "$@"
    [[ $status -eq 0 ]] || fail "compiling the consumer with pkg-config's flags failed:" "$output"
}

# build_with_cmake PREFIX BUILD: configure and build tests/consumer against
# the package installed at PREFIX; its memalloc_DIR must be PREFIX's.
build_with_cmake() {
    run cmake -S "$CONSUMER" -B "$2" -DCMAKE_PREFIX_PATH="$1"
    [[ $status -eq 0 ]] || fail "configuring the consumer failed:" "$output" || return
    grep -qF -- "-- memalloc $MA_VERSION from $LIBDIR/cmake/memalloc" <<<"$output" ||
        fail "find_package did not find memalloc $MA_VERSION in $LIBDIR/cmake/memalloc:" \
            "$output" || return
    run cmake --build "$2"
    [[ $status -eq 0 ]] || fail "building the consumer failed:" "$output"
}

@test "package: cmake --install puts the library, its SONAME link, the header, memalloc.pc and the CMake package" {
    local p=$T/prefix soname f
    pkg_install "$MEMALLOC_BUILD" "$p" --prefix "$p"
    local real=$LIBDIR/libmemalloc.so.$MA_VERSION
    [[ -f $real && ! -L $real ]] || fail "not installed as a file: $real" "$(ls -l "$LIBDIR")"
    cmp -s "$MEMALLOC_BUILD/libmemalloc.so.$MA_VERSION" "$real" ||
        fail "$real differs from the build's library"
    soname=$(readelf -d "$real" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
    [[ $soname =~ ^libmemalloc\.so\.[0-9]+$ ]] || fail "unexpected SONAME: '$soname'"
    [[ $(readlink "$LIBDIR/$soname") == "libmemalloc.so.$MA_VERSION" ]] ||
        fail "$LIBDIR/$soname is not a link to libmemalloc.so.$MA_VERSION" "$(ls -l "$LIBDIR")"
    [[ $(readlink "$LIBDIR/libmemalloc.so") == "$soname" ]] ||
        fail "$LIBDIR/libmemalloc.so is not a link to $soname" "$(ls -l "$LIBDIR")"
    cmp -s "$MA_ROOT/include/memalloc.h" "$INCDIR/memalloc.h" ||
        fail "$INCDIR/memalloc.h missing or not include/memalloc.h"
    [[ -f $LIBDIR/pkgconfig/memalloc.pc ]] || fail "no $LIBDIR/pkgconfig/memalloc.pc"
    for f in memalloc-config.cmake memalloc-config-version.cmake memalloc-targets.cmake; do
        [[ -f $LIBDIR/cmake/memalloc/$f ]] || fail "no $LIBDIR/cmake/memalloc/$f"
    done
    # Not installed: the static archive (the tests' engine) and the tests.
    run find "$p" -name '*.a' -o -name 'test_*' -o -name 'contract_*'
    [[ -z $output ]] || fail "installed but not meant to be:" "$output"
    # memalloc.pc and the CMake files name no directory of the build or source tree.
    run grep -rlF -e "$MEMALLOC_BUILD" -e "$MA_ROOT/" "$LIBDIR/cmake/memalloc" "$LIBDIR/pkgconfig"
    [[ -z $output ]] || fail "the package names the build or source tree:" "$output"
}

@test "package: memalloc.pc gives the install's prefix (not the configured one) and the project's version" {
    local p=$T/prefix got
    local configured
    configured=$(cache_var "$MEMALLOC_BUILD" CMAKE_INSTALL_PREFIX)
    [[ -n $configured && $configured != "$p" ]] || fail "configured prefix: '$configured'"
    pkg_install "$MEMALLOC_BUILD" "$p" --prefix "$p"
    export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
    run pkg-config --modversion memalloc
    [[ $status -eq 0 && $output == "$MA_VERSION" ]] ||
        fail "pkg-config --modversion: '$output' (status $status), project version $MA_VERSION"
    run pkg-config --variable=prefix memalloc
    [[ $output == "$p" ]] || fail "prefix=$output, installed to $p (configured: $configured)"
    run pkg-config --cflags memalloc
    read -r got <<<"$output"
    [[ $got == "-I$INCDIR" ]] || fail "pkg-config --cflags: '$got', expected -I$INCDIR"
    run pkg-config --libs memalloc
    read -r got <<<"$output"
    [[ $got == "-L$LIBDIR -lmemalloc" ]] ||
        fail "pkg-config --libs: '$got', expected -L$LIBDIR -lmemalloc"
    run pkg-config --atleast-version "$MA_VERSION" memalloc
    [[ $status -eq 0 ]] || fail "pkg-config --atleast-version $MA_VERSION: false"
    run pkg-config --atleast-version "$((${MA_VERSION%%.*} + 1)).0" memalloc
    [[ $status -ne 0 ]] || fail "pkg-config --atleast-version $((${MA_VERSION%%.*} + 1)).0: true"
}

@test "package: a program built with pkg-config's flags runs on the installed library" {
    local p=$T/prefix
    pkg_install "$MEMALLOC_BUILD" "$p" --prefix "$p"
    export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
    build_with_pkg_config "$T/consumer" -Wl,-rpath,"$(pkg-config --variable=libdir memalloc)"
    assert_linked "$T/consumer" "$LIBDIR"
    run "$T/consumer"
    [[ $status -eq 0 ]] || fail "consumer exited $status:" "$output"
    assert_consumer "$output" "$LIBDIR"
    # Without a run path: LD_LIBRARY_PATH chooses the library, and the
    # consumer names the one it got (the build's, then the installed one).
    build_with_pkg_config "$T/consumer-norpath"
    run env LD_LIBRARY_PATH="$MEMALLOC_BUILD" "$T/consumer-norpath"
    [[ $status -eq 0 ]] || fail "consumer on the build's library exited $status:" "$output"
    assert_consumer "$output" "$MEMALLOC_BUILD"
    run env LD_LIBRARY_PATH="$LIBDIR" "$T/consumer-norpath"
    [[ $status -eq 0 ]] || fail "consumer on the installed library exited $status:" "$output"
    assert_consumer "$output" "$LIBDIR"
}

@test "package: find_package(memalloc) and memalloc::memalloc build a program that runs on the installed library" {
    local p=$T/prefix
    pkg_install "$MEMALLOC_BUILD" "$p" --prefix "$p"
    build_with_cmake "$p" "$T/consumer-build"
    assert_linked "$T/consumer-build/consumer" "$LIBDIR"
    run "$T/consumer-build/consumer"
    [[ $status -eq 0 ]] || fail "consumer exited $status:" "$output"
    assert_consumer "$output" "$LIBDIR"
}

@test "package: find_package(memalloc VERSION) accepts this version and refuses the next major" {
    local p=$T/prefix next=$((${MA_VERSION%%.*} + 1)).0
    pkg_install "$MEMALLOC_BUILD" "$p" --prefix "$p"
    mkdir -p "$T/want"
    cat >"$T/want/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.25)
project(want NONE)
find_package(memalloc ${WANT} REQUIRED) # WANT: a version, and EXACT or not
message(STATUS "found memalloc ${memalloc_VERSION}")
EOF
    run cmake -S "$T/want" -B "$T/want/exact" -DCMAKE_PREFIX_PATH="$p" -DWANT="$MA_VERSION;EXACT"
    [[ $status -eq 0 && $output == *"found memalloc $MA_VERSION"* ]] ||
        fail "find_package(memalloc $MA_VERSION EXACT) failed:" "$output"
    run cmake -S "$T/want" -B "$T/want/next" -DCMAKE_PREFIX_PATH="$p" -DWANT="$next"
    [[ $status -ne 0 && $output == *"$MA_VERSION"* ]] ||
        fail "find_package(memalloc $next) did not fail naming $MA_VERSION:" "$output"
}

@test "package: a tree configured for one prefix installs there, to another with --prefix, and under DESTDIR" {
    # A build of the library alone, with a prefix and directories of its
    # own: the library directory a distribution's /usr has (lib/<multiarch>
    # on Debian, which find_package searches; lib64 elsewhere).
    local b=$T/build conf=$T/configured moved=$T/moved stage=$T/stage got libdir
    libdir=$("${CC:-cc}" -print-multiarch 2>/dev/null) || true
    libdir=${libdir:+lib/$libdir}
    libdir=${libdir:-lib64}
    run cmake -S "$MA_ROOT" -B "$b" -DMEMALLOC_TESTS=OFF -DMEMALLOC_WERROR=ON \
        -DCMAKE_INSTALL_PREFIX="$conf" -DCMAKE_INSTALL_LIBDIR="$libdir" \
        -DCMAKE_INSTALL_INCLUDEDIR=include/memalloc
    [[ $status -eq 0 ]] || fail "configuring failed:" "$output"
    run cmake --build "$b" -j"$(nproc)"
    [[ $status -eq 0 ]] || fail "building failed:" "$output"

    # The configured prefix.
    pkg_install "$b" "$conf"
    [[ $LIBDIR == "$conf/$libdir" && -f $LIBDIR/libmemalloc.so && -f $conf/include/memalloc/memalloc.h ]] ||
        fail "not installed under $conf/$libdir and $conf/include/memalloc:" "$(find "$conf")"
    grep -qx "prefix=$conf" "$LIBDIR/pkgconfig/memalloc.pc" ||
        fail "memalloc.pc's prefix is not $conf:" "$(cat "$LIBDIR/pkgconfig/memalloc.pc")"
    export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
    build_with_pkg_config "$T/consumer" -Wl,-rpath,"$LIBDIR"
    run "$T/consumer"
    [[ $status -eq 0 ]] || fail "consumer exited $status:" "$output"
    assert_consumer "$output" "$LIBDIR"

    # Another prefix, at install time: both packages follow it.
    pkg_install "$b" "$moved" --prefix "$moved"
    grep -qx "prefix=$moved" "$LIBDIR/pkgconfig/memalloc.pc" ||
        fail "memalloc.pc's prefix is not $moved:" "$(cat "$LIBDIR/pkgconfig/memalloc.pc")"
    run env PKG_CONFIG_PATH="$LIBDIR/pkgconfig" pkg-config --cflags --libs memalloc
    read -r got <<<"$output"
    [[ $got == "-I$moved/include/memalloc -L$moved/$libdir -lmemalloc" ]] ||
        fail "pkg-config for $moved: '$got'"
    build_with_cmake "$moved" "$T/consumer-build"
    run "$T/consumer-build/consumer"
    [[ $status -eq 0 ]] || fail "consumer exited $status:" "$output"
    assert_consumer "$output" "$moved/$libdir"
    # The first install is as it was.
    grep -qx "prefix=$conf" "$conf/$libdir/pkgconfig/memalloc.pc" ||
        fail "installing to $moved changed $conf's memalloc.pc"

    # DESTDIR: the files are staged, and memalloc.pc names their final place.
    export DESTDIR=$stage
    pkg_install "$b" "$stage$conf"
    unset DESTDIR
    grep -qx "prefix=$conf" "$LIBDIR/pkgconfig/memalloc.pc" ||
        fail "staged memalloc.pc's prefix is not $conf:" "$(cat "$LIBDIR/pkgconfig/memalloc.pc")"
    [[ -f $LIBDIR/libmemalloc.so && -f $LIBDIR/cmake/memalloc/memalloc-config.cmake ]] ||
        fail "not staged under $LIBDIR:" "$(find "$stage")"
}
