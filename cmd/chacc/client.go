package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chacc/chacc/core"
)

const defaultServer = "http://localhost:8085"

// client talks to a running core.
type client struct {
	server string
	token  string
	http   *http.Client
}

// operate runs one operator subcommand against the core.
func (c *cli) operate(sub string, args []string) error {
	fs := flag.NewFlagSet("module "+sub, flag.ContinueOnError)
	server := fs.String("server", c.getenv("CHACC_SERVER"), "the core's URL")
	token := fs.String("token", c.getenv("CHACC_TOKEN"), "JWT or API key (rak_...)")
	asJSON := fs.Bool("json", false, "print the server's JSON")
	var force, purge *bool
	switch sub {
	case "install":
		force = fs.Bool("force", false, "reinstall the same version, or downgrade")
	case "uninstall":
		purge = fs.Bool("purge", false, "also delete the module's data")
	}
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	cl, err := newClient(*server, *token)
	if err != nil {
		return err
	}
	var body []byte
	switch sub {
	case "list":
		if err := wantArgs("module list", pos, 0, ""); err != nil {
			return err
		}
		if body, err = cl.do(http.MethodGet, "/modules/", nil, ""); err != nil {
			return err
		}
	case "install":
		if err := wantArgs("module install", pos, 1, "the archive: chacc module install <file.chacc> [--force]"); err != nil {
			return err
		}
		if body, err = cl.install(pos[0], *force); err != nil {
			return err
		}
	default: // show, enable, disable, uninstall
		if err := wantArgs("module "+sub, pos, 1, "the module name: chacc module "+sub+" <name>"); err != nil {
			return err
		}
		name := url.PathEscape(pos[0])
		switch sub {
		case "show":
			body, err = cl.do(http.MethodGet, "/modules/"+name, nil, "")
		case "enable", "disable":
			body, err = cl.do(http.MethodPost, "/modules/"+name+"/"+sub, nil, "")
		case "uninstall":
			path := "/modules/" + name + "/uninstall"
			if *purge {
				path += "?purge=true"
			}
			body, err = cl.do(http.MethodDelete, path, nil, "")
		}
		if err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(c.stdout, body)
	}
	return c.render(sub, body)
}

// newClient checks the server URL: a bare host:port means http://host:port.
func newClient(server, token string) (*client, error) {
	if server == "" {
		server = defaultServer
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--server %q is not an http:// or https:// URL", server)
	}
	return &client{
		server: strings.TrimRight(u.String(), "/"),
		token:  token,
		http: &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 5 * time.Minute, // an install waits for the module to start
		}},
	}, nil
}

