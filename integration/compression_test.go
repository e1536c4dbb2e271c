package integration

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// decoder reads a body in a content coding with the codec libraries (the
// Go clients' side of the round trips).
func decoder(t *testing.T, coding string, r io.Reader) io.Reader {
	t.Helper()
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("not gzip: %v", err)
		}
		return zr
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatalf("not zstd: %v", err)
		}
		t.Cleanup(zr.Close)
		return zr
	case "br":
		return brotli.NewReader(r)
	}
	t.Fatalf("no decoder for %q", coding)
	return nil
}

func decodeBody(t *testing.T, coding string, b []byte) string {
	t.Helper()
	out, err := io.ReadAll(decoder(t, coding, bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("decoding %s: %v", coding, err)
	}
	return string(out)
}

// curlCodings are the codings the installed curl's libcurl decodes, from
// the features `curl -V` lists.
func curlCodings(t *testing.T) []string {
	out, err := exec.Command("curl", "-V").Output()
	if err != nil {
		t.Skipf("no curl: %v", err)
	}
	var codings []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "Features:") {
			continue
		}
		for _, f := range strings.Fields(line) {
			switch f {
			case "libz":
				codings = append(codings, "gzip")
			case "brotli":
				codings = append(codings, "br")
			case "zstd":
				codings = append(codings, "zstd")
			}
		}
	}
	return codings
}

