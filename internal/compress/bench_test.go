package compress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Corpora for the codec benchmark: what an app server sends, generated
// from a fixed seed so that every run compresses the same bytes.

var words = strings.Fields(`ferry river boat harbour north south east west quiet storm amber
	silver garden market station bridge lantern copper meadow island orchard signal canyon
	harvest summit valley willow cedar maple granite velvet marble saffron indigo crimson`)

// htmlPage is a product listing page of about size bytes: a shared head
// and layout, then items that differ in names, prices and links.
func htmlPage(size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Catalogue</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/assets/site-3f9a2c.css">
<script src="/assets/app-81bc44.js" defer></script></head><body><header class="site-header"><nav><ul>
<li><a href="/">Home</a></li><li><a href="/catalogue">Catalogue</a></li><li><a href="/about">About</a></li></ul></nav></header>
<main class="catalogue"><h1>Catalogue</h1><ul class="products">
`)
	for i := 0; b.Len() < size-200; i++ {
		name := words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]
		fmt.Fprintf(&b, `<li class="product" data-id="%d"><a href="/products/%d-%s"><img src="/img/%x.webp" alt="%s" width="320" height="240" loading="lazy"></a>
<h2 class="product-name">%s</h2><p class="price">€%d.%02d</p><p class="stock %s">%d in stock</p>
<button class="add-to-cart" data-sku="SKU-%06d">Add to cart</button></li>
`, 10000+i, 10000+i, strings.ReplaceAll(name, " ", "-"), r.Uint64(), name, name, r.IntN(500), r.IntN(100),
			[]string{"low", "ok", "high"}[r.IntN(3)], r.IntN(90), r.IntN(1000000))
	}
	b.WriteString("</ul></main><footer><p>&copy; Example Ltd</p></footer></body></html>\n")
	return b.Bytes()
}

// jsonDoc is an API response of about size bytes: an array of records.
func jsonDoc(size int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	type rec struct {
		ID      int       `json:"id"`
		Name    string    `json:"name"`
		Email   string    `json:"email"`
		Created time.Time `json:"created_at"`
		Score   float64   `json:"score"`
		Active  bool      `json:"active"`
		Tags    []string  `json:"tags"`
		Address struct {
			Street string `json:"street"`
			City   string `json:"city"`
			Zip    string `json:"zip"`
		} `json:"address"`
	}
	var recs []rec
	n := 0
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; n < size; i++ {
		var x rec
		x.ID = 1000 + i
		x.Name = words[r.IntN(len(words))] + " " + words[r.IntN(len(words))]
		x.Email = fmt.Sprintf("%s.%d@example.com", words[r.IntN(len(words))], r.IntN(10000))
		x.Created = base.Add(time.Duration(r.Int64N(int64(300 * 24 * time.Hour))))
		x.Score = float64(r.IntN(100000)) / 100
		x.Active = r.IntN(2) == 0
		for range r.IntN(4) {
			x.Tags = append(x.Tags, words[r.IntN(len(words))])
		}
		x.Address.Street = fmt.Sprintf("%d %s Street", r.IntN(200), words[r.IntN(len(words))])
		x.Address.City = words[r.IntN(len(words))]
		x.Address.Zip = fmt.Sprintf("%05d", r.IntN(100000))
		recs = append(recs, x)
		n += 260
	}
	b, _ := json.Marshal(map[string]any{"data": recs, "page": 1, "total": len(recs)})
	return b
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCodecs compresses each corpus as a response is compressed (a
// pooled stream from Start to End) with each coding at Ferry's default
// level, and reports the ratio (compressed / original) and the CPU time
// per MB of input (from getrusage, so a busy machine's waiting is not
// counted). bench/compression.sh runs it into bench/results.
func BenchmarkCodecs(b *testing.B) {
	corpora := []struct {
		name string
		body []byte
	}{
		{"html-100k", htmlPage(100 << 10)},
		{"json-100k", jsonDoc(100 << 10)},
		{"json-4k", jsonDoc(4 << 10)},
	}
	levels := []struct {
		name string
		c    Coding
		cfg  Config
	}{
		{"gzip-5", Gzip, Config{}},
		{"gzip-1", Gzip, Config{Level: 1}},
		{"zstd-3", Zstd, Config{}},
		{"zstd-1", Zstd, Config{ZstdLevel: 1}},
		{"br-4", Brotli, Config{}},
		{"br-1", Brotli, Config{BrotliLevel: 1}},
	}
	for _, corpus := range corpora {
		for _, l := range levels {
			b.Run(corpus.name+"/"+l.name, func(b *testing.B) {
				p := New(l.cfg)
				var out bytes.Buffer
				// Warm the pool: a server's encoders are made once.
				e := p.Start(l.c, io.Discard)
				e.Write(corpus.body)
				p.End(l.c, e, true)
				b.SetBytes(int64(len(corpus.body)))
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := cpuTime()
				for b.Loop() {
					out.Reset()
					e := p.Start(l.c, &out)
					e.Write(corpus.body)
					p.End(l.c, e, true)
				}
				cpu := cpuTime() - cpu0
				b.StopTimer()
				mb := float64(len(corpus.body)) * float64(b.N) / (1 << 20)
				b.ReportMetric(float64(cpu.Microseconds())/1000/mb, "cpu-ms/MB")
				b.ReportMetric(float64(out.Len())/float64(len(corpus.body)), "ratio")
			})
		}
	}
}
