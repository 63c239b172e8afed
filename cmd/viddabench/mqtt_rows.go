package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/devices/loadgen"
	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// rowMaker turns a device payload into the observation row vidda stores
// for it, through the same code as devices/ingest and fhir/store (decode,
// map, then store.IngestRows for id, meta and search columns): the
// baselines write exactly what vidda writes.
type rowMaker struct {
	st   *store.Store
	cols []string // the observation columns a row fills, in order
}

func newRowMaker() (*rowMaker, error) {
	// IngestRows needs no database: no pool.
	st := store.New(nil, fhir.NewRegistry(), search.NewRegistry(time.UTC), store.DefaultConfig(), slog.New(slog.DiscardHandler))
	cols, _, _, err := st.IngestRows(nil, time.Now())
	if err != nil {
		return nil, fmt.Errorf("row maker: %w", err)
	}
	return &rowMaker{st: st, cols: cols}, nil
}

// errNotOneObservation means a payload did not map to exactly one
// Observation (the load generator's readings all do).
var errNotOneObservation = errors.New("payload is not one reading of one observation")

// row maps one compact-JSON reading of deviceID (bound to patientID) and
// returns the row, stored under a new id at time at.
func (m *rowMaker) row(payload []byte, deviceID, patientID string, at time.Time) ([]any, error) {
	readings, err := devices.DecodeCompact(payload)
	if err != nil {
		return nil, fmt.Errorf("decode reading: %w", err)
	}
	if len(readings) != 1 {
		return nil, errNotOneObservation
	}
	obs, err := readings[0].Observations(deviceID, patientID)
	if err != nil {
		return nil, fmt.Errorf("map reading: %w", err)
	}
	if len(obs) != 1 {
		return nil, errNotOneObservation
	}
	res := &fhir.Resource{Type: "Observation", Model: obs[0].Model, Raw: obs[0].JSON}
	cols, rows, _, err := m.st.IngestRows([]store.IngestObservation{{Key: obs[0].Key, Resource: res}}, at)
	if err != nil {
		return nil, err
	}
	if len(cols) != len(m.cols) {
		return nil, errors.New("row maker: the store's columns changed")
	}
	return rows[0], nil
}

// rowTemplate is a row made by rowMaker once, which copies of it vary in
// only the parts that must be unique: the id and the reading id (in the
// content, the ingest key and the identifier tokens). It lets the COPY
// ceiling write vidda's rows without paying vidda's per-row Go work.
type rowTemplate struct {
	row       []any
	content   []byte
	idAt      int   // where the id is in content
	digitsAt  []int // where the reading id's digits are in content
	readingID string
}

// newRowTemplate makes the template of reading seq of run prefix.
func newRowTemplate(m *rowMaker, h home, prefix string, seq int, at time.Time) (*rowTemplate, error) {
	payload := loadgen.AppendReading(nil, prefix, seq, at)
	row, err := m.row(payload, h.DeviceID, h.patient, at)
	if err != nil {
		return nil, err
	}
	t := &rowTemplate{row: row, content: row[4].([]byte), readingID: string(loadgen.AppendReadingID(nil, prefix, seq))}
	t.idAt = bytes.Index(t.content, []byte(row[0].(string)))
	for off := 0; ; {
		i := bytes.Index(t.content[off:], []byte(t.readingID))
		if i < 0 {
			break
		}
		t.digitsAt = append(t.digitsAt, off+i+len(prefix))
		off += i + len(t.readingID)
	}
	if t.idAt < 0 || len(t.digitsAt) == 0 {
		return nil, errors.New("row template: id or reading id not found in the content")
	}
	return t, nil
}

// copyOf is the row of reading seq (same type, so the same length of
// reading id) under a new id.
func (t *rowTemplate) copyOf(prefix string, seq int) []any {
	id := newUUID()
	readingID := string(loadgen.AppendReadingID(make([]byte, 0, len(t.readingID)), prefix, seq))
	digits := readingID[len(prefix):]
	content := bytes.Clone(t.content)
	copy(content[t.idAt:], id)
	for _, at := range t.digitsAt {
		copy(content[at:], digits)
	}
	row := make([]any, len(t.row))
	copy(row, t.row)
	row[0], row[4], row[5] = id, content, strings.Replace(t.row[5].(string), t.readingID, readingID, 1)
	for i := 6; i < len(row); i++ {
		tokens, ok := row[i].([]string)
		if !ok || !containsPart(tokens, t.readingID) {
			continue
		}
		swapped := make([]string, len(tokens))
		for j, s := range tokens {
			swapped[j] = strings.Replace(s, t.readingID, readingID, 1)
		}
		row[i] = swapped
	}
	return row
}

func containsPart(list []string, part string) bool {
	for _, s := range list {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}
