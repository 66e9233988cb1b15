// Package authapp is the chacc authentication module: users, passwords,
// JWT access tokens with rotating refresh tokens, API keys, roles, lockout,
// email verification and password reset. It declares the "authenticator"
// capability: the core verifies its access tokens with the public key it
// hands over, and asks it about API keys and revocations.
//
// It is everything but main, so that tests (and anything else) can run the
// same module in-process. It is written only against the SDK, as any
// third-party module is:
//
//   - module.go declares the routes and wires the module in Setup ([Module]);
//   - config.go reads the AUTH_* settings;
//   - service.go holds the rules (register, login, refresh, reset, ...);
//   - handlers.go serves them over HTTP with echo;
//   - authenticator.go answers the core's credential questions;
//   - tokens.go signs access tokens; password.go, codes.go, mail.go and
//     bootstrap.go do the rest;
//   - store.go keeps the data, with versioned migrations.
//
// The command in the parent folder (../main.go) only calls sdk.Serve with
// [Module]; ../module_meta.json is the manifest packed beside the binary.
package authapp
