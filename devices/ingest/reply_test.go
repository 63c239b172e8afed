package ingest

import (
	"encoding/json"
	"testing"
)

func TestStoredRepliesAreWhatEncodingJSONWrites(t *testing.T) {
	type storedReply struct {
		Reading     string `json:"reading,omitempty"`
		Observation string `json:"observation"`
		Duplicate   bool   `json:"duplicate,omitempty"`
	}
	for _, ids := range [][]string{
		{"r-1"},
		{""},
		{"r-1", "", `q"<&>\x`, "\u2028", "ä", "\xff"},
		{},
	} {
		stored := make([]Stored, len(ids))
		list := make([]storedReply, len(ids))
		for i, id := range ids {
			stored[i] = Stored{ID: "0190f7c4-" + id, Duplicate: i%2 == 1}
			list[i] = storedReply{Reading: id, Observation: stored[i].ID, Duplicate: stored[i].Duplicate}
		}
		want, err := json.Marshal(map[string]any{"device": "dev-1.a", "stored": list})
		if err != nil {
			t.Fatal(err)
		}
		if got := storedJSON("dev-1.a", ids, stored); string(got) != string(want) {
			t.Errorf("reading ids %q: got\n%s\nwant\n%s", ids, got, want)
		}
	}
}
