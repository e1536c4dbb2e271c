package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-server/ferry/internal/instance"
)

// Instance is a running core found in the instance registry.
type Instance struct {
	Dir      string
	PID      int
	AppRoot  string
	AppRoots []string
	Listen   string
}

// FindInstances lists the live instances in registry, removing the
// directories of dead ones (a core killed with -9 leaves its directory).
func FindInstances(registry string) ([]Instance, error) {
	ents, err := os.ReadDir(registry)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read instance registry: %w", err)
	}
	var out []Instance
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "ferry-") {
			continue
		}
		dir := filepath.Join(registry, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "properties.json"))
		if err != nil {
			continue // being created, or not ours
		}
		var props struct {
			PID      int      `json:"pid"`
			AppRoot  string   `json:"app_root"`
			AppRoots []string `json:"app_roots"`
			Listen   string   `json:"listen"`
			Ticks    uint64   `json:"start_ticks"`
		}
		if json.Unmarshal(b, &props) != nil || props.PID <= 0 {
			continue
		}
		// A zombie core, or a pid another process has now, is dead too.
		if !instance.Running(props.PID, props.Ticks) {
			os.RemoveAll(dir) // stale: its core is gone
			continue
		}
		out = append(out, Instance{Dir: dir, PID: props.PID, AppRoot: props.AppRoot, AppRoots: props.AppRoots, Listen: props.Listen})
	}
	return out, nil
}

// Client talks to one instance's admin API.
type Client struct {
	hc    *http.Client
	token string
}

// NewClient returns a client for the instance in dir, authorised with the
// admin token if this user can read it, else the read-only token.
func NewClient(dir string) *Client {
	sock := filepath.Join(dir, "admin.sock")
	c := &Client{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}}
	for _, name := range []string{AdminTokenFile, ReadTokenFile} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			c.token = strings.TrimSpace(string(b))
			break
		}
	}
	return c
}

// WithToken returns a copy of c that sends token instead.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = token
	return &cc
}

// Do calls the API and decodes a JSON answer into out (if non-nil). An
// error answer becomes an error with its message.
func (c *Client) Do(ctx context.Context, method, path string, out any) error {
	resp, err := c.send(ctx, method, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode >= 400 {
		return answerError(resp.Status, body)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = body
		return nil
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// send makes the request of Do and Stream, with the token if there is one.
func (c *Client) send(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://ferry"+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	return resp, nil
}

// answerError is the error of an error answer: its message (APIError), or
// its status.
func answerError(status string, body []byte) error {
	var ae APIError
	if json.Unmarshal(body, &ae) == nil && ae.Message != "" {
		return fmt.Errorf("admin API: %s", ae.Message)
	}
	return fmt.Errorf("admin API: %s", status)
}

// Timeout for CLI calls that should not hang on a wedged core.
const Timeout = 10 * time.Minute
