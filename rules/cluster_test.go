package rules

import (
	"testing"
)

func TestClusterSection(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       Cluster
		err        string // substring of the error, with its position
	}{
		{"absent", "", Cluster{Prefix: DefaultClusterPrefix}, ""},
		{"redis", "cluster: {redis: \"redis://127.0.0.1:6379/0\"}\n", Cluster{Redis: "redis://127.0.0.1:6379/0", Prefix: DefaultClusterPrefix}, ""},
		{"unix and prefix", "cluster: {redis: \"unix:///run/redis.sock\", prefix: app1}\n", Cluster{Redis: "unix:///run/redis.sock", Prefix: "app1"}, ""},
		{"bad scheme", "cluster: {redis: \"http://x:1\"}\n", Cluster{}, "t.yaml:1:18: cluster.redis: \"http://x:1\": the scheme must be redis://"},
		{"no host", "cluster: {redis: \"redis://\"}\n", Cluster{}, "has no host"},
		{"bad prefix", "cluster: {prefix: \"a{b}\"}\n", Cluster{}, "t.yaml:1:19: cluster.prefix must be"},
		{"unknown key", "cluster: {reddis: \"redis://x:1\"}\n", Cluster{}, "t.yaml:1:11: cluster: unknown field \"reddis\" (did you mean \"redis\"?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := parseSection(t, tc.yaml, tc.err)
			if set == nil {
				return
			}
			if set.Cluster != tc.want {
				t.Fatalf("cluster %+v, want %+v", set.Cluster, tc.want)
			}
		})
	}
	a, b := Cluster{Redis: "redis://a:1/0", Prefix: "p"}, Cluster{Redis: "redis://b:1/0", Prefix: "p"}
	if a.FixedChanges(a) != nil || a.FixedChanges(b) == nil {
		t.Fatal("FixedChanges must refuse a change of cluster, and only that")
	}
}
