package proxy

import (
	"slices"
	"testing"
)

func TestTransferCodings(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{[]string{"chunked"}, []string{"chunked"}},
		{[]string{"GZIP , Chunked"}, []string{"gzip", "chunked"}},
		{[]string{"gzip", "chunked"}, []string{"gzip", "chunked"}},
		{[]string{"gzip;level=1,,chunked"}, []string{"gzip", "chunked"}},
		// A quoted parameter's comma does not split (RFC 9110 §5.6): the
		// last coding is not chunked.
		{[]string{`gzip;x="a, chunked"`}, []string{"gzip"}},
		{[]string{`gzip;x="a, chunked`}, []string{"gzip"}},
		// Case folds in ASCII only: a Kelvin sign is not a k, so this is
		// not chunked (strings.ToLower read it as chunked).
		{[]string{"chun\u212Aed"}, []string{"chun\u212Aed"}},
	} {
		if got := transferCodings(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("transferCodings(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
