package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// searchPages is how many pages shape (d) follows.
const searchPages = 10

// searchRun times one shape on one side with some clients. rec is called
// with each request's latency (each page, for the paged shape). The ids
// of the results are returned when ids is set (vidda's side then decodes
// every Bundle, which timed runs leave out: the baseline decodes nothing).
type searchRun func(ctx context.Context, p int, rec func(time.Duration), ids bool) ([]string, error)

// searchShape is one query, asked of vidda and of the baseline.
type searchShape struct {
	name        string
	vidda, base searchRun
	// query is the Observation search vidda answers for patient p (its
	// first page); nil for an operation.
	query func(p int) string
}

// measureSearches starts vidda on the loaded database and times every
// shape on both sides, with one client and with many.
func measureSearches(ctx context.Context, o searchOptions, dbURL, logPath string, ds *searchData, rep *searchReport) error {
	addr, err := freeAddr(ctx)
	if err != nil {
		return err
	}
	env := o.childEnv("VIDDA_DATABASE_URL="+dbURL, "VIDDA_HTTP_ADDR="+addr, "VIDDA_LOG_LEVEL=warn", "VIDDA_LOG_FORMAT=text")
	srv, _, err := startServer(ctx, o.vidda, env, addr, logPath)
	if err != nil {
		return err
	}
	defer srv.kill()
	token, err := staffToken(ctx, o, env)
	if err != nil {
		return err
	}
	t := newTarget(srv.base, token, o.many)
	defer t.close()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("baseline pool: %w", err)
	}
	cfg.MaxConns = int32(o.many) //nolint:gosec // bounded by maxClients
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("baseline pool: %w", err)
	}
	defer pool.Close()
	shapes := searchShapes(t, pool, ds)
	// Once per shape, both sides must return the same ids in the same order.
	for _, s := range shapes {
		p := len(ds.patients) / 2
		noop := func(time.Duration) {}
		got, err := s.vidda(ctx, p, noop, true)
		if err != nil {
			return fmt.Errorf("%s: vidda: %w", s.name, err)
		}
		want, err := s.base(ctx, p, noop, true)
		if err != nil {
			return fmt.Errorf("%s: baseline: %w", s.name, err)
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			return fmt.Errorf("%s: vidda returned %d ids, the baseline %d, and they differ (vidda %v…, baseline %v…)",
				s.name, len(got), len(want), got[:min(3, len(got))], want[:min(3, len(want))])
		}
		rep.Verified = append(rep.Verified, fmt.Sprintf("%s: %d ids equal", s.name, len(got)))
	}
	if o.explain {
		if rep.Plans, err = explainShapes(ctx, pool, shapes, len(ds.patients)/2); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := warmShapes(ctx, shapes, len(ds.patients), o.many); err != nil {
		return err
	}
	rep.WarmS = time.Since(t0).Seconds()
	for _, s := range shapes {
		for _, clients := range []int{1, o.many} {
			r := searchResult{Shape: s.name, Clients: clients}
			r.Vidda = timeSearch(ctx, s.vidda, clients, len(ds.patients), o.warm, o.duration)
			r.Base = timeSearch(ctx, s.base, clients, len(ds.patients), o.warm, o.duration)
			if r.Base.P50ms > 0 {
				r.P50x = r.Vidda.P50ms / r.Base.P50ms
			}
			if r.Vidda.PerSecond > 0 {
				r.QPSx = r.Base.PerSecond / r.Vidda.PerSecond
			}
			rep.Results = append(rep.Results, r)
			if ctx.Err() != nil {
				return fmt.Errorf("searches: %w", ctx.Err())
			}
		}
	}
	if rep.RSSKiB, err = srv.rssKiB(); err != nil {
		return err
	}
	t.close()
	if _, code, err := srv.terminate(60 * time.Second); err != nil || code != 0 {
		return errors.Join(err, fmt.Errorf("vidda serve exited with %d", code))
	}
	return nil
}

// warmShapes asks the baseline every shape once for every patient, with
// clients at once: the timed phases then find what they read in the
// caches, whichever side runs first. Without it the first phases read a
// freshly loaded table from disk (a million readings and their indexes
// are 2 GB), and vidda, timed before the baseline in every shape, paid for
// it. Vidda's searches read no row the baseline's do not.
func warmShapes(ctx context.Context, shapes []searchShape, patients, clients int) error {
	next := make(chan int)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for p := range next {
				for _, s := range shapes {
					if _, err := s.base(ctx, p, func(time.Duration) {}, false); err != nil && errs[w] == nil {
						errs[w] = fmt.Errorf("warm %s: %w", s.name, err)
					}
				}
			}
		})
	}
	for p := 0; p < patients && ctx.Err() == nil; p++ {
		next <- p
	}
	close(next)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// timeSearch runs clients, each asking run for random patients, for warm
