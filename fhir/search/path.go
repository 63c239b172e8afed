package search

import (
	"fmt"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// path is a compiled Param.Expression: for each "|"-separated branch, the
// struct fields to follow from the resource's golang-fhir-models struct.
// Field indexes are resolved once, when the registry is built, so indexing
// a resource costs a few reflect.Value.Field calls per parameter.
type path struct {
	branches [][][]int // branch → step → the field indexes that step may take (a choice has several)
}

// compilePath resolves expr against the model struct of typ. A step names
// an element by its JSON name; a choice element ("effective") takes every
// field of that name plus a type ("effectiveDateTime", "effectivePeriod").
func compilePath(typ string, model reflect.Type, expr string) (*path, error) {
	p := &path{}
	for branch := range strings.SplitSeq(expr, "|") {
		steps := strings.Split(strings.TrimSpace(branch), ".")
		if len(steps) < 2 || steps[0] != typ {
			return nil, fmt.Errorf("expression %q: each path must start with %s", expr, typ)
		}
		t := model
		var compiled [][]int
		for _, name := range steps[1:] {
			t = elem(t)
			if t.Kind() != reflect.Struct {
				return nil, fmt.Errorf("expression %q: %s has no elements", expr, name)
			}
			idx, next := fieldsNamed(t, name)
			if len(idx) == 0 {
				return nil, fmt.Errorf("expression %q: %s has no element %q", expr, t.Name(), name)
			}
			compiled = append(compiled, idx)
			t = next
		}
		p.branches = append(p.branches, compiled)
	}
	return p, nil
}

// elem strips pointers and slices.
func elem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t
}

// fieldsNamed returns the fields of struct t whose JSON name is name, or
// that are the typed variants of the choice element name. next is the type
// of the first (the walk only continues through non-choice steps).
func fieldsNamed(t reflect.Type, name string) (idx []int, next reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return []int{i}, f.Type
		}
		if rest, ok := strings.CutPrefix(tag, name); ok && rest != "" {
			if r, _ := utf8.DecodeRuneInString(rest); unicode.IsUpper(r) {
				idx = append(idx, i)
				next = f.Type
			}
		}
	}
	return idx, next
}

// walk calls leaf with every non-empty value the path reaches, as a
// pointer to the golang-fhir-models type (*string, *bool,
// *fm.CodeableConcept, ...) when model is a pointer.
func (p *path) walk(model any, leaf func(any)) {
	v := reflect.ValueOf(model)
	for _, b := range p.branches {
		walkSteps(v, b, leaf)
	}
}

func walkSteps(v reflect.Value, steps [][]int, leaf func(any)) {
	switch v.Kind() { //nolint:exhaustive // every other kind is a value to pass on
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkSteps(v.Elem(), steps, leaf)
		}
		return
	case reflect.Slice:
		for i := range v.Len() {
			walkSteps(v.Index(i), steps, leaf)
		}
		return
	}
	if len(steps) == 0 {
		switch {
		case v.CanAddr():
			leaf(v.Addr().Interface()) // a pointer: no copy, no allocation
		case v.IsValid():
			leaf(v.Interface())
		}
		return
	}
	if v.Kind() != reflect.Struct {
		return
	}
	for _, i := range steps[0] {
		walkSteps(v.Field(i), steps[1:], leaf)
	}
}
