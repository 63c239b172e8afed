package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/devices/broker"
	"github.com/vidda/vidda/devices/ingest"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/store"
	"github.com/vidda/vidda/internal/httpapi"
)

// This file connects the device path: broker → ingest pipeline → store.
// Each side declares the small interface it needs; these adapters are the
// only place that knows both.

// ingestSink writes pipeline batches with the FHIR store: rows are
// prepared (id, stored JSON, search values) when they are submitted, and a
// commit only writes them.
type ingestSink struct{ in *store.Ingester }

func newIngestSink(st *store.Store) (ingestSink, error) {
	in, err := st.NewIngester()
	if err != nil {
		return ingestSink{}, fmt.Errorf("ingest: %w", err)
	}
	return ingestSink{in}, nil
}

func (s ingestSink) Prepare(r *ingest.Row) error {
	p, err := s.in.Prepare(store.IngestObservation{Key: r.Key, Resource: r.Resource})
	if err != nil {
		return err
	}
	r.Prepared = p
	return nil
}

func (s ingestSink) WriteBatch(ctx context.Context, rows []ingest.Row, dead []ingest.DeadLetter) ([]ingest.Stored, error) {
	readings := make([]store.PreparedReading, len(rows))
	for i, r := range rows {
		p, ok := r.Prepared.(store.PreparedReading)
		if !ok {
			return nil, fmt.Errorf("ingest: row %s was not prepared by this sink", r.Key)
		}
		readings[i] = p
	}
	var letters []store.DeadLetter
	if len(dead) > 0 {
		letters = make([]store.DeadLetter, len(dead))
		for i, d := range dead {
			letters[i] = store.DeadLetter{ReceivedAt: d.ReceivedAt, DeviceID: d.DeviceID, Topic: d.Topic, Payload: d.Payload, Reason: d.Reason, Detail: d.Detail}
		}
	}
	res, err := s.in.Write(ctx, readings, letters)
	if err != nil {
		return nil, err
	}
	out := make([]ingest.Stored, len(res))
	for i, r := range res {
		out[i] = ingest.Stored{Key: r.Key, ID: r.ID, Duplicate: r.Duplicate}
	}
	return out, nil
}

// ingestBindings looks devices up in the FHIR store.
type ingestBindings struct{ st *store.Store }

func (b ingestBindings) DeviceBinding(ctx context.Context, deviceID string) (ingest.Binding, error) {
	db, err := b.st.DeviceBinding(ctx, deviceID)
	if errors.Is(err, fhir.ErrNotFound) {
		return ingest.Binding{}, fmt.Errorf("device %s: %w", deviceID, ingest.ErrUnknownDevice)
	}
	if err != nil {
		return ingest.Binding{}, err
	}
	out := ingest.Binding{PatientID: db.PatientID, Active: db.Active}
	for _, id := range db.PatientIdentifiers {
		system, value, _ := strings.Cut(id, "|")
		out.PatientIdentifiers = append(out.PatientIdentifiers, devices.Identifier{System: system, Value: value})
	}
	return out, nil
}

// brokerHandler feeds the embedded broker's publishes into the pipeline;
// the device's PUBACK is written when the pipeline has committed.
type brokerHandler struct {
	pipe *ingest.Pipeline
}

func (h brokerHandler) Handle(ctx context.Context, m broker.Message, ack func(broker.Result)) {
	msg := ingest.Message{DeviceID: m.DeviceID, Kind: m.Kind, Topic: m.Topic, Payload: m.Payload, Received: m.Received}
	err := h.pipe.Submit(ctx, msg, func(o ingest.Outcome) {
		if !o.Committed {
			return // not durable: no PUBACK, the device sends it again
		}
		r := broker.Result{Rejected: o.Rejected, Reply: o.Reply, Errors: o.Errors}
		if o.Rejected {
			r.ReasonCode = broker.ReasonPayloadFormatInvalid
		}
		ack(r)
	})
	if err != nil {
		// Shutting down: the message is neither stored nor acknowledged.
		return
	}
}

// deviceInput is where device messages come from: the embedded broker or
// the consumer of an external one.
type deviceInput interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Addr() string
	// Ping fails while devices cannot reach vidda: the external broker's
	// connection is down, or the embedded broker does not listen.
	Ping(ctx context.Context) error
}

// deviceSource picks the embedded broker, or the consumer of the broker at
// VIDDA_MQTT_URL.
func deviceSource(cfg serveConfig, external bool, pipe *ingest.Pipeline, creds broker.Credentials, log *slog.Logger) (deviceInput, error) {
	if external {
		return externalInput{ingest.NewConsumer(cfg.consumer, pipe, log), cfg.consumer.URL}, nil
	}
	mq, err := broker.New(cfg.mqtt, creds, brokerHandler{pipe}, log)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return mq, nil
}

// externalInput adapts the consumer: it is ready once started.
type externalInput struct {
	*ingest.Consumer
	url string
}

func (e externalInput) Ready() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func (e externalInput) Addr() string {
	if u, err := url.Parse(e.url); err == nil {
		return u.Host
	}
	return ""
}

// brokerAccount is vidda's own account on the external broker, from the
// user info of VIDDA_MQTT_URL.
func brokerAccount(mqttURL string) httpapi.BrokerAccount {
	u, err := url.Parse(mqttURL)
	if err != nil || u.User == nil {
		return httpapi.BrokerAccount{}
	}
	p, _ := u.User.Password()
	return httpapi.BrokerAccount{Username: u.User.Username(), Password: p}
}

func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "vidda"
	}
	return "vidda-" + host
}
