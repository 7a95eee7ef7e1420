package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// mixedFiles returns files of text, PDF-like, random (incompressible) and
// zero-filled content adding up to about total bytes.
func mixedFiles(total int) []zfile {
	rng := rand.New(rand.NewPCG(1, 2))
	var files []zfile
	words := []string{"invoice ", "payment ", "shipment ", "the ", "quarterly ", "report ", "\n", "customer ", "2026 "}
	for i, size := 0, 0; size < total; i++ {
		n := 64<<10 + rng.IntN(512<<10)
		b := make([]byte, 0, n)
		switch i % 4 {
		case 0:
			for len(b) < n {
				b = append(b, words[rng.IntN(len(words))]...)
			}
		case 1:
			b = append(b, pdf...)
			for len(b) < n {
				b = append(b, "stream\n"...)
				for range 256 {
					b = append(b, byte(rng.IntN(256)))
				}
				b = append(b, "\nendstream\n"...)
			}
		case 2:
			b = b[:n]
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		case 3:
			b = b[:n]
		}
		files = append(files, zfile{name: "dir/file" + itoa(i) + ".dat", data: b})
		size += len(b)
	}
	return files
}

// binaryMessage carries data unencoded, so a benchmark measures the
// inspector, not base64.
func binaryMessage(name string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B0UNDARY-xyzzy\"\r\n\r\n")
	b.WriteString("--B0UNDARY-xyzzy\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n")
	b.WriteString("Content-Disposition: attachment; filename=\"" + name + "\"\r\n\r\n")
	b.Write(data)
	b.WriteString("\r\n--B0UNDARY-xyzzy--\r\n")
	return b.Bytes()
}

func benchInspect(b *testing.B, raw []byte, expanded int) {
	in := New(Config{})
	b.SetBytes(int64(expanded))
	b.ReportAllocs()
	h := watchHeap()
	b.ResetTimer()
	for range b.N {
		fs, err := in.Inspect(context.Background(), newMsg(raw))
		if err != nil || len(fs) != 0 {
			b.Fatal(err, fs)
		}
	}
	b.StopTimer()
	close(h.stop)
	h.wg.Wait()
	// The peak above the heap the benchmark's own data already used.
	b.ReportMetric(float64(h.peak.Load()-min(h.peak.Load(), h.base))/(1<<20), "peak-heap-MiB")
}

func expandedSize(files []zfile) int {
	n := 0
	for _, f := range files {
		n += len(f.data)
	}
	return n
}

// BenchmarkZip10MB: a zip of about 10 MB of mixed files. MB/s is of
// expanded content.
func BenchmarkZip10MB(b *testing.B) {
	files := mixedFiles(14 << 20)
	z := makeZip(b, files...)
	b.Logf("zip %d bytes, expanded %d", len(z), expandedSize(files))
	b.Run("binary", func(b *testing.B) { benchInspect(b, binaryMessage("mixed.zip", z), expandedSize(files)) })
	b.Run("base64", func(b *testing.B) { benchInspect(b, message(att{name: "mixed.zip", data: z}), expandedSize(files)) })
}

// BenchmarkTarGz50: a tar.gz of 50 files.
func BenchmarkTarGz50(b *testing.B) {
	files := mixedFiles(14 << 20)
	files = files[:min(50, len(files))]
	tgz := makeTarGz(b, files...)
	b.Logf("tar.gz %d bytes, expanded %d", len(tgz), expandedSize(files))
	b.Run("binary", func(b *testing.B) { benchInspect(b, binaryMessage("fifty.tar.gz", tgz), expandedSize(files)) })
	b.Run("base64", func(b *testing.B) {
		benchInspect(b, message(att{name: "fifty.tar.gz", data: tgz}), expandedSize(files))
	})
}

// BenchmarkZip10MBBaseline is the floor to compare with: archive/zip alone
// inflating the same zip from memory, nothing inspected.
func BenchmarkZip10MBBaseline(b *testing.B) {
	files := mixedFiles(14 << 20)
	z := makeZip(b, files...)
	b.SetBytes(int64(expandedSize(files)))
	for range b.N {
		zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, rc)
			rc.Close()
		}
	}
}

// BenchmarkCorpusText: the side-by-side benchmark's 3 MB text tier
// through Check alone: the search of a text body for encoded files.
func BenchmarkCorpusText(b *testing.B) {
	benchCorpus(b, benchcorpus.Text(3<<20))
}

// BenchmarkCorpusZip: the side-by-side benchmark's zip tier (a 160 KB
// message, a base64 zip of text and random members) through Check alone.
// MB/s is of the message; cpu-ns/op is the process's CPU time per
// message, which a busy machine inflates less than ns/op.
func BenchmarkCorpusZip(b *testing.B) {
	benchCorpus(b, benchcorpus.Zip(160<<10))
}

func benchCorpus(b *testing.B, raw []byte) {
	in := New(Config{})
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	cpu := benchcorpus.ProcessCPU()
	for b.Loop() {
		res, err := in.Check(context.Background(), newMsg(raw))
		if err != nil || len(res.Symbols) != 0 {
			b.Fatal(err, res.Symbols)
		}
	}
	b.ReportMetric(float64((benchcorpus.ProcessCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
