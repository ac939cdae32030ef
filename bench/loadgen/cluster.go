package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rtcio/rtcio-router/bench/load"
)

// The cluster suite (-cluster): the router as one node (no Redis) against
// two router nodes sharing one Redis ("cluster"), every process on the
// server core, and Node's join storm beside them. In the cluster, the two
// sockets of each relay pair are on different nodes and the members of
// each room alternate nodes; the cluster's server CPU is both nodes' plus
// Redis's, and Redis's is also reported apart.

// sameNode prefixes the figures of the cluster's relay with both sockets
// of each pair on one node: a relay that must not touch Redis.
const sameNode = "cluster, both sockets on one node: "

// runCluster runs the rounds of the cluster suite, rotating which server
// kind goes first.
func runCluster(ctx context.Context, c config, res *results, seq *int) error {
	for round := 1; round <= c.rounds; round++ {
		for _, kind := range rotate(round, "router", "cluster", "node") {
			if !c.servers[kind] {
				continue
			}
			s := suite{c: c, res: res, kind: kind, round: round, seq: seq}
			s.cluster(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("%d scenario(s) failed:\n  %s", len(res.Errors), strings.Join(res.Errors, "\n  "))
	}
	return nil
}

// cluster runs the cluster suite's scenarios against one server kind.
func (s suite) cluster(ctx context.Context) {
	c := s.c
	for _, n := range c.stormSizes {
		if !c.clusterRuns["storm"] {
			break
		}
		s.with(ctx, "join storm", func(p *proc) ([]load.Figure, error) {
			return load.JoinStorm(ctx, p.target(), n/4, 4)
		})
	}
	if s.kind == "node" { // Node is here for its join storm only
		return
	}
	envs := []load.Envelope{load.Candidate}
	if c.clusterSDP {
		envs = append(envs, load.SDP)
	}
	relay := func(p *proc) ([]load.Figure, error) {
		t := p.target()
		var fs []func() ([]load.Figure, error)
		for _, env := range envs {
			if !c.clusterRuns["rtt"] {
				break
			}
			fs = append(fs, func() ([]load.Figure, error) {
				return load.Relay(ctx, t, c.relayPairs, env, c.relayRate, c.timing, nil, 0)
			})
		}
		if s.kind == "cluster" && c.clusterRuns["rtt"] {
			// Both sockets of every pair on the first node; Redis's CPU and
			// commands still counted.
			one := t
			one.Nodes = t.Nodes[:1]
			fs = append(fs, func() ([]load.Figure, error) {
				figs, err := load.Relay(ctx, one, c.relayPairs, load.Candidate, c.relayRate, c.timing, nil, 0)
				for i := range figs {
					figs[i].Key = sameNode + figs[i].Key
				}
				return figs, err
			})
		}
		for _, env := range envs {
			if !c.clusterRuns["max"] {
				break
			}
			fs = append(fs, func() ([]load.Figure, error) {
				return load.RelayMax(ctx, t, c.relayPairs, c.relayWindow, env, c.timing)
			})
		}
		return steps(fs...)
	}
	if c.clusterRuns["rtt"] || c.clusterRuns["max"] {
		s.with(ctx, "relay", relay)
	}
	// Memory is the same every round; the scenario takes minutes at 10k
	// sockets (see the README), so it runs in the first round only.
	if s.kind == "cluster" && c.memSockets > 0 && s.round == 1 && c.clusterRuns["memory"] {
		s.with(ctx, "redis memory", func(p *proc) ([]load.Figure, error) {
			figs, kinds, err := load.RedisMemory(ctx, p.target(), c.memSockets)
			for _, k := range kinds {
				fmt.Fprintf(os.Stderr, "  round %d redis keys %-10q %7d keys, %10d B (MEMORY USAGE)\n", s.round, k.Kind, k.Keys, k.Bytes)
			}
			return figs, err
		})
	}
}

// clusterGoal is the goal for a figure of the cluster suite: the
// cross-node relay's p99 within 3× one node's, and two nodes' join storm
// no slower than Node's on one.
func clusterGoal(key string) (goal float64, against string, ok bool) {
	switch {
	case strings.HasPrefix(key, "relay RTT") && strings.HasSuffix(key, ": p99"):
		return 3, "router", true
	case strings.HasPrefix(key, "join storm") && strings.HasSuffix(key, ": completion"):
		return 1, "node", true
	}
	return 0, "", false
}

// reportCluster prints the cluster suite's table as Markdown.
func reportCluster(w io.Writer, c config, r *results) {
	fmt.Fprintf(w, "\n### Cluster: two nodes on one Redis beside one node (medians of %d round(s); min–max in small type)\n\n", c.rounds)
	fmt.Fprintln(w, "| figure | unit | one node | two nodes + Redis | Node socket.io 4 (one process) | two nodes / one node | two nodes / Node | goal |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|---|")
	ratio := func(a, b string, key, bkey string) (float64, bool) {
		av, aok := r.median(a, key)
		bv, bok := r.median(b, bkey)
		if !aok || !bok || bv == 0 {
			return 0, false
		}
		return av / bv, true
	}
	for _, k := range scenarioOrder(r.Keys) {
		cells := []string{"", "", ""}
		base := strings.TrimPrefix(k, sameNode)
		if v, ok := ratio("cluster", "router", k, base); ok {
			cells[0] = fmt.Sprintf("%.2f×", v)
		}
		if v, ok := ratio("cluster", "node", k, k); ok {
			cells[1] = fmt.Sprintf("%.2f×", v)
		}
		if g, against, ok := clusterGoal(k); ok && base == k {
			if v, ok := ratio("cluster", against, k, k); ok {
				mark := "not met"
				if v <= g {
					mark = "**met**"
				}
				who := map[string]string{"router": "one node", "node": "Node"}[against]
				cells[2] = fmt.Sprintf("≤ %g× %s: %s", g, who, mark)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", k, r.Units[k],
			r.cell("router", k), r.cell("cluster", k), r.cell("node", k), strings.Join(cells, " | "))
	}
	failed(w, r)
}

// scenarioOrder lists keys grouped by scenario (the key up to its last
// ": "), scenarios in first-seen order: a figure only the cluster has
// (Redis's CPU) comes next to the others of its scenario, not after every
// figure the first server kind of round 1 produced.
func scenarioOrder(keys []string) []string {
	scenario := func(k string) string {
		if i := strings.LastIndex(k, ": "); i >= 0 {
			return k[:i]
		}
		return k
	}
	var order []string
	group := map[string][]string{}
	for _, k := range keys {
		sc := scenario(k)
		if _, ok := group[sc]; !ok {
			order = append(order, sc)
		}
		group[sc] = append(group[sc], k)
	}
	var out []string
	for _, sc := range order {
		out = append(out, group[sc]...)
	}
	return out
}
