// Package sharelink signs and verifies the tokens of share links
// ("share with gift" referrals): a token names a referral activity, the
// inviter who shares it and when it expires, and is signed with HMAC-SHA256
// under one of the deployment's link keys, so that nobody without the key
// can make or alter one.
//
// A token is the unpadded base64url encoding (RFC 4648 §5) of
//
//	version    1 byte, 0x01
//	key id     1 byte length, then the id ([A-Za-z0-9][A-Za-z0-9_-]{0,15})
//	activity   1 byte length, then the activity id (the schemas' activity pattern)
//	inviter    1 byte length, then the inviter's user id (the schemas' user pattern)
//	expires    unsigned varint (Go's binary.AppendUvarint): unix seconds
//	mac        32 bytes: HMAC-SHA256(secret of key id, "promoflow-share-link\x00" || every byte above)
//
// so a typical token is 80 to 100 characters and the longest 340. The key
// id selects the secret, which lets a deployment rotate keys: new links are
// signed with the signing key while every listed key still verifies. The
// MAC is compared in constant time, and a token is accepted only in its one
// canonical encoding (strict base64, minimal varint), so one link has
// exactly one token.
//
// Verification says nothing about expiry; [Keyring.Resolve] checks both.
// The package holds no state beyond the keys and does no I/O: the HTTP API,
// the Go SDK, the referral processor and the command line all use it.
package sharelink
