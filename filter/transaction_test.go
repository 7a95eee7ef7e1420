package filter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var txCount = flag.Int("tx.count", 2000, "transactions in the spool cleanup test (the issue asks 10,000: -tx.count 10000)")

// fake is an in-memory filter that counts its runs and records what it saw.
type fake struct {
	name   string
	stages []Stage
	check  func(ctx context.Context, m *Message) (Result, error)

	mu    sync.Mutex
	runs  int
	seen  []Stage
	rcpts []string
}

func (f *fake) Name() string    { return f.name }
func (f *fake) Stages() []Stage { return f.stages }
func (f *fake) Check(ctx context.Context, m *Message) (Result, error) {
	f.mu.Lock()
	f.runs++
	f.seen = append(f.seen, StageOf(ctx))
	f.rcpts = append(f.rcpts, RecipientOf(ctx))
	f.mu.Unlock()
	if f.check == nil {
		return Result{}, nil
	}
	return f.check(ctx, m)
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs
}

// scorer adds one symbol of the given score at one stage.
func scorer(name string, s Stage, score float64) *fake {
	return &fake{name: name, stages: []Stage{s}, check: func(context.Context, *Message) (Result, error) {
		return sym(SymbolName(name), score), nil
	}}
}

// demander demands an action at one stage.
func demander(name string, s Stage, a Action) *fake {
	return &fake{name: name, stages: []Stage{s}, check: func(context.Context, *Message) (Result, error) {
		r := sym(SymbolName(name), 0)
		r.Demand(a)
		return r, nil
	}}
}

const smallMsg = "Subject: hello\r\n\r\nbody\r\n"

var ctx = context.Background()

// drive runs a whole transaction and returns the verdict of every stage.
func drive(t *testing.T, tx *Transaction, rcpts ...string) []Verdict {
	t.Helper()
	if len(rcpts) == 0 {
		rcpts = []string{"b@example.org"}
	}
	vs := []Verdict{tx.Connect(ctx), tx.Helo(ctx, "mx.example.com"), tx.Mail(ctx, "a@example.com")}
	for _, r := range rcpts {
		vs = append(vs, tx.Rcpt(ctx, r))
	}
	v, err := tx.Data(ctx, strings.NewReader(smallMsg))
	if err != nil {
		t.Fatalf("Data: %v", err)
	}
	return append(vs, v)
}

func TestTransactionCrossStageScoring(t *testing.T) {
	tests := []struct {
		name    string
		filters []Filter
		want    []Action // connect, helo, mail, rcpt, data
		score   float64
	}{
		{"connect 4 + data 4 reaches add-header", []Filter{scorer("dnsbl", Connect, 4), scorer("body", Data, 4)},
			[]Action{Accept, Accept, Accept, Accept, AddHeader}, 8},
		{"every stage adds up", []Filter{scorer("c", Connect, 1), scorer("h", Helo, 1), scorer("m", MailFrom, 1), scorer("r", Rcpt, 1), scorer("d", Data, 1)},
			[]Action{Accept, Accept, Accept, Accept, AddHeader}, 5},
		{"helo 3 + mail 3 is already add-header at mail", []Filter{scorer("h", Helo, 3), scorer("m", MailFrom, 3)},
			[]Action{Accept, Accept, AddHeader, AddHeader, AddHeader}, 6},
		{"negative scores count too", []Filter{scorer("c", Connect, -2), scorer("d", Data, 6)},
			[]Action{Accept, Accept, Accept, Accept, Accept}, 4},
		{"a quarantine demand at rcpt reaches data", []Filter{demander("r", Rcpt, Quarantine)},
			[]Action{Accept, Accept, Accept, Quarantine, Quarantine}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPipeline(Options{}, tt.filters...)
			tx := p.Begin(Envelope{ClientIP: netip.MustParseAddr("192.0.2.1")})
			defer tx.Close()
			vs := drive(t, tx)
			got := make([]Action, len(vs))
			for i, v := range vs {
				got[i] = v.Action
				assert.Equal(t, tx.ID(), v.MessageID)
			}
			assert.Equal(t, tt.want, got)
			last := vs[len(vs)-1]
			assert.Equal(t, tt.score, last.Score)
			assert.Equal(t, Data, last.Stage)
			assert.Equal(t, last, tx.Verdict())
			for _, f := range tt.filters {
				assert.Equal(t, 1, f.(*fake).count(), "%s runs once", f.Name())
				assert.True(t, last.Has(SymbolName(f.Name())), "the data verdict carries %s", f.Name())
			}
		})
	}
}

