// Package store is the core's database: the desired state of installed
// modules, their archives, the audit log and the event outbox.
//
// [Open] picks the backend from [Config]: Postgres when DatabaseURL is a
// postgres:// URL, otherwise an embedded pure-Go SQLite file under DataDir.
// [DB.Migrate] brings the schema up to date with versioned migrations; it is
// safe to run from several core instances at once.
//
// Each module also gets a namespace of its own, separate from the core's
// tables: a Postgres schema "mod_<name>" or a SQLite file
// DataDir/modules/<name>.db. [DB.ModuleDatabase] creates it and returns the
// DSN the module opens; [DB.DropModuleDatabase] deletes it.
package store
