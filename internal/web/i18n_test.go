package web

import (
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidda/vidda/internal/care"
)

func TestCatalogsHaveTheSameKeys(t *testing.T) {
	cats, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	en := cats.byLang["en"].msgs
	for _, lang := range langs() {
		msgs := cats.byLang[lang].msgs
		for k := range en {
			if _, ok := msgs[k]; !ok {
				t.Errorf("%s.json lacks %q", lang, k)
			}
		}
		for k, v := range msgs {
			if _, ok := en[k]; !ok {
				t.Errorf("%s.json has %q, which en.json does not", lang, k)
			}
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s.json: %q is empty", lang, k)
			}
			// The same values go into every language's text.
			if verbs(v) != verbs(en[k]) && !strings.HasPrefix(k, "fmt.") {
				t.Errorf("%s.json: %q takes %s, en.json %s", lang, k, verbs(v), verbs(en[k]))
			}
		}
	}
	// Every key the templates and the code name is in the catalogs.
	for _, key := range usedKeys(t) {
		if _, ok := en[key]; !ok {
			t.Errorf("key %q is used but not in the catalogs", key)
		}
	}
}

// verbs lists a text's fmt verbs, sorted, so that reordering with
// explicit indexes still compares equal.
func verbs(s string) string {
	re := regexp.MustCompile(`%(\[\d\])?[sdv]`)
	var out []string
	for _, m := range re.FindAllString(s, -1) {
		out = append(out, m[len(m)-1:])
	}
	slices.Sort(out)
	return strings.Join(out, "")
}

// usedKeys are the literal keys in templates and Go files, and the keys
// built at run time from the measures, priorities and interpretations.
func usedKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	lit := regexp.MustCompile(`(?:\.T|l\.T|L\.T)[ (]"([a-z0-9.]+)"`)
	for _, dir := range []string{"templates", "."} {
		files, err := fs.Glob(os.DirFS(dir), "*")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !strings.HasSuffix(f, ".html") && (!strings.HasSuffix(f, ".go") || strings.HasSuffix(f, "_test.go")) {
				continue
			}
			raw, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range lit.FindAllStringSubmatch(string(raw), -1) {
				if !strings.HasSuffix(m[1], ".") { // a prefix, completed below
					keys = append(keys, m[1])
				}
			}
		}
	}
	for _, m := range measures() {
		keys = append(keys, "measure."+m.Key, "me.measure."+m.Key)
		for _, p := range m.Parts {
			keys = append(keys, "measure."+p.Key)
		}
	}
	for p := care.PriorityRoutine; p <= care.PriorityStat; p++ { // care's Task priorities
		keys = append(keys, "priority."+p.String())
	}
	for _, c := range []string{"N", "H", "L", "HH", "LL", "A"} {
		keys = append(keys, "interp."+c)
	}
	for _, l := range langs() {
		keys = append(keys, "lang.name."+l)
	}
	keys = append(keys, msgSignInFailed, msgFormExpired, msgTooMany, msgUnavailable)
	if len(keys) < 50 {
		t.Fatalf("found only %d keys: the pattern no longer matches", len(keys))
	}
	return keys
}

func TestTheLanguageComesFromTheCookieElseAcceptLanguage(t *testing.T) {
	cats, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cookie, accept, want string }{
		{"", "", "en"},
		{"", "sv-SE,sv;q=0.9,en;q=0.8", "sv"},
		{"", "nb-NO", "nb"},
		{"", "no", "nb"},
		{"", "nn-NO,en;q=0.5", "nb"},
		{"", "de-DE,de;q=0.9", "en"},
		{"", "fr, sv;q=0.4", "sv"},
		{"", ";;;,,garbage", "en"},
		{"nb", "sv-SE", "nb"},
		{"xx", "sv-SE", "sv"},
	} {
		if got := cats.choose(tc.cookie, tc.accept); got != tc.want {
			t.Errorf("choose(%q, %q) = %q, want %q", tc.cookie, tc.accept, got, tc.want)
		}
	}
}

