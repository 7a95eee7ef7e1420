package archive

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/portcullis-mail/portcullis/filter"
)

// TestRealMailIsAccepted runs the inspector, MIME defects included, over
// the real-mail corpus of package filter (messages from CPython's,
// SpamAssassin's and enmime's test suites): none may be held or refused,
// and none may score at the add-header threshold. The test logs how many
// carry a symbol at all: the false-positive rate of the defect symbols.
func TestRealMailIsAccepted(t *testing.T) {
	files, err := filepath.Glob("../filter/testdata/mail/*/*")
	require.NoError(t, err)
	in := New(Config{})
	flagged, n := 0, 0
	counts := map[string]int{}
	for _, f := range files {
		if strings.HasSuffix(f, ".md") {
			continue
		}
		n++
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		res, err := in.Check(context.Background(), filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{}))
		require.NoError(t, err)
		score := 0.0
		for _, s := range res.Symbols {
			score += s.Score
			counts[s.Name]++
		}
		if len(res.Symbols) > 0 {
			flagged++
			t.Logf("%s: %v", filepath.Base(f), res.Symbols)
		}
		assert.Equal(t, filter.Accept, res.Action, "%s: %v", f, res.Symbols)
		assert.Less(t, score, 5.0, "%s: %v", f, res.Symbols)
	}
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		t.Logf("%-28s %d", k, counts[k])
	}
	t.Logf("%d of %d real messages carry a symbol", flagged, n)
	require.GreaterOrEqual(t, n, 90)
}
