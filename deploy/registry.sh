#!/usr/bin/env bash
# deploy/registry.sh - a Confluent-compatible schema registry (Apicurio Registry
# 2.4.2.Final, storage in memory) for fitstream development and tests.
#
# The registry is built from Maven Central only, by Maven via
# deploy/registry/pom.xml. See deploy/README.md for details.
#
# Usage: deploy/registry.sh <command> [--secure] [args]
#   install                 build the registry from Maven Central (idempotent)
#   start [--secure]        install if needed, start, wait until ready
#   stop [--secure | --all] SIGTERM, wait, then SIGKILL (OK when not running)
#   restart [--secure]      stop + start
#   status [--secure]       print state; exit 0 when running, 3 when not
#   url [--secure]          print the Confluent-compatible base URL
#   env [--secure]          print the client settings (URL; user, password, CA)
#   logs [--secure] [-f] [N]  tail the last N (default 100) lines of the log
#   reset [--secure]        stop + delete the instance dir (new credentials)
# Without --secure: plain HTTP on 127.0.0.1:$REGISTRY_PORT, no authentication.
# With --secure: a second instance, HTTPS on 127.0.0.1:$REGISTRY_SECURE_PORT
# (certificate from a CA made here) and HTTP basic authentication.
set -euo pipefail

SCRIPT_PATH="$(readlink -f -- "${BASH_SOURCE[0]}" 2>/dev/null || printf '%s' "${BASH_SOURCE[0]}")"
SCRIPT_DIR="$(cd -- "$(dirname -- "$SCRIPT_PATH")" && pwd -P)"
POM="$SCRIPT_DIR/registry/pom.xml"

# ----------------------------------------------------------------- settings
REGISTRY_VERSION="${REGISTRY_VERSION:-2.4.2.Final}"
REGISTRY_PORT="${REGISTRY_PORT:-8181}"
REGISTRY_SECURE_PORT="${REGISTRY_SECURE_PORT:-8543}"
FITSTREAM_REGISTRY_HOME="${FITSTREAM_REGISTRY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/fitstream/registry}"
REGISTRY_HEAP_OPTS="${REGISTRY_HEAP_OPTS:--Xms32m -Xmx384m}"
REGISTRY_OPTS="${REGISTRY_OPTS:-}"
REGISTRY_USER="${REGISTRY_USER:-fitstream}"
REGISTRY_DEFAULT_COMPATIBILITY="${REGISTRY_DEFAULT_COMPATIBILITY:-BACKWARD}"
REGISTRY_CANONICAL_HASH="${REGISTRY_CANONICAL_HASH:-false}"
REGISTRY_LOG_LEVEL="${REGISTRY_LOG_LEVEL:-INFO}"
REGISTRY_START_TIMEOUT="${REGISTRY_START_TIMEOUT:-90}"
REGISTRY_STOP_TIMEOUT="${REGISTRY_STOP_TIMEOUT:-20}"
REGISTRY_EXTRA_PROPERTIES="${REGISTRY_EXTRA_PROPERTIES:-}"
REGISTRY_MVN="${REGISTRY_MVN:-mvn}"
REGISTRY_HOST=127.0.0.1
API_PATH=/apis/ccompat/v7

DIST_DIR="$FITSTREAM_REGISTRY_HOME/apicurio-$REGISTRY_VERSION"
APP_DIR="$DIST_DIR/app"
STAMP_FILE="$DIST_DIR/.installed"

# Set by select_mode: the instance (plain or secure) a command acts on.
MODE="" PORT="" SCHEME="" INSTANCE_DIR="" CONFIG_FILE="" LOG_FILE="" PID_FILE="" RUNNER=""
TLS_DIR="" CLIENT_ENV=""

# ----------------------------------------------------------------- helpers
say() { printf 'registry: %s\n' "$*"; }
warn() { printf 'registry: warning: %s\n' "$*" >&2; }
die() {
    printf 'registry: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '8,22s/^# \{0,1\}//p' "$SCRIPT_PATH"
}

