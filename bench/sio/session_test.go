package sio

import "testing"

func TestOffset(t *testing.T) {
	for frame, want := range map[string]string{
		`42["#rtcio:message",{"source":"a","target":"b","data":{"t":1}},"1733560000000-0"]`: "1733560000000-0",
		`42["user-connected",{"id":"a","name":"x"}]`:                                        "",
		`42["user-connected",{"id":"a","name":"x\"y"}]`:                                     "",
		`42["ev"]`:        "",
		`3`:               "",
		`42["ev","a\"b"]`: "",
	} {
		if got := Offset([]byte(frame)); got != want {
			t.Errorf("Offset(%s) = %q, want %q", frame, got, want)
		}
	}
}
