//go:build !linux

package main

import (
	"fmt"
	"os"
)

// main: the experiment reads sockets through epoll, which only Linux has.
func main() {
	fmt.Fprintln(os.Stderr, "leanws: Linux only (epoll)")
	os.Exit(1)
}
