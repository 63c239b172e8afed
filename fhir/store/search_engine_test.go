package store_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/vidda/vidda/fhir/search"
	"github.com/vidda/vidda/fhir/store"
)

// ids returns the ids of a page's matches, in order.
func ids(p *store.Page) []string {
	out := make([]string, len(p.Entries))
	for i, e := range p.Entries {
		out[i] = e.ID
	}
	return out
}

func (f *fixture) put(t *testing.T, typ, id, body string) {
	t.Helper()
	if _, _, err := f.st.Update(context.Background(), f.parse(t, typ, body), id, 0, store.Access{}); err != nil {
		t.Fatalf("put %s/%s: %v", typ, id, err)
	}
}

func (f *fixture) searchCursor(t *testing.T, typ, query, cursor string) *store.Page {
	t.Helper()
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	v.Set("_cursor", cursor)
	q, err := f.params.Parse(typ, v, true)
	if err != nil {
		t.Fatal(err)
	}
	page, err := f.st.Search(context.Background(), q, store.Access{})
	if err != nil {
		t.Fatalf("search %s?%s: %v", typ, query, err)
	}
	return page
}

func TestStringTokenAndDateParametersOfPatients(t *testing.T) {
	f := newStore(t)
	f.put(t, "Patient", "ase", `{"resourceType":"Patient","id":"ase","active":true,"gender":"female","birthDate":"1948-03-02",
		"name":[{"family":"Åsen","given":["Kari","Marie"]}],"generalPractitioner":[{"reference":"Practitioner/gp1"}]}`)
	f.put(t, "Patient", "bjorn", `{"resourceType":"Patient","id":"bjorn","active":false,"gender":"male","birthDate":"1951",
		"name":[{"family":"Bjørnstad","given":["Ola"]}]}`)
	f.put(t, "Patient", "ola", `{"resourceType":"Patient","id":"ola","gender":"male","birthDate":"1951-11-30",
		"name":[{"text":"Ola Nordmann","family":"Nordmann","given":["Ola"]}]}`)
	tests := []struct {
		name, query string
		want        []string
	}{
		{"a family name starts with the value, case and accents aside", "family=asen", []string{"ase"}},
		{"a stroked letter is found without its stroke", "family=bjorn", []string{"bjorn"}},
		{"name matches any part of the name", "name=ola", []string{"bjorn", "ola"}},
		{"name does not match the middle of a part by default", "name=stad", nil},
		{":contains matches the middle", "name:contains=STAD", []string{"bjorn"}},
		{":exact matches the value as written", "family:exact=Åsen", []string{"ase"}},
		{":exact is case-sensitive", "family:exact=åsen", nil},
		{"given names are each indexed", "given=marie", []string{"ase"}},
		{"OR with a comma", "family=asen,nord", []string{"ase", "ola"}},
		{"a gender code", "gender=male", []string{"bjorn", "ola"}},
		{"a gender with its system", "gender=http://hl7.org/fhir/administrative-gender|female", []string{"ase"}},
		{":not excludes a code", "gender:not=male", []string{"ase"}},
		{"a boolean token", "active=true", []string{"ase"}},
		{":missing=true finds resources without the element", "active:missing=true", []string{"ola"}},
		{":missing=false finds resources with it", "general-practitioner:missing=false", []string{"ase"}},
		{"a birth year covers every date in it", "birthdate=1951", []string{"bjorn", "ola"}},
		{"a birth day within a year-only birthdate does not equal it", "birthdate=1951-11-30", []string{"ola"}},
		{"ge on a partial date", "birthdate=ge1951-06", []string{"bjorn", "ola"}},
		{"sa: starts after the value ends", "birthdate=sa1950", []string{"bjorn", "ola"}},
		{"eb: ends before the value starts", "birthdate=eb1950", []string{"ase"}},
		{"a reference by type and id", "general-practitioner=Practitioner/gp1", []string{"ase"}},
		{"a bare id matches any target type", "general-practitioner=gp1", []string{"ase"}},
		{"a :Type modifier names the target", "general-practitioner:Organization=gp1", nil},
		{"_id with several ids", "_id=ola,ase", []string{"ase", "ola"}},
		{"repeated parameters are AND-ed", "gender=male&given=ola&family=nord", []string{"ola"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(f.search(t, "Patient", tt.query+"&_sort=_id", store.Access{}))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Patient?%s = %v, want %v", tt.query, got, tt.want)
			}
		})
	}
}

