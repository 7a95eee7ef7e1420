#!/bin/sh
# Side-by-side speed benchmark: Portcullis's default pipeline (in process)
# against rspamd (Debian package, private configuration on loopback, the
# groups that use DNS or Redis off), over the corpus tiers of
# internal/benchcorpus. rspamd is pinned to one core, Portcullis to
# another (GOMAXPROCS 1); CPU time per message comes from /proc, for the
# processes this script started only. Prints a Markdown table.
#
#   scripts/bench.sh [-reps 3] [-budget 2s]
set -eu
cd "$(dirname "$0")/.."
if ! command -v rspamd >/dev/null; then
	apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends rspamd
fi
dir=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
mkdir -p "$dir/override.d" "$dir/local.d" "$dir/db" "$dir/run" "$dir/log"
port=${RSPAMD_PORT:-11433}
cat >"$dir/override.d/worker-normal.inc" <<CONF
bind_socket = "127.0.0.1:$port";
count = 1;
CONF
echo 'bind_socket = "127.0.0.1:'$((port + 1))'"; count = 1;' >"$dir/override.d/worker-controller.inc"
echo 'enabled = false;' >"$dir/override.d/worker-proxy.inc"
echo 'enabled = false;' >"$dir/override.d/worker-fuzzy.inc"
printf 'type = "file";\nfilename = "%s/log/rspamd.log";\nlevel = "error";\n' "$dir" >"$dir/override.d/logging.inc"
# DNS lists, SPF/DKIM/DMARC, MX, ASN, fuzzy and the Redis-backed modules
# are network work that the in-process side does not do.
for m in rbl spf dkim dmarc arc asn fuzzy_check mx_check emails hfilter greylist ratelimit replies \
	neural url_reputation reputation dkim_signing milter_headers history_redis bayes_expiry \
	elastic clickhouse external_services antivirus metadata_exporter dcc; do
	echo 'enabled = false;' >"$dir/override.d/$m.conf"
done
printf 'dns { nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 0; }\n' >"$dir/override.d/options.inc"
user=_rspamd
id "$user" >/dev/null 2>&1 || user=$(id -un)
chown -R "$user" "$dir"
taskset -c 0 rspamd -f -u "$user" -g "$(id -gn "$user")" -c /etc/rspamd/rspamd.conf \
	--var=LOCAL_CONFDIR="$dir" --var=DBDIR="$dir/db" --var=RUNDIR="$dir/run" --var=LOGDIR="$dir/log" \
	>"$dir/log/stdout" 2>&1 &
pid=$!
i=0
until curl -sf "http://127.0.0.1:$port/ping" >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "bench.sh: rspamd did not start:" >&2
		cat "$dir/log/stdout" "$dir/log/rspamd.log" >&2 2>/dev/null || true
		exit 1
	fi
	sleep 0.2
done
go build -o "$dir/bench" ./internal/cmd/bench
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(rspamd --version 2>/dev/null | head -1)"
taskset -c 1 "$dir/bench" -rspamd "http://127.0.0.1:$port" -rspamd-pid "$pid" "$@"
