// Package static serves files from an app's public/ directory. It owns path
// checking and file responses; it does not know about apps or the pool.
//
// A Handler answers GET and HEAD requests for regular files below its root
// directory and reports whether it did so. Everything it does not serve —
// other methods, directories, missing files, dotfiles, suspicious paths, I/O
// errors — falls through untouched (nothing written, false returned) so the
// caller can hand the request to the application instead. A path ending
// in '/' is the directory's index.html (as Passenger behind nginx, Rails'
// static server and other web servers serve it), and a directory named
// without the '/' that has an index.html is redirected (301) to the name
// with it, so that relative links in the page resolve; a directory is never
// listed. Other paths are served exactly as requested or not at all.
//
// Files are opened through an [os.Root], so no path, however encoded, and no
// symlink can reach outside the root unless Options.FollowSymlinks is set.
// Small files are kept in a bounded in-memory cache. A cached file (and a
// path found absent, which falls through) is served without a Stat while
// inotify reports no change below the root (see watcher) and its last check
// is younger than Options.Revalidate; otherwise one Stat per request
// revalidates it, as on systems without inotify.
package static

import (
	"bytes"
	"errors"
	"hash/maphash"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Cache defaults, used when the corresponding Options field is zero.
const (
	DefaultCacheMaxFileSize = 64 << 10 // 64 KiB
	DefaultCacheMaxEntries  = 1024
	DefaultCacheMaxBytes    = 16 << 20 // 16 MiB
)

// maxPathLen bounds the request paths considered at all; longer ones fall
// through. Real asset paths are far shorter, and PATH_MAX is 4096 on Linux.
const maxPathLen = 4096

// Options configures a Handler. The zero value is the safe default.
type Options struct {
	// FollowSymlinks allows symlinks that point outside the root. Default false.
	//
	// When false every file is opened through an os.Root: symlinks are
	// followed only if they are relative and stay inside the root (absolute
	// symlinks are refused even when they point inside). When true, files
	// are opened with plain os calls on root/rel, so the OS follows any
	// symlink, wherever it points; the request path itself is still checked
	// exactly as strictly.
	FollowSymlinks bool
	// As, when set, runs the stat and open of a file served with
	// FollowSymlinks, so that they happen with the identity of the app's
	// user (identity.User.Do): a symlink an app puts under public/ then
	// reaches only what that user could read itself, never what only the
	// core (root) can. Nil: with the core's own identity.
	As func(func() error) error
	// ServeDotfiles allows path segments starting with '.'. Default false
	// (.git, .env are never served).
	ServeDotfiles bool

	// CacheMaxFileSize is the largest file, in bytes, kept in memory.
	// Zero means DefaultCacheMaxFileSize (64 KiB).
	CacheMaxFileSize int64
	// CacheMaxEntries bounds the number of files kept in memory.
	// Zero means DefaultCacheMaxEntries (1024).
	CacheMaxEntries int
	// CacheMaxBytes bounds the total size of the files kept in memory.
	// Zero means DefaultCacheMaxBytes (16 MiB).
	CacheMaxBytes int64
	// A negative value in any of the three cache fields disables the cache.

	// Revalidate is the longest a cached file, or a path found absent, is
	// served on inotify's word alone, without a Stat: past it, the next
	// request stats again. It bounds how late a change inotify does not
	// report (a write through a shared mmap, a network filesystem changed
	// from another host) is noticed. Zero means DefaultRevalidate (1 s);
	// negative: a Stat for every request.
	Revalidate time.Duration
}

// DefaultRevalidate is Options.Revalidate's default.
const DefaultRevalidate = time.Second

// maxWatches bounds the directories one Handler watches (inotify watches
// are a per-user resource); paths in directories past it are stat'ed on
// every request.
const maxWatches = 1024

// Handler serves the files below one directory. It is safe for concurrent
// use.
type Handler struct {
	root   *os.Root // nil when the directory did not exist
	prefix string   // absolute root path + separator, for FollowSymlinks
	opts   Options
	closed atomic.Bool

	cacheOn    bool
	maxFile    int64
	maxEntries int
	maxBytes   int64

	mu      sync.RWMutex
	entries map[string]*entry
	used    int64 // sum of len(entry.data), guarded by mu
	// absent are paths found missing, with the check that found them
	// (see checkedAt): they fall through without a Stat while it holds.
	// A slot per hash of the path, the last one found there kept: no lock,
	// no eviction to pay for when every request brings a new path.
	absent *[absentSlots]atomic.Pointer[absentPath]
	seed   maphash.Seed

	// watch reports changes below the root (nil: none, every request
	// stats); revalMs is Options.Revalidate; epoch the clock's start.
	watch   *watcher
	revalMs uint64
	epoch   time.Time
}

// entry is an immutable cached file. It is replaced, never modified.
type entry struct {
	data    []byte
	size    int64
	mtimeNs int64
	modTime time.Time
	// Header values, built once. The slices have len == cap so that an
	// append by anyone downstream copies instead of writing into them.
	etag  []string
	ctype []string
	// lastMod and length are the fields of an unconditional 200, which is
	// written without http.ServeContent; lastMod is nil for a zero time.
	lastMod []string
	length  []string
	// check is when the file was last found unchanged (checkedAt); 0:
	// never on the watcher's word.
	check atomic.Uint64
}

var (
	acceptRanges = []string{"bytes"}
	readerPool   = sync.Pool{New: func() any { return new(bytes.Reader) }}
)

// New opens dir (which may not exist: then Serve always returns false).
func New(dir string, opts Options) (*Handler, error) {
	h := &Handler{opts: opts}
	h.maxFile = orDefault(opts.CacheMaxFileSize, DefaultCacheMaxFileSize)
	h.maxEntries = int(orDefault(int64(opts.CacheMaxEntries), DefaultCacheMaxEntries))
	h.maxBytes = orDefault(opts.CacheMaxBytes, DefaultCacheMaxBytes)
	h.cacheOn = h.maxFile > 0 && h.maxEntries > 0 && h.maxBytes > 0
	if h.cacheOn {
		h.entries = make(map[string]*entry)
	}

	root, err := os.OpenRoot(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return h, nil // Serve always reports false
		}
		return nil, err
	}
	h.root = root
	reval := orDefault(int64(opts.Revalidate), int64(DefaultRevalidate))
	if h.cacheOn && reval > 0 && !opts.FollowSymlinks {
		// With FollowSymlinks a file may be anywhere: no watch covers it.
		if abs, err := filepath.Abs(dir); err == nil {
			h.watch = newWatcher(abs, maxWatches)
		}
		h.revalMs = uint64(max(reval/int64(time.Millisecond), 1))
		h.epoch = time.Now()
		h.absent = new([absentSlots]atomic.Pointer[absentPath])
		h.seed = maphash.MakeSeed()
	}
	if opts.FollowSymlinks {
		abs, err := filepath.Abs(dir)
		if err != nil {
			root.Close()
			return nil, err
		}
		h.prefix = abs + string(filepath.Separator)
	}
	return h, nil
}