func TestNumbersDatesAndTimesFollowTheLanguageAndZone(t *testing.T) {
	cats, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	oslo, _ := time.LoadLocation("Europe/Oslo")
	now := time.Date(2026, 1, 13, 15, 0, 0, 0, time.UTC)
	at := time.Date(2026, 1, 13, 13, 4, 0, 0, time.UTC) // 14:04 in Oslo, a Tuesday
	for _, tc := range []struct {
		lang, num, clock, day, weekday, ago string
	}{
		{"en", "72.5", "2:04 PM", "Tue 13 Jan", "Tuesday", "1 h ago"},
		{"sv", "72,5", "14:04", "tis 13 jan", "tisdag", "för 1 tim sedan"},
		{"nb", "72,5", "14:04", "tir. 13. jan.", "tirsdag", "for 1 t siden"},
	} {
		l := cats.localizer(tc.lang, oslo, now)
		if got := l.Num(72.5, 1); got != tc.num {
			t.Errorf("%s: Num = %q, want %q", tc.lang, got, tc.num)
		}
		if got := l.Clock(at); got != tc.clock {
			t.Errorf("%s: Clock = %q, want %q", tc.lang, got, tc.clock)
		}
		if got := l.Day(at); got != tc.day {
			t.Errorf("%s: Day = %q, want %q", tc.lang, got, tc.day)
		}
		if got := l.Weekday(at); got != tc.weekday {
			t.Errorf("%s: Weekday = %q, want %q", tc.lang, got, tc.weekday)
		}
		if got := l.Ago(now.Add(-70 * time.Minute)); got != tc.ago {
			t.Errorf("%s: Ago = %q, want %q", tc.lang, got, tc.ago)
		}
		if got := l.Num(-3, 0); got != "−3" {
			t.Errorf("%s: Num(-3) = %q", tc.lang, got)
		}
	}
	for in, want := range map[string]float64{"37,5": 37.5, "92\u00a0": 92, "37.5": 37.5, "−2": -2} {
		v, err := parseLocaleNumber(in)
		if err != nil || *v != want {
			t.Errorf("parseLocaleNumber(%q) = %v, %v", in, v, err)
		}
	}
	for _, bad := range []string{"abc", "1e9", "NaN", "1,2,3"} {
		if _, err := parseLocaleNumber(bad); err == nil {
			t.Errorf("parseLocaleNumber(%q) accepted", bad)
		}
	}
}

func TestTheLanguageSwitchIsOnEveryPageAndRemembered(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.clinic()
	h.reading("o1", "p1", "29463-7", time.Now().Add(-time.Hour), "", 72.5)
	ingrid := h.signIn("ingrid", "ingrid's long password")
	ingrid.lang = "sv-SE,sv;q=0.9"
	_, body := ingrid.get("/app/patients/p1")
	for _, s := range []string{`<html lang="sv">`, "72,5 kg", `<label for="lang-select">Språk</label>`, "Senaste värden"} {
		if !strings.Contains(body, s) {
			t.Errorf("Swedish page lacks %q", s)
		}
	}
	resp, _ := ingrid.do(http.MethodPost, "/lang", url.Values{"lang": {"nb"}, "next": {"/app/patients/p1"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/patients/p1" || ingrid.cookies[LangCookie] != "nb" {
		t.Fatalf("POST /lang: %d → %s, cookie %q", resp.StatusCode, resp.Header.Get("Location"), ingrid.cookies[LangCookie])
	}
	_, body = ingrid.get("/app/patients/p1")
	if !strings.Contains(body, `<html lang="nb">`) || !strings.Contains(body, "Siste verdier") {
		t.Error("the chosen language does not win over Accept-Language")
	}
	// A foreign next is refused.
	if resp, _ := ingrid.do(http.MethodPost, "/lang", url.Values{"lang": {"en"}, "next": {"//evil.example"}}); resp.Header.Get("Location") != "/login" {
		t.Errorf("POST /lang with a foreign next → %s", resp.Header.Get("Location"))
	}
	anon := &browser{h: h, cookies: map[string]string{}, lang: "nb"}
	if _, body := anon.get("/login"); !strings.Contains(body, `action="/lang"`) || !strings.Contains(body, "Brukernavn") {
		t.Error("the sign-in page has no Norwegian or no language switch")
	}
}
