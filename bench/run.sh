#!/usr/bin/env bash
# mtfu benchmark harness: request rates with wrk, one large upload, and memory under many
# concurrent large uploads. Loopback traffic only; every step is bounded in time.
#
# Usage: bench/run.sh
# Environment (all optional):
#   MTFU_BIN       server binary to use (default: build into $CARGO_TARGET_DIR or /tmp/bench-target)
#   DURATION       seconds per wrk run (default 10)
#   THREADS        wrk threads (default 2)
#   CONNECTIONS    wrk connections (default 16)
#   PORT           loopback port for the server (default 18443)
#   BIG_MIB        size of the single large upload in MiB (default 1024)
#   PAR_UPLOADS    number of concurrent large uploads (default 16)
#   PAR_MIB        size of each concurrent upload in MiB (default 100)
#   KEEP_TMP=1     keep the temp dir (data dir, server log) for inspection
# With h2load installed (Debian's nghttp2-client), the concurrent uploads run a second time over
# HTTP/2 from h2load, a client that waits for window updates: curl 7.88 busy-polls instead.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"

DURATION="${DURATION:-10}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
PORT="${PORT:-18443}"
METRICS_PORT="${METRICS_PORT:-19898}"
BIG_MIB="${BIG_MIB:-1024}"
PAR_UPLOADS="${PAR_UPLOADS:-16}"
PAR_MIB="${PAR_MIB:-100}"
HOST=127.0.0.1
BASE="https://$HOST:$PORT"

die() { echo "bench: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    die "wrk is not installed: run 'apt-get install -y wrk' (Debian package) and retry"
fi
for t in curl awk head timeout; do
    command -v "$t" >/dev/null 2>&1 || die "$t is required"
done

# ---------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------
echo "== machine"
echo "cpus:   $(nproc)"
echo "model:  $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "memory: $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "kernel: $(uname -r)"
echo "wrk:    $(wrk --version 2>&1 | head -1 | awk '{print $1, $2}')"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; other work on the box skews results)"
echo

# ---------------------------------------------------------------------------------------------
# Binary
# ---------------------------------------------------------------------------------------------
if [[ -n "${MTFU_BIN:-}" ]]; then
    BIN="$MTFU_BIN"
else
    TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/bench-target}"
    echo "== building release binary into $TARGET_DIR"
    (cd "$REPO_DIR" && CARGO_TARGET_DIR="$TARGET_DIR" timeout 1800 cargo build --release --quiet) \
        || die "release build failed"
    BIN="$TARGET_DIR/release/mtfu"
fi
[[ -x "$BIN" ]] || die "no executable at $BIN"

# ---------------------------------------------------------------------------------------------
# Temp dir, server, cleanup
# ---------------------------------------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/mtfu-bench.XXXXXX")"
DATA="$TMP/data"
LOG="$TMP/server.log"
mkdir -p "$DATA"
SERVER_PID=""
SAMPLER_PID=""

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$SAMPLER_PID" ]]; then kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; fi
    stop_server
    # Stray upload jobs of this script (background curls), by their own ids.
    for j in $(jobs -p); do kill "$j" 2>/dev/null; done
    if [[ $rc -ne 0 && -f "$LOG" ]]; then
        echo "bench: failed (exit $rc); last server log lines:" >&2
        grep -v "Illegal SNI extension" "$LOG" | tail -n 20 >&2
    fi
    if [[ "${KEEP_TMP:-0}" == 1 ]]; then
        echo "bench: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() {
    echo "== starting $BIN on $HOST:$PORT (data dir $DATA)"
    (
        cd "$TMP"
        exec env -u MTFU_CONFIG -u MTFU_BIN \
            MTFU_SERVER__LISTEN="$HOST:$PORT" \
            MTFU_SERVER__METRICS_LISTEN="$HOST:$METRICS_PORT" \
            MTFU_SERVER__DATA_DIR="$DATA" \
            MTFU_LIMITS__MAX_FILE_SIZE=$((2 * 1024 * 1024 * 1024)) \
            MTFU_LOG="${MTFU_LOG:-warn}" \
            "$BIN" serve --init-data
    ) >>"$LOG" 2>&1 &
    SERVER_PID=$!
    local ready=0
    for _ in $(seq 1 300); do   # up to 30 s
        kill -0 "$SERVER_PID" 2>/dev/null || die "server exited during start-up"
        if curl -ksf --max-time 2 "$BASE/healthz" >/dev/null 2>&1; then ready=1; break; fi
        sleep 0.1
    done
    [[ $ready == 1 ]] || die "server did not answer /healthz within 30 s"
}

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
server_cpu() { # user+system CPU seconds of the server so far
    awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$SERVER_PID/stat"
}

