package sdk

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// madvDontneed is MADV_DONTNEED from <sys/mman.h>.
const madvDontneed = 4

// trimExecutable drops this process's mappings of its own executable's
// read-only pages (MADV_DONTNEED): the code and constant data that package
// initialization, the plugin handshake and Setup touched once, and that the
// kernel keeps mapped, with their cached neighbours, until the process ends.
// Those pages are clean copies of the file and stay in the page cache: what
// the module goes on using is mapped back by a minor fault on its next touch,
// and what it never touches again no longer counts in its resident set, where
// the kernel reclaims it first when memory is short. Only private mappings
// that cannot be written are advised, so no data is lost: the data and bss
// segments, the heap and the stacks are never touched. It returns the bytes
// of address space advised.
func trimExecutable() (int64, error) {
	if traced() {
		// A debugger's breakpoints are private copies of code pages;
		// dropping them would drop the breakpoints.
		return 0, nil
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, r := range readOnlyMappings(maps, exe) {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r.start, r.end-r.start, madvDontneed); errno != 0 {
			return total, errno
		}
		total += int64(r.end - r.start)
	}
	return total, nil
}

type addrRange struct{ start, end uintptr }

// readOnlyMappings returns the private mappings of path, in /proc/pid/maps
// text, that can be neither written nor are shared: those whose pages are
// always the file's own.
func readOnlyMappings(maps []byte, path string) []addrRange {
	var out []addrRange
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// 00400000-00b0f000 r-xp 00000000 fd:01 1234   /path/to/exe
		f := strings.Fields(sc.Text())
		if len(f) < 6 || strings.Join(f[5:], " ") != path {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, addrRange{uintptr(start), uintptr(end)})
	}
	return out
}

// traced reports whether a debugger is attached.
func traced() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			return strings.TrimSpace(v) != "0"
		}
	}
	return false
}
