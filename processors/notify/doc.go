// Package notify fans a notification campaign out to a crowd: a planner
// pages the crowd's members into shards of about 1,000 users on
// notify.shards, and any number of sender members deliver the shards
// through a pluggable Sender (LogSender, WebhookSender), with frequency
// caps per user across campaigns.
//
// Every user is sent a campaign at most once: one Redis script call per
// shard reserves the users not yet sent (recording the reservation in the
// user's own hash, under the campaign), and a second marks them sent after
// the Sender delivered them. A shard that fails is released and retried by
// the runtime; a repeated request, a duplicated shard or a replay finds its
// users already sent. The one window left is a sender that delivered and
// crashed before the mark: the shard is redelivered and those users are sent
// again, carrying the same idempotency key (<campaign>:<user>) for the
// receiver to drop. See docs/notifications.md.
package notify