validate_settings() {
    local p
    for p in "$REGISTRY_PORT" "$REGISTRY_SECURE_PORT"; do
        [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "invalid port '$p'"
    done
    [[ "$REGISTRY_PORT" != "$REGISTRY_SECURE_PORT" ]] ||
        die "REGISTRY_PORT and REGISTRY_SECURE_PORT must differ (both $REGISTRY_PORT)"
    [[ "$REGISTRY_VERSION" =~ ^[0-9A-Za-z.+-]+$ ]] || die "invalid REGISTRY_VERSION '$REGISTRY_VERSION'"
    [[ "$REGISTRY_USER" =~ ^[A-Za-z0-9_.-]+$ ]] || die "invalid REGISTRY_USER '$REGISTRY_USER' (letters, digits, _ . -)"
    [[ "$REGISTRY_DEFAULT_COMPATIBILITY" =~ ^(|NONE|BACKWARD|BACKWARD_TRANSITIVE|FORWARD|FORWARD_TRANSITIVE|FULL|FULL_TRANSITIVE)$ ]] ||
        die "invalid REGISTRY_DEFAULT_COMPATIBILITY '$REGISTRY_DEFAULT_COMPATIBILITY'"
    [[ "$REGISTRY_CANONICAL_HASH" =~ ^(true|false)$ ]] || die "invalid REGISTRY_CANONICAL_HASH '$REGISTRY_CANONICAL_HASH' (true or false)"
    [[ "$REGISTRY_START_TIMEOUT" =~ ^[0-9]+$ ]] || die "invalid REGISTRY_START_TIMEOUT"
    [[ "$REGISTRY_STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "invalid REGISTRY_STOP_TIMEOUT"
}

select_mode() { # select_mode plain|secure
    MODE="$1"
    if [[ "$MODE" == secure ]]; then
        PORT="$REGISTRY_SECURE_PORT" SCHEME=https
        INSTANCE_DIR="$FITSTREAM_REGISTRY_HOME/secure-$PORT"
        RUNNER="$APP_DIR/registry-secure-runner.jar"
    else
        PORT="$REGISTRY_PORT" SCHEME=http
        INSTANCE_DIR="$FITSTREAM_REGISTRY_HOME/plain-$PORT"
        RUNNER="$APP_DIR/registry-plain-runner.jar"
    fi
    CONFIG_FILE="$INSTANCE_DIR/config/application.properties"
    LOG_FILE="$INSTANCE_DIR/registry.log"
    PID_FILE="$INSTANCE_DIR/registry.pid"
    TLS_DIR="$INSTANCE_DIR/tls"
    CLIENT_ENV="$INSTANCE_DIR/client.env"
}

base_url() { printf '%s://%s:%s%s\n' "$SCHEME" "$REGISTRY_HOST" "$PORT" "$API_PATH"; }

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        die "java not found (Apicurio Registry 2.4 needs Java 11+, 17 recommended; set JAVA_HOME or PATH)"
    fi
}

check_java() {
    local java ver major
    java="$(java_bin)"
    ver="$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
    major="${ver%%.*}"
    [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$ver")"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 11)); then
        die "Java $ver found at $java; Apicurio Registry 2.4 needs Java 11+"
    fi
}

need() { # need COMMAND [DEBIAN-PACKAGE]: installs the package when the command is missing
    bash "$SCRIPT_DIR/ensure-package.sh" "${2:-$1}" command -v "$1" ||
        die "'$1' not found and could not be installed (Debian: apt-get install ${2:-$1})"
}

# Takes an exclusive lock on file descriptor $1 for file $2 (no-op without flock).
take_lock() {
    local fd="$1" file="$2"
    command -v flock >/dev/null 2>&1 || return 0
    mkdir -p "$(dirname -- "$file")"
    eval "exec $fd>\"\$file\""
    flock -w 900 "$fd" || die "could not lock $file"
}

port_open() { # port_open PORT -> 0 when something accepts TCP connections
    (exec 3<>"/dev/tcp/$REGISTRY_HOST/$1") >/dev/null 2>&1
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

is_installed() {
    [[ -f "$STAMP_FILE" && -f "$APP_DIR/registry-plain-runner.jar" && -f "$APP_DIR/registry-secure-runner.jar" ]] &&
        grep -qx "pom_sha256=$(pom_hash)" "$STAMP_FILE"
}

# Prints the pid of this instance's registry if it is alive.
registry_pid() {
    local pid="" cmd f marker="-Dfitstream.registry.instance=$INSTANCE_DIR"
    if [[ -f "$PID_FILE" ]]; then
        pid="$(tr -dc '0-9' <"$PID_FILE")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || ps -p "$pid" -o args= 2>/dev/null || true)"
            if [[ "$cmd" == *"$marker "* ]]; then
                printf '%s\n' "$pid"
                return 0
            fi
        fi
    fi
    # Pid file lost (or stale): look for a java process started for this instance dir.
    if [[ -d /proc ]]; then
        for f in $(grep -lsF -- "$marker" /proc/[0-9]*/cmdline 2>/dev/null || true); do
            cmd="$(tr '\0' ' ' <"$f" 2>/dev/null || true)"
            if [[ "$cmd" == *"$marker "*"-jar "* ]]; then
                pid="${f#/proc/}"
                pid="${pid%/cmdline}"
                printf '%s\n' "$pid" >"$PID_FILE" 2>/dev/null || true
                printf '%s\n' "$pid"
                return 0
            fi
        done
    fi
    return 1
}

# Prints the pids of the registries (any port) that run the jars of $APP_DIR.
app_pids() {
    local f cmd pid out=""
    for f in $(grep -lsF -- "$APP_DIR/registry-" /proc/[0-9]*/cmdline 2>/dev/null || true); do
        cmd="$(tr '\0' ' ' <"$f" 2>/dev/null || true)"
        pid="${f#/proc/}"
        pid="${pid%/cmdline}"
        [[ "$cmd" == *" -jar $APP_DIR/registry-"* ]] && out+="$pid "
    done
    printf '%s' "${out% }"
}

rss_mib() { # rss_mib PID -> resident set size in MiB (or ?)
    local kb
    kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true)"
    if [[ -n "$kb" ]]; then printf '%s\n' "$((kb / 1024))"; else printf '?\n'; fi
}

# The TLS files of the secure instance: a CA made here (10 years) and a server
# certificate it signs for IP:127.0.0.1 and DNS:localhost (825 days). Made once;
# made again when a file is missing or the server certificate expires within a day.
ensure_tls() {
    if [[ -s "$TLS_DIR/ca.pem" && -s "$TLS_DIR/server.pem" && -s "$TLS_DIR/server.key" ]] &&
        openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server.pem" >/dev/null 2>&1; then
        return 0
    fi
    need openssl
    say "making a CA and a server certificate in $TLS_DIR"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR"
    chmod 700 "$TLS_DIR"
    (
        cd "$TLS_DIR"
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -keyout ca.key -out ca.pem -subj "/CN=fitstream test registry CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" >openssl.log 2>&1
        openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key -out server.csr \
            -subj "/CN=localhost" >>openssl.log 2>&1
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -sha256 -days 825 -in server.csr -CA ca.pem -CAkey ca.key \
            -set_serial "0x$(openssl rand -hex 16)" -extfile server.ext -out server.pem >>openssl.log 2>&1
        rm -f server.csr server.ext
        chmod 644 ca.pem server.pem
    ) || {
        cat "$TLS_DIR/openssl.log" >&2 2>/dev/null || true
        die "openssl failed (see $TLS_DIR/openssl.log)"
    }
}

# The user and password of the secure instance, made once and kept in client.env
# (mode 600) with the URL and the CA path.
ensure_client_env() {
    local user="" password=""
    if [[ -s "$CLIENT_ENV" ]]; then
        user="$(sed -n 's/^FITSTREAM_REGISTRY_USER=//p' "$CLIENT_ENV")"
        password="$(sed -n 's/^FITSTREAM_REGISTRY_PASSWORD=//p' "$CLIENT_ENV")"
    fi
    if [[ -z "$user" || -z "$password" ]]; then
        need openssl
        user="$REGISTRY_USER"
        password="$(openssl rand -hex 16)"
        say "generated the user '$user' and a password in $CLIENT_ENV"
    fi
    mkdir -p "$INSTANCE_DIR"
    local tmp="$CLIENT_ENV.tmp.$$"
    (
        umask 077
        cat >"$tmp" <<EOF
# Written by deploy/registry.sh for the secure registry (HTTPS + HTTP basic auth).
# The user and password are generated once; \`deploy/registry.sh reset --secure\` makes new ones.
FITSTREAM_REGISTRY_URL=$(base_url)
FITSTREAM_REGISTRY_USER=$user
FITSTREAM_REGISTRY_PASSWORD=$password
FITSTREAM_REGISTRY_CA=$TLS_DIR/ca.pem
EOF
    )
    mv -f "$tmp" "$CLIENT_ENV"
}

client_env_value() { sed -n "s/^$1=//p" "$CLIENT_ENV"; }

# Runtime configuration, read by Quarkus from config/application.properties in the
# working directory (ordinal 260, above the application.properties in the jar).
# Keys the jar sets under the %prod profile are set under it here too, since a
# profiled key wins over an unprofiled one.
render_config() {
    mkdir -p "$(dirname -- "$CONFIG_FILE")"
    local tmp="$CONFIG_FILE.tmp.$$"
    (
        umask 077
        {
            echo "# Generated by deploy/registry.sh on every start ($MODE instance)."
            echo "quarkus.http.host=$REGISTRY_HOST"
            echo "%prod.quarkus.log.level=$REGISTRY_LOG_LEVEL"
            echo "%prod.quarkus.log.category.\"io.apicurio\".level=$REGISTRY_LOG_LEVEL"
            echo "quarkus.log.console.color=false"
            echo "quarkus.banner.enabled=false"
            echo "# Off by default: in canonical-hash mode Apicurio 2.4.2 gives schemas back with their"
            echo "# fields sorted by name, and Avro's binary encoding follows the field order."
            echo "registry.ccompat.use-canonical-hash=$REGISTRY_CANONICAL_HASH"
            if [[ "$MODE" == secure ]]; then
                echo "# HTTPS only, on 127.0.0.1:$PORT."
                echo "quarkus.http.insecure-requests=disabled"
                echo "quarkus.http.ssl-port=$PORT"
                echo "%prod.quarkus.http.port=0"
                echo "quarkus.http.ssl.certificate.files=$TLS_DIR/server.pem"
                echo "quarkus.http.ssl.certificate.key-files=$TLS_DIR/server.key"
                echo "# HTTP basic authentication against this one user (the build requires"
                echo "# an authenticated user for every path but /health)."
                echo "quarkus.security.users.embedded.plain-text=true"
                echo "quarkus.security.users.embedded.users.$(client_env_value FITSTREAM_REGISTRY_USER)=$(client_env_value FITSTREAM_REGISTRY_PASSWORD)"
                echo "quarkus.security.users.embedded.roles.$(client_env_value FITSTREAM_REGISTRY_USER)=sr-admin"
            else
                echo "%prod.quarkus.http.port=$PORT"
            fi
            if [[ -n "$REGISTRY_EXTRA_PROPERTIES" ]]; then
                printf '\n# From REGISTRY_EXTRA_PROPERTIES\n%s\n' "$REGISTRY_EXTRA_PROPERTIES"
            fi
        } >"$tmp"
    )
    mv -f "$tmp" "$CONFIG_FILE"
}

# tail_log [N] [OFFSET]: last N lines of the log written after byte OFFSET.
tail_log() {
    local n="${1:-40}" offset="${2:-0}" size
    [[ -s "$LOG_FILE" ]] || return 0
    size="$(wc -c <"$LOG_FILE")"
    ((size >= offset)) || offset=0
    printf -- '----- last %s lines of %s -----\n' "$n" "$LOG_FILE" >&2
    tail -c +"$((offset + 1))" "$LOG_FILE" | tail -n "$n" >&2
}

# api_curl [CURL ARGS] PATH: a request to the Confluent API of this instance, with
# the CA and the credentials of the secure one.
api_curl() {
    local path="${*: -1}"
    local -a args=("${@:1:$#-1}") sec=()
    if [[ "$MODE" == secure ]]; then
        sec=(--cacert "$TLS_DIR/ca.pem"
            -u "$(client_env_value FITSTREAM_REGISTRY_USER):$(client_env_value FITSTREAM_REGISTRY_PASSWORD)")
    fi
    curl -sS --max-time 10 ${sec[@]+"${sec[@]}"} ${args[@]+"${args[@]}"} "$(base_url)$path"
}

# Sets the global compatibility level through the API (kept in memory, so on every
# start). Apicurio's own default is NONE; Confluent's is BACKWARD. A level given by
# registry.rules.global.compatibility would be enforced but not shown by GET /config.
set_default_compatibility() {
    [[ -n "$REGISTRY_DEFAULT_COMPATIBILITY" ]] || return 0
    local out
    if ! out="$(api_curl -f -X PUT -H 'Content-Type: application/json' \
        --data "{\"compatibility\":\"$REGISTRY_DEFAULT_COMPATIBILITY\"}" /config 2>&1)"; then
        die "could not set the global compatibility level to $REGISTRY_DEFAULT_COMPATIBILITY: $out"
    fi
    say "global compatibility level: $REGISTRY_DEFAULT_COMPATIBILITY"
}

health_ok() { # the readiness check answers 200
    local -a tls=()
    [[ "$MODE" == secure ]] && tls=(--cacert "$TLS_DIR/ca.pem")
    curl -sf -o /dev/null --max-time 5 ${tls[@]+"${tls[@]}"} \
        "$SCHEME://$REGISTRY_HOST:$PORT/health/ready" 2>/dev/null
}

# ----------------------------------------------------------------- commands
cmd_install() {
    take_lock 8 "$FITSTREAM_REGISTRY_HOME/.install-$REGISTRY_VERSION.lock"
    if is_installed; then
        say "Apicurio Registry $REGISTRY_VERSION already installed in $APP_DIR"
        return 0
    fi
    # The build replaces $APP_DIR, whose jars a running registry reads.
    local running
    running="$(app_pids)"
    [[ -z "$running" ]] || die "a registry of $APP_DIR is running (pid $running); stop it first (deploy/registry.sh stop --all)"
    command -v "$REGISTRY_MVN" >/dev/null 2>&1 || die "maven ('$REGISTRY_MVN') not found"
    check_java
    say "building Apicurio Registry $REGISTRY_VERSION from Maven Central into $APP_DIR ..."
    mkdir -p "$DIST_DIR"
    local tmp="$DIST_DIR/build.tmp.$$" start_s=$SECONDS log="$DIST_DIR/mvn.log" profile
    rm -rf "$tmp"
    mkdir -p "$tmp"
    cp "$POM" "$tmp/pom.xml"
    : >"$log"
    # Two Quarkus builds of one project: the plain one, and the secure one
    # (-Psecure, HTTP authentication fixed at build time). They share lib/.
    for profile in plain secure; do
        local -a args=(-B -q -f "$tmp/pom.xml" package -Dapicurio.version="$REGISTRY_VERSION")
        [[ "$profile" == secure ]] && args+=(-Psecure)
        printf '===== mvn %s\n' "${args[*]}" >>"$log"
        if ! "$REGISTRY_MVN" "${args[@]}" >>"$log" 2>&1; then
            rm -rf "$tmp"
            sed -e 's/\x1b\[[0-9;]*m//g' "$log" | tail -n 40 >&2
            die "mvn package ($profile build) failed for io.apicurio:apicurio-registry-app:$REGISTRY_VERSION (log: $log)"
        fi
    done
    local plain_jar="$tmp/target/fitstream-registry-1-runner.jar"
    local secure_jar="$tmp/target-secure/fitstream-registry-secure-runner.jar"
    [[ -f "$plain_jar" && -f "$secure_jar" && -d "$tmp/target/lib" ]] || {
        rm -rf "$tmp"
        die "the Quarkus runner jars are missing after mvn (log: $log)"
    }
    if ! diff -rq "$tmp/target/lib" "$tmp/target-secure/lib" >>"$log" 2>&1; then
        rm -rf "$tmp"
        die "the plain and secure builds have different lib/ folders (log: $log)"
    fi
    local app_tmp="$DIST_DIR/app.tmp.$$"
    rm -rf "$app_tmp"
    mkdir -p "$app_tmp"
    mv "$tmp/target/lib" "$app_tmp/lib"
    mv "$plain_jar" "$app_tmp/registry-plain-runner.jar"
    mv "$secure_jar" "$app_tmp/registry-secure-runner.jar"
    rm -rf "$tmp" "$APP_DIR"
    mv "$app_tmp" "$APP_DIR"
    printf 'version=%s\npom_sha256=%s\n' "$REGISTRY_VERSION" "$(pom_hash)" >"$STAMP_FILE"
    say "installed $(find "$APP_DIR/lib" -name '*.jar' | wc -l) jars ($(du -sh "$APP_DIR" | cut -f1)) in $((SECONDS - start_s))s"
}

ensure_installed() { is_installed || cmd_install; }

cmd_start() {
    local pid
    if pid="$(registry_pid)"; then
        if health_ok; then
            say "already running (pid $pid)"
            say "ready at $(base_url)"
            return 0
        fi
        say "already starting (pid $pid), waiting ..."
        wait_ready "$pid" 0 "$SECONDS"
        return 0
    fi
    if port_open "$PORT"; then
        die "port $REGISTRY_HOST:$PORT is already in use by another process (not this script's $MODE registry)"
    fi
    need curl
    ensure_installed
    check_java
    mkdir -p "$INSTANCE_DIR"
    if [[ "$MODE" == secure ]]; then
        ensure_tls
        ensure_client_env
    fi
    render_config

    local offset=0
    [[ -f "$LOG_FILE" ]] && offset="$(wc -c <"$LOG_FILE")"
    say "starting Apicurio Registry $REGISTRY_VERSION ($MODE) on $SCHEME://$REGISTRY_HOST:$PORT (dir $INSTANCE_DIR)"
    local java
    java="$(java_bin)"
    local -a jvm
    # shellcheck disable=SC2206  # word splitting of the *_OPTS variables is intended
    jvm=($REGISTRY_HEAP_OPTS -XX:+UseSerialGC -Djava.awt.headless=true
        "-Dfitstream.registry.instance=$INSTANCE_DIR" $REGISTRY_OPTS)
    local -a detach=()
    command -v setsid >/dev/null 2>&1 && detach=(setsid)
    rm -f "$PID_FILE"
    local start_s=$SECONDS
    # The inner shell writes its own pid (kept by exec) so the pid file is exact even
    # if setsid forks. The working directory is the instance dir, whose
    # config/application.properties Quarkus reads. Lock descriptors are closed.
    (
        cd "$INSTANCE_DIR"
        exec 8>&- 9>&-
        # shellcheck disable=SC2016
        nohup ${detach[@]+"${detach[@]}"} bash -c 'echo $$ >"$1"; shift; exec "$@"' registry-launch "$PID_FILE" \
            "$java" "${jvm[@]}" -jar "$RUNNER" >>"$LOG_FILE" 2>&1 </dev/null &
    )
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.05
    done
    pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] || die "could not start java (see $LOG_FILE)"
    wait_ready "$pid" "$offset" "$start_s"
    set_default_compatibility
}

