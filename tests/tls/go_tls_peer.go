// A Go crypto/tls (the TLS stack under quic-go) peer for quicsilver's TLS tests: one TLS 1.3
// connection over TCP on 127.0.0.1, as server or client, then one request/response line.
//
//	go_tls_peer server CERT KEY CA CURVES        prints the port, serves one connection
//	go_tls_peer client PORT CA CURVES            connects, sends "ping", prints the reply
//
// CURVES is a comma-separated list of "x25519" and "p256" (preference order). The server requires a
// client certificate signed by CA when the environment variable REQUIRE_CLIENT_CERT is set.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
)

func curves(spec string) []tls.CurveID {
	var out []tls.CurveID
	for _, name := range strings.Split(spec, ",") {
		switch name {
		case "x25519":
			out = append(out, tls.X25519)
		case "p256":
			out = append(out, tls.CurveP256)
		}
	}
	return out
}

func pool(caFile string) *x509.CertPool {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return roots
}

func describe(state tls.ConnectionState) string {
	return fmt.Sprintf("version=%x suite=%x alpn=%s resumed=%t peer_certs=%d",
		state.Version, state.CipherSuite, state.NegotiatedProtocol, state.DidResume, len(state.PeerCertificates))
}

func main() {
	switch os.Args[1] {
	case "server":
		cert, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
		if err != nil {
			panic(err)
		}
		config := &tls.Config{
			Certificates:     []tls.Certificate{cert},
			MinVersion:       tls.VersionTLS13,
			NextProtos:       []string{"hq-interop"},
			CurvePreferences: curves(os.Args[5]),
		}
		if os.Getenv("REQUIRE_CLIENT_CERT") != "" {
			config.ClientAuth = tls.RequireAndVerifyClientCert
			config.ClientCAs = pool(os.Args[4])
		}
		listener, err := tls.Listen("tcp", "127.0.0.1:0", config)
		if err != nil {
			panic(err)
		}
		fmt.Println(listener.Addr().(*net.TCPAddr).Port)
		conn, err := listener.Accept()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		state := conn.(*tls.Conn).ConnectionState()
		fmt.Fprintf(conn, "%s %s\n", strings.TrimSpace(line), describe(state))
		fmt.Println(describe(state))
	case "client":
		config := &tls.Config{
			RootCAs:          pool(os.Args[3]),
			ServerName:       "localhost",
			MinVersion:       tls.VersionTLS13,
			NextProtos:       []string{"hq-interop"},
			CurvePreferences: curves(os.Args[4]),
			// With a session cache the client lists psk_dhe_ke (RFC 8446 §4.2.9), so our server
			// sends it a NewSessionTicket for Go to parse.
			ClientSessionCache: tls.NewLRUClientSessionCache(4),
		}
		conn, err := tls.Dial("tcp", "127.0.0.1:"+os.Args[2], config)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "ping\n")
		reply, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(strings.TrimSpace(reply), describe(conn.ConnectionState()))
	}
}
