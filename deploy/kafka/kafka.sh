#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, combined broker+controller) for local runs and
# tests, started from the jars on Maven Central: no Docker needed.
#
#   kafka.sh fetch            resolve the jars with Maven into deploy/kafka/.cache/libs
#   kafka.sh start            format (first time) and start; waits for a real produce+consume
#   kafka.sh stop             SIGTERM, then SIGKILL after a grace period
#   kafka.sh status           exit 0 when the broker answers
#
# Settings (environment): KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1),
# KAFKA_DATA_DIR (<repo>/.run/kafka), KAFKA_HEAP (512m), PYTHON (<repo>/.venv/bin/python).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
libs="$here/.cache/libs"
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
data_dir=${KAFKA_DATA_DIR:-$repo/.run/kafka}
heap=${KAFKA_HEAP:-512m}
python=${PYTHON:-$repo/.venv/bin/python}
pid_file="$data_dir/kafka.pid"
log_file="$data_dir/kafka.log"

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  echo "kafka: resolving broker jars from Maven Central (first time only)" >&2
  local started=$SECONDS
  rm -rf "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  touch "$libs/.complete"
  echo "kafka: jars resolved in $((SECONDS - started))s" >&2
}

write_config() {
  mkdir -p "$data_dir/logs"
  cat > "$data_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data_dir/logs
num.partitions=6
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=4194304
log.retention.hours=168
PROPS
  cat > "$data_dir/log4j2.yaml" <<'LOG'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
LOG
}

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

start() {
  fetch
  if running; then echo "kafka: already running on 127.0.0.1:$port (pid $(cat "$pid_file"))" >&2; return 0; fi
  write_config
  if [ ! -f "$data_dir/logs/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)
    java -cp "$libs/*" kafka.tools.StorageTool format --standalone -t "$cluster_id" \
      -c "$data_dir/server.properties" >/dev/null
  fi
  # setsid: the broker must outlive the shell (make up) that started it.
  KAFKA_HEAP_OPTS="-Xmx$heap -Xms$heap" setsid java "-Xmx$heap" "-Xms$heap" \
    -Dlog4j2.configurationFile="$data_dir/log4j2.yaml" -cp "$libs/*" \
    kafka.Kafka "$data_dir/server.properties" >"$log_file" 2>&1 < /dev/null &
  echo $! > "$pid_file"
  if ! "$python" "$here/probe.py" "127.0.0.1:$port" --timeout 90; then
    echo "kafka: did not become ready; last log lines:" >&2
    tail -n 30 "$log_file" >&2
    return 1
  fi
  echo "kafka: ready on 127.0.0.1:$port (pid $(cat "$pid_file"), data $data_dir)" >&2
}

stop() {
  running || { rm -f "$pid_file"; return 0; }
  local pid; pid=$(cat "$pid_file")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$pid_file"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running && "$python" "$here/probe.py" "127.0.0.1:$port" --timeout 5 ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
