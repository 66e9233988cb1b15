package sdk

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestCleanMappings(t *testing.T) {
	const exe = "/srv/mod ules/hello"
	smaps := `00400000-00b0f000 r-xp 00000000 fd:01 1234       /srv/mod ules/hello
Size:              11324 kB
Rss:                9000 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00f0f000-01b02000 r--p 00b0f000 fd:01 1234       /srv/mod ules/hello
Rss:                8000 kB
Anonymous:             0 kB
01b02000-01b04000 r--p 01702000 fd:01 1234       /srv/mod ules/hello
Rss:                   8 kB
Anonymous:             8 kB
01b04000-01bbf000 rw-p 01704000 fd:01 1234       /srv/mod ules/hello
Anonymous:           300 kB
01bbf000-03c0c000 rw-p 00000000 00:00 0
Anonymous:          2000 kB
02000000-02001000 r--s 00000000 fd:01 1234       /srv/mod ules/hello
Anonymous:             0 kB
03000000-03001000 r--p 00000000 fd:01 99         /srv/mod ules/hello.db
Anonymous:             0 kB
04000000-04001000 ---p 00000000 fd:01 1234       /srv/mod ules/hello
Anonymous:             0 kB
05000000-04000000 r--p 00000000 fd:01 1234       /srv/mod ules/hello
Anonymous:             0 kB
06000000-06001000 r-xp 00000000 fd:01 1234       /srv/mod ules/hello
Rss:                   4 kB
Anonymous:             4 kB
garbage line
7ffd1000-7ffd3000 r-xp 00000000 00:00 0          [vdso]
Anonymous:             0 kB
07000000-07002000 r-xp 00000000 fd:01 1234       /srv/mod ules/hello
Anonymous:             0 kB
`
	got := cleanMappings([]byte(smaps), exe)
	want := []addrRange{{0x400000, 0xb0f000}, {0xf0f000, 0x1b02000}, {0x7000000, 0x7002000}}
	if !reflect.DeepEqual(got, want) {
		// The RELRO page written by the loader (01b02000) and the code
		// page holding a breakpoint (06000000) are left alone.
		t.Fatalf("cleanMappings = %#v, want the clean code and constant data only: %#v", got, want)
	}
	// An executable replaced on disk while it runs is mapped as "(deleted)";
	// its mappings are still its own.
	del := strings.ReplaceAll(smaps, "/srv/mod ules/hello\n", "/srv/mod ules/hello (deleted)\n")
	if got := cleanMappings([]byte(del), exe+" (deleted)"); !reflect.DeepEqual(got, want) {
		t.Fatalf("deleted executable: %#v, want %#v", got, want)
	}
}

// exeResident is the resident size of this process's read-only mappings of
// its executable, from /proc/self/smaps.
func exeResident(t *testing.T) int64 {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ours := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if _, perms, ok := mappingHeader(f); ok {
			ours = len(f) >= 6 && strings.Join(f[5:], " ") == exe && perms[1] != 'w'
			continue
		}
		if ours && len(f) == 3 && f[0] == "Rss:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kb << 10
		}
	}
	return total
}

func TestTrimExecutable(t *testing.T) {
	before := exeResident(t)
	n, err := trimExecutable()
	if err != nil {
		t.Fatal(err)
	}
	// The runtime still runs: a collection walks its tables and the heap,
	// through pointers a PIE build's loader relocated; dropping those
	// relocations would crash here.
	garbage := make([][]byte, 0, 1000)
	for i := range 1000 {
		garbage = append(garbage, make([]byte, 64+i))
	}
	runtime.GC()
	if got := strings.Repeat("ab", 3); got != "ababab" || len(garbage) != 1000 {
		t.Fatalf("after the trim: %q", got)
	}
	after := exeResident(t)
	t.Logf("executable resident: %d KiB before, %d KiB after; %d KiB advised", before>>10, after>>10, n>>10)
	if n == 0 {
		t.Fatal("nothing advised")
	}
	if after >= before {
		t.Errorf("executable resident %d KiB after the trim, %d KiB before", after>>10, before>>10)
	}
}

// The same test in a position-independent build, whose loader writes
// relocations into pages it then makes read-only.
func TestTrimExecutablePIE(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package's tests once more")
	}
	if os.Getenv("CHACC_TRIM_PIE") != "" {
		t.Skip("the inner run")
	}
	cmd := exec.Command("go", "test", "-count=1", "-buildmode=pie", "-run", "^TestTrimExecutable$", "-v", ".")
	cmd.Env = append(os.Environ(), "CHACC_TRIM_PIE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestTrimExecutable") {
		t.Fatalf("the PIE run did not pass TestTrimExecutable:\n%s", out)
	}
}
