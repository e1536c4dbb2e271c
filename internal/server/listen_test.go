package server

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A listener that cannot be opened is an error, never a panic, and the
// listeners opened before it are closed again (their ports free).
func TestListenFailureClosesWhatItOpened(t *testing.T) {
	h, _ := benchHandler(t, helloResp, false, Options{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := Listen(Config{Addr: taken.Addr().String()}, h, log); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("taken port: err = %v, want address already in use", err)
	}

	// The TCP listener opens, then the socket path (a regular file) fails.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	notSocket := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Config{Addr: addr, Socket: notSocket, SocketMode: 0o600}, h, log); err == nil {
		t.Fatal("a socket path that is a regular file: no error")
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the TCP listener opened before the failure is still open: %v", err)
	}
	again.Close()
}

func TestPlanListeners(t *testing.T) {
	tlsc := &TLSConfig{}
	hook := func(h http.Handler) http.Handler { return h }
	plain := func(addr string) listenSpec { return listenSpec{network: "tcp", addr: addr, scheme: "http"} }
	https := func(addr string) listenSpec {
		return listenSpec{network: "tcp", addr: addr, scheme: "https", tls: true}
	}
	beside := func(addr string) listenSpec {
		return listenSpec{network: "tcp", addr: addr, scheme: "http", redirect: true}
	}
	sock := listenSpec{network: "unix", addr: "/run/ferry.sock"}
	for _, tc := range []struct {
		name string
		c    Config
		want listenPlan
	}{
		{"nothing", Config{}, listenPlan{}},
		{"plain", Config{Addr: ":80"}, listenPlan{lns: []listenSpec{plain(":80")}}},
		{"socket", Config{Socket: "/run/ferry.sock"}, listenPlan{lns: []listenSpec{sock}}},
		{"plain and socket", Config{Addr: ":80", Socket: "/run/ferry.sock"}, listenPlan{lns: []listenSpec{plain(":80"), sock}}},
		{"https on Addr", Config{Addr: ":443", TLS: tlsc}, listenPlan{lns: []listenSpec{https(":443")}}},
		{"https on Addr: no redirect without a port of its own", Config{Addr: ":443", TLS: tlsc, Redirect: true},
			listenPlan{lns: []listenSpec{https(":443")}}},
		{"https on Addr: no ACME hook without a plain port", Config{Addr: ":443", TLS: tlsc, HTTPChallenge: hook},
			listenPlan{lns: []listenSpec{https(":443")}}},
		{"https beside the app on plain", Config{Addr: ":80", SSLAddr: ":443", TLS: tlsc},
			listenPlan{lns: []listenSpec{plain(":80"), https(":443")}}},
		{"https beside the redirect", Config{Addr: ":80", SSLAddr: ":443", TLS: tlsc, Redirect: true},
			listenPlan{lns: []listenSpec{beside(":80"), https(":443")}, redirectToTLS: true}},
		{"https beside the app behind the ACME hook", Config{Addr: ":80", SSLAddr: ":443", TLS: tlsc, HTTPChallenge: hook},
			listenPlan{lns: []listenSpec{beside(":80"), https(":443")}, challenge: true}},
		{"https beside the redirect behind the ACME hook", Config{Addr: ":80", SSLAddr: ":443", TLS: tlsc, Redirect: true, HTTPChallenge: hook},
			listenPlan{lns: []listenSpec{beside(":80"), https(":443")}, redirectToTLS: true, challenge: true}},
		{"https alone on SSLAddr", Config{SSLAddr: ":443", TLS: tlsc, Redirect: true},
			listenPlan{lns: []listenSpec{https(":443")}}},
		{"SSLAddr without TLS is not opened", Config{Addr: ":80", SSLAddr: ":443"}, listenPlan{lns: []listenSpec{plain(":80")}}},
		{"redirect without TLS: the app, off the lean path", Config{Addr: ":80", Redirect: true},
			listenPlan{lns: []listenSpec{beside(":80")}}},
		{"ACME hook without TLS: plain", Config{Addr: ":80", HTTPChallenge: hook}, listenPlan{lns: []listenSpec{plain(":80")}}},
		{"everything", Config{Addr: ":80", SSLAddr: ":443", TLS: tlsc, Redirect: true, Socket: "/run/ferry.sock"},
			listenPlan{lns: []listenSpec{beside(":80"), https(":443"), sock}, redirectToTLS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planListeners(&tc.c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
