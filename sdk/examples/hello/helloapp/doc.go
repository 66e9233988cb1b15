// Package helloapp is the example chacc module: everything but main, so that
// it can be tested in-process and mounted elsewhere (the benchmarks serve the
// same handler with and without the core). It is written only against the
// SDK, as any third-party module is:
//
//   - module.go declares the routes ([Routes]) and wires the module in
//     Setup ([Module]);
//   - handlers.go serves HTTP with echo ([API]) and handles the module's
//     events;
//   - store.go keeps the module's data in its own database namespace, with
//     versioned migrations ([Store]);
//   - helloapp_test.go tests it all in-process with sdktest, no core needed.
//
// The command in the parent folder (../main.go) only calls sdk.Serve with
// [Module]; ../module_meta.json is the manifest packed beside the binary.
package helloapp
