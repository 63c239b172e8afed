package httpapi

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/fhir"
	"github.com/vidda/vidda/internal/auth"
	"github.com/vidda/vidda/signaling"
)

// Visits is the video visit layer; *signaling.Visits is one.
type Visits interface {
	Issue(ctx context.Context, who signaling.Actor, appointmentID string) (*signaling.Grant, error)
	State(ctx context.Context, who signaling.Actor, appointmentID string) (*signaling.VisitState, error)
	Admit(ctx context.Context, who signaling.Actor, appointmentID, participant string) error
	Remove(ctx context.Context, who signaling.Actor, appointmentID, participant string) error
	End(ctx context.Context, who signaling.Actor, appointmentID string) error
	Serve(ctx context.Context, conn signaling.Conn, addr string)
	MaxMessage() int
}

// Video visits (issue 7):
//
//	POST /video/visits/{appointmentId}/join    a join token: {"token","ws","iceServers","expiresAt","participant"}
//	GET  /video/visits/{appointmentId}         the room: who is admitted, who waits (its practitioners)
//	POST /video/visits/{appointmentId}/admit   {"participant":"Patient/p1"} (its practitioners)
//	POST /video/visits/{appointmentId}/remove  {"participant":"Patient/p1"} (its practitioners)
//	POST /video/visits/{appointmentId}/end     (its practitioners)
//	GET  /video/ws?visit={appointmentId}       the websocket; the join token is its first message
//
// A visit's room lives on the instance that owns it (signaling/owner.go).
// Asked for a join token, another instance answers with the owner's
// websocket URL; asked for the state, admit, remove or end, it redirects
// (307) to the same route on the owner.
//
// The HTTP routes take a bearer token or a session cookie (with the CSRF
// token on POST), like every other route. The websocket takes none: the
// join token in its first message is its credential, and it is never in
// the URL, so proxies' access logs do not hold it. ?visit= is there for a
// load balancer pinning rooms to instances by appointment id. The
// signaling package documents the protocol.

// wsWriteTimeout bounds one websocket write: a client that stops reading
// is dropped instead of holding its room's messages.
const wsWriteTimeout = 10 * time.Second

// videoJoinsPerMinute caps join tokens and websocket upgrades per client
// (address, or session): a real participant needs a few, a reconnecting
// phone a few more. The websocket needs no login (its join token is its
// credential), and each upgrade holds a session until its join arrives.
const videoJoinsPerMinute = 60

func (s *Server) videoRoutes() {
	s.app.Get("/video/ws", RateLimiter(RateLimit{Max: videoJoinsPerMinute, Window: time.Minute}), s.visitSocket())
	s.app.Post("/video/visits/:appointmentId/join",
		RateLimiter(RateLimit{Max: videoJoinsPerMinute, Window: time.Minute, SessionCookie: auth.SessionCookie}), s.authenticate, s.joinVisit)
	s.app.Get("/video/visits/:appointmentId", s.authenticate, s.visitState)
	s.app.Post("/video/visits/:appointmentId/admit", s.authenticate, s.admitToVisit)
	s.app.Post("/video/visits/:appointmentId/remove", s.authenticate, s.removeFromVisit)
	s.app.Post("/video/visits/:appointmentId/end", s.authenticate, s.endVisit)
}

// visitActor is the caller as the visit layer sees them.
func visitActor(c *fiber.Ctx) signaling.Actor {
	rid, _ := c.Locals(localRequestID).(string)
	return signaling.Actor{Principal: principal(c), Address: strings.Clone(c.IP()), RequestID: rid}
}

// appointmentParam is the route's appointment id, copied out of fasthttp's
// buffer; an id that cannot exist is not found.
func appointmentParam(c *fiber.Ctx) (string, error) {
	id := strings.Clone(c.Params("appointmentId"))
	if !fhir.ValidID(id) {
		return "", &edgeError{fiber.StatusNotFound, "not-found", "no such appointment"}
	}
	return id, nil
}

// joinVisit is POST /video/visits/{appointmentId}/join.
func (s *Server) joinVisit(c *fiber.Ctx) error {
	id, err := appointmentParam(c)
	if err != nil {
		return err
	}
	g, err := s.deps.Visits.Issue(c.UserContext(), visitActor(c), id)
	if err != nil {
		return videoError(err)
	}
	ice := g.ICEServers
	if ice == nil {
		ice = []signaling.ICEServer{}
	}
	return c.JSON(fiber.Map{
		"token": g.Token, "ws": s.visitSocketURL(g.BaseURL, id), "iceServers": ice,
		"expiresAt": g.ExpiresAt.UTC().Format(time.RFC3339), "participant": g.Participant,
	})
}

// visitSocketURL is the websocket URL of a visit: the base URL with ws or
// wss; base is the base URL of the instance serving the visit, empty for
// this one.
func (s *Server) visitSocketURL(base, appointmentID string) string {
	if base == "" {
		base = s.base
	}
	switch {
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + strings.TrimPrefix(base, "http://")
	}
	return strings.TrimSuffix(base, "/") + "/video/ws?visit=" + url.QueryEscape(appointmentID)
}

// visitState is GET /video/visits/{appointmentId}.
func (s *Server) visitState(c *fiber.Ctx) error {
	id, err := appointmentParam(c)
	if err != nil {
		return err
	}
	st, err := s.deps.Visits.State(c.UserContext(), visitActor(c), id)
	if err != nil {
		return videoFailure(c, err)
	}
	return c.JSON(st)
}

