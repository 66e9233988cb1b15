// Command chacc runs the chacc core, helps module authors build, pack and
// sign modules, and lets operators manage the modules of a running core.
// `chacc help` lists the commands and the exit codes scripts can rely on.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/config"
	"github.com/chacc/chacc/core/server"
)

const usage = `usage: chacc <command> [arguments]

The core:
  chacc serve        run the core; settings come from the environment (see README)
  chacc migrate      apply database migrations and exit
  chacc version      print the version
  chacc help         print this help

Module authors:
  chacc module new <name> [-o dir]         write a ready-to-build module folder (default ./<name>)
  chacc module pack <dir> [-o file]        pack <dir>/module_meta.json, <dir>/bin/** and
                                           <dir>/openapi.json into a .chacc archive
  chacc module keygen [-o prefix]          write an Ed25519 key pair: <prefix>.key (private, mode 0600)
                                           and <prefix>.pub (public); default prefix chacc-signing
  chacc module sign --key <file> <archive> add or replace the archive's module.sig

Operators, against a running core:
  chacc module list                        installed modules, one per line
  chacc module show <name>                 one module: state, pid, routes, signature, stderr tail
  chacc module install <file.chacc> [--force]
                                           install or upgrade; --force reinstalls or downgrades
  chacc module enable <name>
  chacc module disable <name>
  chacc module uninstall <name> [--purge]  --purge also deletes the module's data

  --server URL   the core (default: $CHACC_SERVER, else http://localhost:8085)
  --token T      credential (default: $CHACC_TOKEN); a value starting with rak_ is sent
                 as X-API-Key, anything else as Authorization: Bearer
  --json         print the server's JSON instead of a table

Exit codes:
  0  success
  1  the server refused the request (4xx: its detail and error_code are printed
     to stderr), or a local command failed (serve, pack, sign, ...)
  2  usage error: unknown command, bad arguments or flags, unreadable input file
  3  the server could not be reached, or answered with a 5xx error
`

// Exit codes.
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnreachable = 3
)

// exitError ends the command with a given exit code; msg, when set, is
// printed to stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageErr is a usage error (exit 2).
func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...) + "\nRun 'chacc help' for usage."}
}

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err, if any, and returns the exit code it stands for.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "chacc:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "chacc:", err)
	return exitRefused
}

// cli is one run of the command: where it writes and what environment it
// reads.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: exitUsage}
	}
	switch args[0] {
	case "serve":
		if len(args) > 1 {
			return usageErr("serve takes no arguments; settings come from the environment")
		}
		cfg, err := config.Load()
		if err != nil {
			return err
		}
		if cfg.GoMaxProcs > 0 {
			runtime.GOMAXPROCS(cfg.GoMaxProcs)
		}
		if cfg.GOGC > 0 {
			debug.SetGCPercent(cfg.GOGC)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return server.Run(ctx, cfg, server.NewLogger(cfg))
	case "migrate":
		cfg, err := config.Load()
		if err != nil {
			return err
		}
		db, err := server.OpenStore(context.Background(), cfg)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return db.Close()
	case "version", "--version":
		fmt.Fprintln(stdout, "chacc", core.Version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "module":
		if len(args) < 2 {
			return usageErr("module: which subcommand? new, pack, keygen, sign, list, show, install, enable, disable or uninstall")
		}
		sub, rest := args[1], args[2:]
		switch sub {
		case "pack":
			return c.pack(rest)
		case "new":
			return c.newModule(rest)
		case "keygen":
			return c.keygen(rest)
		case "sign":
			return c.sign(rest)
		case "list", "show", "install", "enable", "disable", "uninstall":
			return c.operate(sub, rest)
		}
		return usageErr("module: unknown subcommand %q", sub)
	}
	return usageErr("unknown command %q", args[0])
}

// parseArgs parses flags placed anywhere among the positional arguments
// ("show hello --json" as well as "show --json hello") and returns the
// positional ones; after "--" everything is positional. -h and --help print
// the usage and end with exit 0.
func (c *cli) parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, usage)
			return nil, &exitError{code: exitOK}
		}
		if err != nil {
			return nil, usageErr("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// wantArgs refuses a number of positional arguments other than n.
func wantArgs(cmd string, pos []string, n int, what string) error {
	if len(pos) == n {
		return nil
	}
	if len(pos) < n {
		return usageErr("%s: missing %s", cmd, what)
	}
	return usageErr("%s: unexpected argument %q", cmd, pos[n])
}

func (c *cli) pack(args []string) error {
	fs := flag.NewFlagSet("module pack", flag.ContinueOnError)
	out := fs.String("o", "", "output file (default <name>-<version>.chacc in the current directory)")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("module pack", pos, 1, "the module folder: chacc module pack <dir> [-o file]"); err != nil {
		return err
	}
	var buf bytes.Buffer
	man, err := archive.Pack(pos[0], &buf)
	if err != nil {
		return err
	}
	dst := *out
	if dst == "" {
		dst = man.Name + "-" + man.Version + ".chacc"
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(dst, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, dst)
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// over path, so that path is never seen half written.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// plural returns "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// yesNo renders a boolean for a table.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// orDash renders an empty string as "-".
func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
