// Package npmdeps installs a test's Node packages from their committed
// lockfile, once, safely under go test's parallel test binaries.
//
// Why one package: several test packages drive Node (the official
// socket.io client, the Redis emitter and adapter), and go test runs their
// binaries at the same time; two `npm ci` in one directory delete each
// other's node_modules mid-install. Ensure serialises them with a file
// lock and writes a marker (the lockfile's hash) last, so an interrupted
// install is redone and an up-to-date one is skipped.
package npmdeps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// done holds the directories installed by this process.
var done sync.Map // dir -> struct{}

// mu serialises Ensure within the process (the flock does it across).
var mu sync.Mutex

// Ensure runs `npm ci` in dir unless its node_modules already match
// dir/package-lock.json.
func Ensure(dir string) error {
	if _, ok := done.Load(dir); ok {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	if _, ok := done.Load(dir); ok {
		return nil
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return fmt.Errorf("npm deps: %w", err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	marker := filepath.Join(dir, "node_modules", ".npm-ci-done")

	f, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("npm deps: %w", err)
	}
	defer f.Close()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("npm deps: lock %s: %w", f.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()

	if got, _ := os.ReadFile(marker); string(got) == want {
		done.Store(dir, struct{}{})
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("node_modules missing in %s and npm is not on PATH: %w", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
	}
	if err := os.WriteFile(marker, []byte(want), 0o644); err != nil {
		return fmt.Errorf("npm deps: %w", err)
	}
	done.Store(dir, struct{}{})
	return nil
}
