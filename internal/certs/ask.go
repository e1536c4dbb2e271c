package certs

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Ask asks the operator's ask URL whether a certificate may be obtained
// for name: GET askURL?domain=NAME (keeping the URL's own query), allowed
// only by a 200 answer. Anything else, including no answer, refuses: a
// name nobody vouched for must never reach the CA.
func Ask(ctx context.Context, client *http.Client, askURL, name string) error {
	u, err := url.Parse(askURL)
	if err != nil {
		return fmt.Errorf("ask URL %q: %w", askURL, err)
	}
	q := u.Query()
	q.Set("domain", name)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("ask %s: %w", u.Redacted(), err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", u.Redacted(), err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ask %s answered %s, not 200", u.Redacted(), resp.Status)
	}
	return nil
}
