package modules

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chacc/chacc/core"
	"github.com/chacc/chacc/core/archive"
	"github.com/chacc/chacc/core/instance"
	"github.com/chacc/chacc/core/store"
	"github.com/chacc/chacc/sdk"
)

// InstallResult is the outcome of Install.
type InstallResult struct {
	Status *core.ModuleStatus
	// Upgraded is true when another version was replaced.
	Upgraded        bool
	PreviousVersion string
}

// Install validates an uploaded archive, starts it and, once it is healthy,
// records it and mounts it. Uploading another version of an installed module
// upgrades it blue/green: the new process starts beside the old one, takes
// over the prefixes atomically, and the old one drains and stops. A failure
// at any step leaves no file, record or process behind, and an upgrade that
// fails leaves the old version serving.
func (m *Manager) Install(ctx context.Context, actor Actor, filename string, up *Upload, force bool) (*InstallResult, error) {
	archiveTmp := up.path // moved into place once the install commits
	defer up.Remove()
	if !strings.HasSuffix(strings.ToLower(filename), ".chacc") {
		return nil, core.Errorf(core.EINVALID, "INVALID_FILE_TYPE", "Only .chacc module packages are allowed.")
	}
	began := time.Now()
	// Read and extract in one pass into a staging directory; every failure
	// below removes it.
	staging := filepath.Join(m.cfg.LoadedDir, stagingPrefix+randomSuffix())
	cleanup := []string{staging}
	defer func() {
		for _, p := range cleanup {
			_ = os.RemoveAll(p)
		}
	}()
	f, err := os.Open(archiveTmp)
	if err != nil {
		return nil, err
	}
	goos, goarch := platform()
	var arch *archive.Archive
	withExtraProc(func() { arch, err = archive.ReadAndExtract(f, up.size, m.cfg.Limits, goos, goarch, staging) })
	f.Close()
	if err != nil {
		return nil, archiveError(err)
	}
	extracted := time.Now()
	man := arch.Manifest
	sig, err := arch.VerifySignature(m.cfg.Trust)
	if err != nil {
		err = archiveError(err)
		m.audit(actor, "install", man.Name, man.Version, err)
		return nil, err
	}
	if err := m.checkCoreVersion(man); err != nil {
		return nil, err
	}

	m.opMu.Lock()
	defer m.opMu.Unlock()

	fail := func(err error) (*InstallResult, error) {
		m.audit(actor, "install", man.Name, man.Version, err)
		return nil, err
	}
	var old store.Module
	hasOld := false
	if err := m.db.WithContext(ctx).Where("name = ?", man.Name).Take(&old).Error; err == nil {
		hasOld = true
	} else if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, err
	}
	if hasOld && !force {
		nv, ov := semver.MustParse(man.Version), semver.MustParse(old.Version)
		switch {
		case nv.Equal(ov):
			return fail(core.Errorf(core.ECONFLICT, "MODULE_EXISTS", "Module '%s' version %s is already installed; upload with ?force=true to reinstall it.", man.Name, man.Version))
		case nv.LessThan(ov):
			return fail(core.Errorf(core.ECONFLICT, "MODULE_DOWNGRADE", "Module '%s' %s is installed; %s is older. Upload with ?force=true to downgrade.", man.Name, old.Version, man.Version))
		}
	}
	others, err := m.records(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkConflicts(man, others); err != nil {
		return fail(err)
	}
	// An upgrade keeps the operator's choice: a disabled module stays
	// disabled, and is neither started nor required to have its dependencies.
	enabled := !hasOld || old.Enabled
	if enabled {
		if err := checkDependencies(man, others); err != nil {
			return fail(err)
		}
	}
	if err := checkDependents(man.Name, man.Version, others); err != nil {
		return fail(err)
	}

	modDir := filepath.Join(m.cfg.LoadedDir, man.Name)
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	rec := store.Module{
		Name: man.Name, Version: man.Version, Enabled: enabled, ManifestJSON: string(mustJSON(man)),
		ExecutableSHA256: arch.ExecutableSHA256,
		Executable:       arch.Executable, InstalledAt: now, UpdatedAt: now,
		SignedBy: sig.PublicKey, SignatureKeyID: sig.KeyID, SignatureTrusted: sig.Trusted,
	}
	if hasOld {
		rec.InstalledAt = old.InstalledAt
	}
	mod := m.getOrCreate(man.Name)
	// A first install that fails must not leave the namespace and data
	// directory its start created; they are new exactly when the data
	// directory is (uninstall without purge keeps both).
	dataDir := filepath.Join(m.cfg.DataDir, "modules", man.Name)
	_, statErr := os.Stat(dataDir)
	freshData := !hasOld && errors.Is(statErr, fs.ErrNotExist)
	undo := func() {
		if hasOld {
			return
		}
		m.forget(man.Name)
		if freshData {
			if err := m.db.DropModuleDatabase(context.WithoutCancel(ctx), man.Name); err != nil {
				m.log.ErrorContext(ctx, "drop database of failed install", "module", man.Name, "error", err)
			}
			_ = os.RemoveAll(dataDir)
		}
		_ = os.Remove(modDir) // only if empty
	}
	var inst *instance.Instance
	rec.Subscribes = string(mustJSON(unionSorted(man.Subscribes, nil)))
	starting := time.Now()
	if enabled {
		inst, err = m.startInstance(ctx, mod, rec, man, staging, true)
		if err != nil {
			undo()
			return fail(core.Errorf(core.EUNPROCESSABLE, "MODULE_START_FAILED", "Module '%s' failed to start: %v", man.Name, err))
		}
		rec.Subscribes = string(mustJSON(unionSorted(man.Subscribes, inst.Describe().GetSubscribes())))
	}

	started := time.Now()
	rec.ArchiveSHA256 = up.sha256
	action := "install"
	if hasOld {
		action = "upgrade"
	}
	err = m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&rec).Error; err != nil {
			return err
		}
		// The archive goes to the database once the module serves
		// (storeArchiveLater, archives.go).
		if err := m.db.NotifyModules(tx); err != nil {
			return err
		}
		return tx.Create(auditEntry(actor, action, man.Name, man.Version, nil)).Error
	})
	if err != nil {
		if inst != nil {
			inst.Kill()
		}
		undo()
		return nil, fmt.Errorf("record module: %w", err)
	}

	// Committed: put the files in place and switch.
	final := m.versionDir(man.Name, man.Version)
	if _, err := os.Stat(final); err == nil {
		aside := filepath.Join(modDir, ".old-"+randomSuffix())
		if err := os.Rename(final, aside); err == nil {
			cleanup = append(cleanup, aside)
		}
	}
	if err := os.Rename(staging, final); err != nil {
		m.log.ErrorContext(ctx, "could not move extracted module into place", "module", man.Name, "error", err)
	}
	finalArchive := filepath.Join(m.cfg.InstalledDir, man.Name+"-"+man.Version+".chacc")
	if err := os.Rename(archiveTmp, finalArchive); err != nil {
		m.log.ErrorContext(ctx, "could not move archive into place", "module", man.Name, "error", err)
	}

	mod.mu.Lock()
	mod.gen++
	mod.setRecord(rec, man)
	mod.crashes, mod.restarts = nil, 0
	var prev *instance.Instance
	if inst != nil {
		prev = m.mount(mod, inst)
	}
	mod.mu.Unlock()
	switched := time.Now()
	m.storeArchiveLater(rec)
	m.stop(prev)
	if hasOld && old.Version != man.Version {
		m.removeVersion(old.Name, old.Version)
	}
	ms := func(a, b time.Time) float64 { return float64(b.Sub(a).Microseconds()) / 1000 }
	m.log.InfoContext(ctx, "module "+map[string]string{"install": "installed", "upgrade": "upgraded"}[action], "module", man.Name, "version", man.Version, "enabled", enabled, "actor", actor.Name,
		slog.Group("ms", "extract", ms(began, extracted), "checks", ms(extracted, starting), "start", ms(starting, started), "commit", ms(started, switched), "total", ms(began, time.Now())))
	st, err := m.Status(context.WithoutCancel(ctx), man.Name)
	if err != nil {
		return nil, err
	}
	return &InstallResult{Status: st, Upgraded: hasOld, PreviousVersion: old.Version}, nil
}