func TestTransactionEarlyExit(t *testing.T) {
	for _, stage := range []Stage{Connect, Helo, MailFrom} {
		for _, a := range []Action{Reject, Tempfail, Discard} {
			t.Run(stage.String()+"/"+a.String(), func(t *testing.T) {
				all := map[Stage]*fake{}
				var filters []Filter
				for _, s := range Stages() {
					f := scorer("f-"+s.String(), s, 0)
					if s == stage {
						f = demander("f-"+s.String(), s, a)
					}
					all[s] = f
					filters = append(filters, f)
				}
				tx := NewPipeline(Options{}, filters...).Begin(Envelope{})
				defer tx.Close()
				vs := drive(t, tx)
				for i, v := range vs {
					s := Stages()[min(i, 3)]
					if i == len(vs)-1 {
						s = Data
					}
					if s >= stage {
						assert.Equal(t, a, v.Action, "stage %s after %s ended it", s, stage)
						assert.Equal(t, stage, v.Stage, "the verdict is the one that ended it")
					} else {
						assert.Equal(t, Accept, v.Action)
					}
				}
				for s, f := range all {
					want := 0
					if s <= stage {
						want = 1
					}
					assert.Equal(t, want, f.count(), "filters of %s", s)
				}
				assert.Nil(t, tx.Message(), "no DATA is read after the end")
				switch a {
				case Reject:
					assert.True(t, vs[len(vs)-1].Reply.Permanent())
				case Tempfail:
					assert.True(t, vs[len(vs)-1].Reply.Temporary())
				}
			})
		}
	}
	t.Run("data", func(t *testing.T) {
		tx := NewPipeline(Options{}, demander("av", Data, Reject)).Begin(Envelope{})
		defer tx.Close()
		vs := drive(t, tx)
		assert.Equal(t, Reject, vs[len(vs)-1].Action)
		assert.Equal(t, Reply{550, "5.7.1", "Message refused by policy"}, vs[len(vs)-1].Reply)
	})
	t.Run("score at connect", func(t *testing.T) {
		data := scorer("d", Data, 0)
		tx := NewPipeline(Options{}, scorer("zen", Connect, 20), data).Begin(Envelope{})
		defer tx.Close()
		v := tx.Connect(ctx)
		assert.Equal(t, Reject, v.Action)
		assert.Equal(t, Reply{554, "5.7.1", "Access denied"}, v.Reply)
		dv, err := tx.Data(ctx, strings.NewReader(smallMsg))
		require.NoError(t, err)
		assert.Equal(t, v, dv)
		assert.Zero(t, data.count())
	})
}

