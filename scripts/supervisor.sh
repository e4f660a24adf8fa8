#!/usr/bin/env bash
# Run SenseVoice under Supervisor as an ordinary user, with everything in one directory of
# your choice: configs, socket, pid file, logs; optionally Redis and nginx beside the app.
# No root and no system paths. Templates: deploy/supervisor/, deploy/nginx/, deploy/redis/.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage:
  scripts/supervisor.sh start  DIR [options]  render the configs into DIR, start supervisord,
                                              wait until every app is ready (see --wait)
  scripts/supervisor.sh render DIR [options]  only render them (to read, check or copy)
  scripts/supervisor.sh status DIR            each program: up or not, and whether the app is
                                              ready (its /ready); `ctl DIR status` for Supervisor's own
  scripts/supervisor.sh stop   DIR            stop everything gracefully, then supervisord
  scripts/supervisor.sh ctl    DIR ARGS...    any supervisorctl command, e.g.
                                              ctl DIR restart sensevoice:*   ctl DIR tail sensevoice

Options for start and render:
  --replicas N          N app processes on ports BASE..BASE+N-1 (default: one process on
                        SENSEVOICE_PORT, or 7860)
  --base-port PORT      the first replica's port (default 7861)
  --with-redis          run redis-server too and point the app's cache at it
                        (SENSEVOICE_CACHE_URL, unless you set it)
  --redis-port PORT     Redis's port (default 6379)
  --with-nginx [ADDR:]PORT
                        run nginx in front of the app(s), listening there
  --startsecs N         seconds a process must stay up to count as started (default 60,
                        enough for the model load)
  --wait SECONDS        how long start waits for every app's /ready (default 300; 0: do not
                        wait); a first start that downloads or exports the model may take longer
  --venv DIR            the Python environment with the app (default: the repo's .venv)
  --foreground          run supervisord in the foreground (containers); Ctrl-C stops all

Settings: every SENSEVOICE_* variable set when you run start/render is written into the
app's program config (`python app_sensevoice.py --help` lists them); secrets
(SENSEVOICE_API_KEYS, SENSEVOICE_UI_AUTH) reach the app through supervisord's environment
and are never written to a file. Example:
  SENSEVOICE_MODEL=/models/SenseVoiceSmall SENSEVOICE_VAD_MODEL=/models/fsmn-vad \
      scripts/supervisor.sh start ~/sensevoice --replicas 2 --with-redis --with-nginx 8080
EOF
}

REPO=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "supervisor.sh: $*" >&2; exit 1; }

case ${1:-} in -h | --help | help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage >&2; exit 2; }
command=$1
DIR=$2
shift 2

replicas=0
base_port=7861
with_redis=false
redis_port=6379
nginx_listen=""
startsecs=60
wait_s=300
venv="$REPO/.venv"
foreground=false
if [ "$command" = start ] || [ "$command" = render ]; then
    while [ $# -gt 0 ]; do
        case $1 in
            --replicas) replicas=$2; shift 2 ;;
            --base-port) base_port=$2; shift 2 ;;
            --with-redis) with_redis=true; shift ;;
            --redis-port) redis_port=$2; shift 2 ;;
            --with-nginx) nginx_listen=$2; shift 2 ;;
            --startsecs) startsecs=$2; shift 2 ;;
            --wait) wait_s=$2; shift 2 ;;
            --venv) venv=$2; shift 2 ;;
            --foreground) foreground=true; shift ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
    done
fi
venv=$(cd "$venv" 2>/dev/null && pwd) || die "no Python environment at $venv (run scripts/install.sh)"
PY="$venv/bin/python"
[ -x "$venv/bin/supervisord" ] || die "supervisor is not installed in $venv (pip install supervisor)"

ctl() { "$venv/bin/supervisorctl" -c "$DIR/supervisord.conf" "$@"; }

