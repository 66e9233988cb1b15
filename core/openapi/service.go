package openapi

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/chacc/chacc/core/instance"
	"github.com/chacc/chacc/core/modules"
	"github.com/chacc/chacc/sdk"
)

// Source lists the running modules ([modules.Manager] is one).
type Source interface {
	Running() []modules.Running
}

// Service serves the document. It is built on demand and kept until the set
// of running module processes changes (an install, upgrade, enable, disable,
// uninstall or restart replaces a process), so a request after a lifecycle
// call has returned always sees its result.
type Service struct {
	src     Source
	version string
	log     *slog.Logger

	mu    sync.Mutex
	key   []*instance.Instance
	doc   []byte
	built time.Time
}

// NewService returns the service for the core at version.
func NewService(src Source, version string, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	return &Service{src: src, version: version, log: log}
}

// Document returns the current document (JSON).
func (s *Service) Document() ([]byte, error) {
	running := s.src.Running()
	key := make([]*instance.Instance, len(running))
	for i, r := range running {
		key[i] = r.Instance
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.doc != nil && sameInstances(key, s.key) {
		return s.doc, nil
	}
	mods := make([]Module, 0, len(running))
	for _, r := range running {
		mods = append(mods, s.module(r))
	}
	b, err := Build(s.version, mods, s.log)
	if err != nil {
		return nil, err
	}
	// The cache holds the instances, so their addresses are not reused.
	s.key, s.doc, s.built = key, b, time.Now()
	return b, nil
}

// module picks r's fragment: the author's from Describe, else the archive's
// openapi.json, else the one the SDK generated.
func (s *Service) module(r modules.Running) Module {
	d := r.Instance.Describe()
	m := Module{
		Name: r.Name, DisplayName: r.DisplayName, Description: r.Description, Version: r.Version,
		Prefixes: r.Prefixes, Routes: d.GetRoutes(), Fragment: d.GetOpenapiJson(),
	}
	if len(m.Fragment) == 0 || generated(m.Fragment) {
		b, err := os.ReadFile(filepath.Join(r.Dir, "openapi.json"))
		switch {
		case err == nil:
			m.Fragment = b
		case !errors.Is(err, fs.ErrNotExist):
			s.log.Warn("openapi: archive openapi.json unreadable", "module", r.Name, "error", err)
		}
	}
	return m
}

// generated reports whether a fragment was written by sdk.OpenAPIFragment.
func generated(frag []byte) bool {
	return bytes.Contains(frag, []byte(`"`+sdk.OpenAPIGeneratedKey+`":true`))
}

func sameInstances(a, b []*instance.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ServeHTTP answers GET /openapi.json.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := s.Document()
	if err != nil {
		s.log.Error("openapi: build failed", "error", err)
		http.Error(w, `{"detail":"Internal error.","error_code":"INTERNAL_ERROR","request_id":""}`, http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	built := s.built
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", built, bytes.NewReader(b))
}
