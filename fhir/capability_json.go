package fhir

// The wire shape of the CapabilityStatement (R4 capabilitystatement.html).
// The server writes it itself, so plain structs are fine: there is no client
// content to lose.

type capabilityJSON struct {
	ResourceType   string              `json:"resourceType"`
	Status         string              `json:"status"`
	Date           string              `json:"date"`
	Kind           string              `json:"kind"`
	Software       *softwareJSON       `json:"software,omitempty"`
	Implementation *implementationJSON `json:"implementation,omitempty"`
	Instantiates   []string            `json:"instantiates,omitempty"`
	FHIRVersion    string              `json:"fhirVersion"`
	Format         []string            `json:"format"`
	Rest           []restJSON          `json:"rest"`
}

type softwareJSON struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

type implementationJSON struct {
	Description string `json:"description"`
	URL         string `json:"url,omitempty"`
}

type restJSON struct {
	Mode        string          `json:"mode"`
	Security    *securityJSON   `json:"security,omitempty"`
	Resource    []resourceJSON  `json:"resource,omitempty"`
	Interaction []codeJSON      `json:"interaction,omitempty"`
	Operation   []operationJSON `json:"operation,omitempty"`
}

type securityJSON struct {
	Extension   []extensionJSON `json:"extension,omitempty"`
	CORS        bool            `json:"cors,omitempty"`
	Service     []conceptJSON   `json:"service,omitempty"`
	Description string          `json:"description,omitempty"`
}

type extensionJSON struct {
	URL       string          `json:"url"`
	Extension []extensionJSON `json:"extension,omitempty"`
	ValueURI  string          `json:"valueUri,omitempty"`
}

type conceptJSON struct {
	Coding []codingJSON `json:"coding"`
	Text   string       `json:"text,omitempty"`
}

type codingJSON struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type resourceJSON struct {
	Type              string            `json:"type"`
	Interaction       []codeJSON        `json:"interaction,omitempty"`
	Versioning        string            `json:"versioning,omitempty"`
	ReadHistory       bool              `json:"readHistory"`
	ConditionalCreate bool              `json:"conditionalCreate"`
	ConditionalDelete string            `json:"conditionalDelete,omitempty"`
	SearchParam       []searchParamJSON `json:"searchParam,omitempty"`
	Operation         []operationJSON   `json:"operation,omitempty"`
}

type operationJSON struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

type codeJSON struct {
	Code string `json:"code"`
}

type searchParamJSON struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}
