# Shell helpers the build and test scripts share (source it from the workspace root):
# installing missing Debian packages, installing wasm-bindgen-cli at Cargo.lock's
# version, and starting a gapless-server on a free loopback port.

# apt_ensure PKG...: installs those of the Debian packages that are missing
# (`apt-get update` only then).
apt_ensure() {
  local need=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    echo "installing ${need[*]} (apt)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# wasm_bindgen_ensure: wasm-bindgen-cli (wasm-bindgen, wasm-bindgen-test-runner) in
# .tools/bin at the version of wasm-bindgen in Cargo.lock, which it must match.
wasm_bindgen_ensure() {
  local version tools
  version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
  tools="$PWD/.tools"
  if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -q " $version\$" ||
    ! "$tools/bin/wasm-bindgen-test-runner" --version 2>/dev/null | grep -q " $version\$"; then
    echo "installing wasm-bindgen-cli $version into .tools" >&2
    # Built without optimisation: 2 min 4 s to build here, against 4 min 12 s, for
    # 4.6 s instead of 1.0 s on the 17 MB browser-test module (0.6 s on the package).
    (unset CARGO_TARGET_DIR; cargo install --debug --quiet --force wasm-bindgen-cli --version "=$version" --root "$tools")
  fi
}

# server_start BIN DATA_DIR [FLAG...]: starts gapless-server BIN on a free loopback port
# (log in DATA_DIR/server.log, data in DATA_DIR/db), waits for /healthz and sets
# server_pid and server_url; fails with the log if it does not come up in 10 s.
server_start() {
  local bin=$1 data=$2 port
  shift 2
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  server_url="http://127.0.0.1:$port"
  GAPLESS_LOG=warn "$bin" --bind "127.0.0.1:$port" --data-dir "$data/db" "$@" >"$data/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
      "$server_url/healthz" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "gapless-server did not come up on $server_url" >&2
  cat "$data/server.log" >&2
  return 1
}

# Runs Node's test runner on FILES (the environment passed through) and fails unless
# it ran at least one test and every test it ran passed: a file that stops being
# found must not pass as "0 tests".
node_tests() {
  local log status=0 tests passed
  log=$(mktemp)
  # A test stuck for two minutes fails rather than holding the run (Node 20.11+).
  node --test --test-timeout=120000 --test-reporter=tap "$@" | tee "$log" || status=$?
  tests=$(sed -n 's/^# tests \([0-9]*\)$/\1/p' "$log" | tail -1)
  passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)
  rm -f "$log"
  if [ "$status" -ne 0 ] || [ -z "$tests" ] || [ "$tests" -eq 0 ] || [ "$passed" != "$tests" ]; then
    echo "node tests failed or ran none (exit $status, ${passed:-0} of ${tests:-0} passed)" >&2
    return 1
  fi
}
