// Command chacc runs the chacc core and packs modules.
//
//	chacc serve                     run the core (settings from the environment)
//	chacc migrate                   apply database migrations and exit
//	chacc module pack <dir> [-o f]  pack a module folder into a .chacc archive
//	chacc version                   print the version
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/config"
	"github.com/chacc/chacc/core/server"
)

const usage = `usage:
  chacc serve                        run the core; settings come from the environment (see README)
  chacc migrate                      apply database migrations and exit
  chacc module pack <dir> [-o file]  pack <dir>/module_meta.json and <dir>/bin/** into a .chacc archive
  chacc version                      print the version
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "chacc:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch args[0] {
	case "serve":
		cfg, err := config.Load()
		if err != nil {
			return err
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
		fmt.Println("migrations applied")
		return db.Close()
	case "version":
		fmt.Println("chacc", core.Version)
		return nil
	case "module":
		if len(args) >= 2 && args[1] == "pack" {
			return pack(args[2:])
		}
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	os.Exit(2)
	return nil
}

func pack(args []string) error {
	fs := flag.NewFlagSet("pack", flag.ContinueOnError)
	out := fs.String("o", "", "output file (default <name>-<version>.chacc in the current directory)")
	var dir string
	// Accept the folder before or after the flags.
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		dir, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if dir == "" && fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	if dir == "" {
		return fmt.Errorf("module pack: which folder? usage: chacc module pack <dir> [-o file]")
	}
	var buf bytes.Buffer
	man, err := archive.Pack(dir, &buf)
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
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Println(dst)
	return nil
}
