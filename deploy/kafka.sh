#!/usr/bin/env bash
# deploy/kafka.sh - a real single-node Apache Kafka 4.x broker (KRaft mode,
# combined broker+controller) for fitstream development and tests.
#
# The broker jars come from Maven Central only, via Maven and
# deploy/kafka/pom.xml. See deploy/README.md for details.
#
# Usage: deploy/kafka.sh <command> [--secure] [args]
#   install            download broker + tools jars (idempotent)
#   format             wipe the data dir and format fresh KRaft storage
#   start              install/format if needed, start, wait until ready
#   stop               SIGTERM, wait, then SIGKILL (OK when not running)
#   restart            stop + start
#   status             print state; exit 0 when running, 3 when not
#   logs [-f] [N]      tail the last N (default 100) lines of server.log
#   reset              stop + delete the data dir
#   tool CLASS [ARGS]  run a Kafka main class with the broker classpath
#   topics [ARGS]      org.apache.kafka.tools.TopicCommand --bootstrap-server <broker> ARGS
#   classpath          print the java classpath of the installed jars
#   sync --secure      apply k8s/base/users.yaml (SCRAM users, ACLs) to the running broker
# --secure right after the command selects the secured broker, beside the plain one:
# SASL_SSL + SCRAM-SHA-512 on 127.0.0.1:9392, TLS from a local CA, ACLs from
# k8s/base/users.yaml, its own data dir; client settings in <data>/clients/.
set -euo pipefail

SCRIPT_PATH="$(readlink -f -- "${BASH_SOURCE[0]}" 2>/dev/null || printf '%s' "${BASH_SOURCE[0]}")"
SCRIPT_DIR="$(cd -- "$(dirname -- "$SCRIPT_PATH")" && pwd -P)"
POM="$SCRIPT_DIR/kafka/pom.xml"
TEMPLATE="$SCRIPT_DIR/kafka/server.properties.template"
SECURE_TEMPLATE="$SCRIPT_DIR/kafka/server-secure.properties.template"
ACLS_PY="$SCRIPT_DIR/kafka/acls.py"
TOOL_BATCH="$SCRIPT_DIR/kafka/ToolBatch.java"

# ----------------------------------------------------------------- settings
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
FITSTREAM_KAFKA_HOME="${FITSTREAM_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/fitstream/kafka}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$FITSTREAM_KAFKA_HOME/data-$KAFKA_PORT}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_OPTS="${KAFKA_OPTS:-}"
KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-}"
KAFKA_LOG_LEVEL="${KAFKA_LOG_LEVEL:-INFO}"
# Startup fails once the server log has not grown for KAFKA_START_TIMEOUT seconds (a broker
# loading thousands of partitions keeps logging and is given up to KAFKA_START_LIMIT).
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_START_LIMIT="${KAFKA_START_LIMIT:-900}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_EXTRA_PROPERTIES="${KAFKA_EXTRA_PROPERTIES:-}"
KAFKA_MVN="${KAFKA_MVN:-mvn}"
KAFKA_HOST=127.0.0.1

# The secured broker (--secure). The settings above apply to it too, except KAFKA_PORT,
# KAFKA_CONTROLLER_PORT, KAFKA_DATA_DIR and KAFKA_EXTRA_PROPERTIES, which these replace.
KAFKA_SECURE_PORT="${KAFKA_SECURE_PORT:-9392}"
KAFKA_SECURE_CONTROLLER_PORT="${KAFKA_SECURE_CONTROLLER_PORT:-9393}"
KAFKA_SECURE_DATA_DIR="${KAFKA_SECURE_DATA_DIR:-$FITSTREAM_KAFKA_HOME/data-secure-$KAFKA_SECURE_PORT}"
KAFKA_SECURE_EXTRA_PROPERTIES="${KAFKA_SECURE_EXTRA_PROPERTIES:-}"
KAFKA_USERS_FILE="${KAFKA_USERS_FILE:-${SCRIPT_DIR%/*}/k8s/base/users.yaml}"
KAFKA_CERT_DAYS="${KAFKA_CERT_DAYS:-365}"
KAFKA_PYTHON="${KAFKA_PYTHON:-python3}"
SECURE=0
SAY_PREFIX=kafka
ADMIN_USER="admin"
BROKER_CN=fitstream-kafka-broker
SCRAM_MECHANISM=SCRAM-SHA-512

MAIN_CLASS=kafka.Kafka
STARTED_MARKER="Kafka Server started"

DIST_DIR="$FITSTREAM_KAFKA_HOME/kafka-$KAFKA_VERSION"
LIBS_DIR="$DIST_DIR/libs"
STAMP_FILE="$DIST_DIR/.installed"
TOOLS_LOG4J_FILE="$DIST_DIR/tools-log4j2.properties"

