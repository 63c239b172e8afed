package web

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/internal/auth"
)

// page is what layout.html needs of every page.
type page struct {
	L *Localizer
	// Title is the page's title, before " · Vidda".
	Title string
	// CSRF is the token of the page's forms: the session's, or the sign-in
	// form's double-submit token. SessionCSRF goes in <meta name=
	// "csrf-token"> for scripts, only with a session.
	CSRF, SessionCSRF string
	// User is who is signed in ("" on the sign-in page), Staff whether
	// they see the dashboard.
	User  string
	Staff bool
	// Path is where the language switch returns to.
	Path string
	// Script loads the live-update script.
	Script bool
}

// localizer is the request's: the language chosen by cookie or
// Accept-Language, the clinic's zone.
func (p *Pages) localizer(c *fiber.Ctx) *Localizer {
	lang := p.cats.choose(c.Cookies(LangCookie), c.Get(fiber.HeaderAcceptLanguage))
	return p.cats.localizer(lang, p.zone, p.now())
}

// base fills what every page has; sess may be nil.
func (p *Pages) base(c *fiber.Ctx, sess *auth.Session, titleKey string) page {
	l := p.localizer(c)
	pg := page{L: l, Title: l.T(titleKey), Path: strings.Clone(c.OriginalURL())}
	if sess != nil {
		pg.CSRF, pg.SessionCSRF, pg.User = sess.CSRFToken, sess.CSRFToken, sess.Username
		pg.Staff = sess.Principal.Role != auth.RolePatient
	}
	return pg
}

// sessionHandler is a page handler with its signed-in session.
type sessionHandler func(c *fiber.Ctx, sess *auth.Session) error

// staff guards the dashboard: a staff session (nurse, clinician, admin),
// and for anything but GET the session's CSRF token. Without a session a
// page sends the browser to sign in, a fragment or form gets 401; a
// patient is sent to /me, or refused.
func (p *Pages) staff(h sessionHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		sess := p.session(c)
		get := c.Method() == fiber.MethodGet
		if sess == nil {
			if get && (c.Path() == "/app" || strings.HasPrefix(c.Path(), "/app/patients/")) {
				return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
			}
			return p.fail(c, nil, fiber.StatusUnauthorized, "error.signin")
		}
		if sess.Principal.Role == auth.RolePatient {
			if get && c.Path() == "/app" {
				return c.Redirect("/me", fiber.StatusSeeOther)
			}
			return p.fail(c, sess, fiber.StatusForbidden, "error.forbidden")
		}
		if !get && !sess.CheckCSRF(csrfToken(c)) {
			return p.fail(c, sess, fiber.StatusForbidden, "error.csrf")
		}
		return p.withTimeout(c, sess, h)
	}
}

// patientOnly guards /me: a patient's session; staff go to /app.
func (p *Pages) patientOnly(h sessionHandler) fiber.Handler {
	return func(c *fiber.Ctx) error {
		sess := p.session(c)
		if sess == nil {
			return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
		}
		if sess.Principal.Role != auth.RolePatient {
			return c.Redirect("/app", fiber.StatusSeeOther)
		}
		return p.withTimeout(c, sess, h)
	}
}

// withTimeout bounds the handler's database work: fasthttp does not
// cancel a request whose client went away.
func (p *Pages) withTimeout(c *fiber.Ctx, sess *auth.Session, h sessionHandler) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), p.cfg.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	return h(c, sess)
}

// errorData fills templates/error.html.
type errorData struct {
	page
	Status  int
	Message string
}

// fail answers with an error page saying msgKey.
func (p *Pages) fail(c *fiber.Ctx, sess *auth.Session, status int, msgKey string) error {
	d := errorData{page: p.base(c, sess, "error.title"), Status: status}
	d.Message = d.L.T(msgKey)
	return p.render(c, status, "error", d)
}

// failErr answers a failed page with the status its error maps to,
// logging what the user is not shown.
func (p *Pages) failErr(c *fiber.Ctx, sess *auth.Session, err error) error {
	status := statusOf(err)
	key := map[int]string{
		fiber.StatusBadRequest: "error.badrequest", fiber.StatusForbidden: "error.forbidden",
		fiber.StatusNotFound: "error.notfound", fiber.StatusConflict: "error.conflict",
		fiber.StatusUnauthorized: "error.signin",
	}[status]
	if key == "" {
		key = "error.internal"
		p.log.ErrorContext(c.UserContext(), "page failed", "path", c.Path(), "err", err, "request_id", requestID(c))
	}
	return p.fail(c, sess, status, key)
}

// setLang is POST /lang (form: lang, next): it remembers the language for
// a year and goes back. A language is a preference, not data: no session
// or CSRF token is needed, and the sign-in page has the switch too.
func (p *Pages) setLang(c *fiber.Ctx) error {
	lang := c.FormValue("lang")
	if _, ok := p.cats.byLang[lang]; ok {
		c.Cookie(&fiber.Cookie{
			Name: LangCookie, Value: strings.Clone(lang), Path: "/", Expires: time.Now().AddDate(1, 0, 0),
			Secure: p.cfg.SecureCookies, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		})
	}
	next := safeNext(c.FormValue("next"))
	if next == "" {
		next = "/login"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}
