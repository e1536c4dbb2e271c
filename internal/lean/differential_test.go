package lean

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The response side, differentially: a handler is a small program (set
// and delete fields, WriteHeader, Write, Flush, ReadFrom a file), run
// behind the lean engine and behind net/http; both answers, read back with
// http.ReadResponse, must agree on the interim responses, the status, the
// fields that matter, the body, and on framing: the connection carries a
// next request correctly, or it is closed.

// maxOps bounds a program (its request head stays small).
const maxOps = 16

// Program operations: each is two bytes, an op and its argument.
const (
	opSet = iota
	opAdd
	opDel
	opStatus
	opWrite
	opFlush
	opReadFrom
	numOps
)

var progFields = []struct{ k, v string }{
	{"Content-Type", "text/plain"}, {"Content-Type", ""}, {"Content-Length", "0"}, {"Content-Length", "5"},
	{"Content-Length", "11"}, {"Content-Length", "600"}, {"Content-Length", "70000"}, {"Content-Length", "abc"},
	{"Content-Length", "-1"}, {"Content-Length", "+5"}, {"Content-Encoding", "gzip"}, {"Connection", "close"},
	{"Connection", "keep-alive"}, {"Connection", "Close"}, {"X-A", "a\r\nb"}, {"X-A", " padded "},
	{"Date", "Mon, 02 Jan 2006 15:04:05 GMT"}, {"Cache-Control", "max-age=1"}, {"Link", "</a.css>; rel=preload"},
	{"Location", "/x"}, {"X-Empty", ""}, {"Content-Type", "\x00nil"}, // \x00nil: an empty slice
}

var progStatus = []int{100, 103, 199, 200, 201, 204, 206, 301, 304, 404, 500, 599, 999}

var progSizes = []int{0, 1, 5, 11, 100, 511, 512, 600, 2047, 2048, 2049, 5000, bodyMax, bodyMax + 1, 70000}

var progFiles = []int{0, 5, 600, 70000}

var progLimits = []int64{-1, 3, 600, 1 << 20}

// progBody is n bytes of one of three kinds, for sniffing: text, HTML,
// binary.
func progBody(kind, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		switch kind % 3 {
		case 0:
			b[i] = 'a' + byte(i%26)
		case 1:
			b[i] = "<!DOCTYPE html><p>"[i%18]
		default:
			b[i] = byte(i)
		}
	}
	return b
}

// progRun runs program p as a handler, and returns what each Write gave,
// and whether a write or ReadFrom went past the Content-Length.
func progRun(w http.ResponseWriter, p []byte, files []string) (res progResult) {
	for i := 0; i+1 < len(p) && i < 2*maxOps; i += 2 {
		op, arg := int(p[i])%numOps, int(p[i+1])
		h := w.Header()
		switch op {
		case opSet, opAdd:
			f := progFields[arg%len(progFields)]
			switch {
			case f.v == "\x00nil":
				h[f.k] = []string{}
			case op == opSet:
				h.Set(f.k, f.v)
			default:
				h.Add(f.k, f.v)
			}
		case opDel:
			h.Del(progFields[arg%len(progFields)].k)
		case opStatus:
			w.WriteHeader(progStatus[arg%len(progStatus)])
		case opWrite:
			_, err := w.Write(progBody(arg/len(progSizes), progSizes[arg%len(progSizes)]))
			res.writeErrs = append(res.writeErrs, fmt.Sprint(err))
			res.overran = res.overran || err == http.ErrContentLength
		case opFlush:
			w.(http.Flusher).Flush()
		case opReadFrom:
			f, err := os.Open(files[arg%len(files)])
			if err != nil {
				panic(err)
			}
			var src io.Reader = f
			if n := progLimits[(arg/len(files))%len(progLimits)]; n >= 0 {
				src = &io.LimitedReader{R: f, N: n}
			}
			_, err = w.(io.ReaderFrom).ReadFrom(src)
			res.overran = res.overran || err == http.ErrContentLength
			f.Close()
		}
	}
	return res
}

type progResult struct {
	writeErrs []string
	overran   bool
}

// progHandler serves /p/HEX as program HEX (recording its write errors
// under the request's X-Run), and /ok with "ok".
func progHandler(files []string, errs *sync.Map) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := strings.CutPrefix(r.URL.Path, "/p/")
		if !ok {
			w.Write([]byte("ok"))
			return
		}
		prog, err := hex.DecodeString(p)
		if err != nil {
			panic(err)
		}
		errs.Store(r.Header.Get("X-Run"), progRun(w, prog, files))
	})
}

// answer is what a client read back.
type answer struct {
	interim  []*http.Response
	resp     *http.Response
	parseErr error // the final response could not be read
	body     []byte
	bodyErr  error
	kept     bool // a next request on the connection was answered
	// desync says what the next request on the connection got instead
	// of its answer or a close: the response was not framed as it said.
	desync string
}