supervisord_pid() {  # prints the pid of DIR's supervisord if it is running
    local pid
    pid=$(cat "$DIR/supervisord.pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

find_binary() {  # $1 name: from PATH, else where Debian puts it (sbin is not in users' PATH)
    command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } ||
        die "$1 not found; install it (Debian: apt-get install $1)"
}

# What the app itself will use, read through its own settings class (so a wrong value fails
# here, with the app's hint) and its own wording for the 413 answer that nginx repeats.
app_facts() {
    (cd "$REPO" && "$PY" -c '
from sensevoice_server.audio import too_large
from sensevoice_server.settings import Settings
s = Settings()
print(s.max_upload_bytes)
print(int(-(-s.drain_timeout_s // 1)))
print(too_large(s.max_upload_bytes).message)
')
}

render() {
    # Private: a rendered file may hold a Redis password (in SENSEVOICE_CACHE_URL).
    umask 077
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    mkdir -p "$DIR/logs" "$DIR/programs"
    rm -f "$DIR"/programs/*.conf  # a program left from an earlier `start` with other options

    local ports=() port
    if [ "$replicas" -gt 0 ]; then
        for ((port = base_port; port < base_port + replicas; port++)); do ports+=("$port"); done
        # CPU inference: each replica gets its share of the cores unless told otherwise
        if [ -z "${SENSEVOICE_NCPU:-}" ]; then
            export SENSEVOICE_NCPU=$(( $(nproc) / replicas > 0 ? $(nproc) / replicas : 1 ))
        fi
    else
        ports=("${SENSEVOICE_PORT:-7860}")
    fi
    if $with_redis && [ -z "${SENSEVOICE_CACHE_URL:-}" ]; then
        export SENSEVOICE_CACHE_URL="redis://127.0.0.1:$redis_port/0"
    fi

    local facts max_body drain message stopwaitsecs
    facts=$(app_facts) || die "could not read the app's settings (the error is above)"
    max_body=$(sed -n 1p <<<"$facts")
    drain=$(sed -n 2p <<<"$facts")
    message=$(sed -n 3p <<<"$facts")
    # drain, then uvicorn's 5 s graceful close (main.py), then a margin before the SIGKILL
    stopwaitsecs=$((drain + 60))

    local common=(DIR="$DIR" REPO="$REPO" VENV="$venv" STARTSECS="$startsecs"
        STOPWAITSECS="$stopwaitsecs")
    cp "$REPO/deploy/supervisor/supervisord.conf" "$DIR/supervisord.conf"
    if [ "$replicas" -gt 0 ]; then
        "$PY" "$REPO/deploy/render.py" "$REPO/deploy/supervisor/sensevoice-replicas.conf" \
            "$DIR/programs/sensevoice.conf" "${common[@]}" REPLICAS="$replicas" \
            BASE_PORT="$base_port"
    else
        "$PY" "$REPO/deploy/render.py" "$REPO/deploy/supervisor/sensevoice.conf" \
            "$DIR/programs/sensevoice.conf" "${common[@]}"
    fi
    if $with_redis; then
        "$PY" "$REPO/deploy/render.py" "$REPO/deploy/supervisor/redis.conf" \
            "$DIR/programs/redis.conf" "${common[@]}" REDIS_PORT="$redis_port" \
            REDIS_SERVER="$(find_binary redis-server)"
    fi

    printf 'http://127.0.0.1:%s\n' "${ports[@]}" >"$DIR/apps"
    rm -f "$DIR/nginx-url"
    if [ -n "$nginx_listen" ]; then
        local nginx user="" addrs
        nginx=$(find_binary nginx)
        mkdir -p "$DIR/nginx/tmp"
        if [ "$(id -u)" = 0 ]; then
            # Started as root (containers), nginx's workers would become "nobody", who cannot
            # write temp files inside DIR: let them run as DIR's owner instead.
            user="user $(stat -c %U "$DIR") $(stat -c %G "$DIR");"
        fi
        addrs=$(printf '127.0.0.1:%s ' "${ports[@]}")
        "$PY" "$REPO/deploy/render.py" "$REPO/deploy/nginx/nginx.conf" "$DIR/nginx/nginx.conf" \
            NGINX_USER="$user"
        "$PY" "$REPO/deploy/render.py" "$REPO/deploy/nginx/sensevoice.conf" \
            "$DIR/nginx/sensevoice.conf" LISTEN="$nginx_listen" REPLICA_ADDRS="$addrs" \
            MAX_BODY_BYTES="$max_body" TOO_LARGE_MESSAGE="$message"
        "$PY" "$REPO/deploy/render.py" "$REPO/deploy/supervisor/nginx.conf" \
            "$DIR/programs/nginx.conf" "${common[@]}" NGINX="$nginx"
        "$nginx" -p "$DIR/nginx" -c nginx.conf -e stderr -t -q ||
            die "nginx rejected $DIR/nginx/nginx.conf"
        echo "http://127.0.0.1:${nginx_listen##*:}" >"$DIR/nginx-url"
    fi
    echo "rendered into $DIR: supervisord.conf, programs/$(cd "$DIR/programs" && ls | tr '\n' ' ')"
}

# One line per program: up or not (Supervisor's STARTING and RUNNING are both "up"), and what
# its app says at /ready (scripts/supervisor_programs.py says why).
show_status() {
    supervisord_pid >/dev/null || { echo "supervisord is not running in $DIR"; return 3; }
    "$PY" "$REPO/scripts/supervisor_programs.py" status "$DIR"
}

case $command in
    render)
        render
        ;;
    start)
        if supervisord_pid >/dev/null; then
            die "supervisord already runs in $DIR: \`$0 stop $DIR\` first, or use ctl"
        fi
        render
        if $foreground; then
            exec "$venv/bin/supervisord" -n -c "$DIR/supervisord.conf"
        fi
        "$venv/bin/supervisord" -c "$DIR/supervisord.conf"
        for _ in $(seq 50); do
            ctl pid >/dev/null 2>&1 && break
            sleep 0.2
        done
        echo "supervisord started; waiting up to ${wait_s} s for the apps' /ready (--wait)"
        waited=0
        "$PY" "$REPO/scripts/supervisor_programs.py" wait "$DIR" "$wait_s" "$0" || waited=$?
        echo "logs: $DIR/logs/   stop: $0 stop $DIR"
        exit "$waited"
        ;;
    status)
        DIR=$(cd "$DIR" 2>/dev/null && pwd) || die "no such directory: $DIR"
        show_status
        ;;
    stop)
        DIR=$(cd "$DIR" 2>/dev/null && pwd) || die "no such directory: $DIR"
        pid=$(supervisord_pid) || { echo "supervisord is not running in $DIR"; exit 0; }
        # Every program gets its stopsignal (the app drains first), then supervisord exits.
        ctl shutdown
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        echo "stopped"
        ;;
    ctl)
        DIR=$(cd "$DIR" 2>/dev/null && pwd) || die "no such directory: $DIR"
        ctl "$@"
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac
