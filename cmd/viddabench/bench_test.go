package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestPercentileIsNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%g = %s, want %s", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %s, want 0", got)
	}
}

func TestBodiesAreValidObservationsOfAboutOneKB(t *testing.T) {
	r := newReading(3, 7)
	for name, c := range map[string]struct {
		body   []byte
		withID bool
	}{
		"create": {r.createBody(), false},
		"stored": {r.storedBody(newUUID(), time.Now()), true},
	} {
		var m map[string]any
		if err := json.Unmarshal(c.body, &m); err != nil {
			t.Fatalf("%s body is not JSON: %v\n%s", name, err, c.body)
		}
		if _, hasID := m["id"]; m["resourceType"] != "Observation" || hasID != c.withID || len(c.body) < 900 || len(c.body) > 1800 {
			t.Errorf("%s body: resourceType %v, id present %v, %d bytes", name, m["resourceType"], hasID, len(c.body))
		}
	}
}

func TestIDFromLocationTakesTheLogicalID(t *testing.T) {
	id, err := idFromLocation("http://127.0.0.1:1/fhir/Observation/abc-1/_history/1")
	if err != nil || id != "abc-1" {
		t.Fatalf("got %q, %v", id, err)
	}
	if _, err := idFromLocation("http://127.0.0.1:1/fhir/Patient/x"); err == nil {
		t.Fatal("accepted a Location that is not an Observation version")
	}
}

func TestBundleLinksReadsTheLinksWhereverTheyAre(t *testing.T) {
	for name, body := range map[string]string{
		"links first": `{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"s"},{"relation":"next","url":"n"}],"entry":[{"resource":{"id":"a"}}]}`,
		"links last":  `{"resourceType":"Bundle","entry":[{"resource":{"id":"a"}}],"total":1,"link":[{"relation":"self","url":"s"},{"relation":"next","url":"n"}]}`,
	} {
		links, err := bundleLinks([]byte(body))
		if err != nil || len(links) != 2 || links[1] != (bundleLink{Relation: "next", URL: "n"}) {
			t.Errorf("%s: %v, %v", name, links, err)
		}
	}
	if links, err := bundleLinks([]byte(`{"resourceType":"Bundle"}`)); err != nil || links != nil {
		t.Errorf("no links: %v, %v", links, err)
	}
	if _, err := bundleLinks([]byte(`[]`)); err == nil {
		t.Error("accepted an array")
	}
}