func TestTransactionRecipients(t *testing.T) {
	// Refuses one recipient, scores another, and checks it is told which.
	perRcpt := &fake{name: "rcpt", stages: []Stage{Rcpt}}
	perRcpt.check = func(ctx context.Context, m *Message) (Result, error) {
		to := RecipientOf(ctx)
		rcpts := m.Envelope.RcptTo
		if len(rcpts) == 0 || rcpts[len(rcpts)-1] != to {
			return Result{}, fmt.Errorf("recipient %q is not last in %q", to, rcpts)
		}
		var r Result
		switch to {
		case "gone@example.org":
			r.Add("RCPT_UNKNOWN", 0, to)
			r.Demand(Reject)
		case "busy@example.org":
			r.Add("RCPT_BUSY", 0, to)
			r.Demand(Tempfail)
		case "trap@example.org":
			r.Add("RCPT_TRAP", 20, to) // score alone reaches reject: refused too
		case "spamlover@example.org":
			r.Add("RCPT_LOVER", 2, to)
		}
		return r, nil
	}
	var dataEnv Envelope
	data := &fake{name: "data", stages: []Stage{Data}, check: func(_ context.Context, m *Message) (Result, error) {
		dataEnv = m.Envelope
		return sym("BODY", 3), nil
	}}
	tx := NewPipeline(Options{}, perRcpt, data).Begin(Envelope{})
	defer tx.Close()
	tx.Connect(ctx)
	tx.Mail(ctx, "a@example.com")
	want := map[string]Action{
		"ok@example.org": Accept, "gone@example.org": Reject, "busy@example.org": Tempfail,
		"trap@example.org": Reject, "spamlover@example.org": Accept,
	}
	for _, to := range []string{"ok@example.org", "gone@example.org", "busy@example.org", "trap@example.org", "spamlover@example.org"} {
		v := tx.Rcpt(ctx, to)
		assert.Equal(t, want[to], v.Action, to)
		assert.Equal(t, Rcpt, v.Stage)
	}
	assert.Equal(t, []string{"ok@example.org", "spamlover@example.org"}, tx.Envelope().RcptTo)
	v, err := tx.Data(ctx, strings.NewReader(smallMsg))
	require.NoError(t, err)
	assert.Equal(t, AddHeader, v.Action, "2 at rcpt + 3 at data")
	assert.Equal(t, 5.0, v.Score)
	for _, gone := range []string{"RCPT_UNKNOWN", "RCPT_BUSY", "RCPT_TRAP"} {
		assert.False(t, v.Has(gone), "a refused recipient's evidence is dropped: %s", gone)
	}
	assert.Equal(t, []string{"ok@example.org", "spamlover@example.org"}, dataEnv.RcptTo)
	assert.Equal(t, "a@example.com", dataEnv.MailFrom)
	assert.Equal(t, 5, perRcpt.count(), "once per recipient")
	assert.Equal(t, []string{"ok@example.org", "gone@example.org", "busy@example.org", "trap@example.org", "spamlover@example.org"}, perRcpt.rcpts)
}

func TestTransactionStageInContext(t *testing.T) {
	all := &fake{name: "all", stages: Stages()}
	tx := NewPipeline(Options{}, all).Begin(Envelope{})
	defer tx.Close()
	drive(t, tx, "x@example.org", "y@example.org")
	assert.Equal(t, []Stage{Connect, Helo, MailFrom, Rcpt, Rcpt, Data}, all.seen)
	assert.Equal(t, []string{"", "", "", "x@example.org", "y@example.org", ""}, all.rcpts)
	assert.Equal(t, Data, StageOf(context.Background()), "no stage in the context means Data")
	assert.Equal(t, "", RecipientOf(context.Background()))
}

