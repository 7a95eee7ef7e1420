package fleet

import (
	"errors"
	"testing"

	"github.com/portcullis-mail/portcullis/scanner"
)

// FuzzDecodeAV: a KV value never panics the AV cache's decoder, and what
// it accepts is within the limits and re-encodes.
func FuzzDecodeAV(f *testing.F) {
	k := avKeyOf(1, "v1")
	good, _ := encodeAV(k, scanner.Result{Signatures: []string{"Eicar-Test-Signature"}})
	f.Add(good)
	f.Add([]byte(`{"e":"clamd-1","v":"v1"}`))
	f.Add([]byte(`{"e":"clamd-1","v":"v2","s":["x"]}`))
	f.Add([]byte(`{"e":"clamd-1","v":"v1","s":[""]}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeAV(k, data)
		if err != nil {
			return
		}
		if len(r.Signatures) > MaxAVSignatures {
			t.Fatalf("%d signatures accepted", len(r.Signatures))
		}
		if _, err := encodeAV(k, r); err != nil && !errors.Is(err, ErrValueTooLarge) {
			t.Fatalf("accepted %q does not re-encode: %v", data, err)
		}
	})
}

// FuzzDecodeRates: a node's published counts never panic the guard's
// decoder, and what it accepts is within the limits.
func FuzzDecodeRates(f *testing.F) {
	f.Add([]byte(`{"node":"a","counts":[{"e":"clamd-1","v":"1","s":5,"h":2}]}`))
	f.Add([]byte(`{"node":"a","counts":[{"e":"c","v":"1","s":1,"h":2}]}`))
	f.Add([]byte(`{"node":"b"}`))
	f.Add([]byte(`{"node":"a","counts":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		counts, err := decodeRates("a", data)
		if err != nil {
			return
		}
		if len(counts) > MaxRateEntries {
			t.Fatalf("%d counts accepted", len(counts))
		}
		for k, c := range counts {
			if k.engine == "" || len(k.engine) > maxName || len(k.version) > maxName || c.hits < 0 || c.hits > c.scans || c.scans > maxCount {
				t.Fatalf("accepted %q: %+v %+v", data, k, c)
			}
		}
	})
}
