package devices

import (
	"strconv"
	"strings"
	"testing"
)

// TestTableHoldsTheContractedCodes spells the contract out by hand, apart
// from Table, so that a slip in the table cannot confirm itself.
func TestTableHoldsTheContractedCodes(t *testing.T) {
	tests := []struct {
		name  string
		loinc []string // Observation.code LOINC codes, in order
		mdc   string   // the MDC code written
		field string
		units []string // UCUM codes accepted, in order
	}{
		{"blood-pressure", []string{"85354-9"}, "150020", "systolic", []string{"mm[Hg]"}},
		{"spo2", []string{"59408-5", "2708-6"}, "150456", ValueField, []string{"%"}},
		{"heart-rate", []string{"8867-4"}, "147842", ValueField, []string{"/min"}},
		{"weight", []string{"29463-7"}, "188736", ValueField, []string{"kg"}},
		{"temperature", []string{"8310-5"}, "150364", ValueField, []string{"Cel"}},
		{"respiratory-rate", []string{"9279-1"}, "151562", ValueField, []string{"/min"}},
		{"glucose", nil, "160184", ValueField, []string{"mg/dL", "mmol/L"}},
	}
	table := Table()
	if len(table) != len(tests) {
		t.Errorf("the table has %d types, the contract %d", len(table), len(tests))
	}
	for _, tt := range tests {
		t.Run("the "+tt.name+" row has the contracted codes and units", func(t *testing.T) {
			row, ok := findType(table, tt.name)
			if !ok {
				t.Fatal("missing")
			}
			var loinc []string
			for _, c := range row.LOINC {
				loinc = append(loinc, c.Code)
			}
			if strings.Join(loinc, ",") != strings.Join(tt.loinc, ",") {
				t.Errorf("LOINC %v, want %v", loinc, tt.loinc)
			}
			if row.MDC[0].Code != tt.mdc {
				t.Errorf("MDC %s, want %s", row.MDC[0].Code, tt.mdc)
			}
			f, ok := row.Field(tt.field)
			if !ok {
				t.Fatalf("no field %s", tt.field)
			}
			var units []string
			for _, u := range f.Units {
				units = append(units, u.UCUM)
			}
			if strings.Join(units, ",") != strings.Join(tt.units, ",") {
				t.Errorf("units %v, want %v", units, tt.units)
			}
		})
	}
	t.Run("blood pressure has systolic 8480-6/150021, diastolic 8462-4/150022 and a pulse 8867-4/149546 split off as a heart rate", func(t *testing.T) {
		bp, _ := findType(table, "blood-pressure")
		for name, want := range map[string][2]string{
			"systolic": {"8480-6", "150021"}, "diastolic": {"8462-4", "150022"},
			"mean": {"8478-0", "150023"}, "pulse": {"8867-4", "149546"},
		} {
			f, ok := bp.Field(name)
			if !ok {
				t.Fatalf("no %s", name)
			}
			if f.LOINC[0].Code != want[0] || f.MDC[0].Code != want[1] {
				t.Errorf("%s is %s/%s, want %s/%s", name, f.LOINC[0].Code, f.MDC[0].Code, want[0], want[1])
			}
		}
		if p, _ := bp.Field("pulse"); p.Split != "heart-rate" || p.Required {
			t.Errorf("pulse: split %q required %v", p.Split, p.Required)
		}
	})
	t.Run("glucose is 2339-0 in mg/dL and 15074-8 in mmol/L", func(t *testing.T) {
		g, _ := findType(table, "glucose")
		if c := g.LOINCFor("mg/dL"); c[0].Code != "2339-0" {
			t.Errorf("mg/dL: %v", c)
		}
		if c := g.LOINCFor("mmol/L"); c[0].Code != "15074-8" {
			t.Errorf("mmol/L: %v", c)
		}
	})
	t.Run("SenML's beat/min and 1/min are taken as /min", func(t *testing.T) {
		for _, typ := range []string{"heart-rate", "respiratory-rate"} {
			row, _ := findType(table, typ)
			f, _ := row.Field(ValueField)
			for _, s := range []string{"/min", "beat/min", "1/min"} {
				if u, ok := f.Unit(s); !ok || u.UCUM != "/min" {
					t.Errorf("%s does not take %s as /min", typ, s)
				}
			}
		}
	})
}

