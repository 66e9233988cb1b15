package sdk

import (
	"bufio"
	"bytes"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	const exe = "/srv/mod ules/hello"
	maps := `00400000-00b0f000 r-xp 00000000 fd:01 1234       /srv/mod ules/hello
00f0f000-01b02000 r--p 00b0f000 fd:01 1234       /srv/mod ules/hello
01b02000-01bbf000 rw-p 01702000 fd:01 1234       /srv/mod ules/hello
01bbf000-03c0c000 rw-p 00000000 00:00 0
02000000-02001000 r--s 00000000 fd:01 1234       /srv/mod ules/hello
03000000-03001000 r--p 00000000 fd:01 99         /srv/mod ules/hello.db
04000000-04001000 ---p 00000000 fd:01 1234       /srv/mod ules/hello
7ffd1000-7ffd3000 r-xp 00000000 00:00 0          [vdso]
garbage line
05000000-04000000 r--p 00000000 fd:01 1234       /srv/mod ules/hello
`
	got := readOnlyMappings([]byte(maps), exe)
	want := []addrRange{{0x400000, 0xb0f000}, {0xf0f000, 0x1b02000}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("readOnlyMappings = %#v, want the code and the constant data only: %#v", got, want)
	}
	// An executable replaced on disk while it runs is mapped as "(deleted)";
	// its mappings are still its own.
	del := strings.ReplaceAll(maps, "/srv/mod ules/hello\n", "/srv/mod ules/hello (deleted)\n")
	if got := readOnlyMappings([]byte(del), exe+" (deleted)"); !reflect.DeepEqual(got, want) {
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
		if len(f) >= 2 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			ours = len(f) >= 6 && strings.Join(f[5:], " ") == exe && !strings.Contains(f[1], "w")
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
	if traced() {
		t.Skip("under a debugger trimExecutable leaves the code alone")
	}
	before := exeResident(t)
	n, err := trimExecutable()
	if err != nil {
		t.Fatal(err)
	}
	after := exeResident(t)
	t.Logf("executable resident: %d KiB before, %d KiB after; %d KiB advised", before>>10, after>>10, n>>10)
	if n < before {
		t.Errorf("advised %d bytes, less than the %d resident", n, before)
	}
	// What is resident again is only what this test touched since.
	if after*2 > before {
		t.Errorf("executable resident %d KiB after the trim, %d KiB before: want at most half", after>>10, before>>10)
	}
	// The code still runs, and its constant data still reads right.
	if got := strings.Repeat("ab", 3); got != "ababab" {
		t.Fatalf("after the trim: %q", got)
	}
}
