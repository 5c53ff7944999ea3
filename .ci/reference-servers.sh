#!/usr/bin/env bash
# Reproduces issue 4's done-means comparisons against nginx (not run by CI: run it on a quiet
# machine with at least 2 cores, after `cargo build --release`):
#   1. concbench load vs wrk, against nginx (1 worker, `return 200`) on core 0, clients on core 1
#   2. concbench event-loop vs nginx 1 worker, both on core 0, wrk on core 1
#   3. concbench prefork 2 workers vs nginx 2 workers, both SO_REUSEPORT, servers unpinned,
#      wrk on core 1
# Each comparison runs 3 alternating pairs and prints each pair's ratio and the median.
# With PERF=1 it also prints syscalls per request of each server (perf stat on the
# syscalls:sys_enter_* tracepoints; needs perf and access to tracepoints).
# Needs: wrk, nginx-light (or any nginx), bc; perf for PERF=1.
# Env: DURATION (default 5s), CONNS (default 50), BIN (default target/release/concbench).
set -euo pipefail

DURATION=${DURATION:-5s}
CONNS=${CONNS:-50}
BIN=${BIN:-target/release/concbench}
PAIRS=3
for tool in wrk nginx bc taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: wrk, nginx-light, bc, util-linux)" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release first" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 cores" >&2; exit 2; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# nginx_conf WORKERS PORT REUSEPORT(0/1)
nginx_start() {
    local workers=$1 port=$2 reuse=$3 dir="$TMP/nginx-$2"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<CONF
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port$([ "$reuse" = 1 ] && echo " reuseport");
        location / { return 200 "ok\n"; }
    }
}
CONF
    local pin=()
    [ "$workers" = 1 ] && pin=(taskset -c 0)
    "${pin[@]}" nginx -c "$dir/nginx.conf" -p "$dir" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_port "$port"
}

# concbench_start PORT ARGS...
concbench_start() {
    local port=$1; shift
    "$@" --addr "127.0.0.1:$port" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_port "$port"
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

# Requests/s of wrk against PORT (clients on core 1); fails on any wrk error.
wrk_rps() {
    local out
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$1/")
    if grep -q -E "Non-2xx|Socket errors" <<<"$out"; then
        echo "wrk saw errors against port $1:" >&2; echo "$out" >&2; exit 1
    fi
    awk '/Requests\/sec/ {print $2}' <<<"$out"
}

load_rps() {
    taskset -c 1 "$BIN" load --target "127.0.0.1:$1" --connections "$CONNS" \
        --duration "$DURATION" --pin-cores 1 --json | awk -F'[:,]' '/"requests_per_sec"/ {gsub(/ /,"",$2); print $2; exit}'
}

# Syscalls per request of the processes listening on PORT (PERF=1 only).
syscalls_per_req() {
    local port=$1 label=$2 pids
    pids=$(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | paste -sd,)
    perf stat -x, -e 'syscalls:sys_enter_*' -p "$pids" -o "$TMP/perf" &
    local pp=$!
    sleep 0.3
    local out reqs
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d3s "http://127.0.0.1:$port/")
    kill -INT "$pp"; wait "$pp" || true
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "  syscalls per request, $label ($reqs requests):"
    awk -F, -v r="$reqs" '$1+0>0 {split($3,a,":"); n=a[2]; sub("sys_enter_","",n); t+=$1;
        printf "    %-16s %.3f\n", n, $1/r} END {printf "    %-16s %.3f\n", "total", t/r}' "$TMP/perf"
}

median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

# compare TITLE A_CMD B_CMD: A/B ratio over alternating pairs.
compare() {
    local title=$1 a=$2 b=$3 ratios=() ra rb r
    echo "== $title"
    for i in $(seq $PAIRS); do
        ra=$($a); rb=$($b)
        r=$(echo "scale=3; $ra / $rb" | bc)
        ratios+=("$r")
        echo "  pair $i: $ra vs $rb req/s -> ${r}x"
    done
    echo "  median: $(median "${ratios[@]}")x"
}

# 1. The generator against wrk, same nginx.
nginx_start 1 18101 0
compare "concbench load vs wrk, against nginx 1 worker (core 0), clients on core 1 (target >= 0.9x)" \
    "load_rps 18101" "wrk_rps 18101"

# 2. event-loop vs nginx 1 worker, both on core 0.
concbench_start 18102 taskset -c 0 "$BIN" serve --arch event-loop
compare "event-loop vs nginx 1 worker, both on core 0, wrk on core 1 (target >= 1.0x)" \
    "wrk_rps 18102" "wrk_rps 18101"
[ "${PERF:-0}" = 1 ] && { syscalls_per_req 18102 event-loop; syscalls_per_req 18101 "nginx 1 worker"; }

# 3. prefork 2 reuseport vs nginx 2 reuseport, unpinned.
nginx_start 2 18103 1
concbench_start 18104 "$BIN" serve --arch prefork --workers 2 --reuseport
compare "prefork 2 workers vs nginx 2 workers, SO_REUSEPORT, unpinned, wrk on core 1 (target >= 1.0x)" \
    "wrk_rps 18104" "wrk_rps 18103"
[ "${PERF:-0}" = 1 ] && { syscalls_per_req 18104 "prefork 2"; syscalls_per_req 18103 "nginx 2 workers"; }
exit 0
