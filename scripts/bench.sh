#!/bin/sh
# Side-by-side speed benchmark: Portcullis's default pipeline, in process
# and in the examples/gateway binary (started by the bench program), over
# SMTP (queued, fsync before the 250) and over its HTTP check (POST
# /api/check, as rspamd is driven), against rspamd and spamd (Debian packages, private
# configurations on loopback, their DNS-, Redis- and network-using parts
# off), over the corpus tiers of internal/benchcorpus and the
# repository's real mail; rspamd also with its spamassassin module on
# Debian's SpamAssassin rules (rspamd+SA). Then the DNS tier: the HTML
# tier with a DNSBL and a URIBL on a local rbldnsd, every message's client
# address and link domains new (no cache can answer), on a second rspamd
# with only those two lists, a second gateway and the in-process
# pipeline. The servers are pinned to core 0, the bench program (and the
# in-process pipeline, GOMAXPROCS 1) to core 1; CPU time per message comes
# from /proc, for the processes this script and the bench program started
# only. Then a clamd with a private configuration is started and the
# bytes the default pipeline streams to it per message byte are counted.
# Prints Markdown tables.
#
#   scripts/bench.sh [-reps 3] [-budget 2s] [-large=false] [-conns 4]
#
# spamd runs with sa-compile's compiled body rules when Debian's
# sa-compile package has compiled them (it does on install, offline, in a
# few minutes); the first output line says which. rspamd+SA's hyperscan
# cache is kept in /var/tmp/portcullis-bench-rspamd-hs ($RSPAMD_HS_CACHE):
# the first run compiles it (about 5 minutes on this machine under load).
set -eu
cd "$(dirname "$0")/.."
need=
command -v rspamd >/dev/null || need="$need rspamd"
command -v spamd >/dev/null || need="$need spamd spamc"
command -v sa-compile >/dev/null || need="$need sa-compile"
command -v clamd >/dev/null || need="$need clamav-daemon"
PATH=$PATH:/usr/sbin command -v rbldnsd >/dev/null || need="$need rbldnsd"
if [ -n "$need" ]; then
	# shellcheck disable=SC2086
	apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $need
