package search

import (
	"fmt"
	"math/big"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Decimal is a number search value with its implicit range: FHIR R4 search
// §3.1.1.4.1 reads "100" as [99.5, 100.5) and "100.00" as
// [99.995, 100.005). All three are decimal strings PostgreSQL's numeric
// reads exactly.
type Decimal struct {
	Value, Lo, Hi string
}

// parseDecimal reads a FHIR decimal (optionally with an exponent) and its
// precision.
func parseDecimal(s string) (Decimal, error) {
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i:]
	}
	v, ok := new(big.Rat).SetString(s)
	if !ok || mant == "" || strings.ContainsAny(mant, " _") {
		return Decimal{}, fmt.Errorf("%q is not a number", s)
	}
	// Precision: the digits after the point, shifted by the exponent.
	digits := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		digits = len(mant) - i - 1
	}
	if exp != "" {
		var e int
		if _, err := fmt.Sscanf(exp[1:], "%d", &e); err != nil {
			return Decimal{}, fmt.Errorf("%q is not a number", s)
		}
		digits -= e
	}
	half := new(big.Rat).SetFrac(big.NewInt(5), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(digits)+1)), nil))
	if digits < 0 {
		half = new(big.Rat).SetInt(new(big.Int).Mul(big.NewInt(5), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-digits-1)), nil)))
	}
	prec := max(digits+1, 0) + 1
	return Decimal{
		Value: v.FloatString(max(digits, 0)),
		Lo:    new(big.Rat).Sub(v, half).FloatString(prec),
		Hi:    new(big.Rat).Add(v, half).FloatString(prec),
	}, nil
}

// Approx is the range "ap" searches: ±10 % of the value (R4 search
// §3.1.1.4.1 leaves the amount to the server; 10 % is its recommendation).
func (d Decimal) Approx() (lo, hi string) {
	v, _ := new(big.Rat).SetString(d.Value)
	tenth := new(big.Rat).Abs(new(big.Rat).Quo(v, big.NewRat(10, 1)))
	return new(big.Rat).Sub(v, tenth).FloatString(12), new(big.Rat).Add(v, tenth).FloatString(12)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// Normalize is how string parameters compare: case- and accent-insensitive
// (R4 search §3.1.1.4.7), so "as" finds "Ås" and "ÅSA".
func Normalize(s string) string {
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	return folds.Replace(strings.ToLower(out))
}

// folds are the letters that carry no combining mark to strip but that
// people still type without their stroke: "Bjørn" is found by "bjorn".
//
//nolint:gochecknoglobals // an immutable table, like a regexp.
var folds = strings.NewReplacer("ø", "o", "æ", "ae", "ł", "l", "đ", "d", "ß", "ss", "œ", "oe", "ı", "i")
