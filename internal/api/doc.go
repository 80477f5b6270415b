// Package api is the HTTP API that `promoflow serve` exposes to other
// services: order-time coupon validation (which of a user's coupons apply
// to a cart, what each gives, and why the others do not), a user's coupons,
// users' station-message inboxes (站内信: a page of messages, the unread
// count, marking read), and health. It reads the system of record through
// the sinks' interfaces and batch rules from the coupon admin topic's
// cache; the only state it changes is a user's inbox (delivering messages
// to all users when the user reads, and read marks), and it never scans
// every shard on a request path.
package api
