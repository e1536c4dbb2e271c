package identity

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs f with the file-system identity of u — its uid, gid and groups —
// so that every open, stat and access f makes is checked by the kernel as if
// u made it (directory search permission along the path, ACLs, everything),
// while the rest of the core stays root. When the core is not root, or is
// u already, f simply runs.
//
// Linux keeps credentials per thread: f runs on a thread of its own, locked
// to it, whose fsuid, fsgid and groups are changed (setfsuid drops the
// capabilities that let root ignore file permissions while the fsuid is not
// 0) and put back before the thread serves any other goroutine. The Go
// runtime never clones new threads from a locked one, so nothing inherits
// the borrowed identity. Should putting it back ever fail, the thread is
// parked for good rather than let it run anything else.
func (u *User) Do(f func() error) error {
	if os.Geteuid() != 0 || u.UID == 0 && u.GID == 0 {
		return f()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := u.become()
		if err != nil {
			if restore() {
				runtime.UnlockOSThread()
			}
			done <- err
			return
		}
		err = f()
		ok := restore()
		done <- err
		if !ok {
			select {} // this thread keeps u's identity: never reuse it
		}
		runtime.UnlockOSThread()
	}()
	return <-done
}

// become sets the calling (locked) thread's file-system identity to u and
// returns what puts the previous one back, reporting success.
func (u *User) become() (restore func() bool, err error) {
	n, err := unix.Getgroups()
	if err != nil {
		return func() bool { return true }, fmt.Errorf("getgroups: %w", err)
	}
	oldGroups := n
	oldGID, _ := unix.SetfsgidRetGid(-1)
	oldUID, _ := unix.SetfsuidRetUid(-1)
	restore = func() bool {
		unix.Setfsuid(oldUID)
		unix.Setfsgid(oldGID)
		gerr := unix.Setgroups(oldGroups)
		uid, _ := unix.SetfsuidRetUid(-1)
		gid, _ := unix.SetfsgidRetGid(-1)
		return gerr == nil && uid == oldUID && gid == oldGID
	}
	// unix.Setgroups is the raw system call, which (unlike glibc's and the
	// syscall package's) changes this thread only.
	if err := unix.Setgroups(u.Groups); err != nil {
		return restore, fmt.Errorf("setgroups: %w", err)
	}
	unix.Setfsgid(u.GID)
	unix.Setfsuid(u.UID)
	uid, _ := unix.SetfsuidRetUid(-1)
	gid, _ := unix.SetfsgidRetGid(-1)
	if uid != u.UID || gid != u.GID {
		return restore, errors.New("setfsuid/setfsgid did not take effect")
	}
	return restore, nil
}

// Access modes for Access.
const (
	Read    = unix.R_OK
	Write   = unix.W_OK
	Execute = unix.X_OK // for a directory: search (traverse)
)

// Access reports whether u may access path in mode (Read|Write|Execute),
// as the kernel decides it for u: nil, or the error the kernel gave
// (typically EACCES or ENOENT), wrapped with the path. On kernels older than
// 5.8, which cannot check with the file-system identity (faccessat2), or
// where a seccomp filter forbids that system call, it reports nil: the kernel still refuses the access itself later, only with a
// less helpful message.
func (u *User) Access(path string, mode uint32) error {
	err := u.Do(func() error {
		// The raw faccessat2 with AT_EACCESS checks with the file-system
		// identity set by Do. unix.Faccessat is no good here: where the
		// system call is missing it emulates it from the real uid, root.
		return unix.Faccessat2(unix.AT_FDCWD, path, mode, unix.AT_EACCESS)
	})
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// EPERM: some container seccomp profiles answer so for system
		// calls they do not know; access itself never says it.
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "access", Path: path, Err: err}
	}
	return nil
}
