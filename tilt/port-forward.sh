#!/usr/bin/env bash
# Keep `kubectl port-forward` to a Service or Deployment open across pod restarts (Tilt runs it
# as a serve_cmd; a plain port-forward dies with the pod it picked).
# Usage: tilt/port-forward.sh NAMESPACE TARGET LOCAL:REMOTE [LOCAL:REMOTE...]
set -uo pipefail
namespace=$1 target=$2
shift 2
while true; do
  kubectl --namespace "$namespace" port-forward --address 127.0.0.1 "$target" "$@"
  echo "port-forward to $target ended; reconnecting in 2s" >&2
  sleep 2
done
