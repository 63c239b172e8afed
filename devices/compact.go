package devices

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// compactItem is one compact JSON reading. Pointers tell absent from zero.
type compactItem struct {
	ID        *string  `json:"id"`
	T         *string  `json:"t"`
	Type      *string  `json:"type"`
	Unit      *string  `json:"unit"`
	Value     *float64 `json:"value"`
	Systolic  *float64 `json:"systolic"`
	Diastolic *float64 `json:"diastolic"`
	Mean      *float64 `json:"mean"`
	Pulse     *float64 `json:"pulse"`
}

// DecodeCompact decodes the compact JSON of vidda/v1/devices/{id}/readings:
// one object or an array of them,
//
//	{"id":"r-1","t":"2026-11-20T07:31:00+01:00","type":"blood-pressure",
//	 "systolic":142,"diastolic":91,"pulse":71,"unit":"mmHg"}
//	{"id":"r-2","t":"2026-11-20T07:32:00+01:00","type":"spo2","value":96,"unit":"%"}
//
// "id" is optional, "t" (RFC 3339 with offset) and "type" are required,
// "unit" names the unit of the values; the pulse of a blood pressure is
// per minute whatever "unit" says. Blood pressure may also carry "mean".
// Unknown members are refused rather than dropped.
//
// A payload that is not JSON, or neither an object nor an array, gives a
// *RejectError and no readings. Otherwise every item is decoded and
// validated (Reading.Validate) on its own: the readings that pass are
// returned, with a RejectErrors for the others (nil error when all pass).
func DecodeCompact(payload []byte) ([]Reading, error) { return decodeCompact(payload, nil) }

// decodeCompact is DecodeCompact with the code table, or nil to build the
// row of each item.
func decodeCompact(payload []byte, table []ReadingType) ([]Reading, error) {
	if b := bytes.TrimLeft(payload, " \t\r\n"); len(b) > 0 && b[0] == '{' {
		// One reading, the usual message: no list of items.
		r, rej := decodeCompactItem(payload, 0, table)
		if rej != nil {
			return result([]Reading{}, RejectErrors{rej})
		}
		return []Reading{r}, nil
	}
	items, err := compactItems(payload)
	if err != nil {
		return nil, err
	}
	readings := make([]Reading, 0, len(items))
	var rejected RejectErrors
	for i, raw := range items {
		r, rej := decodeCompactItem(raw, i, table)
		if rej != nil {
			rejected = append(rejected, rej)
			continue
		}
		readings = append(readings, r)
	}
	return result(readings, rejected)
}

// compactItems splits a payload into the raw items.
func compactItems(payload []byte) ([][]byte, error) {
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, reject(ReasonMalformed, WholePayload, "", "payload is empty")
	}
	switch trimmed[0] {
	case '{':
		return [][]byte{payload}, nil
	case '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(payload, &raws); err != nil {
			return nil, &RejectError{
				Reason: ReasonMalformed, Index: WholePayload,
				Message: "payload is not a JSON array of readings: " + jsonProblem(err), Err: err,
			}
		}
		items := make([][]byte, len(raws))
		for i, r := range raws {
			items[i] = r
		}
		return items, nil
	}
	return nil, reject(ReasonMalformed, WholePayload, "", "payload must be a JSON object or an array of them")
}

// decodeCompactItem decodes and validates one item, finding its type in
// table (nil: building the row).
func decodeCompactItem(raw []byte, index int, table []ReadingType) (Reading, *RejectError) {
	var it compactFields
	if !it.scan(raw) {
		if rej := it.decode(raw, index); rej != nil {
			return Reading{}, rej
		}
	}
	r := Reading{Index: index}
	if it.present(memberID) {
		if !validReadingID(it.strs[memberID]) {
			// Not echoed in the rejection: it may be anything.
			return Reading{}, reject(ReasonMalformed, index, "",
				"id must be 1 to %d visible ASCII characters without '/'", maxReadingID)
		}
		r.ID = it.strs[memberID]
	}
	if !it.present(memberType) {
		return Reading{}, reject(ReasonMalformed, index, r.ID, "type is missing")
	}
	r.Type = it.strs[memberType]
	t, ok := findRow(table, r.Type)
	if !ok {
		return Reading{}, r.validate(nil)
	}
	if !it.present(memberT) || it.strs[memberT] == "" {
		return Reading{}, reject(ReasonMissingTime, index, r.ID, "t (the measurement time) is missing")
	}
	at, err := time.Parse(time.RFC3339, it.strs[memberT])
	if err != nil {
		return Reading{}, reject(ReasonMalformed, index, r.ID, "t must be an RFC 3339 date-time with offset")
	}
	r.At = at
	unit := it.strs[memberUnit] // "" when absent
	r.Values = make(map[string]Quantity, 4)
	members := compactMembers()
	for k := firstNumber; k < len(members); k++ {
		if !it.present(k) {
			continue
		}
		name := members[k]
		q := Quantity{Value: it.nums[k-firstNumber], Unit: unit}
		if f, ok := t.Field(name); ok {
			if u, ok := f.Unit(unit); ok {
				q.Unit = u.UCUM
			} else if f.Split != "" && len(f.Units) == 1 {
				// The one unit names the pressures; the pulse has its own.
				q.Unit = f.Units[0].UCUM
			}
		}
		r.Values[name] = q
	}
	if rej := r.validate(t); rej != nil {
		return Reading{}, rej
	}
	return r, nil
}

// findRow finds the row named name in table, or builds it when table is
// nil.
func findRow(table []ReadingType, name string) (*ReadingType, bool) {
	if table == nil {
		return lookup(name)
	}
	return findType(table, name)
}

// decode is the reference decoding of a compact item with encoding/json,
// for what scan leaves to it: it fills it or gives the rejection.
func (it *compactFields) decode(raw []byte, index int) *RejectError {
	var item compactItem
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&item); err != nil {
		return &RejectError{Reason: ReasonMalformed, Index: index, Message: jsonProblem(err), Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return reject(ReasonMalformed, index, "", "data after the reading object")
	}
	*it = compactFields{}
	for k, v := range [...]*string{item.ID, item.T, item.Type, item.Unit} {
		if v != nil {
			it.strs[k], it.has = *v, it.has|1<<k
		}
	}
	for i, v := range [...]*float64{item.Value, item.Systolic, item.Diastolic, item.Mean, item.Pulse} {
		if v != nil {
			it.nums[i], it.has = *v, it.has|1<<(firstNumber+i)
		}
	}
	return nil
}

// jsonProblem describes a decoding error without quoting values.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && strings.HasPrefix(typeErr.Value, "number "):
		return fmt.Sprintf("%s is out of range", typeErr.Field)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("%s must not be a JSON %s", typeErr.Field, typeErr.Value)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("expected an object, found a JSON %s", typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "JSON ends too early"
	}
	// "json: unknown field \"x\"", or a number out of range.
	return strings.TrimPrefix(err.Error(), "json: ")
}
