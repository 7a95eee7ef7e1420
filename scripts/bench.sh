#!/bin/sh
# Side-by-side speed benchmark: Portcullis's default pipeline (in process)
# against rspamd and spamd (Debian packages, private configurations on
# loopback, their DNS-, Redis- and network-using parts off), over the
# corpus tiers of internal/benchcorpus and the repository's real mail.
# rspamd and spamd are pinned to core 0, Portcullis to core 1 (GOMAXPROCS
# 1); CPU time per message comes from /proc, for the processes this script
# started only. Then a clamd with a private configuration is started and
# the bytes the default pipeline streams to it per message byte are
# counted. Prints Markdown tables.
#
#   scripts/bench.sh [-reps 3] [-budget 2s] [-large=false]
#
# spamd runs with sa-compile's compiled body rules when Debian's
# sa-compile package has compiled them (it does on install, offline, in a
# few minutes); the first output line says which.
set -eu
cd "$(dirname "$0")/.."
need=
command -v rspamd >/dev/null || need="$need rspamd"
command -v spamd >/dev/null || need="$need spamd spamc"
command -v sa-compile >/dev/null || need="$need sa-compile"
command -v clamd >/dev/null || need="$need clamav-daemon"
if [ -n "$need" ]; then
	# shellcheck disable=SC2086
	apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $need
fi
dir=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
pid=
spid=
cpid=
cleanup() {
	for p in $pid $spid $cpid; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
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

# spamd: local tests only (-L), the site configuration a private copy of
# Debian's plugin list (.pre files) with Bayes, auto-learning and the
# network plugins off; the rules are Debian's (/usr/share/spamassassin,
# the same files Portcullis's default loads). One child, so that requests
# are served in turn as rspamd's one worker does.
sport=${SPAMD_PORT:-11783}
mkdir -p "$dir/sa"
compiled=no
for f in /etc/spamassassin/*.pre /etc/spamassassin/65_debian.cf; do
	[ -e "$f" ] && cp "$f" "$dir/sa/"
done
if [ -e "$dir/sa/sa-compile.pre" ] && ls -d /var/lib/spamassassin/compiled/*/*/ >/dev/null 2>&1; then
	compiled=yes
else
	rm -f "$dir/sa/sa-compile.pre"
fi
cat >"$dir/sa/local.cf" <<CONF
use_bayes 0
bayes_auto_learn 0
skip_rbl_checks 1
use_razor2 0
use_pyzor 0
dns_available no
CONF
suser=debian-spamd
id "$suser" >/dev/null 2>&1 || suser=$(id -un)
chown -R "$suser" "$dir/sa"
chmod 755 "$dir" "$dir/log" "$dir/run"
taskset -c 0 spamd -L --siteconfigpath="$dir/sa" --pidfile="$dir/run/spamd.pid" -i 127.0.0.1 -A 127.0.0.1 \
	--port="$sport" -u "$suser" --nouser-config -m 1 --min-children=1 --min-spare=1 --max-spare=1 \
	--syslog="$dir/log/spamd.log" >"$dir/log/spamd.out" 2>&1 &
spid=$!
i=0
until spamc -d 127.0.0.1 -p "$sport" -K >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 600 ] || ! kill -0 "$spid" 2>/dev/null; then
		echo "bench.sh: spamd did not start:" >&2
		cat "$dir/log/spamd.out" "$dir/log/spamd.log" >&2 2>/dev/null || true
		exit 1
	fi
	sleep 0.2
done

# clamd: a private configuration on loopback and a one-signature
# database (EICAR by MD5): what is measured is the bytes streamed to it,
# which does not depend on its signatures.
cport=${CLAMD_PORT:-11310}
mkdir -p "$dir/clamdb"
echo '44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature' >"$dir/clamdb/test.hdb"
cat >"$dir/clamd.conf" <<CONF
Foreground yes
LogSyslog no
LogFile $dir/log/clamd.log
DatabaseDirectory $dir/clamdb
TCPSocket $cport
TCPAddr 127.0.0.1
StreamMaxLength 25M
MaxThreads 2
SelfCheck 0
Bytecode no
CONF
taskset -c 0 clamd --config-file="$dir/clamd.conf" >"$dir/log/clamd.out" 2>&1 &
cpid=$!

go build -o "$dir/bench" ./internal/cmd/bench
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
	"$(rspamd --version 2>/dev/null | head -1), $(spamd --version 2>/dev/null | head -1), sa-compile: $compiled"
taskset -c 1 "$dir/bench" -rspamd "http://127.0.0.1:$port" -rspamd-pid "$pid" \
	-spamd "127.0.0.1:$sport" -spamd-pid "$spid" -clamd "127.0.0.1:$cport" "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
