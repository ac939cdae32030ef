package rules

import (
	"fmt"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"
)

// Cluster is the cluster: section. With Redis set, nodes that share it
// act as one server: rooms, socket data and stores live in Redis, and
// deliveries travel between nodes over its pub/sub. Empty, the router is
// one process with its state in memory (the default). Both settings shape
// the running server, so a reload may not change them.
type Cluster struct {
	// Redis is the server's URL: redis://[user:password@]host:port[/db],
	// rediss:// for TLS, or unix:///path/to/redis.sock. --redis and then
	// REDIS_URL override it.
	Redis string
	// Prefix starts every key and channel the cluster uses, so several
	// clusters can share one Redis; default DefaultClusterPrefix.
	Prefix string
}

// DefaultClusterPrefix is cluster.prefix when the file leaves it out.
const DefaultClusterPrefix = "rtcio"

// clusterFields are the keys of cluster:, read by cluster.
var clusterFields = []field{
	{"redis", "The Redis URL that turns on the cluster: `redis://host:port/db`, `rediss://` for TLS, `unix:///path/redis.sock`. `--redis` and then `REDIS_URL` override it; without any, the router is one process with its state in memory.",
		obj("type", "string", "pattern", "^(redis|rediss|unix)://", "examples", []any{"redis://127.0.0.1:6379/0"}), false},
	{"prefix", "Starts every Redis key and pub/sub channel of the cluster, so several clusters can share a Redis; default `rtcio`.",
		obj("type", "string", "pattern", "^[A-Za-z0-9_.:-]+$", "default", DefaultClusterPrefix), false},
}

// clusterKeys are the names in clusterFields, for "unknown field" hints.
var clusterKeys = keysOf(clusterFields)

func (l *loader) cluster(n *yaml.Node) {
	for _, p := range l.pairs(n, "cluster") {
		switch p.key.Value {
		case "redis":
			if v, ok := l.str(p.val, "cluster.redis"); ok {
				if err := CheckRedisURL(v); err != nil {
					l.errf(p.val, "cluster.redis: %v", err)
				}
				l.set.Cluster.Redis = v
			}
		case "prefix":
			if v, ok := l.str(p.val, "cluster.prefix"); ok {
				if v == "" || strings.ContainsAny(v, "{}*?[] \t\n") {
					l.errf(p.val, "cluster.prefix must be letters, digits, _ . : or -, got %q", v)
				}
				l.set.Cluster.Prefix = v
			}
		default:
			l.unknown(p.key, "cluster", clusterKeys)
		}
	}
}

// CheckRedisURL reports whether u is a Redis URL the cluster can use, so
// that a typo is an error at load time with its position, not a failed
// connection later.
func CheckRedisURL(u string) error {
	parsed, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	switch parsed.Scheme {
	case "redis", "rediss":
		if parsed.Host == "" {
			return fmt.Errorf("%q has no host", u)
		}
	case "unix":
		if parsed.Path == "" {
			return fmt.Errorf("%q has no socket path", u)
		}
	default:
		return fmt.Errorf("%q: the scheme must be redis://, rediss:// or unix://", u)
	}
	return nil
}

// FixedChanges returns an error when next's cluster differs from c's: a
// node cannot move to another Redis, or in or out of a cluster, while it
// serves.
func (c Cluster) FixedChanges(next Cluster) error {
	if c == next {
		return nil
	}
	return fmt.Errorf("reload not supported for cluster: old=%+v, new=%+v (restart to change it)", c, next)
}
