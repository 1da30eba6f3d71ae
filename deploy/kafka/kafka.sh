#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, combined broker+controller) for local runs and
# tests, started from the jars on Maven Central: no Docker needed.
#
#   kafka.sh fetch            resolve the jars with Maven into deploy/kafka/.cache/libs
#   kafka.sh start            format (first time) and start; waits for a real produce+consume
#   kafka.sh stop             SIGTERM, then SIGKILL after a grace period
#   kafka.sh status           exit 0 when the broker answers
#   kafka.sh acls [PREFIX]    (sasl_ssl mode) grants each service's principal its topics
#
# Settings (environment): KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1),
# KAFKA_DATA_DIR (<repo>/.run/kafka), KAFKA_HEAP (512m), PYTHON (<repo>/.venv/bin/python),
# KAFKA_MODE: plaintext (default) or sasl_ssl. In sasl_ssl mode the client listener speaks
# SASL_SSL with SCRAM-SHA-512: a throwaway CA and broker certificate are made in
# $KAFKA_DATA_DIR/secrets, users admin/membership/evaluation/feedback are created at format
# time with random passwords (secrets/credentials.env), and StandardAuthorizer enforces ACLs.
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
  local wanted; wanted=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)
  if [ "$(cat "$libs/.complete" 2>/dev/null)" = "$wanted" ]; then return 0; fi
  echo "kafka: resolving broker jars from Maven Central (first time only)" >&2
  local started=$SECONDS
  rm -rf "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime >&2
  echo "$wanted" > "$libs/.complete"
  echo "kafka: jars resolved in $((SECONDS - started))s" >&2
}

# One node of a cluster (deploy/kafka/cluster.sh) when KAFKA_VOTERS names the controllers
# ("1@127.0.0.1:9093,2@…"): node KAFKA_NODE_ID, formatted with KAFKA_CLUSTER_ID, replicated.
node_id=${KAFKA_NODE_ID:-1}
voters=${KAFKA_VOTERS:-}
replicas=1 min_isr=1
if [ -n "$voters" ]; then replicas=3 min_isr=2; fi

