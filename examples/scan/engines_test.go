package main

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type verdictJSON struct {
	Action  string `json:"action"`
	Symbols []struct {
		Name   string `json:"name"`
		Detail string `json:"detail"`
	} `json:"symbols"`
	Reply struct {
		Code int `json:"code"`
	} `json:"reply"`
}

func (v verdictJSON) has(name string) bool {
	for _, s := range v.Symbols {
		if s.Name == name {
			return true
		}
	}
	return false
}

func scanJSON(t *testing.T, args ...string) verdictJSON {
	t.Helper()
	// The engines and lists are under test here, not SpamAssassin's rules,
	// which take seconds to compile under the race detector.
	code, out, errs := runScan(t, "", append([]string{"-format", "json", "-spamassassin="}, args...)...)
	require.Equal(t, 0, code, errs)
	var v verdictJSON
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	return v
}

func writeMessageWithZip(t *testing.T, name string, content []byte) string {
	t.Helper()
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, err := zw.Create(name)
	require.NoError(t, err)
	_, err = w.Write(content)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	msg := "From: a@example.com\r\nTo: b@example.org\r\nSubject: files\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/zip; name=files.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(zb.Bytes()) + "\r\n--b--\r\n"
	path := filepath.Join(t.TempDir(), "m.eml")
	require.NoError(t, os.WriteFile(path, []byte(msg), 0o600))
	return path
}

// The default configuration already refuses the sample: an executable in
// a zip, named like a PDF.
func TestSampleIsRejectedByDefaults(t *testing.T) {
	v := scanJSON(t, "../../testdata/sample.eml")
	assert.Equal(t, "reject", v.Action)
	assert.True(t, v.has("ARCHIVE_BANNED_TYPE"), "%+v", v.Symbols)
	assert.Equal(t, 550, v.Reply.Code)
	clean := scanJSON(t, "../../testdata/clean.eml")
	assert.Equal(t, "accept", clean.Action, "%+v", clean.Symbols)
}

func TestClamdFlag(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	eicar := writeMessageWithZip(t, "readme.txt", testsvc.Eicar())
	v := scanJSON(t, "-clamd", d.Addr, eicar)
	assert.Equal(t, "reject", v.Action)
	require.True(t, v.has("AV_INFECTED"), "%+v", v.Symbols)
	found := false
	for _, s := range v.Symbols {
		found = found || (s.Name == "AV_INFECTED" && strings.Contains(s.Detail, "files.zip/readme.txt"))
	}
	assert.True(t, found, "the detection names where it is: %+v", v.Symbols)

	clean := writeMessageWithZip(t, "readme.txt", []byte("just text\n"))
	assert.Equal(t, "accept", scanJSON(t, "-clamd", d.Addr, clean).Action)

	// The engine gone: never a pass.
	d.Stop()
	down := scanJSON(t, "-clamd", d.Addr, clean)
	assert.Equal(t, "tempfail", down.Action)
	assert.Equal(t, 451, down.Reply.Code)
}

func TestDNSBLFlags(t *testing.T) {
	srv := testsvc.StartRBLDNSD(t,
		testsvc.RBLZone{Name: "bl.test", Type: "ip4set", Data: ":127.0.0.2:listed: see https://bl.test/$\n127.0.0.2\n192.0.2.0/24\n"},
		testsvc.RBLZone{Name: "dbl.test", Type: "dnset", Data: ":127.0.1.2:bad domain\ntest\nexample-bank.test\n"},
	)
	// A documentation address is not sent to the lists unless allowed.
	v := scanJSON(t, "-resolver", srv.Addr, "-dnsbl", "bl.test=5", "-client-ip", "192.0.2.25", "../../testdata/clean.eml")
	assert.True(t, v.has("RBL_LOCAL"), "%+v", v.Symbols)
	assert.False(t, v.has("RBL_BL_TEST"), "%+v", v.Symbols)
	// 6, not 5, so the test holds with SpamAssassin's rules too, whose
	// informational NO_RECEIVED and NO_RELAYS take 0.002 off.
	v = scanJSON(t, "-resolver", srv.Addr, "-dnsbl", "bl.test=6", "-uribl", "dbl.test=4", "-dnsbl-non-public", "192.0.2.0/24",
		"-client-ip", "192.0.2.25", "../../testdata/clean.eml")
	assert.True(t, v.has("RBL_BL_TEST"), "%+v", v.Symbols)
	assert.Equal(t, "add-header", v.Action)

	link := filepath.Join(t.TempDir(), "link.eml")
	require.NoError(t, os.WriteFile(link, []byte("From: a@example.com\r\nSubject: hi\r\nContent-Type: text/html\r\n\r\n"+
		`<a href="http://Secure-Login.Example-Bank.TEST./verify?id=1">your bank</a>`+"\r\n"), 0o600))
	v = scanJSON(t, "-resolver", srv.Addr, "-dnsbl", "bl.test=5", "-uribl", "dbl.test=4", "-client-ip", "198.51.100.7", link)
	assert.False(t, v.has("RBL_BL_TEST"), "%+v", v.Symbols)
	assert.True(t, v.has("RBL_DBL_TEST"), "the phishing link's domain is listed: %+v", v.Symbols)

	code, _, errs := runScan(t, "", "-dnsbl", "bl.test", "../../testdata/clean.eml")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "-resolver")
}
