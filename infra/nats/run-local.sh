#!/usr/bin/env bash
# Starts Keel's 3-server JetStream cluster on this machine, for a try-out (infra/README.md):
# servers on client ports 4222-4224, routes 6222-6224, monitoring 8222-8224, data under
# /tmp/keel-nats/{1,2,3}, logs and pid files under ${TMPDIR:-/tmp}/keel-nats-run.
#
#   infra/nats/run-local.sh          start (returns once all three are healthy)
#   infra/nats/run-local.sh stop     stop the three it started
#   infra/nats/run-local.sh status   which run, and the JetStream meta leader
#
# Passwords come from KEEL_*_PASSWORD; the defaults below are for a try-out on loopback
# only (DEV ONLY, never in a deployment).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=${TMPDIR:-/tmp}/keel-nats-run

# Debian installs nats-server under /usr/sbin, which a non-login PATH may lack.
command -v nats-server >/dev/null 2>&1 || export PATH="$PATH:/usr/sbin"

export KEEL_NODE_PASSWORD=${KEEL_NODE_PASSWORD:-dev-node-password}
export KEEL_GATEWAY_PASSWORD=${KEEL_GATEWAY_PASSWORD:-dev-gateway-password}
export KEEL_CHANNEL_ADAPTER_PASSWORD=${KEEL_CHANNEL_ADAPTER_PASSWORD:-dev-channel-adapter-password}
export KEEL_WMS_ADAPTER_PASSWORD=${KEEL_WMS_ADAPTER_PASSWORD:-dev-wms-adapter-password}
export KEEL_SYS_PASSWORD=${KEEL_SYS_PASSWORD:-dev-sys-password}

# pid of server N if it runs, else nothing.
running_pid() {
  local f="$run/nats-$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
  return 0
}

# Whether something already listens on 127.0.0.1:PORT (bash's /dev/tcp: no extra tool).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

healthy() { curl -sf "http://127.0.0.1:822$(($1 + 1))/healthz" >/dev/null 2>&1; }

stop() {
  local n pid
  for n in 1 2 3; do
    pid=$(running_pid "$n")
    [[ -n $pid ]] || continue
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$run/nats-$n.pid"
    echo "stopped nats-$n (pid $pid)"
  done
}

status() {
  local n pid
  for n in 1 2 3; do
    pid=$(running_pid "$n")
    if [[ -n $pid ]]; then echo "nats-$n: running, pid $pid, nats://127.0.0.1:422$((n + 1))"
    else echo "nats-$n: not running"; fi
  done
  curl -sf http://127.0.0.1:8222/jsz 2>/dev/null | python3 -c \
    'import json,sys; m=json.load(sys.stdin).get("meta_cluster",{}); print("JetStream meta leader:", m.get("leader"), "cluster size:", m.get("cluster_size"))' \
    2>/dev/null || true
}

start() {
  command -v nats-server >/dev/null 2>&1 || {
    echo "nats-server is not on PATH (2.10+; tests/run installs 2.15.1 into ~/.cache/keel/nats-server-2.15.1/bin)" >&2
    exit 1
  }
  command -v curl >/dev/null 2>&1 || { echo "curl is needed to wait for the servers" >&2; exit 1; }
  mkdir -p "$run"
  local n port
  for n in 1 2 3; do
    [[ -z $(running_pid "$n") ]] || continue
    for port in 422$((n + 1)) 622$((n + 1)) 822$((n + 1)); do
      if listening "$port"; then
        echo "port $port is taken by another process, so nats-$n cannot start; nothing started" >&2
        exit 1
      fi
    done
  done
  for n in 1 2 3; do
    if [[ -n $(running_pid "$n") ]]; then echo "nats-$n already runs"; continue; fi
    mkdir -p "/tmp/keel-nats/$n"
    nats-server -c "$here/nats-$n.conf" >"$run/nats-$n.log" 2>&1 &
    echo $! >"$run/nats-$n.pid"
    echo "started nats-$n (pid $!), log $run/nats-$n.log"
  done
  # /healthz answers 200 once the server (and its JetStream) is up; a clustered JetStream
  # also needs a meta leader, which takes a quorum: two of the three.
  for n in 1 2 3; do
    for _ in $(seq 1 100); do
      healthy "$n" && break
      if [[ -z $(running_pid "$n") ]]; then
        echo "nats-$n exited; its log:" >&2; tail -20 "$run/nats-$n.log" >&2; stop; exit 1
      fi
      sleep 0.2
    done
    healthy "$n" || { echo "nats-$n is not healthy after 20 s; log: $run/nats-$n.log" >&2; stop; exit 1; }
  done
  status
  cat <<EOF

Keel nodes connect as user "node" (dev password unless KEEL_NODE_PASSWORD was set):
  KEEL_NATS_URL=nats://node:$KEEL_NODE_PASSWORD@127.0.0.1:4222,nats://node:$KEEL_NODE_PASSWORD@127.0.0.1:4223,nats://node:$KEEL_NODE_PASSWORD@127.0.0.1:4224
Stop the cluster: $0 stop   (data stays in /tmp/keel-nats; remove it for a fresh start)
EOF
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