children_cpu() { # user+system CPU seconds of this script's waited-for children (the clients)
    awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($14 + $15) / hz }' "/proc/$$/stat"
}

rss_line() { # VmRSS and VmHWM of the server, in MiB
    awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END { printf "VmRSS %.1f MiB, VmHWM %.1f MiB", r / 1024, h / 1024 }' \
        "/proc/$SERVER_PID/status"
}

start_server

CURL=(curl -ks --max-time 30)

get_token() { # username -> access token
    "${CURL[@]}" -X POST -H 'Content-Type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"test\"}" "$BASE/api/token/" \
        | sed -n 's/.*"access"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p'
}
TOKEN="$(get_token john1)"
[[ -n "$TOKEN" ]] || die "could not get an access token for john1"
export BENCH_TOKEN="$TOKEN"
export BENCH_RUN_ID="$$"

metric() { # name -> value from /metrics on the metrics listener (first sample, no labels)
    # awk reads to the end: exiting at the match closed the pipe under curl, which then failed
    # with exit 23 (a write error) whenever the page outgrew the pipe's buffer (pipefail).
    "${CURL[@]}" "http://$HOST:$METRICS_PORT/metrics" | awk -v m="$1" '$1 == m && !found {print $2; found = 1}'
}

server_alive() { kill -0 "$SERVER_PID" 2>/dev/null || die "server process died (see log)"; }

# ---------------------------------------------------------------------------------------------
# 1. Request rates with wrk
# ---------------------------------------------------------------------------------------------
# Seed 20 files under product/1 for the listing benchmark.
SMALL="$TMP/small.bin"
head -c 10240 /dev/urandom >"$SMALL"
for i in $(seq 1 20); do
    code=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -F "file=@$SMALL;filename=seed-$i.bin" -F resource=product -F resource_id=1 \
        "$BASE/api/upload")
    [[ "$code" == 200 ]] || die "seed upload $i answered HTTP $code"
done

# Convert a wrk latency ("812.00us", "1.23ms", "2.01s", "1.5m") to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
        else { printf "?" }
    }'
}

ROWS=()
run_wrk() { # label script path
    local label="$1" script="$2" path="$3" out
    out="$TMP/wrk-$(echo "$label" | tr -c 'a-zA-Z0-9' '_').txt"
    echo "   wrk: $label (${DURATION}s, $THREADS threads, $CONNECTIONS connections)"
    timeout $((DURATION + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
        --latency -s "$BENCH_DIR/$script" "$BASE$path" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed for $label"; }
    server_alive
    local rps p50 p99 reqs non2xx sockerr
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2; exit}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2; exit}' "$out")")
    reqs=$(awk '/requests in/ {print $1; exit}' "$out")
    non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2; exit}' "$out")
    sockerr=$(awk '/Socket errors:/ {
        s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { gsub(/,/, "", $i); s += $i } print s; exit }' "$out")
    [[ -n "$rps" ]] || { cat "$out" >&2; die "could not parse wrk output for $label"; }
    ROWS+=("$(printf '%-34s %10s %10s %10s %9s %8s %8s' \
        "$label" "$rps" "$p50" "$p99" "${reqs:-?}" "${non2xx:-0}" "${sockerr:-0}")")
}

echo "== request rates"
run_wrk "POST /api/token/" token.lua /api/token/
run_wrk "POST /api/upload (10 KiB)" upload.lua /api/upload
run_wrk "GET /api/files/product/1 (20)" get.lua /api/files/product/1
visible=$("${CURL[@]}" -H "Authorization: Bearer $TOKEN" "$BASE/api/list_files" \
    | sed -n 's/.*"count"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p')
run_wrk "GET /api/list_files (${visible:-?})" get.lua /api/list_files
RSS_AFTER_WRK="$(rss_line)"

