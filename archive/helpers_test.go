package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// att is one attachment of a test message.
type att struct {
	name   string // goes into Content-Disposition filename (raw header text when header is set)
	ctype  string // default application/octet-stream
	header string // extra header lines, verbatim
	data   []byte
}

// message builds a multipart message with each attachment base64-encoded.
func message(atts ...att) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"BOUNDARY\"\r\n\r\n")
	b.WriteString("--BOUNDARY\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n")
	for _, a := range atts {
		ct := a.ctype
		if ct == "" {
			ct = "application/octet-stream"
		}
		b.WriteString("--BOUNDARY\r\nContent-Type: " + ct + "\r\nContent-Transfer-Encoding: base64\r\n")
		if a.header != "" {
			b.WriteString(a.header)
		} else if a.name != "" {
			b.WriteString("Content-Disposition: attachment; filename=\"" + a.name + "\"\r\n")
		}
		b.WriteString("\r\n")
		enc := base64.StdEncoding.EncodeToString(a.data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--BOUNDARY--\r\n")
	return b.Bytes()
}

func newMsg(raw []byte) *filter.Message {
	return filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{})
}

// inspect runs Inspect and Check with cfg over one attachment, and fails
// the test if the heap in use went over 64 MiB meanwhile.
func inspect(t testing.TB, cfg Config, a att) (filter.Result, []Finding) {
	t.Helper()
	in := New(cfg)
	m := newMsg(message(a))
	h := watchHeap()
	defer h.done(t, maxHeap)
	fs, err := in.Inspect(context.Background(), m)
	if err != nil {
		t.Fatalf("Inspect(%s): %v", a.name, err)
	}
	res, err := in.Check(context.Background(), m)
	if err != nil {
		t.Fatalf("Check(%s): %v", a.name, err)
	}
	return res, fs
}

func hasFinding(fs []Finding, k Kind, detailPart string) bool {
	for _, f := range fs {
		if f.Kind == k && strings.Contains(f.Detail(), detailPart) {
			return true
		}
	}
	return false
}

func requireFinding(t testing.TB, fs []Finding, k Kind, detailPart string) {
	t.Helper()
	if !hasFinding(fs, k, detailPart) {
		t.Fatalf("no %s finding containing %q in %v", k.Symbol(), detailPart, fs)
	}
}

type zfile struct {
	name   string
	data   []byte
	method uint16 // zip.Store or zip.Deflate (default)
}

func makeZip(t testing.TB, files ...zfile) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		m := f.method
		if m == 0 && f.data != nil {
			m = zip.Deflate
		}
		if f.method == 0xffff {
			m = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func makeTarGz(t testing.TB, files ...zfile) []byte {
	t.Helper()
	var b bytes.Buffer
	gw := gzip.NewWriter(&b)
	tw := tar.NewWriter(gw)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// makeTarGzRaw gzips b as it is.
func makeTarGzRaw(b []byte) []byte {
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	gw.Write(b)
	gw.Close()
	return out.Bytes()
}

const clamDir = "/usr/share/clamav-testfiles"

// clamFile reads one of Debian's clamav-testfiles.
func clamFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(clamDir, name))
	if os.IsNotExist(err) {
		testsvc.Missing(t, "clamav-testfiles", "apt-get install -y clamav-testfiles")
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tinyPE is a minimal PE header: MZ, e_lfanew, "PE\0\0", a PE32 optional
// header magic. Enough for any type detector, runs nowhere.
func tinyPE() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	b[0x3c] = 0x80
	copy(b[0x80:], "PE\x00\x00")
	b[0x84], b[0x85] = 0x4c, 0x01 // i386
	b[0x80+24], b[0x80+25] = 0x0b, 0x01
	copy(b[0x40:], "This program cannot be run in DOS mode.")
	return b
}

// heapWatch samples the heap while a test runs and reports the peak.
type heapWatch struct {
	base uint64 // heap in use when the watch started
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func watchHeap() *heapWatch {
	runtime.GC()
	h := &heapWatch{stop: make(chan struct{}), base: heapInuse()}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			if v := heapInuse(); v > h.peak.Load() {
				h.peak.Store(v)
			}
			select {
			case <-h.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return h
}

// heapInuse is HeapInuse read through runtime/metrics, which does not stop
// the world the way ReadMemStats does.
func heapInuse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// done stops sampling and fails the test when the heap in use went over max.
func (h *heapWatch) done(t testing.TB, max uint64) {
	t.Helper()
	close(h.stop)
	h.wg.Wait()
	peak := max64(h.peak.Load(), heapInuse())
	if peak > max {
		t.Fatalf("peak heap in use %d MiB > %d MiB", peak>>20, max>>20)
	}
	t.Logf("peak heap in use %.1f MiB", float64(peak)/(1<<20))
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

var _ = fmt.Sprintf
var _ = io.EOF
