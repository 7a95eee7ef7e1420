package fleet

import (
	"encoding/json"
	"path/filepath"
	"strings"
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

// FuzzDecodeZoneInfo: a manifest never panics the decoder, and a decoded
// one names its own zone, an object of that zone and a sha256 digest.
func FuzzDecodeZoneInfo(f *testing.F) {
	good, _ := json.Marshal(ZoneInfo{Zone: "bl.test", Object: "bl.test/1", Size: 10, Digest: "sha256:" + strings.Repeat("ab", 32)})
	f.Add(good)
	f.Add([]byte(`{"zone":"bl.test","object":"other/1","digest":"sha256:"}`))
	f.Add([]byte(`{"zone":"x","size":-1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		zi, err := decodeZoneInfo("bl.test", data, 7)
		if err != nil {
			return
		}
		if zi.Zone != "bl.test" || !strings.HasPrefix(zi.Object, "bl.test/") || zi.Size < 0 || zi.Version != 7 ||
			len(zi.Digest) != 71 || !strings.HasPrefix(zi.Digest, "sha256:") {
			t.Fatalf("decoded %+v", zi)
		}
	})
}
