package rules

import (
	"fmt"
	"slices"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// TestSAFieldIDsOverLimit: past maxSAFieldIDs distinct fields a field has
// no number, and its strings come from the map by name, the same as a
// numbered field's.
func TestSAFieldIDsOverLimit(t *testing.T) {
	for i := 0; saFieldID(fmt.Sprintf("X-Filler-%d", i)) >= 0; i++ {
		if i > maxSAFieldIDs {
			t.Fatalf("%d fields numbered, limit %d", i, maxSAFieldIDs)
		}
	}
	numbered := parseSAHeaderSpec("Subject").sa // numbered by earlier tests or before the limit
	over := parseSAHeaderSpec("sUbJeCt").sa     // a name no rule uses: no number left
	if over.id != -1 {
		t.Fatalf("field past the limit numbered %d", over.id)
	}
	raw := "From: a@example.org\r\nSubject: hello there\r\n\r\nbody\r\n"
	s := mustBuild(t, Config{})
	v := &view{m: filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{}), set: s}
	defer v.releaseSAVals()
	a, b := v.saHeaderValue(over), v.saHeaderValue(over)
	if want := []string{"hello there\n"}; !slices.Equal(a, want) || !slices.Equal(b, want) {
		t.Fatalf("field past the limit: %q then %q, want %q", a, b, want)
	}
	if numbered.id >= 0 {
		if got := v.saHeaderValue(numbered); !slices.Equal(got, a) {
			t.Fatalf("numbered field %q, by name %q", got, a)
		}
	}
}
