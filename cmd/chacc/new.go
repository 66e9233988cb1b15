package main

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/sdk"
)

// moduleTemplates is what `chacc module new` writes: every file under
// templates/module, rendered with [newModuleData] and written without its
// .tmpl suffix (gitignore.tmpl becomes .gitignore).
//
//go:embed templates/module/*.tmpl
var moduleTemplates embed.FS

// newModuleData is what the templates see.
type newModuleData struct {
	Name        string // "greeter"
	DisplayName string // "Greeter"
	Prefix      string // "/greeter"
}

// newModule writes a ready-to-build module folder.
func (c *cli) newModule(args []string) error {
	flags := flag.NewFlagSet("module new", flag.ContinueOnError)
	out := flags.String("o", "", "the folder to create (default ./<name>)")
	pos, err := c.parseArgs(flags, args)
	if err != nil {
		return err
	}
	if err := wantArgs("module new", pos, 1, "the module name: chacc module new <name> [-o dir]"); err != nil {
		return err
	}
	name := pos[0]
	// The manifest's own rules: the name pattern, and a prefix that is not
	// one of the core's paths.
	man := sdk.Manifest{Name: name, Version: "0.1.0"}
	if err := archive.ValidateManifest(&man); err != nil {
		return usageErr("module new: %v", err)
	}
	dir := *out
	if dir == "" {
		dir = name
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("module new: %s exists and is not empty", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data := newModuleData{Name: name, DisplayName: displayName(name), Prefix: man.BasePathPrefix}
	files, err := renderModule(data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := writeNew(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.stdout, "Created module %q in %s:\n", name, dir)
	for _, f := range files {
		fmt.Fprintf(c.stdout, "  %s\n", filepath.Join(dir, f.name))
	}
	fmt.Fprintf(c.stdout, "\nNext:\n  cd %s\n  make test     # its tests, in-process\n  make pack     # dist/%s-0.1.0.chacc\n  chacc module install dist/%s-0.1.0.chacc\n", dir, name, name)
	return nil
}

type renderedFile struct {
	name string
	data []byte
}

// renderModule renders every template, sorted by name.
func renderModule(data newModuleData) ([]renderedFile, error) {
	paths, err := fs.Glob(moduleTemplates, "templates/module/*.tmpl")
	if err != nil {
		return nil, err
	}
	var files []renderedFile
	for _, p := range paths {
		src, err := moduleTemplates.ReadFile(p)
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(p).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(p), ".tmpl")
		if name == "gitignore" {
			name = ".gitignore"
		}
		files = append(files, renderedFile{name, buf.Bytes()})
	}
	return files, nil
}

// displayName turns "my-module" into "My Module".
func displayName(name string) string {
	words := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' })
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}