func orDefault(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

// Close releases the root directory and drops the cache. Serve returns false
// afterwards.
func (h *Handler) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	h.mu.Lock()
	h.entries = nil
	h.used = 0
	h.mu.Unlock()
	h.watch.close()
	if h.root != nil {
		return h.root.Close()
	}
	return nil
}

// Serve answers GET and HEAD requests for regular files under the root and
// returns true; for anything else (other methods, directories, missing files,
// dotfiles, unsafe paths) it writes nothing and returns false so the request
// falls through to the app.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if h.root == nil || h.closed.Load() || r.URL == nil || r.URL.Opaque != "" {
		return false
	}
	p := r.URL.Path
	index := strings.HasSuffix(p, "/")
	if index {
		p += indexFile
	}
	rel, ok := cleanPath(p)
	if !ok {
		return false
	}
	if r.URL.RawPath != "" && !rawPathOK(r.URL) {
		return false
	}
	if !h.opts.ServeDotfiles && hasDotSegment(rel) {
		return false
	}

	if h.watch != nil {
		if e, absent := h.known(rel); e != nil {
			h.serveEntry(w, r, e)
			return true
		} else if absent {
			return false
		}
	}
	// From here on, what is found is recorded at generation g of the
	// watcher (0: not recorded), taken after the path is watched and
	// before it is looked at.
	g := h.watch.watch(rel)

	// One Stat decides between "fall through" and "serve", and validates a
	// cached copy. Non-regular files (directories, FIFOs, devices) are never
	// opened, so a FIFO cannot block us.
	fi, err := h.stat(rel)
	if err == nil && fi.IsDir() && !index {
		return h.redirectToDir(w, r, rel)
	}
	if err != nil || !fi.Mode().IsRegular() {
		if g != 0 && errors.Is(err, fs.ErrNotExist) {
			h.noteAbsent(rel, g)
		}
		return false
	}
	size := fi.Size()
	if h.cacheOn && size <= h.maxFile {
		if e := h.lookup(rel); e != nil && e.size == size && e.mtimeNs == fi.ModTime().UnixNano() {
			if g != 0 {
				e.check.Store(h.checkedAt(g))
			}
			h.serveEntry(w, r, e)
			return true
		}
	}

	f, err := h.open(rel)
	if err != nil {
		return false
	}
	defer f.Close()
	// Re-check on the open descriptor: the path may have been replaced
	// between Stat and Open.
	fi, err = f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if h.cacheOn && fi.Size() <= h.maxFile {
		e, err := h.fill(rel, f, fi, g)
		if err != nil {
			return false // read error: nothing written yet
		}
		if e != nil {
			h.serveEntry(w, r, e)
			return true
		}
		// The file changed while we read it; serve it uncached.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return false
		}
	}
	h.serveFile(w, r, rel, f, fi)
	return true
}