// loincCheckDigit computes LOINC's mod 10 check digit (LOINC Users' Guide,
// "Calculating Mod 10 Check Digits").
func loincCheckDigit(digits string) int {
	var odd, even strings.Builder // positions counted from the right, 1-based
	for i := len(digits) - 1; i >= 0; i-- {
		if (len(digits)-i)%2 == 1 {
			odd.WriteByte(digits[i])
		} else {
			even.WriteByte(digits[i])
		}
	}
	n, _ := strconv.Atoi(odd.String())
	sum := 0
	for _, c := range even.String() + strconv.Itoa(2*n) {
		sum += int(c - '0')
	}
	return (10 - sum%10) % 10
}

func TestEveryCodeInTheTableIsWellFormed(t *testing.T) {
	if got := loincCheckDigit("12345"); got != 5 {
		t.Fatalf("the check digit of the LOINC guide's example 12345 is 5, computed %d", got)
	}
	checkLOINC := func(t *testing.T, c Coding) {
		t.Helper()
		num, check, ok := strings.Cut(c.Code, "-")
		if c.System != SystemLOINC || !ok || c.Display == "" {
			t.Errorf("%+v is not a LOINC coding with a display", c)
			return
		}
		if want := loincCheckDigit(num); check != strconv.Itoa(want) {
			t.Errorf("LOINC %s: check digit should be %d", c.Code, want)
		}
	}
	checkMDC := func(t *testing.T, c Coding) {
		t.Helper()
		n, err := strconv.Atoi(c.Code)
		// Partition 2 (SCADA) holds the measurements: 131072..196607.
		if c.System != SystemMDC || err != nil || n>>16 != 2 || !strings.HasPrefix(c.Display, "MDC_") {
			t.Errorf("%+v is not an MDC partition-2 coding with its reference id", c)
		}
	}
	names := map[string]bool{}
	for _, row := range Table() {
		t.Run("the "+row.Name+" row is well formed", func(t *testing.T) {
			if names[row.Name] || row.Text == "" || len(row.MDC) == 0 || len(row.Fields) == 0 {
				t.Errorf("duplicate or incomplete row %+v", row)
			}
			names[row.Name] = true
			for _, c := range row.LOINC {
				checkLOINC(t, c)
			}
			for _, c := range row.MDC {
				checkMDC(t, c)
			}
			for _, f := range row.Fields {
				if len(f.Units) == 0 {
					t.Errorf("%s has no unit", f.Name)
				}
				if (f.Name == ValueField) != (len(f.LOINC) == 0) || (f.Name == ValueField) != (len(f.MDC) == 0) {
					t.Errorf("%s: a value takes the row's codes, a component its own", f.Name)
				}
				for _, c := range f.LOINC {
					checkLOINC(t, c)
				}
				for _, c := range f.MDC {
					checkMDC(t, c)
				}
				for _, u := range f.Units {
					if u.Min >= u.Max || u.Display == "" {
						t.Errorf("%s in %s: range %v–%v, display %q", f.Name, u.UCUM, u.Min, u.Max, u.Display)
					}
					if len(row.LOINC) == 0 && len(u.LOINC) == 0 {
						t.Errorf("%s in %s has no LOINC code", row.Name, u.UCUM)
					}
					for _, c := range u.LOINC {
						checkLOINC(t, c)
					}
				}
				if f.Split != "" {
					if _, ok := lookup(f.Split); !ok || len(f.Units) != 1 {
						t.Errorf("%s splits into unknown type %q", f.Name, f.Split)
					}
				}
			}
			if one, ok := lookup(row.Name); !ok || one.Name != row.Name || len(one.Fields) != len(row.Fields) {
				t.Errorf("lookup(%q) does not build the same row", row.Name)
			}
		})
	}
	if _, ok := lookup(""); ok {
		t.Error(`lookup("") found a row`)
	}
}
