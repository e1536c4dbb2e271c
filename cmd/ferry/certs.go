package main

import (
	"fmt"
	"io"
	"time"

	"github.com/ferry-server/ferry/internal/certs"
)

// writeCertificates writes the certificates automatic HTTPS manages, one
// row each, with the last error of those failing. Nothing without any.
func writeCertificates(w io.Writer, cs []certs.Status, now time.Time, pal palette) {
	if len(cs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n", pal.bold(section("Certificates (ACME)")))
	rows := [][]string{{"DOMAIN", "STATE", "EXPIRES", "LEFT", "ISSUER", "OCSP", "FAILURES"}}
	for _, c := range cs {
		expires, left := "-", "-"
		if !c.NotAfter.IsZero() {
			expires = c.NotAfter.UTC().Format("2006-01-02 15:04:05Z")
			left = fmt.Sprintf("%.1fd", c.NotAfter.Sub(now).Hours()/24)
			if d := c.NotAfter.Sub(now); d < 48*time.Hour {
				left = humanDuration(d)
			}
		}
		issuer, ocsp := c.Issuer, "no"
		if issuer == "" {
			issuer = "-"
		}
		if c.OCSPStapled {
			ocsp = "stapled"
		}
		rows = append(rows, []string{c.Domain, c.State, expires, left, issuer, ocsp, fmt.Sprint(c.Failures)})
	}
	writeLines(w, "  ", tabulate(rows), pal)
	for _, c := range cs {
		if c.LastError != "" {
			fmt.Fprintf(w, "  %s: %s\n", c.Domain, pal.red("last error "+humanDuration(now.Sub(c.LastErrorAt))+" ago: "+c.LastError))
		}
	}
}
