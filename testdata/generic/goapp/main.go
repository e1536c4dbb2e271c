// A generic app for Ferry's tests: any program that listens on $PORT.
// Built by the integration tests with `go build`.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.Error(w, "not found: "+r.URL.Path, http.StatusNotFound)
			return
		}
		io.WriteString(w, "hello from go")
	})
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getpid())
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"method":      r.Method,
			"path":        r.URL.Path,
			"query":       r.URL.RawQuery,
			"headers":     r.Header,
			"body_len":    len(body),
			"body_sha256": hex.EncodeToString(sum[:]),
			"remote_addr": r.RemoteAddr,
			"pid":         os.Getpid(),
		})
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		s, _ := strconv.ParseFloat(r.URL.Query().Get("s"), 64)
		time.Sleep(time.Duration(s * float64(time.Second)))
		fmt.Fprint(w, os.Getpid())
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		delay, _ := strconv.ParseFloat(r.URL.Query().Get("delay"), 64)
		for i := range n {
			if i > 0 {
				time.Sleep(time.Duration(delay * float64(time.Second)))
			}
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	// /upgrade switches to a raw echo protocol: every line sent comes back.
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		sc := bufio.NewScanner(brw)
		for sc.Scan() {
			brw.WriteString("echo: " + sc.Text() + "\n")
			brw.Flush()
		}
	})
	port := os.Getenv("PORT")
	if port == "" {
		log.Fatal("PORT is not set")
	}
	log.Printf("listening on %s", port)
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, mux))
}
