package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestEveryFormatTypeAndRejectionThroughTheBroker publishes each payload
// format and reading type, and each kind of bad input, through the real
// broker and checks the reply topic, the reason, and the stored LOINC code.
func TestEveryFormatTypeAndRejectionThroughTheBroker(t *testing.T) {
	r := newRig(t, "FMT-1")
	now := time.Now()
	at := now.Add(-time.Hour).Format(time.RFC3339)
	compact := func(id, body string) string {
		return fmt.Sprintf(`{"id":%q,"t":%q,%s}`, id, at, body)
	}
	tests := []struct {
		name, kind, payload string
		reply               string // acks or errors
		want                string // a LOINC code in the stored Observation, or the rejection reason
	}{
		{"compact blood pressure", "readings", compact("c1", `"type":"blood-pressure","systolic":128,"diastolic":82,"pulse":64,"unit":"mmHg"`), "acks", "85354-9"},
		{"compact SpO2", "readings", compact("c2", `"type":"spo2","value":96,"unit":"%"`), "acks", "59408-5"},
		{"compact heart rate", "readings", compact("c3", `"type":"heart-rate","value":72,"unit":"/min"`), "acks", "8867-4"},
		{"compact weight", "readings", compact("c4", `"type":"weight","value":71.2,"unit":"kg"`), "acks", "29463-7"},
		{"compact temperature", "readings", compact("c5", `"type":"temperature","value":36.8,"unit":"Cel"`), "acks", "8310-5"},
		{"compact respiratory rate", "readings", compact("c6", `"type":"respiratory-rate","value":16,"unit":"/min"`), "acks", "9279-1"},
		{"compact glucose in mg/dL", "readings", compact("c7", `"type":"glucose","value":101,"unit":"mg/dL"`), "acks", "2339-0"},
		{"compact glucose in mmol/L", "readings", compact("c8", `"type":"glucose","value":5.6,"unit":"mmol/L"`), "acks", "15074-8"},
		{"SenML SpO2", "senml", fmt.Sprintf(`[{"bn":"oxi:","bt":%d,"bu":"%%"},{"n":"spo2","v":95}]`, now.Add(-2*time.Hour).Unix()), "acks", "59408-5"},
		{"SenML heart rate in beat/min", "senml", fmt.Sprintf(`[{"bn":"oxi:","bt":%d},{"n":"heart-rate","u":"beat/min","v":70}]`, now.Add(-3*time.Hour).Unix()), "acks", "8867-4"},
		{"a FHIR Observation coded in MDC", "fhir", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"urn:iso:std:iso:11073:10101","code":"188736"}]},"effectiveDateTime":%q,"valueQuantity":{"value":70.9,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, now.Add(-4*time.Hour).Format(time.RFC3339)), "acks", "29463-7"},
		{"malformed JSON", "readings", `{"id":"x1","t":`, "errors", "malformed"},
		{"an unknown type", "readings", compact("x2", `"type":"height","value":180,"unit":"cm"`), "errors", "unknown-type"},
		{"a wrong unit", "readings", compact("x3", `"type":"weight","value":160,"unit":"[lb_av]"`), "errors", "wrong-unit"},
		{"an impossible value", "readings", compact("x4", `"type":"spo2","value":101,"unit":"%"`), "errors", "impossible-value"},
		{"systolic below diastolic", "readings", compact("x5", `"type":"blood-pressure","systolic":70,"diastolic":90,"unit":"mmHg"`), "errors", "impossible-value"},
		{"a time in the future", "readings", fmt.Sprintf(`{"id":"x6","t":%q,"type":"weight","value":70,"unit":"kg"}`, now.Add(time.Hour).Format(time.RFC3339)), "errors", "future-time"},
		{"a time too long ago", "readings", fmt.Sprintf(`{"id":"x7","t":%q,"type":"weight","value":70,"unit":"kg"}`, now.AddDate(0, -3, 0).Format(time.RFC3339)), "errors", "too-old"},
		{"no time", "readings", `{"id":"x8","type":"weight","value":70,"unit":"kg"}`, "errors", "missing-time"},
		{"a FHIR payload about another patient", "fhir", fmt.Sprintf(`{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/demo-patient-2"},"code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"effectiveDateTime":%q,"valueQuantity":{"value":70.9,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, at), "errors", "patient-mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic, body := r.publish(t, tt.kind, tt.payload)
			if topic != tt.reply {
				t.Fatalf("reply on %s, want %s: %s", topic, tt.reply, body)
			}
			if tt.reply == "errors" {
				if !strings.Contains(body, `"reason":"`+tt.want+`"`) {
					t.Fatalf("rejection %s, want reason %s", body, tt.want)
				}
				return
			}
			var ack struct {
				Stored []struct {
					Observation string `json:"observation"`
				} `json:"stored"`
			}
			if err := json.Unmarshal([]byte(body), &ack); err != nil || len(ack.Stored) == 0 {
				t.Fatalf("ack %s: %v", body, err)
			}
			var obs map[string]any
			getJSON(t, r.base+"/fhir/Observation/"+ack.Stored[0].Observation, r.nurse, 200, &obs)
			raw, _ := json.Marshal(obs["code"])
			if !strings.Contains(string(raw), `"`+tt.want+`"`) || obs["subject"].(map[string]any)["reference"] != "Patient/demo-patient-1" {
				t.Errorf("stored code %s subject %v, want LOINC %s of demo-patient-1", raw, obs["subject"], tt.want)
			}
		})
	}
}