// Enable starts a disabled module (or one that crashed or failed) and mounts
// it. Its dependencies must be installed, enabled and of the right version.
func (m *Manager) Enable(ctx context.Context, actor Actor, name string) (string, error) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	rec, mod, err := m.record(ctx, name)
	if err != nil {
		return "", err
	}
	if rec.Enabled && mod.inst.Load() != nil {
		return fmt.Sprintf("Module '%s' is already enabled.", name), nil
	}
	recs, err := m.records(ctx)
	if err != nil {
		return "", err
	}
	var man sdk.Manifest
	_ = json.Unmarshal([]byte(rec.ManifestJSON), &man)
	if err := checkDependencies(man, recs); err != nil {
		m.audit(actor, "enable", name, rec.Version, err)
		return "", err
	}
	if err := m.ensureExtracted(ctx, rec); err != nil {
		return "", err
	}
	mod.mu.Lock()
	mod.gen++ // stop any supervisor still trying
	mod.state = core.StateStarting
	mod.mu.Unlock()
	inst, err := m.startInstance(ctx, mod, rec, man, m.versionDir(name, rec.Version), false)
	if err != nil {
		err = core.Errorf(core.EUNPROCESSABLE, "MODULE_START_FAILED", "Module '%s' failed to start: %v", name, err)
		mod.mu.Lock()
		mod.state, mod.lastError = core.StateFailed, err.Error()
		mod.mu.Unlock()
		m.audit(actor, "enable", name, rec.Version, err)
		return "", err
	}
	rec.Enabled, rec.UpdatedAt = true, time.Now().UTC()
	if err := m.saveDesired(ctx, actor, "enable", rec); err != nil {
		inst.Kill()
		return "", err
	}
	m.switchTo(mod, rec, man, inst)
	return fmt.Sprintf("Module '%s' enabled and running.", name), nil
}

