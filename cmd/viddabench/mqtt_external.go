package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vidda/vidda/devices/loadgen"
)

// mosquittoProc is a mosquitto child.
type mosquittoProc struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
}

// startMosquitto runs mosquitto on a free loopback port as the external
// broker: anonymous (the bench plays every device; production points it
// at vidda's auth endpoint), no persistence (a throwaway broker), the
// queue and in-flight settings of deploy/mosquitto/mosquitto.conf.
func startMosquitto(ctx context.Context, bin, dir string, inflight int) (*mosquittoProc, error) {
	addr, err := freeAddr(ctx)
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	me, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("mosquitto: %w", err)
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser %s\n"+
		"max_queued_messages 0\nmax_inflight_messages %d\nlog_dest stderr\nlog_type error\nlog_type warning\n", port, me.Username, inflight)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, fmt.Errorf("mosquitto: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		return nil, fmt.Errorf("mosquitto: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	m := &mosquittoProc{cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(m.exited)
	}()
	if err := waitTCP(ctx, addr, m.exited, 10*time.Second); err != nil {
		m.stop()
		return nil, fmt.Errorf("mosquitto: %w: %s", err, logTail(logFile.Name()))
	}
	return m, nil
}

// stop terminates mosquitto: SIGTERM, SIGKILL after 5 s.
func (m *mosquittoProc) stop() {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(5 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// externalDrain bounds the wait, after the flood, for vidda to store
// everything mosquitto acknowledged.
const externalDrain = 60 * time.Second

// measureExternal runs phase 5: vidda consuming mosquitto, the homes
// publishing to mosquitto and waiting for vidda's replies.
func measureExternal(ctx context.Context, o mqttOptions, dbURL, dir string, homes []home, pg watched, rep *mqttReport) (err error) {
	mq, err := startMosquitto(ctx, o.mosquitto, dir, o.mosqInflight)
	if err != nil {
		return err
	}
	defer mq.stop()
	logPath := filepath.Join(dir, "vidda-external.log")
	env := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_MQTT_URL=tcp://"+mq.addr, "VIDDA_INSTANCE_ID=viddabench")
	defer func() {
		if err != nil || rep.External.ExitCode != 0 {
			rep.ServerLog = logTail(logPath)
		}
	}()
	v, err := startVidda(ctx, o, env, logPath, "", &rep.External, pg, watched{name: "mosquitto", pid: mq.cmd.Process.Pid})
	if err != nil {
		return err
	}
	defer v.srv.kill()
	if err := waitConsuming(ctx, mq.addr, homes[0]); err != nil {
		return err
	}
	if err := fresh(ctx, dbURL); err != nil {
		return err
	}
	counter, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect bench database: %w", err)
	}
	defer func() { _ = counter.Close(context.WithoutCancel(ctx)) }()
	count := func() (int, error) {
		var n int
		err := counter.QueryRow(ctx, "SELECT count(*) FROM observation").Scan(&n)
		return n, err
	}
	// The stored rate is the count's growth over exactly the flood: c0 as
	// it starts, c1 when its duration has passed.
	var c0, c1 int
	var c0err, c1err error
	var sampled chan struct{}
	start := func() {
		c0, c0err = count()
		sampled = make(chan struct{})
		go func() {
			defer close(sampled)
			select {
			case <-time.After(o.duration):
			case <-ctx.Done():
			}
			c1, c1err = count()
		}()
	}
	err = v.phase(ctx, dbURL, mq.addr, homes, loadgen.ConfirmReply, o.floodLoad("m-"), &rep.ExternalFlood, phaseHooks{start: start})
	if sampled != nil {
		<-sampled
	}
	if err != nil {
		return fmt.Errorf("mosquitto flood: %w", err)
	}
	if err := errors.Join(c0err, c1err); err != nil {
		return fmt.Errorf("count observations: %w", err)
	}
	rep.ExternalStoredPerSec = float64(c1-c0) / o.duration.Seconds()
	// What mosquitto acknowledged, vidda must store: wait for the backlog.
	deadline := time.Now().Add(externalDrain)
	for rep.ExternalFlood.Stored < rep.ExternalFlood.BrokerAcks && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		n, err := count()
		if err != nil {
			return fmt.Errorf("count observations: %w", err)
		}
		rep.ExternalFlood.Stored = n - c0
	}
	return v.stop(&rep.External, logPath)
}

// waitConsuming waits until vidda's shared subscription is in place, by
// sending one reading until vidda's reply confirms it: mosquitto drops
// what it receives before a subscriber exists.
func waitConsuming(ctx context.Context, addr string, h home) error {
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 1; ; attempt++ {
		res, _, err := flood(ctx, addr, []home{h}, loadgen.ConfirmReply, loadgen.Load{
			Prefix: fmt.Sprintf("probe%d-", attempt), Window: 1, Count: 1, Drain: 500 * time.Millisecond, Backlog: time.Hour,
		}, nil, phaseHooks{})
		switch {
		case err != nil:
			return fmt.Errorf("probe vidda through mosquitto: %w", err)
		case res.Confirmed == 1:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("vidda did not consume from mosquitto within 30s (%d probes)", attempt)
		}
	}
}