func quantityObs(id, code, value, unit string, comps ...string) string {
	body := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final",
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/p1"},
		"effectiveDateTime":"2026-11-20T08:00:00+01:00"`, id, code)
	if value != "" {
		body += fmt.Sprintf(`,"valueQuantity":{"value":%s,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}`, value, unit, unit)
	}
	if len(comps) > 0 {
		body += `,"component":[`
		for i, c := range comps {
			if i > 0 {
				body += ","
			}
			body += fmt.Sprintf(`{"code":{"coding":[{"system":"http://loinc.org","code":%q}]},"valueQuantity":{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}`, c)
		}
		body += "]"
	}
	return body + "}"
}

func TestQuantityAndComponentParametersOfObservations(t *testing.T) {
	f := newStore(t)
	f.put(t, "Observation", "w70", quantityObs("w70", "29463-7", "70.0", "kg"))
	f.put(t, "Observation", "w100", quantityObs("w100", "29463-7", "100", "kg"))
	f.put(t, "Observation", "g5", quantityObs("g5", "15074-8", "5.4", "mmol/L"))
	f.put(t, "Observation", "bp", quantityObs("bp", "85354-9", "", "", "8480-6", "8462-4"))
	tests := []struct {
		name, query string
		want        []string
	}{
		{"eq uses the search value's precision: 100 is [99.5, 100.5)", "value-quantity=100", []string{"w100"}},
		{"more digits narrow the range", "value-quantity=100.4", nil},
		{"70 matches 70.0", "value-quantity=70", []string{"w70"}},
		{"70.01 does not match 70.0", "value-quantity=70.01", nil},
		{"gt", "value-quantity=gt70", []string{"w100"}},
		{"ge", "value-quantity=ge70", []string{"w100", "w70"}},
		{"lt with a unit code", "value-quantity=lt80|http://unitsofmeasure.org|kg", []string{"w70"}},
		{"a unit code without its system", "value-quantity=lt80||mmol/L", []string{"g5"}},
		{"a unit that does not match", "value-quantity=lt80||mg/dL", nil},
		{"ap is within 10 %", "value-quantity=ap95", []string{"w100"}},
		{"ne", "value-quantity=ne70", []string{"g5", "w100"}},
		{"an exponent keeps its significant figures: 1.00e2 is [99.5, 100.5)", "value-quantity=1.00e2", []string{"w100"}},
		{"one significant figure: 1e2 is [50, 150)", "value-quantity=1e2", []string{"w100", "w70"}},
		{"value-quantity:missing", "value-quantity:missing=true", []string{"bp"}},
		{"component-code finds a panel by a component", "component-code=http://loinc.org|8480-6", []string{"bp"}},
		{"combo-code finds the code or a component", "combo-code=8462-4,15074-8", []string{"bp", "g5"}},
		{"code does not look into components", "code=8480-6", nil},
		{"the category", "category=vital-signs&code=85354-9", []string{"bp"}},
		{"status with its system", "status=http://hl7.org/fhir/observation-status|final&code=15074-8", []string{"g5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(f.search(t, "Observation", tt.query+"&_sort=_id", store.Access{}))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Observation?%s = %v, want %v", tt.query, got, tt.want)
			}
		})
	}
}

func TestSortAndPageInBothDirections(t *testing.T) {
	f := newStore(t)
	for i := range 12 {
		id := fmt.Sprintf("o%02d", i)
		when := fmt.Sprintf("2026-11-%02dT08:00:00Z", 20-i%6) // six dates, two readings each
		f.put(t, "Observation", id, obsWithID(id, "p1", when))
	}
	full := ids(f.search(t, "Observation", "patient=p1&_sort=-date&_count=100", store.Access{}))
	if len(full) != 12 {
		t.Fatalf("all: %v", full)
	}
	// Newest first, and within one date by id descending.
	if full[0] != "o06" || full[1] != "o00" || full[11] != "o05" {
		t.Errorf("sort -date: %v", full)
	}
	asc := ids(f.search(t, "Observation", "patient=p1&_sort=date&_count=100", store.Access{}))
	rev := slices.Clone(full)
	slices.Reverse(rev)
	if !slices.Equal(asc, rev) {
		t.Errorf("sort date: %v, want the reverse of %v", asc, full)
	}
	// Walk forward in pages of 5, inserting a newer reading before every
	// page: the pages still partition the original twelve.
	q := "patient=p1&_sort=-date&_count=5"
	var walked []string
	var cursors []string
	page := f.search(t, "Observation", q, store.Access{})
	for n := 0; ; n++ {
		walked = append(walked, ids(page)...)
		f.put(t, "Observation", fmt.Sprintf("new%d", n), obsWithID(fmt.Sprintf("new%d", n), "p1", "2026-11-30T08:00:00Z"))
		if page.NextCursor == "" {
			break
		}
		cursors = append(cursors, page.NextCursor)
		page = f.searchCursor(t, "Observation", q, page.NextCursor)
		if page.PrevCursor == "" {
			t.Fatalf("page %d has no previous link", n+1)
		}
	}
	if !slices.Equal(walked, full) {
		t.Fatalf("walked %v, want %v", walked, full)
	}
	// And back: the previous link of the last page is the middle page.
	back := f.searchCursor(t, "Observation", q, page.PrevCursor)
	if !slices.Equal(ids(back), full[5:10]) {
		t.Errorf("previous page %v, want %v", ids(back), full[5:10])
	}
	if back.NextCursor == "" || back.PrevCursor == "" {
		t.Errorf("the middle page needs both links")
	}
	first := f.searchCursor(t, "Observation", q, back.PrevCursor)
	// Before it now lie the readings inserted during the walk.
	if !slices.Equal(ids(first), full[:5]) || first.PrevCursor == "" {
		t.Errorf("first page again %v (prev %q), want %v and a link to the new readings", ids(first), first.PrevCursor, full[:5])
	}
	// A cursor made for another sort is refused.
	v := url.Values{"patient": {"p1"}, "_sort": {"date"}, "_cursor": {cursors[0]}}
	sq, err := f.params.Parse("Observation", v, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Search(context.Background(), sq, store.Access{}); err == nil {
		t.Error("a cursor of another sort was accepted")
	}
}

func obsWithID(id, patient, when string) string {
	return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
		"subject":{"reference":"Patient/%s"},"device":{"reference":"Device/d-%s"},"effectiveDateTime":%q,
		"valueQuantity":{"value":70,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, id, patient, patient, when)
}

func TestIncludesChainsAndCompartments(t *testing.T) {
	f := newStore(t)
	for _, p := range []string{"p1", "p2"} {
		f.put(t, "Patient", p, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":"Fam-%s"}]}`, p, p))
		f.put(t, "Device", "d-"+p, fmt.Sprintf(`{"resourceType":"Device","id":"d-%s","patient":{"reference":"Patient/%s"}}`, p, p))
		f.put(t, "Observation", "o-"+p, obsWithID("o-"+p, p, "2026-11-20T08:00:00Z"))
	}
	typesOf := func(p *store.Page) []string {
		var out []string
		for _, e := range p.Included {
			out = append(out, e.Type+"/"+e.ID)
		}
		slices.Sort(out)
		return out
	}
	t.Run("_include adds the device and the patient once", func(t *testing.T) {
		got := f.search(t, "Observation", "_include=Observation:device&_include=Observation:patient&_sort=_id", store.Access{})
		want := []string{"Device/d-p1", "Device/d-p2", "Patient/p1", "Patient/p2"}
		if !slices.Equal(typesOf(got), want) {
			t.Errorf("included %v, want %v", typesOf(got), want)
		}
	})
	t.Run("_revinclude adds the readings of the patients found", func(t *testing.T) {
		got := f.search(t, "Patient", "_id=p1&_revinclude=Observation:patient&_revinclude=Device:patient", store.Access{})
		want := []string{"Device/d-p1", "Observation/o-p1"}
		if !slices.Equal(typesOf(got), want) {
			t.Errorf("included %v, want %v", typesOf(got), want)
		}
	})
	t.Run("a patient's includes never leave their compartment", func(t *testing.T) {
		got := f.search(t, "Device", "_revinclude=Observation:device", store.Access{PatientID: "p1"})
		if !slices.Equal(ids(got), []string{"d-p1"}) || !slices.Equal(typesOf(got), []string{"Observation/o-p1"}) {
			t.Errorf("matches %v, included %v", ids(got), typesOf(got))
		}
	})
	t.Run("a chain follows the reference", func(t *testing.T) {
		got := f.search(t, "Observation", "patient.family=fam-p2", store.Access{})
		if !slices.Equal(ids(got), []string{"o-p2"}) {
			t.Errorf("patient.family: %v", ids(got))
		}
		got = f.search(t, "Observation", "subject:Patient.name=fam", store.Access{})
		if len(got.Entries) != 2 {
			t.Errorf("subject:Patient.name: %v", ids(got))
		}
	})
	t.Run("a chain cannot see another patient through a patient's token", func(t *testing.T) {
		got := f.search(t, "Observation", "patient.family=fam-p2", store.Access{PatientID: "p1"})
		if len(got.Entries) != 0 {
			t.Errorf("patient p1 found %v", ids(got))
		}
	})
}