// TestCompressionCodecs: zstd, brotli and gzip round-trip through curl
// (for what its libcurl decodes) and the Go codec libraries, negotiated
// from Accept-Encoding, for static files, precompressed variants, app
// responses, cache hits and streams.
func TestCompressionCodecs(t *testing.T) {
	dir := copyFixture(t, "wsgi/echo")
	pub := filepath.Join(dir, "public")
	css := strings.Repeat("body { color: #123456; margin: 0 auto; }\n", 200)
	os.WriteFile(filepath.Join(pub, "site.css"), []byte(css), 0o644)
	// app.js has all three precompressed variants, each marked, so the test
	// sees which one was served; lib.js has .br and .gz only.
	js := strings.Repeat("console.log('plain');\n", 100)
	variants := map[string][]byte{}
	for _, name := range []string{"app.js", "lib.js"} {
		os.WriteFile(filepath.Join(pub, name), []byte(js), 0o644)
		for _, coding := range []string{"zstd", "br", "gzip"} {
			if name == "lib.js" && coding == "zstd" {
				continue
			}
			body := "// precompressed " + coding + "\n" + js
			var buf bytes.Buffer
			var w io.WriteCloser
			switch coding {
			case "zstd":
				w, _ = zstd.NewWriter(&buf)
			case "br":
				w = brotli.NewWriterLevel(&buf, 11)
			case "gzip":
				w, _ = gzip.NewWriterLevel(&buf, 9)
			}
			w.Write([]byte(body))
			w.Close()
			ext := map[string]string{"zstd": ".zst", "br": ".br", "gzip": ".gz"}[coding]
			os.WriteFile(filepath.Join(pub, name+ext), buf.Bytes(), 0o644)
			variants[name+coding] = buf.Bytes()
		}
	}
	f := startFerry(t, dir, "--gzip-min-size", "0", "--max-pool-size", "3", "--shutdown-timeout", "2")

	t.Run("curl", func(t *testing.T) {
		codings := curlCodings(t)
		t.Logf("curl decodes %v", codings)
		if len(codings) == 0 {
			t.Skip("this curl decodes no coding")
		}
		for _, coding := range codings {
			for _, path := range []string{"/site.css", "/echo", "/counted?cc=max-age%3D60&t=curl-" + coding} {
				for round := range 2 { // the second /counted is a cache hit
					hdrs := filepath.Join(t.TempDir(), "headers")
					out, err := exec.Command("curl", "-sS", "--fail", "--compressed", "-H", "Accept-Encoding: "+coding,
						"-D", hdrs, f.URL+path).Output()
					if err != nil {
						t.Fatalf("curl %s %s: %v", coding, path, err)
					}
					head, _ := os.ReadFile(hdrs)
					h := strings.ToLower(string(head))
					if !strings.Contains(h, "content-encoding: "+coding+"\r\n") || !strings.Contains(h, "vary: accept-encoding") {
						t.Fatalf("curl %s %s (round %d): headers\n%s", coding, path, round, head)
					}
					switch {
					case path == "/site.css" && string(out) != css,
						path == "/echo" && !strings.Contains(string(out), `"method": "GET"`),
						strings.HasPrefix(path, "/counted") && !strings.HasPrefix(string(out), "served 1 times"):
						t.Fatalf("curl %s %s (round %d) decoded %q", coding, path, round, out[:min(len(out), 80)])
					}
					if strings.HasPrefix(path, "/counted") && round == 1 && !strings.Contains(h, "\r\nage: ") {
						t.Errorf("curl %s: the second request was not a cache hit:\n%s", coding, head)
					}
				}
			}
		}
	})

	t.Run("negotiated", func(t *testing.T) {
		for _, tc := range []struct{ ae, want string }{
			{"gzip, deflate, br, zstd", "zstd"},
			{"gzip, br", "br"},
			{"zstd;q=0.5, br;q=0.9, gzip", "gzip"},
			{"*", "zstd"},
			{"zstd;q=0, *", "br"},
			{"identity;q=1, gzip;q=0.5", ""},
			{"gzip;q=0, br;q=0, zstd;q=0", ""},
			{"deflate", ""},
		} {
			resp, b := rawGetBody(t, f, "/site.css", http.Header{"Accept-Encoding": {tc.ae}})
			got := resp.Header.Get("Content-Encoding")
			if got != tc.want || resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("%q: coding %q, want %q; Vary %q", tc.ae, got, tc.want, resp.Header.Get("Vary"))
				continue
			}
			if got == "" && string(b) != css || got != "" && decodeBody(t, got, b) != css {
				t.Errorf("%q: body does not round-trip", tc.ae)
			}
		}
		// HEAD: no body, but the head varies like a GET's.
		req, _ := http.NewRequest("HEAD", f.URL+"/site.css", nil)
		req.Header.Set("Accept-Encoding", "zstd")
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("HEAD: Vary %q", resp.Header.Get("Vary"))
		}
	})

	t.Run("precompressed static files", func(t *testing.T) {
		for _, tc := range []struct{ path, ae, want string }{
			{"/app.js", "gzip, br, zstd", "zstd"},
			{"/app.js", "gzip, br", "br"},
			{"/app.js", "br;q=0.5, gzip", "gzip"},
			{"/lib.js", "gzip, br, zstd", "br"}, // no lib.js.zst: the next preferred present
			{"/lib.js", "zstd", "zstd"},         // none present the client takes: compressed on the fly
			{"/app.js", "identity", ""},
		} {
			for range 2 { // the second time, what is absent is remembered
				resp, b := rawGetBody(t, f, tc.path, http.Header{"Accept-Encoding": {tc.ae}})
				got := resp.Header.Get("Content-Encoding")
				if got != tc.want || resp.Header.Get("Vary") != "Accept-Encoding" ||
					!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
					t.Fatalf("%s %q: coding %q, want %q; headers %v", tc.path, tc.ae, got, tc.want, resp.Header)
				}
				switch {
				case got == "":
					if string(b) != js {
						t.Errorf("%s %q: plain body differs", tc.path, tc.ae)
					}
				case variants[strings.TrimPrefix(tc.path, "/")+got] != nil:
					if !bytes.Equal(b, variants[strings.TrimPrefix(tc.path, "/")+got]) {
						t.Errorf("%s %q: not the precompressed file", tc.path, tc.ae)
					}
				default:
					if decodeBody(t, got, b) != js {
						t.Errorf("%s %q: compressed body does not round-trip", tc.path, tc.ae)
					}
				}
			}
		}
	})

	t.Run("cache hits serve each coding", func(t *testing.T) {
		q := "/counted?cc=max-age%3D60&t=codings"
		_, plain := rawGetBody(t, f, q, nil) // the miss that fills the entry
		if !strings.HasPrefix(string(plain), "served 1 times") {
			t.Fatalf("first response %q", plain)
		}
		for _, coding := range []string{"zstd", "br", "gzip", "zstd", ""} {
			resp, b := rawGetBody(t, f, q, http.Header{"Accept-Encoding": {coding}})
			if resp.Header.Get("Age") == "" || resp.Header.Get("Content-Encoding") != coding ||
				resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("%q: not a hit in its coding: %v", coding, resp.Header)
			}
			got := string(b)
			if coding != "" {
				got = decodeBody(t, coding, b)
			}
			if got != string(plain) {
				t.Errorf("%q: hit %q, want %q", coding, got, plain)
			}
		}
	})

	// Last: each stream holds a process, the app never finishes them.
	t.Run("streams arrive in pieces", func(t *testing.T) {
		for _, coding := range []string{"zstd", "br"} {
			// The guard turns a held response into a failure, not a hang.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", f.URL+"/stream?n=2&delay=600", nil)
			req.Header.Set("Accept-Encoding", coding)
			resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.Header.Get("Content-Encoding") != coding {
				t.Fatalf("%s: stream not compressed: %v", coding, resp.Header)
			}
			// The app sleeps ten minutes before its second chunk: the first
			// decodes now, or the response was held.
			line, err := bufio.NewReader(decoder(t, coding, resp.Body)).ReadString('\n')
			if line != "chunk 0\n" {
				t.Fatalf("%s: first chunk %q, %v (held back until the app finishes?)", coding, line, err)
			}
		}
	})
}

