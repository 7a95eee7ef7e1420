package admin_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/portcullis-mail/portcullis/admin"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// BenchmarkCheck: POST /api/check with the default pipeline over each
// corpus tier, HTTP included (client and server in this process).
func BenchmarkCheck(b *testing.B) {
	built, err := config.BuildFilters(context.Background(), config.Default(), config.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer built.Close()
	const token = "bench-token-0123456789abcdef"
	h, err := admin.New(admin.Config{Token: token, Pipeline: func() *filter.Pipeline { return built.Pipeline }})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tier := range benchcorpus.Tiers() {
		b.Run(tier.Name, func(b *testing.B) {
			b.SetBytes(int64(len(tier.Raw)))
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("POST", srv.URL+"/api/check?ip=192.0.2.10", bytes.NewReader(tier.Raw))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("HTTP %d", resp.StatusCode)
				}
			}
		})
	}
}
