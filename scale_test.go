//go:build scale

package miniapp

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-miniapp/miniapp/internal/testport"
	"github.com/caddy-miniapp/miniapp/internal/testredis"
	"github.com/caddy-miniapp/miniapp/store"
	redisstore "github.com/caddy-miniapp/miniapp/store/redis"
	"github.com/caddy-miniapp/miniapp/store/storage"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// full runs the full scale measurement (about ten minutes); without it,
// as CI runs it, a fifth of the history and windows of 20 s (about three
// minutes).
var full = flag.Bool("full", false, "the full scale measurement: 100,000 logouts, 10,000 sign-outs, idle CPU over minute windows")

// Sizes of the scale measurement.
var (
	scaleRevocations = 20_000
	scaleSignOuts    = 2_000
	// idle CPU is read over idleWindows windows of idleWindow each
	idleWindows = 3
	idleWindow  = 20 * time.Second
)

// scaleSizes sets the sizes of the full measurement with -full.
func scaleSizes() {
	if *full {
		scaleRevocations, scaleSignOuts, idleWindow = 100_000, 10_000, time.Minute
	}
}

// TestScale fills a store through the handler with 100,000 logouts and
// 10,000 sign-outs everywhere (with -full; a fifth of them without),
// then measures, for each backend: how long
// a Caddy process on the full store takes to be ready against one on an
// empty store, their CPU while idle (revocation_sync 2s, the median of
// three windows of a minute from 10s after both are ready; of 20 s
// without -full), and the memory a node holds per live revocation. Run
// it with
//
//	go test -tags scale -run TestScale -v -timeout 30m . -full
func TestScale(t *testing.T) {
	scaleSizes()
	buildCaddy(t)
	r := testredis.Start(t)
	for _, backend := range []string{"storage", "redis"} {
		t.Run(backend, func(t *testing.T) {
			full, empty := t.TempDir(), t.TempDir()
			storeConfig := func(prefix string) string { return "" }
			var st store.Module
			if backend == "redis" {
				storeConfig = func(prefix string) string {
					return fmt.Sprintf("store redis {\n\t\t\taddress %s\n\t\t\tkey_prefix %s\n\t\t}", r.Addr, prefix)
				}
				rs := &redisstore.Store{Address: []string{r.Addr}, KeyPrefix: "full:"}
				if err := rs.Provision(caddy.Context{}); err != nil {
					t.Fatal(err)
				}
				st = rs
			}
			start := time.Now()
			fill(t, full, st)
			t.Logf("%s: %d logouts and %d sign-outs everywhere through the handler in %v", backend, scaleRevocations, scaleSignOuts, time.Since(start).Round(time.Second))

			nodes := map[string]*scaleNode{
				"full":  startScaleNode(t, full, storeConfig("full:")),
				"empty": startScaleNode(t, empty, storeConfig("empty:")),
			}
			for name, n := range nodes {
				t.Logf("%s: a node on the %s store is ready in %v", backend, name, n.ready.Round(time.Millisecond))
			}
			// three windows of a minute (20 s without -full), from 10s
			// after both nodes are ready; each node's figure is its
			// median window. An idle
			// node uses about a millisecond in 10s, and the runtime's
			// own work (a forced collection every two minutes, memory
			// returned after the join) made windows of 10s or 30s
			// scatter from 0.8 to 1.9 times each other
			time.Sleep(10 * time.Second)
			windows := map[string][]time.Duration{}
			for range idleWindows {
				before := map[string]time.Duration{}
				for name, n := range nodes {
					before[name] = n.cpu(t)
				}
				time.Sleep(idleWindow)
				for name, n := range nodes {
					windows[name] = append(windows[name], n.cpu(t)-before[name])
				}
			}
			fullCPU, emptyCPU := median(windows["full"]), median(windows["empty"])
			t.Logf("%s: idle CPU per %v window, full store %v, empty store %v", backend, idleWindow, windows["full"], windows["empty"])
			fullRSS, emptyRSS := nodes["full"].resident(t), nodes["empty"].resident(t)
			t.Logf("%s: resident memory after the idle windows: full store %.1f MiB, empty store %.1f MiB, %.1f MiB more",
				backend, float64(fullRSS)/(1<<20), float64(emptyRSS)/(1<<20), float64(fullRSS-emptyRSS)/(1<<20))
			// what the history keeps (64 bytes a revocation at most) and
			// no more: the memory of the join's read goes back at once
			if limit := int64(32<<20) * int64(scaleRevocations) / 100_000; fullRSS-emptyRSS > limit {
				t.Errorf("the node on the full store holds %.1f MiB more than the one on the empty store, want at most %.1f",
					float64(fullRSS-emptyRSS)/(1<<20), float64(limit)/(1<<20))
			}
			t.Logf("%s: idle CPU per %v, median window: full store %v, empty store %v, ratio %.2f", backend, idleWindow,
				fullCPU.Round(time.Microsecond), emptyCPU.Round(time.Microsecond), float64(fullCPU)/float64(emptyCPU))
			perRevocation := memoryPerRevocation(t, full, st)
			t.Logf("%s: %.1f bytes of memory per live revocation", backend, perRevocation)
			if perRevocation > 64 {
				t.Errorf("%.1f bytes per live revocation, want at most 64", perRevocation)
			}
		})
	}
}

