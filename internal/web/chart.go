package web

import (
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Trend charts are drawn by the server as inline SVG: a polyline per value
// (systolic and diastolic for blood pressure), the patient's limits shaded
// as a band behind them, readings outside the limits marked, and axis
// labels in the reader's language. Inline SVG needs no script and no
// request of its own, so it holds under the pages' CSP and prints.

// Chart geometry, in SVG user units (the CSS scales the whole to its box).
const (
	chartW, chartH             = 640, 220
	padLeft, padRight          = 48, 12
	padTop, padBottom          = 10, 28
	plotW, plotH               = chartW - padLeft - padRight, chartH - padTop - padBottom
	maxChartPoints             = 2000
	chartOutRadius, chartPtRad = 3.5, 2
)

// chartSpec is one chart to draw.
type chartSpec struct {
	ID       string // unique on the page, for aria-labelledby
	Title    string
	Desc     string
	M        *measure
	Readings []reading // oldest first
	Limits   []limit   // per value of M
	From, To time.Time
	PartName []string // names of the values, for the legend
}

// drawChart renders spec as an SVG element.
func drawChart(l *Localizer, spec chartSpec) template.HTML {
	var b strings.Builder
	b.Grow(4096 + 40*len(spec.Readings))
	b.WriteString(`<svg class="chart" viewBox="0 0 ` + itoa(chartW) + ` ` + itoa(chartH) + `" role="img" aria-labelledby="` +
		esc(spec.ID) + `-t ` + esc(spec.ID) + `-d" preserveAspectRatio="xMidYMid meet">`)
	b.WriteString(`<title id="` + esc(spec.ID) + `-t">` + esc(spec.Title) + `</title>`)
	b.WriteString(`<desc id="` + esc(spec.ID) + `-d">` + esc(spec.Desc) + `</desc>`)

	lo, hi := yRange(spec)
	span := spec.To.Sub(spec.From).Seconds()
	if span <= 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return padLeft + plotW*t.Sub(spec.From).Seconds()/span }
	y := func(v float64) float64 { return padTop + plotH*(hi-v)/(hi-lo) }

	// The limits band(s), behind everything.
	for i, lim := range spec.Limits {
		if !lim.set() {
			continue
		}
		top, bottom := hi, lo
		if lim.High != nil {
			top = math.Min(*lim.High, hi)
		}
		if lim.Low != nil {
			bottom = math.Max(*lim.Low, lo)
		}
		if top <= bottom {
			continue
		}
		b.WriteString(`<rect class="band band-` + itoa(i) + `" x="` + ftoa(padLeft) + `" y="` + ftoa(y(top)) +
			`" width="` + ftoa(plotW) + `" height="` + ftoa(y(bottom)-y(top)) + `"><title>` +
			esc(limitText(l, spec.M, lim)) + `</title></rect>`)
	}

	// Axes: horizontal grid lines with value labels, day labels below.
	for _, v := range ticks(lo, hi, 4) {
		yy := ftoa(y(v))
		b.WriteString(`<line class="grid" x1="` + ftoa(padLeft) + `" x2="` + ftoa(padLeft+plotW) + `" y1="` + yy + `" y2="` + yy + `"/>`)
		b.WriteString(`<text class="axis" x="` + ftoa(padLeft-6) + `" y="` + yy + `" text-anchor="end" dominant-baseline="middle">` +
			esc(l.Num(v, tickDecimals(lo, hi))) + `</text>`)
	}
	b.WriteString(`<line class="axis-line" x1="` + ftoa(padLeft) + `" x2="` + ftoa(padLeft+plotW) + `" y1="` + ftoa(padTop+plotH) + `" y2="` + ftoa(padTop+plotH) + `"/>`)
	days := spec.To.Sub(spec.From).Hours() / 24
	step := 1
	switch {
	case days > 45:
		step = 14
	case days > 10:
		step = 7
	}
	start := l.In(spec.From)
	start = time.Date(start.Year(), start.Month(), start.Day()+1, 0, 0, 0, 0, start.Location())
	for d := start; d.Before(spec.To); d = d.AddDate(0, 0, step) {
		xx := x(d)
		b.WriteString(`<line class="tick" x1="` + ftoa(xx) + `" x2="` + ftoa(xx) + `" y1="` + ftoa(padTop+plotH) + `" y2="` + ftoa(padTop+plotH+4) + `"/>`)
		b.WriteString(`<text class="axis" x="` + ftoa(xx) + `" y="` + ftoa(chartH-8) + `" text-anchor="middle">` + esc(l.Day(d)) + `</text>`)
	}

	if len(spec.Readings) == 0 {
		b.WriteString(`<text class="empty" x="` + ftoa(padLeft+plotW/2) + `" y="` + ftoa(padTop+plotH/2) + `" text-anchor="middle">` +
			esc(l.T("chart.empty")) + `</text></svg>`)
		return template.HTML(b.String()) //nolint:gosec // built from escaped text and numbers only
	}
	rs := spec.Readings
	if len(rs) > maxChartPoints {
		rs = rs[len(rs)-maxChartPoints:]
	}
	parts := len(rs[0].V)
	for i := range parts {
		b.WriteString(`<polyline class="line line-` + itoa(i) + `" points="`)
		for _, r := range rs {
			if i >= len(r.V) || math.IsNaN(r.V[i]) {
				continue
			}
			b.WriteString(ftoa(x(r.At)) + "," + ftoa(y(r.V[i])) + " ")
		}
		b.WriteString(`"/>`)
	}
	for _, r := range rs {
		for i, v := range r.V {
			if math.IsNaN(v) {
				continue
			}
			class, rad := "pt", float64(chartPtRad)
			if i < len(spec.Limits) && !spec.Limits[i].within(v) {
				class, rad = "pt out", chartOutRadius
			}
			b.WriteString(`<circle class="` + class + ` pt-` + itoa(i) + `" cx="` + ftoa(x(r.At)) + `" cy="` + ftoa(y(v)) + `" r="` + ftoa(rad) + `"/>`)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from escaped text and numbers only
}

// yRange is the value range the chart shows: the readings, the limits and
// the measure's smallest range, with a little room above and below.
func yRange(spec chartSpec) (lo, hi float64) {
	lo, hi = spec.M.Lo, spec.M.Hi
	for _, r := range spec.Readings {
		for _, v := range r.V {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	for _, lim := range spec.Limits {
		if lim.Low != nil {
			lo = math.Min(lo, *lim.Low)
		}
		if lim.High != nil {
			hi = math.Max(hi, *lim.High)
		}
	}
	pad := (hi - lo) * 0.08
	if pad == 0 {
		pad = 1
	}
	return lo - pad, hi + pad
}

// ticks are about n round values between lo and hi.
func ticks(lo, hi float64, n int) []float64 {
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		out = append(out, v)
	}
	return out
}

func tickDecimals(lo, hi float64) int {
	if hi-lo < 8 {
		return 1
	}
	return 0
}

// limitText says a limit in words: "Limits 92–100 %", "Above 60 kg".
func limitText(l *Localizer, m *measure, lim limit) string {
	s := limitRange(l, m, lim)
	if lim.Default && lim.set() {
		s += " " + l.T("limit.default")
	}
	return s
}

// limitRange says the normal range as the rules draw it: a clinic
// default of "at or above 180" flags 180 itself, so it reads "to under
// 180", where a Goal's 180 (inclusive, as FHIR ranges are) reads "180".
func limitRange(l *Localizer, m *measure, lim limit) string {
	num := func(v *float64) string { return l.Num(*v, m.Decimals) }
	low, high := "", ""
	switch {
	case lim.Low != nil && lim.LowOut:
		low = l.T("limit.above", num(lim.Low), m.Shown)
	case lim.Low != nil:
		low = l.T("limit.low", num(lim.Low), m.Shown)
	}
	switch {
	case lim.High != nil && lim.HighOut:
		high = l.T("limit.below", num(lim.High), m.Shown)
	case lim.High != nil:
		high = l.T("limit.high", num(lim.High), m.Shown)
	}
	switch {
	case lim.Low != nil && lim.High != nil && !lim.LowOut && !lim.HighOut:
		return l.T("limit.range", num(lim.Low), num(lim.High), m.Shown)
	case lim.Low != nil && lim.High != nil && !lim.LowOut:
		return l.T("limit.range.below", num(lim.Low), num(lim.High), m.Shown)
	case low != "" && high != "":
		return low + "; " + high
	case low != "" || high != "":
		return low + high
	}
	return l.T("limit.none")
}

func esc(s string) string { return template.HTMLEscapeString(s) }

func itoa(n int) string { return strconv.Itoa(n) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