// Disable unmounts a module (its prefix answers 404 at once) and stops it
// after its in-flight requests finish. Refused while an enabled module
// depends on it.
func (m *Manager) Disable(ctx context.Context, actor Actor, name string) (string, error) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	rec, mod, err := m.record(ctx, name)
	if err != nil {
		return "", err
	}
	if !rec.Enabled {
		return fmt.Sprintf("Module '%s' is already disabled.", name), nil
	}
	if err := m.refuseIfDependedOn(ctx, actor, "disable", "disabled", rec); err != nil {
		return "", err
	}
	rec.Enabled, rec.UpdatedAt = false, time.Now().UTC()
	if err := m.saveDesired(ctx, actor, "disable", rec); err != nil {
		return "", err
	}
	mod.mu.Lock()
	mod.gen++
	mod.rec = rec
	old := m.unmount(mod)
	mod.mu.Unlock()
	m.stop(old)
	return fmt.Sprintf("Module '%s' disabled and stopped.", name), nil
}

// Uninstall stops a module and removes its archive, extracted files, record
// and event position. Its database namespace is kept unless purge is set.
func (m *Manager) Uninstall(ctx context.Context, actor Actor, name string, purge bool) (string, error) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	rec, mod, err := m.record(ctx, name)
	if err != nil {
		return "", err
	}
	if err := m.refuseIfDependedOn(ctx, actor, "uninstall", "uninstalled", rec); err != nil {
		return "", err
	}
	err = m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("name = ?", name).Delete(&store.Module{}).Error; err != nil {
			return err
		}
		if err := tx.Where("name = ?", name).Delete(&store.ModuleArchive{}).Error; err != nil {
			return err
		}
		if err := m.db.NotifyModules(tx); err != nil {
			return err
		}
		return tx.Create(auditEntry(actor, "uninstall", name, rec.Version, nil)).Error
	})
	if err != nil {
		return "", err
	}
	mod.mu.Lock()
	mod.gen++
	mod.rec.Enabled = false
	old := m.unmount(mod)
	mod.mu.Unlock()
	m.stop(old)
	m.forget(name)
	if m.bus != nil {
		if err := m.bus.Unsubscribe(ctx, name, true); err != nil {
			m.log.Error("forget event position", "module", name, "error", err)
		}
	}
	m.removeFiles(name)
	msg := fmt.Sprintf("Module '%s' uninstalled; its data was kept.", name)
	if purge {
		if err := m.db.DropModuleDatabase(ctx, name); err != nil {
			return "", err
		}
		_ = os.RemoveAll(filepath.Join(m.cfg.DataDir, "modules", name))
		msg = fmt.Sprintf("Module '%s' uninstalled and its data deleted.", name)
	}
	return msg, nil
}

// Names of the files an install stages before it commits; a crash can leave
// them behind, and Start removes them.
const (
	stagingPrefix = ".staging-"
	uploadPrefix  = ".upload-"
)

