#!/usr/bin/env bash
# The local stack: Kafka (unless KAFKA_BOOTSTRAP_SERVERS points elsewhere), topics, and the
# three services in the background on SQLite under .run/.
#   stack.sh up | down | status
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
run="$repo/.run"
py="$repo/.venv/bin/python"
services=(membership:8001 evaluation:8002 feedback:8003)
mkdir -p "$run"

up() {
  local started=$SECONDS
  if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    "$repo/deploy/kafka/kafka.sh" start
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${KAFKA_PORT:-9092}
  fi
  "$py" -m unionhub_runtime.topics
  # The read APIs check signed tokens: a local shared secret, made once, kept private.
  if [ ! -s "$run/auth.secret" ]; then (umask 077 && "$py" -c 'import secrets; print(secrets.token_hex(32))' > "$run/auth.secret"); fi
  UNIONHUB_AUTH_HS256_SECRET=$(cat "$run/auth.secret")
  export UNIONHUB_AUTH_HS256_SECRET
  for entry in "${services[@]}"; do
    local name=${entry%%:*} port=${entry##*:} upper
    upper=$(echo "$name" | tr a-z A-Z)
    if [ -f "$run/$name.pid" ] && kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then continue; fi
    if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "stack: port $port is taken by a process this stack did not start; stop it first" >&2; exit 1
    fi
    # No subshell around it: a waiting parent would keep the caller's output pipe open.
    env "${upper}_DATABASE_URL=sqlite+aiosqlite:///$run/$name.db" \
      setsid "$py" -m "$name" serve --migrate >"$run/$name.log" 2>&1 < /dev/null &
    echo $! > "$run/$name.pid"
  done
  for entry in "${services[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    for _ in $(seq 1 360); do  # up to 90 s: a broker that just started is still electing leaders
      if ! kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then
        echo "stack: $name exited; last log lines:" >&2; tail -n 20 "$run/$name.log" >&2; exit 1
      fi
      if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null; then break; fi
      sleep 0.25
    done
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { echo "stack: $name not ready" >&2; exit 1; }
  done
  # Exported: `. .run/env && .venv/bin/unionhub --service membership status` sees what the
  # services see (the operators' tool reads their settings from the environment).
  (umask 077 && cat > "$run/env" <<ENV
export KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS
export MEMBERSHIP_URL=http://127.0.0.1:8001
export EVALUATION_URL=http://127.0.0.1:8002
export FEEDBACK_URL=http://127.0.0.1:8003
export MEMBERSHIP_DATABASE_URL=sqlite+aiosqlite:///$run/membership.db
export EVALUATION_DATABASE_URL=sqlite+aiosqlite:///$run/evaluation.db
export FEEDBACK_DATABASE_URL=sqlite+aiosqlite:///$run/feedback.db
export UNIONHUB_AUTH_HS256_SECRET=$UNIONHUB_AUTH_HS256_SECRET
export UNIONHUB_TOKEN=$("$py" -m unionhub_runtime.auth)
ENV
)
  grep -v '^export UNIONHUB_TOKEN=\|^export UNIONHUB_AUTH' "$run/env"
  echo "UNIONHUB_TOKEN=… (a local token with every read scope, in $run/env)"
  echo "stack: up in $((SECONDS - started))s (logs in .run/*.log; stop with: make down)"
}

stop_services() {
  for entry in "${services[@]}"; do
    local name=${entry%%:*}
    if [ -f "$run/$name.pid" ]; then
      local pid; pid=$(cat "$run/$name.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$run/$name.pid"
    fi
  done
}

down() {
  stop_services
  if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then "$repo/deploy/kafka/kafka.sh" stop; fi
  echo "stack: down (data kept in .run/)"
}

# The services on empty databases (Kafka and its topics stay): what `make run` plays against.
fresh() {
  stop_services
  rm -f "$run"/membership.db* "$run"/evaluation.db* "$run"/feedback.db*
  up
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  fresh) fresh ;;
  *) echo "usage: $0 up|down|fresh" >&2; exit 2 ;;
esac
