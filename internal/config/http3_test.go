package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHTTP3Options(t *testing.T) {
	dir := wsgiApp(t)
	cert, key := selfSigned(t)
	tls := []string{"--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key}

	c := load(t, nil, append([]string{dir}, tls...)...)
	if !c.HTTP3 || c.HTTP3Allow0RTT || c.HTTP3MaxStreams != 100 || c.HTTP3IdleTimeout != 0 {
		t.Fatalf("HTTP/3 defaults: %+v", c.HTTP3Settings)
	}
	write(t, filepath.Join(dir, "Passengerfile.json"), `{"http3_max_streams": 20}`)
	c = load(t, []string{"FERRY_HTTP3_0RTT=true"}, append([]string{dir, "--http3-idle-timeout", "15"}, tls...)...)
	if !c.HTTP3 || !c.HTTP3Allow0RTT || c.HTTP3MaxStreams != 20 || c.HTTP3IdleTimeout != 15*time.Second {
		t.Fatalf("HTTP/3 from the sources: %+v", c.HTTP3Settings)
	}
	write(t, filepath.Join(dir, "Passengerfile.json"), `{}`)
	if c := load(t, nil, append([]string{dir, "--http3=false"}, tls...)...); c.HTTP3 {
		t.Fatal("--http3=false left HTTP/3 on")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http3-0rtt"}, "--http3-0rtt: has no effect without --ssl and --http3"},
		{append([]string{"--http3=false", "--http3-max-streams", "5"}, tls...), "--http3-max-streams: has no effect without --ssl and --http3"},
		{append([]string{"--http3-max-streams", "0"}, tls...), "--http3-max-streams: must be between 1 and 1048576"},
		{append([]string{"--http3-idle-timeout", "-1"}, tls...), "--http3-idle-timeout: must be 0"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := Load(append([]string{dir}, tc.args...), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}