func TestTransactionResetAndSeveral(t *testing.T) {
	conn := scorer("conn", Connect, 4)
	helo := scorer("helo", Helo, 0.5)
	mail := &fake{name: "mail", stages: []Stage{MailFrom}, check: func(_ context.Context, m *Message) (Result, error) {
		if m.Envelope.MailFrom == "spammer@example.net" {
			return Result{Symbols: []Symbol{{Name: "SENDER_BAD", Score: 100}}}, nil
		}
		return sym("SENDER_OK", 0), nil
	}}
	var bodies []string
	data := &fake{name: "data", stages: []Stage{Data}, check: func(_ context.Context, m *Message) (Result, error) {
		b, err := io.ReadAll(m.Reader())
		bodies = append(bodies, string(b))
		if m.Envelope.MailFrom == "" || len(m.Envelope.RcptTo) != 1 {
			return Result{}, fmt.Errorf("envelope %+v leaked from another transaction", m.Envelope)
		}
		return sym("BODY", 1), err
	}}
	tx := NewPipeline(Options{}, conn, helo, mail, data).Begin(Envelope{ClientIP: netip.MustParseAddr("192.0.2.7")})
	defer tx.Close()
	tx.Connect(ctx)
	tx.Helo(ctx, "mx.example.com")
	ids := map[string]bool{}
	for i := range 3 {
		if i > 0 {
			tx.Reset()
		}
		assert.False(t, ids[tx.ID()], "a new ID per transaction")
		ids[tx.ID()] = true
		assert.Nil(t, tx.Message())
		assert.Empty(t, tx.Envelope().RcptTo)
		assert.Equal(t, "mx.example.com", tx.Envelope().Helo, "HELO survives RSET")
		tx.Mail(ctx, fmt.Sprintf("s%d@example.com", i))
		tx.Rcpt(ctx, fmt.Sprintf("r%d@example.org", i))
		v, err := tx.Data(ctx, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)))
		require.NoError(t, err)
		assert.Equal(t, AddHeader, v.Action, "connect 4 + helo 0.5 + body 1, every transaction")
		assert.Equal(t, 5.5, v.Score)
		assert.Equal(t, tx.ID(), v.MessageID)
		assert.Equal(t, []string{fmt.Sprintf("r%d@example.org", i)}, tx.Message().Envelope.RcptTo)
	}
	// A transaction ended at MAIL FROM does not end the connection.
	tx.Reset()
	assert.Equal(t, Reject, tx.Mail(ctx, "spammer@example.net").Action)
	assert.Equal(t, Reject, tx.Rcpt(ctx, "r@example.org").Action)
	tx.Reset()
	assert.Equal(t, Accept, tx.Mail(ctx, "fine@example.com").Action)
	tx.Rcpt(ctx, "r@example.org")
	v, err := tx.Data(ctx, strings.NewReader(smallMsg))
	require.NoError(t, err)
	assert.False(t, v.Has("SENDER_BAD"), "the rejected transaction's evidence is gone")

	assert.Equal(t, 1, conn.count())
	assert.Equal(t, 1, helo.count())
	assert.Equal(t, 5, mail.count())
	assert.Equal(t, 4, data.count())
	assert.Equal(t, []string{"Subject: 0\r\n\r\nbody\r\n", "Subject: 1\r\n\r\nbody\r\n", "Subject: 2\r\n\r\nbody\r\n", smallMsg}, bodies)

	// A client rejected at connect stays rejected after RSET.
	tx2 := NewPipeline(Options{}, demander("zen", Connect, Reject)).Begin(Envelope{})
	defer tx2.Close()
	tx2.Connect(ctx)
	id := tx2.ID()
	tx2.Reset()
	v = tx2.Mail(ctx, "a@example.com")
	assert.Equal(t, Reject, v.Action)
	assert.NotEqual(t, id, v.MessageID)
}

func TestTransactionZeroOptionsRejectsGTUBE(t *testing.T) {
	gtube := Func("rules", func(_ context.Context, m *Message) (Result, error) {
		var r Result
		if b, _ := io.ReadAll(m.Reader()); bytes.Contains(b, []byte("GTUBE")) {
			r.Add("GTUBE", 1000, "")
		}
		return r, nil
	})
	tx := NewPipeline(Options{}, gtube).Begin(Envelope{})
	defer tx.Close()
	v, err := tx.Data(ctx, strings.NewReader("Subject: x\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"))
	require.NoError(t, err)
	assert.Equal(t, Reject, v.Action, "a zero-config pipeline has the default thresholds")
}

func TestTransactionSizeLimitWhileReading(t *testing.T) {
	data := scorer("data", Data, 0)
	p := NewPipeline(Options{Limits: Limits{MaxMessageBytes: 1 << 20}, Spool: SpoolConfig{Dir: t.TempDir(), MemoryBytes: 64 << 10}}, data)
	tx := p.Begin(Envelope{})
	defer tx.Close()
	endless := &countingReader{r: neverEnding('x')}
	v, err := tx.Data(ctx, endless)
	var le *LimitError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, LimitMessageBytes, le.Limit)
	assert.Equal(t, int64(1<<20), le.Max)
	assert.LessOrEqual(t, endless.n, int64(1<<20+spoolChunk), "reading stops at the limit")
	assert.Equal(t, Reject, v.Action)
	assert.Equal(t, Reply{552, "5.3.4", "Message too big"}, v.Reply)
	assert.True(t, v.Has("MIME_LIMIT_MESSAGE_BYTES"))
	assert.Zero(t, data.count(), "no filter runs on a message that was not read whole")
	assert.Nil(t, tx.Message())
	assertEmptyDir(t, p.spool.Dir)

	// One byte under the limit passes, one over does not.
	for _, n := range []int{1 << 20, 1<<20 + 1} {
		tx := p.Begin(Envelope{})
		_, err := tx.Data(ctx, strings.NewReader(strings.Repeat("y", n)))
		assert.Equal(t, n > 1<<20, errors.Is(err, ErrLimit), "size %d", n)
		require.NoError(t, tx.Close())
	}
}

