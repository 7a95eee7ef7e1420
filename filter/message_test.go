package filter

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestMessageShared: concurrent callers of one key get the one value,
// built once; another key builds its own; a build that panics leaves
// nil for the others instead of a hang.
func TestMessageShared(t *testing.T) {
	m := NewMessageBytes(Envelope{}, []byte("Subject: x\r\n\r\nbody\r\n"), Limits{})
	type key struct{ n int }
	var builds atomic.Int32
	var wg sync.WaitGroup
	got := make([]any, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = m.Shared(key{1}, func() any { builds.Add(1); return new(int) })
		}()
	}
	wg.Wait()
	if builds.Load() != 1 {
		t.Fatalf("built %d times", builds.Load())
	}
	for _, v := range got {
		if v != got[0] {
			t.Fatal("callers got different values")
		}
	}
	if m.Shared(key{2}, func() any { return new(int) }) == got[0] {
		t.Error("another key got the same value")
	}
	func() {
		defer func() { _ = recover() }()
		m.Shared(key{3}, func() any { panic("build failed") })
	}()
	if v := m.Shared(key{3}, func() any { return 1 }); v != nil {
		t.Errorf("after a panicking build: %v, want nil", v)
	}
}