// unrecorded and then d recorded.
func timeSearch(ctx context.Context, run searchRun, clients, patients int, warm, d time.Duration) summary {
	phase := func(d time.Duration) summary {
		workers := make([]worker, clients)
		start := time.Now()
		deadline := start.Add(d)
		var wg sync.WaitGroup
		for w := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano()))) //nolint:gosec // test load
				res := &workers[w]
				rec := func(l time.Duration) { res.lat = append(res.lat, l) }
				for ctx.Err() == nil && time.Now().Before(deadline) {
					if _, err := run(ctx, rng.IntN(patients), rec, false); err != nil && ctx.Err() == nil {
						res.fail(err.Error())
					}
				}
			})
		}
		wg.Wait()
		return summarize(time.Since(start), workers)
	}
	if warm > 0 {
		phase(warm)
	}
	cpu := readCPU()
	s := phase(d)
	s.CPUBusyPct = cpu.busySince()
	return s
}

func searchShapes(t *target, pool *pgxpool.Pool, ds *searchData) []searchShape {
	since := ds.now.Add(-30 * 24 * time.Hour)
	const cols = "SELECT id, version_id, last_updated, content FROM observation"
	codeQuery := func(p int) string {
		return "patient=" + ds.patients[p] + "&code=" + url.QueryEscape(ds.bpToken) + "&_sort=-date&_count=50"
	}
	dateQuery := func(p int) string {
		return "patient=" + ds.patients[p] + "&date=" + url.QueryEscape("ge"+since.Format(time.RFC3339))
	}
	pagesQuery := func(p int) string { return "patient=" + ds.patients[p] + "&_sort=-date&_count=50" }
	return []searchShape{
		{
			name:  "(a) code, -date, 50",
			query: codeQuery,
			vidda: func(ctx context.Context, p int, rec func(time.Duration), ids bool) ([]string, error) {
				got, _, err := t.bundle(ctx, t.fhir+"/Observation?"+codeQuery(p), rec, ids)
				return got, err
			},
			base: func(ctx context.Context, p int, rec func(time.Duration), _ bool) ([]string, error) {
				return baseQuery(ctx, pool, rec, cols+" WHERE patient_id = $1 AND code[1] = $2 AND NOT deleted ORDER BY date_start DESC, id DESC LIMIT 50",
					ds.keys[p], ds.bpToken)
			},
		},
		{
			name:  "(b) date ge 30 days",
			query: dateQuery,
			vidda: func(ctx context.Context, p int, rec func(time.Duration), ids bool) ([]string, error) {
				got, _, err := t.bundle(ctx, t.fhir+"/Observation?"+dateQuery(p), rec, ids)
				return got, err
			},
			base: func(ctx context.Context, p int, rec func(time.Duration), _ bool) ([]string, error) {
				return baseQuery(ctx, pool, rec, cols+" WHERE patient_id = $1 AND date_start >= $2 AND NOT deleted ORDER BY last_updated DESC, id DESC LIMIT 50",
					ds.keys[p], since)
			},
		},
		{
			name: "(c) $lastn max=3",
			vidda: func(ctx context.Context, p int, rec func(time.Duration), ids bool) ([]string, error) {
				got, _, err := t.bundle(ctx, t.fhir+"/Observation/$lastn?patient="+ds.patients[p]+"&max=3", rec, ids)
				return got, err
			},
			base: func(ctx context.Context, p int, rec func(time.Duration), _ bool) ([]string, error) {
				return baseQuery(ctx, pool, rec, `SELECT o.id, o.version_id, o.last_updated, o.content
FROM unnest($2::text[]) WITH ORDINALITY AS c(code, n) CROSS JOIN LATERAL (
  SELECT id, version_id, last_updated, content, date_start FROM observation
  WHERE patient_id = $1 AND code[1] = c.code AND NOT deleted AND date_start IS NOT NULL
  ORDER BY date_start DESC, id DESC LIMIT 3
) o ORDER BY c.n, o.date_start DESC, o.id DESC`, ds.keys[p], ds.firstCode)
			},
		},
		{
			name:  "(d) -date pages 1-10",
			query: pagesQuery,
			vidda: func(ctx context.Context, p int, rec func(time.Duration), ids bool) ([]string, error) {
				var all []string
				u := t.fhir + "/Observation?" + pagesQuery(p)
				for range searchPages {
					got, next, err := t.bundle(ctx, u, rec, ids)
					if err != nil {
						return all, err
					}
					all = append(all, got...)
					if next == "" {
						break
					}
					u = next
				}
				return all, nil
			},
			base: func(ctx context.Context, p int, rec func(time.Duration), _ bool) ([]string, error) {
				var all []string
				var lastDate time.Time
				for page := range searchPages {
					var ids []string
					var err error
					if page == 0 {
						ids, err = baseKeyset(ctx, pool, rec, "SELECT id, version_id, last_updated, content, date_start FROM observation WHERE patient_id = $1 AND NOT deleted ORDER BY date_start DESC, id DESC LIMIT 50", &lastDate, ds.keys[p])
					} else {
						ids, err = baseKeyset(ctx, pool, rec, "SELECT id, version_id, last_updated, content, date_start FROM observation WHERE patient_id = $1 AND NOT deleted AND (date_start, id) < ($2, $3) ORDER BY date_start DESC, id DESC LIMIT 50",
							&lastDate, ds.keys[p], lastDate, all[len(all)-1])
					}
					if err != nil {
						return all, err
					}
					all = append(all, ids...)
					if len(ids) < 50 {
						break
					}
				}
				return all, nil
			},
		},
	}
}

