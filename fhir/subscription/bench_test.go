package subscription_test

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vidda/vidda/fhir/subscription"
)

// BenchmarkNotificationLatency measures the time from a reading's commit
// (the write returned) to its notification arriving at a webhook on
// loopback, for readings written one at a time at a steady rate through
// the devices' ingest path (COPY) and through the API's create path
// (group commit). b.N readings; report p50 and p99 in ms. Run with
//
//	deploy/with-testdb.sh --durable go test -run '^$' -bench NotificationLatency -benchtime 1000x ./fhir/subscription/
//
// VIDDA_BENCH_RATE sets readings per second (default 50).
func BenchmarkNotificationLatency(b *testing.B) {
	rate := 50
	if s := os.Getenv("VIDDA_BENCH_RATE"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			rate = n
		}
	}
	for _, path := range []string{"ingest", "create"} {
		b.Run(path, func(b *testing.B) {
			cfg := subscription.DefaultConfig()
			cfg.BaseURL = "https://vidda.test"
			r := newRig(b, cfg)
			rc := newReceiver(b)
			r.start(b)
			sub := r.subscribe(b, "Observation?patient=p1&code=http://loinc.org|"+weight, rc.url(), subscription.PayloadFHIR)
			r.waitStatus(b, sub.ID, subscription.StatusActive, 30*time.Second)

			var mu sync.Mutex
			committed := make(map[string]time.Time, b.N)
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			load := loadavg()
			b.ResetTimer()
			for i := range b.N {
				<-tick.C
				var id string
				if path == "ingest" {
					id = r.ingest(b, "p1", weight, "bench/"+strconv.Itoa(i))[0].ID
				} else {
					id = r.create(b, "p1", weight, "70").ID
				}
				mu.Lock()
				committed[id] = time.Now()
				mu.Unlock()
			}
			rc.waitEvents(b, b.N, time.Minute)
			b.StopTimer()
			evs, ids := rc.events()
			lat := make([]float64, 0, len(evs))
			for _, n := range evs {
				if ids[n.eventID] == 0 {
					continue
				}
				ids[n.eventID] = 0 // first delivery only
				id := strings.Split(n.resource, "/")[1]
				mu.Lock()
				at, ok := committed[id]
				mu.Unlock()
				if !ok {
					b.Fatalf("notified of %s, which was not written", n.resource)
				}
				lat = append(lat, max(0, float64(n.at.Sub(at).Microseconds())/1000))
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(lat[len(lat)-1], "max-ms")
			b.ReportMetric(0, "ns/op")
			b.Logf("%s: %d readings at %d/s: p50 %.1f ms, p99 %.1f ms, max %.1f ms; load average before %s, after %s",
				path, len(lat), rate, q(0.5), q(0.99), lat[len(lat)-1], load, loadavg())
		})
	}
}

// loadavg is the machine's 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