// indexFile is what a path ending in '/' serves from that directory.
const indexFile = "index.html"

// redirectToDir answers a directory named without its trailing '/' that
// has an index file with a redirect to the name with it. The Location is
// relative (./NAME/), so that it holds under any base URI the app is
// mounted at, which this handler does not know.
func (h *Handler) redirectToDir(w http.ResponseWriter, r *http.Request, rel string) bool {
	if fi, err := h.stat(rel + "/" + indexFile); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	esc := r.URL.EscapedPath()
	loc := "./" + esc[strings.LastIndexByte(esc, '/')+1:] + "/"
	if r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusMovedPermanently)
	return true
}

func (h *Handler) stat(rel string) (fs.FileInfo, error) {
	if !h.opts.FollowSymlinks {
		return h.root.Stat(rel)
	}
	if h.opts.As == nil {
		return os.Stat(h.prefix + rel)
	}
	return h.statAs(rel)
}

// openFlags: O_NONBLOCK so that a file swapped for a FIFO between the stat
// and the open cannot block the open (Serve checks the opened descriptor is
// a regular file); it changes nothing for regular files.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK

func (h *Handler) open(rel string) (*os.File, error) {
	if !h.opts.FollowSymlinks {
		return h.root.OpenFile(rel, openFlags, 0)
	}
	if h.opts.As == nil {
		return os.OpenFile(h.prefix+rel, openFlags, 0)
	}
	return h.openAs(rel)
}

// statAs and openAs run under Options.As; apart, so that the closures'
// captures do not make the common paths allocate.
func (h *Handler) statAs(rel string) (fi fs.FileInfo, err error) {
	if aerr := h.opts.As(func() error {
		fi, err = os.Stat(h.prefix + rel)
		return nil
	}); aerr != nil {
		return nil, aerr
	}
	return fi, err
}

func (h *Handler) openAs(rel string) (f *os.File, err error) {
	if aerr := h.opts.As(func() error {
		f, err = os.OpenFile(h.prefix+rel, openFlags, 0)
		return nil
	}); aerr != nil {
		if f != nil {
			f.Close()
		}
		return nil, aerr
	}
	return f, err
}

// serveEntry answers from memory.
// conditional: the request has a precondition or a range, which
// http.ServeContent evaluates.
func conditional(h http.Header) bool {
	for _, k := range [...]string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "Range", "If-Range"} {
		if len(h[k]) > 0 {
			return true
		}
	}
	return false
}

func (h *Handler) serveEntry(w http.ResponseWriter, r *http.Request, e *entry) {
	hdr := w.Header()
	hdr["Etag"] = e.etag
	hdr["Content-Type"] = e.ctype
	hdr["Accept-Ranges"] = acceptRanges
	if !conditional(r.Header) {
		// What http.ServeContent would answer, without its parsing and
		// formatting: this is the hot path of a small file.
		if e.lastMod != nil {
			hdr["Last-Modified"] = e.lastMod
		}
		hdr["Content-Length"] = e.length
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(e.data)
		}
		return
	}
	rd := readerPool.Get().(*bytes.Reader)
	rd.Reset(e.data)
	// An empty name: the Content-Type is already set, nothing to derive.
	http.ServeContent(w, r, "", e.modTime, rd)
	rd.Reset(nil)
	readerPool.Put(rd)
}

