#!/usr/bin/env bash
# Run every check of the project: ruff, ruff format, mypy, then pytest with coverage.
# Sets itself up on a fresh machine: creates .venv, installs atp with its test extras,
# and (as root) the server binaries the integration tests start. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/_venv.sh

# binary:package. faketime brings libfaketime (the chaos clock suite preloads it); nft and
# ip make the partition suite's network namespaces; cc builds the slow-fsync shim;
# chromium and its driver run the console's browser tests.
SERVERS=(redis-server:redis-server nats-server:nats-server etcd:etcd-server faketime:faketime
    nft:nftables ip:iproute2 cc:gcc chromium:chromium chromedriver:chromium-driver)
failed=()

# Install from Debian the server binaries that are missing, when we may.
install_servers() {
    local entry binary missing=()
    for entry in "${SERVERS[@]}"; do
        binary="${entry%%:*}"
        if ! command -v "$binary" >/dev/null && [[ ! -x "/usr/sbin/$binary" ]]; then
            missing+=("${entry#*:}")
        fi
    done
    (( ${#missing[@]} )) || return 0
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "==> missing ${missing[*]}: their integration tests are skipped" \
            "(run as root on Debian to install them, or give their URLs in the environment)"
        return 0
    fi
    echo "==> installing ${missing[*]} from Debian's packages"
    _without_service_start apt_install "${missing[@]}" \
        || echo "==> could not install ${missing[*]}; their integration tests will not run"
}

apt_install() {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Packages must not start their daemons: the tests start servers on free ports.
_without_service_start() {
    local policy=/usr/sbin/policy-rc.d status=0
    if [[ -e "$policy" ]]; then
        "$@" || status=$?
        return "$status"
    fi
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    "$@" || status=$?
    rm -f "$policy"
    return "$status"
}

# step NAME COMMAND...: run a check, remember a failure, carry on.
step() {
    local name="$1"
    shift
    echo "==> $name: $*"
    if ! "$@"; then
        failed+=("$name")
    fi
}

run_pytest() {
    local status=0
    # The source folders, not the `atp` namespace: coverage finds the files nothing
    # imported only by path, so they count as uncovered instead of vanishing.
    "$VENV/bin/python" -m pytest --cov=core --cov=plugins --cov=adapters --cov=sdk \
        --cov-report=term --cov-report=xml -q "$@" || status=$?
    if (( status == 5 )); then
        echo "error: pytest collected no tests" >&2
    fi
    return "$status"
}

main() {
    ensure_venv dev,redis,nats,etcd,cron,http,grpc,observability,chaos
    install_servers
    step ruff "$VENV/bin/ruff" check .
    step format "$VENV/bin/ruff" format --check .
    step mypy env PYTHON="$VENV/bin/python" bash scripts/typecheck.sh
    step pytest run_pytest "$@"
    if (( ${#failed[@]} )); then
        echo "test.sh: FAILED: ${failed[*]}"
        return 1
    fi
    echo "test.sh: all checks passed (ruff, format, mypy, pytest with coverage)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
