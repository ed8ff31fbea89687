#!/usr/bin/env bash
# Secure fine-tuning as three processes on this machine: the dealer, the server (P0, the model)
# and the client (P1, the sentences), each a separate `prifft finetune --role ...` process on
# 127.0.0.1, the links mutual TLS 1.3 from a fresh pre-shared secret. What three machines would
# run, with the addresses changed. Extra arguments go to both parties (they must agree on
# --layers-trainable, --lr, --momentum, --batch, --frozen-batch, --recompute-frozen,
# --reveal-to; the client's
# --train, --seed, --seq-len choose its sentences and batches).
#
#   scripts/finetune-three-processes.sh --train 48 --seed 1 --reveal-to server
#
# Output: each process's report; their JSON summaries and logs in $OUT (default: a fresh
# temporary directory, printed), the revealed weights in $OUT/finetuned.safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PRIFFT:-target/release/prifft}
if [ ! -x "$BIN" ]; then
  cargo build --release
fi
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
umask 077
head -c 32 /dev/urandom > "$OUT/psk"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -f "$OUT/psk"
}
trap cleanup EXIT

# Start a listening process and wait for the address it prints.
listen() {
  local name=$1
  shift
  "$BIN" finetune "$@" --listen 127.0.0.1:0 --tls-psk "$OUT/psk" --json "$OUT/$name.json" \
    > "$OUT/$name.out" 2> "$OUT/$name.err" &
  pids+=($!)
  for _ in $(seq 1 600); do
    if grep -q '^listening on ' "$OUT/$name.out" 2>/dev/null; then
      sed -n 's/^listening on //p' "$OUT/$name.out" | head -1
      return
    fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      cat "$OUT/$name.err" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "$name did not start listening" >&2
  exit 1
}

dealer=$(listen dealer --role dealer)
server=$(listen server --role server --dealer "$dealer" --weights-out "$OUT/finetuned.safetensors" "$@")
echo "dealer on $dealer, server on $server; the client's progress follows (logs in $OUT)" >&2
"$BIN" finetune --role client --connect "$server" --dealer "$dealer" --tls-psk "$OUT/psk" \
  --json "$OUT/client.json" "$@" > "$OUT/client.out"
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
pids=()
for name in dealer server client; do
  grep -v '^listening on ' "$OUT/$name.out" || true
done
if [ $status -ne 0 ]; then
  tail -n 5 "$OUT"/dealer.err "$OUT"/server.err >&2
  exit 1
fi
echo "summaries: $OUT/{dealer,server,client}.json" >&2
