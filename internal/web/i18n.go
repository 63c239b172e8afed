package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// The pages speak English, Swedish and Norwegian Bokmål. Each language is
// one flat JSON catalog under messages/ (key → text); every catalog has
// the same keys (TestCatalogsHaveTheSameKeys). Texts that take values are
// fmt formats, with explicit argument indexes where languages order them
// differently. Besides the texts, a catalog carries how its language
// writes numbers, dates and times (the fmt.* keys): Go's time package only
// knows English month names.

//go:embed messages/*.json
var messageFiles embed.FS

// LangCookie remembers the language a user chose with the switch on every
// page; without it the browser's Accept-Language decides.
const LangCookie = "vidda_lang"

// langs are the supported languages, the first the fallback.
func langs() []string { return []string{"en", "sv", "nb"} }

// locale is one language's catalog and formats.
type locale struct {
	lang    string
	msgs    map[string]string
	decimal string
	clock24 bool
	dayFmt  string // "{wd} {d} {mon}"
	months  []string
	wdShort []string
	wdLong  []string
}

// catalogs are the loaded languages and the matcher that picks one.
type catalogs struct {
	byLang  map[string]*locale
	matcher language.Matcher
}

func loadCatalogs() (*catalogs, error) {
	c := &catalogs{byLang: map[string]*locale{}}
	var tags []language.Tag
	for _, lang := range langs() {
		raw, err := messageFiles.ReadFile("messages/" + lang + ".json")
		if err != nil {
			return nil, fmt.Errorf("web: catalog %s: %w", lang, err)
		}
		var msgs map[string]string
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return nil, fmt.Errorf("web: catalog %s: %w", lang, err)
		}
		l := &locale{lang: lang, msgs: msgs, decimal: msgs["fmt.decimal"], clock24: msgs["fmt.clock"] == "24", dayFmt: msgs["fmt.day"]}
		l.months = strings.Split(msgs["fmt.months"], ",")
		l.wdShort = strings.Split(msgs["fmt.weekdays.short"], ",")
		l.wdLong = strings.Split(msgs["fmt.weekdays"], ",")
		if len(l.months) != 12 || len(l.wdShort) != 7 || len(l.wdLong) != 7 || l.decimal == "" || l.dayFmt == "" {
			return nil, fmt.Errorf("web: catalog %s: fmt.months needs 12 names, fmt.weekdays 7 (Sunday first), fmt.decimal and fmt.day a value", lang)
		}
		c.byLang[lang] = l
		tags = append(tags, language.MustParse(lang))
	}
	c.matcher = language.NewMatcher(tags)
	return c, nil
}

// choose picks the language: the cookie's when it names one we have, else
// the best match of Accept-Language (Norwegian "no" and "nn" readers get
// Bokmål), else English.
func (c *catalogs) choose(cookie, accept string) string {
	if _, ok := c.byLang[cookie]; ok {
		return cookie
	}
	if len(accept) > 512 {
		accept = accept[:512]
	}
	_, i, conf := c.matcher.Match(parseAccept(accept)...)
	if conf == language.No {
		return langs()[0]
	}
	return langs()[i]
}

// parseAccept reads Accept-Language leniently: a malformed entry is
// skipped, not the whole header. Nynorsk readers get Bokmål, their other
// written Norwegian, rather than English.
func parseAccept(accept string) []language.Tag {
	tags, _, err := language.ParseAcceptLanguage(accept)
	if err != nil {
		tags = nil
		for part := range strings.SplitSeq(accept, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if t, err := language.Parse(name); err == nil {
				tags = append(tags, t)
			}
		}
	}
	nn := language.MustParseBase("nn")
	for i, t := range tags {
		if b, _ := t.Base(); b == nn {
			tags[i] = language.MustParse("nb")
		}
	}
	return tags
}

// localizer formats for one request: its language, the clinic's time zone
// and the time the request is answered at.
func (c *catalogs) localizer(lang string, zone *time.Location, now time.Time) *Localizer {
	l, ok := c.byLang[lang]
	if !ok {
		l = c.byLang[langs()[0]]
	}
	return &Localizer{loc: l, Lang: l.lang, zone: zone, now: now}
}

// Localizer gives templates texts, numbers and times in the reader's
// language and the clinic's time zone.
type Localizer struct {
	loc *locale
	// Lang is the BCP 47 code of the language, for <html lang>.
	Lang string
	zone *time.Location
	now  time.Time
}

// T returns the text of key, formatted with args when given. A missing
// key shows as itself (the catalog test keeps that from shipping).
func (l *Localizer) T(key string, args ...any) string {
	msg, ok := l.loc.msgs[key]
	if !ok {
		return key
	}
	if len(args) == 0 {
		return msg
	}
	return fmt.Sprintf(msg, args...)
}

// Langs lists the languages for the switch, each named in itself.
func (l *Localizer) Langs() []LangOption {
	out := make([]LangOption, 0, len(langs()))
	for _, code := range langs() {
		out = append(out, LangOption{Code: code, Name: l.loc.msgs["lang.name."+code], Selected: code == l.Lang})
	}
	return out
}

// LangOption is one entry of the language switch.
type LangOption struct {
	Code, Name string
	Selected   bool
}

// Num writes v with decimals digits after the language's decimal sign.
func (l *Localizer) Num(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if l.loc.decimal != "." {
		s = strings.Replace(s, ".", l.loc.decimal, 1)
	}
	if strings.HasPrefix(s, "-") {
		s = "−" + s[1:] // a real minus sign reads better than a hyphen
	}
	return s
}

// In returns t in the clinic's time zone.
func (l *Localizer) In(t time.Time) time.Time { return t.In(l.zone) }

// Clock writes the time of day: 24-hour for Swedish and Norwegian, 12-hour
// for English.
func (l *Localizer) Clock(t time.Time) string {
	t = t.In(l.zone)
	if l.loc.clock24 {
		return t.Format("15:04")
	}
	return t.Format("3:04 PM")
}

// Day writes the day, short: "Tue 14 Jan", "tis 14 jan", "tir. 14. jan.".
func (l *Localizer) Day(t time.Time) string {
	t = t.In(l.zone)
	return strings.NewReplacer(
		"{wd}", l.loc.wdShort[t.Weekday()],
		"{d}", strconv.Itoa(t.Day()),
		"{mon}", l.loc.months[t.Month()-1],
		"{yyyy}", strconv.Itoa(t.Year()),
	).Replace(l.loc.dayFmt)
}

// DateTime writes the day and the time of day.
func (l *Localizer) DateTime(t time.Time) string { return l.Day(t) + " " + l.Clock(t) }

// Weekday is the full name of t's day of the week.
func (l *Localizer) Weekday(t time.Time) string { return l.loc.wdLong[t.In(l.zone).Weekday()] }

// ISO is t for a <time datetime> attribute.
func (l *Localizer) ISO(t time.Time) string { return t.In(l.zone).Format(time.RFC3339) }

// Ago says how long ago t was: "just now", "12 min ago", "3 h ago",
// "2 days ago".
func (l *Localizer) Ago(t time.Time) string {
	d := l.now.Sub(t)
	switch {
	case d < time.Minute:
		return l.T("ago.now")
	case d < time.Hour:
		return l.T("ago.minutes", int(d/time.Minute))
	case d < 48*time.Hour:
		return l.T("ago.hours", int(d/time.Hour))
	}
	return l.T("ago.days", int(d/(24*time.Hour)))
}