// removeStaging deletes what an interrupted install left behind.
func (m *Manager) removeStaging() {
	for _, pattern := range []string{
		filepath.Join(m.cfg.LoadedDir, stagingPrefix+"*"),
		filepath.Join(m.cfg.LoadedDir, "*", ".old-*"),
		filepath.Join(m.cfg.InstalledDir, uploadPrefix+"*"),
	} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			_ = os.RemoveAll(p)
		}
	}
}

// removeUnrecorded deletes the extracted files and archives that no record
// accounts for: a module uninstalled, or upgraded, by another core while this
// one was down. It runs at Start, before any process of this core exists.
func (m *Manager) removeUnrecorded(recs []store.Module) {
	current := map[string]string{}
	for _, rec := range recs {
		current[rec.Name] = rec.Version
	}
	names, _ := os.ReadDir(m.cfg.LoadedDir)
	for _, n := range names {
		if strings.HasPrefix(n.Name(), ".") {
			continue
		}
		version, ok := current[n.Name()]
		if !ok {
			m.log.Info("removing the files of a module that is no longer installed", "module", n.Name())
			_ = os.RemoveAll(filepath.Join(m.cfg.LoadedDir, n.Name()))
			continue
		}
		versions, _ := os.ReadDir(filepath.Join(m.cfg.LoadedDir, n.Name()))
		for _, v := range versions {
			if v.Name() != version {
				_ = os.RemoveAll(filepath.Join(m.cfg.LoadedDir, n.Name(), v.Name()))
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(m.cfg.InstalledDir, "*.chacc"))
	for _, p := range files {
		keep := false
		for name, version := range current {
			keep = keep || filepath.Base(p) == name+"-"+version+".chacc"
		}
		if !keep {
			_ = os.Remove(p)
		}
	}
}

func isVersion(s string) bool { _, err := semver.StrictNewVersion(s); return err == nil }

// refuseIfDependedOn answers 409, audited, while an enabled module depends
// on rec's module; done is the action's past participle for the message.
func (m *Manager) refuseIfDependedOn(ctx context.Context, actor Actor, action, done string, rec store.Module) error {
	recs, err := m.records(ctx)
	if err != nil {
		return err
	}
	deps := enabledDependents(rec.Name, recs)
	if len(deps) == 0 {
		return nil
	}
	err = core.Errorf(core.ECONFLICT, "MODULE_IN_USE", "Module '%s' cannot be %s: enabled modules depend on it: %s.", rec.Name, done, strings.Join(deps, ", "))
	m.audit(actor, action, rec.Name, rec.Version, err)
	return err
}

// switchTo records rec as what mod runs and makes inst serve it; the instance
// it replaces (a supervisor's restart that raced, or an older version) is
// drained and stopped.
func (m *Manager) switchTo(mod *module, rec store.Module, man sdk.Manifest, inst *instance.Instance) {
	mod.mu.Lock()
	mod.gen++
	mod.setRecord(rec, man)
	mod.crashes = nil
	prev := m.mount(mod, inst)
	mod.mu.Unlock()
	m.stop(prev)
}

// removeVersion deletes one version's extracted files and archive.
func (m *Manager) removeVersion(name, version string) {
	_ = os.RemoveAll(m.versionDir(name, version))
	_ = os.Remove(filepath.Join(m.cfg.InstalledDir, name+"-"+version+".chacc"))
}

// removeFiles deletes every extracted file and archive of a module, and no
// other module's ("hello-1.0.0.chacc", not "hello-world-1.0.0.chacc").
func (m *Manager) removeFiles(name string) {
	_ = os.RemoveAll(filepath.Join(m.cfg.LoadedDir, name))
	matches, _ := filepath.Glob(filepath.Join(m.cfg.InstalledDir, name+"-*.chacc"))
	for _, p := range matches {
		if isVersion(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), name+"-"), ".chacc")) {
			_ = os.Remove(p)
		}
	}
}

// forget drops a module's in-memory state.
func (m *Manager) forget(name string) {
	m.mu.Lock()
	delete(m.mods, name)
	m.mu.Unlock()
	m.rebuildRoutes()
}

