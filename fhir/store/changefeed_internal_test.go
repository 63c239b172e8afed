package store

import (
	"slices"
	"testing"
)

func TestSinceKeepsWhatASnapshotDidNotSeeCommitted(t *testing.T) {
	c := Change{Type: "Observation", IDs: []string{"old", "in-flight", "between", "after"}, xids: []uint64{90, 105, 107, 130}}
	tests := []struct {
		name, snapshot string
		want           []string
	}{
		{"no snapshot keeps everything", "", c.IDs},
		{"a snapshot 100:120:105 saw 90 and 107 committed", "100:120:105", []string{"in-flight", "after"}},
		{"a snapshot without transactions in flight", "100:100:", []string{"in-flight", "between", "after"}},
		{"a snapshot that does not parse keeps everything", "garbage", c.IDs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Since(tt.snapshot); !slices.Equal(got, tt.want) {
				t.Errorf("Since(%q) = %v, want %v", tt.snapshot, got, tt.want)
			}
		})
	}
}
