package testsvc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PostfixInstall is the command that installs Postfix without touching a
// system configuration.
const PostfixInstall = `echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections && DEBIAN_FRONTEND=noninteractive apt-get install -y postfix`

// PostfixConfig configures a private Postfix instance.
type PostfixConfig struct {
	// Milter is the smtpd_milters value, e.g. "inet:127.0.0.1:11332";
	// empty means no milter.
	Milter string
	// DefaultAction is milter_default_action; empty means tempfail, so a
	// milter that is down or dies never lets mail pass unfiltered.
	DefaultAction string
	// Relay is the next hop for all mail (host:port, e.g. an SMTPSink).
	Relay string
	// Main holds more main.cf parameters (they win over the defaults).
	Main map[string]string
}

// Postfix is a private Postfix instance on loopback: its own
// config_directory, queue_directory and data_directory in a temp dir, its
// own smtpd port, its own master process. No system file is read or
// written besides the binaries.
type Postfix struct {
	Addr     string // host:port of its smtpd
	ConfDir  string
	QueueDir string
	logFile  string
	master   *exec.Cmd
	exited   chan struct{}
	t        testing.TB
}

// StartPostfix starts Postfix (Debian's package) with cfg; it stops when
// the test ends. Missing Postfix calls Missing. It must run as root: the
// master starts its daemons as the postfix user.
func StartPostfix(t testing.TB, cfg PostfixConfig) *Postfix {
	t.Helper()
	Integration(t)
	master := LookPath(t, "master", PostfixInstall, "/usr/lib/postfix/sbin", "/usr/libexec/postfix")
	LookPath(t, "postqueue", PostfixInstall, "/usr/sbin")
	if os.Geteuid() != 0 {
		Missing(t, "root (Postfix's master must start as root)", "run the Postfix tests as root")
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		Missing(t, "the postfix user", PostfixInstall)
	}
	dropGroup, err := user.LookupGroup("postdrop")
	if err != nil {
		Missing(t, "the postdrop group", PostfixInstall)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	gid, _ := strconv.Atoi(dropGroup.Gid)

	root := t.TempDir()
	// Postfix's daemons run as the postfix user and open files under
	// data_directory by absolute path: the temp dirs must be traversable.
	for d := root; d != os.TempDir() && d != "/" && strings.HasPrefix(d, os.TempDir()); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &Postfix{
		Addr:     "127.0.0.1:" + strconv.Itoa(FreePort(t)),
		ConfDir:  filepath.Join(root, "conf"),
		QueueDir: filepath.Join(root, "queue"),
		logFile:  filepath.Join(root, "maillog"),
		exited:   make(chan struct{}),
		t:        t,
	}
	data := filepath.Join(root, "data")
	mkdir(t, p.ConfDir, 0o755, -1, -1)
	mkdir(t, p.QueueDir, 0o755, -1, -1)
	mkdir(t, data, 0o700, uid, -1)
	// The queue layout postfix-files prescribes; making it here saves the
	// seconds `postfix check` takes.
	for _, d := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		mkdir(t, filepath.Join(p.QueueDir, d), 0o700, uid, -1)
	}
	mkdir(t, filepath.Join(p.QueueDir, "maildrop"), 0o730, uid, gid)
	mkdir(t, filepath.Join(p.QueueDir, "public"), 0o710, uid, gid)
	mkdir(t, filepath.Join(p.QueueDir, "pid"), 0o755, -1, -1)

	write(t, filepath.Join(p.ConfDir, "main.cf"), p.mainCF(cfg, data))
	write(t, filepath.Join(p.ConfDir, "master.cf"), p.masterCF())

	p.master = exec.Command(master, "-c", p.ConfDir)
	p.master.Dir = p.QueueDir
	p.master.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MAIL_CONFIG=" + p.ConfDir}
	// If the test binary dies, the master dies with it (its daemons
	// follow when they lose the master).
	p.master.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	p.master.Stdout, p.master.Stderr = &out, &out
	if err := p.master.Start(); err != nil {
		t.Fatalf("postfix master: %v", err)
	}
	go func() { p.master.Wait(); close(p.exited) }()
	t.Cleanup(p.Stop)
	if err := p.waitSMTP(15 * time.Second); err != nil {
		t.Fatalf("postfix did not answer on %s: %v\n%s\n%s", p.Addr, err, out.String(), p.Log())
	}
	return p
}

