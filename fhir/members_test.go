package fhir

import (
	"encoding/json"
	"testing"
)

func TestWithMembersSetsTheServersElementsAndKeepsTheRest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		set  []Member
		want string
	}{
		{
			name: "an existing member keeps its place and gets the new value",
			in:   `{"resourceType":"Subscription","status":"requested","reason":"r","n":1.50}`,
			set:  []Member{StringMember("status", "active")},
			want: `{"resourceType":"Subscription","status":"active","reason":"r","n":1.50}`,
		},
		{
			name: "a missing member is added at the end",
			in:   `{"resourceType":"Subscription", "status" : "active"}`,
			set:  []Member{StringMember("error", `503 "unavailable"`)},
			want: `{"resourceType":"Subscription","status":"active","error":"503 \"unavailable\""}`,
		},
		{
			name: "a nil value removes the member and its primitive extension",
			in:   `{"resourceType":"Subscription","error":"x","_error":{"id":"e"},"status":"error"}`,
			set:  []Member{{Name: "error"}, StringMember("status", "active")},
			want: `{"resourceType":"Subscription","status":"active"}`,
		},
		{
			name: "removing a member that is not there changes nothing",
			in:   `{"resourceType":"Subscription","status":"off"}`,
			set:  []Member{{Name: "error"}},
			want: `{"resourceType":"Subscription","status":"off"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := WithMembers([]byte(tt.in), tt.set...)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestWithMembersRefusesWhatIsNotAnObjectOrNotJSON(t *testing.T) {
	if _, err := WithMembers([]byte(`[1]`), StringMember("a", "b")); err == nil {
		t.Error("an array was accepted")
	}
	if _, err := WithMembers([]byte(`{"a":1}`), Member{Name: "b", Value: json.RawMessage(`{`)}); err == nil {
		t.Error("an invalid value was accepted")
	}
}
