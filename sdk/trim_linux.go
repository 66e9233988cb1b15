package sdk

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// trimExecutable drops this process's mappings of its own executable's
// read-only pages (MADV_DONTNEED): the code and constant data that package
// initialization, the plugin handshake and Setup touched once, and that the
// kernel otherwise keeps mapped, with their cached neighbours. Those pages
// are clean copies of the file and stay in the page cache: what the module
// goes on using is mapped back by a minor fault on its next touch, and what
// it never touches again no longer counts in its resident set, where the
// kernel reclaims it first when memory is short.
//
// Only a mapping whose every page is the file's own is advised: private,
// not writable, and holding no page written since it was mapped. The last
// rules out what dropping would undo: relocations the loader wrote before
// making a segment read-only (RELRO, in PIE and cgo builds), a debugger's
// breakpoints, a probe. (A breakpoint set between the read of smaps and
// the advice would be lost; the program's own data cannot be.) The data and
// bss segments, the heap and the stacks are never touched. It returns the
// bytes of address space advised.
func trimExecutable() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, r := range cleanMappings(smaps, exe) {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, r.start, r.end-r.start, syscall.MADV_DONTNEED); errno != 0 {
			return total, errno
		}
		total += int64(r.end - r.start)
	}
	return total, nil
}

type addrRange struct{ start, end uintptr }

// cleanMappings returns, from /proc/pid/smaps text, the mappings of path
// that are private and readable but not writable, and hold no anonymous
// page: no page written since it was mapped, so every page is the file's.
func cleanMappings(smaps []byte, path string) []addrRange {
	var out []addrRange
	var cur addrRange
	candidate := false
	flush := func() {
		if candidate {
			out = append(out, cur)
		}
		candidate = false
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if r, perms, ok := mappingHeader(f); ok {
			// 00400000-00b0f000 r-xp 00000000 fd:01 1234   /path/to/exe
			flush()
			candidate = r.end > r.start && len(f) >= 6 && strings.Join(f[5:], " ") == path &&
				perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p'
			cur = r
			continue
		}
		if candidate && f[0] == "Anonymous:" && (len(f) < 2 || f[1] != "0") {
			candidate = false
		}
	}
	flush()
	return out
}

// mappingHeader parses the first fields of a mapping's line in
// /proc/pid/(s)maps: its address range and its permissions. Other lines
// (the smaps fields, "Rss:" and so on) are not headers.
func mappingHeader(f []string) (addrRange, string, bool) {
	if len(f) < 5 || len(f[1]) != 4 {
		return addrRange{}, "", false
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return addrRange{}, "", false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil {
		return addrRange{}, "", false
	}
	return addrRange{uintptr(start), uintptr(end)}, f[1], true
}
