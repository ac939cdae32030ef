package redistest

import "testing"

func TestStartAnswersPing(t *testing.T) {
	s := Start(t)
	if !ping(s.Addr) {
		t.Fatalf("started server on %s does not answer PING", s.Addr)
	}
	s.Kill()
	if ping(s.Addr) {
		t.Fatalf("killed server on %s still answers", s.Addr)
	}
}

func TestRestartComesBackEmpty(t *testing.T) {
	s := Start(t)
	s.Restart(t)
	if !ping(s.Addr) {
		t.Fatalf("restarted server on %s does not answer PING", s.Addr)
	}
	s.Kill()
	s.Restart(t)
	if !ping(s.Addr) {
		t.Fatalf("server restarted after a kill on %s does not answer PING", s.Addr)
	}
}
