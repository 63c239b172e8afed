package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vidda/vidda/devices"
	"github.com/vidda/vidda/internal/auth"
)

// DeviceCredentials answers an external broker's questions about devices.
type DeviceCredentials interface {
	// CheckDevice returns the device id for a username and password.
	CheckDevice(ctx context.Context, username, password string) (deviceID string, ok bool, err error)
	// DeviceOf returns the device id of a username (ok false: none).
	DeviceOf(ctx context.Context, username string) (deviceID string, ok bool, err error)
}

// BrokerAccount is vidda's own account on the external broker: it may
// read the shared device subscriptions and publish acks and errors.
type BrokerAccount struct {
	Username, Password string
}

// The external broker's auth hook (EMQX HTTP authentication and
// authorization, mosquitto-go-auth's http backend) calls these routes with
// a system token. Allowed: 200 {"result":"allow"}; denied: 403
// {"result":"deny"} (EMQX then falls through to deny, mosquitto-go-auth
// reads the status).
func (s *Server) mqttRoutes() {
	g := s.app.Group("/mqtt/auth", s.authenticate, requireRole(auth.RoleSystem, auth.RoleAdmin))
	if n := s.cfg.MQTTAuthPerMinute; n > 0 {
		g.Post("/user", RateLimiter(RateLimit{Max: n, Window: time.Minute}), s.mqttUser)
	} else {
		g.Post("/user", s.mqttUser)
	}
	g.Post("/superuser", s.mqttSuperuser)
	g.Post("/acl", s.mqttACL)
}

func requireRole(roles ...auth.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := principal(c)
		for _, r := range roles {
			if p != nil && p.Role == r {
				return c.Next()
			}
		}
		return fmt.Errorf("this route is for %v tokens: %w", roles, auth.ErrForbidden)
	}
}

// mqttRequest holds the fields both EMQX (JSON) and mosquitto-go-auth
// (form or JSON) send.
type mqttRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	ClientID string `json:"clientid"`
	Topic    string `json:"topic"`
	// Action is EMQX's "publish"/"subscribe"; Acc is mosquitto-go-auth's
	// 1 read, 2 write, 3 read+write, 4 subscribe.
	Action string `json:"action"`
	Acc    int    `json:"acc"`
}

func parseMQTTRequest(c *fiber.Ctx) (mqttRequest, error) {
	var r mqttRequest
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationJSON) {
		if err := json.Unmarshal(c.Body(), &r); err != nil {
			return r, errBadRequest("body is not JSON: " + err.Error())
		}
		return r, nil
	}
	form, err := url.ParseQuery(string(c.Body()))
	if err != nil {
		return r, errBadRequest("body is not a form: " + err.Error())
	}
	r.Username, r.Password, r.ClientID, r.Topic, r.Action = form.Get("username"), form.Get("password"), form.Get("clientid"), form.Get("topic"), form.Get("action")
	_, _ = fmt.Sscan(form.Get("acc"), &r.Acc)
	return r, nil
}

func (s *Server) isService(r mqttRequest, checkPassword bool) bool {
	a := s.deps.BrokerAccount
	if a.Username == "" || subtle.ConstantTimeCompare([]byte(r.Username), []byte(a.Username)) != 1 {
		return false
	}
	return !checkPassword || subtle.ConstantTimeCompare([]byte(r.Password), []byte(a.Password)) == 1
}

func mqttVerdict(c *fiber.Ctx, allow bool) error {
	if allow {
		return c.JSON(fiber.Map{"result": "allow", "is_superuser": false})
	}
	return c.Status(fiber.StatusForbidden).JSON(fiber.Map{"result": "deny"})
}

func (s *Server) mqttUser(c *fiber.Ctx) error {
	r, err := parseMQTTRequest(c)
	if err != nil {
		return err
	}
	if s.isService(r, true) {
		return mqttVerdict(c, true)
	}
	_, ok, err := s.deps.Devices.CheckDevice(c.UserContext(), r.Username, r.Password)
	if err != nil {
		return err
	}
	return mqttVerdict(c, ok)
}

func (s *Server) mqttSuperuser(c *fiber.Ctx) error {
	r, err := parseMQTTRequest(c)
	if err != nil {
		return err
	}
	return mqttVerdict(c, s.isService(r, false))
}

// mqttACL allows a device its own topics only (devices.MayPublish and
// MayRead), and vidda's account the device topics it serves.
func (s *Server) mqttACL(c *fiber.Ctx) error {
	r, err := parseMQTTRequest(c)
	if err != nil {
		return err
	}
	publish := r.Action == "publish" || r.Acc == 2 || r.Acc == 3
	if s.isService(r, false) {
		if publish {
			_, ok := replyDevice(r.Topic)
			return mqttVerdict(c, ok)
		}
		return mqttVerdict(c, strings.HasPrefix(r.Topic, "$share/") || strings.HasPrefix(r.Topic, devices.TopicPrefix))
	}
	deviceID, ok, err := s.deps.Devices.DeviceOf(c.UserContext(), r.Username)
	if err != nil {
		return err
	}
	if !ok {
		return mqttVerdict(c, false)
	}
	if publish {
		_, allowed := devices.MayPublish(r.Topic, deviceID)
		return mqttVerdict(c, allowed)
	}
	return mqttVerdict(c, devices.MayRead(r.Topic, deviceID))
}

// replyDevice returns the device of an acks or errors topic.
func replyDevice(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, devices.TopicPrefix)
	if !ok {
		return "", false
	}
	id, which, ok := strings.Cut(rest, "/")
	if !ok || !devices.ValidDeviceID(id) || (which != "acks" && which != "errors") {
		return "", false
	}
	return id, true
}