wait_ready() { # wait_ready PID LOG_OFFSET START_SECONDS
    local pid="$1" offset="$2" start_s="$3" deadline=$((SECONDS + REGISTRY_START_TIMEOUT))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail_log 40 "$offset"
            rm -f "$PID_FILE"
            die "registry exited during startup (see $LOG_FILE)"
        fi
        if health_ok; then
            say "ready at $(base_url) (pid $pid, $((SECONDS - start_s))s, rss $(rss_mib "$pid") MiB)"
            [[ "$MODE" == secure ]] && say "credentials and CA path: $CLIENT_ENV"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            tail_log 40 "$offset"
            warn "registry not ready after ${REGISTRY_START_TIMEOUT}s; stopping it"
            stop_pid "$pid"
            die "registry did not become ready within ${REGISTRY_START_TIMEOUT}s (see $LOG_FILE)"
        fi
        sleep 0.25
    done
}

stop_pid() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < REGISTRY_STOP_TIMEOUT * 4; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "pid $pid still alive after ${REGISTRY_STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
    fi
    rm -f "$PID_FILE"
    ! kill -0 "$pid" 2>/dev/null || die "could not stop pid $pid"
}

cmd_stop() {
    local pid
    if ! pid="$(registry_pid)"; then
        rm -f "$PID_FILE"
        say "not running ($MODE, $SCHEME://$REGISTRY_HOST:$PORT)"
        return 0
    fi
    say "stopping $MODE registry pid $pid (SIGTERM, up to ${REGISTRY_STOP_TIMEOUT}s) ..."
    local start_s=$SECONDS
    stop_pid "$pid"
    say "stopped in $((SECONDS - start_s))s"
}

