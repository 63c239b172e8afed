package sfu

import (
	"sync"

	"github.com/vidda/vidda/signaling"
)

// eventQueue delivers one participant's events to its send function in
// order, from one goroutine, so pion's callbacks and the forwarding path
// never wait for the visit layer.
type eventQueue struct {
	send func(signaling.MediaEvent)

	mu      sync.Mutex
	wake    chan struct{}
	pending []signaling.MediaEvent
	closed  bool
	done    chan struct{}
}

func newEventQueue(send func(signaling.MediaEvent)) *eventQueue {
	q := &eventQueue{send: send, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go q.run()
	return q
}

// push queues e; after close it is dropped.
func (q *eventQueue) push(e signaling.MediaEvent) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.pending = append(q.pending, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		batch, closed := q.pending, q.closed
		q.pending = nil
		q.mu.Unlock()
		for _, e := range batch {
			q.send(e)
		}
		if closed && len(batch) == 0 {
			return
		}
		if !closed {
			<-q.wake
		}
	}
}

// close delivers what is queued, then stops the goroutine and waits for
// it.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}
