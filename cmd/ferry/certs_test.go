package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/certs"
)

func TestWriteCertificates(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	writeCertificates(&b, nil, now, palette{})
	if b.Len() != 0 {
		t.Fatalf("no certificates: wrote %q", b.String())
	}
	writeCertificates(&b, []certs.Status{
		{Domain: "example.com", State: certs.StateValid, NotAfter: now.Add(60 * 24 * time.Hour), Issuer: "R11", OCSPStapled: true},
		{Domain: "soon.example.com", State: certs.StateFailing, NotAfter: now.Add(30 * time.Hour), Issuer: "R11", Failures: 3,
			LastError: "HTTP 429 rateLimited", LastErrorAt: now.Add(-2 * time.Minute)},
		{Domain: "new.example.com", State: certs.StateObtaining},
	}, now, palette{})
	want := `
----------- Certificates (ACME) -----------
  DOMAIN            STATE      EXPIRES               LEFT   ISSUER  OCSP     FAILURES
  example.com       valid      2027-02-04 12:00:00Z  60.0d  R11     stapled  0
  soon.example.com  failing    2026-12-07 18:00:00Z  1d6h   R11     no       3
  new.example.com   obtaining  -                     -      -       no       0
  soon.example.com: last error 2m0s ago: HTTP 429 rateLimited
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