cmd_status() {
    local pid
    if pid="$(registry_pid)"; then
        local state=running
        health_ok || state="running (not ready yet)"
        say "$state ($MODE)"
        echo "  pid:      $pid"
        echo "  url:      $(base_url)"
        echo "  rss:      $(rss_mib "$pid") MiB"
        echo "  version:  $REGISTRY_VERSION"
        echo "  dir:      $INSTANCE_DIR"
        echo "  log:      $LOG_FILE"
        [[ "$MODE" == secure ]] && echo "  client:   $CLIENT_ENV"
        return 0
    fi
    say "stopped ($MODE)"
    echo "  url:      $(base_url) (not running)"
    echo "  dir:      $INSTANCE_DIR"
    return 3
}

cmd_env() {
    if [[ "$MODE" == secure ]]; then
        [[ -s "$CLIENT_ENV" ]] || die "no credentials yet ($CLIENT_ENV); run: $0 start --secure"
        grep -v '^#' "$CLIENT_ENV"
    else
        printf 'FITSTREAM_REGISTRY_URL=%s\n' "$(base_url)"
    fi
}

cmd_logs() {
    local follow=0 n=100 a
    for a in "$@"; do
        case "$a" in
        -f | --follow) follow=1 ;;
        [0-9]*) n="$a" ;;
        *) die "usage: logs [--secure] [-f] [LINES]" ;;
        esac
    done
    [[ -f "$LOG_FILE" ]] || die "no log yet ($LOG_FILE)"
    if ((follow)); then
        exec tail -n "$n" -F "$LOG_FILE"
    fi
    tail -n "$n" "$LOG_FILE"
}