func (m *Manager) record(ctx context.Context, name string) (store.Module, *module, error) {
	var rec store.Module
	err := m.db.WithContext(ctx).Where("name = ?", name).Take(&rec).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return rec, nil, core.Errorf(core.ENOTFOUND, "MODULE_NOT_FOUND", "Module not found.")
	}
	if err != nil {
		return rec, nil, err
	}
	mod := m.getOrCreate(name)
	mod.mu.Lock()
	if mod.rec.Name == "" {
		mod.rec = rec
		_ = json.Unmarshal([]byte(rec.ManifestJSON), &mod.manifest)
	}
	mod.mu.Unlock()
	return rec, mod, nil
}

func (m *Manager) records(ctx context.Context) ([]store.Module, error) {
	var recs []store.Module
	err := m.db.WithContext(ctx).Order("name").Find(&recs).Error
	return recs, err
}

func (m *Manager) saveDesired(ctx context.Context, actor Actor, action string, rec store.Module) error {
	return m.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&store.Module{}).Where("name = ?", rec.Name).
			Updates(map[string]any{"enabled": rec.Enabled, "updated_at": rec.UpdatedAt}).Error; err != nil {
			return err
		}
		if err := m.db.NotifyModules(tx); err != nil {
			return err
		}
		return tx.Create(auditEntry(actor, action, rec.Name, rec.Version, nil)).Error
	})
}

// ensureExtracted re-extracts a module from the archive kept in the database
// when its files are missing (a new core instance, or a wiped directory).
func (m *Manager) ensureExtracted(ctx context.Context, rec store.Module) error {
	dir := m.versionDir(rec.Name, rec.Version)
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rec.Executable))); err == nil {
		return nil
	}
	// The archive as uploaded to this core, else as stored in the database.
	var a store.ModuleArchive
	if data, ok := m.localArchive(rec); ok {
		a.Data = data
	} else if err := m.db.WithContext(ctx).Where("name = ? AND version = ?", rec.Name, rec.Version).Take(&a).Error; err != nil {
		return fmt.Errorf("archive of %s %s: %w", rec.Name, rec.Version, err)
	}
	goos, goarch := platform()
	arch, err := archive.Read(bytes.NewReader(a.Data), int64(len(a.Data)), m.cfg.Limits, goos, goarch)
	if err != nil {
		return fmt.Errorf("stored archive of %s: %w", rec.Name, err)
	}
	arch.ExecutableSHA256 = rec.ExecutableSHA256 // the pin recorded at install
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := arch.Extract(dir); err != nil {
		return fmt.Errorf("extract %s: %w", rec.Name, err)
	}
	archivePath := filepath.Join(m.cfg.InstalledDir, rec.Name+"-"+rec.Version+".chacc")
	if _, err := os.Stat(archivePath); err != nil {
		_ = os.WriteFile(archivePath, a.Data, 0o644)
	}
	return nil
}

func (m *Manager) checkCoreVersion(man sdk.Manifest) error {
	if man.RequiredChaccVersion == "" {
		return nil
	}
	c, err := semver.NewConstraint(man.RequiredChaccVersion)
	if err != nil {
		return core.Errorf(core.EINVALID, "INVALID_MANIFEST", "Invalid required_chacc_version: %v", err)
	}
	v, err := semver.NewVersion(m.cfg.CoreVersion)
	if err != nil || !c.Check(v) {
		return core.Errorf(core.EUNPROCESSABLE, "CORE_VERSION_UNMET", "Module '%s' requires chacc %s; this core is %s.", man.Name, man.RequiredChaccVersion, m.cfg.CoreVersion)
	}
	return nil
}

func archiveError(err error) error {
	var ae *archive.Error
	if errors.As(err, &ae) {
		switch ae.Kind {
		case archive.KindTooLarge:
			return &core.Error{Code: core.ETOOLARGE, ErrorCode: "ARCHIVE_TOO_LARGE", Message: ae.Msg, Err: err}
		case archive.KindSignatureInvalid:
			return &core.Error{Code: core.EINVALID, ErrorCode: "SIGNATURE_INVALID", Message: ae.Msg, Err: err}
		case archive.KindSignatureRequired:
			return &core.Error{Code: core.EFORBIDDEN, ErrorCode: "SIGNATURE_REQUIRED", Message: ae.Msg, Err: err}
		case archive.KindUntrustedSigner:
			return &core.Error{Code: core.EFORBIDDEN, ErrorCode: "UNTRUSTED_SIGNER", Message: ae.Msg, Err: err}
		}
		return &core.Error{Code: core.EINVALID, ErrorCode: "INVALID_ARCHIVE", Message: ae.Msg, Err: err}
	}
	return err
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
