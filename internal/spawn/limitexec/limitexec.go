// Package limitexec is the first thing an app process with resource limits
// to set runs (spawn.Spawner.withLimits): this binary again, under the name
// Name, which sets the limits on itself and execs the real program in its
// place — same pid, file descriptors, environment and parent-death signal.
// Go's exec has no hook between fork and exec, and setting the limits from
// the core afterwards (prlimit) races with the app and, once the process
// runs as another user, needs CAP_SYS_RESOURCE, which containers often
// lack; a process may always lower its own limits.
//
// This runs on the critical path of every spawn, so it is done in this
// package's init, which imports nothing but syscall: the Go runtime
// initializes it among the first packages, before the rest of the binary
// (net/http, crypto, prometheus, ...), which an app process never needs.
package limitexec

import "syscall"

// Name is argv[0] of the helper: argv is Name, core ("0" or "keep"), nofile
// (0: keep), the program's path, then the program's argv.
const Name = "ferry-exec-with-limits"

func init() {
	if args := cmdline(); len(args) > 0 && args[0] == Name {
		syscall.Exit(run(args[1:]))
	}
}

// cmdline is the process's argv, from the kernel (os.Args is not set up
// yet, and os would pull in more than this needs). nil when unreadable.
func cmdline() []string {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	var args []string
	for len(buf) > 0 {
		i := 0
		for i < len(buf) && buf[i] != 0 {
			i++
		}
		args = append(args, string(buf[:i]))
		if i == len(buf) {
			break
		}
		buf = buf[i+1:]
	}
	return args
}

// run sets the limits and execs the program; it returns only on failure,
// with the exit status.
func run(args []string) int {
	if len(args) < 4 {
		say("ferry: " + Name + ": bad arguments")
		return 127
	}
	if args[0] == "0" {
		if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
			say("ferry: cannot turn off core dumps: " + err.Error())
			return 127
		}
	}
	if n, ok := atou(args[1]); ok && n > 0 {
		var cur syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
		// syscall's Setrlimit, which also stops syscall.Exec from putting
		// back the soft limit the Go runtime raised at start-up.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			say("ferry: cannot set the open files limit to " + utoa(n) + " (--app-file-descriptor-ulimit): " + err.Error() +
				"; the most an app may have here is " + utoa(cur.Max) + ", the hard limit Ferry was started with")
			return 127
		}
	}
	err := syscall.Exec(args[2], args[3:], syscall.Environ())
	say("ferry: exec " + args[2] + ": " + err.Error())
	return 127
}

func say(line string) {
	b := []byte(line + "\n")
	for len(b) > 0 {
		n, err := syscall.Write(2, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}

// atou parses a decimal uint64 (strconv.ParseUint's plain form).
func atou(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func utoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
