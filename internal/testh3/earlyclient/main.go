// Command earlyclient makes two HTTP/3 requests to URL over two
// connections, the second resuming the first's TLS session and sending its
// request in 0-RTT early data, and prints what happened as JSON. Tests run
// it as a process of its own, built without the race detector: quic-go's
// client has a known data race on the 0-RTT path (quic-go issue 4303) that
// would fail a -race test binary for a defect not Ferry's.
//
//	earlyclient -ca CERT.pem URL
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/ferry-server/ferry/internal/testh3"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

func main() {
	ca := flag.String("ca", "", "PEM file of the CA that signed the server's certificate")
	flag.Parse()
	if flag.NArg() != 1 || *ca == "" {
		fmt.Fprintln(os.Stderr, "usage: earlyclient -ca CERT.pem URL")
		os.Exit(2)
	}
	if err := run(*ca, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "earlyclient:", err)
		os.Exit(1)
	}
}

func run(ca, url string) error {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %s", ca)
	}
	sessions := tls.NewLRUClientSessionCache(4)
	var res testh3.Result
	var last *quic.Conn
	for i := range 2 {
		tr := &http3.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ClientSessionCache: sessions},
			Dial: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
				conn, err := quic.DialAddrEarly(ctx, addr, tc, qc)
				last = conn
				return conn, err
			},
		}
		req, err := http.NewRequest(http3.MethodGet0RTT, url, nil)
		if err != nil {
			return err
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return fmt.Errorf("request %d: %w", i+1, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("request %d: read the body: %w", i+1, err)
		}
		res.Status[i], res.Body[i] = resp.StatusCode, string(b)
		if i == 1 {
			st := last.ConnectionState()
			res.Resumed, res.Used0RTT = st.TLS.DidResume, st.Used0RTT
		}
		tr.Close()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