// fill makes the revocations and sign-outs through the handler: each a
// POST /logout with the cookie of a session of one of 10,000 accounts.
func fill(t *testing.T, dir string, st store.Module) {
	accounts := make([]Account, scaleSignOuts)
	for i := range accounts {
		accounts[i] = Account{Username: "user" + strconv.Itoa(i), Password: adaHash}
	}
	a := newApp(t, dir, func(h *Handler) {
		h.Accounts = accounts
		if st != nil {
			h.store = st
		}
	})
	for i := range scaleRevocations {
		all := ""
		if i < scaleSignOuts {
			all = "all=1"
		}
		s := a.newSession("user" + strconv.Itoa(i%scaleSignOuts))
		cookie := a.seal(s)
		if w := a.do(request{method: "POST", target: "/logout", cookie: cookie, contentType: form, body: all}); w.Code != 303 {
			t.Fatalf("logout %d: %d", i, w.Code)
		}
	}
	if pending := a.h.app.Shared.Pending(); pending != 0 {
		t.Fatalf("%d writes still pending", pending)
	}
}

// scaleNode is a Caddy process on a store, with how long it took to be
// ready.
type scaleNode struct {
	p     *caddyProcess
	ready time.Duration
}

// startScaleNode runs a Caddy on the storage folder (and the store, when
// given) and waits until it answers.
func startScaleNode(t *testing.T, storage, store string) *scaleNode {
	port, admin := testport.Free(t), testport.Free(t)
	config := filepath.Join(t.TempDir(), "Caddyfile")
	body := fmt.Sprintf(`{
	admin localhost:%d
	storage file_system %s
	auto_https off
}
http://localhost:%d {
	miniapp {
		user ada %s
		revocation_sync 2s
		%s
	}
}
`, admin, storage, port, adaHash, store)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := runCaddy(t, ".", t.TempDir(), "--config", config, "--adapter", "caddyfile")
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(fmt.Sprintf("http://localhost:%d/hello", port))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return &scaleNode{p: p, ready: time.Since(start)}
			}
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("node not ready: %v\n%s", err, p.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cpu is the CPU time the process has used so far, summed over its
// threads from the scheduler's nanosecond counts.
func (n *scaleNode) cpu(t *testing.T) time.Duration {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", n.p.cmd.Process.Pid))
	if err != nil || len(stats) == 0 {
		t.Fatalf("no scheduler statistics: %v", err)
	}
	var total time.Duration
	for _, file := range stats {
		data, err := os.ReadFile(file)
		if err != nil {
			continue // a thread that ended
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
		total += time.Duration(ns)
	}
	return total
}

// resident is the process's resident memory, in bytes (VmRSS).
func (n *scaleNode) resident(t *testing.T) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			size, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			return size << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// memoryPerRevocation opens the full store as a new node in this
// process and measures the heap its revocations take.
func memoryPerRevocation(t *testing.T, dir string, st store.Module) float64 {
	if st == nil {
		st = storage.New(&certmagic.FileStorage{Path: dir})
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rv, err := store.Join(ctx, st, store.Options{Realm: defaultRealm, Every: 3 * time.Second, Remember: 12 * time.Hour, Now: time.Now, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rv.Release() }()
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := rv.Revocations()
	if n != scaleRevocations {
		t.Errorf("the new node read %d revocations, want %d", n, scaleRevocations)
	}
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// median is the middle of the durations (the upper one of an even count).
func median(d []time.Duration) time.Duration {
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}
