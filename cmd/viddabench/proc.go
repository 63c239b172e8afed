package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// runVidda runs a short vidda command (migrate, token) and returns its
// stdout; its stderr goes into the error.
func runVidda(ctx context.Context, bin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("vidda %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return addr, nil
}

// server is a `vidda serve` child process.
type server struct {
	cmd     *exec.Cmd
	log     *os.File
	base    string        // http://127.0.0.1:port
	exited  chan struct{} // closed once the child has been waited for
	waitErr error         // set before exited is closed
	// termed is set once SIGTERM was sent: vidda takes a second signal as
	// "stop at once", so it is sent only once.
	termed atomic.Bool
}

// sigterm asks the child to drain and stop, once.
func (s *server) sigterm() error {
	if !s.termed.CompareAndSwap(false, true) {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("sigterm vidda: %w", err)
	}
	return nil
}

// startServer starts `vidda serve` with its output in logPath and returns
// once /readyz answers 200, with the time from exec to that answer.
func startServer(ctx context.Context, bin string, env []string, addr, logPath string) (*server, time.Duration, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, 0, fmt.Errorf("start vidda: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the bench is interrupted, let the child drain; kill it if it hangs.
	s := &server{cmd: cmd, log: logFile, base: "http://" + addr, exited: make(chan struct{})}
	cmd.Cancel = s.sigterm
	cmd.WaitDelay = 30 * time.Second
	started := time.Now()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, 0, fmt.Errorf("start vidda: %w", err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(s.exited)
	}()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.kill()
		return nil, 0, err
	}
	return s, time.Since(started), nil
}

// waitReady polls /readyz every 5 ms until it answers 200.
func (s *server) waitReady(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		if s.ready(ctx, client) {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("vidda serve exited before it was ready: %w", s.waitErr)
		case <-deadline.C:
			return fmt.Errorf("vidda serve not ready after %s", limit)
		case <-ctx.Done():
			return fmt.Errorf("wait for vidda serve: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *server) ready(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/readyz", http.NoBody)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = drain(resp)
	return resp.StatusCode == http.StatusOK
}

// rssKiB is the child's resident set size (VmRSS) in KiB.
func (s *server) rssKiB() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read rss: %w", err)
			}
			return n, nil
		}
	}
	return 0, errors.New("read rss: no VmRSS line")
}

// terminate sends SIGTERM and waits up to limit for the child to exit; it
// returns how long that took and the exit code.
func (s *server) terminate(limit time.Duration) (time.Duration, int, error) {
	t0 := time.Now()
	if err := s.sigterm(); err != nil {
		return 0, -1, err
	}
	select {
	case <-s.exited:
		return time.Since(t0), s.cmd.ProcessState.ExitCode(), nil
	case <-time.After(limit):
		s.kill()
		return time.Since(t0), -1, fmt.Errorf("vidda serve did not exit within %s of SIGTERM; killed", limit)
	}
}

// kill makes sure the child is gone: SIGTERM, then SIGKILL after 10 s.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.sigterm()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// logTail is the end of a log file, for an error report.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	const most = 16 << 10
	if len(b) > most {
		b = append([]byte("…\n"), b[len(b)-most:]...)
	}
	return string(b)
}
