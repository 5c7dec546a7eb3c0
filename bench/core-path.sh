#!/usr/bin/env bash
# Core-path latency: Python hello world through `POST /v1/jobs?wait=true` (N sequential jobs),
# next to a new container per job (`docker run --rm`, same image and limits) in the same run.
# Needs `make up` running. Usage: bench/core-path.sh [N_API=50] [N_DOCKER=10]
set -euo pipefail
cd "$(dirname "$0")/.."
API="http://${RCE_API_ADDR:-127.0.0.1:8080}"
N_API=${1:-50}
N_DOCKER=${2:-10}
IMAGE=$(cargo run -q -p rce-protocol --bin rce-topology -- image python)
BODY='{"language":"python","source":"print(\"hello, world\")"}'

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m}'; }
p90() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.9+0.999); if(i<1)i=1; printf "%.1f", a[i]}'; }

# Warm-up, so the first measured job does not pay for connection setup.
curl -fsS -o /dev/null "$API/v1/jobs?wait=true" -H 'content-type: application/json' -d "$BODY"

api_ms=$(for _ in $(seq "$N_API"); do
  out=$(curl -fsS -w '\n%{time_total}' "$API/v1/jobs?wait=true" -H 'content-type: application/json' -d "$BODY")
  grep -q '"verdict":"ok"' <<<"$out" || { echo "job failed: $out" >&2; exit 1; }
  awk 'END {printf "%.3f\n", $1 * 1000}' <<<"$out"
done)

# The naive baseline: one container per job, with the pool's limits and hardening.
docker_ms=$(for _ in $(seq "$N_DOCKER"); do
  start=$(date +%s%N)
  docker run --rm --network none --read-only --init \
    --tmpfs /work:rw,exec,nosuid,nodev,size=128m,mode=0711 --tmpfs /tmp:rw,nosuid,nodev,size=64m \
    --memory 256m --memory-swap 256m --pids-limit 272 --cpus 1 \
    --cap-drop ALL --security-opt no-new-privileges -w /tmp \
    "$IMAGE" python3 -c 'print("hello, world")' >/dev/null
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
done)

api_p50=$(median <<<"$api_ms"); api_p90=$(p90 <<<"$api_ms")
docker_p50=$(median <<<"$docker_ms")
ratio=$(awk -v a="$docker_p50" -v b="$api_p50" 'BEGIN {printf "%.1f", a / b}')
cat <<TABLE
| path | jobs | p50 ms | p90 ms |
|---|---|---|---|
| \`POST /v1/jobs?wait=true\` (warm pool, docker exec) | $N_API | $api_p50 | $api_p90 |
| \`docker run --rm\` per job (same image, limits) | $N_DOCKER | $docker_p50 | $(p90 <<<"$docker_ms") |

Naive / service p50 ratio: ${ratio}x
TABLE
