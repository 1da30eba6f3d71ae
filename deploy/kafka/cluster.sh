#!/usr/bin/env bash
# A three-node Apache Kafka cluster (KRaft, each node broker and controller) on this machine,
# from the same jars as kafka.sh: replication factor 3 and min.insync.replicas=2, small heaps.
# It is the fault suite's cluster (a broker killed under load) and what KAFKA_MODE=cluster
# makes the tests use.
#
#   cluster.sh start           format (first time) and start the three nodes; waits for a produce+consume
#   cluster.sh stop            stop every node
#   cluster.sh kill N          SIGKILL node N (1-3)
#   cluster.sh start-node N    start node N again
#   cluster.sh bootstrap       print the bootstrap servers
#
# Settings: KAFKA_PORT (9092: nodes on 9092, 9094, 9096; controllers on the next port each),
# KAFKA_DATA_DIR (<repo>/.run/kafka-cluster), KAFKA_HEAP (256m), PYTHON.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
base=${KAFKA_PORT:-9092}
data_dir=${KAFKA_DATA_DIR:-$repo/.run/kafka-cluster}
python=${PYTHON:-$repo/.venv/bin/python}
nodes=(1 2 3)

port_of() { echo $((base + 2 * ($1 - 1))); }
voters() {
  local n out=()
  for n in "${nodes[@]}"; do out+=("$n@127.0.0.1:$(( $(port_of "$n") + 1 ))"); done
  (IFS=,; echo "${out[*]}")
}
bootstrap() {
  local n out=()
  for n in "${nodes[@]}"; do out+=("127.0.0.1:$(port_of "$n")"); done
  (IFS=,; echo "${out[*]}")
}

node() {  # node N ACTION: kafka.sh for one node
  local n=$1 action=$2
  mkdir -p "$data_dir"
  [ -f "$data_dir/cluster.id" ] || "$here/kafka.sh" fetch
  [ -f "$data_dir/cluster.id" ] || java -cp "$here/.cache/libs/*" kafka.tools.StorageTool random-uuid > "$data_dir/cluster.id"
  KAFKA_MODE=plaintext KAFKA_NODE_ID=$n KAFKA_VOTERS=$(voters) KAFKA_CLUSTER_ID=$(cat "$data_dir/cluster.id") KAFKA_NO_WAIT=1 \
    KAFKA_PORT=$(port_of "$n") KAFKA_CONTROLLER_PORT=$(( $(port_of "$n") + 1 )) KAFKA_HEAP=${KAFKA_HEAP:-256m} \
    KAFKA_DATA_DIR="$data_dir/node-$n" PYTHON="$python" "$here/kafka.sh" "$action"
}

case "${1:-}" in
  start)
    for n in "${nodes[@]}"; do node "$n" start; done
    "$python" "$here/probe.py" "$(bootstrap)" --timeout 120 --brokers 3
    echo "kafka cluster: ready on $(bootstrap) (data $data_dir)" >&2 ;;
  stop) for n in "${nodes[@]}"; do node "$n" stop; done ;;
  kill) kill -KILL "$(cat "$data_dir/node-$2/kafka.pid")" ;;
  start-node) node "$2" start ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 start|stop|kill N|start-node N|bootstrap" >&2; exit 2 ;;
esac