write_config() {
  mkdir -p "$data_dir/logs"
  local quorum="controller.quorum.bootstrap.servers=127.0.0.1:$controller_port"
  if [ -n "$voters" ]; then quorum="controller.quorum.voters=$voters"; fi
  cat > "$data_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$node_id
$quorum
$(listener_config)
controller.listener.names=CONTROLLER
log.dirs=$data_dir/logs
num.partitions=6
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
min.insync.replicas=$min_isr
default.replication.factor=$replicas
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

mode=${KAFKA_MODE:-plaintext}
secrets="$data_dir/secrets"
users=(admin membership evaluation feedback)

listener_config() {
  if [ "$mode" = plaintext ]; then
    cat <<CONF
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
CONF
    return
  fi
  # shellcheck disable=SC1091
  . "$secrets/credentials.env"
  cat <<CONF
listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=SASL_SSL://127.0.0.1:$port
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$secrets/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
# The controller listener is loopback-only PLAINTEXT inside this one process; the broker
# reaches its controller through it as ANONYMOUS.
super.users=User:admin;User:ANONYMOUS
CONF
}

make_secrets() {
  [ -f "$secrets/credentials.env" ] && return 0
  mkdir -p "$secrets" && chmod 700 "$secrets"
  (
    cd "$secrets"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30 \
      -subj "/CN=unionhub throwaway CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=localhost" 2>/dev/null
    printf "subjectAltName=IP:127.0.0.1,DNS:localhost\n" > san.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem -days 30 \
      -extfile san.ext 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8
    cat broker.pk8 broker.pem ca.pem > broker-keystore.pem
    for user in "${users[@]}"; do
      echo "$(echo "$user" | tr a-z A-Z)_PASSWORD=$(openssl rand -hex 16)"
    done > credentials.env
    chmod 600 ./*.key ./*.pk8 credentials.env
  )
}

scram_args() {
  # shellcheck disable=SC1091
  . "$secrets/credentials.env"
  local user upper password
  for user in "${users[@]}"; do
    upper=$(echo "$user" | tr a-z A-Z)
    password="${upper}_PASSWORD"
    printf -- "--add-scram\nSCRAM-SHA-512=[name=%s,password=%s]\n" "$user" "${!password}"
  done
}

# What the probe and AclCommand connect as: the admin user over SASL_SSL.
admin_env() {
  [ "$mode" = plaintext ] && return 0
  # shellcheck disable=SC1091
  . "$secrets/credentials.env"
  export KAFKA_SECURITY_PROTOCOL=SASL_SSL KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USERNAME=admin \
    KAFKA_SASL_PASSWORD="$ADMIN_PASSWORD" KAFKA_SSL_CAFILE="$secrets/ca.pem"
}

# Each service reads what it consumes, writes its own events and the DLQs of what it consumes,
# and uses consumer groups named after itself.
declare -A reads=(
  [membership]="membership.commands"
  [evaluation]="evaluation.commands evaluation.work-scores membership.events"
  [feedback]="feedback.commands membership.events"
)
declare -A writes=(
  [membership]="membership.events"
  [evaluation]="evaluation.events"
  [feedback]="feedback.events"
)

acls() {
  [ "$mode" = sasl_ssl ] || { echo "kafka: acls needs KAFKA_MODE=sasl_ssl" >&2; return 1; }
  local prefix=${1:-} config="$secrets/admin.properties"
  # shellcheck disable=SC1091
  . "$secrets/credentials.env"
  cat > "$config" <<CONF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/ca.pem
CONF
  chmod 600 "$config"
  local service topic args=()
  acl() { java -Dlog4j2.configurationFile="$data_dir/log4j2.yaml" -cp "$libs/*" org.apache.kafka.tools.AclCommand \
    --bootstrap-server "127.0.0.1:$port" --command-config "$config" --add --force "$@" >/dev/null; }
  for service in membership evaluation feedback; do
    args=()
    for topic in ${reads[$service]}; do args+=(--topic "$prefix$topic"); done
    acl --allow-principal "User:$service" --operation Read --operation Describe "${args[@]}" &
    args=()
    for topic in ${writes[$service]}; do args+=(--topic "$prefix$topic"); done
    for topic in ${reads[$service]}; do args+=(--topic "$prefix$topic.dlq"); done
    acl --allow-principal "User:$service" --operation Write --operation Describe "${args[@]}" &
    acl --allow-principal "User:$service" --operation Read --operation Describe \
      --group "$prefix$service." --resource-pattern-type prefixed &
  done
  local failed=0 job
  for job in $(jobs -p); do wait "$job" || failed=1; done  # one JVM each: run them side by side
  [ "$failed" = 0 ] || { echo "kafka: granting ACLs failed" >&2; return 1; }
  echo "kafka: ACLs granted for prefix '${prefix}'" >&2
}

# A killed broker nobody reaped yet is a zombie: kill -0 still succeeds, so read its state from
# /proc (not ps: a minimal image may lack procps, and a zombie would then look alive forever).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

running() {
  [ -f "$pid_file" ] && alive "$(cat "$pid_file")"
}

start() {
  fetch
  if running; then echo "kafka: already running on 127.0.0.1:$port (pid $(cat "$pid_file"))" >&2; return 0; fi
  if [ "$mode" = sasl_ssl ]; then make_secrets; fi
  write_config
  if [ ! -f "$data_dir/logs/meta.properties" ]; then
    local cluster_id=${KAFKA_CLUSTER_ID:-}
    [ -n "$cluster_id" ] || cluster_id=$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)
    local extra=()
    if [ "$mode" = sasl_ssl ]; then mapfile -t extra < <(scram_args); fi
    if [ -z "$voters" ]; then extra+=(--standalone); fi  # a cluster's voters are in its config
    java -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$data_dir/server.properties" "${extra[@]}" >/dev/null
  fi
  # setsid: the broker must outlive the shell (make up) that started it.
  KAFKA_HEAP_OPTS="-Xmx$heap -Xms$heap" setsid java "-Xmx$heap" "-Xms$heap" \
    -Dlog4j2.configurationFile="$data_dir/log4j2.yaml" -cp "$libs/*" \
    kafka.Kafka "$data_dir/server.properties" >"$log_file" 2>&1 < /dev/null &
  echo $! > "$pid_file"
  # A cluster's node cannot answer alone (no quorum yet): cluster.sh probes once all are up.
  if [ -n "${KAFKA_NO_WAIT:-}" ]; then echo "kafka: node $node_id started (pid $(cat "$pid_file"))" >&2; return 0; fi
  admin_env
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
  for _ in $(seq 1 60); do alive "$pid" || break; sleep 0.5; done
  if alive "$pid"; then
    kill -KILL "$pid"
    for _ in $(seq 1 20); do alive "$pid" || break; sleep 0.5; done
  fi
  rm -f "$pid_file"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) admin_env; running && "$python" "$here/probe.py" "127.0.0.1:$port" --timeout 5 ;;
  acls) acls "${2:-}" ;;
  *) echo "usage: $0 fetch|start|stop|status|acls [PREFIX]" >&2; exit 2 ;;
esac
