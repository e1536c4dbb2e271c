// Command firstok waits for the first 200 from a URL and prints when it came,
// for bench/run.sh's cold-start scenario: started before the server, it
// tries a fresh connection every -interval until a GET answers 200, then
// prints the time of that answer in nanoseconds since the Unix epoch (the
// same clock as `date +%s%N`) and exits 0. It exits 1 if no 200 came within
// -timeout.
//
//	firstok -url http://127.0.0.1:18000/ -interval 2ms -timeout 60s
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:3000/", "URL to GET")
	interval := flag.Duration("interval", 2*time.Millisecond, "pause between attempts")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()

	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	deadline := time.Now().Add(*timeout)
	for time.Now().Before(deadline) {
		resp, err := client.Get(*url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Println(time.Now().UnixNano())
				return
			}
		}
		time.Sleep(*interval)
	}
	fmt.Fprintf(os.Stderr, "firstok: no 200 from %s within %s\n", *url, *timeout)
	os.Exit(1)
}
