package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// procStats is what /proc says about a process.
type procStats struct {
	rssBytes   int64
	cpuSeconds float64
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture Go supports.
const userHZ = 100

var pageSize = int64(os.Getpagesize())

// procRoot is where proc is mounted (a variable for tests).
var procRoot = "/proc"

// readProc reads a process's resident memory (statm) and CPU time (stat).
// It fails where there is no /proc (not Linux) or the process is gone.
func readProc(pid int) (procStats, error) {
	var ps procStats
	dir := procRoot + "/" + strconv.Itoa(pid)
	statm, err := os.ReadFile(dir + "/statm")
	if err != nil {
		return ps, err
	}
	f := bytes.Fields(statm)
	if len(f) < 2 {
		return ps, fmt.Errorf("%s/statm: %q", dir, statm)
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return ps, fmt.Errorf("%s/statm: %w", dir, err)
	}
	ps.rssBytes = pages * pageSize

	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return ps, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
	// the fields are counted from the last ')'. utime and stime are fields
	// 14 and 15, i.e. the 12th and 13th after it.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return ps, errors.New(dir + "/stat: no ')'")
	}
	f = bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return ps, fmt.Errorf("%s/stat: %d fields", dir, len(f))
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return ps, fmt.Errorf("%s/stat: %w", dir, err)
	}
	ps.cpuSeconds = float64(utime+stime) / userHZ
	return ps, nil
}