func TestTransactionReadError(t *testing.T) {
	tx := NewPipeline(Options{}).Begin(Envelope{})
	defer tx.Close()
	broken := io.MultiReader(strings.NewReader("Subject: x\r\n"), errReader{errors.New("connection reset")})
	v, err := tx.Data(ctx, broken)
	require.Error(t, err)
	assert.Equal(t, Tempfail, v.Action, "a read error is never a 5xx")
	assert.Equal(t, 451, v.Reply.Code)
	assert.True(t, v.Has("MESSAGE_READ_FAIL"))
}

// TestSpoolCleanup runs many transactions that spill to files, one in
// three ending in an error or a panic, and checks nothing is left behind:
// no file in the spool directory and no file descriptor still open.
func TestSpoolCleanup(t *testing.T) {
	dir := t.TempDir()
	var panics atomic.Int64
	filt := Func("body", func(_ context.Context, m *Message) (Result, error) {
		b := make([]byte, 16)
		if _, err := m.ReaderAt().ReadAt(b, m.Size()-16); err != nil {
			return Result{}, err
		}
		if bytes.HasSuffix(b, []byte("PANIC\r\n")) {
			panics.Add(1)
			panic("filter bug")
		}
		return Result{}, nil
	})
	p := NewPipeline(Options{Spool: SpoolConfig{Dir: dir, MemoryBytes: 512, MaxBytes: 8 << 10}}, filt)
	fds := openFDs(t)
	big := strings.Repeat("a", 2<<10)
	var limited, readErrs, readPanics int
	for i := range *txCount {
		tx := p.Begin(Envelope{})
		tx.Connect(ctx)
		tx.Mail(ctx, "a@example.com")
		tx.Rcpt(ctx, "b@example.org")
		var r io.Reader
		switch i % 6 {
		case 0:
			r = strings.NewReader("Subject: x\r\n\r\n" + big + "PANIC\r\n") // the filter panics
		case 1:
			r = strings.NewReader(strings.Repeat(big, 5)) // over MaxBytes
		case 2:
			r = io.MultiReader(strings.NewReader(big), errReader{io.ErrUnexpectedEOF}) // client dropped
		case 3:
			r = io.MultiReader(strings.NewReader(big), panicReader{}) // the front-end's reader panics
		case 4:
			r = strings.NewReader("Subject: small\r\n\r\nin memory\r\n")
		default:
			r = strings.NewReader(big)
		}
		v, err := tx.Data(ctx, r)
		switch i % 6 {
		case 0:
			assert.Equal(t, Tempfail, v.Action)
		case 1:
			if errors.Is(err, ErrLimit) {
				limited++
			}
		case 2:
			if err != nil && v.Action == Tempfail {
				readErrs++
			}
		case 3:
			if err != nil && v.Action == Tempfail {
				readPanics++
			}
		case 4:
			require.NoError(t, err)
			assert.True(t, tx.spool.InMemory())
		case 5:
			require.NoError(t, err)
			assert.False(t, tx.spool.InMemory(), "over MemoryBytes goes to a file")
		}
		if i%2 == 0 {
			tx.Reset() // RSET before closing must clean up too
		}
		require.NoError(t, tx.Close())
		require.NoError(t, tx.Close(), "Close is idempotent")
	}
	n := *txCount
	assert.Equal(t, (n+4)/6, limited)
	assert.Equal(t, (n+3)/6, readErrs)
	assert.Equal(t, (n+2)/6, readPanics)
	assert.Equal(t, int64((n+5)/6), panics.Load())
	assert.Equal(t, uint64(panics.Load()), p.Panics())
	assertEmptyDir(t, dir)
	assert.LessOrEqual(t, openFDs(t), fds+2, "every spool file was closed")
}

