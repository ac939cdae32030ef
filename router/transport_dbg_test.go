package router

import (
	"fmt"
	"testing"
	"time"
	"github.com/gorilla/websocket"
	"sync"
	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"github.com/zishang520/socket.io/servers/engine/v3"
)

func TestTransportDbg(t *testing.T) {
	ts := tpStart(t, transportConfig{})
	var mu sync.Mutex
	closes := map[string]string{}
	ts.tr.io.Engine().On("connection", func(a ...any) {
		conn := a[0].(engine.Socket)
		name := conn.Request().Query().Peek("name")
		conn.On("close", func(b ...any) { mu.Lock(); closes[name] += " CLOSE:" + fmt.Sprint(b...); mu.Unlock() })
		conn.On("packet", func(b ...any) { p := b[0].(*packet.Packet); d := ""; if sb, ok := p.Data.(*types.StringBuffer); ok { d = string(sb.Bytes()) }; mu.Lock(); closes[name] += " IN:" + string(p.Type) + d; mu.Unlock() })
		conn.On("packetCreate", func(b ...any) { p := b[0].(*packet.Packet); d := ""; if sb, ok := p.Data.(*types.StringBuffer); ok { d = string(sb.Bytes()) }; mu.Lock(); closes[name] += " OUT:" + string(p.Type) + d; mu.Unlock() })
	})
	fails := 0
	for i := 0; i < 60; i++ {
		rc := tpWSConnect(t, ts.host, "")
		rc.WriteMessage(websocket.TextMessage, []byte("42[1]"))
		tpExpectClosed(t, rc, 3*time.Second, "x")
		c := tpClient(t, ts.base, fmt.Sprintf("n%d", i))
		ev := make(chan string, 10)
		t0 := time.Now()
		c.On("connect", func(...any) { ev <- fmt.Sprint("connect ", time.Since(t0)) })
		c.On("connect_error", func(a ...any) { ev <- fmt.Sprint("connect_error ", a) })
		c.On("disconnect", func(a ...any) { ev <- fmt.Sprint("disconnect ", a, time.Since(t0)) })
		got := make(chan string, 1)
		c.Emit("echo", "x", func(args []any, err error) { got <- fmt.Sprint(args, err) })
		select {
		case r := <-got:
			if r != "[x] <nil>" { fails++; t.Log("ack", r) 
			for len(ev) > 0 { t.Log(<-ev) }
			if r, ok := ts.disconnects.Load(fmt.Sprintf("n%d", i)); ok { t.Log("server reason", r) }
			time.Sleep(100*time.Millisecond)
			mu.Lock(); t.Log("engine close", closes[fmt.Sprintf("n%d", i)]); mu.Unlock()
			}
		case <-time.After(3 * time.Second):
			fails++
			t.Log("timeout", len(ev))
			for len(ev) > 0 { t.Log(<-ev) }
			if r, ok := ts.disconnects.Load(fmt.Sprintf("n%d", i)); ok { t.Log("server reason", r) }
			mu.Lock(); t.Log("engine", closes[fmt.Sprintf("n%d", i)]); mu.Unlock()
			_, ok := ts.sockets.Load(fmt.Sprintf("n%d", i))
			t.Log("server saw socket", ok)
		}
		c.Disconnect()
	}
	t.Log("fails", fails)

}