// participantBody reads {"participant":"Patient/p1"}.
func participantBody(c *fiber.Ctx) (string, error) {
	var body struct {
		Participant string `json:"participant"`
	}
	if err := c.BodyParser(&body); err != nil || body.Participant == "" {
		return "", errBadRequest(`send {"participant":"<Type>/<id>"} as JSON`)
	}
	if !signaling.ValidReference(body.Participant) {
		return "", errBadRequest("participant must be a reference such as Patient/p1")
	}
	return strings.Clone(body.Participant), nil
}

func (s *Server) admitToVisit(c *fiber.Ctx) error {
	return s.manageVisit(c, s.deps.Visits.Admit)
}

func (s *Server) removeFromVisit(c *fiber.Ctx) error {
	return s.manageVisit(c, s.deps.Visits.Remove)
}

// manageVisit is POST …/admit and …/remove: 204 when done.
func (s *Server) manageVisit(c *fiber.Ctx, act func(context.Context, signaling.Actor, string, string) error) error {
	id, err := appointmentParam(c)
	if err != nil {
		return err
	}
	who, err := participantBody(c)
	if err != nil {
		return err
	}
	if err := act(c.UserContext(), visitActor(c), id, who); err != nil {
		return videoFailure(c, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// endVisit is POST /video/visits/{appointmentId}/end: 204 when done.
func (s *Server) endVisit(c *fiber.Ctx) error {
	id, err := appointmentParam(c)
	if err != nil {
		return err
	}
	if err := s.deps.Visits.End(c.UserContext(), visitActor(c), id); err != nil {
		return videoFailure(c, err)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// videoFailure answers a practitioner's call on a visit that failed. A
// visit another instance serves is a 307 to the same path and query there
// (method and body kept), as a join is answered with that instance's
// websocket; browsers and Go's client follow it, with the session cookie
// or bearer token while the owner's base URL is on the same host (each
// instance under its own path of the public site, see deploy/README.md).
// The rest is videoError's.
func videoFailure(c *fiber.Ctx, err error) error {
	var away *signaling.ElsewhereError
	if !errors.As(err, &away) {
		return videoError(err)
	}
	loc := strings.TrimSuffix(away.BaseURL, "/") + string(c.Request().URI().RequestURI())
	c.Set(fiber.HeaderLocation, loc)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusTemporaryRedirect).JSON(fiber.Map{"servedAt": away.BaseURL, "instance": away.Instance})
}

// videoError maps the visit layer's errors to statuses; anything else is
// the error handler's (a 500 that is logged).
func videoError(err error) error {
	status, code := 0, ""
	switch {
	case errors.Is(err, signaling.ErrNotParticipant), errors.Is(err, signaling.ErrNotPractitioner):
		status, code = fiber.StatusForbidden, "forbidden"
	case errors.Is(err, signaling.ErrAppointmentNotFound), errors.Is(err, signaling.ErrNoSuchParticipant):
		status, code = fiber.StatusNotFound, "not-found"
	case errors.Is(err, signaling.ErrNotJoinable), errors.Is(err, signaling.ErrNoVisit), errors.Is(err, signaling.ErrRoomFull):
		status, code = fiber.StatusConflict, "conflict"
	case errors.Is(err, signaling.ErrStopped):
		status, code = fiber.StatusServiceUnavailable, "transient"
	case errors.Is(err, signaling.ErrKeyNotShared):
		// Another instance serves the visit and this one's join tokens
		// would not pass there: a deployment error, said as such.
		status, code = fiber.StatusServiceUnavailable, "exception"
	default:
		return err
	}
	return &edgeError{status, code, err.Error()}
}

// visitSocket is GET /video/ws: the websocket upgrade, handed to the visit
// layer. A plain GET is told to upgrade (426).
func (s *Server) visitSocket() fiber.Handler {
	upgrade := websocket.New(func(c *websocket.Conn) {
		c.SetReadLimit(int64(s.deps.Visits.MaxMessage()) + 1)
		// The connection outlives the request: the visit layer's Run
		// stops it on shutdown, not this context.
		s.deps.Visits.Serve(context.Background(), &wsConn{c: c}, c.IP())
	}, websocket.Config{HandshakeTimeout: 10 * time.Second})
	return func(c *fiber.Ctx) error {
		if !websocket.IsWebSocketUpgrade(c) {
			return &edgeError{fiber.StatusUpgradeRequired, "not-supported", "GET /video/ws is a websocket: upgrade the connection"}
		}
		return upgrade(c)
	}
}

// wsConn adapts a gofiber websocket to signaling.Conn. The visit layer
// reads from one goroutine and writes from another; gorilla-style
// websockets allow one of each, and Close (a control frame) from any.
type wsConn struct {
	c    *websocket.Conn
	once sync.Once
}

func (w *wsConn) ReadMessage() ([]byte, error) {
	_, b, err := w.c.ReadMessage() // a binary frame is refused by the decoder like any non-JSON text
	return b, err
}

func (w *wsConn) WriteMessage(b []byte) error {
	if err := w.c.SetWriteDeadline(time.Now().Add(wsWriteTimeout)); err != nil {
		return err
	}
	return w.c.WriteMessage(websocket.TextMessage, b)
}

func (w *wsConn) Close(code int, reason string) error {
	var err error
	w.once.Do(func() {
		_ = w.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		err = w.c.Close()
	})
	return err
}
