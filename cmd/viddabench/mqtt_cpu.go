package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// cpuUse says who kept the CPUs busy during a phase, in cores (1.0 = one
// CPU for the whole phase): the load generator, vidda, PostgreSQL and
// Mosquitto share a small machine, a generator short of CPU would cap
// every number, and other work on the machine (Other) skews them.
type cpuUse struct {
	MachineBusyPct float64 `json:"machine_busy_pct"`
	// BenchCores is this process: the load generator, plus the broker
	// and handler of the in-process baselines.
	BenchCores     float64 `json:"bench_cores"`
	ViddaCores     float64 `json:"vidda_cores,omitempty"`
	PostgresCores  float64 `json:"postgres_cores,omitempty"`
	MosquittoCores float64 `json:"mosquitto_cores,omitempty"`
	// OtherCores is the busy time nobody above accounts for: other
	// processes (or PostgreSQL backends that came and went).
	OtherCores float64 `json:"other_cores"`
}

// watched is a process whose CPU time a phase reports: pid alone, or with
// tree its direct children too (a postmaster and its backends).
type watched struct {
	name string // vidda, postgres or mosquitto
	pid  int
	tree bool
}

// cpuMeter samples CPU time at the start of a phase.
type cpuMeter struct {
	machine cpuTimes
	self    time.Duration
	at      time.Time
	watch   []watched
	start   []map[int]time.Duration
}

// startCPU starts measuring this process, the machine and watch.
func startCPU(watch ...watched) cpuMeter {
	m := cpuMeter{machine: readCPU(), self: selfCPU(), at: time.Now(), watch: watch}
	for _, w := range watch {
		m.start = append(m.start, w.sample())
	}
	return m
}

func (m cpuMeter) stop() cpuUse {
	wall := time.Since(m.at).Seconds()
	u := cpuUse{MachineBusyPct: m.machine.busySince()}
	if wall <= 0 {
		return u
	}
	u.BenchCores = (selfCPU() - m.self).Seconds() / wall
	accounted := u.BenchCores
	for i, w := range m.watch {
		var d time.Duration
		for pid, t := range w.sample() {
			d += t - m.start[i][pid] // a process born in the phase counts from 0
		}
		cores := d.Seconds() / wall
		accounted += cores
		switch w.name {
		case "vidda":
			u.ViddaCores = cores
		case "postgres":
			u.PostgresCores = cores
		case "mosquitto":
			u.MosquittoCores = cores
		}
	}
	u.OtherCores = max(0, u.MachineBusyPct/100*float64(runtime.NumCPU())-accounted)
	return u
}

// sample returns the CPU time of the watched processes now.
func (w watched) sample() map[int]time.Duration {
	out := map[int]time.Duration{}
	if w.pid <= 0 {
		return out
	}
	if t, reaped, _, ok := procStat(w.pid); ok {
		out[w.pid] = t
		if w.tree {
			// Children that ended (a postmaster's autovacuum workers,
			// closed backends) count in the parent's cutime and cstime.
			out[w.pid] += reaped
		}
	}
	if !w.tree {
		return out
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == w.pid {
			continue
		}
		if t, _, ppid, ok := procStat(pid); ok && ppid == w.pid {
			out[pid] = t
		}
	}
	return out
}

// selfCPU is this process's user and system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux this runs on).
const clockTicks = 100

// procStat is a process's user and system time, that of its children
// that have ended and been waited for, and its parent, from
// /proc/<pid>/stat.
func procStat(pid int) (cpu, reaped time.Duration, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	// f[0] is field 3 (state), ppid is 4, utime 14, stime 15, cutime 16, cstime 17.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	ppid, err0 := strconv.Atoi(f[1])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	cutime, err3 := strconv.ParseInt(f[13], 10, 64)
	cstime, err4 := strconv.ParseInt(f[14], 10, 64)
	if err := errors.Join(err0, err1, err2, err3, err4); err != nil {
		return 0, 0, 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, time.Duration(cutime+cstime) * time.Second / clockTicks, ppid, true
}

// postmasterPID finds the bench server's postmaster from its data
// directory, when it runs on this machine and we may read it; 0 otherwise
// (the report then counts PostgreSQL as other).
func postmasterPID(ctx context.Context, dbURL string) int {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0
	}
	return pid
}

// peakRSSKiB is a process's peak resident set size (VmHWM) in KiB.
func peakRSSKiB(pid int) int64 {
	v := procField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM")
	n, _ := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	return n
}