cmd_reset() {
    cmd_stop
    if [[ -d "$INSTANCE_DIR" ]]; then
        rm -rf "$INSTANCE_DIR"
        say "deleted $INSTANCE_DIR"
    else
        say "nothing to delete ($INSTANCE_DIR)"
    fi
}

main() {
    local cmd="${1:-}" secure=0 all=0
    [[ $# -gt 0 ]] && shift
    local -a rest=()
    local a
    for a in "$@"; do
        case "$a" in
        --secure) secure=1 ;;
        --all) all=1 ;;
        *) rest+=("$a") ;;
        esac
    done
    validate_settings
    if ((secure)); then select_mode secure; else select_mode plain; fi
    if ((all)) && [[ "$cmd" != stop ]]; then die "--all only goes with stop"; fi
    if ((${#rest[@]})) && [[ "$cmd" != logs ]]; then die "unexpected argument '${rest[0]}'"; fi
    local lock="$FITSTREAM_REGISTRY_HOME/.instance-$MODE-$PORT.lock"
    case "$cmd" in
    install) cmd_install ;;
    start)
        take_lock 9 "$lock"
        cmd_start
        ;;
    stop)
        if ((all)); then
            local m
            for m in plain secure; do
                select_mode "$m"
                take_lock 9 "$FITSTREAM_REGISTRY_HOME/.instance-$MODE-$PORT.lock"
                cmd_stop
            done
        else
            take_lock 9 "$lock"
            cmd_stop
        fi
        ;;
    restart)
        take_lock 9 "$lock"
        cmd_stop
        cmd_start
        ;;
    reset)
        take_lock 9 "$lock"
        cmd_reset
        ;;
    status) cmd_status ;;
    url) base_url ;;
    env) cmd_env ;;
    logs) cmd_logs ${rest[@]+"${rest[@]}"} ;;
    -h | --help | help) usage ;;
    "")
        usage >&2
        exit 2
        ;;
    *)
        usage >&2
        die "unknown command '$cmd'"
        ;;
    esac
}

main "$@"