// bundle GETs a searchset and returns its next link and, with ids, its
// resources' ids; the latency recorded ends when the whole body has
// arrived.
func (t *target) bundle(ctx context.Context, u string, rec func(time.Duration), ids bool) ([]string, string, error) {
	req, err := t.request(ctx, http.MethodGet, u, http.NoBody)
	if err != nil {
		return nil, "", err
	}
	t0 := time.Now()
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", u, err)
	}
	body, err := readBody(resp)
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("get %s: %s: %s", u, resp.Status, clip(body))
	}
	rec(time.Since(t0))
	var b struct {
		Entry []struct {
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
		Link []bundleLink `json:"link"`
	}
	if ids {
		err = json.Unmarshal(body, &b)
	} else {
		b.Link, err = bundleLinks(body)
	}
	if err != nil {
		return nil, "", fmt.Errorf("get %s: %w", u, err)
	}
	var found []string
	for _, e := range b.Entry {
		found = append(found, e.Resource.ID)
	}
	next := ""
	for _, l := range b.Link {
		if l.Relation == "next" {
			next = l.URL
			if strings.HasPrefix(next, "/") {
				next = strings.TrimSuffix(t.fhir, "/fhir") + next
			}
		}
	}
	return found, next, nil
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// bundleLinks reads a Bundle's links and no more of it than comes before
// them (vidda writes them before the entries), so that the 32 clients do
// not spend on decoding 35 kB Bundles the CPU the server shares with them.
func bundleLinks(body []byte) ([]bundleLink, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if tok != json.Delim('{') {
		return nil, errors.New("bundle: not a JSON object")
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if key == "link" {
			var links []bundleLink
			if err := dec.Decode(&links); err != nil {
				return nil, fmt.Errorf("bundle link: %w", err)
			}
			return links, nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	return nil, nil
}

// readBody reads a response body whose length is announced in one
// allocation, and closes it so its connection is reused.
func readBody(resp *http.Response) ([]byte, error) {
	if resp.ContentLength <= 0 {
		return drain(resp)
	}
	b := make([]byte, resp.ContentLength)
	_, err := io.ReadFull(resp.Body, b)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return b, err
}

// baseQuery runs one query and returns the ids of its rows, reading every
// column as vidda's store does.
func baseQuery(ctx context.Context, pool *pgxpool.Pool, rec func(time.Duration), sql string, args ...any) ([]string, error) {
	t0 := time.Now()
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var (
			id      string
			version int64
			updated time.Time
			content []byte
		)
		if err := rows.Scan(&id, &version, &updated, &content); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	rec(time.Since(t0))
	return ids, nil
}

// baseKeyset is baseQuery for a keyset page: it also keeps the last row's
// date_start, where the next page starts.
func baseKeyset(ctx context.Context, pool *pgxpool.Pool, rec func(time.Duration), sql string, last *time.Time, args ...any) ([]string, error) {
	t0 := time.Now()
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var (
			id      string
			version int64
			updated time.Time
			content []byte
		)
		if err := rows.Scan(&id, &version, &updated, &content, last); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	rec(time.Since(t0))
	return ids, nil
}
