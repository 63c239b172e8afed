package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where the numbers were taken.
type machine struct {
	CPUs        int    `json:"nproc"`
	CPUModel    string `json:"cpu_model"`
	MemTotalKiB int64  `json:"mem_total_kib"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Go          string `json:"go"`
	// LoadAvg is /proc/loadavg when the run started: other work on the
	// machine skews every number.
	LoadAvg string `json:"loadavg_at_start"`
}

func readMachine() machine {
	m := machine{
		CPUs: runtime.NumCPU(), // the CPUs this process may use, as nproc counts them
		OS:   runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version(),
		CPUModel: procField("/proc/cpuinfo", "model name"),
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		m.MemTotalKiB, _ = strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		m.LoadAvg = strings.Join(f[:min(3, len(f))], " ")
	}
	if m.CPUModel == "" {
		m.CPUModel = "unknown"
	}
	return m
}

// procField is the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// cpuTimes is the first line of /proc/stat: all CPUs' time in ticks.
type cpuTimes struct{ total, idle uint64 }

// readCPU samples /proc/stat; on error it returns zero, and busySince
// then reports 0.
func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	rest, ok := strings.CutPrefix(line, "cpu ")
	if !ok {
		return cpuTimes{}
	}
	fields := strings.Fields(rest)
	var t cpuTimes
	for i, f := range fields {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuTimes{}
		}
		if i < 8 { // user nice system idle iowait irq softirq steal; guest is inside user
			t.total += v
		}
		if i == 3 || i == 4 { // idle, iowait
			t.idle += v
		}
	}
	return t
}

// busySince is the share of all CPUs, in percent, that was busy since t.
func (t cpuTimes) busySince() float64 {
	now := readCPU()
	if t.total == 0 || now.total <= t.total {
		return 0
	}
	return 100 * (1 - float64(now.idle-t.idle)/float64(now.total-t.total))
}
