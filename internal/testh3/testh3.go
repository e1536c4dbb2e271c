// Package testh3 runs earlyclient, the HTTP/3 0-RTT client of the tests,
// as a process built without the race detector (see earlyclient).
package testh3

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Result is what earlyclient reports, as JSON on its output.
type Result struct {
	Status   [2]int    `json:"status"`
	Body     [2]string `json:"body"`
	Resumed  bool      `json:"resumed"`   // the second connection resumed the TLS session
	Used0RTT bool      `json:"used_0rtt"` // and the server took its early data
}

var (
	buildOnce sync.Once
	bin       string
	buildErr  error
)

// Early makes earlyclient's two requests to url (the second in 0-RTT),
// trusting the CA in caFile. The first call builds earlyclient.
func Early(caFile, url string) (Result, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "earlyclient-")
		if err != nil {
			buildErr = err
			return
		}
		bin = filepath.Join(dir, "earlyclient")
		// No -race, whatever the test binary was built with.
		cmd := exec.Command("go", "build", "-o", bin, "github.com/ferry-server/ferry/internal/testh3/earlyclient")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build earlyclient: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		return Result{}, buildErr
	}
	out, err := exec.Command(bin, "-ca", caFile, url).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return Result{}, fmt.Errorf("earlyclient %s: %w", url, err)
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		return Result{}, fmt.Errorf("earlyclient printed %q: %w", out, err)
	}
	return r, nil
}
