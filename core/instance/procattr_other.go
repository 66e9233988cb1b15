//go:build !linux

package instance

import "os/exec"

// setProcAttr does nothing here; the SDK's parent watch ends orphaned modules.
func setProcAttr(*exec.Cmd) {}
