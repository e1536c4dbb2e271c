package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-server/ferry/internal/compress"
)

func TestCompressionOptions(t *testing.T) {
	dir := wsgiApp(t)
	c := load(t, nil, dir)
	cc := c.Front.CompressionConfig()
	if !slices.Equal(cc.Codings, []compress.Coding{compress.Zstd, compress.Brotli, compress.Gzip}) ||
		cc.ZstdLevel != 3 || cc.BrotliLevel != 4 || cc.Level != 5 || cc.MaxMemory != 128<<20 || cc.MemoBytes != 16<<20 ||
		cc.MinSize != 512 || len(cc.Types) == 0 {
		t.Fatalf("defaults: %+v", cc)
	}
	c = load(t, nil, dir, "--compression-codings", "gzip, BR", "--compression-codings", "gzip", "--zstd-level", "19",
		"--brotli-level", "11", "--compression-max-memory", "8m", "--compression-memo-size", "0")
	cc = c.Front.CompressionConfig()
	if !slices.Equal(cc.Codings, []compress.Coding{compress.Gzip, compress.Brotli}) || cc.ZstdLevel != 19 ||
		cc.BrotliLevel != 11 || cc.MaxMemory != 8<<20 || cc.MemoBytes != 1 {
		t.Fatalf("set: %+v", cc)
	}
	write(t, filepath.Join(dir, "Passengerfile.json"), `{"compression_codings": "br", "brotli_level": 6}`)
	cc = load(t, nil, dir).Front.CompressionConfig()
	if !slices.Equal(cc.Codings, []compress.Coding{compress.Brotli}) || cc.BrotliLevel != 6 {
		t.Errorf("from Passengerfile.json: %+v", cc)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--compression-codings", "deflate"}, `--compression-codings: unknown coding "deflate"`},
		{[]string{"--zstd-level", "0"}, "--zstd-level: must be between 1 and 22"},
		{[]string{"--zstd-level", "23"}, "--zstd-level: must be between 1 and 22"},
		{[]string{"--brotli-level", "12"}, "--brotli-level: must be between 1 and 11"},
		{[]string{"--compression-max-memory", "100k"}, "--compression-max-memory: must be at least 1m"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := Load(append([]string{dir}, tc.args...), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}
