package web

// limitMaxKeys bounds the client addresses the sign-in limiter remembers
// (see internal/limitstore). Per-account lockout (internal/auth) still
// holds when a flood of addresses makes the limiter start over.
const limitMaxKeys = 100_000