# Fresh server process (same data) so the upload phases' memory is their own.
stop_server
start_server
RSS_FRESH="$(rss_line)"

# ---------------------------------------------------------------------------------------------
# 2. One large upload
# ---------------------------------------------------------------------------------------------
echo "== single ${BIG_MIB} MiB upload"
BIG="$TMP/big.bin"
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$BIG"
cpu0=$(server_cpu)
read -r big_code big_time big_size < <(curl -ks --max-time 900 -o "$TMP/big.out" \
    -w '%{http_code} %{time_total} %{size_upload}\n' -H "Authorization: Bearer $TOKEN" \
    -F "file=@$BIG;filename=big.bin" -F resource=big -F resource_id=1 "$BASE/api/upload" || true)
server_alive
big_cpu=$(awk -v a="$cpu0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
[[ "${big_code:-000}" == 200 ]] || { cat "$TMP/big.out" >&2 || true; die "large upload answered HTTP ${big_code:-none}"; }
BIG_LINE=$(awk -v t="$big_time" -v s="$big_size" -v m="$BIG_MIB" \
    -v c="$big_cpu" \
    'BEGIN { printf "%d MiB upload: %.2f s, %.1f MB/s (%.1f MiB/s), server CPU %.2f s", m, t, s / t / 1e6, s / t / 1048576, c }')
hw_after_big=$(metric mtfu_buffer_bytes_high_water)

# ---------------------------------------------------------------------------------------------
# 3. Concurrent large uploads, memory
# ---------------------------------------------------------------------------------------------
echo "== ${PAR_UPLOADS} concurrent ${PAR_MIB} MiB uploads"
PAR="$TMP/par.bin"
head -c $((PAR_MIB * 1024 * 1024)) "$BIG" >"$PAR" 2>/dev/null || head -c $((PAR_MIB * 1024 * 1024)) /dev/urandom >"$PAR"
rm -f "$BIG"
rss_before=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
# Reset VmHWM so it covers this phase only (Linux >= 4.0; ignored if not permitted).
hwm_reset=0
if echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null; then hwm_reset=1; fi

RSS_FILE="$TMP/rss.max"
echo 0 >"$RSS_FILE"
(
    max=0
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        v=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
        if [[ -n "$v" && "$v" -gt "$max" ]]; then max=$v; echo "$max" >"$RSS_FILE"; fi
        sleep 0.1
    done
) &
SAMPLER_PID=$!

cpu0=$(server_cpu)
ccpu0=$(children_cpu)
par_start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$PAR_UPLOADS"); do
    curl -ks --max-time 900 -o "$TMP/par-$i.out" -w '%{http_code}' \
        -H "Authorization: Bearer $TOKEN" \
        -F "file=@$PAR;filename=par-$i.bin" -F resource=par -F resource_id="$i" \
        "$BASE/api/upload" >"$TMP/par-$i.code" 2>&1 &
    pids+=($!)
done
par_fail=0
for p in "${pids[@]}"; do wait "$p" || par_fail=$((par_fail + 1)); done
par_end=$(date +%s.%N)
par_cpu=$(awk -v a="$cpu0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
par_ccpu=$(awk -v a="$ccpu0" -v b="$(children_cpu)" 'BEGIN { printf "%.2f", b - a }')
sleep 0.3
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
server_alive

par_non200=0
for i in $(seq 1 "$PAR_UPLOADS"); do
    code=$(cat "$TMP/par-$i.code" 2>/dev/null || echo none)
    if [[ "$code" != 200 ]]; then
        par_non200=$((par_non200 + 1))
        echo "   upload $i: HTTP $code $(head -c 300 "$TMP/par-$i.out" 2>/dev/null || true)" >&2
    fi
done
rss_peak_kib=$(cat "$RSS_FILE")
hwm_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
hw_final=$(metric mtfu_buffer_bytes_high_water)

# The same uploads over HTTP/2 from h2load (nghttp2's load client), which waits for window
# updates where curl 7.88 spins: with both on the same two cores, the curl row above also
# measures that spinning (the client CPU it prints).
H2LOAD_LINE="h2load not installed (apt-get install nghttp2-client): no second HTTP/2 row"
if command -v h2load >/dev/null 2>&1; then
    echo "== ${PAR_UPLOADS} concurrent ${PAR_MIB} MiB uploads from h2load"
    FORM="$TMP/par.form"
    BOUNDARY="mtfu-bench-boundary-$$"
    {
        cd_='Content-Disposition: form-data; name='
        printf -- '--%s\r\n%s"resource"\r\n\r\nh2load\r\n' "$BOUNDARY" "$cd_"
        printf -- '--%s\r\n%s"resource_id"\r\n\r\n1\r\n' "$BOUNDARY" "$cd_"
        printf -- '--%s\r\n%s"file"; filename="par.bin"\r\n' "$BOUNDARY" "$cd_"
        printf 'Content-Type: application/octet-stream\r\n\r\n'
        cat "$PAR"
        printf -- '\r\n--%s--\r\n' "$BOUNDARY"
    } >"$FORM"
    cpu0=$(server_cpu)
    ccpu0=$(children_cpu)
    h2_start=$(date +%s.%N)
    timeout 900 h2load -n "$PAR_UPLOADS" -c "$PAR_UPLOADS" -m 1 -d "$FORM" \
        -H "authorization: Bearer $TOKEN" \
        -H "content-type: multipart/form-data; boundary=$BOUNDARY" \
        "$BASE/api/upload" >"$TMP/h2load.txt" 2>&1 || true
    h2_end=$(date +%s.%N)
    h2_cpu=$(awk -v a="$cpu0" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
    h2_ccpu=$(awk -v a="$ccpu0" -v b="$(children_cpu)" 'BEGIN { printf "%.2f", b - a }')
    server_alive
    h2_ok=$(awk '/^status codes:/ {print $3; exit}' "$TMP/h2load.txt")
    [[ "${h2_ok:-0}" == "$PAR_UPLOADS" ]] \
        || { cat "$TMP/h2load.txt" >&2; die "h2load: not every upload answered 2xx"; }
    H2LOAD_LINE=$(awk -v n="$PAR_UPLOADS" -v m="$PAR_MIB" -v a="$h2_start" -v b="$h2_end" \
        -v c="$h2_cpu" -v k="$h2_ccpu" 'BEGIN { t = b - a
            printf "%d x %d MiB concurrent uploads (h2load, HTTP/2): %.2f s, ", n, m, t
            printf "%.1f MB/s aggregate, ", n * m * 1048576 / t / 1e6
            printf "server CPU %.2f s, client CPU %.2f s", c, k }')
    rm -f "$FORM"
fi

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { if (b == "") print "?"; else printf "%.1f", b / 1048576 }'; }
echo
echo "== results (DURATION=${DURATION}s, wrk -t$THREADS -c$CONNECTIONS, HTTP/1.1 over TLS; load now $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-34s %10s %10s %10s %9s %8s %8s\n' "endpoint" "req/s" "p50 ms" "p99 ms" "requests" "non-2xx" "sockerr"
for r in "${ROWS[@]}"; do echo "$r"; done
echo "server memory after the wrk runs: $RSS_AFTER_WRK (then restarted: $RSS_FRESH)"
echo
echo "$BIG_LINE"
awk -v n="$PAR_UPLOADS" -v m="$PAR_MIB" -v a="$par_start" -v b="$par_end" -v c="$par_cpu" \
    -v k="$par_ccpu" 'BEGIN { t = b - a
        printf "%d x %d MiB concurrent uploads (curl): %.2f s, ", n, m, t
        printf "%.1f MB/s aggregate, ", n * m * 1048576 / t / 1e6
        printf "server CPU %.2f s, client CPU %.2f s\n", c, k }'
echo "  non-200 answers: $par_non200, curl failures: $par_fail"
echo "  server RSS before: $(mib $((rss_before * 1024))) MiB, peak sampled VmRSS: $(mib $((rss_peak_kib * 1024))) MiB, VmHWM: $(mib $((hwm_kib * 1024))) MiB$([[ $hwm_reset == 1 ]] || echo ' (since start)')"
echo "  mtfu_buffer_bytes_high_water: ${hw_final:-?} bytes ($(mib "${hw_final:-}") MiB; after the single large upload: $(mib "${hw_after_big:-}") MiB)"
echo "$H2LOAD_LINE"

[[ $par_non200 == 0 && $par_fail == 0 ]] || die "some concurrent uploads failed"