func ask(t *testing.T, who, addr, raw, method string, timeoutFails bool) (a answer) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, raw)
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			a.parseErr = err
			return a
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			a.resp = resp
			break
		}
		a.interim = append(a.interim, resp)
	}
	a.body, a.bodyErr = io.ReadAll(a.resp.Body)
	if isTimeout(a.bodyErr) {
		if timeoutFails {
			t.Fatalf("%s %q: the body neither ended nor was cut: %v", who, raw, a.bodyErr)
		}
		t.Skip("net/http timed out")
	}
	if a.bodyErr != nil {
		return a
	}
	io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
	next, err := http.ReadResponse(br, nil)
	if err == nil {
		body, err := io.ReadAll(next.Body)
		if err != nil || string(body) != "ok" {
			a.desync = fmt.Sprintf("the next request on the connection got %d %.80q (%v)", next.StatusCode, body, err)
		} else {
			a.kept = true
		}
	} else if !isClosed(err) {
		a.desync = fmt.Sprintf("the next request on the connection got neither a response nor a close: %.200v", err)
	}
	return a
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fields are a response's fields that matter: all but those the two
// writers may rightly differ on (Date, and the framing fields, compared
// apart).
func fields(h http.Header) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(h)) {
		switch k {
		case "Date", "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		fmt.Fprintf(&b, "%s: %q\n", k, h[k])
	}
	return b.String()
}

