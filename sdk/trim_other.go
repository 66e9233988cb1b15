//go:build !linux

package sdk

// trimExecutable is Linux only; elsewhere the executable's pages stay mapped.
func trimExecutable() (int64, error) { return 0, nil }
