// Package api is the HTTP API that `promoflow serve` exposes to other
// services: order-time coupon validation (which of a user's coupons apply
// to a cart, what each gives, and why the others do not), a user's coupons,
// and health. It reads the system of record through the sinks' read
// interfaces and batch rules from the coupon admin topic's cache; it never
// writes, and it never scans every shard on a request path.
package api
