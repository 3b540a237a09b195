// Command perf is the quic-go peer of quicsilver's benchmark (bench/run.py).
//
// It speaks the perf protocol (ALPN "perf"): on a bidirectional stream the client sends the
// response size N as an 8-byte big-endian integer, uploads until FIN, and the server replies
// with N bytes then FIN. The command line and the JSON printed on stdout match the Python
// peers in bench/peers/scenarios.py. Built offline against Debian's quic-go 0.29:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o perf-go perf.go
package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	quic "github.com/lucas-clemente/quic-go"
)

const alpn = "perf"

var zeros = make([]byte, 64*1024)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "perf-go:", err)
	os.Exit(1)
}

func emit(v map[string]interface{}) {
	out, err := json.Marshal(v)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line)
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func writeZeros(w io.Writer, n uint64) error {
	for n > 0 {
		chunk := uint64(len(zeros))
		if n < chunk {
			chunk = n
		}
		if _, err := w.Write(zeros[:chunk]); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

func handleStream(stream quic.Stream) {
	var header [8]byte
	if _, err := io.ReadFull(stream, header[:]); err != nil {
		stream.CancelRead(1)
		stream.CancelWrite(1)
		return
	}
	if _, err := io.Copy(io.Discard, stream); err != nil {
		stream.CancelWrite(1)
		return
	}
	if err := writeZeros(stream, binary.BigEndian.Uint64(header[:])); err != nil {
		return
	}
	stream.Close()
}

func serve(host string, port int, certFile, keyFile string) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		fail(err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}}
	conf := &quic.Config{MaxIdleTimeout: 60 * time.Second}
	listener, err := quic.ListenAddr(fmt.Sprintf("%s:%d", host, port), tlsConf, conf)
	if err != nil {
		fail(err)
	}
	addr := listener.Addr().String()
	fmt.Printf("listening %s\n", addr[strings.LastIndex(addr, ":")+1:])
	for {
		conn, err := listener.Accept(context.Background())
		if err != nil {
			fail(err)
		}
		go func(conn quic.Connection) {
			for {
				stream, err := conn.AcceptStream(context.Background())
				if err != nil {
					return
				}
				go handleStream(stream)
			}
		}(conn)
	}
}

type client struct {
	addr    string
	tlsConf *tls.Config
	conf    *quic.Config
}

func (c *client) dial() (quic.Connection, error) {
	return quic.DialAddr(c.addr, c.tlsConf, c.conf)
}

// request runs one perf request and returns the number of bytes received.
func request(conn quic.Connection, download, upload uint64) (uint64, error) {
	stream, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		return 0, err
	}
	var header [8]byte
	binary.BigEndian.PutUint64(header[:], download)
	if _, err := stream.Write(header[:]); err != nil {
		return 0, err
	}
	if err := writeZeros(stream, upload); err != nil {
		return 0, err
	}
	stream.Close()
	n, err := io.Copy(io.Discard, stream)
	return uint64(n), err
}

func transfer(c *client, download, upload uint64) map[string]interface{} {
	conn, err := c.dial()
	if err != nil {
		fail(err)
	}
	start := time.Now()
	received, err := request(conn, download, upload)
	elapsed := time.Since(start).Seconds()
	if err != nil {
		fail(err)
	}
	if received != download {
		fail(fmt.Errorf("received %d bytes, expected %d", received, download))
	}
	conn.CloseWithError(0, "")
	moved := float64(download + upload)
	return map[string]interface{}{"bytes": moved, "seconds": elapsed, "mbps": moved / elapsed / 1e6}
}

func handshakes(c *client, count int, small uint64) map[string]interface{} {
	latencies := make([]float64, 0, count)
	start := time.Now()
	for i := 0; i < count; i++ {
		t0 := time.Now()
		conn, err := c.dial()
		if err != nil {
			fail(err)
		}
		received, err := request(conn, small, 0)
		if err != nil {
			fail(err)
		}
		latencies = append(latencies, time.Since(t0).Seconds())
		if received != small {
			fail(fmt.Errorf("received %d bytes, expected %d", received, small))
		}
		conn.CloseWithError(0, "")
	}
	elapsed := time.Since(start).Seconds()
	sort.Float64s(latencies)
	median := latencies[len(latencies)/2]
	if len(latencies)%2 == 0 {
		median = (latencies[len(latencies)/2-1] + latencies[len(latencies)/2]) / 2
	}
	return map[string]interface{}{
		"count": count, "seconds": elapsed, "per_second": float64(count) / elapsed, "median_ms": median * 1e3,
	}
}

