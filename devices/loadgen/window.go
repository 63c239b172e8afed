package loadgen

import (
	"sync"
	"time"
)

// window is the in-flight window of one connection in one run: at most
// size readings sent and not yet confirmed, each remembered with the time
// its latency counts from. Times are offsets from the start of the run
// (monotonic). The writer acquires a slot, then adds the reading under a
// key (its packet id, or its sequence number when replies confirm);
// confirm frees the slot and records the latency.
type window struct {
	free   chan struct{} // one token per free slot
	origin time.Time     // the start of the run
	prefix string        // reading id prefix of the run (replies name readings by id)

	mu        sync.Mutex
	sent      map[uint32]time.Duration
	lat       []time.Duration // one per confirmed reading, in confirmation order
	end       time.Duration   // confirmations after end are not counted in inWindow; 0: all are
	inWindow  int
	last      time.Duration // when the latest confirmation arrived
	confirmed int
}

func newWindow(size int, origin time.Time, prefix string, end time.Duration) *window {
	w := &window{
		free: make(chan struct{}, size), origin: origin, prefix: prefix,
		sent: make(map[uint32]time.Duration, size), end: end,
	}
	for range size {
		w.free <- struct{}{}
	}
	return w
}

// acquire takes a slot, waiting until one is free; it gives up (false)
// when stop or dead is closed first.
func (w *window) acquire(stop, dead <-chan struct{}) bool {
	select {
	case <-w.free:
		return true
	default:
	}
	select {
	case <-w.free:
		return true
	case <-stop:
		return false
	case <-dead:
		return false
	}
}

// tryAcquire takes a slot if one is free now.
func (w *window) tryAcquire() bool {
	select {
	case <-w.free:
		return true
	default:
		return false
	}
}

// add records a reading sent on an acquired slot. It returns false, and
// records nothing, when key is still outstanding: the caller picks
// another key for the same slot.
func (w *window) add(key uint32, at time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, busy := w.sent[key]; busy {
		return false
	}
	w.sent[key] = at
	return true
}

// confirm records the confirmation, at now, of the reading under key and
// frees its slot. An unknown key (a duplicate, or a reading of an earlier
// run) changes nothing and returns false.
func (w *window) confirm(key uint32, now time.Duration) bool {
	w.mu.Lock()
	at, ok := w.sent[key]
	if ok {
		delete(w.sent, key)
		w.lat = append(w.lat, now-at)
		w.confirmed++
		if w.end == 0 || now <= w.end {
			w.inWindow++
		}
		w.last = max(w.last, now)
	}
	w.mu.Unlock()
	if ok {
		w.free <- struct{}{} // never blocks: a slot was taken for key
	}
	return ok
}

// confirmAt is confirm at a wall-clock (monotonic) time.
func (w *window) confirmAt(key uint32, t time.Time) { w.confirm(key, t.Sub(w.origin)) }

// outstanding is how many readings wait for their confirmation.
func (w *window) outstanding() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sent)
}

// windowStats is what a window recorded, copied out under its lock.
type windowStats struct {
	lat                 []time.Duration
	confirmed, inWindow int
	outstanding         int
	lastConfirmed       time.Duration
}

func (w *window) stats() windowStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return windowStats{
		lat: w.lat, confirmed: w.confirmed, inWindow: w.inWindow,
		outstanding: len(w.sent), lastConfirmed: w.last,
	}
}
