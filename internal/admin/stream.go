package admin

import (
	"context"
	"fmt"
	"io"
)

// Stream calls GET path and copies the answer to w as it comes, until it
// ends or ctx does (for answers that go on, such as GET /logs?follow=true).
// An error answer becomes an error with its message.
func (c *Client) Stream(ctx context.Context, path string, w io.Writer) error {
	resp, err := c.send(ctx, "GET", path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return answerError(resp.Status, body)
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