func requests(c *client, count, concurrency int, small uint64) map[string]interface{} {
	conn, err := c.dial()
	if err != nil {
		fail(err)
	}
	var remaining int64 = int64(count)
	var failure atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.AddInt64(&remaining, -1) >= 0 {
				received, err := request(conn, small, 0)
				if err == nil && received != small {
					err = fmt.Errorf("received %d bytes, expected %d", received, small)
				}
				if err != nil {
					failure.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if err, ok := failure.Load().(error); ok {
		fail(err)
	}
	conn.CloseWithError(0, "")
	return map[string]interface{}{"count": count, "seconds": elapsed, "per_second": float64(count) / elapsed}
}

func idle(c *client, count int) map[string]interface{} {
	runtime.GC()
	before := rssBytes()
	conns := make([]quic.Connection, count)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var failure atomic.Value
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := c.dial()
			if err != nil {
				failure.Store(err)
				return
			}
			conns[i] = conn
		}(i)
	}
	wg.Wait()
	if err, ok := failure.Load().(error); ok {
		fail(err)
	}
	time.Sleep(500 * time.Millisecond)
	perConn := float64(rssBytes()-before) / float64(count)
	emit(map[string]interface{}{"ready": true, "count": count, "client_rss_per_conn": perConn})
	buf := make([]byte, 1)
	if _, err := os.Stdin.Read(buf); err != nil && !errors.Is(err, io.EOF) {
		fail(err)
	}
	for _, conn := range conns {
		conn.CloseWithError(0, "")
	}
	return map[string]interface{}{"count": count, "client_rss_per_conn": perConn}
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "server" && os.Args[1] != "client") {
		fail(errors.New("usage: perf-go server|client [flags]"))
	}
	role := os.Args[1]
	flags := flag.NewFlagSet(role, flag.ExitOnError)
	host := flags.String("host", "127.0.0.1", "address")
	port := flags.Int("port", 0, "UDP port")
	cert := flags.String("cert", "", "certificate (server)")
	key := flags.String("key", "", "private key (server)")
	size := flags.Uint64("size", 100_000_000, "transfer size")
	count := flags.Int("count", 200, "connections or requests")
	concurrency := flags.Int("concurrency", 100, "concurrent requests")
	small := flags.Uint64("small", 100, "response size of a small request")
	flags.Bool("uvloop", false, "ignored (Python peers only)")
	flags.Bool("no-gso", false, "ignored: set QUIC_GO_DISABLE_GSO in the environment")
	args := os.Args[2:]
	scenario := ""
	if role == "client" {
		// the scenario is positional, anywhere among the flags
		rest := []string{}
		for _, a := range args {
			if !strings.HasPrefix(a, "-") && scenario == "" && isScenario(a) {
				scenario = a
				continue
			}
			rest = append(rest, a)
		}
		args = rest
	}
	if err := flags.Parse(args); err != nil {
		fail(err)
	}
	if role == "server" {
		serve(*host, *port, *cert, *key)
		return
	}
	c := &client{
		addr:    fmt.Sprintf("%s:%d", *host, *port),
		tlsConf: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}},
		conf:    &quic.Config{MaxIdleTimeout: 60 * time.Second},
	}
	var result map[string]interface{}
	switch scenario {
	case "download":
		result = transfer(c, *size, 0)
	case "upload":
		result = transfer(c, 0, *size)
	case "handshakes":
		result = handshakes(c, *count, *small)
	case "requests":
		result = requests(c, *count, *concurrency, *small)
	case "idle":
		result = idle(c, *count)
	default:
		fail(errors.New("client needs a scenario: download|upload|handshakes|requests|idle"))
	}
	emit(result)
}

func isScenario(s string) bool {
	switch s {
	case "download", "upload", "handshakes", "requests", "idle":
		return true
	}
	return false
}
