package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vidda/vidda/internal/testcert"

	"github.com/vidda/vidda/devices"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
)

func TestStoppingWaitsForAcksAlreadyDue(t *testing.T) {
	h := make(held, 1)
	b := startBroker(t, h, Config{DrainTimeout: 5 * time.Second})
	c := mustPaho(t, b.Addr(), userA, passA, "gw-a")
	tok := c.Publish(readingsTopic(devA), 1, false, `{}`)
	got := h.next(t)

	start := time.Now()
	go func() {
		time.Sleep(100 * time.Millisecond)
		got.ack(Result{})
	}()
	b.stop()
	elapsed := time.Since(start)

	waitToken(t, tok, "publish acknowledged during shutdown")
	if elapsed > 2*time.Second {
		t.Errorf("stopping took %v although the ack came after 100ms", elapsed)
	}
	if s := b.Stats(); s.Acked != 1 || s.Dropped != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestStoppingGivesUpOnAcksAfterTheDrainTimeout(t *testing.T) {
	h := make(held, 1)
	b := startBroker(t, h, Config{DrainTimeout: 200 * time.Millisecond})
	c := mustPaho(t, b.Addr(), userA, passA, "gw-a")
	c.Publish(readingsTopic(devA), 1, false, `{}`)
	got := h.next(t)

	start := time.Now()
	b.stop()
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("stopping took %v with a 200ms drain timeout", elapsed)
	}
	got.ack(Result{}) // too late, and harmless
	if s := b.Stats(); s.Acked != 0 || s.Dropped != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestRunEndsEveryGoroutineItStarted(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	// A handler applying back-pressure until the broker stops.
	blocked := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, _ Message, _ func(Result)) {
		close(blocked)
		<-ctx.Done()
	})
	b := startBroker(t, h, Config{DrainTimeout: 100 * time.Millisecond})

	c := mustPaho(t, b.Addr(), userA, passA, "gw-a")
	c.Publish(readingsTopic(devA), 1, false, `{}`)
	<-blocked
	mustPaho(t, b.Addr(), userB, passB, "gw-b")
	// A connection that never sends CONNECT.
	var d net.Dialer
	idle, err := d.DialContext(context.Background(), "tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	start := time.Now()
	b.stop()
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Run took %v to return", elapsed)
	}
	c.Disconnect(0)
	if err := b.Run(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("second Run: %v, want ErrAlreadyStarted", err)
	}
}

// A device that stops reading must not hold back other devices' PUBACKs.
func TestASlowDeviceDoesNotHoldBackOthers(t *testing.T) {
	const writeTimeout = 2 * time.Second
	bigReply := bytes.Repeat([]byte("x"), 256<<10)
	h := HandlerFunc(func(_ context.Context, m Message, ack func(Result)) {
		if m.DeviceID == devA && string(m.Payload) == "fill" {
			ack(Result{Reply: bigReply})
			return
		}
		ack(Result{})
	})
	b := startBroker(t, h, Config{WriteTimeout: writeTimeout})

	// Device A subscribes to its acks, then never reads again: its replies
	// (24 MiB) fill the socket buffers.
	a := dialRaw(t, b.Addr(), 4, userA, passA, "gw-a")
	if code := a.subscribe(devices.TopicPrefix + devA + "/acks"); code != 1 {
		t.Fatalf("subscribe: %#x", code)
	}
	for range 96 {
		a.publish(readingsTopic(devA), 1, "fill")
	}
	time.Sleep(500 * time.Millisecond)
	// This PUBACK cannot be written until A's write deadline.
	a.publish(readingsTopic(devA), 1, "last")

	bc := mustPaho(t, b.Addr(), userB, passB, "gw-b")
	start := time.Now()
	toks := make([]paho.Token, 20)
	for i := range toks {
		toks[i] = bc.Publish(readingsTopic(devB), 1, false, fmt.Sprintf(`{"n":%d}`, i))
	}
	for _, tok := range toks {
		waitToken(t, tok, "device B's publish")
	}
	if elapsed := time.Since(start); elapsed > writeTimeout/2 {
		t.Errorf("device B waited %v for its PUBACKs", elapsed)
	}

	deadline := time.Now().Add(3 * writeTimeout)
	for b.Stats().Dropped == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("device A was never given up on: %+v", b.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTheListenerSpeaksTLSWhenGivenACertificate(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	h := make(held, 1)
	b := startBroker(t, h, Config{TLSCertFile: certFile, TLSKeyFile: keyFile})

	c := mustPaho(t, b.Addr(), userA, passA, "gw-a", func(o *paho.ClientOptions) {
		o.Servers = nil
		o.AddBroker("ssl://" + b.Addr())
		o.SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	})
	tok := c.Publish(readingsTopic(devA), 1, false, `{}`)
	h.next(t).ack(Result{})
	waitToken(t, tok, "publish over TLS")

	if _, err := dialPaho(t, b.Addr(), userA, passA, "plain"); err == nil {
		t.Error("a plain-text client connected to the TLS listener")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	return testcert.Write(t)
}