# The paths in the data dir (of the plain broker; of the secured one after use_secure).
set_data_paths() {
    CONFIG_DIR="$KAFKA_DATA_DIR/config"
    PROPS_FILE="$CONFIG_DIR/server.properties"
    LOG4J_FILE="$CONFIG_DIR/log4j2.properties"
    KRAFT_DIR="$KAFKA_DATA_DIR/kraft"
    LOG_DIR="$KAFKA_DATA_DIR/logs"
    SERVER_LOG="$LOG_DIR/server.log"
    OUT_FILE="$LOG_DIR/kafka.out"
    PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
    RUN_VERSION_FILE="$KAFKA_DATA_DIR/kafka.version"
    BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"
}
set_data_paths

# Switches every setting to the secured broker: its ports, data dir and messages.
use_secure() {
    SECURE=1
    KAFKA_PORT="$KAFKA_SECURE_PORT"
    KAFKA_CONTROLLER_PORT="$KAFKA_SECURE_CONTROLLER_PORT"
    KAFKA_DATA_DIR="$KAFKA_SECURE_DATA_DIR"
    KAFKA_EXTRA_PROPERTIES="$KAFKA_SECURE_EXTRA_PROPERTIES"
    SAY_PREFIX=kafka-secure
    set_data_paths
    TLS_DIR="$KAFKA_DATA_DIR/tls"
    CA_FILE="$TLS_DIR/ca.crt"
    SECRETS_DIR="$KAFKA_DATA_DIR/secrets"
    CLIENTS_DIR="$KAFKA_DATA_DIR/clients"
    STATE_DIR="$KAFKA_DATA_DIR/state"
    ADMIN_CONFIG="$CLIENTS_DIR/$ADMIN_USER.java.properties"
    SYNC_STAMP="$STATE_DIR/users.sha256"
    # Keys, passwords, client settings, logs: readable by the owner only.
    umask 077
}

# ----------------------------------------------------------------- helpers
say() { printf '%s: %s\n' "$SAY_PREFIX" "$*"; }
warn() { printf '%s: warning: %s\n' "$SAY_PREFIX" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SAY_PREFIX" "$*" >&2
    exit 1
}

usage() {
    sed -n '8,25s/^# \{0,1\}//p' "$SCRIPT_PATH"
}

validate_settings() {
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "invalid port '$p'"
    done
    [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] ||
        die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ (both $KAFKA_PORT)"
    [[ "$KAFKA_VERSION" =~ ^[0-9A-Za-z.+-]+$ ]] || die "invalid KAFKA_VERSION '$KAFKA_VERSION'"
    [[ "$KAFKA_START_TIMEOUT" =~ ^[0-9]+$ ]] || die "invalid KAFKA_START_TIMEOUT"
    [[ "$KAFKA_STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "invalid KAFKA_STOP_TIMEOUT"
}

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        die "java not found (Kafka $KAFKA_VERSION needs Java 17+; set JAVA_HOME or PATH)"
    fi
}

check_java() {
    local java ver major
    java="$(java_bin)"
    ver="$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
    major="${ver%%.*}"
    [[ "$major" == 1 ]] && major="$(cut -d. -f2 <<<"$ver")"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 17)); then
        die "Java $ver found at $java; Kafka 4.x needs Java 17+"
    fi
}

# Takes an exclusive lock on file descriptor $1 for file $2 (no-op without flock).
take_lock() {
    local fd="$1" file="$2"
    command -v flock >/dev/null 2>&1 || return 0
    mkdir -p "$(dirname -- "$file")"
    eval "exec $fd>\"\$file\""
    flock -w 600 "$fd" || die "could not lock $file"
}

