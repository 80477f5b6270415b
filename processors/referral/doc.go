// Package referral runs "share with gift": it binds invitees to the
// inviters whose share links they followed, counts each inviter's
// successful invitees and grants the activity's rewards at its thresholds.
//
// Inputs (referral.events, keyed by activity so that one owner decides an
// activity's events in order): clicks (referral.click.recorded) and
// registrations (referral.registered) carry a share-link token; the
// inviter comes from the token alone, verified with the deployment's link
// keys (internal/sharelink). A qualifying action (referral.qualified, e.g.
// the invitee's first order confirmed) makes a bound invitee count when the
// activity says rewards wait for it.
//
// Each event is first judged by a pure precheck (PrecheckBind,
// PrecheckQualify: the activity, its window, the token's signature,
// activity and expiry at occurred_at, self-invites), then decided in one
// atomic Redis step per activity and run (step.lua, whose rule Graph states
// in Go): the first valid binding of an invitee wins, a binding that would
// close a cycle is refused (the walk up the inviter's chain is bounded, see
// Graph.Bind), the inviter's count grows by one per invitee that counts,
// and every reward threshold reached is granted once per inviter, ever.
// The step remembers every decision by (app_id, event_id) and checks the
// partition's fencing epoch, so a redelivered event yields the same
// decision and changes nothing, and a worker that lost its partition
// changes nothing.
//
// Outputs: one referral.bound or referral.qualification.decided per input
// event (referral.results), and per reward reached one
// referral.reward.granted plus one coupon.issue.requested on coupon.claims,
// whose event id is derived from (activity, inviter, threshold): the coupon
// processor decides it once and enforces the batch's stock and limits.
// Records that do not decode go to the dead-letter topic; a forged or
// expired token is a refusal with a reason, not a dead letter.
//
// Activity definitions come from the compacted referral admin topic
// through a stream.View held by every instance (Activities); AdminStage
// dead-letters the definitions that break CheckActivity, once. The package
// writes only to Redis and its result topics; it must not import sinks/.
package referral
