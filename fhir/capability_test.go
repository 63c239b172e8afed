package fhir

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func testCapabilities() Capabilities {
	crud := []string{"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type"}
	return Capabilities{
		Software: "Vidda", Version: "1.2.3", BaseURL: "https://vidda.example/fhir",
		Date: time.Date(2026, 11, 23, 10, 0, 0, 0, time.FixedZone("CET", 3600)),
		Resources: []ResourceCapability{
			{
				Type: "Patient", Interactions: crud, Versioning: "versioned-update", ConditionalCreate: true,
				ConditionalDelete: "not-supported", ReadHistory: true,
				SearchParams: []SearchParamCapability{
					{Name: "identifier", Type: "token"},
					{Name: "birthdate", Type: "date", Documentation: "eq, lt, gt, ge, le"},
				},
			},
			{
				Type: "Observation", Interactions: []string{"read", "create", "search-type"}, Versioning: "versioned-update",
				ConditionalDelete: "not-supported", ReadHistory: true,
				SearchParams: []SearchParamCapability{
					{Name: "patient", Type: "reference"},
					{Name: "code", Type: "token"},
					{Name: "date", Type: "date"},
				},
			},
		},
		SystemInteractions: []string{"transaction"},
		SecurityService:    "SMART-on-FHIR",
		CORS:               true,
		TokenURL:           "https://vidda.example/auth/token",
	}
}

func TestCapabilityStatementListsExactlyWhatIsGiven(t *testing.T) {
	c := testCapabilities()
	b, err := CapabilityStatement(c)
	if err != nil {
		t.Fatal(err)
	}
	var cs struct {
		ResourceType, Status, Date, Kind, FHIRVersion string
		Format                                        []string
		Software                                      struct{ Name, Version string }
		Implementation                                struct{ Description, URL string }
		Rest                                          []struct {
			Mode     string
			Security struct {
				CORS    bool
				Service []struct {
					Coding []struct{ System, Code string }
				}
				Extension []struct {
					URL       string
					Extension []struct{ URL, ValueURI string }
				}
			}
			Interaction []struct{ Code string }
			Resource    []struct {
				Type                           string
				Interaction                    []struct{ Code string }
				Versioning, ConditionalDelete  string
				ReadHistory, ConditionalCreate bool
				SearchParam                    []struct{ Name, Type, Documentation string }
			}
		}
	}
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || cs.Kind != "instance" || cs.Status != "active" ||
		!slices.Equal(cs.Format, []string{"json"}) || cs.Date != "2026-11-23T09:00:00Z" {
		t.Errorf("header = %+v", cs)
	}
	if cs.Software.Name != "Vidda" || cs.Software.Version != "1.2.3" || cs.Implementation.URL != c.BaseURL {
		t.Errorf("software/implementation = %+v %+v", cs.Software, cs.Implementation)
	}
	if len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" {
		t.Fatalf("rest = %+v", cs.Rest)
	}
	rest := cs.Rest[0]
	if !rest.Security.CORS || rest.Security.Service[0].Coding[0].Code != "SMART-on-FHIR" ||
		rest.Security.Extension[0].Extension[0].ValueURI != c.TokenURL {
		t.Errorf("security = %+v", rest.Security)
	}
	if len(rest.Interaction) != 1 || rest.Interaction[0].Code != "transaction" {
		t.Errorf("system interactions = %+v", rest.Interaction)
	}
	if len(rest.Resource) != len(c.Resources) {
		t.Fatalf("%d resources, want %d", len(rest.Resource), len(c.Resources))
	}
	for i, want := range c.Resources {
		got := rest.Resource[i]
		var codes []string
		for _, in := range got.Interaction {
			codes = append(codes, in.Code)
		}
		if got.Type != want.Type || !slices.Equal(codes, want.Interactions) || got.Versioning != want.Versioning ||
			got.ReadHistory != want.ReadHistory || got.ConditionalCreate != want.ConditionalCreate ||
			got.ConditionalDelete != want.ConditionalDelete {
			t.Errorf("resource %d = %+v, want %+v", i, got, want)
		}
		if len(got.SearchParam) != len(want.SearchParams) {
			t.Fatalf("%s: %d search params, want %d", want.Type, len(got.SearchParam), len(want.SearchParams))
		}
		for j, p := range want.SearchParams {
			if got.SearchParam[j] != p {
				t.Errorf("%s search param %d = %+v, want %+v", want.Type, j, got.SearchParam[j], p)
			}
		}
	}
}

func TestCapabilityStatementRefusesWhatR4DoesNotDefine(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Capabilities)
	}{
		{"no software name", func(c *Capabilities) { c.Software = "" }},
		{"no base URL", func(c *Capabilities) { c.BaseURL = "" }},
		{"no date", func(c *Capabilities) { c.Date = time.Time{} }},
		{"an unknown interaction", func(c *Capabilities) { c.Resources[0].Interactions = []string{"read", "patch-all"} }},
		{"an interaction listed twice", func(c *Capabilities) { c.Resources[0].Interactions = []string{"read", "read"} }},
		{"an unknown versioning", func(c *Capabilities) { c.Resources[0].Versioning = "git" }},
		{"an unknown conditional delete", func(c *Capabilities) { c.Resources[0].ConditionalDelete = "all" }},
		{"a resource type listed twice", func(c *Capabilities) { c.Resources[1].Type = "Patient" }},
		{"a resource type that is not a type name", func(c *Capabilities) { c.Resources[1].Type = "observation" }},
		{"a search parameter of an unknown type", func(c *Capabilities) { c.Resources[0].SearchParams[0].Type = "fuzzy" }},
		{"a search parameter listed twice", func(c *Capabilities) {
			c.Resources[0].SearchParams = append(c.Resources[0].SearchParams, SearchParamCapability{Name: "identifier", Type: "token"})
		}},
		{"a search parameter without a name", func(c *Capabilities) { c.Resources[0].SearchParams[0].Name = "" }},
		{"an unknown system interaction", func(c *Capabilities) { c.SystemInteractions = []string{"graphql"} }},
		{"an unknown security service", func(c *Capabilities) { c.SecurityService = "magic" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testCapabilities()
			tt.change(&c)
			if b, err := CapabilityStatement(c); err == nil {
				t.Errorf("CapabilityStatement = %s, want an error", b)
			}
		})
	}
}

func TestCapabilityStatementWithoutSecurityOrResources(t *testing.T) {
	b, err := CapabilityStatement(Capabilities{Software: "Vidda", BaseURL: "http://localhost/fhir", Date: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var cs map[string]any
	if err := json.Unmarshal(b, &cs); err != nil {
		t.Fatal(err)
	}
	rest, _ := cs["rest"].([]any)
	first, _ := rest[0].(map[string]any)
	if _, ok := first["security"]; ok {
		t.Errorf("security published without any security set: %s", b)
	}
	if _, ok := first["resource"]; ok {
		t.Errorf("resource published as an empty list (FHIR JSON has no empty arrays): %s", b)
	}
}
