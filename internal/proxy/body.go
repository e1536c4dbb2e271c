package proxy

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrBodyTooLarge is returned by BufferBody when a body exceeds its limit.
var ErrBodyTooLarge = errors.New("request body too large")

// Body is a fully received request body: in memory up to a threshold, the
// rest in an unlinked temp file. It can be sent more than once (retries).
type Body struct {
	mem  []byte
	file *os.File
	size int64
}

// BufferBody reads all of src. Up to memLimit bytes stay in memory; the rest
// spills to a temp file in dir. maxSize > 0 bounds the whole body.
func BufferBody(src io.Reader, contentLength, memLimit, maxSize int64, dir string) (*Body, error) {
	if maxSize > 0 && contentLength > maxSize {
		return nil, ErrBodyTooLarge
	}
	b := &Body{}
	initial := memLimit
	if contentLength >= 0 && contentLength < initial {
		initial = contentLength
	}
	b.mem = make([]byte, 0, max(initial, 512))
	// Fill memory first.
	for int64(len(b.mem)) < memLimit {
		if len(b.mem) == cap(b.mem) {
			b.mem = append(b.mem, 0)[:len(b.mem)]
		}
		room := min(int64(cap(b.mem)), memLimit)
		n, err := src.Read(b.mem[len(b.mem):room])
		b.mem = b.mem[:len(b.mem)+n]
		b.size += int64(n)
		if maxSize > 0 && b.size > maxSize {
			return nil, ErrBodyTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
	}
	// Memory is full: is there more?
	var probe [1]byte
	n, err := io.ReadFull(src, probe[:])
	if n == 0 {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return b, nil
		}
		return nil, fmt.Errorf("read request body: %w", err)
	}
	f, err := os.CreateTemp(dir, "body-")
	if err != nil {
		return nil, fmt.Errorf("create request body spill file: %w", err)
	}
	os.Remove(f.Name()) // unlinked: gone when closed, whatever happens
	b.file = f
	if _, err := f.Write(probe[:]); err != nil {
		b.Close()
		return nil, fmt.Errorf("spill request body: %w", err)
	}
	b.size++
	limit := io.Reader(src)
	if maxSize > 0 {
		limit = io.LimitReader(src, maxSize-b.size+1)
	}
	written, err := io.Copy(f, limit)
	b.size += written
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("spill request body: %w", err)
	}
	if maxSize > 0 && b.size > maxSize {
		b.Close()
		return nil, ErrBodyTooLarge
	}
	return b, nil
}

// Size is the body's length in bytes.
func (b *Body) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// Spilled reports whether part of the body is on disk.
func (b *Body) Spilled() bool { return b != nil && b.file != nil }

// WriteTo writes the whole body to w, from the start each time.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	if b == nil {
		return 0, nil
	}
	n, err := w.Write(b.mem)
	total := int64(n)
	if err != nil || b.file == nil {
		return total, err
	}
	m, err := io.Copy(w, io.NewSectionReader(b.file, 0, b.size-int64(len(b.mem))))
	return total + m, err
}

// Close releases the spill file.
func (b *Body) Close() error {
	if b == nil || b.file == nil {
		return nil
	}
	err := b.file.Close()
	b.file = nil
	return err
}