fi
dir=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
pid=
dpid=
apid=
sa=
spid=
cpid=
bpidfile="$dir/rbldnsd.pid"
cleanup() {
	for p in $pid $dpid $apid $spid $cpid $(cat "$bpidfile" 2>/dev/null); do
		kill "$p" 2>/dev/null && { wait "$p" 2>/dev/null || true; }
	done
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
mkdir -p "$dir/log" "$dir/run"
go build -o "$dir/bench" ./internal/cmd/bench
go build -o "$dir/gateway" ./examples/gateway
user=_rspamd
id "$user" >/dev/null 2>&1 || user=$(id -un)

# start_rspamd DIR PORT DNS SA [NS]: rspamd with a private configuration
# in DIR, its normal worker on 127.0.0.1:PORT, pinned to core 0, logging
# at $level; sets rpid.
# DNS lists, SPF/DKIM/DMARC, MX, ASN, fuzzy and the Redis-backed modules
# are network work that the in-process side does not do: off, and DNS
# pointed at NS, the rbldnsd, which refuses at once whatever DNS rspamd
# still does (once_received's PTR lookup of the client address: a closed
# port would make each one a timeout, and the run a message a second).
# With DNS (an rbldnsd serving the zones of
# bench -write-zones), the rbl module is on with only the bench's two
# lists (the client address and the links' domains) and asks DNS there.
# With SA (a directory), its spamassassin module loads SA/*.cf, and its
# hyperscan cache is $hscache, kept between runs (compiling it takes
# minutes).
level=error
hscache=${RSPAMD_HS_CACHE:-/var/tmp/portcullis-bench-rspamd-hs}
start_rspamd() {
	d=$1 p=$2
	mkdir -p "$d/override.d" "$d/local.d" "$d/db" "$d/run" "$d/log"
	printf 'bind_socket = "127.0.0.1:%s";\ncount = 1;\n' "$p" >"$d/override.d/worker-normal.inc"
	echo 'bind_socket = "127.0.0.1:'$((p + 1))'"; count = 1;' >"$d/override.d/worker-controller.inc"
	echo 'enabled = false;' >"$d/override.d/worker-proxy.inc"
	echo 'enabled = false;' >"$d/override.d/worker-fuzzy.inc"
	printf 'type = "file";\nfilename = "%s/log/rspamd.log";\nlevel = "%s";\n' "$d" "$level" >"$d/override.d/logging.inc"
	for m in rbl spf dkim dmarc arc asn fuzzy_check mx_check emails hfilter greylist ratelimit replies \
		neural url_reputation reputation dkim_signing milter_headers history_redis bayes_expiry \
		elastic clickhouse external_services antivirus metadata_exporter dcc; do
		echo 'enabled = false;' >"$d/override.d/$m.conf"
	done
	# The phishing module's PhishTank check is a DNS lookup per link.
	echo 'phishtank_enabled = false;' >"$d/override.d/phishing.conf"
	printf 'dns { nameserver = ["%s"]; timeout = 1s; retransmits = 0; }\n' "${3:-$5}" >"$d/override.d/options.inc"
	if [ -n "${4:-}" ]; then
		mkdir -p "$hscache"
		chown "$user" "$hscache"
		printf 'hs_cache_dir = "%s/";\n' "$hscache" >>"$d/override.d/options.inc"
		printf 'ruleset = "%s/*.cf";\n' "$4" >"$d/override.d/spamassassin.conf"
	fi
	if [ -n "${3:-}" ]; then
		cat >"$d/override.d/rbl.conf" <<CONF
enabled = true;
url_whitelist = [];
rbls {
  bench_bl {
    symbol = "BENCH_BL";
    rbl = "bl.bench.test";
    checks = ["from"];
    exclude_private_ips = false;
    exclude_local = false;
  }
  bench_uribl {
    symbol = "BENCH_URIBL";
    rbl = "uribl.bench.test";
    checks = ["urls"];
    ignore_defaults = true;
    exclude_users = false;
  }
}
CONF
	fi
	chown -R "$user" "$d"
	taskset -c 0 rspamd -f -u "$user" -g "$(id -gn "$user")" -c /etc/rspamd/rspamd.conf \
		--var=LOCAL_CONFDIR="$d" --var=DBDIR="$d/db" --var=RUNDIR="$d/run" --var=LOGDIR="$d/log" \
		>"$d/log/stdout" 2>&1 &
	rpid=$!
	i=0
	until curl -sf "http://127.0.0.1:$p/ping" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 "$rpid" 2>/dev/null; then
			echo "bench.sh: rspamd did not start:" >&2
			cat "$d/log/stdout" "$d/log/rspamd.log" >&2 2>/dev/null || true
			exit 1
		fi
		sleep 0.2
	done
}

# rbldnsd serves the DNS tier's two zones (bench -write-zones); it forks
# into the background once its zones are loaded and its socket bound.
bport=${RBLDNSD_PORT:-11553}
mkdir -p "$dir/zones"
chmod 755 "$dir" "$dir/zones"
zones=$("$dir/bench" -write-zones "$dir/zones")
: >"$dir/zones/stats" # query counts, one line a second (-s, -c 1)
chmod 644 "$dir/zones"/*
chmod 666 "$dir/zones/stats"
buser=
[ "$(id -u)" = 0 ] && buser="-u nobody"
# shellcheck disable=SC2086
taskset -c 0 rbldnsd $buser -q -4 -c 1 -s "$dir/zones/stats" -p "$bpidfile" -w "$dir/zones" -b "127.0.0.1/$bport" $zones
port=${RSPAMD_PORT:-11433}
start_rspamd "$dir/rspamd" "$port" "" "" "127.0.0.1:$bport"
pid=$rpid

dport=${RSPAMD_DNS_PORT:-11443}
start_rspamd "$dir/rspamd-dns" "$dport" "127.0.0.1:$bport"
dpid=$rpid

# rspamd+SA: the default rspamd with its spamassassin module loading
# Debian's /usr/share/spamassassin, the rules Portcullis's default and
# spamd load (issue 13). rspamd matches their regexes with hyperscan
# once its hs_helper has compiled them (until then with PCRE): a first
# instance logging at info level runs until a process says the whole
# database is loaded (at once from a warm cache), then the measured one
# starts at level error on the complete cache.
if [ -d /usr/share/spamassassin ]; then
	aport=${RSPAMD_SA_PORT:-11453}
	level=info
	start_rspamd "$dir/rspamd-sa-warm" "$aport" "" /usr/share/spamassassin "127.0.0.1:$bport"
	i=0
	until grep -q 'full hyperscan database of [0-9]* regexps has been loaded' "$dir/rspamd-sa-warm/log/rspamd.log" 2>/dev/null; do
		i=$((i + 1))
		[ $i -eq 5 ] && echo "bench.sh: rspamd+SA: compiling the hyperscan cache in $hscache (the first run: minutes)" >&2
		if [ $i -gt 3600 ] || ! kill -0 "$rpid" 2>/dev/null; then
			echo "bench.sh: rspamd+SA did not load its hyperscan database:" >&2
			tail -20 "$dir/rspamd-sa-warm/log/rspamd.log" >&2 2>/dev/null || true
			exit 1
		fi
		sleep 0.5
	done
	kill "$rpid" && wait "$rpid" || true
	level=error
	start_rspamd "$dir/rspamd-sa" "$aport" "" /usr/share/spamassassin "127.0.0.1:$bport"
	apid=$rpid
	sa="-rspamd-sa http://127.0.0.1:$aport -rspamd-sa-pid $apid"
fi

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

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)," \
	"$(rspamd --version 2>/dev/null | head -1), $(spamd --version 2>/dev/null | head -1), sa-compile: $compiled"
# shellcheck disable=SC2086
taskset -c 1 "$dir/bench" -rspamd "http://127.0.0.1:$port" -rspamd-pid "$pid" \
	-spamd "127.0.0.1:$sport" -spamd-pid "$spid" -clamd "127.0.0.1:$cport" \
	-gateway "$dir/gateway" -gateway-cpus 0 \
	-rbldnsd "127.0.0.1:$bport" -rbldnsd-stats "$dir/zones/stats" -rspamd-dns "http://127.0.0.1:$dport" -rspamd-dns-pid "$dpid" $sa "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