port_open() { # port_open PORT -> 0 when something accepts TCP connections
    (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") >/dev/null 2>&1
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

is_installed() {
    [[ -f "$STAMP_FILE" && -f "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" ]] &&
        grep -qx "pom_sha256=$(pom_hash)" "$STAMP_FILE"
}

classpath() { printf '%s\n' "$LIBS_DIR/*"; }

is_formatted() { [[ -f "$KRAFT_DIR/meta.properties" ]]; }

# Prints the broker pid if the broker of this data dir is alive.
broker_pid() {
    local pid="" cmd f
    if [[ -f "$PID_FILE" ]]; then
        pid="$(tr -dc '0-9' <"$PID_FILE")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            if [[ -r "/proc/$pid/cmdline" ]]; then
                cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
            else
                cmd="$(ps -p "$pid" -o args= 2>/dev/null || true)"
            fi
            if [[ "$cmd" == *"$MAIN_CLASS"*"$PROPS_FILE"* ]]; then
                printf '%s\n' "$pid"
                return 0
            fi
        fi
    fi
    # Pid file lost (or stale): look for a java process running exactly our config file.
    if [[ -d /proc ]]; then
        for f in $(grep -lsF -- "$PROPS_FILE" /proc/[0-9]*/cmdline 2>/dev/null || true); do
            cmd="$(tr '\0' ' ' <"$f" 2>/dev/null || true)"
            if [[ "$cmd" == *" $MAIN_CLASS $PROPS_FILE"* ]]; then
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

sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# The configuration template: server.properties.template, and for the secured broker the
# security overlay after it (the template's lines for keys the overlay sets commented out).
template_text() {
    [[ -f "$TEMPLATE" ]] || die "missing $TEMPLATE"
    if ((!SECURE)); then
        cat "$TEMPLATE"
        return 0
    fi
    [[ -f "$SECURE_TEMPLATE" ]] || die "missing $SECURE_TEMPLATE"
    awk 'match($0, /^[A-Za-z0-9._-]+=/) { key = substr($0, 1, RLENGTH - 1) }
         NR == FNR { if (RSTART == 1) overlay[key] = 1; next }
         RSTART == 1 && (key in overlay) { print "# " key ": see the security section below"; next }
         { print }' "$SECURE_TEMPLATE" "$TEMPLATE"
    printf '\n'
    cat "$SECURE_TEMPLATE"
}

render_config() {
    mkdir -p "$CONFIG_DIR" "$LOG_DIR" "$KRAFT_DIR"
    local tmp="$PROPS_FILE.tmp.$$"
    local -a secure_args=()
    if ((SECURE)); then
        secure_args=(-e "s|@TLS_DIR@|$(sed_escape "$TLS_DIR")|g"
            -e "s|@ADMIN_USER@|$ADMIN_USER|g" -e "s|@BROKER_CN@|$BROKER_CN|g")
    fi
    template_text | sed -e "s|@KAFKA_HOST@|$(sed_escape "$KAFKA_HOST")|g" \
        -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@KAFKA_LOG_DIRS@|$(sed_escape "$KRAFT_DIR")|g" \
        ${secure_args[@]+"${secure_args[@]}"} >"$tmp"
    if ((SECURE)); then
        # The passwords by bash substitution: they never are on a command line.
        local text
        text="$(<"$tmp")"
        text="${text//@ADMIN_PASSWORD@/$(secret "$ADMIN_USER")}"
        text="${text//@KEYSTORE_PASSWORD@/$(secret keystore)}"
        printf '%s\n' "$text" >"$tmp"
    fi
    if [[ -n "$KAFKA_EXTRA_PROPERTIES" ]]; then
        printf '\n# From KAFKA_EXTRA_PROPERTIES\n%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$tmp"
    fi
    mv -f "$tmp" "$PROPS_FILE"

    cat >"$LOG4J_FILE" <<EOF
# Generated by deploy/kafka.sh - broker logging (Log4j 2).
status = warn
name = fitstream-kafka
appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = $LOG_DIR/server.log
appender.server.filePattern = $LOG_DIR/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 50MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 5
rootLogger.level = $KAFKA_LOG_LEVEL
rootLogger.appenderRef.server.ref = server
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
EOF
}

write_tools_log4j() {
    [[ -f "$TOOLS_LOG4J_FILE" ]] && return 0
    mkdir -p "$DIST_DIR"
    cat >"$TOOLS_LOG4J_FILE" <<'EOF'
# Generated by deploy/kafka.sh - logging for command line tools (stderr, WARN).
status = warn
name = fitstream-kafka-tools
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = stderr
EOF
}

# Runs a Kafka main class with the installed jars (tools logging to stderr).
run_tool() {
    local main="$1"
    shift
    write_tools_log4j
    "$(java_bin)" -Xmx512m "-Dlog4j2.configurationFile=$TOOLS_LOG4J_FILE" \
        -cp "$(classpath)" "$main" "$@"
}

# tail_log [N] [OFFSET]: last N lines of the server log written after byte
# OFFSET (i.e. by the current start attempt), plus the JVM's stdout/stderr.
tail_log() {
    local n="${1:-40}" offset="${2:-0}" size
    if [[ -s "$SERVER_LOG" ]]; then
        size="$(wc -c <"$SERVER_LOG")"
        ((size >= offset)) || offset=0
        printf -- '----- last %s lines of %s -----\n' "$n" "$SERVER_LOG" >&2
        tail -c +"$((offset + 1))" "$SERVER_LOG" | tail -n "$n" >&2
    fi
    if [[ -s "$OUT_FILE" ]]; then
        printf -- '----- last %s lines of %s -----\n' "$n" "$OUT_FILE" >&2
        tail -n "$n" "$OUT_FILE" >&2
    fi
}

# ----------------------------------------------------------------- secured broker
# secret NAME: the password kept in <data>/secrets/NAME.password.
secret() {
    local f="$SECRETS_DIR/$1.password"
    [[ -s "$f" ]] || die "missing $f (run: $0 start --secure)"
    printf '%s' "$(<"$f")"
}

# new_secret NAME: makes <data>/secrets/NAME.password (random, 48 hex digits) when missing;
# returns 0 when it made one.
new_secret() {
    local f="$SECRETS_DIR/$1.password"
    [[ -s "$f" ]] && return 1
    if ! openssl rand -hex 24 >"$f.tmp" || ! mv -f "$f.tmp" "$f"; then
        die "could not write $f"
    fi
}

need_secure_tools() {
    bash "$SCRIPT_DIR/ensure-package.sh" openssl || die "openssl could not be installed"
    bash "$SCRIPT_DIR/ensure-package.sh" python3-yaml "$KAFKA_PYTHON" -c 'import yaml' ||
        die "'$KAFKA_PYTHON' with PyYAML is needed to read $KAFKA_USERS_FILE (set KAFKA_PYTHON)"
    [[ -f "$KAFKA_USERS_FILE" ]] || die "users file $KAFKA_USERS_FILE not found (KAFKA_USERS_FILE)"
}

# cert_ok FILE: a certificate that is valid for one more day at least.
cert_ok() { [[ -s "$1" ]] && openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1; }

# openssl FILE ARGS: runs openssl, its messages in FILE, shown when it fails.
run_openssl() {
    local log="$1"
    shift
    openssl "$@" >"$log" 2>&1 || {
        cat "$log" >&2
        die "openssl $1 failed"
    }
}

# The local CA and the broker's certificate (SAN IP:127.0.0.1, DNS:localhost; server and
# client use: the node is a client of its own controller listener), made with openssl when
# missing, expired or expiring within a day, and the PKCS12 keystore of the broker.
ensure_certs() {
    local ca="$CA_FILE" ca_key="$TLS_DIR/ca.key" crt="$TLS_DIR/broker.crt"
    local key="$TLS_DIR/broker.key" p12="$TLS_DIR/broker.p12" cnf="$TLS_DIR/openssl.cnf"
    local pass="$SECRETS_DIR/keystore.password" log="$TLS_DIR/openssl.log"
    cat >"$cnf" <<'EOF'
# Written by deploy/kafka.sh: the extensions of the local CA and of the broker certificate.
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[broker]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
    if ! cert_ok "$ca" || [[ ! -s "$ca_key" ]]; then
        say "making a local CA: $ca"
        run_openssl "$log" req -x509 -new -config "$cnf" -extensions ca \
            -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$ca_key" -out "$ca" \
            -days 3650 -subj "/CN=fitstream local test CA" -set_serial "0x$(openssl rand -hex 16)"
        rm -f "$crt"
    fi
    if ! cert_ok "$crt" || [[ ! -s "$key" ]] ||
        ! openssl verify -CAfile "$ca" "$crt" >/dev/null 2>&1; then
        say "making the broker certificate: $crt (CN=$BROKER_CN, $KAFKA_CERT_DAYS days)"
        run_openssl "$log" req -new -config "$cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -nodes -keyout "$key" -out "$TLS_DIR/broker.csr" -subj "/CN=$BROKER_CN"
        run_openssl "$log" x509 -req -in "$TLS_DIR/broker.csr" -CA "$ca" -CAkey "$ca_key" \
            -set_serial "0x$(openssl rand -hex 16)" -days "$KAFKA_CERT_DAYS" \
            -extfile "$cnf" -extensions broker -out "$crt"
        rm -f "$TLS_DIR/broker.csr" "$p12"
    fi
    new_secret keystore && rm -f "$p12"
    if [[ ! -s "$p12" ]] || ! openssl pkcs12 -in "$p12" -noout -passin "file:$pass" >/dev/null 2>&1; then
        run_openssl "$log" pkcs12 -export -in "$crt" -inkey "$key" -certfile "$ca" \
            -name broker -out "$p12" -passout "file:$pass"
    fi
}

# The SCRAM users of the users file (USERS), a password for each (NEW_PASSWORDS: made now),
# and the client settings of each and of the admin in <data>/clients/.
USERS=()
NEW_PASSWORDS=()
FORMATTED_NOW=0
secure_users() {
    local out u
    out="$("$KAFKA_PYTHON" "$ACLS_PY" users "$KAFKA_USERS_FILE")" || die "cannot read $KAFKA_USERS_FILE"
    mapfile -t USERS <<<"$out"
    [[ -n "$out" ]] || USERS=()
    mkdir -p "$SECRETS_DIR" "$CLIENTS_DIR"
    if new_secret "$ADMIN_USER" && is_formatted; then
        rm -f "$SECRETS_DIR/$ADMIN_USER.password"
        die "the admin password of $KAFKA_DATA_DIR is lost; start afresh: $0 reset --secure"
    fi
    for u in ${USERS[@]+"${USERS[@]}"}; do
        [[ "$u" =~ ^[A-Za-z0-9._-]+$ ]] || die "user name '$u' in $KAFKA_USERS_FILE: not [A-Za-z0-9._-]+"
        [[ "$u" != "$ADMIN_USER" ]] || die "$KAFKA_USERS_FILE must not define the broker's super user '$ADMIN_USER'"
        if new_secret "$u"; then NEW_PASSWORDS+=("$u"); fi
    done
    local f pw keep=" $ADMIN_USER ${USERS[*]-} "
    for f in "$CLIENTS_DIR"/*.java.properties; do # users no longer in the file
        [[ -e "$f" ]] || continue
        u="${f##*/}"
        u="${u%.java.properties}"
        [[ "$keep" == *" $u "* ]] || rm -f "$CLIENTS_DIR/$u".{properties,java.properties,env}
    done
    for u in "$ADMIN_USER" ${USERS[@]+"${USERS[@]}"}; do
        pw="$(secret "$u")"
        write_clients "$u" "$pw"
    done
}

# write_clients USER PASSWORD: librdkafka, Java and fitstream (environment) client settings,
# and <data>/secrets/USER.scram for ConfigCommand --add-config-file.
write_clients() {
    local u="$1" pw="$2"
    printf '%s=password=%s\n' "$SCRAM_MECHANISM" "$pw" >"$SECRETS_DIR/$u.scram"
    cat >"$CLIENTS_DIR/$u.properties" <<EOF
# librdkafka client settings (rust-rdkafka, kcat -F, confluent-kafka) of $u on the local
# secured broker. Written by deploy/kafka.sh start --secure.
bootstrap.servers=$BOOTSTRAP
security.protocol=SASL_SSL
sasl.mechanisms=$SCRAM_MECHANISM
sasl.username=$u
sasl.password=$pw
ssl.ca.location=$CA_FILE
EOF
    cat >"$CLIENTS_DIR/$u.java.properties" <<EOF
# Java client settings (Kafka tools: --command-config, --producer.config, --consumer.config)
# of $u on the local secured broker. Written by deploy/kafka.sh start --secure.
bootstrap.servers=$BOOTSTRAP
security.protocol=SASL_SSL
sasl.mechanism=$SCRAM_MECHANISM
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$u" password="$pw";
ssl.truststore.type=PEM
ssl.truststore.location=$CA_FILE
EOF
    cat >"$CLIENTS_DIR/$u.env" <<EOF
# fitstream settings (environment, e.g. set -a; . $u.env; set +a) of $u on the local
# secured broker. Written by deploy/kafka.sh start --secure.
FITSTREAM__KAFKA__BOOTSTRAP_SERVERS=$BOOTSTRAP
FITSTREAM__KAFKA__PROPERTIES__SECURITY_PROTOCOL=SASL_SSL
FITSTREAM__KAFKA__PROPERTIES__SASL_MECHANISM=$SCRAM_MECHANISM
FITSTREAM__KAFKA__PROPERTIES__SASL_USERNAME=$u
FITSTREAM__KAFKA__PROPERTIES__SASL_PASSWORD=$pw
FITSTREAM__KAFKA__PROPERTIES__SSL_CA_LOCATION=$CA_FILE
EOF
}

# Before the secured broker starts: tools, certificates, users, passwords, client settings.
secure_prepare() {
    need_secure_tools
    mkdir -p "$TLS_DIR" "$SECRETS_DIR" "$CLIENTS_DIR" "$STATE_DIR"
    ensure_certs
    secure_users
}

# run_batch FILE LOG: the commands of FILE (a line each, words separated by tabs), their
# output in LOG. In one JVM (deploy/kafka/ToolBatch.java, by Java's source launcher) when the
# JDK's compiler is there, else in a JVM each. Fails unless every command succeeded.
run_batch() {
    local file="$1" log="$2" java
    java="$(java_bin)"
    write_tools_log4j
    if [[ -x "$(dirname -- "$(readlink -f -- "$java")")/javac" ]]; then
        "$java" -Xmx512m -XX:TieredStopAtLevel=1 "-Dlog4j2.configurationFile=$TOOLS_LOG4J_FILE" \
            -cp "$(classpath)" "$TOOL_BATCH" "$file" >"$log" 2>&1 </dev/null &&
            grep -q '^toolbatch: [0-9]* commands ok$' "$log"
        return
    fi
    local -a words
    : >"$log"
    while IFS=$'\t' read -r -a words; do
        ((${#words[@]})) || continue
        printf '$ %s\n' "${words[*]}" >>"$log"
        run_tool "${words[@]}" >>"$log" 2>&1 </dev/null || return 1
    done <"$file"
}

# secure_sync FORCE: makes the running broker's SCRAM users and ACLs those of the users
# file: deploy/kafka/acls.py plans, the Kafka tools (AclCommand, ConfigCommand) apply.
# Skipped when neither the file nor acls.py changed since the last sync and no password is
# new, unless FORCE is 1.
secure_sync() {
    local force="$1" want
    want="$(cat "$KAFKA_USERS_FILE" "$ACLS_PY" | sha256sum | cut -d' ' -f1)"
    if ((!force && ${#NEW_PASSWORDS[@]} == 0)) && [[ -f "$SYNC_STAMP" && "$(<"$SYNC_STAMP")" == "$want" ]]; then
        say "users and ACLs as in $KAFKA_USERS_FILE (unchanged since the last sync)"
        return 0
    fi
    mkdir -p "$STATE_DIR"
    rm -f "$SYNC_STAMP"
    local start_s=$SECONDS u
    local -a connect=(--bootstrap "$BOOTSTRAP" --command-config "$ADMIN_CONFIG") listing=() reset=()
    # What the broker has; a cluster formatted by this run has no ACLs and only the admin.
    if ((!FORMATTED_NOW)); then
        "$KAFKA_PYTHON" "$ACLS_PY" list "${connect[@]}" >"$STATE_DIR/list.tsv" || die "acls.py list failed"
        run_batch "$STATE_DIR/list.tsv" "$STATE_DIR/listing.log" || {
            tail -n 30 "$STATE_DIR/listing.log" >&2
            die "could not list the broker's ACLs and SCRAM users as $ADMIN_USER (log: $STATE_DIR/listing.log)"
        }
        listing=(--listing "$STATE_DIR/listing.log")
    fi
    for u in ${NEW_PASSWORDS[@]+"${NEW_PASSWORDS[@]}"}; do reset+=(--reset "$u"); done
    "$KAFKA_PYTHON" "$ACLS_PY" plan "$KAFKA_USERS_FILE" "${connect[@]}" --secrets "$SECRETS_DIR" \
        --keep "$ADMIN_USER" ${listing[@]+"${listing[@]}"} ${reset[@]+"${reset[@]}"} \
        >"$STATE_DIR/plan.tsv" || die "acls.py plan failed"
    local total
    total="$(grep -c . "$STATE_DIR/plan.tsv" || true)"
    : >"$STATE_DIR/sync.log"
    if ((total > 0)) && ! run_batch "$STATE_DIR/plan.tsv" "$STATE_DIR/sync.log"; then
        tail -n 30 "$STATE_DIR/sync.log" >&2
        die "the users/ACLs sync failed (log: $STATE_DIR/sync.log); the broker runs; retry: $0 sync --secure"
    fi
    NEW_PASSWORDS=()
    printf '%s\n' "$want" >"$SYNC_STAMP"
    say "users and ACLs synced from $KAFKA_USERS_FILE: $total commands in $((SECONDS - start_s))s (log: $STATE_DIR/sync.log)"
}

# Where the clients find the secured broker.
secure_summary() {
    echo "  security:  SASL_SSL, $SCRAM_MECHANISM; ACLs from $KAFKA_USERS_FILE"
    echo "  ca:        $CA_FILE"
    echo "  clients:   $CLIENTS_DIR/<user>.properties (librdkafka), <user>.java.properties (Java), <user>.env (fitstream)"
    if [[ -d "$CLIENTS_DIR" ]]; then
        local f users=""
        for f in "$CLIENTS_DIR"/*.java.properties; do
            [[ -e "$f" ]] || continue
            f="${f##*/}"
            users+=" ${f%.java.properties}"
        done
        echo "  users:    ${users:- (none yet)}"
    fi
}

# The broker is ready: for the secured one, after its users and ACLs are synced.
announce_ready() {
    if ((SECURE)); then
        secure_sync 0
        say "ready at $BOOTSTRAP (SASL_SSL, $SCRAM_MECHANISM)"
        secure_summary
    else
        say "ready at $BOOTSTRAP"
    fi
}

# ----------------------------------------------------------------- commands
cmd_install() {
    take_lock 8 "$FITSTREAM_KAFKA_HOME/.install-$KAFKA_VERSION.lock"
    if is_installed; then
        say "Kafka $KAFKA_VERSION already installed in $LIBS_DIR"
        return 0
    fi
    command -v "$KAFKA_MVN" >/dev/null 2>&1 || die "maven ('$KAFKA_MVN') not found"
    check_java
    say "installing Apache Kafka $KAFKA_VERSION from Maven Central into $LIBS_DIR ..."
    mkdir -p "$DIST_DIR"
    local tmp="$DIST_DIR/libs.tmp.$$" start_s=$SECONDS
    rm -rf "$tmp"
    # Maven's output goes to a log file (it only has content on errors with -q,
    # plus stray ANSI resets from jansi).
    if ! "$KAFKA_MVN" -B -q -f "$POM" dependency:copy-dependencies \
        -Dkafka.version="$KAFKA_VERSION" \
        -DoutputDirectory="$tmp" \
        -DincludeScope=runtime >"$DIST_DIR/mvn.log" 2>&1; then
        rm -rf "$tmp"
        sed -e 's/\x1b\[[0-9;]*m//g' "$DIST_DIR/mvn.log" | tail -n 40 >&2
        die "mvn dependency:copy-dependencies failed for org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || {
        rm -rf "$tmp"
        die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn; is $KAFKA_VERSION a real release?"
    }
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    printf 'version=%s\npom_sha256=%s\n' "$KAFKA_VERSION" "$(pom_hash)" >"$STAMP_FILE"
    say "installed $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS_DIR" | cut -f1)) in $((SECONDS - start_s))s"
}

ensure_installed() { is_installed || cmd_install; }

do_format() {
    local cid="$KAFKA_CLUSTER_ID"
    render_config
    rm -rf "$KRAFT_DIR"
    mkdir -p "$KRAFT_DIR"
    if [[ -z "$cid" ]]; then
        cid="$(run_tool kafka.tools.StorageTool random-uuid | tail -n 1)"
    fi
    # The secured broker's admin is in the bootstrap metadata: the broker itself logs in
    # as it (inter-broker listener). The users of the users file are made after the start.
    local -a scram=()
    if ((SECURE)); then
        scram=(--add-scram "$SCRAM_MECHANISM=[name=$ADMIN_USER,password=$(secret "$ADMIN_USER")]")
        rm -f "$SYNC_STAMP"
    fi
    say "formatting KRaft storage in $KRAFT_DIR (cluster id $cid)"
    run_tool kafka.tools.StorageTool format --config "$PROPS_FILE" \
        --cluster-id "$cid" --standalone ${scram[@]+"${scram[@]}"} >"$LOG_DIR/format.out" 2>&1 || {
        cat "$LOG_DIR/format.out" >&2
        die "storage format failed"
    }
    is_formatted || die "storage format did not create $KRAFT_DIR/meta.properties"
    FORMATTED_NOW=1
}

cmd_format() {
    local pid
    if pid="$(broker_pid)"; then
        die "broker is running (pid $pid); stop it first"
    fi
    ensure_installed
    if ((SECURE)); then secure_prepare; fi
    do_format
}

cmd_start() {
    local pid
    if pid="$(broker_pid)"; then
        if ((SECURE)); then
            need_secure_tools
            secure_users
        fi
        if port_open "$KAFKA_PORT"; then
            say "already running (pid $pid)"
            announce_ready
            return 0
        fi
        say "already starting (pid $pid), waiting ..."
        wait_ready "$pid" 0
        announce_ready
        return 0
    fi
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $KAFKA_HOST:$p is already in use by another process (not this script's broker for $KAFKA_DATA_DIR)"
        fi
    done
    ensure_installed
    check_java
    if ((SECURE)); then secure_prepare; fi
    render_config
    is_formatted || do_format

    local offset=0
    [[ -f "$SERVER_LOG" ]] && offset="$(wc -c <"$SERVER_LOG")"
    say "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (controller $KAFKA_HOST:$KAFKA_CONTROLLER_PORT, data $KAFKA_DATA_DIR)"

    local java
    java="$(java_bin)"
    local -a jvm
    # shellcheck disable=SC2206  # word splitting of the *_OPTS variables is intended
    jvm=($KAFKA_HEAP_OPTS
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
        "-Dkafka.logs.dir=$LOG_DIR" "-Dlog4j2.configurationFile=$LOG4J_FILE"
        $KAFKA_OPTS)
    local -a detach=()
    command -v setsid >/dev/null 2>&1 && detach=(setsid)
    printf '%s\n' "$KAFKA_VERSION" >"$RUN_VERSION_FILE"
    rm -f "$PID_FILE"
    # The inner shell writes its own pid (kept by exec) so the pid file is exact
    # even if setsid forks. Lock descriptors are closed so the broker does not
    # hold them.
    (
        cd "$KAFKA_DATA_DIR"
        exec 8>&- 9>&-
        # shellcheck disable=SC2016
        nohup ${detach[@]+"${detach[@]}"} bash -c 'echo $$ >"$1"; shift; exec "$@"' kafka-launch "$PID_FILE" \
            "$java" "${jvm[@]}" -cp "$(classpath)" "$MAIN_CLASS" "$PROPS_FILE" \
            >"$OUT_FILE" 2>&1 </dev/null &
    )
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$PID_FILE" ]] && break
        sleep 0.1
    done
    pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] || {
        tail_log
        die "broker process did not start"
    }
    say "started pid $pid, waiting for the broker (up to ${KAFKA_START_LIMIT}s, ${KAFKA_START_TIMEOUT}s without progress) ..."
    wait_ready "$pid" "$offset"
    announce_ready
}

# wait_ready PID LOG_OFFSET: until the server log (after LOG_OFFSET) says the
# server started AND the broker port accepts connections. Gives up when the log has not
# grown for KAFKA_START_TIMEOUT seconds, or after KAFKA_START_LIMIT seconds in all.
wait_ready() {
    local pid="$1" offset="$2" start_s=$SECONDS logged=0 size=0 seen=-1 moved_s=$SECONDS why=""
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail_log 40 "$offset"
            rm -f "$PID_FILE"
            die "broker process $pid exited during startup (see $LOG_DIR)"
        fi
        if [[ -f "$SERVER_LOG" ]]; then
            size="$(wc -c <"$SERVER_LOG")"
            ((size < offset)) && offset=0 # rotated
            if ((size != seen)); then
                seen=$size
                moved_s=$SECONDS
            fi
        fi
        if ((!logged)); then
            # grep -c reads all input (no SIGPIPE under pipefail).
            if [[ -f "$SERVER_LOG" ]] &&
                tail -c +"$((offset + 1))" "$SERVER_LOG" | grep -cF "$STARTED_MARKER" >/dev/null; then
                logged=1
            fi
            if ((!logged)) && [[ -f "$OUT_FILE" ]] && grep -qF "$STARTED_MARKER" "$OUT_FILE"; then
                logged=1
            fi
        fi
        if ((logged)) && port_open "$KAFKA_PORT"; then
            return 0
        fi
        if ((SECONDS - moved_s >= KAFKA_START_TIMEOUT)); then
            why="its server log did not grow for ${KAFKA_START_TIMEOUT}s"
        elif ((SECONDS - start_s >= KAFKA_START_LIMIT)); then
            why="it was still starting after ${KAFKA_START_LIMIT}s"
        fi
        if [[ -n "$why" ]]; then
            tail_log 40 "$offset"
            warn "broker not ready: $why; stopping it"
            stop_pid "$pid"
            die "broker did not become ready: $why (see $LOG_DIR; KAFKA_START_TIMEOUT, KAFKA_START_LIMIT)"
        fi
        sleep 0.5
    done
}

stop_pid() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < KAFKA_STOP_TIMEOUT * 4; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
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
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        say "not running ($BOOTSTRAP)"
        return 0
    fi
    say "stopping pid $pid (SIGTERM, up to ${KAFKA_STOP_TIMEOUT}s) ..."
    local start_s=$SECONDS
    stop_pid "$pid"
    say "stopped in $((SECONDS - start_s))s"
}

cmd_status() {
    local pid ver="$KAFKA_VERSION" cid=""
    [[ -f "$RUN_VERSION_FILE" ]] && ver="$(<"$RUN_VERSION_FILE")"
    [[ -f "$KRAFT_DIR/meta.properties" ]] &&
        cid="$(sed -n 's/^cluster\.id=//p' "$KRAFT_DIR/meta.properties")"
    if pid="$(broker_pid)"; then
        local state=running
        port_open "$KAFKA_PORT" || state="running (port $KAFKA_PORT not accepting yet)"
        say "$state"
        echo "  pid:       $pid"
        echo "  bootstrap: $BOOTSTRAP"
        echo "  version:   $ver"
        echo "  cluster:   ${cid:-?}"
        echo "  data:      $KAFKA_DATA_DIR"
        echo "  log:       $SERVER_LOG"
        if ((SECURE)); then secure_summary; fi
        return 0
    fi
    say "stopped"
    echo "  bootstrap: $BOOTSTRAP (not running)"
    echo "  data:      $KAFKA_DATA_DIR$(is_formatted || echo ' (not formatted)')"
    if ((SECURE)); then secure_summary; fi
    return 3
}

cmd_logs() {
    local follow=0 n=100 a
    for a in "$@"; do
        case "$a" in
        -f | --follow) follow=1 ;;
        [0-9]*) n="$a" ;;
        *) die "usage: logs [-f] [LINES]" ;;
        esac
    done
    [[ -f "$SERVER_LOG" ]] || die "no server log yet ($SERVER_LOG)"
    if ((follow)); then
        exec tail -n "$n" -F "$SERVER_LOG"
    fi
    tail -n "$n" "$SERVER_LOG"
}