func TestLastNReturnsTheNewestReadingsPerCode(t *testing.T) {
	f := newStore(t)
	codes := []string{"29463-7", "8867-4", "59408-5"}
	for i := range 12 {
		code := codes[i%3]
		body := fmt.Sprintf(`{"resourceType":"Observation","id":"r%02d","status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},
			"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-11-%02dT08:00:00Z","valueQuantity":{"value":%d}}`, i, code, i+1, i)
		f.put(t, "Observation", fmt.Sprintf("r%02d", i), body)
	}
	f.put(t, "Observation", "other", obsWithID("other", "p2", "2026-11-29T08:00:00Z"))
	lastn := func(query string, n int, a store.Access) []string {
		v, _ := url.ParseQuery(query)
		q, err := f.params.Parse("Observation", v, true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.st.LastN(context.Background(), q, n, a)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range got {
			out = append(out, e.ID)
		}
		return out
	}
	// Codes come in the order of their keys: "http://loinc.org|29463-7",
	// "...|59408-5", "...|8867-4".
	if got, want := lastn("patient=p1", 2, store.Access{}), []string{"r09", "r06", "r11", "r08", "r10", "r07"}; !slices.Equal(got, want) {
		t.Errorf("max=2: %v, want %v", got, want)
	}
	if got, want := lastn("patient=p1&code=8867-4", 3, store.Access{}), []string{"r10", "r07", "r04"}; !slices.Equal(got, want) {
		t.Errorf("one code: %v, want %v", got, want)
	}
	if got := lastn("patient=p2", 3, store.Access{PatientID: "p1"}); len(got) != 0 {
		t.Errorf("patient p1 sees p2's readings: %v", got)
	}
}

func TestEveryDeclaredParameterIsSearchable(t *testing.T) {
	f := newStore(t)
	for _, typ := range f.params.Types() {
		def := f.params.Definition(typ)
		for _, p := range append(slices.Clone(def.Params), f.params.Common()...) {
			q := p.Name + ":missing=false"
			f.search(t, typ, q, store.Access{})
			if p.Kind != search.Reference && p.Kind != search.Token {
				continue
			}
			f.search(t, typ, "_sort="+p.Name, store.Access{})
		}
	}
}

// Task priority sorts by meaning (routine < urgent < asap < stat), not by
// spelling, and pages through a cursor on that order; a Task without a
// priority sorts below routine.
func TestTaskPrioritySortsByMeaning(t *testing.T) {
	f := newStore(t)
	task := func(id, priority string) string {
		p := ""
		if priority != "" {
			p = `"priority":"` + priority + `",`
		}
		return `{"resourceType":"Task","id":"` + id + `","status":"requested","intent":"order",` + p +
			`"for":{"reference":"Patient/p1"}}`
	}
	for id, prio := range map[string]string{"r1": "routine", "u1": "urgent", "s1": "stat", "a1": "asap", "s2": "stat", "n1": ""} {
		f.put(t, "Task", id, task(id, prio))
	}
	f.put(t, "Task", "done", `{"resourceType":"Task","id":"done","status":"completed","intent":"order","priority":"stat","for":{"reference":"Patient/p1"}}`)
	got := ids(f.search(t, "Task", "status=requested&_sort=-priority,_id", store.Access{}))
	want := []string{"s1", "s2", "a1", "u1", "r1", "n1"}
	if !slices.Equal(got, want) {
		t.Errorf("_sort=-priority,_id: %v, want %v", got, want)
	}
	got = ids(f.search(t, "Task", "status=requested&_sort=priority", store.Access{}))
	if !slices.Equal(got[:3], []string{"n1", "r1", "u1"}) {
		t.Errorf("_sort=priority: %v", got)
	}
	var walked []string
	q := "status=requested&_sort=-priority&_count=2"
	page := f.search(t, "Task", q, store.Access{})
	for {
		walked = append(walked, ids(page)...)
		if page.NextCursor == "" {
			break
		}
		page = f.searchCursor(t, "Task", q, page.NextCursor)
	}
	if len(walked) != 6 || walked[5] != "n1" || walked[4] != "r1" || walked[3] != "u1" {
		t.Errorf("paged -priority: %v", walked)
	}
}