// serveFile answers from the open file f.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, rel string, f *os.File, fi fs.FileInfo) {
	hdr := w.Header()
	mt := fi.ModTime()
	hdr.Set("Etag", makeETag(fi.Size(), mt.UnixNano()))
	if ct := mime.TypeByExtension(filepath.Ext(rel)); ct != "" {
		hdr.Set("Content-Type", ct)
	}
	// Otherwise leave Content-Type unset and pass no name: ServeContent
	// sniffs the first 512 bytes and seeks back.
	hdr["Accept-Ranges"] = acceptRanges
	http.ServeContent(w, r, "", mt, f)
}

// lookup returns the cached entry for rel, if any.
func (h *Handler) lookup(rel string) *entry {
	h.mu.RLock()
	e := h.entries[rel]
	h.mu.RUnlock()
	return e
}

// fill reads the open file f (described by fi) into a new cache entry and
// stores it. It returns (nil, nil) when the file changed during the read,
// and an error when reading failed.
func (h *Handler) fill(rel string, f *os.File, fi fs.FileInfo, g uint32) (*entry, error) {
	size := fi.Size()
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, nil // shrank under us
		}
		return nil, err
	}
	after, err := f.Stat()
	if err != nil {
		return nil, err
	}
	mtimeNs := fi.ModTime().UnixNano()
	if after.Size() != size || after.ModTime().UnixNano() != mtimeNs {
		return nil, nil
	}

	ct := mime.TypeByExtension(filepath.Ext(rel))
	if ct == "" {
		ct = http.DetectContentType(data) // looks at 512 bytes at most
	}
	e := &entry{
		data:    data,
		size:    size,
		mtimeNs: mtimeNs,
		modTime: fi.ModTime(),
		etag:    []string{makeETag(size, mtimeNs)},
		ctype:   []string{ct},
		length:  []string{strconv.FormatInt(size, 10)},
	}
	if mt := fi.ModTime(); !mt.IsZero() && !mt.Equal(time.Unix(0, 0)) {
		e.lastMod = []string{mt.UTC().Format(http.TimeFormat)}
	}
	if g != 0 {
		e.check.Store(h.checkedAt(g))
	}
	h.store(strings.Clone(rel), e)
	return e, nil
}

