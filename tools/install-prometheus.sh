#!/usr/bin/env bash
# Install Debian's prometheus package (prometheus + promtool) for the alert and dashboard tests
# (tests/prometheus). Returns at once when both are on PATH already; uses sudo when not run as
# root. The tests run the binary themselves on 127.0.0.1 with a temporary config and storage, so
# the package's own service must not start: while apt runs, a policy-rc.d refuses every service
# start (unless the machine has one already, as container images usually do).
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: the alert tests need prometheus and promtool (2.42+) on PATH; install them" >&2
  exit 1
fi
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "==> the alert and dashboard tests need prometheus and promtool; installing Debian's prometheus package with apt-get now"

policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  trap '"${sudo[@]}" rm -f "$policy"' EXIT
  printf '#!/bin/sh\n# tools/install-prometheus.sh: no service starts while it installs\nexit 101\n' \
    | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 prometheus >/dev/null
# On a machine that runs systemd the unit may be enabled regardless of policy-rc.d; keep it stopped.
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