func TestSpoolReadAt(t *testing.T) {
	raw := make([]byte, 3*spoolChunk+123)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	for _, memory := range []int64{-1, 10, spoolChunk, 1 << 20} {
		t.Run(fmt.Sprint(memory), func(t *testing.T) {
			sp, err := NewSpool(ctx, bytes.NewReader(raw), SpoolConfig{Dir: t.TempDir(), MemoryBytes: memory})
			require.NoError(t, err)
			defer sp.Close()
			assert.Equal(t, memory == 1<<20, sp.InMemory())
			assert.Equal(t, int64(len(raw)), sp.Size())
			got, err := io.ReadAll(sp.Reader())
			require.NoError(t, err)
			assert.Equal(t, raw, got)
			for _, off := range []int64{0, 1, spoolChunk - 1, spoolChunk, 2*spoolChunk + 5, int64(len(raw)) - 3} {
				b := make([]byte, 100)
				n, err := sp.ReadAt(b, off)
				want := raw[off:min(off+100, int64(len(raw)))]
				assert.Equal(t, want, b[:n], "offset %d", off)
				if n < 100 {
					assert.Equal(t, io.EOF, err)
				} else {
					assert.NoError(t, err)
				}
			}
			n, err := sp.ReadAt(make([]byte, 1), int64(len(raw)))
			assert.Equal(t, 0, n)
			assert.Equal(t, io.EOF, err)
			require.NoError(t, sp.Close())
			_, err = sp.ReadAt(make([]byte, 1), 0)
			assert.ErrorIs(t, err, ErrSpoolClosed)
		})
	}
	empty, err := NewSpool(ctx, strings.NewReader(""), SpoolConfig{})
	require.NoError(t, err)
	assert.Zero(t, empty.Size())
	b, _ := io.ReadAll(empty.Reader())
	assert.Empty(t, b)
	require.NoError(t, empty.Close())
}

func TestSpoolContext(t *testing.T) {
	c, cancel := context.WithCancel(ctx)
	dir := t.TempDir()
	r := &countingReader{r: neverEnding('z'), after: 1 << 20, do: cancel}
	_, err := NewSpool(c, r, SpoolConfig{Dir: dir, MaxBytes: -1})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 451, ErrorReply(err).Code)
	assertEmptyDir(t, dir)
}

type countingReader struct {
	r     io.Reader
	n     int64
	after int64
	do    func()
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.do != nil && c.n >= c.after {
		c.do()
	}
	return n, err
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("reader bug") }

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents, "files left in the spool directory")
}

// openFDs counts this process's open file descriptors (Linux); it skips
// nothing elsewhere: the count is then 0 and the assertion trivially true.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func TestTransactionLogLines(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	broken := Func("dns", func(context.Context, *Message) (Result, error) { return Result{}, errors.New("SERVFAIL") }, Connect)
	p := NewPipeline(Options{Logger: logger, Policy: Policy{OnError: FailOpen}}, broken, scorer("body", Data, 1))
	tx := p.Begin(Envelope{})
	defer tx.Close()
	drive(t, tx)
	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		require.NoError(t, json.Unmarshal(l, &m))
		lines = append(lines, m)
	}
	require.Len(t, lines, 2, "one failure line, one verdict line: %s", buf.String())
	assert.Equal(t, "filter failed", lines[0]["msg"])
	assert.Equal(t, "verdict", lines[1]["msg"])
	for _, l := range lines {
		assert.Equal(t, tx.ID(), l[LogMessageID], "every line names the message")
	}
	assert.Equal(t, "data", lines[1]["stage"])
	assert.Equal(t, float64(250), lines[1]["reply"])
}

