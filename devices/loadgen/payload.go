package loadgen

import (
	"bytes"
	"strconv"
	"time"
)

// seqDigits is the width of the sequence number in a reading id: ids of
// one run have one length, so readings (and their stored Observations)
// differ only in their digits.
const seqDigits = 9

// maxSeq is the largest sequence number a reading id can carry.
const maxSeq = 999_999_999

// AppendReading appends the compact JSON of reading seq of a run to b:
// id prefix + seq (zero-padded to nine digits), measured at, of one of five
// single-Observation types (weight, SpO2, heart rate, temperature, blood
// pressure without pulse) in turn, with plausible values. For example
//
//	{"id":"f-000000042","t":"2026-11-20T07:31:00Z","type":"weight","value":64.2,"unit":"kg"}
func AppendReading(b []byte, prefix string, seq int, at time.Time) []byte {
	b = append(b, `{"id":"`...)
	b = AppendReadingID(b, prefix, seq)
	b = append(b, `","t":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","type":"`...)
	switch seq % 5 {
	case 0:
		b = append(b, `weight","value":`...)
		b = strconv.AppendFloat(b, 60+float64(seq%400)/10, 'f', 1, 64)
		b = append(b, `,"unit":"kg"}`...)
	case 1:
		b = append(b, `spo2","value":`...)
		b = strconv.AppendInt(b, int64(94+seq%6), 10)
		b = append(b, `,"unit":"%"}`...)
	case 2:
		b = append(b, `heart-rate","value":`...)
		b = strconv.AppendInt(b, int64(55+seq%40), 10)
		b = append(b, `,"unit":"/min"}`...)
	case 3:
		b = append(b, `temperature","value":`...)
		b = strconv.AppendFloat(b, 36.1+float64(seq%15)/10, 'f', 1, 64)
		b = append(b, `,"unit":"Cel"}`...)
	default:
		b = append(b, `blood-pressure","systolic":`...)
		b = strconv.AppendInt(b, int64(110+seq%40), 10)
		b = append(b, `,"diastolic":`...)
		b = strconv.AppendInt(b, int64(70+seq%20), 10)
		b = append(b, `,"unit":"mmHg"}`...)
	}
	return b
}

// AppendReadingID appends the reading id of reading seq of a run: prefix
// and seq zero-padded to nine digits.
func AppendReadingID(b []byte, prefix string, seq int) []byte {
	b = append(b, prefix...)
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(seq), 10)
	for range seqDigits - len(d) {
		b = append(b, '0')
	}
	return append(b, d...)
}

// replyReadings calls fn with the sequence number of every reading of
// the run with prefix that a reply of vidda's acks topic reports stored:
// {"device":"…","stored":[{"reading":"<id>","observation":"…"},…]}.
// Reading ids are visible ASCII without quotes or backslashes (vidda
// refuses others), so a byte scan finds them without decoding the JSON.
func replyReadings(payload []byte, prefix string, fn func(seq int)) {
	const member = `"reading":"`
	for {
		i := bytes.Index(payload, []byte(member))
		if i < 0 {
			return
		}
		payload = payload[i+len(member):]
		j := bytes.IndexByte(payload, '"')
		if j < 0 {
			return
		}
		id := payload[:j]
		payload = payload[j+1:]
		digits, ok := bytes.CutPrefix(id, []byte(prefix))
		if !ok || len(digits) != seqDigits {
			continue
		}
		if seq, err := strconv.Atoi(string(digits)); err == nil {
			fn(seq)
		}
	}
}
