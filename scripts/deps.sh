#!/usr/bin/env bash
# Installs what the tests need and is missing: the Debian packages of the
# real components the integration tests run against, and staticcheck.
# Idempotent: it installs nothing that is already there, and answers in a
# second when everything is. apt-get waits up to 5 minutes for the dpkg lock
# (another apt run, unattended-upgrades) instead of failing at once.
# Without root it prints the one command to run instead (the tests that need
# a missing component then skip by hand, and fail under CI=true).
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
  spamassassin               # rules, sample messages and the differential oracle, for rules
  postfix                    # the MTA in front of the milter tests
  chromium                   # headless browser for the console tests
)
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2
APT=(apt-get -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${missing[*]} (a few minutes on a new machine)"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix asks which configuration to write; the tests bring their own.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    log=$(mktemp)
    if ! { "${APT[@]}" update -qq && "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
      echo "deps: apt-get failed; its last lines:" >&2
      tail -20 "$log" >&2
      echo "deps: retry with: sudo bash scripts/deps.sh" >&2
      rm -f "$log"
      exit 1
    fi
    rm -f "$log"
  else
    echo "deps: missing Debian packages; install them with: sudo bash scripts/deps.sh" >&2
    echo "deps: (that is: apt-get install -y ${missing[*]})" >&2
  fi
fi

if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
  echo "deps: installing staticcheck"
  GOFLAGS= go install "$STATICCHECK"
fi
