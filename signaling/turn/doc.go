// Package turn is Vidda's embedded TURN server (pion/turn v5) and the
// TURN-REST credentials the visit layer hands to browsers.
//
// A patient behind a strict NAT or a firewall that only lets TCP/443 out
// still reaches the SFU through a relay. Credentials follow the TURN REST
// API draft (draft-uberti-behave-turn-rest-00) as coturn implements it with
// use-auth-secret: the username is "<unix-expiry>:<participant>" and the
// password is base64(HMAC-SHA1(secret, username)). They expire after
// Config.TTL (10 minutes by default) and are never logged; neither is the
// secret. Because the same secret works for coturn, Config.External turns
// the embedded server off and only hands out credentials and URLs for an
// external coturn.
//
// Relays to loopback, private, link-local, multicast and unspecified peer
// addresses are refused by default (a PermissionHandler), so the server
// cannot be used to reach the operator's internal network. Tests on one
// machine set Config.AllowLoopback; production must leave it off and name
// the SFU's own private network in Config.AllowPeers if the SFU has no
// public address.
//
// It imports pion/turn, signaling (for the ICEServer type) and internal/obs
// (metric registration) only.
package turn
