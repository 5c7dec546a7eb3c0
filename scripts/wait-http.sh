# Sourced by the scripts that start the api and a runner: `wait_http WHAT URL LOG SECS` polls URL
# until it answers 2xx, or prints the last lines of LOG and exits 1 after SECS seconds.
wait_http() {
  local what=$1 url=$2 log=$3 secs=$4
  for _ in $(seq 1 $((secs * 4))); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    sleep 0.25
  done
  echo "error: $what did not become ready at $url within ${secs}s; last lines of $log:" >&2
  tail -n 20 "$log" >&2 || true
  exit 1
}
