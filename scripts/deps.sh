#!/usr/bin/env bash
# Installs what the tests need and is missing: the Debian packages of the
# real components the integration tests run against, and staticcheck.
# Idempotent: it installs nothing that is already there. Without root it
# prints the apt-get command instead (the tests that need a missing
# component then skip by hand, and fail under CI=true).
set -euo pipefail

# Debian packages: the real engines and the mail corpora the tests use.
PACKAGES=(
  clamav-daemon              # clamd, for scanner/clamd
  clamav                     # clamscan, a real engine for scanner/command
  clamdscan                  # clamdscan --stream, the yardstick of the clamd benchmark
  clamav-testfiles           # clam.exe & co. for the signature DB and archive tests
  c-icap                     # ICAP server, for scanner/icap
  libc-icap-mod-virus-scan   # its virus_scan service, pointing at clamd
  rbldnsd                    # DNS blocklists, for rbl
  spamassassin               # rules and sample messages, for rules
)
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "deps: missing Debian packages; install them with: sudo apt-get install -y ${missing[*]}" >&2
  fi
fi

if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
  echo "deps: installing staticcheck"
  GOFLAGS= go install "$STATICCHECK"
fi
