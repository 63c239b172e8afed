package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// requestTimeout bounds one request, so a hung server cannot hold a client
// past its phase for long.
const requestTimeout = 30 * time.Second

// target is vidda's FHIR API as a bench client sees it.
type target struct {
	client *http.Client
	fhir   string // http://127.0.0.1:port/fhir
	token  string
}

// newTarget keeps one idle keep-alive connection per client (and some).
func newTarget(base, token string, clients int) *target {
	tr := &http.Transport{
		Proxy:               nil, // only ever 127.0.0.1
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * clients,
		MaxIdleConnsPerHost: 2 * clients,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &target{client: &http.Client{Transport: tr, Timeout: requestTimeout}, fhir: base + "/fhir", token: token}
}

func (t *target) close() { t.client.CloseIdleConnections() }

// creates runs clients POSTing readings until d has passed.
func (t *target) creates(ctx context.Context, clients int, d time.Duration) (summary, []string) {
	workers := make([]worker, clients)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() { workers[w] = t.createWorker(ctx, w, deadline) })
	}
	wg.Wait()
	s := summarize(time.Since(start), workers)
	var ids []string
	for _, w := range workers {
		ids = append(ids, w.ids...)
	}
	return s, ids
}

func (t *target) createWorker(ctx context.Context, w int, deadline time.Time) worker {
	var res worker
	for seq := 0; ctx.Err() == nil && time.Now().Before(deadline); seq++ {
		body := newReading(w, seq).createBody()
		t0 := time.Now()
		id, err := t.create(ctx, body)
		if err != nil {
			if ctx.Err() != nil {
				break // interrupted, not a failed request
			}
			res.fail(err.Error())
			continue
		}
		res.lat = append(res.lat, time.Since(t0))
		res.ids = append(res.ids, id)
	}
	return res
}

// create posts one Observation and returns the id from its Location.
func (t *target) create(ctx context.Context, body []byte) (string, error) {
	req, err := t.request(ctx, http.MethodPost, t.fhir+"/Observation", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := t.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("post observation: %w", err)
	}
	got, err := drain(resp)
	if err != nil {
		return "", fmt.Errorf("post observation: read body: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("post observation: %s: %s", resp.Status, clip(got))
	}
	return idFromLocation(resp.Header.Get("Location"))
}

// idFromLocation takes the id from .../fhir/Observation/<id>/_history/1.
func idFromLocation(loc string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("location %q: %w", loc, err)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	n := len(parts)
	if n < 4 || parts[n-4] != "Observation" || parts[n-2] != "_history" || parts[n-3] == "" {
		return "", fmt.Errorf("location %q is not .../Observation/<id>/_history/<version>", loc)
	}
	return parts[n-3], nil
}

// reads reads ids chosen at random by clients until n reads were done
// (n > 0, one client) or until d has passed.
func (t *target) reads(ctx context.Context, ids []string, clients, n int, d time.Duration) summary {
	workers := make([]worker, clients)
	start := time.Now()
	var deadline time.Time
	if n == 0 {
		deadline = start.Add(d)
	}
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() { workers[w] = t.readWorker(ctx, ids, w, n, deadline) })
	}
	wg.Wait()
	return summarize(time.Since(start), workers)
}

func (t *target) readWorker(ctx context.Context, ids []string, w, n int, deadline time.Time) worker {
	var res worker
	rng := rand.New(rand.NewPCG(uint64(w), 0x5eed)) //nolint:gosec // which id to read needs no secrecy.
	for i := 0; ctx.Err() == nil && (n == 0 || i < n) && (deadline.IsZero() || time.Now().Before(deadline)); i++ {
		id := ids[rng.IntN(len(ids))]
		t0 := time.Now()
		if err := t.read(ctx, id); err != nil {
			if ctx.Err() != nil {
				break // interrupted, not a failed request
			}
			res.fail(err.Error())
			continue
		}
		res.lat = append(res.lat, time.Since(t0))
	}
	return res
}

func (t *target) read(ctx context.Context, id string) error {
	req, err := t.request(ctx, http.MethodGet, t.fhir+"/Observation/"+url.PathEscape(id), http.NoBody)
	if err != nil {
		return err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("get observation: %w", err)
	}
	got, err := drain(resp)
	if err != nil {
		return fmt.Errorf("get observation: read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get observation: %s: %s", resp.Status, clip(got))
	}
	if len(got) == 0 {
		return errors.New("get observation: empty body")
	}
	return nil
}

func (t *target) request(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+t.token)
	return req, nil
}

// drain reads and closes a response body, so its connection is reused.
func drain(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return b, err
}

// clip shortens a response body for an error message.
func clip(b []byte) string {
	const most = 600
	if len(b) > most {
		return string(b[:most]) + "…"
	}
	return string(b)
}
