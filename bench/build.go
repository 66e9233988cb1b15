package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/chacc/chacc/core/archive"
)

// artifacts are the binaries the benchmark runs, built from this checkout.
type artifacts struct {
	chacc string // the core
	hello string // the hello module's archive
	auth  string // the auth module's archive
	// helloExeBytes is the size of the module executable inside it.
	helloExeBytes     int64
	helloArchiveBytes int64
}

// build compiles the core and the hello module into dir and packs hello as
// scripts/build-modules.sh does (stripped, trimmed paths).
func build(root, dir string) (*artifacts, error) {
	gobuild := func(out, pkg string, flags ...string) error {
		args := append([]string{"build", "-o", out}, flags...)
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return nil
	}
	a := &artifacts{chacc: filepath.Join(dir, "chacc")}
	if err := gobuild(a.chacc, "./cmd/chacc"); err != nil {
		return nil, err
	}
	stage := filepath.Join(dir, "hello")
	plat := runtime.GOOS + "-" + runtime.GOARCH
	exe := filepath.Join(stage, "bin", plat, "hello")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		return nil, err
	}
	if err := gobuild(exe, "./sdk/examples/hello", "-trimpath", "-ldflags=-s -w"); err != nil {
		return nil, err
	}
	man, err := os.ReadFile(filepath.Join(root, "sdk/examples/hello/module_meta.json"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(stage, "module_meta.json"), man, 0o644); err != nil {
		return nil, err
	}
	a.hello = filepath.Join(dir, "hello.chacc")
	f, err := os.Create(a.hello)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := archive.Pack(stage, f); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(exe); err == nil {
		a.helloExeBytes = fi.Size()
	}
	if fi, err := f.Stat(); err == nil {
		a.helloArchiveBytes = fi.Size()
	}

	// The auth module, for the cost of authentication (j).
	authStage := filepath.Join(dir, "auth")
	authExe := filepath.Join(authStage, "bin", plat, "auth")
	if err := gobuild(authExe, "./modules/auth", "-trimpath", "-ldflags=-s -w"); err != nil {
		return nil, err
	}
	man, err = os.ReadFile(filepath.Join(root, "modules/auth/module_meta.json"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(authStage, "module_meta.json"), man, 0o644); err != nil {
		return nil, err
	}
	a.auth = filepath.Join(dir, "auth.chacc")
	af, err := os.Create(a.auth)
	if err != nil {
		return nil, err
	}
	defer af.Close()
	if _, err := archive.Pack(authStage, af); err != nil {
		return nil, err
	}
	return a, nil
}