func mkdir(t testing.TB, dir string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // umask
		t.Fatal(err)
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (p *Postfix) mainCF(cfg PostfixConfig, data string) string {
	def := cfg.DefaultAction
	if def == "" {
		def = "tempfail"
	}
	m := map[string]string{
		"compatibility_level":      "3.6",
		"queue_directory":          p.QueueDir,
		"data_directory":           data,
		"mail_owner":               "postfix",
		"setgid_group":             "postdrop",
		"myhostname":               "postfix.test",
		"mydomain":                 "test",
		"myorigin":                 "postfix.test",
		"mydestination":            "",
		"local_recipient_maps":     "",
		"alias_maps":               "",
		"alias_database":           "",
		"inet_interfaces":          "127.0.0.1",
		"inet_protocols":           "ipv4",
		"mynetworks":               "127.0.0.0/8",
		"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
		"smtpd_peername_lookup":    "no",
		"smtp_dns_support_level":   "disabled",
		"maillog_file":             p.logFile,
		"maillog_file_prefixes":    filepath.Dir(p.logFile),
		"milter_default_action":    def,
		"milter_connect_timeout":   "5s",
		"milter_command_timeout":   "10s",
		"milter_content_timeout":   "30s",
		// Deliver deferred mail again quickly (a sink that was down).
		"queue_run_delay":                    "1s",
		"minimal_backoff_time":               "1s",
		"maximal_backoff_time":               "2s",
		"smtp_connect_timeout":               "5s",
		"smtpd_error_sleep_time":             "0",
		"smtpd_soft_error_limit":             "1000",
		"smtpd_hard_error_limit":             "1000",
		"in_flow_delay":                      "0",
		"smtpd_client_connection_rate_limit": "0",
	}
	if cfg.Milter != "" {
		m["smtpd_milters"] = cfg.Milter
	}
	if cfg.Relay != "" {
		m["relayhost"] = "[" + strings.Replace(cfg.Relay, ":", "]:", 1)
	}
	for k, v := range cfg.Main {
		m[k] = v
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, m[k])
	}
	return b.String()
}

// masterCF lists only the services a relay-only Postfix needs, none
// chrooted (the temp dir has no chroot files).
func (p *Postfix) masterCF() string {
	return p.Addr + ` inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`
}

// waitSMTP waits until the smtpd answers with a greeting.
func (p *Postfix) waitSMTP(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("master exited: %v", p.master.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			// 220, or the 554 of a milter that refuses the probe's
			// connection: either way smtpd answers.
			if rerr == nil && len(line) >= 4 && (strings.HasPrefix(line, "220") || strings.HasPrefix(line, "554")) {
				return nil
			}
			last = fmt.Errorf("greeting %q: %v", line, rerr)
		} else {
			last = err
		}
		time.Sleep(20 * time.Millisecond) // the port refuses until the master has bound it
	}
	return last
}

// Stop stops the master (SIGTERM to its own PID, as `postfix stop` does)
// and waits for it; SIGKILL after 10 s.
func (p *Postfix) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.master.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.master.Process.Kill()
		<-p.exited
	}
}

// Log returns the instance's mail log so far (for failure messages).
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

// WaitLog waits until the mail log contains s, or timeout passes. Postfix
// logs through its postlogd daemon, after the SMTP reply: a test must not
// read the log right after the reply.
func (p *Postfix) WaitLog(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Log(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // the log file has no change notification here
	}
	return true
}

// PostfixQueued is one message in Postfix's queue (postqueue -j).
type PostfixQueued struct {
	QueueName  string `json:"queue_name"` // "hold", "deferred", "active", "incoming"
	QueueID    string `json:"queue_id"`
	Sender     string `json:"sender"`
	Recipients []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// Queue lists the instance's queue (postqueue -c DIR -j).
func (p *Postfix) Queue() []PostfixQueued {
	p.t.Helper()
	cmd := exec.Command("postqueue", "-c", p.ConfDir, "-j")
	out, err := cmd.Output()
	if err != nil {
		p.t.Fatalf("postqueue -j: %v\n%s", err, p.Log())
	}
	var q []PostfixQueued
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e PostfixQueued
		if err := json.Unmarshal(line, &e); err != nil {
			p.t.Fatalf("postqueue -j: %v: %s", err, line)
		}
		q = append(q, e)
	}
	return q
}

// WaitQueueEmpty waits until Postfix's queue is empty (a delivered
// message leaves it shortly after the next hop's 250) and reports whether
// it did within timeout.
func (p *Postfix) WaitQueueEmpty(timeout time.Duration) bool {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for len(p.Queue()) != 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // the queue has no change notification
	}
	return true
}