// do sends one request and returns the body of a 2xx answer. A 4xx answer is
// an exit 1 with the server's detail and error_code; a 5xx answer or no
// answer at all is an exit 3.
func (cl *client) do(method, path string, body io.Reader, contentType string) ([]byte, error) {
	req, err := http.NewRequest(method, cl.server+path, body)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case cl.token == "":
	case strings.HasPrefix(cl.token, "rak_"):
		req.Header.Set("X-API-Key", cl.token)
	default:
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, &exitError{code: exitUnreachable, msg: fmt.Sprintf("cannot reach the core at %s: %v", cl.server, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &exitError{code: exitUnreachable, msg: fmt.Sprintf("reading the answer of %s: %v", cl.server, err)}
	}
	if resp.StatusCode < 400 {
		return data, nil
	}
	var e struct {
		Detail    string `json:"detail"`
		ErrorCode string `json:"error_code"`
		RequestID string `json:"request_id"`
	}
	msg := fmt.Sprintf("%s %s: HTTP %d", method, path, resp.StatusCode)
	if json.Unmarshal(data, &e) == nil && e.Detail != "" {
		msg = fmt.Sprintf("%s (error_code %s, HTTP %d", e.Detail, e.ErrorCode, resp.StatusCode)
		if e.RequestID != "" {
			msg += ", request_id " + e.RequestID
		}
		msg += ")"
	} else if t := strings.TrimSpace(string(data)); t != "" && len(t) < 500 {
		msg += ": " + t
	}
	code := exitRefused
	if resp.StatusCode >= 500 {
		code = exitUnreachable
	}
	return nil, &exitError{code: code, msg: msg}
}

// unwrapURLError drops the "Get \"url\": " that net/http puts before the cause.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// install uploads an archive as the multipart field "file", streaming it.
func (cl *client) install(path string, force bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErr("module install: %v", err)
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		return nil, usageErr("module install: %s is not a regular file", path)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", filepath.Base(path))
		if err == nil {
			_, err = io.Copy(fw, f)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	target := "/modules/"
	if force {
		target += "?force=true"
	}
	return cl.do(http.MethodPost, target, pr, mw.FormDataContentType())
}

// printJSON prints the server's JSON, indented.
func printJSON(w io.Writer, body []byte) error {
	var buf bytes.Buffer
	body = bytes.TrimSpace(body)
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		_, err = w.Write(body)
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// render prints the server's answer for people.
func (c *cli) render(sub string, body []byte) error {
	switch sub {
	case "list":
		var v struct {
			Modules []core.ModuleStatus `json:"modules"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("unexpected answer from the core: %w", err)
		}
		if len(v.Modules) == 0 {
			fmt.Fprintln(c.stdout, "No modules installed.")
			return nil
		}
		return c.table(v.Modules)
	case "show":
		var st core.ModuleStatus
		if err := json.Unmarshal(body, &st); err != nil {
			return fmt.Errorf("unexpected answer from the core: %w", err)
		}
		return c.show(st)
	}
	// install, enable, disable, uninstall: the message, and the module when
	// the server sent it.
	var v struct {
		Message string             `json:"message"`
		Module  *core.ModuleStatus `json:"module"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("unexpected answer from the core: %w", err)
	}
	fmt.Fprintln(c.stdout, v.Message)
	if v.Module != nil && sub == "install" {
		fmt.Fprintln(c.stdout)
		return c.table([]core.ModuleStatus{*v.Module})
	}
	return nil
}

// table prints modules one per line.
func (c *cli) table(mods []core.ModuleStatus) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tENABLED\tSTATE\tPID\tPREFIXES\tSIGNATURE")
	for _, m := range mods {
		pid := "-"
		if m.PID > 0 {
			pid = fmt.Sprint(m.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Version, yesNo(m.IsEnabled), m.State, pid,
			orDash(strings.Join(m.Prefixes, ",")), signature(m.Signature))
	}
	return tw.Flush()
}

// signature renders who signed a module.
func signature(s core.Signature) string {
	switch {
	case !s.Signed:
		return "unsigned"
	case s.Trusted:
		return s.KeyID + " (trusted)"
	default:
		return s.KeyID + " (untrusted)"
	}
}

// show prints one module.
func (c *cli) show(m core.ModuleStatus) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("name", m.Name)
	row("display name", m.DisplayName)
	row("version", m.Version)
	if m.Description != "" {
		row("description", m.Description)
	}
	row("enabled", yesNo(m.IsEnabled))
	row("state", string(m.State))
	if m.PID > 0 {
		row("pid", fmt.Sprint(m.PID))
	}
	row("restarts", fmt.Sprint(m.Restarts))
	row("prefixes", orDash(strings.Join(m.Prefixes, ", ")))
	row("signature", signature(m.Signature))
	row("installed", m.InstalledAt.Format(time.RFC3339))
	if !m.StartedAt.IsZero() {
		row("started", m.StartedAt.Format(time.RFC3339))
	}
	row("archive sha256", m.ArchiveSHA)
	if m.LastError != "" {
		row("last error", m.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(m.Routes) > 0 {
		fmt.Fprintf(c.stdout, "\n%d route%s:\n", len(m.Routes), plural(len(m.Routes)))
		tw = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  METHOD\tPATH\tMIN ROLE\tSUMMARY")
		for _, r := range m.Routes {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Method, r.Path, orDash(r.MinRole), r.Summary)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(m.StderrTail) > 0 {
		fmt.Fprintln(c.stdout, "\nstderr (last lines):")
		for _, l := range m.StderrTail {
			fmt.Fprintln(c.stdout, "  "+l)
		}
	}
	return nil
}
