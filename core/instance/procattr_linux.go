package instance

import (
	"os/exec"
	"syscall"
)

// setProcAttr asks the kernel to kill the module when the core dies, however
// it dies (kill -9 included).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