// TestCompressionCodecsHTTP2: the same negotiation and encoders over
// HTTP/2 (TLS), with Go's HTTP/2 client and curl --http2.
func TestCompressionCodecsHTTP2(t *testing.T) {
	cert, key, roots := testCert(t)
	dir := copyFixture(t, "wsgi/echo")
	css := strings.Repeat("body { color: #123456; margin: 0 auto; }\n", 200)
	os.WriteFile(filepath.Join(dir, "public", "site.css"), []byte(css), 0o644)
	var zst bytes.Buffer
	zw, _ := zstd.NewWriter(&zst)
	zw.Write([]byte("// precompressed\n" + css))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "public", "pre.css"), []byte(css), 0o644)
	os.WriteFile(filepath.Join(dir, "public", "pre.css.zst"), zst.Bytes(), 0o644)
	f := startFerry(t, dir, "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key,
		"--gzip-min-size", "0", "--shutdown-timeout", "2")
	base := "https://" + addrOf(f)
	client := tlsClient(roots, true)
	client.Transport.(*http.Transport).DisableCompression = true

	get := func(path, ae string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Accept-Encoding", ae)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Proto != "HTTP/2.0" {
			t.Fatalf("%s over %s", path, resp.Proto)
		}
		return resp, b
	}
	for _, coding := range []string{"zstd", "br", "gzip"} {
		resp, b := get("/site.css", coding)
		if resp.Header.Get("Content-Encoding") != coding || decodeBody(t, coding, b) != css ||
			resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("h2 %s: %v", coding, resp.Header)
		}
		resp, b = get("/echo", coding+";q=0.9, identity;q=0.1")
		if resp.Header.Get("Content-Encoding") != coding || !strings.Contains(decodeBody(t, coding, b), `"method": "GET"`) {
			t.Errorf("h2 app response %s: %v", coding, resp.Header)
		}
	}
	resp, b := get("/pre.css", "br, zstd")
	if resp.Header.Get("Content-Encoding") != "zstd" || !bytes.Equal(b, zst.Bytes()) {
		t.Errorf("h2 precompressed: %v", resp.Header)
	}

	if codings := curlCodings(t); len(codings) > 0 {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		certPEM, _ := os.ReadFile(cert)
		os.WriteFile(caFile, certPEM, 0o644)
		for _, coding := range codings {
			bodyFile := filepath.Join(t.TempDir(), "body")
			version, err := exec.Command("curl", "-sS", "--fail", "--http2", "--cacert", caFile, "--compressed",
				"-H", "Accept-Encoding: "+coding, "-o", bodyFile, "-w", "%{http_version} %header{content-encoding}", base+"/site.css").Output()
			if err != nil {
				t.Fatalf("curl --http2 %s: %v", coding, err)
			}
			body, _ := os.ReadFile(bodyFile)
			if string(body) != css || string(version) != "2 "+coding {
				t.Errorf("curl --http2 %s: %q (HTTP version, coding), %d bytes decoded", coding, version, len(body))
			}
		}
	}

	// Last: the stream never ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/stream?n=2&delay=600", nil)
	req.Header.Set("Accept-Encoding", "zstd")
	sresp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	line, err := bufio.NewReader(decoder(t, "zstd", sresp.Body)).ReadString('\n')
	if sresp.Header.Get("Content-Encoding") != "zstd" || line != "chunk 0\n" {
		t.Fatalf("h2 stream: %q, %v, %v", line, err, sresp.Header)
	}
}
