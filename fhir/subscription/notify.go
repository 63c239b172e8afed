package subscription

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/vidda/vidda/fhir/store"
)

// Notifications (R4 Subscription §2.46.7.1, rest-hook): a POST to
// channel.endpoint with the channel's headers and
//
//   - payload application/fhir+json: a Bundle of type history holding the
//     matched version (fullUrl, resource, request and response as a
//     history entry has them), Bundle.id = the event id;
//   - no payload: no body at all.
//
// Either way the headers say which event it is, so a receiver can
// deduplicate (delivery is at least once) and, without a payload, fetch
// the resource:
//
//	X-Vidda-Event-Id       the event's UUID, from the subscription and the
//	                       version (store.EventID): the same on every attempt
//	X-Vidda-Event-Number   its number, increasing per subscription
//	X-Vidda-Subscription   Subscription/<id>
//	X-Vidda-Resource       Type/id/_history/version
//
// A handshake, sent when a subscription is created or changed, carries
// X-Vidda-Notification: handshake and, with a payload, an empty history
// Bundle. Vidda POSTs a Bundle to the endpoint instead of R4's PUT of the
// bare resource to endpoint/Type/id: one URL for the receiver, and an id
// to deduplicate on. Any 2xx is success; redirects are not followed.

// notification is one request to a subscription's endpoint.
type notification struct {
	sub      string
	endpoint *url.URL
	header   http.Header
	// body is nil without a payload.
	body []byte
	// event is nil for a handshake.
	event *store.Event
}

// historyBundle is the payload of one event: the version as a history
// entry. Stored bytes go in as they are.
func historyBundle(base string, ev *store.Event, st *store.Stored) ([]byte, error) {
	method, reqURL, status := "PUT", st.Type+"/"+st.ID, "200"
	if st.VersionID == 1 {
		method, reqURL, status = "POST", st.Type, "201"
	}
	type request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	}
	type response struct {
		Status       string `json:"status"`
		Etag         string `json:"etag"`
		LastModified string `json:"lastModified"`
	}
	type entry struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  request         `json:"request"`
		Response response        `json:"response"`
	}
	b := struct {
		ResourceType string  `json:"resourceType"`
		ID           string  `json:"id"`
		Type         string  `json:"type"`
		Timestamp    string  `json:"timestamp"`
		Entry        []entry `json:"entry"`
	}{
		ResourceType: "Bundle", ID: ev.ID, Type: "history", Timestamp: instant(ev.Created),
		Entry: []entry{{
			FullURL:  base + "/fhir/" + st.Type + "/" + st.ID,
			Resource: st.Content,
			Request:  request{Method: method, URL: reqURL},
			Response: response{
				Status: status, Etag: `W/"` + strconv.FormatInt(st.VersionID, 10) + `"`,
				LastModified: instant(st.LastUpdated),
			},
		}},
	}
	out, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("notification %s: %w", ev.ID, err)
	}
	return out, nil
}

// handshakeBundle is the payload of a handshake: an empty history Bundle.
func handshakeBundle(at time.Time) []byte {
	return []byte(`{"resourceType":"Bundle","id":"` + uuid.NewString() + `","type":"history","timestamp":"` + instant(at) + `","entry":[]}`)
}

func instant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// sender posts notifications.
type sender struct {
	client *http.Client
}

// newSender returns a sender whose requests end after timeout and never
// reach link-local addresses (cloud metadata services), whatever a name
// resolves to.
func newSender(timeout time.Duration) *sender {
	dialer := &net.Dialer{Timeout: timeout, Control: refuseLinkLocal}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &sender{client: &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// errLinkLocal refuses a connection to a link-local address.
var errLinkLocal = errors.New("endpoint resolves to a link-local address")

func refuseLinkLocal(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified()) {
		return errLinkLocal
	}
	return nil
}

// send posts n; an error says why it failed in words fit for
// Subscription.error and the log: the status or the network error, never
// the endpoint's path or query (they may hold secrets), a header or the
// body.
func (s *sender) send(ctx context.Context, n *notification) error {
	var body io.Reader
	if n.body != nil {
		body = bytes.NewReader(n.body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.endpoint.String(), body)
	if err != nil {
		return fmt.Errorf("notification: %w", err)
	}
	for k, vs := range n.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if n.body != nil {
		req.Header.Set("Content-Type", PayloadFHIR+"; fhirVersion=4.0")
	}
	req.Header.Set("X-Vidda-Subscription", "Subscription/"+n.sub)
	if n.event == nil {
		req.Header.Set("X-Vidda-Notification", "handshake")
	} else {
		v := n.event.Version
		req.Header.Set("X-Vidda-Notification", "event")
		req.Header.Set("X-Vidda-Event-Id", n.event.ID)
		req.Header.Set("X-Vidda-Event-Number", strconv.FormatInt(n.event.Number, 10))
		req.Header.Set("X-Vidda-Resource", v.Type+"/"+v.ID+"/_history/"+strconv.FormatInt(v.Version, 10))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its message repeats the URL, query and all
		}
		return fmt.Errorf("notification not delivered: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w %s", errRefused, resp.Status)
	}
	return nil
}

// errRefused: the endpoint answered, with a status other than 2xx.
var errRefused = errors.New("notification refused: the endpoint answered")