cmd_reset() {
    cmd_stop
    if [[ -d "$KAFKA_DATA_DIR" ]]; then
        rm -rf "$KAFKA_DATA_DIR"
        say "deleted $KAFKA_DATA_DIR"
    else
        say "nothing to delete ($KAFKA_DATA_DIR)"
    fi
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    # --secure before or right after the command: the secured broker.
    if [[ "$cmd" == --secure ]]; then
        use_secure
        cmd="${1:-}"
        [[ $# -gt 0 ]] && shift
    elif [[ "${1:-}" == --secure ]]; then
        use_secure
        shift
    fi
    validate_settings
    case "$cmd" in
    install) cmd_install ;;
    format)
        take_lock 9 "$FITSTREAM_KAFKA_HOME/.data-$KAFKA_PORT.lock"
        cmd_format
        ;;
    start)
        take_lock 9 "$FITSTREAM_KAFKA_HOME/.data-$KAFKA_PORT.lock"
        cmd_start
        ;;
    stop)
        take_lock 9 "$FITSTREAM_KAFKA_HOME/.data-$KAFKA_PORT.lock"
        cmd_stop
        ;;
    restart)
        take_lock 9 "$FITSTREAM_KAFKA_HOME/.data-$KAFKA_PORT.lock"
        cmd_stop
        cmd_start
        ;;
    reset)
        take_lock 9 "$FITSTREAM_KAFKA_HOME/.data-$KAFKA_PORT.lock"
        cmd_reset
        ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    tool)
        [[ $# -ge 1 ]] || die "usage: tool MAIN_CLASS [ARGS...]"
        is_installed || die "not installed; run: $0 install"
        run_tool "$@"
        ;;
    topics)
        is_installed || die "not installed; run: $0 install"
        if ((SECURE)); then
            [[ -f "$ADMIN_CONFIG" ]] || die "no $ADMIN_CONFIG; run: $0 start --secure"
            run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
                --command-config "$ADMIN_CONFIG" "$@"
        else
            run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"
        fi
        ;;
    sync)
        ((SECURE)) || die "sync is for the secured broker: $0 sync --secure"
        take_lock 9 "$FITSTREAM_KAFKA_HOME/.data-$KAFKA_PORT.lock"
        broker_pid >/dev/null || die "the secured broker is not running ($BOOTSTRAP)"
        need_secure_tools
        secure_users
        secure_sync 1
        ;;
    classpath) classpath ;;
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
