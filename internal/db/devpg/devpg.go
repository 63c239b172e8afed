// Package devpg starts and stops a local PostgreSQL cluster with the
// machine's initdb and pg_ctl, for `make run`, tests and benchmarks.
//
// PostgreSQL refuses to run as root, so when the caller is root the cluster
// files belong to, and the server runs as, an unprivileged user (Debian's
// `postgres`). Authentication is `trust` on 127.0.0.1 only: this is a
// development cluster, never a production one.
package devpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options say where and how to run the cluster.
type Options struct {
	// Dir is the data directory; created by initdb when it has no cluster.
	Dir string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Durable keeps fsync and synchronous_commit on, as in production; tests
	// turn it off for speed, benchmarks and `make run` keep it on.
	Durable bool
	// RunAs is the OS user that owns and runs the cluster when the caller is
	// root; default "postgres".
	RunAs string
	// Logf receives progress lines; may be nil.
	Logf func(format string, args ...any)
}

// Cluster is a running local PostgreSQL.
type Cluster struct {
	opts  Options
	bin   string
	owner *user.User
	port  int
}

// ErrNoPostgres means initdb/pg_ctl were not found on this machine.
var ErrNoPostgres = errors.New("postgresql server binaries (initdb, pg_ctl) not found; install Debian's postgresql package")

// Start initialises opts.Dir if it holds no cluster, starts the server unless
// it is already running there, and waits until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := Attach(opts)
	if err != nil {
		return nil, err
	}
	if err := c.initdb(ctx); err != nil {
		return nil, err
	}
	if port, ok := c.runningPort(ctx); ok {
		c.port = port
		c.logf("postgres already running in %s on port %d", c.opts.Dir, port)
		return c, nil
	}
	c.port = opts.Port
	if c.port == 0 {
		if c.port, err = freePort(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Attach returns the cluster in opts.Dir without starting it, to stop it.
func Attach(opts Options) (*Cluster, error) {
	if opts.RunAs == "" {
		opts.RunAs = "postgres"
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("devpg: data dir: %w", err)
	}
	opts.Dir = dir
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(opts.RunAs)
		if err != nil {
			return nil, fmt.Errorf("devpg: running as root needs the unprivileged user %q: %w", opts.RunAs, err)
		}
		c.owner = u
	}
	return c, nil
}

// URL is the connection string for database name db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Port is the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// Stop shuts the server down (fast mode: active sessions are disconnected).
// A cluster that is not running is not an error.
func (c *Cluster) Stop(ctx context.Context) error {
	if _, ok := c.runningPort(ctx); !ok {
		return nil
	}
	err := c.run(ctx, filepath.Join(c.bin, "pg_ctl"), "stop", "-D", c.opts.Dir, "-m", "fast", "-w")
	if err != nil {
		return fmt.Errorf("devpg: stop: %w", err)
	}
	return nil
}

func (c *Cluster) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf(format, args...)
	}
}

func (c *Cluster) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.opts.Dir, "PG_VERSION")); err == nil {
		return nil
	}
	if err := os.MkdirAll(c.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if c.owner != nil {
		if err := c.chownForOwner(); err != nil {
			return err
		}
	}
	c.logf("initdb %s", c.opts.Dir)
	err := c.run(ctx, filepath.Join(c.bin, "initdb"), "-D", c.opts.Dir, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions")
	if err != nil {
		return fmt.Errorf("devpg: initdb: %w", err)
	}
	return nil
}

// chownForOwner gives the data dir to the unprivileged owner and checks the
// owner can reach it (a checkout under /root is not reachable by postgres).
func (c *Cluster) chownForOwner() error {
	uid, _ := strconv.Atoi(c.owner.Uid)
	gid, _ := strconv.Atoi(c.owner.Gid)
	if err := os.Chown(c.opts.Dir, uid, gid); err != nil {
		return fmt.Errorf("devpg: chown %s: %w", c.opts.Dir, err)
	}
	for p := filepath.Dir(c.opts.Dir); p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("devpg: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("devpg: user %s cannot reach %s: directory %s is not searchable by others (chmod o+x it, or set VIDDA_DATABASE_URL)", c.owner.Username, c.opts.Dir, p)
		}
	}
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	settings := []string{
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port=" + strconv.Itoa(c.port),
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
		"-c", "shared_buffers=256MB",
	}
	if !c.opts.Durable {
		settings = append(settings, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	logFile := filepath.Join(c.opts.Dir, "server.log")
	c.logf("starting postgres on 127.0.0.1:%d (log %s)", c.port, logFile)
	err := c.run(ctx, filepath.Join(c.bin, "pg_ctl"), "start", "-D", c.opts.Dir, "-w", "-t", "60",
		"-l", logFile, "-o", strings.Join(settings, " "))
	if err != nil {
		return fmt.Errorf("devpg: pg_ctl start (see %s): %w", logFile, err)
	}
	return nil
}

// runningPort reads postmaster.pid of a live server in the data dir.
func (c *Cluster) runningPort(ctx context.Context) (int, bool) {
	b, err := os.ReadFile(filepath.Join(c.opts.Dir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || !alive(pid) {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return 0, false
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, false
	}
	_ = conn.Close()
	return port, true
}

func alive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// run runs a PostgreSQL tool, as the unprivileged owner when we are root.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	if c.owner != nil {
		args = append([]string{"-u", c.owner.Username, "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.CommandContext(ctx, name, args...) //nolint:gosec // our own PostgreSQL tools, found by findBin
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(name), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// findBin locates the directory holding initdb and pg_ctl: PATH first, then
// Debian's /usr/lib/postgresql/<newest>/bin.
func findBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	return "", ErrNoPostgres
}

func versionOf(pgctl string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(pgctl))))
	return v
}

func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devpg: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CreateDatabase creates database name unless it exists.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("devpg: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("devpg: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("devpg: create database %s: %w", name, err)
	}
	return nil
}
