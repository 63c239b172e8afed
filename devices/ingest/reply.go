package ingest

import (
	"encoding/json"

	"github.com/vidda/vidda/devices"
)

type storedReply struct {
	Reading     string `json:"reading,omitempty"`
	Observation string `json:"observation"`
	Duplicate   bool   `json:"duplicate,omitempty"`
}

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
	list := make([]storedReply, len(stored))
	for i, s := range stored {
		list[i] = storedReply{Reading: j.readingIDs[i], Observation: s.ID, Duplicate: s.Duplicate}
	}
	o.Reply, _ = json.Marshal(map[string]any{"device": j.msg.DeviceID, "stored": list})
	o.Errors = errs
	return o
}