func FuzzLeanResponse(f *testing.F) {
	dir := f.TempDir()
	var files []string
	for _, n := range progFiles {
		name := filepath.Join(dir, strconv.Itoa(n))
		if err := os.WriteFile(name, progBody(0, n), 0o644); err != nil {
			f.Fatal(err)
		}
		files = append(files, name)
	}
	var errs sync.Map
	h := progHandler(files, &errs)
	_, leanAddr := serveLean(f, h, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	hs := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(ln)
	f.Cleanup(func() { hs.Close() })
	netAddr := ln.Addr().String()

	p := func(ops ...int) []byte {
		b := make([]byte, len(ops))
		for i, o := range ops {
			b[i] = byte(o)
		}
		return b
	}
	for _, s := range []struct {
		head, close bool
		prog        []byte
	}{
		{false, false, nil},
		{false, false, p(opWrite, 3)},                                       // 11 bytes of text, sniffed
		{false, false, p(opWrite, 3+len(progSizes))},                        // HTML
		{true, false, p(opWrite, 3)},                                        // HEAD
		{false, false, p(opSet, 4, opWrite, 3)},                             // Content-Length: 11, 11 bytes
		{false, false, p(opSet, 3, opWrite, 3)},                             // 5 declared, 11 written
		{false, false, p(opSet, 5, opWrite, 2)},                             // 600 declared, 5 written
		{false, false, p(opSet, 6, opWrite, 14, opWrite, 1)},                // 70000 declared, streamed, 1 short
		{false, false, p(opSet, 7, opWrite, 2)},                             // invalid length
		{false, false, p(opAdd, 3, opAdd, 4, opWrite, 2)},                   // two lengths
		{false, false, p(opSet, 9, opWrite, 2)},                             // +5
		{false, false, p(opFlush, 0, opWrite, 3)},                           // chunked
		{true, false, p(opFlush, 0, opWrite, 3)},                            // HEAD, flushed
		{false, false, p(opWrite, 0, opWrite, 14)},                          // sniff across writes
		{false, false, p(opWrite, 12, opWrite, 12)},                         // past bodyMax
		{false, false, p(opStatus, 5, opSet, 3, opWrite, 2)},                // 204
		{false, false, p(opSet, 0, opSet, 3, opStatus, 8, opWrite, 2)},      // 304
		{false, false, p(opSet, 18, opStatus, 1, opDel, 18, opWrite, 3)},    // 103, then 200
		{false, false, p(opStatus, 0, opStatus, 3, opStatus, 1)},            // 100, 200, 103 ignored
		{false, false, p(opSet, 11, opWrite, 3)},                            // Connection: close
		{false, false, p(opSet, 13, opWrite, 3)},                            // Connection: Close
		{false, true, p(opWrite, 3)},                                        // the client's close
		{false, false, p(opSet, 14, opAdd, 15, opWrite, 3)},                 // CR LF in a value
		{false, false, p(opSet, 10, opWrite, 7)},                            // Content-Encoding: no sniffing
		{false, false, p(opSet, 21, opWrite, 7)},                            // an empty Content-Type
		{false, false, p(opStatus, 12, opWrite, 3)},                         // 999
		{false, false, p(opSet, 0, opSet, 3, opReadFrom, 1)},                // a file, exact
		{false, false, p(opSet, 0, opSet, 3, opReadFrom, 2)},                // a longer file
		{false, false, p(opSet, 0, opSet, 5, opReadFrom, 1)},                // a shorter file
		{false, false, p(opSet, 5, opReadFrom, 2)},                          // sniffed file
		{false, false, p(opReadFrom, 3)},                                    // no length
		{false, false, p(opSet, 0, opSet, 6, opReadFrom, 3+len(progFiles))}, // limited to 3
		{true, false, p(opSet, 0, opReadFrom, 3)},                           // HEAD, file
		{false, false, p(opStatus, 3, opSet, 11, opWrite, 3)},               // fields after WriteHeader: not sent
	} {
		var m byte // even: GET; odd: HEAD
		if s.head {
			m = 1
		}
		f.Add(m, s.close, s.prog)
	}
	var run int
	f.Fuzz(func(t *testing.T, m byte, closeReq bool, prog []byte) {
		prog = prog[:min(len(prog), 2*maxOps)]
		method := http.MethodGet
		if m%2 == 1 {
			method = http.MethodHead
		}
		run++
		id := strconv.Itoa(run)
		raw := method + " /p/" + hex.EncodeToString(prog) + " HTTP/1.1\r\nHost: x\r\nX-Run: " + id + "\r\n"
		if closeReq {
			raw += "Connection: close\r\n"
		}
		raw += "\r\n"
		want := ask(t, "net/http", netAddr, raw, method, false)
		wantRes, _ := errs.LoadAndDelete(id)
		got := ask(t, "lean", leanAddr, raw, method, true)
		gotRes, _ := errs.LoadAndDelete(id)
		gotRun, _ := gotRes.(progResult)
		wantRun, _ := wantRes.(progResult)

		if got.desync != "" {
			t.Fatalf("%q: lean: %s", raw, got.desync)
		}
		if got.parseErr != nil {
			t.Fatalf("%q: the lean answer cannot be read: %.200v", raw, got.parseErr)
		}
		if want.parseErr != nil {
			return // net/http wrote what a client cannot read (two lengths, "+5"): nothing to compare
		}
		if fmt.Sprint(gotRun.writeErrs) != fmt.Sprint(wantRun.writeErrs) {
			t.Errorf("%q: writes got %v, net/http's %v", raw, gotRun.writeErrs, wantRun.writeErrs)
		}
		if len(got.interim) != len(want.interim) {
			t.Fatalf("%q: %d interim responses, net/http %d", raw, len(got.interim), len(want.interim))
		}
		for i := range got.interim {
			g, w := got.interim[i], want.interim[i]
			if g.StatusCode != w.StatusCode || fields(g.Header) != fields(w.Header) {
				t.Errorf("%q: interim %d: %d\n%s net/http %d\n%s", raw, i, g.StatusCode, fields(g.Header), w.StatusCode, fields(w.Header))
			}
		}
		g, w := got.resp, want.resp
		if g.StatusCode != w.StatusCode || fields(g.Header) != fields(w.Header) {
			t.Errorf("%q: %d\n%s net/http %d\n%s", raw, g.StatusCode, fields(g.Header), w.StatusCode, fields(w.Header))
		}
		// A body cut short is an error either way; what came of it before
		// may differ (net/http's ReadFrom goes on after a refused Write).
		bothCut := got.bodyErr != nil && want.bodyErr != nil
		if want.desync != "" {
			// net/http sent a file past its Content-Length (its ReadFrom
			// does not check it) and closed the connection after, but the
			// client read those bytes as the next response: its body is
			// not one to agree with.
			return
		}
		if gotRun.overran && method == http.MethodGet {
			// The handler went past its Content-Length: what net/http sends
			// then (its ReadFrom goes on after a refused Write) need not be
			// followed, but the connection must not be kept.
			if got.kept {
				t.Fatalf("%q: the handler went past its Content-Length and the connection was kept", raw)
			}
			return
		}
		if (string(got.body) != string(want.body) && !bothCut) || (got.bodyErr == nil) != (want.bodyErr == nil) {
			t.Errorf("%q: body %d bytes (%v), net/http %d bytes (%v)", raw, len(got.body), got.bodyErr, len(want.body), want.bodyErr)
		}
		// The lean writer may know a length where net/http streamed.
		if g.ContentLength >= 0 && w.ContentLength >= 0 && g.ContentLength != w.ContentLength {
			t.Errorf("%q: Content-Length %d, net/http %d", raw, g.ContentLength, w.ContentLength)
		}
		// It may also say it closes where net/http closes without saying;
		// never the other way.
		switch {
		case w.Close && !g.Close:
			t.Errorf("%q: net/http says it closes the connection, the lean engine does not", raw)
		case !w.Close && !g.Close && got.kept != want.kept:
			t.Errorf("%q: connection kept %v, net/http's %v", raw, got.kept, want.kept)
		case g.Close && !w.Close && want.kept:
			t.Errorf("%q: the lean engine closes a connection net/http keeps", raw)
		}
	})
}
