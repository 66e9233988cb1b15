// Package archive reads, validates, extracts and packs .chacc module archives.
//
// A module archive is a zip holding module_meta.json, one executable per
// platform at bin/<goos>-<goarch>/<name>, and optionally openapi.json and
// module.sig. The archive comes from a client and is never trusted: [Read]
// refuses unsafe paths, links and special files, duplicate entries, unknown
// compression, encryption, archives over [Limits], invalid manifests and
// executables built for another platform, and it inflates every entry once,
// counting the bytes itself, to hash it. [Archive.Extract] then writes the
// files atomically, checking sizes and hashes again as it goes.
//
// [Sign] adds module.sig, an Ed25519 signature over the SHA-256 of every
// other file (see [Statement]); [Archive.VerifySignature] checks it against a
// [Trust] policy. Keys travel as "ed25519:<base64>" text or PEM: see
// [GenerateKey], [ParsePublicKey] and [ParsePrivateKey].
//
// Every rejection of an archive's content is an [*Error] whose Kind tells the
// HTTP layer which status to answer and whose message is fit for the client.
package archive
