package ingest

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/vidda/vidda/devices"
)

type rejectedReply struct {
	Index   *int   `json:"index,omitempty"`
	Reading string `json:"reading,omitempty"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// outcome builds the replies of a committed message: its stored readings
// for the acks topic, its rejections for the errors topic.
func outcome(j *job, stored []Stored) Outcome {
	o := Outcome{Committed: true}
	var errs []byte
	if len(j.rejected) > 0 {
		list := make([]rejectedReply, len(j.rejected))
		for i, r := range j.rejected {
			list[i] = rejectedReply{Reading: r.ID, Reason: string(r.Reason), Message: r.Message}
			if r.Index != devices.WholePayload {
				idx := r.Index
				list[i].Index = &idx
			}
		}
		errs, _ = json.Marshal(map[string]any{"device": j.msg.DeviceID, "topic": j.msg.Topic, "rejected": list, "kept": "dead-letter"})
	}
	if len(stored) == 0 {
		o.Rejected = true
		o.Reply = errs
		return o
	}
	o.Reply = storedJSON(j.msg.DeviceID, j.readingIDs, stored)
	o.Errors = errs
	return o
}

// storedJSON is the reply of the acks topic,
//
//	{"device":"…","stored":[{"reading":"…","observation":"…","duplicate":true},…]}
//
// (reading and duplicate omitted when empty), byte for byte what
// encoding/json would write, without its reflection: every stored reading
// gets one.
func storedJSON(deviceID string, readingIDs []string, stored []Stored) []byte {
	b := make([]byte, 0, 32+len(deviceID)+len(stored)*(80+maxReadingIDLen(readingIDs)))
	b = appendJSONString(append(b, `{"device":`...), deviceID)
	b = append(b, `,"stored":[`...)
	for i, s := range stored {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if readingIDs[i] != "" {
			b = append(appendJSONString(append(b, `"reading":`...), readingIDs[i]), ',')
		}
		b = appendJSONString(append(b, `"observation":`...), s.ID)
		if s.Duplicate {
			b = append(b, `,"duplicate":true`...)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func maxReadingIDLen(ids []string) int {
	n := 0
	for _, id := range ids {
		n = max(n, len(id))
	}
	return n
}

// appendJSONString appends s as encoding/json does by default: HTML
// characters and U+2028/U+2029 escaped, invalid UTF-8 replaced.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // the rare case: let encoding/json escape
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
