package fleet

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// FuzzDecodeSet: a KV value never panics the decoder, and a decoded set
// only names local paths and its rule files are among its files.
func FuzzDecodeSet(f *testing.F) {
	good := &RuleSet{Rules: []string{"0/a.yaml"}, Files: []File{{Name: "0/a.yaml", Data: []byte("rules: []\n")}}}
	good.Digest = good.digest()
	data, _ := json.Marshal(good)
	f.Add(data)
	f.Add([]byte(`{"rules":["../x"],"files":[{"name":"../x","data":""}]}`))
	f.Add([]byte(`{"rules":["a"],"files":[{"name":"/etc/passwd"}],"digest":"x"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := decodeSet(data, 1)
		if err != nil {
			return
		}
		have := map[string]bool{}
		for _, fl := range rs.Files {
			if !filepath.IsLocal(filepath.FromSlash(fl.Name)) {
				t.Fatalf("decoded a non-local name %q", fl.Name)
			}
			have[fl.Name] = true
		}
		for _, r := range rs.Rules {
			if !have[r] {
				t.Fatalf("rule file %q not among the files", r)
			}
		}
	})
}
