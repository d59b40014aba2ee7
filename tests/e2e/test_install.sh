#!/bin/bash
# Install talon into a staging prefix, build the README's first app against
# it with pkg-config (shared and static), and check that the app serves.
set -euo pipefail

build=${TALON_BUILD:?TALON_BUILD is not set}
source=${TALON_SOURCE:?TALON_SOURCE is not set}
work=$(mktemp -d /tmp/talon-install-XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# A separate configure with the staging prefix, so the real build is untouched.
cmake -S "$source" -B "$work/build" -DCMAKE_INSTALL_PREFIX="$work/prefix" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALON_SANITIZE= >/dev/null
cmake --build "$work/build" -j "$(nproc)" --target talon_static talon_shared talon >/dev/null
cmake --install "$work/build" >/dev/null

prefix="$work/prefix"
libdir=$(ls -d "$prefix"/lib*/ | head -n1)
for f in include/talon/app.h include/talon/log.h include/talon/audit.h; do
    [ -f "$prefix/$f" ] || fail "$f was not installed"
done
[ -f "$libdir/libtalon.a" ] || fail "libtalon.a was not installed in $libdir"
ls "$libdir"/libtalon.so* >/dev/null 2>&1 || fail "libtalon.so was not installed in $libdir"
[ -x "$prefix/bin/talon" ] || fail "the talon command was not installed"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists talon || fail "pkg-config does not find talon.pc in $libdir/pkgconfig"

# The README's first app, taken from the README itself so the two cannot drift.
awk '/^```c$/ {inside=1; next} /^```$/ {if (inside) exit} inside' "$source/README.md" > "$work/app.c"
grep -q talon_app_serve "$work/app.c" || fail "no C example found in README.md"
# Make the example listen on the free port picked below (APP_LISTEN).
sed -i 's|talon_server_options_init(&opts);|talon_server_options_init(\&opts); opts.listen = getenv("APP_LISTEN");|' "$work/app.c"
sed -i '1i #include <stdlib.h>' "$work/app.c"

# shellcheck disable=SC2046
cc -Wall -Werror -o "$work/app-shared" "$work/app.c" $(pkg-config --cflags --libs talon) -Wl,-rpath,"$libdir"
# libtalon.a itself, with its dependencies linked as shared libraries (a fully
# static link would need static builds of GnuTLS and friends).
# shellcheck disable=SC2046
cc -Wall -Werror -o "$work/app-static" "$work/app.c" $(pkg-config --cflags talon) \
   "$libdir/libtalon.a" $(pkg-config --libs libmicrohttpd jansson inih libcrypto zlib) -lpthread

for app in app-shared app-static; do
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    APP_LISTEN="127.0.0.1:$port" "$work/$app" > "$work/$app.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.05
    done
    body=$(curl -s -H 'X-Token: t' "http://127.0.0.1:$port/notes/7")
    [ "$body" = '{"id": 7}' ] || [ "$body" = '{"id":7}' ] || fail "$app: GET /notes/7 returned '$body'"
    status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/notes/7")
    [ "$status" = 401 ] || fail "$app: GET without X-Token returned $status, expected 401"
    kill -TERM "$pid"
    wait "$pid" || fail "$app: exited with $? after SIGTERM, expected 0"
    pid=""
done
echo "install, pkg-config and the README example work (shared and static)"
