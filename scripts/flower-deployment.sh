#!/usr/bin/env bash
# prifft on a Flower deployment, on this machine: a SuperLink, NODES SuperNodes (each its own
# process, as each would be on its own machine) and the ServerApp, which the SuperLink starts
# when `flwr run` submits python/flower-app/. Every process is stopped at the end.
#
#   bash scripts/flower-deployment.sh [--run-config "algo=fedproc num-server-rounds=2 ..."]
#
# Environment: NODES (3), BASE_PORT (19090: the SuperLink's HTTP APIs — Fleet, Control and the
# ServerApp's — on BASE_PORT, the SuperNodes' runtime APIs from BASE_PORT+10), PYTHON_BIN (the directory of
# the Python environment's executables that has prifft[flower]; default: where `flwr` is),
# LOG_DIR (logs; default: a temporary directory, printed), APP_DIR (the Flower App;
# python/flower-app), NODE_CONFIG_<i> (extra node config of SuperNode i). Any extra arguments go to `flwr run`.
# The app's dependencies are not installed at run time: the processes use this environment.
# Insecure transport on 127.0.0.1 only: across machines give the SuperLink and SuperNodes
# certificates (Flower's --ssl-* and --root-certificates options).
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-3}
BASE=${BASE_PORT:-19090}
BIN=${PYTHON_BIN:-$(dirname "$(command -v flwr)")}
# The SuperLink and SuperNodes start flower-superexec, flwr-serverapp and flwr-clientapp by name.
export PATH="$BIN:$PATH"
LOG_DIR=${LOG_DIR:-$(mktemp -d)}
mkdir -p "$LOG_DIR"
export FLWR_HOME="$LOG_DIR/flwr-home"
mkdir -p "$FLWR_HOME"
cat >"$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "local"

[superlink.local]
address = "127.0.0.1:$BASE"
insecure = true
TOML

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN/flower-superlink" --insecure --host 127.0.0.1 --port "$BASE" \
  --disable-runtime-dependency-installation >"$LOG_DIR/superlink.log" 2>&1 &
pids+=($!)
for i in $(seq 0 $((NODES - 1))); do
  "$BIN/flower-supernode" --insecure --superlink "127.0.0.1:$BASE" \
    --host 127.0.0.1 --port $((BASE + 10 + i)) \
    --node-config "partition-id=$i num-partitions=$NODES $(eval echo "\${NODE_CONFIG_$i:-}")" \
    >"$LOG_DIR/supernode-$i.log" 2>&1 &
  pids+=($!)
  echo "$!" >"$LOG_DIR/supernode-$i.pid"
done
# The Control API must listen before `flwr run` connects.
for _ in $(seq 1 120); do
  (echo >"/dev/tcp/127.0.0.1/$BASE") 2>/dev/null && break
  sleep 0.5
done
echo "logs in $LOG_DIR (SuperLink on 127.0.0.1:$BASE, $NODES SuperNodes)"
"$BIN/flwr" run "${APP_DIR:-python/flower-app}" local --stream --run-config "min-nodes=$NODES" "$@"