// A filter that ignores its deadline and reads the message after the
// transaction closed gets ErrSpoolClosed, never the pooled memory that
// now holds the next message.
func TestSpoolClosedUnderStrayFilter(t *testing.T) {
	release, read := make(chan struct{}), make(chan error, 1)
	var once sync.Once
	stray := Func("stray", func(_ context.Context, m *Message) (Result, error) {
		first := false
		once.Do(func() { first = true })
		if !first {
			return Result{}, nil
		}
		<-release // ignores its context
		b := make([]byte, 5)
		_, err := m.ReaderAt().ReadAt(b, 0)
		if err == nil {
			err = fmt.Errorf("read %q after Close", b)
		}
		read <- err
		return Result{}, nil
	})
	p := NewPipeline(Options{Policy: Policy{Timeout: 20 * time.Millisecond}}, stray)
	tx := p.Begin(Envelope{})
	v, err := tx.Data(ctx, strings.NewReader("FIRST message\r\n"))
	require.NoError(t, err)
	assert.Equal(t, Tempfail, v.Action, "the stray filter timed out")
	require.NoError(t, tx.Close())
	tx2 := p.Begin(Envelope{})
	defer tx2.Close()
	_, err = tx2.Data(ctx, strings.NewReader("OTHER message\r\n"))
	require.NoError(t, err)
	close(release)
	assert.ErrorIs(t, <-read, ErrSpoolClosed)
}

func TestTransactionImplicitReset(t *testing.T) {
	helo := scorer("helo", Helo, 3)
	mail := &fake{name: "mail", stages: []Stage{MailFrom}, check: func(_ context.Context, m *Message) (Result, error) {
		var r Result
		if m.Envelope.MailFrom == "bad@example.net" {
			r.Demand(Reject)
		}
		return r, nil
	}}
	tx := NewPipeline(Options{}, helo, mail, scorer("body", Data, 1)).Begin(Envelope{})
	defer tx.Close()
	tx.Connect(ctx)
	tx.Helo(ctx, "a.example")
	assert.Equal(t, 3.0, tx.Helo(ctx, "b.example").Score, "a second EHLO (after STARTTLS) replaces the first")

	// A refused MAIL FROM, then another without RSET: the new sender is
	// judged on its own.
	assert.Equal(t, Reject, tx.Mail(ctx, "bad@example.net").Action)
	first := tx.ID()
	assert.Equal(t, Accept, tx.Mail(ctx, "good@example.com").Action)
	assert.NotEqual(t, first, tx.ID())
	tx.Rcpt(ctx, "r@example.org")
	v, err := tx.Data(ctx, strings.NewReader(smallMsg))
	require.NoError(t, err)
	assert.Equal(t, 4.0, v.Score)

	// After DATA, the next MAIL starts the next transaction.
	assert.Equal(t, Accept, tx.Mail(ctx, "next@example.com").Action)
	assert.Nil(t, tx.Message())
	assert.Empty(t, tx.Envelope().RcptTo)
	tx.Rcpt(ctx, "r2@example.org")

	// EHLO in the middle of a transaction resets it.
	tx.Helo(ctx, "c.example")
	env := tx.Envelope()
	assert.Equal(t, "", env.MailFrom)
	assert.Empty(t, env.RcptTo)
	assert.Equal(t, "c.example", env.Helo)
	assert.Equal(t, 3, mail.count())
	assert.Equal(t, 3, helo.count())
}

