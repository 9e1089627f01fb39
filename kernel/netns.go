package kernel

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNetNS runs fn on an OS thread that has joined the network namespace
// referred to by fd (0: the caller's namespace, fn runs directly). Sockets
// created and /proc/sys/net files opened by fn belong to that namespace.
//
// The thread is never handed back to the Go scheduler: the goroutine exits
// while still locked, so the runtime destroys the thread instead of reusing
// it in the wrong namespace.
func inNetNS(fd int, fn func() error) error {
	if fd <= 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread on purpose (see above).
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("kernel: enter network namespace fd %d: %w", fd, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
