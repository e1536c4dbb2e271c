package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Stream calls GET path and copies the answer to w as it comes, until it
// ends or ctx does (for answers that go on, such as GET /logs?follow=true).
// An error answer becomes an error with its message.
func (c *Client) Stream(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://ferry"+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var ae APIError
		if json.Unmarshal(body, &ae) == nil && ae.Message != "" {
			return fmt.Errorf("admin API: %s", ae.Message)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	// Copy as it arrives: a follower wants each line when it is logged.
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("admin API: %w", err)
		}
	}
}