// A shared budget keeps messages over MemoryBytes in memory while it
// lasts; one that would exceed it spills to a file and leaves the budget
// as it was; Close and a spill give back what a spool held.
func TestSpoolBudget(t *testing.T) {
	dir := t.TempDir()
	budget := NewSpoolBudget(2 * spoolChunk)
	cfg := SpoolConfig{Dir: dir, MemoryBytes: spoolChunk, Shared: budget}
	msg := func(n int) []byte { return bytes.Repeat([]byte("budget\r\n"), n/8) }
	spool := func(raw []byte) *Spool {
		t.Helper()
		sp, err := NewSpool(ctx, bytes.NewReader(raw), cfg)
		require.NoError(t, err)
		got, err := io.ReadAll(sp.Reader())
		require.NoError(t, err)
		require.Equal(t, raw, got)
		return sp
	}
	first := spool(msg(3 * spoolChunk))
	assert.True(t, first.InMemory(), "three chunks: one of its own, two of the budget")
	assert.Equal(t, int64(2*spoolChunk), budget.Held())
	second := spool(msg(spoolChunk + 8))
	assert.False(t, second.InMemory(), "the budget is spent: a file")
	assert.Equal(t, int64(2*spoolChunk), budget.Held())
	require.NoError(t, second.Close())
	require.NoError(t, first.Close())
	assert.Zero(t, budget.Held())
	third := spool(msg(spoolChunk + 8))
	assert.True(t, third.InMemory())
	assert.Equal(t, int64(spoolChunk), budget.Held())
	big := spool(msg(4 * spoolChunk))
	assert.False(t, big.InMemory(), "over what is left of the budget")
	assert.Equal(t, int64(spoolChunk), budget.Held(), "the spill gave back what it had taken")
	require.NoError(t, big.Close())
	require.NoError(t, third.Close())
	assert.Zero(t, budget.Held())
	// A spool that fails (over its size limit) gives back its share too.
	_, err := NewSpool(ctx, bytes.NewReader(msg(3*spoolChunk)), SpoolConfig{Dir: dir, MemoryBytes: spoolChunk, Shared: budget, MaxBytes: 2*spoolChunk + 10})
	var le *LimitError
	require.ErrorAs(t, err, &le)
	assert.Zero(t, budget.Held())
	assertEmptyDir(t, dir)
}

// A spool in memory is handed to the filters as one slice they read in
// place, the same bytes ReadAt returns; it stays valid after Close while
// ReadAt fails. A spool in a file has no slice.
func TestSpoolBytes(t *testing.T) {
	raw := make([]byte, 3*spoolChunk+123)
	for i := range raw {
		raw[i] = byte(i*7 + i>>9)
	}
	for _, size := range []int{0, 10, spoolChunk, len(raw)} {
		sp, err := NewSpool(ctx, bytes.NewReader(raw[:size]), SpoolConfig{Dir: t.TempDir()})
		require.NoError(t, err)
		b, ok := sp.Bytes()
		require.True(t, ok)
		assert.Equal(t, raw[:size], b, "size %d", size)
		got, err := io.ReadAll(sp.Reader())
		require.NoError(t, err)
		assert.Equal(t, raw[:size], got)
		again, _ := sp.Bytes()
		assert.Equal(t, len(b), len(again))
		require.NoError(t, sp.Close())
		assert.Equal(t, raw[:size], b, "valid after Close")
		_, err = sp.ReadAt(make([]byte, 1), 0)
		assert.ErrorIs(t, err, ErrSpoolClosed)
		_, ok = sp.Bytes()
		assert.False(t, ok, "closed")
	}
	sp, err := NewSpool(ctx, bytes.NewReader(raw), SpoolConfig{Dir: t.TempDir(), MemoryBytes: -1})
	require.NoError(t, err)
	defer sp.Close()
	_, ok := sp.Bytes()
	assert.False(t, ok, "a file spool has no slice")

	// The transaction's message is read in place when it was spooled in
	// memory, through the file otherwise.
	for _, memory := range []int64{0, -1} {
		var inPlace, seen bool
		f := Func("look", func(_ context.Context, m *Message) (Result, error) {
			b, ok := m.Bytes()
			inPlace, seen = ok, bytes.Equal(b, raw)
			if !ok {
				all, err := io.ReadAll(m.Reader())
				seen = err == nil && bytes.Equal(all, raw)
			}
			return Result{}, nil
		})
		tx := NewPipeline(Options{Spool: SpoolConfig{Dir: t.TempDir(), MemoryBytes: memory}}, f).Begin(Envelope{})
		_, err := tx.Data(ctx, bytes.NewReader(raw))
		require.NoError(t, err)
		assert.Equal(t, memory == 0, inPlace, "memory %d", memory)
		assert.True(t, seen, "memory %d: the filter read the message", memory)
		require.NoError(t, tx.Close())
	}
}