// store inserts e under key, evicting arbitrary entries (Go's randomised map
// order) until the bounds hold.
func (h *Handler) store(key string, e *entry) {
	n := int64(len(e.data))
	if n > h.maxBytes {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.entries == nil { // closed
		return
	}
	if old, ok := h.entries[key]; ok {
		h.used -= int64(len(old.data))
		delete(h.entries, key)
	}
	if h.absent != nil {
		slot := h.absentSlot(key)
		if a := slot.Load(); a != nil && a.rel == key {
			slot.CompareAndSwap(a, nil)
		}
	}
	for len(h.entries) > 0 && (len(h.entries) >= h.maxEntries || h.used+n > h.maxBytes) {
		for k, v := range h.entries {
			h.used -= int64(len(v.data))
			delete(h.entries, k)
			break
		}
	}
	h.entries[key] = e
	h.used += n
}

// Checks without a Stat. A check is the low 24 bits of a watcher
// generation (high bits) and a time in milliseconds since h.epoch (low 40
// bits: 34 years).
const msBits = 40

func (h *Handler) nowMs() uint64 { return uint64(time.Since(h.epoch) / time.Millisecond) }

func (h *Handler) checkedAt(g uint32) uint64 {
	return uint64(g&(1<<(64-msBits)-1))<<msBits | h.nowMs()&(1<<msBits-1)
}

// holds reports whether a check is still good at generation g: nothing
// changed below the root since, and it is younger than Options.Revalidate.
func (h *Handler) holds(check uint64, g uint32) bool {
	return checkHolds(check, g, h.nowMs(), h.revalMs)
}

// checkHolds: a check (checkedAt) holds at generation g and time now (ms)
// for a Revalidate of reval ms.
func checkHolds(check uint64, g uint32, now, reval uint64) bool {
	return g != 0 && check>>msBits == uint64(g&(1<<(64-msBits)-1)) &&
		now-check&(1<<msBits-1) < reval
}

// known answers from the checks alone: the cached entry of rel, or that
// rel is absent, while the check that found it holds; (nil, false): look.
func (h *Handler) known(rel string) (*entry, bool) {
	g := h.watch.current()
	if g == 0 {
		return nil, false
	}
	if a := h.absentSlot(rel).Load(); a != nil && a.rel == rel {
		return nil, h.holds(a.check.Load(), g)
	}
	h.mu.RLock()
	e := h.entries[rel]
	h.mu.RUnlock()
	if e != nil && h.holds(e.check.Load(), g) {
		return e, false
	}
	return nil, false
}

// absentSlots is how many paths found absent are remembered at most.
const absentSlots = 1024

// absentPath is a path found absent, and when (checkedAt).
type absentPath struct {
	rel   string
	check atomic.Uint64
}

func (h *Handler) absentSlot(rel string) *atomic.Pointer[absentPath] {
	return &h.absent[maphash.String(h.seed, rel)%absentSlots]
}

// noteAbsent records that rel was found absent at generation g, in its
// slot (replacing whichever path was there).
func (h *Handler) noteAbsent(rel string, g uint32) {
	slot := h.absentSlot(rel)
	if a := slot.Load(); a != nil && a.rel == rel {
		a.check.Store(h.checkedAt(g))
		return
	}
	a := &absentPath{rel: strings.Clone(rel)}
	a.check.Store(h.checkedAt(g))
	slot.Store(a)
}

// makeETag returns a strong validator: "<size hex>-<mtime ns hex>".
func makeETag(size, mtimeNs int64) string {
	var b [2 + 16 + 1 + 16]byte
	buf := append(b[:0], '"')
	buf = strconv.AppendUint(buf, uint64(size), 16)
	buf = append(buf, '-')
	buf = strconv.AppendUint(buf, uint64(mtimeNs), 16)
	buf = append(buf, '"')
	return string(buf)
}

// cleanPath checks a decoded URL path (r.URL.Path) and returns it relative to
// the root. It never rewrites: on success rel is p without its leading '/'.
// It rejects (ok == false):
//   - paths not starting with '/', the bare "/", and paths over maxPathLen;
//   - empty, "." and ".." segments (so "//", "/./", trailing '/');
//   - NUL, other ASCII control bytes, and backslash anywhere;
//   - any segment that still contains a percent escape (%XX with two hex
//     digits). net/http already decoded the path once, so such a segment was
//     encoded twice ("%252e%252e" → "%2e%2e"). Static file names have no
//     business looking like that, and rejecting them means no later decoding
//     step, ours or anyone's, can turn them into "..", "/" or NUL.
//
// Whether a segment starts with '.' is a separate policy (hasDotSegment).
func cleanPath(p string) (rel string, ok bool) {
	if len(p) < 2 || len(p) > maxPathLen || p[0] != '/' {
		return "", false
	}
	rel = p[1:]
	start := 0
	for i := 0; i <= len(rel); i++ {
		if i < len(rel) {
			c := rel[i]
			switch {
			case c == '/':
			case c < 0x20 || c == 0x7f || c == '\\':
				return "", false
			case c == '%':
				if i+2 < len(rel) && isHex(rel[i+1]) && isHex(rel[i+2]) {
					return "", false
				}
				continue
			default:
				continue
			}
		}
		// rel[start:i] is a complete segment.
		switch i - start {
		case 0:
			return "", false
		case 1:
			if rel[start] == '.' {
				return "", false
			}
		case 2:
			if rel[start] == '.' && rel[start+1] == '.' {
				return "", false
			}
		}
		start = i + 1
	}
	return rel, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// hasDotSegment reports whether any segment of rel (as returned by
// cleanPath) starts with '.'.
func hasDotSegment(rel string) bool {
	return len(rel) > 0 && rel[0] == '.' || strings.Contains(rel, "/.")
}

// rawPathOK checks the request's original encoding when it differs from the
// default one (net/http sets RawPath only then). The path we act on is the
// decoded r.URL.Path; we refuse when the raw form is not a valid encoding of
// it (a hand-built or tampered URL) or when it encodes characters that change
// meaning once decoded: an encoded '/' (the client meant it inside a segment,
// which no file name can hold), '\' or NUL.
func rawPathOK(u *url.URL) bool {
	// EscapedPath returns RawPath only if it is a valid encoding of Path.
	return u.EscapedPath() == u.RawPath && rawOK(u.RawPath)
}

func rawOK(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		switch {
		case raw[i+1] == '0' && raw[i+2] == '0',
			raw[i+1] == '2' && (raw[i+2] == 'f' || raw[i+2] == 'F'),
			raw[i+1] == '5' && (raw[i+2] == 'c' || raw[i+2] == 'C'):
			return false
		}
	}
	return true
}
