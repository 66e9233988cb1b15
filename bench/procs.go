package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one server process the benchmark started.
type proc struct {
	name   string
	url    string
	cmd    *exec.Cmd
	log    *logBuf
	exited chan struct{}
}

// logBuf keeps what a process printed, for the report when it fails.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *logBuf) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startProc runs name with args and env, then waits until GET url+probe
// answers (any status below 500).
func startProc(name, exe string, args, env []string, addr, probe string) (*proc, error) {
	url := "http://" + addr
	p, err := startUntil(name, exe, args, env, 30*time.Second, func() bool {
		resp, err := http.Get(url + probe)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode < 500
	})
	if p != nil {
		p.url = url
	}
	return p, err
}

// startPong runs `bench serve-pong sock` and waits until sock accepts.
func startPong(self, sock string, env []string) (*proc, error) {
	return startUntil("pong", self, []string{"serve-pong", sock}, env, 10*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// startUntil runs name with args and env, and polls ready until it holds,
// for up to timeout.
func startUntil(name, exe string, args, env []string, timeout time.Duration, ready func() bool) (*proc, error) {
	p := &proc{name: name, log: &logBuf{}, exited: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited at start:\n%s", name, p.log.tail(30))
		default:
		}
		if ready() {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s was not ready within %v:\n%s", name, timeout, p.log.tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process with SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// startCore starts `chacc serve` with its own directories under dir and,
// when databaseURL is set, on that Postgres database.
func startCore(name, chacc, dir, databaseURL string, extraEnv ...string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"CHACC_ADDR=" + addr,
		"CHACC_DATA_DIR=" + filepath.Join(dir, "data"),
		"CHACC_MODULES_INSTALLED_DIR=" + filepath.Join(dir, "installed"),
		"CHACC_MODULES_LOADED_DIR=" + filepath.Join(dir, "loaded"),
		"CHACC_LOG_LEVEL=warn",
		// The benchmark sends everything from 127.0.0.1.
		"CHACC_RATE_LIMIT=off",
		// kill -9 is measured ten times in a row: not a crash loop.
		"CHACC_RESTART_MAX=1000",
	}
	if databaseURL != "" {
		env = append(env, "DATABASE_URL="+databaseURL)
	}
	env = append(env, extraEnv...)
	for _, d := range []string{"data", "installed", "loaded"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return startProc(name, chacc, []string{"serve"}, env, addr, "/health")
}

// upload posts an archive to the core and returns the status and body.
func upload(base string, archive []byte, filename string) (int, []byte, error) {
	contentType, body := multipartBody(archive, filename)
	return post(base+"/modules/", contentType, body)
}

// multipartBody is archive as the multipart/form-data field "file".
func multipartBody(archive []byte, filename string) (string, []byte) {
	var buf bytes.Buffer
	buf.Grow(len(archive) + 1024)
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", filename)
	_, _ = fw.Write(archive)
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// post sends body to url and returns the status and the answer's body.
func post(url, contentType string, body []byte) (int, []byte, error) {
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, nil
}

// install uploads archive and fails unless the core answers 201 or 200.
func install(base string, archive []byte) error {
	status, body, err := upload(base, archive, "hello.chacc")
	if err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return fmt.Errorf("install: %d %s", status, body)
	}
	return nil
}

// uninstall removes hello and its data.
func uninstall(base string) error {
	req, _ := http.NewRequest(http.MethodDelete, base+"/modules/hello/uninstall?purge=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("uninstall: %d %s", resp.StatusCode, body)
	}
	return nil
}

// modulePID returns the pid of the running hello module.
func modulePID(base string) (int, error) {
	resp, err := http.Get(base + "/modules/hello")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		PID   int    `json:"pid"`
		State string `json:"state"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	if st.PID == 0 {
		return 0, fmt.Errorf("hello is %s, no pid", st.State)
	}
	return st.PID, nil
}

// rssBytes returns the resident set size of a process, from /proc.
func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// seedItems creates n items through base and checks they got ids 1..n.
func seedItems(base string, n int) error {
	for i := 1; i <= n; i++ {
		resp, err := http.Post(base+"/hello/items", "application/json", strings.NewReader(`{"name":"item `+strconv.Itoa(i)+`"}`))
		if err != nil {
			return err
		}
		var it struct {
			ID int `json:"id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&it)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated || it.ID != i {
			return fmt.Errorf("seed item %d at %s: status %d, id %d, %v", i, base, resp.StatusCode, it.ID, err)
		}
	}
	return nil
}

// rssParts returns a process's resident memory split as /proc/<pid>/status
// reports it: anonymous (the process's own heap and stacks) and file-backed
// (mapped pages of its executable and libraries, shared with the page cache).
func rssParts(pid int) (anon, file int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		for key, dst := range map[string]*int64{"RssAnon:": &anon, "RssFile:": &file} {
			if rest, ok := strings.CutPrefix(line, key); ok {
				kb, perr := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if perr != nil {
					return 0, 0, perr
				}
				*dst = kb << 10
			}
		}
	}
	return anon, file, nil
}
